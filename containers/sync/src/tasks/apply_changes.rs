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
use crate::models::{ChangeLogEntry, ChangeLogRow};
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
    ///
    /// `local`: this region, when the winning upserts of other regions may go to the changelog
    /// as batch rows (ADR 0026; never this region's own: delivery reads those row by row);
    /// `None`: a row per entry.
    pub(crate) fn run(
        conn: &mut ship::AnyConnection,
        registry: &ResourceRegistry,
        resource: &dyn SyncResource,
        ops: &mut [ValidOp],
        local: Option<&str>,
    ) -> Result<Vec<OpStatus>, SyncError> {
        Self::run_at(conn, registry, resource, ops, local, 0)
    }

    fn run_at(
        conn: &mut ship::AnyConnection,
        registry: &ResourceRegistry,
        resource: &dyn SyncResource,
        ops: &mut [ValidOp],
        local: Option<&str>,
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
        let policy = registry.policy(resource.name());
        // Ops whose entry may go in a batch row: upserts of another region (ADR 0026).
        let batchable = |i: usize| {
            let change = &ops[i].change;
            local.is_some_and(|local| {
                change.kind == OpKind::Upsert && change.version.origin != local
            })
        };
        let element = |i: usize| {
            let change = &ops[i].change;
            changelog::batch_element(
                &change.entity_id,
                change.version.hlc.as_i64(),
                &change.payload,
            )
        };
        // MariaDB: the batch-row entries of every batchable op are written on another thread
        // while this one sends the rows and the server applies them (ADR 0024); an op that
        // loses, or whose entry goes alone after all, wastes its text, which is rare and costs
        // less than the wait it fills.
        let (outcomes, mut elements) =
            if matches!(conn, ship::AnyConnection::Mysql(_)) && order.len() > 1 {
                let (outcomes, elements) = ship::parallel::join(
                    || resource.apply_batch(conn, &batch, policy),
                    || {
                        let mut elements: Vec<Option<_>> = ops.iter().map(|_| None).collect();
                        for &i in &order {
                            if batchable(i) {
                                elements[i] = Some(element(i));
                            }
                        }
                        elements
                    },
                );
                (outcomes, elements)
            } else {
                (
                    resource.apply_batch(conn, &batch, policy),
                    ops.iter().map(|_| None).collect(),
                )
            };
        let outcomes = outcomes?;
        for (i, outcome) in order.into_iter().zip(outcomes) {
            let change = &ops[i].change;
            statuses[i] = match outcome {
                ApplyOutcome::Applied => {
                    winners.push(i);
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

        // The winners' changelog rows, made before the payloads are spent.
        let (rows, entries) = changelog_rows(
            ops,
            &winners,
            &batchable,
            |i| match elements[i].take() {
                Some(written) => written,
                None => element(i),
            },
            schema_version,
            now,
        )?;
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
                // The next seqs, in this order. As a local write's, one entry alone on MariaDB
                // takes its seq from the sequence row it locks, with no read-back under that
                // lock (ADR 0021).
                match rows {
                    Rows::One(entry) => {
                        changelog::append(conn, resource.name(), vec![entry], largest)?
                    }
                    Rows::Many(rows) => {
                        changelog::append_rows(conn, resource.name(), rows, entries, largest)?
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

/// A batch's winners as changelog rows.
enum Rows {
    /// One entry alone: appended as a local write's (ADR 0021).
    One(ChangeLogEntry),
    /// Rows numbered by place ([`changelog::append_rows`]).
    Many(Vec<ChangeLogRow>),
}

/// The changelog rows of the winners `winners` (indices into `ops`, in apply order), and how
/// many entries they hold: first a row for each winner that stays an entry of its own, in
/// apply order; then, per origin, the others as batch rows (ADR 0026) of
/// [`changelog::BATCH_ROW_MAX`] entries and about [`changelog::BATCH_ROW_BYTES`] at most
/// (several when there are more), ordered by clock so that a row's last entry has its largest
/// (the row's own `hlc`). An entry stays on its own when it is not `batchable`, when its
/// origin has fewer than [`changelog::BATCH_ROW_FROM`] batchable winners, or when its entity
/// has another winner that does not go in the same origin's rows: an entity's entries keep
/// their order (its versions' order), so its delete stays its latest entry. Otherwise the
/// order of a transaction's entries is free: they commit together, and each carries its own
/// version. `element` gives an op's entry as a batch row holds it.
fn changelog_rows(
    ops: &[ValidOp],
    winners: &[usize],
    batchable: &dyn Fn(usize) -> bool,
    mut element: impl FnMut(usize) -> Result<String, diesel::result::Error>,
    schema_version: i32,
    now: chrono::NaiveDateTime,
) -> Result<(Rows, i64), SyncError> {
    // Where each entity's winners would go: the origin of its batch rows, or `None` (alone).
    let mut goes: HashMap<&str, Option<&str>> = HashMap::new();
    for &i in winners {
        let change = &ops[i].change;
        let to = batchable(i).then_some(change.version.origin.as_str());
        goes.entry(change.entity_id.as_str())
            .and_modify(|was| {
                if *was != to {
                    *was = None;
                }
            })
            .or_insert(to);
    }
    let mut alone = Vec::new();
    let mut by_origin: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (place, &i) in winners.iter().enumerate() {
        match goes
            .get(ops[i].change.entity_id.as_str())
            .copied()
            .flatten()
        {
            Some(origin) => by_origin.entry(origin).or_default().push(place),
            None => alone.push(place),
        }
    }
    by_origin.retain(|_, group| {
        let keep = group.len() >= changelog::BATCH_ROW_FROM;
        if !keep {
            alone.append(group);
        }
        keep
    });
    // Places in `winners`, back to indices into `ops`; those alone in apply order.
    alone.sort_unstable();
    let alone: Vec<usize> = alone.into_iter().map(|place| winners[place]).collect();
    let by_origin: BTreeMap<&str, Vec<usize>> = by_origin
        .into_iter()
        .map(|(origin, group)| {
            (
                origin,
                group.into_iter().map(|place| winners[place]).collect(),
            )
        })
        .collect();
    let entry = |i: usize| ChangeLogEntry::of(&ops[i].change, schema_version, now);
    if let ([i], true) = (alone.as_slice(), by_origin.is_empty()) {
        return Ok((Rows::One(entry(*i)), 1));
    }
    let mut rows = Vec::new();
    let mut place = 0_i64;
    for &i in &alone {
        place += 1;
        rows.push(ChangeLogRow::single(ChangeLogEntry {
            seq: place,
            ..entry(i)
        }));
    }
    for (origin, mut group) in by_origin {
        group.sort_by_key(|&i| (ops[i].change.version.hlc.as_i64(), &ops[i].change.entity_id));
        let mut start = 0;
        while start < group.len() {
            let mut texts = Vec::new();
            let mut bytes = 0;
            let mut end = start;
            while end < group.len()
                && ((end - start) as i64) < changelog::BATCH_ROW_MAX
                && (end == start || bytes < changelog::BATCH_ROW_BYTES)
            {
                let text = element(group[end])?;
                bytes += text.len();
                texts.push(text);
                end += 1;
            }
            let last = &ops[group[end - 1]].change;
            rows.push(ChangeLogRow {
                entry: ChangeLogEntry {
                    resource: last.resource.clone(),
                    seq: place + (end - start) as i64,
                    entity_id: String::new(),
                    op: changelog::BATCH_OP.to_string(),
                    payload: changelog::batch_payload(texts.iter().map(String::as_str)),
                    hlc: last.version.hlc.as_i64(),
                    origin_region: origin.to_string(),
                    schema_version,
                    created_at: now,
                },
                first_seq: Some(place + 1),
            });
            place += (end - start) as i64;
            start = end;
        }
    }
    Ok((Rows::Many(rows), place))
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
            ApplyChangesTask::run_at(conn, registry, resource.as_ref(), &mut ops, None, depth)?;
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
