//! DigestRanges: hashes of a resource's rows over ranges of their hashed ids, for
//! `GET /sync/{resource}/digest` and `regionsync sync verify` (issue 13, verify).
//!
//! A row's **bucket** is the hex SHA-256 of its entity id; a range is every bucket starting
//! with a hex prefix, so ranges nest like a Merkle tree of fan-out 16 per hex digit. A row's
//! **hash** covers its synced content and its version — SHA-256 of the canonical JSON (sorted
//! keys) of `{payload, hlc, origin}` — so a row edited behind the service's back differs too. A
//! range's hash is the SHA-256 of its rows' (id, hash) in id order. Two regions holding the same
//! rows have the same hash for every range; comparing 256 ranges, then only the differing ones
//! one level deeper, finds the differing rows in a few KB.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use ship::contracts::{Change, SyncResource};
use ship::parents::Task;
use ship::AnyConnection;

use crate::errors::SyncError;

/// One range of buckets: its prefix, how many rows, their hash (hex, 16 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Bucket {
    pub prefix: String,
    pub count: u64,
    pub hash: String,
}

/// One row of a range: its id, version and content hash (hex, 16 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RowDigest {
    pub entity_id: String,
    pub hlc: i64,
    pub origin: String,
    pub hash: String,
    /// With `full`: the row as a snapshot serves it (`upsert` or `delete`, and its payload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// The longest prefix asked for (8 hex digits: 4 G ranges).
pub const MAX_PREFIX: usize = 8;
/// Rows per page read from the resource.
const PAGE: i64 = 2_000;

pub(crate) struct DigestRangesTask;

impl Task for DigestRangesTask {
    const NAME: &'static str = "sync.digest_ranges";
}

/// The bucket (hex SHA-256) of an entity id: its range is every prefix of it.
pub fn bucket_of(entity_id: &str) -> String {
    hex::encode(Sha256::digest(entity_id.as_bytes()))
}

fn row_hash(change: &Change, origin: &str) -> Result<String, SyncError> {
    let canonical = serde_json::to_vec(&serde_json::json!({
        "payload": change.payload,
        "hlc": change.version.hlc.as_i64(),
        "origin": origin,
    }))
    .map_err(|e| SyncError::InvalidQuery(format!("a row could not be hashed: {e}")))?;
    Ok(hex::encode(&Sha256::digest(&canonical)[..16]))
}

/// A row's digest (`origin` "" named `region`; `full`: with its kind and payload).
fn digest_row(change: &Change, region: &str, full: bool) -> Result<RowDigest, SyncError> {
    let origin = if change.version.origin.is_empty() {
        region
    } else {
        change.version.origin.as_str()
    };
    Ok(RowDigest {
        entity_id: change.entity_id.clone(),
        hlc: change.version.hlc.as_i64(),
        origin: origin.to_string(),
        hash: row_hash(change, origin)?,
        kind: full.then(|| change.kind.as_str().to_string()),
        payload: full.then(|| change.payload.value().clone()),
    })
}

impl DigestRangesTask {
    /// One row's digest, looked up by id (`None`: no such row here).
    pub(crate) fn row(
        conn: &mut AnyConnection,
        resource: &dyn SyncResource,
        region: &str,
        id: &str,
        full: bool,
    ) -> Result<Option<RowDigest>, SyncError> {
        resource
            .entity(conn, id)?
            .map(|change| digest_row(&change, region, full))
            .transpose()
    }

    /// Every row whose bucket starts with `prefix`, in id order (`origin` "" named `region`).
    fn each_row(
        conn: &mut AnyConnection,
        resource: &dyn SyncResource,
        region: &str,
        prefix: &str,
        full: bool,
        mut visit: impl FnMut(&str, RowDigest),
    ) -> Result<(), SyncError> {
        let mut after: Option<String> = None;
        loop {
            let page = resource.snapshot_page(conn, after.as_deref(), PAGE)?;
            for change in &page {
                let bucket = bucket_of(&change.entity_id);
                if !bucket.starts_with(prefix) {
                    continue;
                }
                visit(&bucket, digest_row(change, region, full)?);
            }
            match page.last() {
                Some(last) if page.len() as i64 == PAGE => after = Some(last.entity_id.clone()),
                _ => return Ok(()),
            }
        }
    }

    /// The non-empty ranges `depth` hex digits below `prefix`, in prefix order.
    pub(crate) fn buckets(
        conn: &mut AnyConnection,
        resource: &dyn SyncResource,
        region: &str,
        prefix: &str,
        depth: usize,
    ) -> Result<Vec<Bucket>, SyncError> {
        let width = (prefix.len() + depth).min(64);
        let mut hashers: BTreeMap<String, (u64, Sha256)> = BTreeMap::new();
        Self::each_row(conn, resource, region, prefix, false, |bucket, row| {
            let (count, hasher) = hashers
                .entry(bucket[..width].to_string())
                .or_insert_with(|| (0, Sha256::new()));
            *count += 1;
            hasher.update(row.entity_id.as_bytes());
            hasher.update([0]);
            hasher.update(row.hash.as_bytes());
            hasher.update([b'\n']);
        })?;
        Ok(hashers
            .into_iter()
            .map(|(prefix, (count, hasher))| Bucket {
                prefix,
                count,
                hash: hex::encode(&hasher.finalize()[..16]),
            })
            .collect())
    }

    /// The rows of the range `prefix`, in id order (`full`: with their kind and payload); at
    /// most `limit` + 1 are collected (the caller refuses more than `limit`).
    pub(crate) fn rows(
        conn: &mut AnyConnection,
        resource: &dyn SyncResource,
        region: &str,
        prefix: &str,
        full: bool,
        limit: usize,
    ) -> Result<Vec<RowDigest>, SyncError> {
        let mut out = Vec::new();
        Self::each_row(conn, resource, region, prefix, full, |_, row| {
            if out.len() <= limit {
                out.push(row);
            }
        })?;
        Ok(out)
    }
}
