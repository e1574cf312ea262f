//! SendHeartbeat: `POST /api/v1/broker/heartbeat` on a remote broker.

use serde_json::{json, Value};
use ship::contracts::DirectoryError;
use ship::parents::Task;

use super::broker_http::{call, BrokerEndpoint};

pub(crate) struct SendHeartbeatTask;

impl Task for SendHeartbeatTask {
    const NAME: &'static str = "broker.send_heartbeat";
}

impl SendHeartbeatTask {
    /// `base_url`: announce where this region is reached (only when configured explicitly).
    pub(crate) async fn run(
        broker: &BrokerEndpoint,
        base_url: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let body = json!({ "base_url": base_url });
        call::<Value>(
            broker,
            reqwest::Method::POST,
            "heartbeat",
            Some(&body),
            true,
        )
        .await
        .map(drop)
    }
}
