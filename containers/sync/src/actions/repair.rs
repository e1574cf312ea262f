//! Repair: make this region take a peer's side of the rows `sync verify` found different.
//!
//! - The peer holds a **newer version** (or the row is absent here): its row is fetched
//!   (`GET /sync/{resource}/digest?rows=true&full=true` over the row's own small range) and
//!   applied by last-writer-wins, exactly as a pulled op — nothing older overwrites anything.
//! - **This region** holds the newer version: nothing is done here; the peer takes it by running
//!   the repair on its side (`regionsync sync repair --peer <this region>` there), so a repair
//!   never pushes another region's change (a push speaks only for its sender).
//! - **Same version, other content** (an edit behind the service's back): last-writer-wins
//!   cannot choose. The content of the side `prefer` names is re-asserted here as a new write
//!   of this region with a fresh clock (greater than both versions), which then replicates to
//!   every region like any local write.

use std::sync::Arc;

use serde_json::{json, Value};
use ship::contracts::{Hlc, HybridClock, PeerDirectory, Refresh, ResourceRegistry};
use ship::parents::Action;
use ship::DbPool;

use crate::actions::get_digest::{DigestAnswer, RowDigest};
use crate::actions::verify::Divergence;
use crate::errors::SyncError;
use crate::tasks::apply_changes::ApplyChangesTask;
use crate::tasks::digest_ranges::{bucket_of, DigestRangesTask};
use crate::tasks::fetch_digest::FetchDigestTask;
use crate::tasks::validate_ops::{Origins, ValidateOpsTask};

/// Whose content wins where both hold the same version with different content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    Peer,
    Local,
}

pub struct RepairInput {
    pub peer: String,
    pub resource: String,
    /// What `sync verify` found.
    pub differing: Vec<Divergence>,
    pub prefer: Prefer,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairSummary {
    /// The peer's newer rows applied here.
    pub taken: usize,
    /// Rows whose content was re-asserted as a new write here (same version, other content).
    pub reasserted: usize,
    /// Rows this region holds newer: the peer takes them by repairing on its side.
    pub theirs_to_take: usize,
    /// Rows that changed (here or at the peer) since the verify: left alone, verify again.
    pub changed: usize,
}

pub struct RepairAction {
    pool: DbPool,
    registry: ResourceRegistry,
    clock: Arc<HybridClock>,
    region_id: String,
    client: reqwest::Client,
    directory: Arc<dyn PeerDirectory>,
}

impl RepairAction {
    pub fn new(
        pool: DbPool,
        registry: ResourceRegistry,
        clock: Arc<HybridClock>,
        region_id: impl Into<String>,
        client: reqwest::Client,
        directory: Arc<dyn PeerDirectory>,
    ) -> Self {
        Self {
            pool,
            registry,
            clock,
            region_id: region_id.into(),
            client,
            directory,
        }
    }
}

/// The row `id` among `rows`, as an op (`None`: not there).
fn row_op(rows: &[RowDigest], id: &str, version: Option<(i64, &str)>) -> Option<Value> {
    let row = rows.iter().find(|r| r.entity_id == id)?;
    let (hlc, origin) = version.unwrap_or((row.hlc, row.origin.as_str()));
    Some(json!({
        "op_id": "repair",
        "entity_id": row.entity_id,
        "kind": row.kind,
        "hlc": hlc,
        "origin": origin,
        "payload": row.payload,
    }))
}

impl Action for RepairAction {
    const NAME: &'static str = "sync.repair";
    type Input = RepairInput;
    type Output = RepairSummary;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.repair", skip_all, fields(peer = %input.peer, resource = %input.resource))]
    async fn run(&self, input: RepairInput) -> Result<RepairSummary, SyncError> {
        let resource = super::synced(&self.registry, &input.resource)?;
        let grant = self.directory.grant(&input.peer, Refresh::IfNeeded).await?;
        let mut summary = RepairSummary::default();
        for d in input.differing {
            let same_version = d.local.is_some() && d.local == d.remote;
            let peer_newer = match (&d.local, &d.remote) {
                (None, Some(_)) => true,
                (Some(l), Some(r)) => (r.0, &r.1) > (l.0, &l.1),
                _ => false,
            };
            if !same_version && !peer_newer {
                summary.theirs_to_take += 1;
                continue;
            }
            let rows = if same_version && input.prefer == Prefer::Local {
                // This region's row, by id.
                let (res, region, id) = (
                    Arc::clone(&resource),
                    self.region_id.clone(),
                    d.entity_id.clone(),
                );
                self.pool
                    .run(move |conn| DigestRangesTask::row(conn, res.as_ref(), &region, &id, true))
                    .await?
                    .into_iter()
                    .collect()
            } else {
                // The peer's: the row's own small range (one or a few rows).
                let prefix = &bucket_of(&d.entity_id)[..8];
                match FetchDigestTask::run(
                    &self.client,
                    &grant,
                    &input.resource,
                    prefix,
                    None,
                    true,
                )
                .await?
                {
                    (DigestAnswer::Rows(rows), _) => rows,
                    _ => Vec::new(),
                }
            };
            let stamp = if same_version {
                // Greater than both versions and everything this region has seen.
                let held = d.local.as_ref().map_or(0, |v| v.0);
                let now = self.clock.now();
                let fresh = Hlc::from_i64(held).map_or(now, |h| now.max(h.successor()));
                let _ = self.clock.observe(fresh);
                Some((fresh.as_i64(), self.region_id.as_str()))
            } else {
                None
            };
            // The side whose content is taken must still hold the version verify saw: a re-assert
            // (a fresh clock) would otherwise put old content over a newer write.
            let seen = if same_version && input.prefer == Prefer::Local {
                &d.local
            } else {
                &d.remote
            };
            let now_held = rows
                .iter()
                .find(|r| r.entity_id == d.entity_id)
                .map(|r| (r.hlc, r.origin.clone()));
            let Some(op) = row_op(&rows, &d.entity_id, stamp).filter(|_| &now_held == seen) else {
                summary.changed += 1;
                continue;
            };
            let valid = ValidateOpsTask::run(resource.as_ref(), &self.clock, Origins::Any, &[op])
                .map_err(|errors| SyncError::PeerSentInvalid {
                peer: input.peer.clone(),
                errors,
            })?;
            let (res, region, id, before) = (
                Arc::clone(&resource),
                self.region_id.clone(),
                d.entity_id.clone(),
                d.local.clone(),
            );
            let applied = self
                .pool
                .transaction(move |conn| {
                    if same_version {
                        // The row here must still be at the version verify saw.
                        let here = DigestRangesTask::row(conn, res.as_ref(), &region, &id, false)?
                            .map(|r| (r.hlc, r.origin));
                        if here != before {
                            return Ok::<_, SyncError>(false);
                        }
                    }
                    ApplyChangesTask::run(conn, res.as_ref(), &valid)?;
                    Ok(true)
                })
                .await?;
            match (applied, same_version) {
                (false, _) => summary.changed += 1,
                (true, true) => summary.reasserted += 1,
                (true, false) => summary.taken += 1,
            }
        }
        Ok(summary)
    }
}
