//! FetchChanges: one page of a peer's changes feed over HTTP.

use serde::Deserialize;
use serde_json::{json, Value};
use ship::contracts::{ConflictPolicy, PeerGrant};
use ship::parents::Task;

use crate::errors::SyncError;

/// The part of a `GET /sync/{resource}/changes` answer the puller uses.
#[derive(Debug, Deserialize)]
pub struct FetchedPage {
    pub changes: Vec<Value>,
    pub next_cursor: String,
    pub has_more: bool,
    pub schema_version: u32,
    /// The incarnation of the peer's database (ADR 0012); absent from older peers.
    #[serde(default)]
    pub incarnation: Option<String>,
}

pub(crate) struct FetchChangesTask;

impl Task for FetchChangesTask {
    const NAME: &'static str = "sync.fetch_changes";
}

impl FetchChangesTask {
    pub(crate) async fn run(
        client: &reqwest::Client,
        peer: &PeerGrant,
        resource: &str,
        (since, ack): (Option<&str>, Option<&str>),
        limit: u32,
        exclude_origin: &str,
        (ours, policy): (&str, ConflictPolicy),
    ) -> Result<FetchedPage, SyncError> {
        let url = format!(
            "{}/sync/{resource}/changes",
            peer.base_url.trim_end_matches('/')
        );
        let token = peer.token.as_str();
        let peer = peer.id.as_str();
        let mut query = vec![
            ("limit", limit.to_string()),
            ("exclude_origin", exclude_origin.to_string()),
        ];
        if let Some(since) = since {
            query.push(("since", since.to_string()));
        }
        // Behind `since` when this page is fetched while the one before is being applied: what
        // we acknowledge is only what is applied.
        if let Some(ack) = ack.filter(|a| Some(*a) != since) {
            query.push(("ack", ack.to_string()));
        }
        let caller = (peer, token, ours, Some(policy));
        get_json(client, caller, &url, &query, "a changes page").await
    }
}

/// GET `url` from `peer` with its token, telling it this database's incarnation `ours` (when
/// known) and our conflict policy for the resource (when given: the peer refuses another):
/// the answer as `T`, or what the peer's refusal means (410 → `PeerCursorExpired`, 409
/// `cursor_diverged` → `PeerCursorDiverged`, 409 `conflict_policy_mismatch` →
/// `PeerPolicyMismatch`, `token_*` → `PeerAuthRefused`, else `PeerRefused`).
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    (peer, token, ours, policy): (&str, &str, &str, Option<ConflictPolicy>),
    url: &str,
    query: &[(&str, String)],
    what: &str,
) -> Result<T, SyncError> {
    let unreachable = |e: reqwest::Error| SyncError::PeerUnreachable {
        peer: peer.to_string(),
        reason: e.to_string(),
    };
    let mut request = client.get(url).bearer_auth(token).query(query);
    if !ours.is_empty() {
        request = request.header(ship::http::INCARNATION_HEADER, ours);
    }
    if let Some(policy) = policy {
        request = request.header(ship::http::CONFLICT_POLICY_HEADER, policy.as_str());
    }
    // Our clock on the request, the peer's on its answer (ADR 0016).
    let exchange = crate::peer_clock::Exchange::start();
    if let Some(exchange) = &exchange {
        request = request.header(exchange.header().0, exchange.header().1);
    }
    let res = request.send().await.map_err(unreachable)?;
    if let Some(exchange) = exchange {
        let theirs = res.headers().get(crate::peer_clock::CLOCK_HEADER);
        exchange.finish(peer, theirs.and_then(|v| v.to_str().ok()));
    }
    let status = res.status();
    if let Some(ours) = policy.filter(|_| status.is_success()) {
        // A peer that ignored our header (one from before policies says none: `lww`) would
        // hand us a page decided by another policy: refused here too.
        let theirs = crate::tasks::send_ops::answered_policy(res.headers());
        if theirs != ours.as_str() {
            return Err(SyncError::PeerPolicyMismatch {
                peer: peer.to_string(),
                resource: resource_of(url),
                theirs,
                ours: ours.as_str().to_string(),
            });
        }
    }
    let read = read_capped(res, MAX_ANSWER_BYTES).await;
    if status.is_success() {
        let refused = |message: String| SyncError::PeerRefused {
            peer: peer.to_string(),
            status: status.as_u16(),
            message,
        };
        let bytes = read.map_err(refused)?;
        return serde_json::from_slice(&bytes)
            .map_err(|e| refused(format!("the answer is not {what}: {e}")));
    }
    let body: Value = read
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    let code = body["error"].as_str().unwrap_or_default();
    if status.as_u16() == 410 || code == "cursor_expired" {
        return Err(SyncError::PeerCursorExpired {
            peer: peer.to_string(),
        });
    }
    if code == "cursor_diverged" {
        return Err(SyncError::PeerCursorDiverged {
            peer: peer.to_string(),
        });
    }
    if code == "conflict_policy_mismatch" {
        return Err(SyncError::PeerPolicyMismatch {
            peer: peer.to_string(),
            resource: resource_of(url),
            theirs: "another policy".into(),
            ours: policy.map_or("lww", ConflictPolicy::as_str).to_string(),
        });
    }
    // A peer's words are bounded like a client's: they reach the log and the operator's
    // status on every pull.
    let message = ship::errors::clip_to(body["message"].as_str().unwrap_or_default(), 1024);
    if code.starts_with("token_") {
        return Err(SyncError::PeerAuthRefused {
            peer: peer.to_string(),
            code: ship::errors::clip(code).into_owned(),
            message: message.into_owned(),
        });
    }
    Err(SyncError::PeerRefused {
        peer: peer.to_string(),
        status: status.as_u16(),
        message: format!("{}: {message}", ship::errors::clip(code)),
    })
}

/// The resource of a `/sync/{resource}/…` URL (for an error message).
fn resource_of(url: &str) -> String {
    let resource = url.rsplit('/').nth(1).unwrap_or_default();
    ship::errors::clip(resource).into_owned()
}

/// A feed entry as an op (`op_id` = `<origin>-<seq>`, the other fields as they are): what a
/// pull (and a retry of a quarantined entry) validates and applies.
pub(crate) fn entry_to_op(change: &Value) -> Value {
    json!({
        "op_id": format!("{}-{}", change["origin"].as_str().unwrap_or("?"), change["seq"]),
        "entity_id": change["entity_id"],
        "kind": change["kind"],
        "hlc": change["hlc"],
        "origin": change["origin"],
        "payload": change["payload"],
    })
}

/// The most a peer's answer may take, decoded (a gzipped answer is read as it decodes): far
/// above any page the peer serves, far below what a broken or hostile peer could make a small
/// gzipped body expand to.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The answer's body, decoded, refused past `cap` bytes (never held whole beyond it).
async fn read_capped(mut res: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > cap {
            return Err(format!("the answer is larger than {cap} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
