//! Body of `POST /sync/{resource}/ops`. The envelope is typed here; each op stays raw JSON so
//! the action can report every op's problems by index instead of failing on the first.

use serde::Deserialize;
use serde_json::Value;

use crate::actions::ApplyOpsInput;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyOpsRequest {
    pub source_region: String,
    pub batch_id: String,
    pub schema_version: u32,
    pub ops: Vec<Value>,
}

impl ApplyOpsRequest {
    /// `source_incarnation`: the sender's `Regionsync-Incarnation` header ('' if absent).
    pub fn into_input(self, resource: String, source_incarnation: String) -> ApplyOpsInput {
        ApplyOpsInput {
            resource,
            source_region: self.source_region,
            batch_id: self.batch_id,
            schema_version: self.schema_version,
            ops: self.ops,
            source_incarnation,
        }
    }
}
