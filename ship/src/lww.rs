//! Last-writer-wins for a batch of replicated writes to one synced table, decided in memory in
//! batch order against the batch's stored rows, read (and, on MariaDB, locked) set-wise — a
//! constant number of statements per batch, not a few per row (ADR 0013). A domain container
//! describes its table ([`SyncedTable`]: its rows and six queries) and calls [`apply_batch`]
//! from its `SyncResource::apply_batch`.
//!
//! SQLite (one writer at a time, inside `BEGIN IMMEDIATE`): one read of the batch's rows, the
//! decision, then one write per row that changed.
//!
//! MariaDB (many writers, row locks):
//!
//! 1. [`SyncedTable::insert_or_lock_all`]: one row per distinct id, in ascending id order — the
//!    state the batch leaves when the id is absent. Absent ids are inserted (and so locked);
//!    present ids are locked exclusively and left unchanged, and named. This is the only
//!    statement that waits for row locks, and it takes them in id order: two appliers never
//!    deadlock each other, and a local writer (one row, then the sequence row) never waits for
//!    an applier that waits for it (the applier takes the sequence row last, in the sync
//!    container, once it holds every row).
//! 2. If some ids existed: [`SyncedTable::find_all_for_update`] of those rows (already locked:
//!    no wait), the decision against them, and [`SyncedTable::overwrite_all`] of the rows the
//!    batch overwrites, whose branch still decides by `(sync_version, sync_origin)`.
//!
//! Absent rows cannot be locked by a read (READ COMMITTED takes no gap locks), which is why
//! the lock pass is an insert: an id inserted by a concurrent writer between a read and an
//! insert would otherwise be locked out of id order.

use std::collections::BTreeMap;

use diesel::QueryResult;

use crate::contracts::{contract_error, ApplyOutcome, Hlc, Version};
use crate::db::{AnyConnection, DbError};

/// A synced table as the batch apply needs it. The queries run on the caller's connection,
/// inside its transaction.
pub trait SyncedTable {
    type Row: Clone;

    fn id(row: &Self::Row) -> &str;
    /// `(sync_version, sync_origin)` as stored.
    fn version(row: &Self::Row) -> (i64, &str);
    /// The row as its sync payload (the losing side of a conflict record).
    fn payload(row: &Self::Row) -> serde_json::Value;

    /// The rows with these ids, without locking (SQLite: the caller holds the write lock).
    fn find_all(conn: &mut AnyConnection, ids: &[&str]) -> QueryResult<Vec<Self::Row>>;
    /// The rows with these ids, locked (MariaDB: already locked by the insert-or-lock pass).
    fn find_all_for_update(conn: &mut AnyConnection, ids: &[&str]) -> QueryResult<Vec<Self::Row>>;
    fn insert(conn: &mut AnyConnection, row: &Self::Row) -> QueryResult<()>;
    fn update(conn: &mut AnyConnection, row: &Self::Row) -> QueryResult<()>;
    /// Insert the absent rows and lock the present ones, in ascending id order; the ids that
    /// were present.
    fn insert_or_lock_all(conn: &mut AnyConnection, rows: &[Self::Row])
        -> QueryResult<Vec<String>>;
    /// Overwrite these stored rows where the row's version is newer than the stored one; how
    /// many were overwritten.
    fn overwrite_all(conn: &mut AnyConnection, rows: &[Self::Row]) -> QueryResult<usize>;
}

/// One change of the batch: its position in the batch, the row its payload would write, and
/// its version.
pub struct Incoming<'a, R> {
    pub index: usize,
    pub row: R,
    pub version: &'a Version,
}

/// Apply `items` (any order; decided in the order given) inside the caller's transaction: the
/// outcomes, `(index, outcome)` in the order given — those applying the items one by one would
/// give.
pub fn apply_batch<T: SyncedTable>(
    conn: &mut AnyConnection,
    items: &[Incoming<'_, T::Row>],
) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
    match conn {
        AnyConnection::Sqlite(_) => single_writer::<T>(conn, items),
        AnyConnection::Mysql(_) => locked::<T>(conn, items),
    }
}

fn broken(what: &str) -> DbError {
    contract_error(what.to_string())
}

