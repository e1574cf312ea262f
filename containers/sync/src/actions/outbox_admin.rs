//! The operator's view of the outbox and the peers (`regionsync outbox …`, `sync status`).

use ship::parents::Action;
use ship::DbPool;

pub use crate::data::outbox::EntryRow;
use crate::data::{delivery, feed_acks, outbox};
use crate::errors::SyncError;
use crate::tasks::peer_status::PeerStatusTask;

pub use crate::tasks::peer_status::PeerStatus;

pub struct SyncStatusAction {
    pool: DbPool,
    region_id: String,
}

impl SyncStatusAction {
    /// `region_id`: this region (the origin of the changes its streams deliver).
    pub fn new(pool: DbPool, region_id: impl Into<String>) -> Self {
        Self {
            pool,
            region_id: region_id.into(),
        }
    }
}

impl Action for SyncStatusAction {
    const NAME: &'static str = "sync.status";
    type Input = ();
    type Output = Vec<PeerStatus>;
    type Error = SyncError;

    async fn run(&self, _input: ()) -> Result<Vec<PeerStatus>, SyncError> {
        self.pool
            .run({
                let region = self.region_id.clone();
                move |conn| PeerStatusTask::run(conn, &region, true).map_err(SyncError::from)
            })
            .await
    }
}

/// What `GET /metrics` reports of sync: each peer's status (without the delivered count, a
/// scan of the changelog), the alerts firing now, as (kind, subject), the parked ops and the
/// recorded conflicts per resource and rule.
pub struct SyncMetricsAction {
    pool: DbPool,
    region_id: String,
}

impl SyncMetricsAction {
    /// `region_id`: this region (the origin of the changes its streams deliver).
    pub fn new(pool: DbPool, region_id: impl Into<String>) -> Self {
        Self {
            pool,
            region_id: region_id.into(),
        }
    }
}

/// What `GET /metrics` reports of sync.
#[derive(Debug, Default)]
pub struct SyncMetricsData {
    pub status: Vec<PeerStatus>,
    /// The firing alerts (kind, subject).
    pub firing: Vec<(String, String)>,
    /// Parked ops per resource (ADR 0015).
    pub parked: Vec<crate::actions::ParkedCount>,
    /// Recorded conflicts (`sync_conflicts`) per resource and rule: (resource, reason, count).
    pub conflicts: Vec<(String, String, i64)>,
    /// Per remote origin and resource, the highest HLC among the newest changelog entries
    /// (`PULL_LAG_WINDOW` per resource): (origin, resource, hlc).
    pub newest_remote: Vec<(String, String, i64)>,
    /// Per peer, the last measurement of its clock (ADR 0016).
    pub peer_clocks: Vec<crate::data::peer_clocks::PeerClock>,
    /// Per feed reader and resource, the oldest entry it has not read (ADR 0016).
    pub feed_readers: Vec<crate::data::feed_acks::FeedReader>,
}

/// How many of each resource's newest changelog entries the pull lag looks at.
pub const PULL_LAG_WINDOW: i64 = 10_000;

impl Action for SyncMetricsAction {
    const NAME: &'static str = "sync.metrics";
    type Input = ();
    type Output = SyncMetricsData;
    type Error = SyncError;

    async fn run(&self, _input: ()) -> Result<SyncMetricsData, SyncError> {
        let region = self.region_id.clone();
        self.pool
            .run(move |conn| {
                let status = PeerStatusTask::run(conn, &region, false)?;
                let firing = crate::data::alerts::open(conn)?
                    .into_iter()
                    .map(|a| (a.kind, a.subject))
                    .collect();
                let parked = crate::data::parked_ops::counts(conn)?
                    .into_iter()
                    .map(|(resource, count, oldest)| crate::actions::ParkedCount {
                        resource,
                        count,
                        oldest,
                    })
                    .collect();
                let conflicts = crate::data::conflicts::counts(conn)?;
                let newest_remote =
                    crate::data::changelog::newest_remote(conn, &region, PULL_LAG_WINDOW)?;
                Ok::<_, SyncError>(SyncMetricsData {
                    status,
                    firing,
                    parked,
                    conflicts,
                    newest_remote,
                    peer_clocks: crate::data::peer_clocks::all(conn)?,
                    feed_readers: crate::data::feed_acks::readers(conn)?,
                })
            })
            .await
    }
}

/// What is owed (the entries of the delivery streams, retried dead letters among them), or
/// the dead letters; oldest first.
pub struct ListOutboxAction {
    pool: DbPool,
    region_id: String,
}

