//! ApplyRemoteBatch: last-writer-wins for a batch of replicated writes whose rows were read
//! (and, on MariaDB, locked) up front in one statement — decided in memory in batch order, then
//! written once per row that changed.

use std::collections::BTreeMap;

use ship::contracts::{ApplyOutcome, Hlc, Version};
use ship::parents::Task;
use ship::{AnyConnection, DbError};

use super::apply_remote_change::invalid;
use crate::data::customers;
use crate::models::{Customer, CustomerPayload};

pub(crate) struct ApplyRemoteBatchTask;

impl Task for ApplyRemoteBatchTask {
    const NAME: &'static str = "customers.apply_remote_batch";
}

/// One change of the batch: its position, its payload (validated) and its version.
pub(crate) struct Item<'a> {
    pub index: usize,
    pub payload: CustomerPayload,
    pub version: &'a Version,
}

impl ApplyRemoteBatchTask {
    /// `current`: the stored rows of the items' ids. Items of ids not in `current` are
    /// inserted — only correct where no other writer can insert them meanwhile (SQLite's single
    /// writer inside `BEGIN IMMEDIATE`).
    pub(crate) fn run(
        conn: &mut AnyConnection,
        current: Vec<Customer>,
        items: Vec<Item<'_>>,
    ) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
        // id → (state now, stored before the batch?, changed by the batch?)
        let mut state: BTreeMap<String, (Customer, bool, bool)> = current
            .into_iter()
            .map(|row| (row.id.clone(), (row, true, false)))
            .collect();
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let incoming = item
                .payload
                .to_row(item.version.hlc.as_i64(), &item.version.origin)
                .ok_or_else(|| invalid("a timestamp of the payload does not parse"))?;
            let outcome = match state.get_mut(&incoming.id) {
                None => {
                    state.insert(incoming.id.clone(), (incoming, false, true));
                    ApplyOutcome::Applied
                }
                Some((row, _, changed)) => {
                    let stored = Version::new(
                        Hlc::from_i64(row.sync_version).map_err(|e| invalid(&e.to_string()))?,
                        row.sync_origin.clone(),
                    );
                    match item.version.cmp(&stored) {
                        std::cmp::Ordering::Greater => {
                            *row = incoming;
                            *changed = true;
                            ApplyOutcome::Applied
                        }
                        std::cmp::Ordering::Equal => ApplyOutcome::Duplicate,
                        std::cmp::Ordering::Less => ApplyOutcome::Stale {
                            current: stored,
                            current_payload: CustomerPayload::from(&*row).to_value(),
                        },
                    }
                }
            };
            outcomes.push((item.index, outcome));
        }
        for (row, existed, changed) in state.values() {
            match (existed, changed) {
                (true, true) => customers::update(conn, row)?,
                (false, true) => customers::insert(conn, row)?,
                _ => {}
            }
        }
        Ok(outcomes)
    }
}
