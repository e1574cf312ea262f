//! ApplyRemoteBatch: last-writer-wins for a batch of replicated writes to `orders`, set-wise on
//! both backends — `ship::lww::apply_batch` (ADR 0013) over the table as described here.

use std::borrow::Cow;

use ship::contracts::{ApplyOutcome, ConflictPolicy, Version};
use ship::lww::{self, Incoming, SyncedTable};
use ship::parents::Task;
use ship::{AnyConnection, DbError};

use super::invalid;
use crate::data::orders;
use crate::models::{Order, OrderPayload};

pub(crate) struct ApplyRemoteBatchTask;

impl Task for ApplyRemoteBatchTask {
    const NAME: &'static str = "orders.apply_remote_batch";
}

/// One change of the batch: its position, its payload (validated) and its version.
pub(crate) struct Item<'a> {
    pub index: usize,
    pub payload: Cow<'a, OrderPayload>,
    pub version: &'a Version,
}

/// `orders` as the batch apply reads, locks and writes it.
struct Table;

impl SyncedTable for Table {
    type Row = Order;

    fn id(row: &Order) -> &str {
        &row.id
    }
    fn version(row: &Order) -> (i64, &str) {
        (row.sync_version, &row.sync_origin)
    }
    fn is_tombstone(row: &Order) -> bool {
        row.is_deleted()
    }
    fn payload(row: &Order) -> serde_json::Value {
        OrderPayload::from(row).to_value()
    }
    fn find_all(conn: &mut AnyConnection, ids: &[&str]) -> diesel::QueryResult<Vec<Order>> {
        orders::find_all(conn, ids)
    }
    fn find_all_for_update(
        conn: &mut AnyConnection,
        ids: &[&str],
    ) -> diesel::QueryResult<Vec<Order>> {
        orders::find_all_for_update(conn, ids)
    }
    fn insert(conn: &mut AnyConnection, row: &Order) -> diesel::QueryResult<()> {
        orders::insert(conn, row)
    }
    fn update(conn: &mut AnyConnection, row: &Order) -> diesel::QueryResult<()> {
        orders::update(conn, row)
    }
    fn insert_or_lock_all(
        conn: &mut AnyConnection,
        rows: &[Order],
    ) -> diesel::QueryResult<Vec<String>> {
        orders::insert_or_lock_all(conn, rows)
    }
    fn overwrite_all(
        conn: &mut AnyConnection,
        rows: &[Order],
        policy: ConflictPolicy,
    ) -> diesel::QueryResult<usize> {
        orders::overwrite_all(conn, rows, policy)
    }
}

impl ApplyRemoteBatchTask {
    /// Apply `items` (any order; decided in the order given) inside the caller's transaction.
    /// The outcomes are those applying the items one by one would give, in the same order.
    pub(crate) fn run(
        conn: &mut AnyConnection,
        items: Vec<Item<'_>>,
        policy: ConflictPolicy,
    ) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
        let incoming = items
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
            .collect::<Result<Vec<_>, DbError>>()?;
        lww::apply_batch::<Table>(conn, incoming, policy)
    }
}
