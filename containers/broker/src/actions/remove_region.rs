//! RemoveRegion: take a region out of the registry; its credential stops working at once.
//! A region that is still home to tenants is refused (move them first).

use ship::parents::Action;
use ship::DbPool;

use crate::data::{lock, regions, tenants};
use crate::errors::BrokerError;

pub struct RemoveRegionAction {
    pool: DbPool,
}

impl RemoveRegionAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for RemoveRegionAction {
    const NAME: &'static str = "broker.remove_region";
    type Input = String;
    type Output = ();
    type Error = BrokerError;

    #[tracing::instrument(name = "broker.remove_region", skip_all, fields(region = %id))]
    async fn run(&self, id: String) -> Result<(), BrokerError> {
        self.pool
            .transaction(move |conn| {
                lock::registry(conn)?;
                let homed = tenants::count_in(conn, &id)?;
                if homed > 0 {
                    return Err(BrokerError::Invalid(format!(
                        "region `{id}` is home to {homed} tenant(s): place them elsewhere first"
                    )));
                }
                if regions::delete(conn, &id)? == 0 {
                    return Err(BrokerError::UnknownRegion(id));
                }
                Ok(())
            })
            .await
    }
}
