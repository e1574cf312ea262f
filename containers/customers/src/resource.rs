//! The customers table as a [`SyncResource`]: what the sync container calls to validate,
//! apply and compare replicated customers.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use ship::contracts::{
    ApplyOutcome, Change, Checked, ConflictPolicy, FieldError, Hlc, OpKind, RowInfo, RowState,
    SyncResource, Version,
};
use ship::{AnyConnection, DbError};

use crate::data::customers;
use crate::models::CustomerPayload;
use crate::tasks::apply_remote_batch::{ApplyRemoteBatchTask, Item};
use crate::tasks::invalid;
use crate::{validation, RESOURCE};

/// Rows read per query while computing the digest.
const DIGEST_PAGE: i64 = 1_000;

/// `customers` for the sync container. Payloads are [`CustomerPayload`]s (schema version 1).
#[derive(Debug, Clone, Copy, Default)]
pub struct CustomersResource;

/// One row as the digest hashes it: the payload (its fields in their documented order), the
/// version and its origin, serialised as compact JSON, one line per row.
#[derive(Serialize)]
struct DigestRow<'a> {
    payload: &'a CustomerPayload,
    version: i64,
    origin: &'a str,
}

impl SyncResource for CustomersResource {
    fn name(&self) -> &'static str {
        RESOURCE
    }

    fn validate(
        &self,
        entity_id: &str,
        kind: OpKind,
        payload: &serde_json::Value,
    ) -> Result<(), Vec<FieldError>> {
        self.validate_checked(entity_id, kind, payload).map(|_| ())
    }

    /// The payload decoded into a [`CustomerPayload`], kept with the change for the apply.
    fn validate_checked(
        &self,
        entity_id: &str,
        kind: OpKind,
        payload: &serde_json::Value,
    ) -> Result<Option<Checked>, Vec<FieldError>> {
        let payload = validation::payload(kind, payload)?;
        if payload.id != entity_id {
            return Err(vec![FieldError::new(
                "id",
                "entity_mismatch",
                "the payload's id is not the op's entity_id",
            )]);
        }
        Ok(Some(Arc::new(payload)))
    }

    /// Last-writer-wins on `(sync_version, sync_origin)` vs the op's `(hlc, origin)`, decided
    /// under the row lock inside the caller's transaction (the batch apply with one change). The payload must have passed
    /// [`SyncResource::validate`]; an invalid one (or one whose `id` is not the op's entity) is
    /// an error, never a partial write.
    #[tracing::instrument(name = "customers.apply", skip_all, fields(entity_id = %change.entity_id, kind = change.kind.as_str()))]
    fn apply(
        &self,
        conn: &mut AnyConnection,
        change: &Change,
        policy: ConflictPolicy,
    ) -> Result<ApplyOutcome, DbError> {
        let payload = checked(change)?;
        let item = Item {
            index: 0,
            payload,
            version: &change.version,
        };
        ApplyRemoteBatchTask::run(conn, vec![item], policy)?
            .pop()
            .map(|(_, outcome)| outcome)
            .ok_or_else(|| invalid("the change got no outcome"))
    }

    /// Set-wise on both backends (`ApplyRemoteBatchTask`, ADR 0013): the batch's rows are read
    /// — on MariaDB locked, in id order, by one insert-or-lock pass — and decided in memory in
    /// batch order; a constant number of statements per batch.
    #[tracing::instrument(name = "customers.apply_batch", skip_all, fields(changes = changes.len()))]
    fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        changes: &[&Change],
        policy: ConflictPolicy,
    ) -> Result<Vec<ApplyOutcome>, DbError> {
        let mut items = Vec::with_capacity(changes.len());
        for (index, change) in changes.iter().enumerate() {
            items.push(Item {
                index,
                payload: checked(change)?,
                version: &change.version,
            });
        }
        let mut outcomes: Vec<Option<ApplyOutcome>> = vec![None; changes.len()];
        for (index, outcome) in ApplyRemoteBatchTask::run(conn, items, policy)? {
            outcomes[index] = Some(outcome);
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| invalid("a change of the batch got no outcome")))
            .collect()
    }

    /// The purge candidates of prune, locked (the contract's locking rule).
    fn tombstones_before(
        &self,
        conn: &mut AnyConnection,
        before: chrono::NaiveDateTime,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, DbError> {
        Ok(customers::tombstones_before(conn, before, after, limit)?)
    }

    fn delete_tombstones(
        &self,
        conn: &mut AnyConnection,
        ids: &[String],
    ) -> Result<usize, DbError> {
        Ok(customers::delete_tombstones(conn, ids)?)
    }

    fn snapshot_page(
        &self,
        conn: &mut AnyConnection,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Change>, DbError> {
        customers::all_page(conn, after, limit)?
            .iter()
            .map(as_change)
            .collect()
    }

    fn row_info(
        &self,
        conn: &mut AnyConnection,
        ids: &[&str],
        lock: bool,
    ) -> Result<HashMap<String, RowInfo>, DbError> {
        Ok(customers::states(conn, ids, lock)?
            .into_iter()
            .map(|(id, tenant_id, deleted)| {
                let state = if deleted {
                    RowState::Deleted
                } else {
                    RowState::Live
                };
                (id, RowInfo { state, tenant_id })
            })
            .collect())
    }

    fn row_count(&self, conn: &mut AnyConnection) -> Result<Option<i64>, DbError> {
        Ok(Some(customers::count_all(conn)?))
    }

    fn entity(&self, conn: &mut AnyConnection, id: &str) -> Result<Option<Change>, DbError> {
        customers::find(conn, id)?
            .as_ref()
            .map(as_change)
            .transpose()
    }

    /// Hex SHA-256 over every row (tombstones included) ordered by id, each row one line of
    /// `{"payload":{…},"version":<i64>,"origin":"…"}\n`.
    fn digest(&self, conn: &mut AnyConnection) -> Result<String, DbError> {
        let mut hasher = Sha256::new();
        let mut after: Option<String> = None;
        loop {
            let rows = customers::all_page(conn, after.as_deref(), DIGEST_PAGE)?;
            for row in &rows {
                let payload = CustomerPayload::from(row);
                let line = serde_json::to_vec(&DigestRow {
                    payload: &payload,
                    version: row.sync_version,
                    origin: &row.sync_origin,
                })
                .map_err(|e| invalid(&e.to_string()))?;
                hasher.update(&line);
                hasher.update(b"\n");
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == DIGEST_PAGE => after = Some(last.id.clone()),
                _ => break,
            }
        }
        Ok(hex::encode(hasher.finalize()))
    }
}

/// A row as the change that would recreate it (its full state and version).
fn as_change(row: &crate::models::Customer) -> Result<Change, DbError> {
    let hlc = Hlc::from_i64(row.sync_version).map_err(|e| invalid(&e.to_string()))?;
    Ok(Change {
        resource: RESOURCE.to_string(),
        entity_id: row.id.clone(),
        kind: if row.deleted_at.is_some() {
            OpKind::Delete
        } else {
            OpKind::Upsert
        },
        version: Version::new(hlc, row.sync_origin.clone()),
        payload: CustomerPayload::from(row).to_value().into(),
    })
}

/// The change's payload as a [`CustomerPayload`]: the one its validation kept, or decoded and
/// validated here (a change that did not come through the sync container's validation). The
/// contract: a change that does not pass `validate` is refused, never written.
fn checked(change: &Change) -> Result<Cow<'_, CustomerPayload>, DbError> {
    if change.resource != RESOURCE {
        return Err(invalid(&format!(
            "a `{}` change was handed to the customers resource",
            change.resource
        )));
    }
    if let Some(payload) = change.payload.checked::<CustomerPayload>() {
        if payload.id == change.entity_id {
            return Ok(Cow::Borrowed(payload));
        }
    }
    let payload = validation::payload(change.kind, &change.payload).map_err(|errors| {
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        invalid(&format!(
            "invalid customer payload (fields: {})",
            fields.join(", ")
        ))
    })?;
    if payload.id != change.entity_id {
        return Err(invalid("the payload's id is not the change's entity_id"));
    }
    Ok(Cow::Owned(payload))
}
