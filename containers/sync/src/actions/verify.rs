//! Verify: do this region and a peer hold the same rows of a resource? Compare the hashes of
//! 256 ranges of hashed ids (`GET /sync/{resource}/digest`), descend only into the ranges that
//! differ, and list the rows of the small ones: the ids that differ, with both versions.
//! Identical regions exchange one answer of 256 hashes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ship::contracts::{PeerDirectory, Refresh, ResourceRegistry};
use ship::parents::Action;
use ship::DbPool;

use crate::actions::get_digest::{Bucket, DigestAnswer, RowDigest, MAX_PREFIX};
use crate::errors::SyncError;
use crate::tasks::digest_ranges::DigestRangesTask;
use crate::tasks::fetch_digest::FetchDigestTask;

/// Hex digits compared per step (256 ranges).
const STEP: usize = 2;
/// A differing range with at most this many rows (both sides) is listed row by row.
const LIST_AT: u64 = 256;

pub struct VerifyInput {
    pub peer: String,
    pub resource: String,
}

/// One row that differs: its id and the version each side holds (`None`: absent there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub entity_id: String,
    pub local: Option<(i64, String)>,
    pub remote: Option<(i64, String)>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    pub rows_local: u64,
    pub rows_remote: u64,
    pub differing: Vec<Divergence>,
    /// Requests to the peer and the bytes of their answers.
    pub requests: usize,
    pub bytes: usize,
}

pub struct VerifyAction {
    pool: DbPool,
    registry: ResourceRegistry,
    region_id: String,
    client: reqwest::Client,
    directory: Arc<dyn PeerDirectory>,
}

impl VerifyAction {
    pub fn new(
        pool: DbPool,
        registry: ResourceRegistry,
        region_id: impl Into<String>,
        client: reqwest::Client,
        directory: Arc<dyn PeerDirectory>,
    ) -> Self {
        Self {
            pool,
            registry,
            region_id: region_id.into(),
            client,
            directory,
        }
    }

    async fn local(
        &self,
        resource: &str,
        prefix: &str,
        depth: Option<usize>,
    ) -> Result<DigestAnswer, SyncError> {
        let resource = super::synced(&self.registry, resource)?;
        let (region, prefix) = (self.region_id.clone(), prefix.to_string());
        self.pool
            .run(move |conn| match depth {
                Some(depth) => {
                    DigestRangesTask::buckets(conn, resource.as_ref(), &region, &prefix, depth)
                        .map(DigestAnswer::Buckets)
                }
                None => DigestRangesTask::rows(
                    conn,
                    resource.as_ref(),
                    &region,
                    &prefix,
                    false,
                    crate::actions::get_digest::MAX_ROWS,
                )
                .map(DigestAnswer::Rows),
            })
            .await
    }
}

fn by_prefix(buckets: Vec<Bucket>) -> BTreeMap<String, Bucket> {
    buckets.into_iter().map(|b| (b.prefix.clone(), b)).collect()
}

fn by_id(rows: Vec<RowDigest>) -> BTreeMap<String, RowDigest> {
    rows.into_iter().map(|r| (r.entity_id.clone(), r)).collect()
}

impl Action for VerifyAction {
    const NAME: &'static str = "sync.verify";
    type Input = VerifyInput;
    type Output = VerifySummary;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.verify", skip_all, fields(peer = %input.peer, resource = %input.resource))]
    async fn run(&self, input: VerifyInput) -> Result<VerifySummary, SyncError> {
        let grant = self.directory.grant(&input.peer, Refresh::IfNeeded).await?;
        let name = input.resource.as_str();
        let policy = self.registry.policy(name);
        let mut summary = VerifySummary::default();
        let mut ranges = vec![String::new()];
        let mut listed = Vec::new();
        while let Some(prefix) = ranges.pop() {
            let DigestAnswer::Buckets(local) = self.local(name, &prefix, Some(STEP)).await? else {
                continue;
            };
            let (remote, bytes) = FetchDigestTask::run(
                &self.client,
                &grant,
                name,
                &prefix,
                Some(STEP),
                (false, policy),
            )
            .await?;
            summary.requests += 1;
            summary.bytes += bytes;
            let DigestAnswer::Buckets(remote) = remote else {
                continue;
            };
            if prefix.is_empty() {
                summary.rows_local = local.iter().map(|b| b.count).sum();
                summary.rows_remote = remote.iter().map(|b| b.count).sum();
            }
            let (local, remote) = (by_prefix(local), by_prefix(remote));
            let keys: BTreeSet<&String> = local.keys().chain(remote.keys()).collect();
            for key in keys {
                let (l, r) = (local.get(key), remote.get(key));
                if l.map(|b| &b.hash) == r.map(|b| &b.hash) {
                    continue;
                }
                let rows = l.map_or(0, |b| b.count) + r.map_or(0, |b| b.count);
                if rows <= LIST_AT || key.len() + STEP > MAX_PREFIX {
                    listed.push(key.clone());
                } else {
                    ranges.push(key.clone());
                }
            }
        }
        for prefix in listed {
            let DigestAnswer::Rows(local) = self.local(name, &prefix, None).await? else {
                continue;
            };
            let (remote, bytes) =
                FetchDigestTask::run(&self.client, &grant, name, &prefix, None, (false, policy))
                    .await?;
            summary.requests += 1;
            summary.bytes += bytes;
            let DigestAnswer::Rows(remote) = remote else {
                continue;
            };
            let (local, remote) = (by_id(local), by_id(remote));
            let ids: BTreeSet<&String> = local.keys().chain(remote.keys()).collect();
            for id in ids {
                let (l, r) = (local.get(id), remote.get(id));
                if l.map(|x| &x.hash) != r.map(|x| &x.hash) {
                    summary.differing.push(Divergence {
                        entity_id: id.clone(),
                        local: l.map(|x| (x.hlc, x.origin.clone())),
                        remote: r.map(|x| (x.hlc, x.origin.clone())),
                    });
                }
            }
        }
        summary
            .differing
            .sort_by(|a, b| a.entity_id.cmp(&b.entity_id));
        // The last comparison is what the `divergence` alert and /metrics report.
        let (peer, resource) = (input.peer.clone(), input.resource.clone());
        let (differing, rows) = (
            summary.differing.len() as i64,
            (summary.rows_local as i64, summary.rows_remote as i64),
        );
        self.pool
            .transaction(move |conn| {
                crate::data::verify_results::record(conn, &peer, &resource, differing, rows)
                    .map_err(SyncError::from)
            })
            .await?;
        Ok(summary)
    }
}
