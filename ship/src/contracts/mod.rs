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

pub mod fields;
pub mod hlc;
pub mod payload;
pub mod peers;
pub mod timestamps;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use hlc::{system_time_ms, Hlc, HlcError, HybridClock, Version};
pub use payload::{Checked, Payload};
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
    pub payload: Payload,
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

/// How a resource decides between two versions of one row (`[sync.conflict_policy]`, the same
/// in every region: a peer with another policy for a resource is refused — PROTOCOL.md,
/// "Conflict policy").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Last writer wins: the greater `(hlc, origin)`.
    #[default]
    Lww,
    /// A tombstone is final: any tombstone beats any live version, then the greater
    /// `(hlc, origin)` — last-writer-wins on `(is_tombstone, hlc, origin)`, a total order, so
    /// regions converge whatever the delivery order.
    DeleteWins,
}

impl ConflictPolicy {
    pub const ALL: [ConflictPolicy; 2] = [ConflictPolicy::Lww, ConflictPolicy::DeleteWins];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::Lww => "lww",
            ConflictPolicy::DeleteWins => "delete_wins",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// How `a` compares with `b` (each a version and whether it is a tombstone) under this
    /// policy: `Greater` — `a` wins.
    pub fn compare(self, a: (&Version, bool), b: (&Version, bool)) -> std::cmp::Ordering {
        match self {
            ConflictPolicy::Lww => a.0.cmp(b.0),
            ConflictPolicy::DeleteWins => a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)),
        }
    }
}

impl std::fmt::Display for ConflictPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an op lost (the conflict ledger's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The stored version has the greater hlc.
    OlderHlc,
    /// Equal hlc: the greater origin won.
    EqualHlcOriginTiebreak,
    /// `delete_wins`: a tombstone beat a live version whatever their clocks.
    DeleteWins,
}

impl Rule {
    /// The rule that decided between the loser `lost` and the winner `won` under `policy`.
    pub fn deciding(policy: ConflictPolicy, lost: (&Version, bool), won: (&Version, bool)) -> Rule {
        if policy == ConflictPolicy::DeleteWins && lost.1 != won.1 {
            Rule::DeleteWins
        } else if lost.0.hlc == won.0.hlc {
            Rule::EqualHlcOriginTiebreak
        } else {
            Rule::OlderHlc
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::OlderHlc => "older_hlc",
            Rule::EqualHlcOriginTiebreak => "equal_hlc_origin_tiebreak",
            Rule::DeleteWins => "delete_wins",
        }
    }
}

/// What applying one op did.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// The op's version won over the stored one (or the row was absent): written.
    Applied,
    /// Written, over a stored version of another region that a conflict discards: a live
    /// version over a tombstone (the delete is undone — a local write never updates a
    /// tombstone, so the writer had not seen the delete), or under `delete_wins` a tombstone
    /// over a live version with a newer clock (that update is lost). For the conflict record,
    /// with the rule that decided.
    AppliedOver {
        lost: Version,
        lost_payload: serde_json::Value,
        rule: Rule,
    },
    /// The op's version equals the stored one: already applied, nothing written.
    Duplicate,
    /// The stored version wins: nothing written. `current` is the winner, for the conflict
    /// record, and `rule` what decided.
    Stale {
        current: Version,
        current_payload: serde_json::Value,
        rule: Rule,
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

/// A payload field of one resource that names a row of another (orders' `customer_id` names
/// a customer). A resource declares its references ([`SyncResource::references`]); the sync
/// container parks a remote op whose referenced row is not here yet and applies it when the
/// row arrives, and a local delete of a row that live rows reference is refused (ADR 0015).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The payload field holding the referenced row's id (a string).
    pub field: &'static str,
    /// The referenced resource's name.
    pub resource: &'static str,
}

/// What a row is here, for a reference to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowState {
    Live,
    /// A tombstone.
    Deleted,
}