impl ListOutboxAction {
    /// `region_id`: this region (the origin of the changes its streams deliver).
    pub fn new(pool: DbPool, region_id: impl Into<String>) -> Self {
        Self {
            pool,
            region_id: region_id.into(),
        }
    }
}

impl Action for ListOutboxAction {
    const NAME: &'static str = "sync.list_outbox";
    /// (dead entries instead of pending ones, at most this many)
    type Input = (bool, i64);
    type Output = Vec<EntryRow>;
    type Error = SyncError;

    async fn run(&self, (dead, limit): (bool, i64)) -> Result<Vec<EntryRow>, SyncError> {
        let region = self.region_id.clone();
        self.pool
            .run(move |conn| {
                let mut rows = outbox::list(conn, dead, limit)?;
                if !dead {
                    rows.extend(delivery::owed_entries(conn, &region, limit)?);
                    rows.sort_by_key(|r| (r.created_at, r.seq));
                    rows.truncate(usize::try_from(limit).unwrap_or(0));
                }
                Ok(rows)
            })
            .await
    }
}

/// `outbox retry`: dead letters are pending again, and their streams send them again (each
/// retried entry not already inside a range gets one).
pub struct RetryDeadAction {
    pool: DbPool,
}

impl RetryDeadAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for RetryDeadAction {
    const NAME: &'static str = "sync.retry_dead";
    /// One dead entry, or (None) every dead entry.
    type Input = Option<i64>;
    type Output = usize;
    type Error = SyncError;

    async fn run(&self, id: Option<i64>) -> Result<usize, SyncError> {
        self.pool
            .transaction(move |conn| delivery::requeue(conn, id).map_err(SyncError::from))
            .await
    }
}

/// Give up on undelivered entries: one dead letter (by id), or everything owed to a peer
/// that is gone for good — its dead letters, its delivery streams and their ranges are deleted
/// (the peer can still catch up by pulling, while the changelog has the changes). For a peer, its feed acknowledgments are forgotten too, in the same transaction: all three are
/// what a peer holds back pruning with. A peer that still reads the feed records a new
/// acknowledgment at its next read.
pub struct DiscardOutboxAction {
    pool: DbPool,
    region_id: String,
}

impl DiscardOutboxAction {
    /// `region_id`: this region (the origin of the changes its streams deliver).
    pub fn new(pool: DbPool, region_id: impl Into<String>) -> Self {
        Self {
            pool,
            region_id: region_id.into(),
        }
    }
}

impl Action for DiscardOutboxAction {
    const NAME: &'static str = "sync.discard_outbox";
    /// (an entry id, or a peer)
    type Input = (Option<i64>, Option<String>);
    type Output = Discarded;
    type Error = SyncError;

    async fn run(&self, (id, peer): (Option<i64>, Option<String>)) -> Result<Discarded, SyncError> {
        let region = self.region_id.clone();
        self.pool
            .transaction(move |conn| {
                let mut entries = outbox::discard(conn, id, peer.as_deref())?;
                let feed_acks = match (id, peer.as_deref()) {
                    (None, Some(peer)) => {
                        entries += delivery::discard(conn, peer, &region)?;
                        // Its clock measurement too: a `clock_skew` alert for it resolves.
                        crate::data::peer_clocks::forget(conn, peer)?;
                        feed_acks::forget(conn, peer)?
                    }
                    _ => 0,
                };
                Ok(Discarded { entries, feed_acks })
            })
            .await
    }
}

/// What `DiscardOutboxAction` gave up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discarded {
    /// Undelivered entries given up on (outbox entries deleted, stream entries skipped).
    pub entries: usize,
    /// Feed acknowledgments forgotten (one per resource the peer read).
    pub feed_acks: usize,
}

/// Add refusals counted elsewhere (the web process's token verifier) to `sync_refusals`.
pub struct RecordRefusalsAction {
    pool: DbPool,
}

impl RecordRefusalsAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for RecordRefusalsAction {
    const NAME: &'static str = "sync.record_refusals";
    /// (kind, source, how many more)
    type Input = Vec<(String, String, i64)>;
    type Output = ();
    type Error = SyncError;

    async fn run(&self, counts: Vec<(String, String, i64)>) -> Result<(), SyncError> {
        if counts.iter().all(|(_, _, n)| *n == 0) {
            return Ok(());
        }
        self.pool
            .transaction(move |conn| {
                for (kind, source, n) in counts.iter().filter(|c| c.2 > 0) {
                    crate::data::refusals::add(conn, kind, source, *n)?;
                }
                Ok(())
            })
            .await
    }
}
