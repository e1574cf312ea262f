//! FetchDigest: one answer of a peer's `GET /sync/{resource}/digest`, with its size.

use serde_json::Value;
use ship::contracts::{ConflictPolicy, PeerGrant};
use ship::parents::Task;

use crate::actions::get_digest::{Bucket, DigestAnswer, RowDigest};
use crate::errors::SyncError;
use crate::tasks::fetch_changes::get_json;

pub(crate) struct FetchDigestTask;

impl Task for FetchDigestTask {
    const NAME: &'static str = "sync.fetch_digest";
}

impl FetchDigestTask {
    /// The peer's ranges `depth` below `prefix` (`Some`), or the rows of `prefix` (`None`);
    /// and the answer's size in bytes.
    pub(crate) async fn run(
        client: &reqwest::Client,
        peer: &PeerGrant,
        resource: &str,
        prefix: &str,
        depth: Option<usize>,
        (full, policy): (bool, ConflictPolicy),
    ) -> Result<(DigestAnswer, usize), SyncError> {
        let url = format!(
            "{}/sync/{resource}/digest",
            peer.base_url.trim_end_matches('/')
        );
        let mut query = vec![("prefix", prefix.to_string())];
        match depth {
            Some(depth) => query.push(("depth", depth.to_string())),
            None => {
                query.push(("rows", "true".to_string()));
                if full {
                    query.push(("full", "true".to_string()));
                }
            }
        }
        let body: Value = get_json(
            client,
            (&peer.id, &peer.token, "", Some(policy)),
            &url,
            &query,
            "a digest",
        )
        .await?;
        let size = body.to_string().len();
        let refused = |e: serde_json::Error| SyncError::PeerRefused {
            peer: peer.id.clone(),
            status: 200,
            message: format!("the answer is not a digest: {e}"),
        };
        let answer = match depth {
            Some(_) => DigestAnswer::Buckets(
                serde_json::from_value::<Vec<Bucket>>(body["buckets"].clone()).map_err(refused)?,
            ),
            None => DigestAnswer::Rows(
                serde_json::from_value::<Vec<RowDigest>>(body["rows"].clone()).map_err(refused)?,
            ),
        };
        Ok((answer, size))
    }
}
