//! SendOps: one `POST /sync/{resource}/ops` batch to a peer, and what its answer means for
//! the sender (docs/PROTOCOL.md).

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use ship::contracts::{ConflictPolicy, PeerGrant};
use ship::parents::Task;

use crate::models::ChangeLogEntry;

/// What to do after a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendOutcome {
    /// 200: every op applied (or already there).
    Applied,
    /// 413: send halves.
    TooLarge,
    /// 422 `invalid_ops`: these ops (indexes into the batch) can never apply; the rest can.
    InvalidOps(Vec<usize>),
    /// 401 `token_expired`: refresh the token once and resend.
    TokenExpired,
    /// The peer could not be reached: its address may have changed. `down`: not even a
    /// connection (refused, no route) — the peer is down, not merely slow (a timeout).
    Unreachable { reason: String, down: bool },
    /// Anything else (5xx, other refusals): retry later with backoff.
    Failed(String),
    /// 422 `clock_drift`: the peer's clock is behind ours beyond its bound. Not the entries'
    /// fault: retried later without counting an attempt (never a dead letter).
    ClockDrift(String),
    /// 409 `conflict_policy_mismatch`: the peer decides this resource's conflicts by another
    /// policy. A configuration to fix, not the entries' fault: retried later without counting
    /// an attempt (never a dead letter).
    PolicyMismatch(String),
}

#[derive(Serialize)]
struct Op<'a> {
    op_id: String,
    entity_id: &'a str,
    kind: &'a str,
    hlc: i64,
    origin: &'a str,
    payload: &'a RawValue,
}

#[derive(Serialize)]
struct Body<'a> {
    source_region: &'a str,
    batch_id: String,
    schema_version: i32,
    ops: Vec<Op<'a>>,
}

/// The body of a batch of changelog entries (payloads spliced in as stored).
pub(crate) fn body(
    source_region: &str,
    entries: &[&ChangeLogEntry],
) -> Result<Vec<u8>, serde_json::Error> {
    let payloads: Vec<Box<RawValue>> = entries
        .iter()
        .map(|e| RawValue::from_string(e.payload.clone()))
        .collect::<Result<_, _>>()?;
    let first = entries.first().map_or(0, |e| e.seq);
    let last = entries.last().map_or(0, |e| e.seq);
    let body = Body {
        source_region,
        // Within the receiver's 64 bytes whatever the region id and the seqs (hex).
        batch_id: format!("b{first:x}-{last:x}-{}", entries.len()),
        schema_version: entries.first().map_or(1, |e| e.schema_version),
        ops: entries
            .iter()
            .zip(&payloads)
            .map(|(e, payload)| Op {
                op_id: format!("{}-{}", e.origin_region, e.seq),
                entity_id: &e.entity_id,
                kind: &e.op,
                hlc: e.hlc,
                origin: &e.origin_region,
                payload,
            })
            .collect(),
    };
    serde_json::to_vec(&body)
}

#[derive(Serialize)]
struct OpsBody<'a> {
    source_region: &'a str,
    batch_id: &'a str,
    schema_version: u32,
    ops: &'a [Value],
}

/// The body of a batch of ops already in their wire form (`op_id`, `entity_id`, `kind`, `hlc`,
/// `origin`, `payload`), such as the rows `sync repair` sends. The receiver refuses an op whose
/// `origin` is not `source_region` (`origin_not_sender`): the caller sends only its own.
pub(crate) fn body_of_ops(
    source_region: &str,
    batch_id: &str,
    schema_version: u32,
    ops: &[Value],
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&OpsBody {
        source_region,
        batch_id,
        schema_version,
        ops,
    })
}

pub(crate) struct SendOpsTask;

impl Task for SendOpsTask {
    const NAME: &'static str = "sync.send_ops";
}

/// The conflict policy a peer's answer states (`lww` when it says none: a region from before
/// policies), clipped for the log.
pub(crate) fn answered_policy(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(ship::http::CONFLICT_POLICY_HEADER)
        .map(|v| ship::http::stated_policy(v.as_bytes()))
        .unwrap_or_else(|| ConflictPolicy::Lww.as_str().to_string())
}

/// Bodies smaller than this go plain: gzip would save next to nothing.
const GZIP_FROM_BYTES: usize = 1024;

