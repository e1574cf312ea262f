//! The broker's scheduled job (a UI: it calls actions or the directory, nothing else).

use std::sync::Arc;

use ship::parents::{Action, Job, JobFuture};
use ship::DbPool;

use crate::actions::{RegisterSelfAction, RegisterSelfInput};
use crate::directory::BrokerDirectory;

/// Where this region's heartbeat goes.
pub enum HeartbeatTarget {
    /// This region runs the broker role: record the heartbeat in its own registry.
    Local {
        pool: DbPool,
        region: String,
        url: String,
        /// The URL is the operator's (`broker.public_url`), not derived from the bind address.
        explicit: bool,
    },
    /// Another region does: `POST /api/v1/broker/heartbeat` (with the URL when explicit).
    Remote {
        directory: Arc<BrokerDirectory>,
        url: Option<String>,
    },
}

/// BrokerHeartbeatJob: tell the broker this region is alive (SYNC-PROTOCOL §8).
pub struct BrokerHeartbeatJob {
    target: HeartbeatTarget,
}

impl BrokerHeartbeatJob {
    pub const NAME: &'static str = "broker.heartbeat";

    pub fn new(target: HeartbeatTarget) -> Self {
        Self { target }
    }

    async fn beat(&self) -> Result<(), ship::parents::JobError> {
        match &self.target {
            HeartbeatTarget::Local {
                pool,
                region,
                url,
                explicit,
            } => {
                let input = RegisterSelfInput {
                    id: region.clone(),
                    base_url: url.clone(),
                    explicit: *explicit,
                };
                if RegisterSelfAction::new(pool.clone()).run(input).await? {
                    tracing::info!(%region, public_url = %url, "registered this region at its own broker");
                }
                Ok(())
            }
            HeartbeatTarget::Remote { directory, url } => {
                directory.heartbeat(url.as_deref()).await?;
                Ok(())
            }
        }
    }
}

impl Job for BrokerHeartbeatJob {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(self.beat())
    }
}
