use ship::contracts::{Change, ChangeRecorder, Hlc, OpKind};
use ship::parents::Task;
use ship::{AnyConnection, DbError};

use crate::data::orders;
use crate::models::{Order, OrderPayload};
use crate::tasks::invalid;
use crate::RESOURCE;

/// Persist one local write of an order as a versioned, recorded change: take a version from
/// the recorder, write the row with it, and record the change in the same transaction.
///
/// The caller has locked the row (or knows it is new) *before* calling: the version is taken
/// after the lock, so two local writers of one row get versions in their commit order.
pub(crate) struct SaveLocalWriteTask;

/// Whether the row exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Insert,
    Update,
}

impl Task for SaveLocalWriteTask {
    const NAME: &'static str = "orders.save_local_write";
}

impl SaveLocalWriteTask {
    pub(crate) fn run(
        conn: &mut AnyConnection,
        recorder: &dyn ChangeRecorder,
        mut row: Order,
        write: Write,
    ) -> Result<Order, DbError> {
        let stored = match write {
            Write::Insert => None,
            // The row still carries the version it holds in the database.
            Write::Update => {
                Some(Hlc::from_i64(row.sync_version).map_err(|e| invalid(&e.to_string()))?)
            }
        };
        let version = recorder.stamp(stored);
        row.sync_version = version.hlc.as_i64();
        row.sync_origin = version.origin.clone();
        match write {
            Write::Insert => orders::insert(conn, &row)?,
            Write::Update => orders::update(conn, &row)?,
        }
        let kind = if row.is_deleted() {
            OpKind::Delete
        } else {
            OpKind::Upsert
        };
        let change = Change {
            resource: RESOURCE.to_string(),
            entity_id: row.id.clone(),
            kind,
            version,
            payload: OrderPayload::from(&row).to_payload()?,
        };
        recorder.record_local(conn, &change)?;
        Ok(row)
    }
}