/// `body` gzipped (fast level: a push is latency-bound; JSON of rows compresses ~5× anyway);
/// `None` if compressing failed (the body then goes plain).
fn gzipped(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

impl SendOpsTask {
    /// POST `body` to the peer's ops route; with `gzip`, a body of at least
    /// [`GZIP_FROM_BYTES`] goes gzipped (`Content-Encoding: gzip`; the receiver's limit applies
    /// to what it decompresses).
    pub(crate) async fn run(
        client: &reqwest::Client,
        peer: &PeerGrant,
        resource: &str,
        body: Vec<u8>,
        ours: &str,
        gzip: bool,
        policy: ConflictPolicy,
    ) -> SendOutcome {
        let url = format!(
            "{}/sync/{resource}/ops",
            peer.base_url.trim_end_matches('/')
        );
        let mut request = client
            .post(&url)
            .bearer_auth(&peer.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        request = request.header(ship::http::CONFLICT_POLICY_HEADER, policy.as_str());
        if !ours.is_empty() {
            request = request.header(ship::http::INCARNATION_HEADER, ours);
        }
        let body = if gzip && body.len() >= GZIP_FROM_BYTES {
            // On the blocking pool: a batch of a MiB takes milliseconds to compress, which
            // must not stall the dispatcher's other sends on this thread.
            let packed = tokio::task::spawn_blocking(move || (gzipped(&body), body)).await;
            match packed {
                Ok((Some(packed), _)) => {
                    request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
                    packed
                }
                Ok((None, body)) => body,
                Err(e) => {
                    return SendOutcome::Failed(format!("compressing the batch failed: {e}"));
                }
            }
        } else {
            body
        };
        // Our clock on the request, the peer's on its answer (ADR 0016).
        let exchange = crate::peer_clock::Exchange::start();
        if let Some(exchange) = &exchange {
            request = request.header(exchange.header().0, exchange.header().1);
        }
        let res = match request.body(body).send().await {
            Ok(res) => res,
            Err(e) => {
                return SendOutcome::Unreachable {
                    reason: format!("{url}: {e}"),
                    down: e.is_connect(),
                }
            }
        };
        if let Some(exchange) = exchange {
            let theirs = res.headers().get(crate::peer_clock::CLOCK_HEADER);
            exchange.finish(&peer.id, theirs.and_then(|v| v.to_str().ok()));
        }
        let status = res.status().as_u16();
        if status == 200 {
            // A receiver that ignored our policy (a region from before policies, answering no
            // header: `lww`) applied this batch by its own: stop here, loudly, before more go.
            let theirs = answered_policy(res.headers());
            if theirs != policy.as_str() {
                return SendOutcome::PolicyMismatch(format!(
                    "200, but the peer decides `{resource}` by {theirs} and this region by {policy}: \
                     not sending more until every region has the same `sync.conflict_policy`"
                ));
            }
            return SendOutcome::Applied;
        }
        let answer: Value = res.json().await.unwrap_or(Value::Null);
        let code = answer["error"].as_str().unwrap_or_default();
        match (status, code) {
            // A body the peer could not take in its time is sent as halves too (counting an
            // attempt instead would dead-letter a slow link's big batches).
            (413, _) | (408, _) => SendOutcome::TooLarge,
            (401, "token_expired") => SendOutcome::TokenExpired,
            (409, "conflict_policy_mismatch") => SendOutcome::PolicyMismatch(format!(
                "{status} conflict_policy_mismatch: {}",
                ship::errors::clip_to(answer["message"].as_str().unwrap_or_default(), 1024)
            )),
            (422, "invalid_ops")
                if answer["details"]["errors"]
                    .as_array()
                    .is_some_and(|errors| errors.iter().any(|e| e["code"] == "clock_drift")) =>
            {
                // Our clock runs ahead of the peer's: retry later, never a dead letter.
                SendOutcome::ClockDrift(format!(
                    "{status} clock_drift: the peer's clock is behind ours"
                ))
            }
            (422, "invalid_ops") => {
                let mut bad: Vec<usize> = answer["details"]["errors"]
                    .as_array()
                    .map(|errors| {
                        errors
                            .iter()
                            .filter_map(|e| e["index"].as_u64())
                            .map(|i| i as usize)
                            .collect()
                    })
                    .unwrap_or_default();
                bad.sort_unstable();
                bad.dedup();
                if bad.is_empty() {
                    SendOutcome::Failed(format!("{status} {code} without op indexes"))
                } else {
                    SendOutcome::InvalidOps(bad)
                }
            }
            _ => SendOutcome::Failed(format!(
                "{status} {}: {}",
                ship::errors::clip(code),
                ship::errors::clip_to(answer["message"].as_str().unwrap_or_default(), 1024)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Regression: the batch id carried the region and resource, and went over the receiver's
    /// 64 bytes with a 32-character region id and large seqs.
    #[test]
    fn the_batch_id_fits_the_receivers_limit() {
        let entry = |seq: i64| ChangeLogEntry {
            resource: "a_resource_with_a_long_name_too".into(),
            seq,
            entity_id: "e".into(),
            op: "upsert".into(),
            payload: "{}".into(),
            hlc: 1,
            origin_region: "r".repeat(32),
            schema_version: 1,
            created_at: chrono::NaiveDateTime::default(),
        };
        let (a, b) = (entry(i64::MAX - 1), entry(i64::MAX));
        let body: serde_json::Value =
            serde_json::from_slice(&body(&"r".repeat(32), &[&a, &b]).unwrap()).unwrap();
        let id = body["batch_id"].as_str().unwrap();
        assert!(!id.is_empty() && id.len() <= 64, "{id}");
    }
}
