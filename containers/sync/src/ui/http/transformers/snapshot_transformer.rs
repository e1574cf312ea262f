//! `SnapshotPage` → the JSON of `GET /sync/{resource}/snapshot` (docs/PROTOCOL.md).

use serde::Serialize;
use serde_json::Value;

use crate::actions::SnapshotPage;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SnapshotRow<'a> {
    pub entity_id: &'a str,
    /// `upsert`, or `delete` for a tombstone.
    #[schema(value_type = crate::ui::http::requests::apply_ops_request::OpKindDoc)]
    pub kind: &'static str,
    /// With `origin`, the row's version.
    pub hlc: i64,
    pub origin: &'a str,
    /// The row's full state, as the resource's payload.
    #[schema(value_type = Object)]
    pub payload: &'a Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SnapshotResponse<'a> {
    pub resource: &'a str,
    pub rows: Vec<SnapshotRow<'a>>,
    /// `None` on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
    /// A changes-feed cursor (`since`): pull from here once every page is applied.
    pub watermark: String,
    pub schema_version: u32,
    /// The incarnation of the database that served the page (ADR 0012).
    pub incarnation: &'a str,
    /// First page only: how many rows the snapshot holds (an estimate: writes go on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_rows: Option<i64>,
}

pub fn transform(page: &SnapshotPage) -> SnapshotResponse<'_> {
    SnapshotResponse {
        resource: &page.resource,
        rows: page
            .rows
            .iter()
            .map(|c| SnapshotRow {
                entity_id: &c.entity_id,
                kind: c.kind.as_str(),
                hlc: c.version.hlc.as_i64(),
                origin: &c.version.origin,
                payload: &c.payload,
            })
            .collect(),
        next_cursor: page.next.as_ref().map(|c| c.encode()),
        has_more: page.next.is_some(),
        watermark: page.watermark.encode(),
        schema_version: page.schema_version,
        incarnation: &page.incarnation,
        total_rows: page.total_rows,
    }
}