/// A row that a reference may name: its state and its tenant (a reference never crosses
/// tenants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowInfo {
    pub state: RowState,
    pub tenant_id: String,
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

    /// [`SyncResource::validate`], giving the typed form the payload was decoded into, which
    /// the sync container keeps with the change ([`Payload::with_checked`]) for
    /// [`SyncResource::apply_batch`] to read back instead of decoding the payload again (ADR
    /// 0023). The default decodes nothing and keeps nothing.
    fn validate_checked(
        &self,
        entity_id: &str,
        kind: OpKind,
        payload: &serde_json::Value,
    ) -> Result<Option<Checked>, Vec<FieldError>> {
        self.validate(entity_id, kind, payload).map(|()| None)
    }

    /// Apply one op atomically, inside the caller's transaction, deciding against the stored
    /// row by `policy` ([`ConflictPolicy::compare`] of the op's and the row's version and
    /// tombstone flag). Must decide and write in one atomic step (row lock or one statement).
    fn apply(
        &self,
        conn: &mut AnyConnection,
        change: &Change,
        policy: ConflictPolicy,
    ) -> Result<ApplyOutcome, DbError>;

    /// Apply `changes` in order, with exactly the outcomes [`SyncResource::apply`] would give
    /// one by one (a later change of the same entity sees the earlier ones). The default does
    /// that; a resource overrides it to read and write the batch's rows set-wise.
    fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        changes: &[&Change],
        policy: ConflictPolicy,
    ) -> Result<Vec<ApplyOutcome>, DbError> {
        changes
            .iter()
            .map(|c| self.apply(conn, c, policy))
            .collect()
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

    /// The rows of this resource's payload fields that name rows of other resources. The
    /// default: none.
    fn references(&self) -> &'static [Reference] {
        &[]
    }

    /// Each of `ids` that has a row here (tombstones included), with its state and tenant; an
    /// id with no row is not in the map. One read, on the caller's connection. With `lock`,
    /// the rows found stay locked to the end of the caller's transaction (MariaDB: `FOR
    /// UPDATE`; SQLite's write transaction holds the database): a local write that depends on
    /// them (an order for a live customer) and a delete of them (refused while live rows
    /// name them) are then serialized.
    fn row_info(
        &self,
        conn: &mut AnyConnection,
        ids: &[&str],
        lock: bool,
    ) -> Result<HashMap<String, RowInfo>, DbError>;

    /// How many live rows (not tombstones) of this resource name one of `targets` in
    /// `reference.field`. Only asked for a reference this resource declares; the default (a
    /// resource that declares none) is 0.
    fn live_referrers(
        &self,
        conn: &mut AnyConnection,
        reference: &Reference,
        targets: &[&str],
    ) -> Result<i64, DbError> {
        let _ = (conn, targets);
        if self.references().contains(reference) {
            return Err(contract_error(format!(
                "resource `{}` declares the reference `{}` but does not count its referrers",
                self.name(),
                reference.field
            )));
        }
        Ok(0)
    }

    /// Of `targets`, the ids some row of this resource (tombstones included) names in
    /// `reference.field`: the tombstones of the referenced resource prune must keep (a later
    /// op naming a purged one would park for good). One read per chunk of `targets`, on the
    /// caller's connection, inside the transaction that holds those tombstones locked (see
    /// [`SyncResource::tombstones_before`]). Only asked for a reference this resource declares;
    /// the default (a resource that declares none) is empty.
    fn named_among(
        &self,
        conn: &mut AnyConnection,
        reference: &Reference,
        targets: &[&str],
    ) -> Result<std::collections::HashSet<String>, DbError> {
        let _ = (conn, targets);
        if self.references().contains(reference) {
            return Err(contract_error(format!(
                "resource `{}` declares the reference `{}` but does not say which rows it names",
                self.name(),
                reference.field
            )));
        }
        Ok(Default::default())
    }

    /// Up to `limit` ids of rows deleted before `before` whose id is above `after`, ascending,
    /// **locked** to the end of the caller's transaction (MariaDB and PostgreSQL: `FOR
    /// UPDATE`; SQLite's write transaction holds the database): prune's page of purge
    /// candidates. An applier that names one of them waits for the prune, and the prune that
    /// waited for an applier reads the rows it committed (ADR 0015). The default: none (a
    /// resource that keeps every tombstone).
    fn tombstones_before(
        &self,
        conn: &mut AnyConnection,
        before: chrono::NaiveDateTime,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, DbError> {
        let _ = (conn, before, after, limit);
        Ok(Vec::new())
    }

    /// Delete the rows of `ids` that are tombstones (a live one is left); how many went. Runs
    /// in the caller's transaction.
    fn delete_tombstones(
        &self,
        conn: &mut AnyConnection,
        ids: &[String],
    ) -> Result<usize, DbError> {
        let _ = (conn, ids);
        Ok(0)
    }
}

