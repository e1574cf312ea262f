//! CheckCursor: does this region's feed still continue a reader's cursor (ADR 0012)?
//!
//! A v2 cursor names the incarnation of the database that issued it and the clock of the
//! entry it points at. The feed continues it when it was issued by this incarnation and the
//! entry at its position is still that entry. It does not when:
//!
//! - it was issued by an **earlier incarnation** (this database replaced the one that issued
//!   it): the reader must bootstrap; nothing is wrong here;
//! - it was issued by **this incarnation** but points past the feed's end, or at an entry with
//!   another clock: a reader has read further in this feed than this database reaches, so this
//!   database is an older copy of itself (a restored backup) and has reused positions for new
//!   entries. This database must get a new incarnation (and bootstrap from its peers: its copy
//!   lacks writes of its own that only they hold).
//!
//! A v1 cursor (no anchor) past the feed's end cannot be told apart from a foreign one: the
//! reader bootstraps; this database keeps its incarnation.

use diesel::QueryResult;
use ship::parents::Task;
use ship::AnyConnection;

use crate::cursor::{Anchor, FeedCursor};
use crate::data::changelog;
use crate::errors::SyncError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fit {
    Continues,
    /// The reader must bootstrap; `restored`: this database is an older copy of itself.
    Diverged {
        reason: String,
        restored: bool,
    },
}

pub(crate) struct CheckCursorTask;

impl Task for CheckCursorTask {
    const NAME: &'static str = "sync.check_cursor";
}

impl CheckCursorTask {
    /// `seq` and `anchor` of the reader's cursor against the feed of `resource` (last entry
    /// `last_seq`, pruned through `pruned_through`) served by incarnation `ours`. An anchor's
    /// clock 0 is not checked (a position with no entry to name).
    fn fit(
        conn: &mut AnyConnection,
        resource: &str,
        seq: i64,
        anchor: Option<&Anchor>,
        (last_seq, pruned_through): (i64, i64),
        ours: &str,
    ) -> QueryResult<Fit> {
        let Some(anchor) = anchor else {
            return Ok(if seq > last_seq {
                Fit::Diverged {
                    reason: format!(
                        "position {seq} is beyond this feed's end ({last_seq}): a cursor of an \
                         older copy of this database, or not issued here"
                    ),
                    restored: false,
                }
            } else {
                Fit::Continues
            });
        };
        if anchor.incarnation != ours {
            return Ok(Fit::Diverged {
                reason: format!(
                    "issued by incarnation `{}` of this region's database; it is now `{ours}`",
                    ship::errors::clip(&anchor.incarnation)
                ),
                restored: false,
            });
        }
        if seq > last_seq {
            return Ok(Fit::Diverged {
                reason: format!(
                    "position {seq} is beyond this feed's end ({last_seq}): this database is \
                     older than the feed the cursor was read from"
                ),
                restored: true,
            });
        }
        if anchor.hlc != 0 && seq > pruned_through {
            if let Some(hlc) = changelog::hlc_at(conn, resource, seq)? {
                if hlc != anchor.hlc {
                    return Ok(Fit::Diverged {
                        reason: format!(
                            "the entry at position {seq} is not the one the cursor was read \
                             at: this database is older than the feed the cursor was read from"
                        ),
                        restored: true,
                    });
                }
            }
        }
        Ok(Fit::Continues)
    }

    /// The cursor of position `seq` this feed hands out: anchored by the clock of the entry
    /// there (`known`, when the caller has it at hand; 0 at position 0 or once pruned) and by
    /// this database's incarnation `ours`.
    pub(crate) fn anchor(
        conn: &mut AnyConnection,
        resource: &str,
        seq: i64,
        known: Option<i64>,
        ours: &str,
    ) -> QueryResult<FeedCursor> {
        let hlc = match (known, seq) {
            (Some(hlc), _) => Some(hlc),
            (None, 0) => None,
            (None, seq) => changelog::hlc_at(conn, resource, seq)?,
        };
        Ok(FeedCursor::anchored(seq, hlc.unwrap_or(0), ours))
    }

    /// Whether the feed continues the reader's cursor (see [`Fit`]), then what follows: a cursor the feed does not continue is
    /// `SyncError::CursorDiverged`, and one that proves this database an older copy of itself
    /// first gives the database a new incarnation (`ours` is the current one).
    pub(crate) fn enforce(
        conn: &mut AnyConnection,
        resource: &str,
        seq: i64,
        anchor: Option<&Anchor>,
        marks: (i64, i64),
        ours: &str,
    ) -> Result<(), SyncError> {
        let Fit::Diverged { reason, restored } =
            Self::fit(conn, resource, seq, anchor, marks, ours)?
        else {
            return Ok(());
        };
        if restored {
            let now = ship::db::reincarnate(conn, ours)?;
            tracing::error!(
                resource,
                previous = %ours,
                incarnation = %now.id,
                "a peer has read further in this region's feed than this database reaches: it \
                 is an older copy of this region (a restored backup); new incarnation, every \
                 pull peer is bootstrapped again"
            );
        }
        Err(SyncError::CursorDiverged(reason))
    }
}
