use diesel::result::Error as DieselError;
use ship::contracts::{ApplyOutcome, Hlc, Version};
use ship::parents::Task;
use ship::{AnyConnection, DbError};

use crate::data::orders;
use crate::models::{Order, OrderPayload};

/// Apply one replicated write by last-writer-wins on `(sync_version, sync_origin)` against the
/// op's `(hlc, origin)`, deciding under the row lock (MariaDB `FOR UPDATE`; SQLite is inside a
/// `BEGIN IMMEDIATE` transaction) and inserting when the row is absent. Status transitions are
/// not checked: the full state with the greatest version wins.
///
/// Absent rows are not locked on MariaDB (READ COMMITTED takes no gap locks), so two appliers
/// may both try to insert: the insert is `insert_or_lock` (see there why not a plain insert
/// with a retry), and the loser decides again, once, under the lock of the winner's row.
pub(crate) struct ApplyRemoteChangeTask;

impl Task for ApplyRemoteChangeTask {
    const NAME: &'static str = "orders.apply_remote_change";
}

impl ApplyRemoteChangeTask {
    pub(crate) fn run(
        conn: &mut AnyConnection,
        payload: &OrderPayload,
        version: &Version,
    ) -> Result<ApplyOutcome, DbError> {
        let incoming = payload
            .to_row(version.hlc.as_i64(), &version.origin)
            .ok_or_else(|| invalid("a timestamp of the payload does not parse"))?;
        if let Some(current) = orders::find_for_update(conn, &payload.id)? {
            return decide(conn, current, incoming, version);
        }
        if orders::insert_or_lock(conn, &incoming)? {
            return Ok(ApplyOutcome::Applied);
        }
        // Another applier inserted the row since our read; it is locked now: decide against it.
        tracing::debug!(id = %payload.id, "concurrent insert; deciding under its lock");
        let current = orders::find_for_update(conn, &payload.id)?
            .ok_or_else(|| invalid("the row vanished under its lock"))?;
        decide(conn, current, incoming, version)
    }
}

fn decide(
    conn: &mut AnyConnection,
    current: Order,
    incoming: Order,
    version: &Version,
) -> Result<ApplyOutcome, DbError> {
    let stored = Version::new(
        Hlc::from_i64(current.sync_version).map_err(|e| invalid(&e.to_string()))?,
        current.sync_origin.clone(),
    );
    match version.cmp(&stored) {
        std::cmp::Ordering::Greater => {
            orders::update(conn, &incoming)?;
            Ok(ApplyOutcome::Applied)
        }
        std::cmp::Ordering::Equal => Ok(ApplyOutcome::Duplicate),
        std::cmp::Ordering::Less => Ok(ApplyOutcome::Stale {
            current: stored,
            current_payload: OrderPayload::from(&current).to_value(),
        }),
    }
}

/// A broken invariant reported through the contract's error type (`DbError`): a 500 for the
/// caller, with the reason in the log.
pub(crate) fn invalid(reason: &str) -> DbError {
    DbError::Query(DieselError::DeserializationError(reason.to_string().into()))
}
