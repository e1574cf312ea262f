use ship::contracts::{Change, ChangeRecorder, Hlc, OpKind};
use ship::parents::Task;
use ship::{AnyConnection, DbError};

use crate::data::customers;
use crate::models::{Customer, CustomerPayload};
use crate::RESOURCE;

/// Persist one local write of a customer as a versioned, recorded change: take a version from
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
    const NAME: &'static str = "customers.save_local_write";
}

impl SaveLocalWriteTask {
    pub(crate) fn run(
        conn: &mut AnyConnection,
        recorder: &dyn ChangeRecorder,
        mut row: Customer,
        write: Write,
    ) -> Result<Customer, DbError> {
        let stored = match write {
            Write::Insert => None,
            // The row still carries the version it holds in the database.
            Write::Update => Some(
                Hlc::from_i64(row.sync_version)
                    .map_err(|e| crate::tasks::invalid(&e.to_string()))?,
            ),
        };
        let version = recorder.stamp(stored);
        row.sync_version = version.hlc.as_i64();
        row.sync_origin = version.origin.clone();
        match write {
            Write::Insert => customers::insert(conn, &row)?,
            Write::Update => customers::update(conn, &row)?,
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
            payload: CustomerPayload::from(&row).to_payload()?,
        };
        recorder.record_local(conn, &change)?;
        Ok(row)
    }

    /// New rows (fresh ids, so nothing to lock), as [`run`](Self::run) would insert them one by
    /// one, at a constant number of statements per chunk: a version each, one multi-row insert,
    /// one changelog append for all (`record_local_all`).
    pub(crate) fn insert_all(
        conn: &mut AnyConnection,
        recorder: &dyn ChangeRecorder,
        mut rows: Vec<Customer>,
    ) -> Result<Vec<Customer>, DbError> {
        let mut changes = Vec::with_capacity(rows.len());
        for row in &mut rows {
            let version = recorder.stamp(None);
            row.sync_version = version.hlc.as_i64();
            row.sync_origin = version.origin.clone();
            changes.push(Change {
                resource: RESOURCE.to_string(),
                entity_id: row.id.clone(),
                kind: OpKind::Upsert,
                version,
                payload: CustomerPayload::from(&*row).to_payload()?,
            });
        }
        customers::insert_all(conn, &rows)?;
        recorder.record_local_all(conn, &changes)?;
        Ok(rows)
    }
}
