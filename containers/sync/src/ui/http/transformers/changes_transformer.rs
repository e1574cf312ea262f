//! `ChangesPage` → the JSON of `GET /sync/{resource}/changes` (docs/PROTOCOL.md).

use serde::Serialize;
use serde_json::value::RawValue;

use crate::actions::ChangesPage;
use crate::models::ChangeLogEntry;

#[derive(Debug, Serialize)]
pub struct ChangesResponse {
    pub resource: String,
    pub changes: Vec<ChangeDto>,
    pub next_cursor: String,
    pub has_more: bool,
    pub high_watermark: String,
    pub schema_version: u32,
}

#[derive(Debug, Serialize)]
pub struct ChangeDto {
    pub seq: i64,
    pub entity_id: String,
    pub kind: String,
    pub hlc: i64,
    pub origin: String,
    pub schema_version: i32,
    /// Stored JSON text, passed through without re-parsing.
    pub payload: Box<RawValue>,
}

fn change(entry: ChangeLogEntry) -> Result<ChangeDto, serde_json::Error> {
    Ok(ChangeDto {
        seq: entry.seq,
        entity_id: entry.entity_id,
        kind: entry.op,
        hlc: entry.hlc,
        origin: entry.origin_region,
        schema_version: entry.schema_version,
        payload: RawValue::from_string(entry.payload)?,
    })
}

pub fn transform(page: ChangesPage) -> Result<ChangesResponse, serde_json::Error> {
    Ok(ChangesResponse {
        resource: page.resource,
        changes: page
            .changes
            .into_iter()
            .map(change)
            .collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor.encode(),
        has_more: page.has_more,
        high_watermark: page.high_watermark.encode(),
        schema_version: page.schema_version,
    })
}
