//! `ApplyOpsOutput` → the JSON answer of `POST /sync/{resource}/ops` (docs/PROTOCOL.md).

use serde::Serialize;

use crate::actions::{ApplyOpsOutput, OpStatus};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApplyOpsResponse {
    pub batch_id: String,
    /// One per op, in batch order.
    pub results: Vec<OpResult>,
    /// Written (greater version, or a new row) and appended to this region's changelog.
    pub applied: usize,
    /// The stored version is greater (a conflict from another origin is recorded).
    pub stale: usize,
    /// Equal version: already applied.
    pub duplicate: usize,
    /// Ops kept until a row they name arrives (ADR 0015).
    pub parked: usize,
    /// This region's clock after the batch.
    pub receiver_hlc: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpResult {
    pub op_id: String,
    /// `applied`, `stale`, `duplicate` or `parked`.
    #[schema(value_type = String, example = "applied")]
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
