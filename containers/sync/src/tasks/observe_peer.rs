//! ObservePeer: a peer showed its database's incarnation (in a feed or snapshot answer, or the
//! `Regionsync-Incarnation` header of its request). A new one means its database was replaced
//! or restored (ADR 0012): it is recorded (the `peer_reincarnated` alert reads it) and our
//! streams to it restart from what it acknowledges — nothing of what they delivered before, so
//! from the oldest entry we still hold (`delivery::restart`), due at once; what was pruned
//! before that it gets by bootstrapping from us (its cursors are void in its new incarnation).
//! Our cursors into its feed are re-validated by its feed (a cursor it no longer continues is
//! answered `409 cursor_diverged`, and we bootstrap from it).

use diesel::QueryResult;
use ship::parents::Task;
use ship::AnyConnection;

use crate::data::{delivery, peer_incarnations};

pub(crate) struct ObservePeerTask;

impl Task for ObservePeerTask {
    const NAME: &'static str = "sync.observe_peer";
}

impl ObservePeerTask {
    /// Returns the incarnation the peer showed before, when this one is new.
    pub(crate) fn run(
        conn: &mut AnyConnection,
        peer: &str,
        incarnation: &str,
    ) -> QueryResult<Option<String>> {
        // An unbound peer (none) and anything that is not an incarnation id are not recorded.
        if incarnation.is_empty()
            || incarnation.len() > 32
            || !incarnation
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            || ship::config::check_region_id(peer).is_err()
        {
            return Ok(None);
        }
        let now = ship::db::utc_now();
        let previous = peer_incarnations::observe(conn, peer, incarnation, now)?;
        if let Some(previous) = &previous {
            tracing::warn!(
                %peer,
                %previous,
                %incarnation,
                "the peer's database was replaced or restored (new incarnation): its streams \
                 are served now; its feed is re-validated"
            );
            // It acknowledges nothing we delivered before: our streams to it start again
            // from the oldest entry we still hold, and go now.
            let put_back = delivery::restart(conn, peer, now)?;
            tracing::warn!(%peer, put_back, "streams to the peer restarted");
        }
        Ok(previous)
    }
}