/// The synced resources of this binary, by name. Built by `app`; a name that is not here is
/// never turned into SQL.
#[derive(Clone, Default)]
pub struct ResourceRegistry {
    resources: BTreeMap<&'static str, Arc<dyn SyncResource>>,
    /// The conflict policy of each resource that does not use the default ([`ConflictPolicy::Lww`]).
    policies: BTreeMap<&'static str, ConflictPolicy>,
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

    /// Decide the conflicts of `resource` by `policy` (`[sync.conflict_policy]`); a name that is
    /// not registered is refused.
    pub fn set_policy(&mut self, resource: &str, policy: ConflictPolicy) -> Result<(), String> {
        let (&name, _) = self.resources.get_key_value(resource).ok_or_else(|| {
            format!(
                "`{resource}` is not a synced resource of this binary (they are: {})",
                self.names().collect::<Vec<_>>().join(", ")
            )
        })?;
        self.policies.insert(name, policy);
        Ok(())
    }

    /// The conflict policy of `resource` (the default for every resource: `lww`).
    pub fn policy(&self, resource: &str) -> ConflictPolicy {
        self.policies.get(resource).copied().unwrap_or_default()
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.resources.keys().copied()
    }

    /// Every reference to `resource` that another registered resource declares, with the
    /// referencing resource.
    pub fn referrers<'a>(
        &'a self,
        resource: &'a str,
    ) -> impl Iterator<Item = (&'a Arc<dyn SyncResource>, &'static Reference)> + 'a {
        self.resources.values().flat_map(move |r| {
            r.references()
                .iter()
                .filter(move |reference| reference.resource == resource)
                .map(move |reference| (r, reference))
        })
    }

    /// How many live rows of every resource name one of `ids` of `resource` (a local delete
    /// of those rows is refused while this is not 0).
    pub fn live_referrers(
        &self,
        conn: &mut AnyConnection,
        resource: &str,
        ids: &[&str],
    ) -> Result<i64, DbError> {
        let mut live = 0;
        for (referrer, reference) in self.referrers(resource) {
            live += referrer.live_referrers(conn, reference, ids)?;
        }
        Ok(live)
    }

    /// Of `ids` of `resource`, those a row of any resource names (tombstones included):
    /// [`SyncResource::named_among`] over every reference to `resource`.
    pub fn named_among(
        &self,
        conn: &mut AnyConnection,
        resource: &str,
        ids: &[&str],
    ) -> Result<std::collections::HashSet<String>, DbError> {
        let mut named = std::collections::HashSet::new();
        if ids.is_empty() {
            return Ok(named);
        }
        for (referrer, reference) in self.referrers(resource) {
            named.extend(referrer.named_among(conn, reference, ids)?);
        }
        Ok(named)
    }

    /// [`SyncResource::row_info`] of the registered `resource`, the rows found locked (for a
    /// local write that names them: call it before the write locks its own rows, so locks are
    /// taken in dependency order — the referenced resource first, as the apply does); an
    /// unknown name is an error.
    pub fn row_info(
        &self,
        conn: &mut AnyConnection,
        resource: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, RowInfo>, DbError> {
        self.get(resource)
            .ok_or_else(|| contract_error(format!("no registered resource `{resource}`")))?
            .row_info(conn, ids, true)
    }

    /// The names in dependency order: a resource after every resource it references (then by
    /// name), so a sender that goes through them in this order sends a customer before its
    /// orders. A reference to an unregistered resource or a cycle is refused.
    pub fn dependency_order(&self) -> Result<Vec<&'static str>, String> {
        let mut order: Vec<&'static str> = Vec::with_capacity(self.resources.len());
        while order.len() < self.resources.len() {
            let ready = self.resources.iter().find(|(name, r)| {
                !order.contains(name)
                    && r.references()
                        .iter()
                        .all(|reference| order.contains(&reference.resource))
            });
            match ready {
                Some((name, _)) => order.push(name),
                None => {
                    let stuck: Vec<String> = self
                        .resources
                        .keys()
                        .filter(|name| !order.contains(name))
                        .map(|name| name.to_string())
                        .collect();
                    return Err(format!(
                        "the references of {} name an unregistered resource or form a cycle",
                        stuck.join(", ")
                    ));
                }
            }
        }
        Ok(order)
    }
}

