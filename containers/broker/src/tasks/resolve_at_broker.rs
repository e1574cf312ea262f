//! ResolveAtBroker: `POST /api/v1/broker/resolve` on a remote broker, for one target region
//! or (None) every peer.

use serde::Deserialize;
use serde_json::json;
use ship::contracts::{DirectoryError, PeerGrant};
use ship::parents::Task;

use super::broker_http::{call, BrokerEndpoint};

#[derive(Debug, Deserialize)]
struct ResolvedWire {
    id: String,
    base_url: String,
    status: String,
    token: String,
    token_expires_at: i64,
}

#[derive(Debug, Deserialize)]
struct ResolveWire {
    regions: Vec<ResolvedWire>,
}

pub(crate) struct ResolveAtBrokerTask;

impl Task for ResolveAtBrokerTask {
    const NAME: &'static str = "broker.resolve_at_broker";
}

impl ResolveAtBrokerTask {
    pub(crate) async fn run(
        broker: &BrokerEndpoint,
        target_region: Option<&str>,
    ) -> Result<Vec<PeerGrant>, DirectoryError> {
        let body = match target_region {
            Some(t) => json!({ "target_region": t }),
            None => json!({}),
        };
        let wire: ResolveWire = call(broker, reqwest::Method::POST, "resolve", Some(&body), true)
            .await
            .map_err(|e| match (e, target_region) {
                (DirectoryError::Refused { code, .. }, Some(t)) if code == "unknown_region" => {
                    DirectoryError::UnknownPeer(t.to_string())
                }
                (e, _) => e,
            })?;
        Ok(wire
            .regions
            .into_iter()
            .map(|r| PeerGrant {
                id: r.id,
                base_url: r.base_url,
                status: r.status,
                token: r.token,
                expires_at: r.token_expires_at,
            })
            .collect())
    }
}
