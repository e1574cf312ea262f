//! Peer clocks (`sync_peer_clocks`, ADR 0016): per peer, the last measured offset of its wall
//! clock from ours (peer − us, ms), the round trip it was measured over (`None`: one way, from
//! a request the peer made) and when.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_peer_clocks;

/// One peer's last measurement.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct PeerClock {
    pub peer: String,
    /// The peer's wall clock minus ours, in milliseconds.
    pub offset_ms: i64,
    /// The round trip of the exchange it was measured over (the estimate is within half of
    /// it); `None`: measured one way, from a request the peer made (transit time unknown).
    pub round_trip_ms: Option<i64>,
    pub measured_at: NaiveDateTime,
}

/// Record `peer`'s offset measured at `now`. A one-way measurement (`round_trip_ms` = `None`)
/// does not replace a round-trip one measured at or after `round_trip_kept_after`: the round
/// trip bounds its error, the one-way one does not. An `UPDATE`, or an `INSERT` for a peer
/// never measured (a racing first insert loses on the primary key and updates). Returns
/// whether the row was written.
pub fn record(
    conn: &mut AnyConnection,
    peer: &str,
    (offset_ms, round_trip_ms): (i64, Option<i64>),
    now: NaiveDateTime,
    round_trip_kept_after: NaiveDateTime,
) -> QueryResult<bool> {
    for _ in 0..2 {
        let values = (
            sync_peer_clocks::offset_ms.eq(offset_ms),
            sync_peer_clocks::round_trip_ms.eq(round_trip_ms),
            sync_peer_clocks::measured_at.eq(now),
        );
        let row = sync_peer_clocks::table.filter(sync_peer_clocks::peer.eq(peer));
        let updated = match round_trip_ms {
            Some(_) => diesel::update(row).set(values).execute(conn)?,
            None => diesel::update(
                row.filter(
                    sync_peer_clocks::round_trip_ms
                        .is_null()
                        .or(sync_peer_clocks::measured_at.lt(round_trip_kept_after)),
                ),
            )
            .set(values)
            .execute(conn)?,
        };
        if updated > 0 {
            return Ok(true);
        }
        let inserted = ship::insert_if_absent!(
            conn,
            sync_peer_clocks::table,
            (sync_peer_clocks::peer.eq(peer), values)
        );
        match inserted {
            // The row exists: a fresh round-trip measurement a one-way one leaves alone, or
            // a concurrent first insert (update that one instead).
            Ok(0) => {
                if round_trip_ms.is_none() {
                    return Ok(false);
                }
            }
            other => return other.map(|n| n > 0),
        }
    }
    Ok(false)
}

/// Every peer's last measurement, by peer.
pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<PeerClock>> {
    sync_peer_clocks::table
        .select((
            sync_peer_clocks::peer,
            sync_peer_clocks::offset_ms,
            sync_peer_clocks::round_trip_ms,
            sync_peer_clocks::measured_at,
        ))
        .order(sync_peer_clocks::peer)
        .load(conn)
}

/// Forget `peer`'s measurement (a region gone for good: `outbox discard --peer`).
pub fn forget(conn: &mut AnyConnection, peer: &str) -> QueryResult<usize> {
    diesel::delete(sync_peer_clocks::table.filter(sync_peer_clocks::peer.eq(peer))).execute(conn)
}
