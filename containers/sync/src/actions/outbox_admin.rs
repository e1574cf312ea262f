//! The operator's view of the outbox and the peers (`regionsync outbox …`, `sync status`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use ship::parents::Action;
use ship::DbPool;

use crate::data::outbox;
pub use crate::data::outbox::EntryRow;
use crate::data::schema::sync_peer_cursors;
use crate::errors::SyncError;
use crate::models::outbox_status;

/// Per peer and resource: what waits, what died, when it last moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    pub peer: String,
    pub resource: String,
    pub pending: i64,
    pub dead: i64,
    pub delivered: i64,
    /// The oldest pending entry's creation: how far behind the push is.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    pub last_push_at: Option<DateTime<Utc>>,
    pub last_pull_at: Option<DateTime<Utc>>,
}

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
            .run(|conn| {
                use diesel::prelude::*;
                let mut rows: std::collections::BTreeMap<(String, String), PeerStatus> =
                    Default::default();
                for (peer, resource, status, n, oldest, delivered) in outbox::stats(conn)? {
                    let row = rows
                        .entry((peer.clone(), resource.clone()))
                        .or_insert_with(|| PeerStatus {
                            peer,
                            resource,
                            ..PeerStatus::default()
                        });
                    match status.as_str() {
                        outbox_status::PENDING => {
                            row.pending = n;
                            row.oldest_pending_at = oldest.map(|t| t.and_utc());
                        }
                        outbox_status::DEAD => row.dead = n,
                        _ => {
                            row.delivered = n;
                            row.last_push_at = delivered.map(|t| t.and_utc());
                        }
                    }
                }
                let pulls: Vec<(String, String, chrono::NaiveDateTime)> = sync_peer_cursors::table
                    .select((
                        sync_peer_cursors::peer,
                        sync_peer_cursors::resource,
                        sync_peer_cursors::last_pull_at,
                    ))
                    .load(conn)?;
                for (peer, resource, at) in pulls {
                    rows.entry((peer.clone(), resource.clone()))
                        .or_insert_with(|| PeerStatus {
                            peer,
                            resource,
                            ..PeerStatus::default()
                        })
                        .last_pull_at = Some(at.and_utc());
                }
                Ok(rows.into_values().collect())
            })
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
