//! Body of `POST /sync/{resource}/ops`. The envelope is typed here; each op stays raw JSON so
//! the action can report every op's problems by index instead of failing on the first.

use serde::Deserialize;
use serde_json::Value;

use crate::actions::ApplyOpsInput;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyOpsRequest {
    /// The sending region: the token's `sub` (else 403 `token_wrong_subject`), and the origin
    /// of every op; not the receiver itself.
    #[schema(example = "us-east")]
    pub source_region: String,
    /// 1–64 bytes; answered back.
    #[schema(example = "us-east-customers-7-8")]
    pub batch_id: String,
    /// The resource's payload schema version.
    #[schema(example = 1)]
    pub schema_version: u32,
    /// 1 to `sync.max_ops_per_batch` (1000) ops. Each is read as raw JSON and validated by
    /// the resource, so every broken op is named (`invalid_ops`, `details.errors`).
    #[schema(value_type = Vec<OpEnvelope>)]
    pub ops: Vec<Value>,
}

// The op stays raw JSON in `ApplyOpsRequest` (so every broken op is reported); this type is
// for the OpenAPI document, and a test reads docs/PROTOCOL.md's example op into it.
/// One op of a batch: a write of the sending region to one row (docs/PROTOCOL.md).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpEnvelope {
    /// At most 64 bytes; its result is answered under it.
    #[schema(example = "us-east-7")]
    pub op_id: String,
    /// The row's id; the payload's `id` (else `entity_mismatch`). At most 64 bytes.
    #[schema(example = "01a2135c-9be2-711a-a2d3-abd40e9dfca9")]
    pub entity_id: String,
    pub kind: OpKindDoc,
    /// The write's hybrid logical clock: high 48 bits wall-clock milliseconds, low 16 a
    /// counter; at most `sync.max_clock_drift_ms` ahead of the receiver (`clock_drift`).
    #[schema(minimum = 0, example = 117677829110628352_i64)]
    pub hlc: i64,
    /// The region that made the write: the batch's `source_region` (`origin_not_sender`).
    #[schema(example = "us-east")]
    pub origin: String,
    /// The row's full state, as the resource's payload (`deleted_at` set for a `delete`);
    /// its problems are named `payload.<field>`.
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// What an op (or a changes-feed entry, or a snapshot row) does to its row.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpKindDoc {
    /// The payload is the row's full state.
    Upsert,
    /// A tombstone: the payload is the state at deletion.
    Delete,
}

impl ApplyOpsRequest {
    /// `source_incarnation`: the sender's `Regionsync-Incarnation` header ('' if absent);
    /// `source_policy`: its `Regionsync-Conflict-Policy` header ('' if absent).
    pub fn into_input(
        self,
        resource: String,
        source_incarnation: String,
        source_policy: String,
    ) -> ApplyOpsInput {
        ApplyOpsInput {
            resource,
            source_region: self.source_region,
            batch_id: self.batch_id,
            schema_version: self.schema_version,
            ops: self.ops,
            source_incarnation,
            source_policy,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The example batch of docs/PROTOCOL.md reads as the documented envelope, op by op.
    #[test]
    fn the_protocol_example_is_the_documented_envelope() {
        let protocol = include_str!("../../../../../../docs/PROTOCOL.md");
        let start = protocol.find("{\n  \"source_region\"").unwrap();
        let end = start + protocol[start..].find("\n```").unwrap();
        let batch: ApplyOpsRequest = serde_json::from_str(&protocol[start..end]).unwrap();
        assert!(!batch.ops.is_empty());
        for op in batch.ops {
            serde_json::from_value::<OpEnvelope>(op).unwrap();
        }
    }
}