/// What last-writer-wins decides for a batch against the rows stored before it.
struct Decision<R> {
    /// `(index, outcome)` of every item, in batch order.
    outcomes: Vec<(usize, ApplyOutcome)>,
    /// The final state of each id the batch creates (absent before it), ascending by id.
    inserts: Vec<R>,
    /// The final state of each stored row the batch overwrites, ascending by id.
    updates: Vec<R>,
}

/// SQLite: the caller's transaction holds the database's write lock, so the rows read are the
/// rows written over, and an absent id stays absent until the insert.
fn single_writer<T: SyncedTable>(
    conn: &mut AnyConnection,
    items: &[Incoming<'_, T::Row>],
) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
    let mut ids: Vec<&str> = items.iter().map(|i| T::id(&i.row)).collect();
    ids.sort_unstable();
    ids.dedup();
    let current = T::find_all(conn, &ids)?;
    let decision = decide::<T>(current, items)?;
    for row in &decision.updates {
        T::update(conn, row)?;
    }
    for row in &decision.inserts {
        T::insert(conn, row)?;
    }
    Ok(decision.outcomes)
}

/// MariaDB: lock (or insert) every id of the batch in one id-ordered pass, then decide against
/// the rows that existed and overwrite those the batch wins in one statement (module docs).
fn locked<T: SyncedTable>(
    conn: &mut AnyConnection,
    items: &[Incoming<'_, T::Row>],
) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
    // What the batch leaves of each id when the id is absent: every id of the batch, ascending.
    let if_absent = decide::<T>(Vec::new(), items)?;
    let existed = T::insert_or_lock_all(conn, &if_absent.inserts)?;
    if existed.is_empty() {
        // Every row was absent and is now inserted: the decision from absence stands.
        return Ok(if_absent.outcomes);
    }
    let ids: Vec<&str> = existed.iter().map(String::as_str).collect();
    let current = T::find_all_for_update(conn, &ids)?;
    if current.len() != existed.len() {
        return Err(broken("a row of the batch vanished under its lock"));
    }
    // The rows of the other ids were inserted by the lock pass with the state this decision
    // gives them too (the decision of an id depends on its own stored row only).
    let decision = decide::<T>(current, items)?;
    debug_assert_eq!(
        decision.inserts.len() + existed.len(),
        if_absent.inserts.len(),
        "the ids that did not exist are the ones inserted"
    );
    let overwritten = T::overwrite_all(conn, &decision.updates)?;
    if overwritten != decision.updates.len() {
        return Err(broken(
            "a locked row of the batch was not older than the version that won it",
        ));
    }
    Ok(decision.outcomes)
}

/// Last-writer-wins in memory, item by item in the order given, against `current` (the stored
/// rows of the items' ids; an id not among them is absent).
fn decide<T: SyncedTable>(
    current: Vec<T::Row>,
    items: &[Incoming<'_, T::Row>],
) -> Result<Decision<T::Row>, DbError> {
    // id → (state now, stored before the batch?, changed by the batch?)
    let mut state: BTreeMap<String, (T::Row, bool, bool)> = current
        .into_iter()
        .map(|row| (T::id(&row).to_string(), (row, true, false)))
        .collect();
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let outcome = match state.get_mut(T::id(&item.row)) {
            None => {
                let id = T::id(&item.row).to_string();
                state.insert(id, (item.row.clone(), false, true));
                ApplyOutcome::Applied
            }
            Some((row, _, changed)) => {
                let (hlc, origin) = T::version(row);
                let stored = Version::new(
                    Hlc::from_i64(hlc).map_err(|e| broken(&e.to_string()))?,
                    origin.to_string(),
                );
                match item.version.cmp(&stored) {
                    std::cmp::Ordering::Greater => {
                        *row = item.row.clone();
                        *changed = true;
                        ApplyOutcome::Applied
                    }
                    std::cmp::Ordering::Equal => ApplyOutcome::Duplicate,
                    std::cmp::Ordering::Less => ApplyOutcome::Stale {
                        current: stored,
                        current_payload: T::payload(row),
                    },
                }
            }
        };
        outcomes.push((item.index, outcome));
    }
    let (mut inserts, mut updates) = (Vec::new(), Vec::new());
    for (row, existed, changed) in state.into_values() {
        match (existed, changed) {
            (true, true) => updates.push(row),
            (false, true) => inserts.push(row),
            _ => {}
        }
    }
    Ok(Decision {
        outcomes,
        inserts,
        updates,
    })
}
