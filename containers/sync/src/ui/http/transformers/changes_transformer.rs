//! `ChangesPage` → the JSON of `GET /sync/{resource}/changes` (docs/PROTOCOL.md).
//!
//! The body is written directly. A payload is stored JSON text that this region produced from a
//! `serde_json::Value` (local writes and applied ops alike), so it is spliced in as it is — the
//! feed is the hot path of every pull, and parsing each payload only to print it again doubled
//! its cost.

use std::io::Write;

use serde::Deserialize;

use crate::actions::ChangesPage;
use crate::ui::http::requests::apply_ops_request::OpKindDoc;

// The body `render` writes, for the OpenAPI document only: it is written by hand, and a test
// reads a rendered page into this type (`deny_unknown_fields`, every field required), so the
// two cannot drift apart.
/// A page of the changes feed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangesPageBody {
    pub resource: String,
    /// In feed order (`seq` ascending).
    pub changes: Vec<ChangeEntryBody>,
    /// Pull again from here while `has_more`; equals `high_watermark` when it is false.
    pub next_cursor: String,
    pub has_more: bool,
    /// Everything committed so far (a cursor).
    pub high_watermark: String,
    pub schema_version: u32,
    /// The serving database's incarnation (ADR 0012), also in `Regionsync-Incarnation`.
    pub incarnation: String,
}

/// One entry of the changes feed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEntryBody {
    /// The entry's position in this region's feed of the resource.
    pub seq: i64,
    pub entity_id: String,
    pub kind: OpKindDoc,
    /// With `origin`, the write's version.
    pub hlc: i64,
    pub origin: String,
    pub schema_version: u32,
    /// The row's full state at this change (the state at deletion for a `delete`).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// Write `s` as a JSON string.
fn string(out: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, s)
}

pub fn render(page: &ChangesPage) -> Result<Vec<u8>, serde_json::Error> {
    let payloads: usize = page.changes.iter().map(|c| c.payload.len() + 200).sum();
    let mut out = Vec::with_capacity(256 + payloads);
    out.extend_from_slice(b"{\"resource\":");
    string(&mut out, &page.resource)?;
    out.extend_from_slice(b",\"changes\":[");
    for (i, e) in page.changes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write!(out, "{{\"seq\":{},\"entity_id\":", e.seq).map_err(serde_json::Error::io)?;
        string(&mut out, &e.entity_id)?;
        out.extend_from_slice(b",\"kind\":");
        string(&mut out, &e.op)?;
        write!(out, ",\"hlc\":{},\"origin\":", e.hlc).map_err(serde_json::Error::io)?;
        string(&mut out, &e.origin_region)?;
        write!(out, ",\"schema_version\":{},\"payload\":", e.schema_version)
            .map_err(serde_json::Error::io)?;
        out.extend_from_slice(e.payload.as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"next_cursor\":");
    string(&mut out, &page.next_cursor.encode())?;
    write!(out, ",\"has_more\":{},\"high_watermark\":", page.has_more)
        .map_err(serde_json::Error::io)?;
    string(&mut out, &page.high_watermark.encode())?;
    write!(
        out,
        ",\"schema_version\":{},\"incarnation\":",
        page.schema_version
    )
    .map_err(serde_json::Error::io)?;
    string(&mut out, &page.incarnation)?;
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;
    use serde_json::{json, Value};

    use super::*;
    use crate::cursor::FeedCursor;
    use crate::models::ChangeLogEntry;

    #[test]
    fn the_body_is_the_documented_json_with_payloads_verbatim() {
        let entry = |seq: i64, payload: &str| ChangeLogEntry {
            resource: "widgets".into(),
            seq,
            entity_id: "e\"1".into(),
            op: "upsert".into(),
            payload: payload.into(),
            hlc: 42,
            origin_region: "eu-west".into(),
            schema_version: 1,
            created_at: NaiveDateTime::default(),
        };
        let page = ChangesPage {
            resource: "widgets".into(),
            changes: vec![
                entry(1, r#"{"n":1.5,"big":18446744073709551615}"#),
                entry(2, "{}"),
            ],
            next_cursor: FeedCursor::anchored(2, 42, "00ff"),
            has_more: false,
            high_watermark: FeedCursor::anchored(2, 42, "00ff"),
            schema_version: 1,
            incarnation: "00ff".into(),
            policy: ship::contracts::ConflictPolicy::Lww,
        };
        let body: Value = serde_json::from_slice(&render(&page).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "resource": "widgets",
                "changes": [
                    {"seq": 1, "entity_id": "e\"1", "kind": "upsert", "hlc": 42, "origin": "eu-west",
                     "schema_version": 1, "payload": {"n": 1.5, "big": 18446744073709551615_u64}},
                    {"seq": 2, "entity_id": "e\"1", "kind": "upsert", "hlc": 42, "origin": "eu-west",
                     "schema_version": 1, "payload": {}},
                ],
                "next_cursor": FeedCursor::anchored(2, 42, "00ff").encode(),
                "has_more": false,
                "high_watermark": FeedCursor::anchored(2, 42, "00ff").encode(),
                "schema_version": 1,
                "incarnation": "00ff",
            })
        );
        let empty = ChangesPage {
            changes: vec![],
            ..page
        };
        let body: Value = serde_json::from_slice(&render(&empty).unwrap()).unwrap();
        assert_eq!(body["changes"], json!([]));
    }

    /// What `render` writes is what the OpenAPI document says (`ChangesPageBody` refuses an
    /// unknown key and needs every one it names).
    #[test]
    fn a_rendered_page_is_the_documented_body() {
        let page = ChangesPage {
            resource: "widgets".into(),
            changes: vec![ChangeLogEntry {
                resource: "widgets".into(),
                seq: 7,
                entity_id: "w1".into(),
                op: "delete".into(),
                payload: r#"{"id":"w1"}"#.into(),
                hlc: 42,
                origin_region: "eu-west".into(),
                schema_version: 1,
                created_at: NaiveDateTime::default(),
            }],
            next_cursor: FeedCursor::anchored(7, 42, "00ff"),
            has_more: true,
            high_watermark: FeedCursor::anchored(9, 43, "00ff"),
            schema_version: 1,
            incarnation: "00ff".into(),
            policy: ship::contracts::ConflictPolicy::Lww,
        };
        let body: ChangesPageBody = serde_json::from_slice(&render(&page).unwrap()).unwrap();
        assert_eq!((body.changes.len(), body.changes[0].seq), (1, 7));
        assert!(matches!(body.changes[0].kind, OpKindDoc::Delete));
    }
}
