//! ApplyChanges: apply validated changes inside the caller's transaction — entity rows first, in
//! entity-id order (a fixed lock order), then the winners' changelog entries (the sequence row
//! is locked last, as local writes do), then the conflict records. Shared by the ops route, the
//! pull, the bootstrap, repair and quarantine retries, which each own their transaction.
//!
//! Set-wise: the resource applies the batch in one call (`apply_batch`; customers: a constant
//! number of statements, ADR 0013), the winners take their sequence numbers in one update and
//! go to the changelog in multi-row inserts, and the conflicts are checked in one read and
//! recorded in multi-row inserts.
//!
//! References (ADR 0015): an op that names a row of another resource which is not here (no
//! row, not even a tombstone) is **parked** (`sync_parked_ops`), not applied, not refused; its
//! status is `parked`. The read of the named rows comes before the resource's own rows are
//! locked, so locks go in dependency order (customers before orders) on every path. When a
//! batch's winners include rows that parked ops wait for, those ops are applied in the same
//! transaction (and may park again on another missing row); the sweep
//! ([`ApplyChangesTask::release_ready`], the `sync.release_parked` job) catches any whose row
//! arrived by a path that raced the park.

use std::collections::{BTreeMap, HashMap};

use ship::contracts::{
    contract_error, ApplyOutcome, Change, Hlc, OpKind, Payload, ResourceRegistry, SyncResource,
    Version,
};
use ship::db::utc_now;
use ship::parents::Task;

use crate::data::changelog;
use crate::data::conflicts::{self, NewConflict};
use crate::data::parked_ops::{self, ParkedOp};
use crate::data::quarantine;
use crate::errors::SyncError;
use crate::models::ChangeLogEntry;
use crate::tasks::validate_ops::{ValidOp, SPLIT_FROM};

/// How deep a release may chain (an order released by a customer releasing a shipment…).
const MAX_RELEASE_DEPTH: usize = 4;

/// Parked ops a batch releases in its own transaction at most (the oldest); the sweep takes
/// the rest — a customers page must not turn into a transaction of every order it frees (a
/// region that bootstrapped orders before customers).
const INLINE_RELEASE: usize = 1_000;

/// The outcome of one op, in batch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    Applied,
    Stale,
    Duplicate,
    /// Kept until a row it names arrives (ADR 0015).
    Parked,
}

impl OpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::Applied => "applied",
            OpStatus::Stale => "stale",
            OpStatus::Duplicate => "duplicate",
            OpStatus::Parked => "parked",
        }
    }
}

pub(crate) struct ApplyChangesTask;

impl Task for ApplyChangesTask {
    const NAME: &'static str = "sync.apply_changes";
}

impl ApplyChangesTask {
    /// Apply `ops` of `resource` (registered in `registry`) inside the caller's transaction;
    /// the statuses in batch order.
    ///
    /// The ops' payloads are spent: once their rows are applied and the winners' entries and
    /// the conflict records made from them (before the append), they are taken out of `ops`
    /// (left empty) and freed — for a large batch on a server backend, on another thread
    /// while the server appends the entries. The ops keep their ids, entity ids and versions.
    pub(crate) fn run(
        conn: &mut ship::AnyConnection,
        registry: &ResourceRegistry,
        resource: &dyn SyncResource,
        ops: &mut [ValidOp],
    ) -> Result<Vec<OpStatus>, SyncError> {
        Self::run_at(conn, registry, resource, ops, 0)
    }

