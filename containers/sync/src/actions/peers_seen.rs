//! PeersSeen (issue 13.7): the broker's view of the peers — online or offline by their
//! heartbeats — as the directory lists it. A peer listed offline and then online again is back:
//! its delivery streams waiting out a backoff are due now, so the backlog goes out at the next
//! push pass instead of after the longest backoff. Only the change counts: a peer the broker
//! calls online while our sends to it keep failing (a partition between us two) keeps its
//! backoff.

use std::collections::HashMap;

use ship::parents::Action;
use ship::DbPool;

use crate::data::delivery;
use crate::errors::SyncError;

/// One peer as the broker lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSeen {
    pub peer: String,
    /// Its heartbeat is recent (the broker's `online`).
    pub online: bool,
}

pub struct PeersSeenAction {
    pool: DbPool,
    /// Per peer, whether the last list said online.
    last: std::sync::Mutex<HashMap<String, bool>>,
}

impl PeersSeenAction {
    pub fn new(pool: DbPool) -> Self {
        Self {
            pool,
            last: Default::default(),
        }
    }

    /// The peers of `seen` listed offline last time and online now; remembers `seen`.
    fn back(&self, seen: &[PeerSeen]) -> Vec<String> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.iter()
            .filter_map(|s| {
                let was_online = last.insert(s.peer.clone(), s.online);
                (s.online && was_online == Some(false)).then(|| s.peer.clone())
            })
            .collect()
    }
}

impl Action for PeersSeenAction {
    const NAME: &'static str = "sync.peers_seen";
    type Input = Vec<PeerSeen>;
    /// The peers found back (their streams are due now).
    type Output = Vec<String>;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.peers_seen", skip_all)]
    async fn run(&self, seen: Vec<PeerSeen>) -> Result<Vec<String>, SyncError> {
        let back = self.back(&seen);
        if back.is_empty() {
            return Ok(back);
        }
        let peers = back.clone();
        let due = self
            .pool
            .transaction(move |conn| {
                let now = ship::db::utc_now();
                let mut due = 0;
                for peer in &peers {
                    due += delivery::peer_is_back(conn, peer, now)?;
                }
                Ok::<_, SyncError>(due)
            })
            .await;
        let due = match due {
            Ok(due) => due,
            Err(e) => {
                // Not done: still seen offline, so the next list that says online tries again.
                let mut last = self
                    .last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for peer in &back {
                    last.insert(peer.clone(), false);
                }
                return Err(e);
            }
        };
        tracing::info!(peers = ?back, streams = due, "peers online again: their streams are due now");
        Ok(back)
    }
}