/// A domain container as `app` wires it: its synced table and its route table. Each container
/// exposes one (`customers::domain()`), and `app::wiring::domains()` lists them — adding a
/// domain to the binary is one line there (ARCHITECTURE.md, "Adding a domain").
pub struct Domain {
    pub resource: Arc<dyn SyncResource>,
    /// Registers the container's routes; every local write is recorded through the recorder,
    /// and the registry answers for rows of other resources (references, ADR 0015).
    pub routes: fn(&mut actix_web::web::ServiceConfig, Arc<dyn ChangeRecorder>, ResourceRegistry),
    /// The container's part of the OpenAPI document (`GET /openapi.json`): every route `routes`
    /// registers, with its parameters, bodies and error answers (`ship::http::openapi`).
    pub openapi: fn() -> utoipa::openapi::OpenApi,
}

/// An error of a contract's use (a programming or wiring error, not bad input).
pub fn contract_error(message: String) -> DbError {
    DbError::Query(diesel::result::Error::QueryBuilderError(message.into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A resource that only names itself and what it references.
    struct Named(&'static str, &'static [Reference]);

    impl SyncResource for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn references(&self) -> &'static [Reference] {
            self.1
        }
        fn validate(
            &self,
            _: &str,
            _: OpKind,
            _: &serde_json::Value,
        ) -> Result<(), Vec<FieldError>> {
            Ok(())
        }
        fn apply(
            &self,
            _: &mut AnyConnection,
            _: &Change,
            _: ConflictPolicy,
        ) -> Result<ApplyOutcome, DbError> {
            Ok(ApplyOutcome::Duplicate)
        }
        fn snapshot_page(
            &self,
            _: &mut AnyConnection,
            _: Option<&str>,
            _: i64,
        ) -> Result<Vec<Change>, DbError> {
            Ok(vec![])
        }
        fn entity(&self, _: &mut AnyConnection, _: &str) -> Result<Option<Change>, DbError> {
            Ok(None)
        }
        fn digest(&self, _: &mut AnyConnection) -> Result<String, DbError> {
            Ok(String::new())
        }
        fn row_info(
            &self,
            _: &mut AnyConnection,
            _: &[&str],
            _: bool,
        ) -> Result<HashMap<String, RowInfo>, DbError> {
            Ok(HashMap::new())
        }
    }

    const TO_A: &[Reference] = &[Reference {
        field: "a_id",
        resource: "a",
    }];
    const TO_Z: &[Reference] = &[Reference {
        field: "z_id",
        resource: "z",
    }];
    const TO_B: &[Reference] = &[Reference {
        field: "b_id",
        resource: "b",
    }];

    fn registry(all: Vec<Named>) -> ResourceRegistry {
        let mut r = ResourceRegistry::new();
        for n in all {
            r.register(Arc::new(n)).unwrap();
        }
        r
    }

    #[test]
    fn dependency_order_puts_a_referenced_resource_first_whatever_the_names() {
        // `z` references `a`... and `b` references `z`: by name it would be a, b, z.
        let r = registry(vec![Named("b", TO_Z), Named("z", TO_A), Named("a", &[])]);
        assert_eq!(r.dependency_order().unwrap(), vec!["a", "z", "b"]);
        let referrers: Vec<&str> = r.referrers("a").map(|(res, _)| res.name()).collect();
        assert_eq!(referrers, vec!["z"]);
        assert_eq!(r.referrers("b").count(), 0);
    }

    #[test]
    fn a_cycle_or_a_reference_to_an_unregistered_resource_is_refused() {
        let cycle = registry(vec![Named("a", TO_B), Named("b", TO_A)]);
        let err = cycle.dependency_order().unwrap_err();
        assert!(err.contains("a, b") && err.contains("cycle"), "{err}");
        let dangling = registry(vec![Named("a", &[]), Named("b", TO_Z)]);
        let err = dangling.dependency_order().unwrap_err();
        assert!(err.contains('b') && err.contains("unregistered"), "{err}");
    }
}