    fn run_at(
        conn: &mut ship::AnyConnection,
        registry: &ResourceRegistry,
        resource: &dyn SyncResource,
        ops: &mut [ValidOp],
        depth: usize,
    ) -> Result<Vec<OpStatus>, SyncError> {
        let parked = park_missing(conn, registry, resource, ops)?;
        let mut order: Vec<usize> = (0..ops.len()).filter(|i| !parked[*i]).collect();
        order.sort_by(|&a, &b| {
            ops[a]
                .change
                .entity_id
                .cmp(&ops[b].change.entity_id)
                .then(a.cmp(&b))
        });

        let mut statuses: Vec<OpStatus> = parked
            .iter()
            .map(|&p| {
                if p {
                    OpStatus::Parked
                } else {
                    OpStatus::Duplicate
                }
            })
            .collect();
        let mut winners = Vec::new();
        let mut lost = Vec::new();
        let mut overridden = Vec::new();
        let batch: Vec<&ship::contracts::Change> = order.iter().map(|&i| &ops[i].change).collect();
        let now = utc_now();
        let schema_version = resource.schema_version() as i32;
        let entry = |i: usize| ChangeLogEntry::of(&ops[i].change, schema_version, now);
        let policy = registry.policy(resource.name());
        // MariaDB: the entries of every op that may win are written as SQL on another thread
        // while this one sends the rows and the server applies them (ADR 0024); an op that
        // loses wastes its text, which is rare and costs less than the wait it fills.
        let (outcomes, written) =
            if matches!(conn, ship::AnyConnection::Mysql(_)) && order.len() > 1 {
                let (outcomes, written) = ship::parallel::join(
                    || resource.apply_batch(conn, &batch, policy),
                    || {
                        order
                            .iter()
                            .map(|&i| changelog::mysql_entry(&entry(i)))
                            .collect::<Vec<_>>()
                    },
                );
                (outcomes, Some(written))
            } else {
                (resource.apply_batch(conn, &batch, policy), None)
            };
        let outcomes = outcomes?;
        // Each winner's place in `order` (the entries written above are in that order).
        let mut winner_places = Vec::new();
        for (place, (i, outcome)) in order.into_iter().zip(outcomes).enumerate() {
            let change = &ops[i].change;
            statuses[i] = match outcome {
                ApplyOutcome::Applied => {
                    winners.push(i);
                    winner_places.push(place);
                    OpStatus::Applied
                }
                ApplyOutcome::AppliedOver {
                    lost,
                    lost_payload,
                    rule,
                } => {
                    // The stored version is the loser (a delete undone, or under `delete_wins`
                    // a later update): recorded like a losing op — the region that wrote it
                    // records the other side's arrival the other way round.
                    if lost.origin != change.version.origin {
                        overridden.push((i, lost, lost_payload, rule.as_str()));
                    }
                    winners.push(i);
                    winner_places.push(place);
                    OpStatus::Applied
                }
                ApplyOutcome::Duplicate => OpStatus::Duplicate,
                ApplyOutcome::Stale {
                    current,
                    current_payload,
                    rule,
                } => {
                    // Another region's write lost: keep both versions. A stale op of the stored
                    // write's own origin is just an old, superseded write, not a conflict.
                    if current.origin != change.version.origin {
                        lost.push((i, current, current_payload, rule.as_str()));
                    }
                    OpStatus::Stale
                }
            };
        }

        // MariaDB appends the texts written beside the rows; otherwise the winners' entries
        // are made here, before the payloads are spent.
        let appending = match written {
            Some(written) if winners.len() > 1 => Appending::Written(written),
            _ => Appending::Entries(winners.iter().map(|&i| entry(i)).collect()),
        };
        let records = conflict_records(ops, lost, overridden);
        // The payloads are spent (the rows are applied, the entries and records made): a
        // large batch's are freed while the server appends the entries (the client would wait
        // idle), not after the commit on the answer's path.
        let spent: Vec<Payload> = ops
            .iter_mut()
            .map(|op| std::mem::take(&mut op.change.payload))
            .collect();
        let beside = !matches!(conn, ship::AnyConnection::Sqlite(_)) && ops.len() >= SPLIT_FROM;
        if !winners.is_empty() {
            let largest = winners
                .iter()
                .map(|&i| ops[i].change.version.hlc.as_i64())
                .max()
                .unwrap_or(0);
            let append = || -> Result<(), SyncError> {
                match (&mut *conn, appending) {
                    (ship::AnyConnection::Mysql(c), Appending::Written(written)) => {
                        let entries: Vec<&changelog::MysqlEntry> =
                            winner_places.iter().map(|&place| &written[place]).collect();
                        changelog::append_written(c, resource.name(), &entries, largest)?;
                    }
                    (conn, Appending::Entries(entries)) => {
                        // The next seqs, in this order, taken by `append`. As a local write's:
                        // one winner on MariaDB takes its seq from the sequence row it locks,
                        // with no read-back under that lock (ADR 0021).
                        changelog::append(conn, resource.name(), entries, largest)?;
                    }
                    (_, Appending::Written(_)) => {
                        return Err(SyncError::Db(contract_error(
                            "entries written as MariaDB SQL for another backend".to_string(),
                        )));
                    }
                }
                Ok(())
            };
            if beside {
                ship::parallel::drop_beside(append, spent)?;
            } else {
                append()?;
            }
        }
        if !records.is_empty() {
            conflicts::insert_all_once(conn, &records)?;
        }
        if !winners.is_empty()
            && depth < MAX_RELEASE_DEPTH
            && parked_ops::any_waiting_on(conn, resource.name())?
        {
            let ids: Vec<&str> = winners
                .iter()
                .map(|&i| ops[i].change.entity_id.as_str())
                .collect();
            let waiting = parked_ops::waiting_on(conn, resource.name(), &ids, INLINE_RELEASE)?;
            release(conn, registry, waiting, depth + 1)?;
        }
        Ok(statuses)
    }

