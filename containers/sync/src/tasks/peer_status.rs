//! PeerStatus: per peer and resource, what is owed, what died, when it last moved — from the
//! delivery streams, the outbox (dead letters), the pull cursors and the peers' feed
//! acknowledgments.

use chrono::{DateTime, Utc};
use serde::Serialize;
use ship::parents::Task;
use ship::AnyConnection;

use crate::data::schema::sync_peer_cursors;
use crate::data::{delivery, outbox};
use crate::models::outbox_status;

/// Per peer and resource: what waits, what died, when it last moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    pub peer: String,
    pub resource: String,
    pub pending: i64,
    pub dead: i64,
    /// Delivered entries not yet pruned: the stream's (written since it exists) and retried
    /// dead letters'.
    pub delivered: i64,
    /// The push stream: every change of ours up to this seq is delivered (or dead).
    pub delivered_through: Option<i64>,
    /// Why the last push attempt failed (cleared by a delivery).
    pub last_error: Option<String>,
    /// The push stream's next attempt (later than now while it backs off).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The oldest pending entry's creation: how far behind the push is.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    pub last_push_at: Option<DateTime<Utc>>,
    pub last_pull_at: Option<DateTime<Utc>>,
    /// How far the peer has acknowledged our feed (the `since` of its last read); prune keeps
    /// everything above it.
    pub feed_acked_seq: Option<i64>,
    /// When the peer last read our feed.
    pub last_feed_read_at: Option<DateTime<Utc>>,
    /// Entries of the peer's feed parked in the quarantine.
    pub quarantined: i64,
    /// A bootstrap from the peer's snapshot under way: the rows applied so far.
    pub bootstrap_rows: Option<i64>,
    /// The last verify against the peer: how many rows differed.
    pub verify_differing: Option<i64>,
    /// The incarnation of the peer's database as last seen (ADR 0012).
    pub peer_incarnation: Option<String>,
}

pub(crate) struct PeerStatusTask;

impl Task for PeerStatusTask {
    const NAME: &'static str = "sync.peer_status";
}

impl PeerStatusTask {
    /// `origin`: this region (its own changes are what the streams deliver). `delivered`:
    /// count the streams' delivered entries too (a scan of the retained changelog: the
    /// operator's commands ask for it, the alerts job does not).
    pub(crate) fn run(
        conn: &mut AnyConnection,
        origin: &str,
        delivered: bool,
    ) -> diesel::QueryResult<Vec<PeerStatus>> {
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
                    row.pending += n;
                    row.oldest_pending_at = oldest.map(|t| t.and_utc());
                }
                outbox_status::DEAD => row.dead = n,
                _ => {
                    row.delivered += n;
                    row.last_push_at = delivered.map(|t| t.and_utc());
                }
            }
        }
        for stream in delivery::streams(conn, origin, delivered)? {
            let row = line(&mut rows, stream.peer, stream.resource);
            row.pending += stream.pending;
            row.delivered += stream.delivered;
            row.oldest_pending_at = [
                row.oldest_pending_at,
                stream.oldest_pending_at.map(|t| t.and_utc()),
            ]
            .into_iter()
            .flatten()
            .min();
            row.last_push_at = row
                .last_push_at
                .max(stream.last_delivered_at.map(|t| t.and_utc()));
            row.delivered_through = Some(stream.delivered_through);
            row.last_error = stream.last_error;
            row.next_attempt_at = Some(stream.next_attempt_at.and_utc());
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
        for (peer, resource, n, _) in crate::data::quarantine::counts(conn)? {
            line(&mut rows, peer, resource).quarantined = n;
        }
        for (peer, resource, differing, _) in crate::data::verify_results::all(conn)? {
            line(&mut rows, peer, resource).verify_differing = Some(differing);
        }
        for (peer, resource, rows_applied) in crate::data::bootstraps::under_way(conn)? {
            line(&mut rows, peer, resource).bootstrap_rows = Some(rows_applied);
        }
        let incarnations: std::collections::HashMap<String, String> =
            crate::data::peer_incarnations::all(conn)?
                .into_iter()
                .collect();
        for row in rows.values_mut() {
            row.peer_incarnation = incarnations.get(&row.peer).cloned();
        }
        Ok(rows.into_values().collect())
    }
}
