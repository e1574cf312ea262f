//! What this process did for sync since it started, per peer and resource: the ops it applied
//! by outcome, the entries and bytes it received and sent. Bumped where the work happens
//! (`ApplyOpsAction`, `PullChangesAction`, `DispatchOutboxAction`), kept in ship's process-wide
//! counters and served by `GET /metrics` as OpenMetrics counters (`…_total`). Per process, like
//! `regionsync_http_refusals`: the web process counts the pushes it receives, the scheduler the
//! pulls and pushes it makes; Prometheus sums them over a region's processes.

use serde_json::Value;
use ship::http::metrics::count;

use crate::tasks::apply_changes::OpStatus;

/// Ops received from a peer (pushed to us or pulled from it), by outcome.
pub const OPS: &str = "regionsync_sync_ops";
const OPS_HELP: &str = "Remote ops this process applied since it started, by the peer they came \
                        from (pushed by it or pulled from it), resource and outcome (applied, \
                        stale, duplicate, parked)";
pub const RECEIVED_ENTRIES: &str = "regionsync_sync_received_entries";
const RECEIVED_ENTRIES_HELP: &str = "Ops and feed entries this process received from the peer \
                                     since it started (pushed batches taken, pulled pages)";
pub const RECEIVED_BYTES: &str = "regionsync_sync_received_bytes";
const RECEIVED_BYTES_HELP: &str = "Bytes of those ops and entries (as JSON, uncompressed)";
pub const SENT_ENTRIES: &str = "regionsync_sync_sent_entries";
const SENT_ENTRIES_HELP: &str = "Changes this process pushed to the peer that it took (200) \
                                 since it started";
pub const SENT_BYTES: &str = "regionsync_sync_sent_bytes";
const SENT_BYTES_HELP: &str = "Bytes of the batches the peer took (the JSON body, before gzip)";

/// Make every series of `peer` and `resource` known, at 0 until counted (a peer this region
/// syncs with is listed from the start, and `rate()` sees its first increase).
pub(crate) fn known(peer: &str, resource: &str) {
    let labels = [("peer", peer), ("resource", resource)];
    for (name, help) in [
        (RECEIVED_ENTRIES, RECEIVED_ENTRIES_HELP),
        (RECEIVED_BYTES, RECEIVED_BYTES_HELP),
        (SENT_ENTRIES, SENT_ENTRIES_HELP),
        (SENT_BYTES, SENT_BYTES_HELP),
    ] {
        count(name, help, &labels, 0);
    }
    for status in OUTCOMES {
        let labels = [
            ("peer", peer),
            ("resource", resource),
            ("outcome", status.as_str()),
        ];
        count(OPS, OPS_HELP, &labels, 0);
    }
}

const OUTCOMES: [OpStatus; 4] = [
    OpStatus::Applied,
    OpStatus::Stale,
    OpStatus::Duplicate,
    OpStatus::Parked,
];

/// Count the outcomes of ops applied from `peer`.
pub(crate) fn ops(peer: &str, resource: &str, statuses: &[OpStatus]) {
    for status in OUTCOMES {
        let n = statuses.iter().filter(|s| **s == status).count() as u64;
        if n > 0 {
            let labels = [
                ("peer", peer),
                ("resource", resource),
                ("outcome", status.as_str()),
            ];
            count(OPS, OPS_HELP, &labels, n);
        }
    }
}

/// Count `values` received from `peer` (their number and JSON size).
pub(crate) fn received(peer: &str, resource: &str, values: &[Value]) {
    let labels = [("peer", peer), ("resource", resource)];
    let bytes: u64 = values.iter().map(json_len).sum();
    count(
        RECEIVED_ENTRIES,
        RECEIVED_ENTRIES_HELP,
        &labels,
        values.len() as u64,
    );
    count(RECEIVED_BYTES, RECEIVED_BYTES_HELP, &labels, bytes);
}

/// Count a batch of `entries` changes, `bytes` long, that `peer` took.
pub(crate) fn sent(peer: &str, resource: &str, entries: usize, bytes: usize) {
    let labels = [("peer", peer), ("resource", resource)];
    count(SENT_ENTRIES, SENT_ENTRIES_HELP, &labels, entries as u64);
    count(SENT_BYTES, SENT_BYTES_HELP, &labels, bytes as u64);
}

/// The length of `value` as compact JSON, without building the string.
fn json_len(value: &Value) -> u64 {
    struct Counting(u64);
    impl std::io::Write for Counting {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Counting(0);
    match serde_json::to_writer(&mut out, value) {
        Ok(()) => out.0,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_len_is_the_compact_length() {
        let v = serde_json::json!({"a": [1, 2, "x"], "b": null});
        assert_eq!(json_len(&v), v.to_string().len() as u64);
    }
}