    /// The sweep: of the `limit` oldest parked ops after the first `offset`, those whose
    /// missing row is here now are applied (they may park again on another row they name).
    /// How many were looked at and how many released.
    pub(crate) fn release_ready(
        conn: &mut ship::AnyConnection,
        registry: &ResourceRegistry,
        offset: i64,
        limit: i64,
    ) -> Result<(usize, usize), SyncError> {
        let candidates = parked_ops::oldest(conn, offset, limit)?;
        let mut by_waits: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for op in &candidates {
            by_waits
                .entry(op.waits_resource.as_str())
                .or_default()
                .push(op.waits_id.as_str());
        }
        let mut here: HashMap<(String, String), ()> = HashMap::new();
        for (waits, ids) in by_waits {
            let Some(target) = registry.get(waits) else {
                continue;
            };
            for id in target.row_info(conn, &ids, false)?.into_keys() {
                here.insert((waits.to_string(), id), ());
            }
        }
        let ready: Vec<ParkedOp> = candidates
            .iter()
            .filter(|op| here.contains_key(&(op.waits_resource.clone(), op.waits_id.clone())))
            .cloned()
            .collect();
        let released = ready.len();
        release(conn, registry, ready, 1)?;
        Ok((candidates.len(), released))
    }
}

/// How a batch's winners reach the changelog.
enum Appending {
    /// Every op's entry written as MariaDB SQL beside the rows (ADR 0024), in apply order.
    Written(Vec<changelog::MysqlEntry>),
    /// The winners' entries, in apply order.
    Entries(Vec<ChangeLogEntry>),
}

/// A stored version an op met, with its payload and the rule that decided: `(op's index,
/// version, payload, rule)`.
type Met = (usize, Version, serde_json::Value, &'static str);

/// The conflict records of a batch: each op that lost to a stored version of another region
/// (`lost`), and each stored version of another region an op overwrote (`overridden`).
fn conflict_records(ops: &[ValidOp], lost: Vec<Met>, overridden: Vec<Met>) -> Vec<NewConflict> {
    let now = utc_now();
    let lost = lost.into_iter().map(|met| (met, false));
    let overridden = overridden.into_iter().map(|met| (met, true));
    lost.chain(overridden)
        .map(|((i, stored, stored_payload, reason), op_won)| {
            let change = &ops[i].change;
            let op = (
                change.version.hlc.as_i64(),
                change.version.origin.clone(),
                change.payload.text(),
            );
            let stored = (
                stored.hlc.as_i64(),
                stored.origin,
                stored_payload.to_string(),
            );
            let (winner, loser) = if op_won { (op, stored) } else { (stored, op) };
            NewConflict {
                resource: change.resource.clone(),
                entity_id: change.entity_id.clone(),
                winner_hlc: winner.0,
                winner_origin: winner.1,
                winner_payload: winner.2,
                loser_hlc: loser.0,
                loser_origin: loser.1,
                loser_payload: loser.2,
                reason: reason.to_string(),
                detected_at: now,
            }
        })
        .collect()
}

/// Which of `ops` name a row that is not here: those are parked (status `parked`), the rest
/// go on. One read per reference the resource declares.
fn park_missing(
    conn: &mut ship::AnyConnection,
    registry: &ResourceRegistry,
    resource: &dyn SyncResource,
    ops: &[ValidOp],
) -> Result<Vec<bool>, SyncError> {
    let mut parked = vec![false; ops.len()];
    let mut to_park = Vec::new();
    for reference in resource.references() {
        let Some(target) = registry.get(reference.resource) else {
            return Err(SyncError::Db(contract_error(format!(
                "`{}` names `{}`, which is not a registered resource",
                resource.name(),
                reference.resource
            ))));
        };
        let named: Vec<Option<&str>> = ops
            .iter()
            .map(|op| {
                op.change
                    .payload
                    .get(reference.field)
                    .and_then(|v| v.as_str())
            })
            .collect();
        let mut ids: Vec<&str> = named.iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            continue;
        }
        let mut here = target.row_info(conn, &ids, false)?;
        // A named row that is a tombstone is read again, locked to the end of this
        // transaction: prune purges tombstones, and its page lock and this one serialize the
        // two (`PurgeTombstonesTask`). A tombstone purged in between is missing: the op parks.
        // Live rows are not locked — prune never purges one.
        let tombstones: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| {
                here.get(*id)
                    .is_some_and(|info| info.state == ship::contracts::RowState::Deleted)
            })
            .collect();
        if !tombstones.is_empty() {
            let locked = target.row_info(conn, &tombstones, true)?;
            for id in tombstones {
                match locked.get(id) {
                    Some(info) => {
                        here.insert(id.to_string(), info.clone());
                    }
                    None => {
                        here.remove(id);
                    }
                }
            }
        }
        let now = utc_now();
        for (i, id) in named.iter().enumerate() {
            let Some(id) = id else { continue };
            if parked[i] || here.contains_key(*id) {
                continue;
            }
            parked[i] = true;
            let change = &ops[i].change;
            to_park.push(ParkedOp {
                resource: change.resource.clone(),
                entity_id: change.entity_id.clone(),
                hlc: change.version.hlc.as_i64(),
                origin_region: change.version.origin.clone(),
                op: change.kind.as_str().to_string(),
                payload: change.payload.text(),
                waits_resource: reference.resource.to_string(),
                waits_id: id.to_string(),
                parked_at: now,
                schema_version: resource.schema_version() as i32,
            });
        }
    }
    if !to_park.is_empty() {
        let fresh = parked_ops::park_all(conn, &to_park)?;
        tracing::info!(
            resource = resource.name(),
            parked = to_park.len(),
            fresh,
            "ops parked until the rows they name arrive"
        );
    }
    Ok(parked)
}

