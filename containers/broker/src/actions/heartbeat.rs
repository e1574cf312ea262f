//! Heartbeat: a region says it is alive (and, optionally, where it is now reached).

use ship::parents::Action;
use ship::DbPool;

use super::check_base_url;
use super::resolve::Caller;
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
                if let Some(url) = &input.base_url {
                    check_base_url(url)?;
                }
                let now = ship::db::utc_now();
                if let Some(url) = input.base_url.as_deref().filter(|u| *u != region.base_url) {
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
