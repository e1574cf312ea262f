//! ApplyRemoteBatch: last-writer-wins for a batch of replicated writes, decided in memory in
//! batch order against the batch's stored rows, read (and, on MariaDB, locked) set-wise — a
//! few statements per 100 rows (`data::orders`' chunk), not a few per row.
//!
//! SQLite (one writer at a time, inside `BEGIN IMMEDIATE`): one read of the batch's rows, the
//! decision, then one write per row that changed.
//!
//! MariaDB (many writers, row locks; ADR 0013), per batch:
//!
//! 1. `INSERT … ON DUPLICATE KEY UPDATE` of one row per distinct id, in ascending id order —
//!    the state the batch leaves when the id is absent. Absent ids are inserted (and so locked);
//!    present ids are locked exclusively and left unchanged, and their ids collected in a
//!    session variable (`SET` before, `SELECT` after). This is the only statement that waits
//!    for row locks, and it takes them in id order: two appliers never
//!    deadlock each other, and a local writer (one row, then the sequence row) never waits for
//!    an applier that waits for it (the applier takes the sequence row last, in the sync
//!    container, once it holds every row).
//! 2. If some ids existed: one `SELECT … FOR UPDATE` of those rows (already locked: no wait),
//!    the decision against them, and one multi-row `INSERT … ON DUPLICATE KEY UPDATE` of the
//!    rows the batch overwrites, whose branch still decides by `(sync_version, sync_origin)`.
//!
//! Absent rows cannot be locked by a read (READ COMMITTED takes no gap locks), which is why
//! the lock pass is an insert: an id inserted by a concurrent writer between a read and an
//! insert would otherwise be locked out of id order.

use std::collections::BTreeMap;

use ship::contracts::{ApplyOutcome, Hlc, Version};
use ship::parents::Task;
use ship::{AnyConnection, DbError};

use super::apply_remote_change::invalid;
use crate::data::orders;
use crate::models::{Order, OrderPayload};

pub(crate) struct ApplyRemoteBatchTask;

impl Task for ApplyRemoteBatchTask {
    const NAME: &'static str = "orders.apply_remote_batch";
}

/// One change of the batch: its position, its payload (validated) and its version.
pub(crate) struct Item<'a> {
    pub index: usize,
    pub payload: OrderPayload,
    pub version: &'a Version,
}

/// What last-writer-wins decides for a batch against the rows stored before it.
#[derive(Debug)]
struct Decision {
    /// `(index, outcome)` of every item, in batch order.
    outcomes: Vec<(usize, ApplyOutcome)>,
    /// The final state of each id the batch creates (absent before it), ascending by id.
    inserts: Vec<Order>,
    /// The final state of each stored row the batch overwrites, ascending by id.
    updates: Vec<Order>,
}

impl ApplyRemoteBatchTask {
    /// Apply `items` (any order; decided in the order given) inside the caller's transaction.
    /// The outcomes are those [`ApplyRemoteChangeTask`](super::ApplyRemoteChangeTask) would
    /// give one by one, in the same order.
    pub(crate) fn run(
        conn: &mut AnyConnection,
        items: Vec<Item<'_>>,
    ) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
        let items = incoming_rows(items)?;
        match conn {
            AnyConnection::Sqlite(_) => single_writer(conn, &items),
            AnyConnection::Mysql(_) => locked(conn, &items),
        }
    }
}

/// An item with its payload as the row it would write.
struct Incoming<'a> {
    index: usize,
    row: Order,
    version: &'a Version,
}

fn incoming_rows(items: Vec<Item<'_>>) -> Result<Vec<Incoming<'_>>, DbError> {
    items
        .into_iter()
        .map(|item| {
            let row = item
                .payload
                .to_row(item.version.hlc.as_i64(), &item.version.origin)
                .ok_or_else(|| invalid("a timestamp of the payload does not parse"))?;
            Ok(Incoming {
                index: item.index,
                row,
                version: item.version,
            })
        })
        .collect()
}

/// SQLite: the caller's transaction holds the database's write lock, so the rows read are the
/// rows written over, and an absent id stays absent until the insert.
fn single_writer(
    conn: &mut AnyConnection,
    items: &[Incoming<'_>],
) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
    let mut ids: Vec<&str> = items.iter().map(|i| i.row.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let current = orders::find_all(conn, &ids)?;
    let decision = decide(current, items)?;
    for row in &decision.updates {
        orders::update(conn, row)?;
    }
    for row in &decision.inserts {
        orders::insert(conn, row)?;
    }
    Ok(decision.outcomes)
}

/// MariaDB: lock (or insert) every id of the batch in one id-ordered pass, then decide against
/// the rows that existed and overwrite those the batch wins in one statement (module docs).
fn locked(
    conn: &mut AnyConnection,
    items: &[Incoming<'_>],
) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
    // What the batch leaves of each id when the id is absent: every id of the batch, ascending.
    let if_absent = decide(Vec::new(), items)?;
    let existed = orders::insert_or_lock_all(conn, &if_absent.inserts)?;
    if existed.is_empty() {
        // Every row was absent and is now inserted: the decision from absence stands.
        return Ok(if_absent.outcomes);
    }
    let ids: Vec<&str> = existed.iter().map(String::as_str).collect();
    let current = orders::find_all_for_update(conn, &ids)?;
    if current.len() != existed.len() {
        return Err(invalid("a row of the batch vanished under its lock"));
    }
    // The rows of the other ids were inserted by the lock pass with the state this decision
    // gives them too (the decision of an id depends on its own stored row only).
    let decision = decide(current, items)?;
    debug_assert_eq!(
        decision.inserts.len() + existed.len(),
        if_absent.inserts.len(),
        "the ids that did not exist are the ones inserted"
    );
    let overwritten = orders::overwrite_all(conn, &decision.updates)?;
    if overwritten != decision.updates.len() {
        return Err(invalid(
            "a locked row of the batch was not older than the version that won it",
        ));
    }
    Ok(decision.outcomes)
}

/// Last-writer-wins in memory, item by item in the order given, against `current` (the stored
/// rows of the items' ids; an id not among them is absent).
fn decide(current: Vec<Order>, items: &[Incoming<'_>]) -> Result<Decision, DbError> {
    // id → (state now, stored before the batch?, changed by the batch?)
    let mut state: BTreeMap<String, (Order, bool, bool)> = current
        .into_iter()
        .map(|row| (row.id.clone(), (row, true, false)))
        .collect();
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let outcome = match state.get_mut(&item.row.id) {
            None => {
                state.insert(item.row.id.clone(), (item.row.clone(), false, true));
                ApplyOutcome::Applied
            }
            Some((row, _, changed)) => {
                let stored = Version::new(
                    Hlc::from_i64(row.sync_version).map_err(|e| invalid(&e.to_string()))?,
                    row.sync_origin.clone(),
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
                        current_payload: OrderPayload::from(&*row).to_value(),
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
