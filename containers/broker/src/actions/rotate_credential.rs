//! RotateCredential: give a region a new credential (a lost one, a leaked one); the old one
//! stops working at once. Tokens already issued stay valid until they expire.

use ship::parents::Action;
use ship::DbPool;

use crate::credentials;
use crate::data::{lock, regions};
use crate::errors::BrokerError;

pub struct RotateCredentialAction {
    pool: DbPool,
}

impl RotateCredentialAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for RotateCredentialAction {
    const NAME: &'static str = "broker.rotate_credential";
    /// The region id.
    type Input = String;
    /// The new credential, shown once.
    type Output = String;
    type Error = BrokerError;

    #[tracing::instrument(name = "broker.rotate_credential", skip_all, fields(region = %id))]
    async fn run(&self, id: String) -> Result<String, BrokerError> {
        let credential = credentials::generate()?;
        let hash = credentials::hash(&credential);
        self.pool
            .transaction(move |conn| {
                lock::registry(conn)?;
                if regions::set_credential_hash(conn, &id, &hash, ship::db::utc_now())? == 0 {
                    return Err(BrokerError::UnknownRegion(id));
                }
                Ok(())
            })
            .await?;
        Ok(credential)
    }
}
