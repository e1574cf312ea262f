//! Heartbeat: a region says it is alive (and, optionally, where it is now reached). A changed
//! base URL passes the default URL rule: a heartbeat cannot move a region to a link-local or
//! metadata address, only the operator can (`broker regions add --allow-private`).

use ship::parents::Action;
use ship::DbPool;

use super::check_base_url;
use super::resolve::Caller;
use crate::base_url::UrlPolicy;
use crate::data::regions;
use crate::errors::BrokerError;
use crate::models::RegionView;
use crate::tasks::authenticate_region::AuthenticateRegionTask;

#[derive(Debug, Clone)]
pub struct HeartbeatInput {
    pub caller: Caller,
    pub base_url: Option<String>,
}

pub struct HeartbeatAction {
    pool: DbPool,
    offline_after_secs: u64,
}

impl HeartbeatAction {
    pub fn new(pool: DbPool, offline_after_secs: u64) -> Self {
        Self {
            pool,
            offline_after_secs,
        }
    }
}

impl Action for HeartbeatAction {
    const NAME: &'static str = "broker.heartbeat";
    type Input = HeartbeatInput;
    type Output = RegionView;
    type Error = BrokerError;

    #[tracing::instrument(name = "broker.heartbeat", skip_all)]
    async fn run(&self, input: HeartbeatInput) -> Result<RegionView, BrokerError> {
        let offline_after = self.offline_after_secs;
        self.pool
            .transaction(move |conn| {
                // Who is asking first: an unauthenticated caller learns nothing else.
                let region = AuthenticateRegionTask::run(conn, &input.caller)?;
                let now = ship::db::utc_now();
                // The URL already stored is the one the operator registered (perhaps with
                // `--allow-private`) or one a heartbeat passed: reporting it again changes
                // nothing and is not checked again. A new URL arrives without the operator's
                // word, so it passes the default rule (never link-local or metadata).
                if let Some(url) = input.base_url.as_deref().filter(|u| *u != region.base_url) {
                    check_base_url(url, UrlPolicy::Default)?;
                    regions::set_base_url(conn, &region.id, url, now)?;
                }
                regions::touch_heartbeat(conn, &region.id, now)?;
                let region = regions::find(conn, &region.id)?
                    .ok_or_else(|| BrokerError::UnknownRegion(region.id.clone()))?;
                Ok(region.view(now, offline_after))
            })
            .await
    }
}
