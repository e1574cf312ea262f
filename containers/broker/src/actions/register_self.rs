//! RegisterSelf: the broker region puts itself in its own registry at start (so the others
//! can resolve it) and records a heartbeat. Its credential is random and never shown: the
//! broker region calls its own broker in-process. A URL derived from the bind address only
//! registers a new entry; an existing entry's URL changes only when `explicit` (the operator set
//! `broker.public_url`), so a derived loopback URL never replaces what an operator registered.
//! A URL that is stored passes the default URL rule (as a heartbeat's does); the URL already
//! registered (perhaps with `broker regions add --allow-private`) is kept without a check.

use ship::parents::Action;
use ship::DbPool;

use super::check_base_url;
use crate::base_url::UrlPolicy;
use crate::credentials;
use crate::data::{lock, regions};
use crate::errors::BrokerError;
use crate::models::ALL_SCOPES;

#[derive(Debug, Clone)]
pub struct RegisterSelfInput {
    pub id: String,
    pub base_url: String,
    /// The URL comes from `broker.public_url` (not derived from the bind address).
    pub explicit: bool,
}

pub struct RegisterSelfAction {
    pool: DbPool,
}

impl RegisterSelfAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for RegisterSelfAction {
    const NAME: &'static str = "broker.register_self";
    type Input = RegisterSelfInput;
    /// True when the region was not registered before.
    type Output = bool;
    type Error = BrokerError;

    #[tracing::instrument(name = "broker.register_self", skip_all, fields(region = %input.id))]
    async fn run(&self, input: RegisterSelfInput) -> Result<bool, BrokerError> {
        let unusable = credentials::hash(&credentials::generate()?);
        self.pool
            .transaction(move |conn| {
                lock::registry(conn)?;
                let now = ship::db::utc_now();
                let created = match regions::find(conn, &input.id)? {
                    None => {
                        check_base_url(&input.base_url, UrlPolicy::Default)?;
                        regions::insert(
                            conn,
                            &input.id,
                            &input.base_url,
                            &unusable,
                            ALL_SCOPES,
                            now,
                        )?;
                        true
                    }
                    Some(r) => {
                        if input.explicit && r.base_url != input.base_url {
                            check_base_url(&input.base_url, UrlPolicy::Default)?;
                            regions::set_base_url(conn, &input.id, &input.base_url, now)?;
                        }
                        false
                    }
                };
                regions::touch_heartbeat(conn, &input.id, now)?;
                Ok(created)
            })
            .await
    }
}
