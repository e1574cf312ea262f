//! `ApplyOpsOutput` → the JSON answer of `POST /sync/{resource}/ops` (docs/PROTOCOL.md).

use serde::Serialize;

use crate::actions::{ApplyOpsOutput, OpStatus};

#[derive(Debug, Serialize)]
pub struct ApplyOpsResponse {
    pub batch_id: String,
    pub results: Vec<OpResult>,
    pub applied: usize,
    pub stale: usize,
    pub duplicate: usize,
    /// Ops kept until a row they name arrives (ADR 0015).
    pub parked: usize,
    pub receiver_hlc: i64,
}

#[derive(Debug, Serialize)]
pub struct OpResult {
    pub op_id: String,
    pub status: &'static str,
}

pub fn transform(out: ApplyOpsOutput) -> ApplyOpsResponse {
    ApplyOpsResponse {
        applied: out.count(OpStatus::Applied),
        stale: out.count(OpStatus::Stale),
        duplicate: out.count(OpStatus::Duplicate),
        parked: out.count(OpStatus::Parked),
        batch_id: out.batch_id,
        receiver_hlc: out.receiver_hlc,
        results: out
            .results
            .into_iter()
            .map(|(op_id, status)| OpResult {
                op_id,
                status: status.as_str(),
            })
            .collect(),
    }
}
