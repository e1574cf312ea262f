//! FetchBrokerKeys: `GET /api/v1/broker/keys` on a remote broker (public: no credential).

use serde::Deserialize;
use ship::auth::PublicJwk;
use ship::contracts::DirectoryError;
use ship::parents::Task;

use super::broker_http::{call, BrokerEndpoint};

#[derive(Debug, Deserialize)]
struct KeysWire {
    keys: Vec<PublicJwk>,
}

pub(crate) struct FetchBrokerKeysTask;

impl Task for FetchBrokerKeysTask {
    const NAME: &'static str = "broker.fetch_broker_keys";
}

impl FetchBrokerKeysTask {
    pub(crate) async fn run(broker: &BrokerEndpoint) -> Result<Vec<PublicJwk>, DirectoryError> {
        let wire: KeysWire = call(broker, reqwest::Method::GET, "keys", None, false).await?;
        Ok(wire.keys)
    }
}
