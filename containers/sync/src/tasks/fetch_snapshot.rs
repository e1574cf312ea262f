//! FetchSnapshot: one page of a peer's snapshot over HTTP (`GET /sync/{resource}/snapshot`).

use serde::Deserialize;
use serde_json::Value;
use ship::contracts::{ConflictPolicy, PeerGrant};
use ship::parents::Task;

use crate::errors::SyncError;
use crate::tasks::fetch_changes::get_json;

/// The part of a snapshot answer the bootstrap uses.
#[derive(Debug, Deserialize)]
pub struct FetchedSnapshot {
    pub rows: Vec<Value>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
    pub watermark: String,
    pub schema_version: u32,
    /// The incarnation of the peer's database (ADR 0012); absent from older peers.
    #[serde(default)]
    pub incarnation: Option<String>,
    /// First page: how many rows the snapshot holds (when the peer can tell).
    #[serde(default)]
    pub total_rows: Option<i64>,
}

pub(crate) struct FetchSnapshotTask;

impl Task for FetchSnapshotTask {
    const NAME: &'static str = "sync.fetch_snapshot";
}

impl FetchSnapshotTask {
    pub(crate) async fn run(
        client: &reqwest::Client,
        peer: &PeerGrant,
        resource: &str,
        after: Option<&str>,
        limit: u32,
        (ours, policy): (&str, ConflictPolicy),
    ) -> Result<FetchedSnapshot, SyncError> {
        let url = format!(
            "{}/sync/{resource}/snapshot",
            peer.base_url.trim_end_matches('/')
        );
        let mut query = vec![("limit", limit.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        get_json(
            client,
            (&peer.id, &peer.token, ours, Some(policy)),
            &url,
            &query,
            "a snapshot page",
        )
        .await
    }
}
