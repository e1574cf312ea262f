//! Contracts containers exchange without depending on each other (Porto's bridge): the trait
//! or data type lives here, the implementation in the owning container, and `app` hands the
//! implementation in at start-up.
//!
//! - [`ChangeRecorder`]: a domain action records its write in the changelog (and the outbox)
//!   inside its own transaction.
//! - [`SyncResource`]: a domain container exposes one synced table to the sync container
//!   (payload validation, atomic last-writer-wins apply of one op, a digest of its rows).
//! - [`ResourceRegistry`]: the resources of this binary, by name, built by `app`.
//! - [`PeerDirectory`] / [`KeySource`]: where the peers are, tokens for calling them and the
//!   broker's public keys (implemented by the broker container).

pub mod hlc;
pub mod peers;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use hlc::{system_time_ms, Hlc, HlcError, HybridClock, Version};
/// Something a process reports about itself in `GET /health/ready` (under `status.<name>`);
/// informational: it never makes the process unready.
pub trait StatusSource: Send + Sync {
    fn name(&self) -> &'static str;
    fn status(&self) -> serde_json::Value;
}

/// The status sources `app` registers (as `web::Data<StatusSources>`).
#[derive(Clone, Default)]
pub struct StatusSources(pub Vec<Arc<dyn StatusSource>>);

/// One gauge sample for `GET /metrics` (`ship::http::metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// `regionsync_…`, the same for every sample of one family.
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// What a container contributes to `GET /metrics`: read from the database at scrape time, so
/// every process of a region (web or scheduler) reports the same state. The error says why
/// (the scrape is answered 503).
pub trait MetricsSource: Send + Sync {
    fn collect(&self) -> BoxFuture<'_, Result<Vec<Gauge>, String>>;
}

/// The metrics sources `app` registers (as `web::Data<MetricsSources>`).
#[derive(Clone, Default)]
pub struct MetricsSources(pub Vec<Arc<dyn MetricsSource>>);

pub use peers::{
    BoxFuture, DirectoryError, DirectoryHealth, KeySource, PeerDirectory, PeerGrant, Refresh,
};

use crate::db::{AnyConnection, DbError};

/// What an op does to its entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// The payload is the full row state.
    Upsert,
    /// A tombstone: the row stays, marked deleted, with this version.
    Delete,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Upsert => "upsert",
            OpKind::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "upsert" => Some(OpKind::Upsert),
            "delete" => Some(OpKind::Delete),
            _ => None,
        }
    }
}

/// One change to one entity: what the changelog stores and peers receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub resource: String,
    pub entity_id: String,
    pub kind: OpKind,
    pub version: Version,
    /// The full row state (for a delete: the state at deletion).
    pub payload: serde_json::Value,
}

/// Records local writes for replication.
pub trait ChangeRecorder: Send + Sync {
    /// A fresh version for a local write: this region as origin and a timestamp greater than
    /// every version this process has issued or applied, and greater than `stored` — the
    /// version the locked row holds now (`None` for a new row). Passing `stored` keeps a
    /// write newer than the row it overwrites even when another process of the region (or a
    /// backfill) wrote that row with a clock ahead of ours.
    ///
    /// Call it inside the write's transaction *after* the row is locked (or known new), so
    /// two local writers of one row get versions in their commit order.
    fn stamp(&self, stored: Option<Hlc>) -> Version;

    /// Append `change` to the changelog, on `conn`, inside the caller's transaction: the row
    /// and its changelog entry commit together or not at all (what each push peer is owed
    /// follows from the changelog).
    fn record_local(&self, conn: &mut AnyConnection, change: &Change) -> Result<(), DbError>;

    /// Append `changes`, in order, as [`record_local`](Self::record_local) would one by one —
    /// for a domain action that writes many rows in one transaction (a bulk import): an
    /// implementation may take the sequence numbers and insert the entries in one statement
    /// each. The default records them one by one.
    fn record_local_all(
        &self,
        conn: &mut AnyConnection,
        changes: &[Change],
    ) -> Result<(), DbError> {
        changes
            .iter()
            .try_for_each(|change| self.record_local(conn, change))
    }

    /// Call once the transaction that recorded changes has committed: a dispatcher in this
    /// process delivers them at once instead of at its next poll.
    fn committed(&self) {}
}

