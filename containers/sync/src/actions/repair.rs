//! Repair: make this region and a peer agree on the rows `sync verify` found different, in one
//! run at either of them — afterwards `sync verify` is clean at both (writes in flight aside).
//!
//! - The peer holds a **newer version** (or the row is absent here): its row is fetched
//!   (`GET /sync/{resource}/digest?rows=true&full=true` over the row's own small range) and
//!   applied here by last-writer-wins, exactly as a pulled op — nothing older overwrites anything.
//! - **This region** holds the newer version (or the peer lacks the row), and it is this region's
//!   own write (origin this region): the row is sent to the peer through the normal ops path
//!   (`POST /sync/{resource}/ops`), where it applies by last-writer-wins like any push.
//! - This region holds the newer version of **a third region's write**: a push speaks only for
//!   its sender (the peer refuses any other origin, `origin_not_sender`), and no pull brings it to
//!   the peer either (a row that got here behind the service's back, or a change the peer lost
//!   long ago, is in no feed it still reads). So its content is re-asserted here as a new write of
//!   this region with a fresh clock (greater than both versions): a changelog entry of this
//!   region's origin, which the peer is sent at once and every other region gets through the
//!   delivery streams and pulls like any local write. The row keeps its content; its version is
//!   now this region's.
//! - **Same version, other content** (an edit behind the service's back): last-writer-wins
//!   cannot choose. The content of the side `prefer` names is re-asserted here the same way,
//!   and sent to the peer.
//!
//! A row is acted on only while both sides still hold the versions verify saw (the peer's row is
//! fetched, this region's re-read, and a re-assert checks again inside its transaction): a row
//! written since at either side is left alone (`changed`; verify again). Without that check a
//! re-assert's fresh clock would put old content over the newer write.
//!
//! What goes to the peer leaves in batches of at most [`SEND_BATCH_OPS`] ops (halved on 413),
//! with one forced token refresh on `401 token_expired`. A failure ends the repair with the
//! error; what was taken or re-asserted by then stays, and a second run sends the rest (a
//! re-asserted row is by then this region's own newer row).

use std::sync::Arc;

use serde_json::{json, Value};
use ship::contracts::{
    ConflictPolicy, Hlc, HybridClock, OpKind, PeerDirectory, PeerGrant, Refresh, ResourceRegistry,
};
use ship::parents::Action;
use ship::DbPool;

use crate::actions::get_digest::{DigestAnswer, RowDigest, MAX_PREFIX};
use crate::actions::verify::Divergence;
use crate::errors::SyncError;
use crate::tasks::apply_changes::{ApplyChangesTask, OpStatus};
use crate::tasks::digest_ranges::{bucket_of, DigestRangesTask};
use crate::tasks::fetch_digest::FetchDigestTask;
use crate::tasks::send_ops::{self, SendOpsTask, SendOutcome};
use crate::tasks::validate_ops::{Origins, ValidateOpsTask};

/// The most ops one batch to the peer carries: within the receiver's `sync.max_ops_per_batch`
/// (1000 by default) and the dispatcher's own `sync.push_batch_ops` (500).
pub const SEND_BATCH_OPS: usize = 500;

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
    /// Rows re-asserted as a new write of this region (same version but other content, or a
    /// third region's newer write the peer lacks), and sent to the peer.
    pub reasserted: usize,
    /// This region's own newer rows sent to the peer (`POST /sync/{resource}/ops`).
    pub sent: usize,
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
    /// gzip the bodies sent to the peer.
    gzip: bool,
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
            gzip: true,
        }
    }

    /// Send the repaired rows plain (`sync.compression = false`); gzipped by default.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }
}

/// What one differing row needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// The peer's newer version, applied here.
    Take,
    /// This region's own newer version, sent to the peer.
    Send,
    /// A new write of this region with the content of the peer (`true`) or of this region.
    Reassert { peer_content: bool },
}

