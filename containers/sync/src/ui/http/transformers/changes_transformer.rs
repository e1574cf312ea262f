//! `ChangesPage` → the JSON of `GET /sync/{resource}/changes` (docs/PROTOCOL.md).
//!
//! The body is written directly. A payload is stored JSON text that this region produced from a
//! `serde_json::Value` (local writes and applied ops alike), so it is spliced in as it is — the
//! feed is the hot path of every pull, and parsing each payload only to print it again doubled
//! its cost.

use std::io::Write;

use crate::actions::ChangesPage;

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
}