/// What applying one op did.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// The op's version was newer than the stored one (or the row was absent): written.
    Applied,
    /// The op's version equals the stored one: already applied, nothing written.
    Duplicate,
    /// The stored version is newer: nothing written. `current` is the winner, for the
    /// conflict record.
    Stale {
        current: Version,
        current_payload: serde_json::Value,
    },
}

/// A problem with one field of a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// One synced table, as its domain container exposes it to replication.
pub trait SyncResource: Send + Sync {
    /// The resource name in URLs (`/sync/{name}/…`) and in the changelog.
    fn name(&self) -> &'static str;

    /// Version of the payload schema; batches for another version are refused.
    fn schema_version(&self) -> u32 {
        1
    }

    /// Check an op's payload before anything is applied (unknown fields, types, limits, and
    /// that the payload describes `entity_id`).
    fn validate(
        &self,
        entity_id: &str,
        kind: OpKind,
        payload: &serde_json::Value,
    ) -> Result<(), Vec<FieldError>>;

    /// Apply one op atomically by last-writer-wins on `(hlc, origin)`, inside the caller's
    /// transaction. Must decide and write in one atomic step (row lock or one statement).
    fn apply(&self, conn: &mut AnyConnection, change: &Change) -> Result<ApplyOutcome, DbError>;

    /// Apply `changes` in order, with exactly the outcomes [`SyncResource::apply`] would give
    /// one by one (a later change of the same entity sees the earlier ones). The default does
    /// that; a resource overrides it to read and write the batch's rows set-wise.
    fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        changes: &[&Change],
    ) -> Result<Vec<ApplyOutcome>, DbError> {
        changes.iter().map(|c| self.apply(conn, c)).collect()
    }

    /// Up to `limit` rows with an id greater than `after` (every row when `None`), in id order,
    /// tombstones included, each as the change that would recreate it: its full state and its
    /// version (for a snapshot, `GET /sync/{resource}/snapshot`). A row whose origin is empty
    /// (written before this database was bound to a region) has `origin` "" — the caller
    /// names it.
    fn snapshot_page(
        &self,
        conn: &mut AnyConnection,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Change>, DbError>;

    /// How many rows (tombstones included) a snapshot would serve now, when the resource can
    /// tell cheaply (the first snapshot page reports it, for the bootstrap's progress and
    /// ETA). The default: unknown.
    fn row_count(&self, _conn: &mut AnyConnection) -> Result<Option<i64>, DbError> {
        Ok(None)
    }

    /// One row (tombstone included) as [`SyncResource::snapshot_page`] gives it; `None`: no such
    /// row. A point lookup, for `sync repair`.
    fn entity(&self, conn: &mut AnyConnection, id: &str) -> Result<Option<Change>, DbError>;

    /// A digest of every row (tombstones included) with its version: equal digests mean equal
    /// state, across regions and backends.
    fn digest(&self, conn: &mut AnyConnection) -> Result<String, DbError>;

    /// Delete tombstones (rows deleted before `before`) except the entities in `keep` (their
    /// delete is still owed to a peer). Runs in the caller's transaction. How many went. The
    /// default keeps every tombstone.
    fn purge_tombstones(
        &self,
        conn: &mut AnyConnection,
        before: chrono::NaiveDateTime,
        keep: &std::collections::HashSet<String>,
    ) -> Result<usize, DbError> {
        let _ = (conn, before, keep);
        Ok(0)
    }
}

/// The synced resources of this binary, by name. Built by `app`; a name that is not here is
/// never turned into SQL.
#[derive(Clone, Default)]
pub struct ResourceRegistry {
    resources: BTreeMap<&'static str, Arc<dyn SyncResource>>,
}

impl std::fmt::Debug for ResourceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.resources.keys()).finish()
    }
}

impl ResourceRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a resource; a second resource with the same name replaces nothing and is refused.
    pub fn register(&mut self, resource: Arc<dyn SyncResource>) -> Result<(), String> {
        let name = resource.name();
        if self.resources.contains_key(name) {
            return Err(format!("resource `{name}` is registered twice"));
        }
        self.resources.insert(name, resource);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn SyncResource>> {
        self.resources.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.resources.keys().copied()
    }
}
