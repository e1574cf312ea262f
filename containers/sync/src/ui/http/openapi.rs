//! The sync routes in the OpenAPI document (`GET /openapi.json`, docs/PROTOCOL.md): every route
//! [`super::configure`] registers (`crates/app/tests/openapi.rs` fails on one left out), each
//! behind the broker's token (`region_token`), and the digest's answer, which its controller
//! writes as JSON values.

use serde::Deserialize;

use crate::ui::http::controllers;

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        controllers::get_changes::get_changes,
        controllers::get_snapshot::get_snapshot,
        controllers::get_digest::get_digest,
        controllers::apply_ops::apply_ops,
    ),
    tags((
        name = "sync",
        description = "What regions say to each other (docs/PROTOCOL.md): the changes feed, \
                       snapshots, digests and pushed ops of one synced resource, each call \
                       with a token the broker issued for it."
    ))
)]
struct SyncApi;

/// This container's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <SyncApi as utoipa::OpenApi>::openapi()
}

// The controller writes the digest as JSON values: these types are for the document, and
// crates/app/tests/openapi.rs reads real answers into them.
/// The ranges below `prefix`, or (with `rows`) its rows.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum DigestBody {
    Buckets(DigestBucketsBody),
    Rows(DigestRowsBody),
}

/// The non-empty ranges `depth` digits below `prefix`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestBucketsBody {
    pub resource: String,
    pub prefix: String,
    pub buckets: Vec<DigestBucket>,
}

/// The rows of `prefix` (at most 5 000).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestRowsBody {
    pub resource: String,
    pub prefix: String,
    pub rows: Vec<DigestRow>,
}

/// One range of hashed ids.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestBucket {
    /// Lower-case hex digits of the SHA-256 of the entity ids it holds.
    #[schema(example = "3f")]
    pub prefix: String,
    pub count: u64,
    /// The first 16 bytes (hex) of the SHA-256 over its rows' id, `0x00`, hash, `\n`.
    pub hash: String,
}

/// One row of a range.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestRow {
    pub entity_id: String,
    pub hlc: i64,
    pub origin: String,
    /// The first 16 bytes (hex) of the SHA-256 of the canonical JSON of
    /// `{"hlc", "origin", "payload"}`.
    pub hash: String,
    /// With `full`: `upsert` or `delete`.
    #[serde(default)]
    pub kind: Option<crate::ui::http::requests::apply_ops_request::OpKindDoc>,
    /// With `full`: the row's payload, as a snapshot serves it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::actions::get_digest::{Bucket, RowDigest};

    /// The digest rows and buckets, serialized as the controller answers them, read into the
    /// documented shapes (the route itself is read the same way in crates/app/tests/openapi.rs).
    #[test]
    fn digest_answers_are_the_documented_body() {
        let bucket = Bucket {
            prefix: "3f".into(),
            count: 2,
            hash: "ab".into(),
        };
        let row = RowDigest {
            entity_id: "e".into(),
            hlc: 1,
            origin: "eu-west".into(),
            hash: "cd".into(),
            kind: Some("upsert".into()),
            payload: Some(serde_json::json!({"id": "e"})),
        };
        let buckets = serde_json::json!({"resource": "r", "prefix": "", "buckets": [bucket]});
        let rows = serde_json::json!({"resource": "r", "prefix": "3f", "rows": [row]});
        assert!(matches!(
            serde_json::from_value(buckets).unwrap(),
            DigestBody::Buckets(_)
        ));
        assert!(matches!(
            serde_json::from_value(rows).unwrap(),
            DigestBody::Rows(_)
        ));
    }
}