impl Plan {
    /// `tombstones`: whether the row is a tombstone here and at the peer (`None`: no row), for
    /// `policy` to rank the two versions as the apply does.
    fn of(
        d: &Divergence,
        tombstones: (Option<bool>, Option<bool>),
        policy: ConflictPolicy,
        region: &str,
        prefer: Prefer,
    ) -> Plan {
        let first =
            |tomb: Option<bool>| tomb.unwrap_or(false) && policy == ConflictPolicy::DeleteWins;
        let (here, there) = (first(tombstones.0), first(tombstones.1));
        match (&d.local, &d.remote) {
            (Some(l), Some(r)) if l == r => Plan::Reassert {
                peer_content: prefer == Prefer::Peer,
            },
            (None, _) => Plan::Take,
            (Some(l), Some(r)) if (there, r.0, &r.1) > (here, l.0, &l.1) => Plan::Take,
            (Some(l), _) if l.1 == region => Plan::Send,
            (Some(_), _) => Plan::Reassert {
                peer_content: false,
            },
        }
    }

    /// The row's content comes from the peer.
    fn content_from_peer(self) -> bool {
        matches!(self, Plan::Take | Plan::Reassert { peer_content: true })
    }
}

/// Whether `id` is a tombstone among `rows` (`None`: not there).
fn tombstone_of(rows: &[RowDigest], id: &str) -> Option<bool> {
    rows.iter()
        .find(|r| r.entity_id == id)
        .map(|r| r.kind.as_deref() == Some(OpKind::Delete.as_str()))
}

/// The version `id` has among `rows` (`None`: not there).
fn version_of(rows: &[RowDigest], id: &str) -> Option<(i64, String)> {
    rows.iter()
        .find(|r| r.entity_id == id)
        .map(|r| (r.hlc, r.origin.clone()))
}

/// The row `id` among `rows`, as an op (`None`: not there), with its own version or `version`.
fn row_op(rows: &[RowDigest], id: &str, version: Option<(i64, &str)>) -> Option<Value> {
    let row = rows.iter().find(|r| r.entity_id == id)?;
    let (hlc, origin) = version.unwrap_or((row.hlc, row.origin.as_str()));
    Some(json!({
        // At most 32 + 2 + 16 bytes: within the receiver's 64.
        "op_id": format!("{origin}-r{hlc:x}"),
        "entity_id": row.entity_id,
        "kind": row.kind,
        "hlc": hlc,
        "origin": origin,
        "payload": row.payload,
    }))
}

/// What is to be sent to the peer: the op, and whether it counts as `sent` (a re-asserted row
/// was counted when it was written).
type Outgoing = Vec<(Value, bool)>;

