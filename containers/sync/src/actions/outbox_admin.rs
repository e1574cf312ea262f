//! The operator's view of the outbox and the peers (`regionsync outbox …`, `sync status`).

use ship::parents::Action;
use ship::DbPool;

pub use crate::data::outbox::EntryRow;
use crate::data::{feed_acks, outbox};
use crate::errors::SyncError;
use crate::tasks::peer_status::PeerStatusTask;

pub use crate::tasks::peer_status::PeerStatus;

pub struct SyncStatusAction {
    pool: DbPool,
}

impl SyncStatusAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for SyncStatusAction {
    const NAME: &'static str = "sync.status";
    type Input = ();
    type Output = Vec<PeerStatus>;
    type Error = SyncError;

    async fn run(&self, _input: ()) -> Result<Vec<PeerStatus>, SyncError> {
        self.pool
            .run(|conn| PeerStatusTask::run(conn).map_err(SyncError::from))
            .await
    }
}

pub struct ListOutboxAction {
    pool: DbPool,
}

impl ListOutboxAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for ListOutboxAction {
    const NAME: &'static str = "sync.list_outbox";
    /// (dead entries instead of pending ones, at most this many)
    type Input = (bool, i64);
    type Output = Vec<EntryRow>;
    type Error = SyncError;

    async fn run(&self, (dead, limit): (bool, i64)) -> Result<Vec<EntryRow>, SyncError> {
        self.pool
            .run(move |conn| outbox::list(conn, dead, limit).map_err(SyncError::from))
            .await
    }
}

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
            .transaction(move |conn| outbox::retry_dead(conn, id).map_err(SyncError::from))
            .await
    }
}

/// Give up on undelivered entries: one (by id) or every one owed to a peer that is gone for
/// good. They are deleted (the peer can still catch up by pulling, while the changelog has
/// the changes). For a peer, its feed acknowledgments are forgotten too, in the same
/// transaction: both are what a peer holds back pruning with. A peer that still reads the
/// feed records a new acknowledgment at its next read.
pub struct DiscardOutboxAction {
    pool: DbPool,
}

impl DiscardOutboxAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for DiscardOutboxAction {
    const NAME: &'static str = "sync.discard_outbox";
    /// (an entry id, or a peer)
    type Input = (Option<i64>, Option<String>);
    type Output = Discarded;
    type Error = SyncError;

    async fn run(&self, (id, peer): (Option<i64>, Option<String>)) -> Result<Discarded, SyncError> {
        self.pool
            .transaction(move |conn| {
                let entries = outbox::discard(conn, id, peer.as_deref())?;
                let feed_acks = match (id, peer.as_deref()) {
                    (None, Some(peer)) => feed_acks::forget(conn, peer)?,
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
    /// Undelivered outbox entries deleted.
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
