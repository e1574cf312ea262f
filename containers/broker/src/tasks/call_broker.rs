//! CallBroker: the HTTP calls a region makes to a remote broker (resolve, heartbeat, keys).
//! Errors say whether the broker could not be reached (network, timeout, 5xx) or refused.

use serde::Deserialize;
use serde_json::{json, Value};
use ship::auth::PublicJwk;
use ship::contracts::{DirectoryError, PeerGrant};
use ship::parents::Task;

/// Where the broker is and how this region proves who it is.
#[derive(Clone)]
pub struct BrokerEndpoint {
    pub client: reqwest::Client,
    pub base_url: String,
    pub credential: String,
}

impl std::fmt::Debug for BrokerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerEndpoint")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

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

#[derive(Debug, Deserialize)]
struct KeysWire {
    keys: Vec<PublicJwk>,
}

pub struct CallBrokerTask;

impl Task for CallBrokerTask {
    const NAME: &'static str = "broker.call_broker";
}

impl CallBrokerTask {
    /// `POST /api/v1/broker/resolve` for one target or (None) every peer.
    pub async fn resolve(
        broker: &BrokerEndpoint,
        target_region: Option<&str>,
    ) -> Result<Vec<PeerGrant>, DirectoryError> {
        let body = match target_region {
            Some(t) => json!({ "target_region": t }),
            None => json!({}),
        };
        let wire: ResolveWire = Self::call(broker, reqwest::Method::POST, "resolve", Some(&body))
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

    /// `POST /api/v1/broker/heartbeat`.
    pub async fn heartbeat(
        broker: &BrokerEndpoint,
        base_url: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let body = json!({ "base_url": base_url });
        Self::call::<Value>(broker, reqwest::Method::POST, "heartbeat", Some(&body))
            .await
            .map(drop)
    }

    /// `GET /api/v1/broker/keys` (public: sent without the credential).
    pub async fn keys(broker: &BrokerEndpoint) -> Result<Vec<PublicJwk>, DirectoryError> {
        let wire: KeysWire = Self::call(broker, reqwest::Method::GET, "keys", None).await?;
        Ok(wire.keys)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        broker: &BrokerEndpoint,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, DirectoryError> {
        let url = format!(
            "{}/api/v1/broker/{path}",
            broker.base_url.trim_end_matches('/')
        );
        let mut request = broker.client.request(method, &url);
        if path != "keys" {
            request = request.bearer_auth(&broker.credential);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let res = request
            .send()
            .await
            .map_err(|e| DirectoryError::BrokerUnreachable(format!("{url}: {e}")))?;
        let status = res.status();
        if status.is_success() {
            return res.json().await.map_err(|e| {
                DirectoryError::BrokerUnreachable(format!("{url}: unreadable answer: {e}"))
            });
        }
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let code = body["error"].as_str().unwrap_or("http_error").to_string();
        let message = body["message"].as_str().unwrap_or_default().to_string();
        if status.is_server_error() {
            return Err(DirectoryError::BrokerUnreachable(format!(
                "{url}: {status} {code}: {message}"
            )));
        }
        Err(DirectoryError::Refused { code, message })
    }
}