/// Apply parked ops now (their row arrived): they leave the parked table and go through the
/// apply of their resource, in the caller's transaction, resources in dependency order. Only
/// the ops this transaction took out of the table are applied (a concurrent release applies
/// the others). An op that cannot apply as it is any more — its resource's schema moved on,
/// its payload no longer validates — is quarantined (`sync quarantine list`), never an error
/// of the batch that released it: that batch is another resource's (a customers page).
fn release(
    conn: &mut ship::AnyConnection,
    registry: &ResourceRegistry,
    waiting: Vec<ParkedOp>,
    depth: usize,
) -> Result<(), SyncError> {
    if waiting.is_empty() {
        return Ok(());
    }
    let mut by_resource: BTreeMap<String, Vec<ValidOp>> = BTreeMap::new();
    let mut refused: BTreeMap<(String, String), Vec<quarantine::NewEntry>> = BTreeMap::new();
    for op in parked_ops::take_all(conn, waiting)? {
        match unpark(registry, &op) {
            Ok(valid) => by_resource.entry(op.resource).or_default().push(valid),
            Err(reason) => {
                tracing::warn!(resource = %op.resource, entity = %op.entity_id, %reason, "a parked op cannot apply any more: quarantined");
                let entry = serde_json::json!({
                    "seq": 0,
                    "entity_id": op.entity_id,
                    "kind": op.op,
                    "hlc": op.hlc,
                    "origin": op.origin_region,
                    "payload": serde_json::from_str::<serde_json::Value>(&op.payload)
                        .unwrap_or(serde_json::Value::String(op.payload.clone())),
                });
                refused
                    .entry((op.origin_region.clone(), op.resource.clone()))
                    .or_default()
                    .push((0, op.entity_id.clone(), entry.to_string(), reason));
            }
        }
    }
    for ((origin, resource), entries) in refused {
        quarantine::add(conn, &origin, &resource, &entries)?;
    }
    let order = registry
        .dependency_order()
        .map_err(|e| SyncError::Db(contract_error(e)))?;
    for name in order {
        let Some(mut ops) = by_resource.remove(name) else {
            continue;
        };
        let Some(resource) = registry.get(name) else {
            continue;
        };
        let statuses =
            ApplyChangesTask::run_at(conn, registry, resource.as_ref(), &mut ops, depth)?;
        let applied = statuses.iter().filter(|s| **s == OpStatus::Applied).count();
        tracing::info!(resource = %name, released = ops.len(), applied, "parked ops released");
    }
    Ok(())
}

/// A parked op as the change it was when it parked, checked again against its resource as
/// it is now; why not, otherwise.
fn unpark(registry: &ResourceRegistry, op: &ParkedOp) -> Result<ValidOp, String> {
    let resource = registry
        .get(&op.resource)
        .ok_or_else(|| format!("unknown_resource: `{}` is not synced here", op.resource))?;
    if op.schema_version != resource.schema_version() as i32 {
        return Err(format!(
            "schema_version: parked at version {}, the resource is at {}",
            op.schema_version,
            resource.schema_version()
        ));
    }
    let kind = OpKind::parse(&op.op).ok_or_else(|| format!("invalid_value (kind): `{}`", op.op))?;
    let hlc = Hlc::from_i64(op.hlc).map_err(|e| format!("invalid_value (hlc): {e}"))?;
    let payload: serde_json::Value =
        serde_json::from_str(&op.payload).map_err(|e| format!("invalid_json (payload): {e}"))?;
    resource
        .validate(&op.entity_id, kind, &payload)
        .map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("{} (payload.{}): {}", e.code, e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
    Ok(ValidOp {
        op_id: format!("parked:{}:{}", op.entity_id, op.hlc),
        change: Change {
            resource: op.resource.clone(),
            entity_id: op.entity_id.clone(),
            kind,
            version: Version::new(hlc, op.origin_region.clone()),
            payload: payload.into(),
        },
    })
}
