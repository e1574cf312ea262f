//! `ChangesPage` → the JSON of `GET /sync/{resource}/changes` (docs/PROTOCOL.md).
//!
//! The body is written directly. A payload is stored JSON text that this region produced from a
//! `serde_json::Value` (local writes and applied ops alike), so it is spliced in as it is — the
//! feed is the hot path of every pull, and parsing each payload only to print it again doubled
//! its cost.

use serde::Deserialize;

use crate::actions::{ChangesPage, EntrySink, Page, SinkError};
use crate::models::FeedRow;
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

/// Write `n` as a JSON number.
fn number(out: &mut Vec<u8>, n: impl serde::Serialize) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, &n)
}

/// The body of a page, written as the feed reads its entries (an [`EntrySink`]): straight into
/// one buffer, on the blocking pool, each row dropped once written — no page of rows is built,
/// handed across threads and freed there (B3). [`finish`] writes the rest once the cursors are
/// known.
#[derive(Debug, Default)]
pub struct JsonPage {
    out: Vec<u8>,
    entries: usize,
}

impl JsonPage {
    /// A buffer sized for `limit` entries of a few hundred bytes (it grows for larger ones).
    pub fn for_limit(limit: u32) -> Self {
        const ENTRY: usize = 320;
        const MAX_RESERVED: usize = 2 << 20;
        Self {
            out: Vec::with_capacity((limit as usize * ENTRY).min(MAX_RESERVED) + 512),
            entries: 0,
        }
    }

    fn begin(&mut self, resource: &str) -> Result<(), serde_json::Error> {
        self.out.extend_from_slice(b"{\"resource\":");
        string(&mut self.out, resource)?;
        self.out.extend_from_slice(b",\"changes\":[");
        Ok(())
    }

    /// One entry; the payload is stored JSON text this region wrote, spliced in as it is.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        seq: i64,
        entity_id: &str,
        kind: &str,
        hlc: i64,
        origin: &str,
        schema_version: i32,
        payload: &str,
    ) -> Result<(), serde_json::Error> {
        let out = &mut self.out;
        if self.entries > 0 {
            out.push(b',');
        }
        self.entries += 1;
        out.extend_from_slice(b"{\"seq\":");
        number(out, seq)?;
        out.extend_from_slice(b",\"entity_id\":");
        string(out, entity_id)?;
        out.extend_from_slice(b",\"kind\":");
        string(out, kind)?;
        out.extend_from_slice(b",\"hlc\":");
        number(out, hlc)?;
        out.extend_from_slice(b",\"origin\":");
        string(out, origin)?;
        out.extend_from_slice(b",\"schema_version\":");
        number(out, schema_version)?;
        out.extend_from_slice(b",\"payload\":");
        out.extend_from_slice(payload.as_bytes());
        out.push(b'}');
        Ok(())
    }
}

impl EntrySink for JsonPage {
    fn begin(&mut self, resource: &str) -> Result<(), SinkError> {
        JsonPage::begin(self, resource).map_err(Into::into)
    }

    fn entry(&mut self, e: &FeedRow) -> Result<(), SinkError> {
        JsonPage::entry(
            self,
            e.seq,
            &e.entity_id,
            &e.op,
            e.hlc,
            &e.origin_region,
            e.schema_version,
            &e.payload,
        )
        .map_err(Into::into)
    }
}

/// The rest of the body after the entries: the cursors, `has_more`, the schema version and the
/// incarnation. The whole body (the page keeps its other fields for the headers).
pub fn finish(page: &mut Page<JsonPage>) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = std::mem::take(&mut page.changes.out);
    out.extend_from_slice(b"],\"next_cursor\":");
    string(&mut out, &page.next_cursor.encode())?;
    out.extend_from_slice(b",\"has_more\":");
    out.extend_from_slice(if page.has_more { b"true" } else { b"false" });
    out.extend_from_slice(b",\"high_watermark\":");
    string(&mut out, &page.high_watermark.encode())?;
    out.extend_from_slice(b",\"schema_version\":");
    number(&mut out, page.schema_version)?;
    out.extend_from_slice(b",\"incarnation\":");
    string(&mut out, &page.incarnation)?;
    out.push(b'}');
    Ok(out)
}

/// The body of a page read in-process (the same bytes [`JsonPage`] and [`finish`] write).
pub fn render(page: &ChangesPage) -> Result<Vec<u8>, serde_json::Error> {
    let payloads: usize = page.changes.iter().map(|c| c.payload.len() + 200).sum();
    let mut json = JsonPage {
        out: Vec::with_capacity(256 + payloads),
        entries: 0,
    };
    json.begin(&page.resource)?;
    for e in &page.changes {
        json.entry(
            e.seq,
            &e.entity_id,
            &e.op,
            e.hlc,
            &e.origin_region,
            e.schema_version,
            &e.payload,
        )?;
    }
    finish(&mut Page {
        resource: String::new(),
        changes: json,
        next_cursor: page.next_cursor.clone(),
        has_more: page.has_more,
        high_watermark: page.high_watermark.clone(),
        schema_version: page.schema_version,
        incarnation: page.incarnation.clone(),
        policy: page.policy,
    })
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

    /// The body the HTTP answer writes as it reads the entries (`JsonPage` + `finish`) is,
    /// byte for byte, the one `render` writes for the same page.
    #[test]
    fn the_streamed_body_is_the_rendered_one() {
        let entry = |seq: i64, id: &str, payload: &str| ChangeLogEntry {
            resource: "widgets".into(),
            seq,
            entity_id: id.into(),
            op: if seq % 2 == 0 { "delete" } else { "upsert" }.into(),
            payload: payload.into(),
            hlc: 1_000 + seq,
            origin_region: "eu-west".into(),
            schema_version: 3,
            created_at: NaiveDateTime::default(),
        };
        let changes = vec![
            entry(1, "a\"\\\n\u{1}é", r#"{"n":1.5,"s":"x\"y"}"#),
            entry(2, "b", "{}"),
            entry(9, "c", r#"[1,{"k":null}]"#),
        ];
        for changes in [changes.clone(), vec![]] {
            let page = ChangesPage {
                resource: "wid\"gets".into(),
                changes,
                next_cursor: FeedCursor::anchored(9, 1_009, "00ff"),
                has_more: true,
                high_watermark: FeedCursor::anchored(12, 1_012, "00ff"),
                schema_version: 3,
                incarnation: "00ff".into(),
                policy: ship::contracts::ConflictPolicy::DeleteWins,
            };
            let mut sink = JsonPage::for_limit(2);
            EntrySink::begin(&mut sink, &page.resource).unwrap();
            for e in &page.changes {
                let row = FeedRow {
                    seq: e.seq,
                    entity_id: e.entity_id.clone(),
                    op: e.op.clone(),
                    payload: e.payload.clone(),
                    hlc: e.hlc,
                    origin_region: e.origin_region.clone(),
                    schema_version: e.schema_version,
                };
                EntrySink::entry(&mut sink, &row).unwrap();
            }
            let streamed = finish(&mut Page {
                resource: page.resource.clone(),
                changes: sink,
                next_cursor: page.next_cursor.clone(),
                has_more: page.has_more,
                high_watermark: page.high_watermark.clone(),
                schema_version: page.schema_version,
                incarnation: page.incarnation.clone(),
                policy: page.policy,
            })
            .unwrap();
            let rendered = render(&page).unwrap();
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(rendered.clone()).unwrap()
            );
            let body: ChangesPageBody = serde_json::from_slice(&rendered).unwrap();
            assert_eq!(body.changes.len(), page.changes.len());
        }
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