impl RepairAction {
    /// The peer's rows of `id`'s own range (8 hex digits: one row, or a few); one forced token
    /// refresh on `token_expired`.
    async fn peer_rows(
        &self,
        grant: &mut PeerGrant,
        peer: &str,
        resource: &str,
        id: &str,
        full: bool,
    ) -> Result<Vec<RowDigest>, SyncError> {
        let bucket = bucket_of(id);
        let prefix = &bucket[..MAX_PREFIX];
        let mut refreshed = false;
        loop {
            let policy = self.registry.policy(resource);
            match FetchDigestTask::run(&self.client, grant, resource, prefix, None, (full, policy))
                .await
            {
                Ok((DigestAnswer::Rows(rows), _)) => return Ok(rows),
                Ok((DigestAnswer::Buckets(_), _)) => {
                    return Err(SyncError::PeerRefused {
                        peer: peer.to_string(),
                        status: 200,
                        message: "ranges where rows were asked for".into(),
                    })
                }
                Err(SyncError::PeerAuthRefused { code, .. })
                    if code == "token_expired" && !refreshed =>
                {
                    refreshed = true;
                    *grant = self.directory.grant(peer, Refresh::Force).await?;
                }
                Err(e @ SyncError::PeerUnreachable { .. }) => {
                    self.directory.invalidate(peer);
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// This region's row `id`, with its kind and payload.
    async fn local_rows(
        &self,
        resource: &Arc<dyn ship::contracts::SyncResource>,
        id: &str,
    ) -> Result<Vec<RowDigest>, SyncError> {
        let (res, region, id) = (Arc::clone(resource), self.region_id.clone(), id.to_string());
        Ok(self
            .pool
            .run(move |conn| DigestRangesTask::row(conn, res.as_ref(), &region, &id, true))
            .await?
            .into_iter()
            .collect())
    }

    /// Send `ops` (all of this region's origin) to the peer in batches; how many count as sent.
    async fn send(
        &self,
        grant: &mut PeerGrant,
        peer: &str,
        resource: &str,
        schema_version: u32,
        ops: Outgoing,
    ) -> Result<usize, SyncError> {
        let refused = |status: u16, message: String| SyncError::PeerRefused {
            peer: peer.to_string(),
            status,
            message,
        };
        let mut sent = 0;
        // A stack: the next batch on top.
        let mut pending: Vec<Outgoing> = Vec::new();
        let mut ops = ops;
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(SEND_BATCH_OPS));
            pending.push(ops);
            ops = rest;
        }
        pending.reverse();
        let ours = self
            .pool
            .run(|conn| ship::db::incarnation(conn).map(|i| i.id))
            .await?;
        let mut refreshed = false;
        while let Some(batch) = pending.pop() {
            let wire: Vec<Value> = batch.iter().map(|(op, _)| op.clone()).collect();
            let first = wire.first().and_then(|op| op["hlc"].as_i64()).unwrap_or(0);
            let batch_id = format!("repair-{first:x}-{}", wire.len());
            let body = send_ops::body_of_ops(&self.region_id, &batch_id, schema_version, &wire)
                .map_err(|e| {
                    SyncError::InvalidBatch(format!("a repair batch could not be encoded: {e}"))
                })?;
            let policy = self.registry.policy(resource);
            let send = SendOpsTask::run(
                &self.client,
                grant,
                resource,
                body,
                &ours,
                self.gzip,
                policy,
            );
            match send.await {
                SendOutcome::Applied => {
                    refreshed = false;
                    sent += batch.iter().filter(|(_, counts)| *counts).count();
                }
                SendOutcome::TooLarge if batch.len() > 1 => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
                SendOutcome::TooLarge => {
                    return Err(refused(413, "one op is over the peer's limit".into()));
                }
                SendOutcome::TokenExpired if !refreshed => {
                    refreshed = true;
                    *grant = self.directory.grant(peer, Refresh::Force).await?;
                    pending.push(batch);
                }
                SendOutcome::TokenExpired => {
                    return Err(SyncError::PeerAuthRefused {
                        peer: peer.to_string(),
                        code: "token_expired".into(),
                        message: "401 token_expired after a refresh".into(),
                    });
                }
                SendOutcome::InvalidOps(bad) => {
                    let ids: Vec<String> = bad
                        .iter()
                        .filter_map(|&i| batch.get(i))
                        .filter_map(|(op, _)| op["entity_id"].as_str().map(str::to_string))
                        .take(5)
                        .collect();
                    return Err(refused(
                        422,
                        format!(
                            "the peer refused {} op(s) as invalid (ids {})",
                            bad.len(),
                            ids.join(", ")
                        ),
                    ));
                }
                SendOutcome::ClockDrift(reason) => return Err(refused(422, reason)),
                SendOutcome::PolicyMismatch(reason) => return Err(refused(409, reason)),
                SendOutcome::Unreachable { reason, .. } => {
                    self.directory.invalidate(peer);
                    return Err(SyncError::PeerUnreachable {
                        peer: peer.to_string(),
                        reason,
                    });
                }
                SendOutcome::Failed(reason) => {
                    // "<status> <code>: <message>"
                    let status = reason
                        .split(' ')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    return Err(refused(status, reason));
                }
            }
        }
        Ok(sent)
    }
}

impl Action for RepairAction {
    const NAME: &'static str = "sync.repair";
    type Input = RepairInput;
    type Output = RepairSummary;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.repair", skip_all, fields(peer = %input.peer, resource = %input.resource))]
    async fn run(&self, input: RepairInput) -> Result<RepairSummary, SyncError> {
        let resource = super::synced(&self.registry, &input.resource)?;
        let schema_version = resource.schema_version();
        let mut grant = self.directory.grant(&input.peer, Refresh::IfNeeded).await?;
        let (peer, name) = (input.peer.as_str(), input.resource.as_str());
        let mut summary = RepairSummary::default();
        let mut outgoing: Outgoing = Vec::new();
        let policy = self.registry.policy(name);
        for d in input.differing {
            let id = d.entity_id.as_str();
            // Both sides must still hold the versions verify saw; their kinds decide the plan
            // under `delete_wins`.
            let at_peer = self.peer_rows(&mut grant, peer, name, id, true).await?;
            if version_of(&at_peer, id) != d.remote {
                summary.changed += 1;
                continue;
            }
            let here = self.local_rows(&resource, id).await?;
            if version_of(&here, id) != d.local {
                summary.changed += 1;
                continue;
            }
            let tombstones = (tombstone_of(&here, id), tombstone_of(&at_peer, id));
            let plan = Plan::of(&d, tombstones, policy, &self.region_id, input.prefer);
            let rows = if plan.content_from_peer() {
                at_peer
            } else {
                here
            };
            let stamp = match plan {
                Plan::Reassert { .. } => {
                    // Greater than both versions and everything this region has seen.
                    let held = d.local.iter().chain(&d.remote).map(|v| v.0).max();
                    let now = self.clock.now();
                    let fresh = held
                        .and_then(|h| Hlc::from_i64(h).ok())
                        .map_or(now, |h| now.max(h.successor()));
                    let _ = self.clock.observe(fresh);
                    Some((fresh.as_i64(), self.region_id.as_str()))
                }
                Plan::Take | Plan::Send => None,
            };
            let Some(op) = row_op(&rows, id, stamp) else {
                summary.changed += 1;
                continue;
            };
            if plan == Plan::Send {
                // A push speaks only for its sender: this row is this region's own write.
                outgoing.push((op, true));
            } else {
                let mut valid = ValidateOpsTask::run(
                    resource.as_ref(),
                    &self.clock,
                    Origins::Any,
                    std::slice::from_ref(&op),
                )
                .map_err(|errors| {
                    if plan.content_from_peer() {
                        SyncError::PeerSentInvalid {
                            peer: peer.to_string(),
                            errors,
                        }
                    } else {
                        // This region's own row does not pass its own validation.
                        SyncError::InvalidOps { errors }
                    }
                })?;
                let (res, region, entity, before) = (
                    Arc::clone(&resource),
                    self.region_id.clone(),
                    d.entity_id.clone(),
                    d.local.clone(),
                );
                let reassert = stamp.is_some();
                let registry = self.registry.clone();
                let applied = self
                    .pool
                    .transaction(move |conn| {
                        if reassert {
                            // The row here must still be at the version verify saw.
                            let here =
                                DigestRangesTask::row(conn, res.as_ref(), &region, &entity, false)?
                                    .map(|r| (r.hlc, r.origin));
                            if here != before {
                                return Ok::<_, SyncError>(false);
                            }
                        }
                        // One entity at a time: a row of its own.
                        let statuses =
                            ApplyChangesTask::run(conn, &registry, res.as_ref(), &mut valid, None)?;
                        Ok(statuses.first() == Some(&OpStatus::Applied))
                    })
                    .await?;
                match (applied, reassert) {
                    (false, _) => summary.changed += 1,
                    (true, true) => {
                        summary.reasserted += 1;
                        // Now this region's own newer write: the peer gets it at once.
                        outgoing.push((op, false));
                    }
                    (true, false) => summary.taken += 1,
                }
            }
            if outgoing.len() >= SEND_BATCH_OPS {
                let batch = std::mem::take(&mut outgoing);
                summary.sent += self
                    .send(&mut grant, peer, name, schema_version, batch)
                    .await?;
            }
        }
        if !outgoing.is_empty() {
            summary.sent += self
                .send(&mut grant, peer, name, schema_version, outgoing)
                .await?;
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(local: Option<(i64, &str)>, remote: Option<(i64, &str)>) -> Divergence {
        Divergence {
            entity_id: "e".into(),
            local: local.map(|(h, o)| (h, o.to_string())),
            remote: remote.map(|(h, o)| (h, o.to_string())),
        }
    }

    /// Only this region's own newer rows are sent; a third region's newer row is re-asserted
    /// (a push may not speak for it); the peer's newer rows are taken.
    #[test]
    fn each_difference_gets_its_plan() {
        let live = (Some(false), Some(false));
        let plan = |local, remote| {
            Plan::of(
                &d(local, remote),
                live,
                ConflictPolicy::Lww,
                "eu-west",
                Prefer::Peer,
            )
        };
        assert_eq!(plan(None, Some((5, "us-east"))), Plan::Take);
        assert_eq!(plan(Some((4, "eu-west")), Some((5, "us-east"))), Plan::Take);
        assert_eq!(plan(Some((5, "eu-west")), Some((4, "us-east"))), Plan::Send);
        assert_eq!(plan(Some((5, "eu-west")), None), Plan::Send);
        let third = Plan::Reassert {
            peer_content: false,
        };
        assert_eq!(plan(Some((5, "ap-south")), Some((4, "eu-west"))), third);
        assert_eq!(plan(Some((5, "ap-south")), None), third);
        // A tie on the clock is ordered by origin, as last-writer-wins orders it.
        assert_eq!(plan(Some((5, "eu-west")), Some((5, "us-east"))), Plan::Take);
        assert_eq!(plan(Some((5, "us-east")), Some((5, "eu-west"))), third);
        let same = |prefer| {
            let d = d(Some((5, "x")), Some((5, "x")));
            Plan::of(&d, live, ConflictPolicy::Lww, "eu-west", prefer)
        };
        assert_eq!(same(Prefer::Peer), Plan::Reassert { peer_content: true });
        assert_eq!(
            same(Prefer::Local),
            Plan::Reassert {
                peer_content: false
            }
        );
    }

    /// Under `delete_wins` a tombstone ranks above any live version, on either side (review:
    /// the plan compared versions only, so a repair took a live row the apply then refused, or
    /// sent one the peer refused, every run).
    #[test]
    fn under_delete_wins_a_tombstone_side_wins_the_plan() {
        let plan = |tombstones, local, remote, policy| {
            Plan::of(
                &d(local, remote),
                tombstones,
                policy,
                "eu-west",
                Prefer::Peer,
            )
        };
        let dw = ConflictPolicy::DeleteWins;
        // Our tombstone (older) against the peer's later live row: ours goes to the peer.
        let ours_deleted = (Some(true), Some(false));
        assert_eq!(
            plan(ours_deleted, Some((4, "eu-west")), Some((5, "us-east")), dw),
            Plan::Send
        );
        assert_eq!(
            plan(
                ours_deleted,
                Some((4, "eu-west")),
                Some((5, "us-east")),
                ConflictPolicy::Lww
            ),
            Plan::Take
        );
        // A third region's tombstone here: re-asserted, not replaced by the peer's live row.
        assert_eq!(
            plan(
                ours_deleted,
                Some((4, "ap-south")),
                Some((5, "us-east")),
                dw
            ),
            Plan::Reassert {
                peer_content: false
            }
        );
        // The peer's tombstone against our later live row: taken.
        let theirs_deleted = (Some(false), Some(true));
        assert_eq!(
            plan(
                theirs_deleted,
                Some((5, "eu-west")),
                Some((4, "us-east")),
                dw
            ),
            Plan::Take
        );
        assert_eq!(
            plan(
                theirs_deleted,
                Some((5, "eu-west")),
                Some((4, "us-east")),
                ConflictPolicy::Lww
            ),
            Plan::Send
        );
        // Two tombstones: the clock decides.
        let both = (Some(true), Some(true));
        assert_eq!(
            plan(both, Some((5, "eu-west")), Some((4, "us-east")), dw),
            Plan::Send
        );
    }

    #[test]
    fn an_op_id_fits_the_receivers_limit() {
        let row = RowDigest {
            entity_id: "e".into(),
            hlc: i64::MAX,
            origin: "r".repeat(32),
            hash: String::new(),
            kind: Some("upsert".into()),
            payload: Some(json!({})),
        };
        let op = row_op(&[row], "e", None).unwrap_or_default();
        let id = op["op_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty() && id.len() <= 64, "{id}");
    }
}
