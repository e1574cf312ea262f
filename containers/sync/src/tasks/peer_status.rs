//! PeerStatus: per peer and resource, what is owed, what died, when it last moved — from the
//! outbox, the pull cursors and the peers' feed acknowledgments.

use chrono::{DateTime, Utc};
use serde::Serialize;
use ship::parents::Task;
use ship::AnyConnection;

use crate::data::outbox;
use crate::data::schema::sync_peer_cursors;
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
    /// How far the peer has acknowledged our feed (the `since` of its last read); prune keeps
    /// everything above it.
    pub feed_acked_seq: Option<i64>,
    /// When the peer last read our feed.
    pub last_feed_read_at: Option<DateTime<Utc>>,
}

pub(crate) struct PeerStatusTask;

impl Task for PeerStatusTask {
    const NAME: &'static str = "sync.peer_status";
}

impl PeerStatusTask {
    pub(crate) fn run(conn: &mut AnyConnection) -> diesel::QueryResult<Vec<PeerStatus>> {
        use diesel::prelude::*;
        let mut rows: std::collections::BTreeMap<(String, String), PeerStatus> = Default::default();
        // The (peer, resource) line, made on first sight.
        fn line(
            rows: &mut std::collections::BTreeMap<(String, String), PeerStatus>,
            peer: String,
            resource: String,
        ) -> &mut PeerStatus {
            rows.entry((peer.clone(), resource.clone()))
                .or_insert_with(|| PeerStatus {
                    peer,
                    resource,
                    ..PeerStatus::default()
                })
        }
        for (peer, resource, status, n, oldest, delivered) in outbox::stats(conn)? {
            let row = line(&mut rows, peer, resource);
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
            line(&mut rows, peer, resource).last_pull_at = Some(at.and_utc());
        }
        for (peer, resource, acked, at) in crate::data::feed_acks::all(conn)? {
            let row = line(&mut rows, peer, resource);
            row.feed_acked_seq = Some(acked);
            row.last_feed_read_at = Some(at.and_utc());
        }
        Ok(rows.into_values().collect())
    }
}
