//! The HTTP plumbing of the calls a region makes to a remote broker: where it is, the
//! credential, and one request helper whose errors say whether the broker could not be reached
//! (network, timeout, 5xx) or refused. Each call is its own task (`resolve_at_broker`,
//! `send_heartbeat`, `fetch_broker_keys`).

use serde_json::Value;
use ship::contracts::DirectoryError;

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

/// One call to `/api/v1/broker/{path}`; the credential goes along when `authenticated`.
pub(crate) async fn call<T: serde::de::DeserializeOwned>(
    broker: &BrokerEndpoint,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    authenticated: bool,
) -> Result<T, DirectoryError> {
    let url = format!(
        "{}/api/v1/broker/{path}",
        broker.base_url.trim_end_matches('/')
    );
    let mut request = broker.client.request(method, &url);
    if authenticated {
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
