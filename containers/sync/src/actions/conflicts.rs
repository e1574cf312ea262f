//! The conflict ledger (`regionsync conflicts list | show | what-if | resolve`): the writes a
//! conflict discarded here — a remote write that lost when it arrived, or the stored version a
//! remote one replaced although it had not seen it (a delete undone; under `delete_wins` an
//! update lost to a tombstone) — each with both versions and both payloads, as
//! `ApplyChangesTask` recorded them in `sync_conflicts`.

use chrono::{DateTime, Utc};
use ship::contracts::{ConflictPolicy, Hlc, OpKind, ResourceRegistry, SyncResource, Version};
use ship::parents::Action;
use ship::DbPool;

use crate::data::conflicts;
pub use crate::data::conflicts::{Conflict, ConflictFilter, ConflictSummary};
use crate::errors::SyncError;

/// The most conflicts one list returns.
pub const MAX_CONFLICTS_LISTED: u32 = 10_000;

/// The rule that decided, in words: `reason` as `ApplyChangesTask` records it.
pub fn rule_in_words(reason: &str) -> &'static str {
    match reason {
        "older_hlc" => "the later clock wins",
        "equal_hlc_origin_tiebreak" => "equal clocks: the greater origin wins",
        "delete_wins" => "delete_wins: a tombstone is final",
        _ => "an unknown rule",
    }
}

/// The wall-clock part of an HLC (its high 48 bits, milliseconds since the Unix epoch) as a
/// UTC time; `None` for a value no clock issues (negative).
pub fn hlc_time(hlc: i64) -> Option<DateTime<Utc>> {
    let physical = Hlc::from_i64(hlc).ok()?.physical_ms();
    DateTime::from_timestamp_millis(i64::try_from(physical).ok()?)
}

/// One page of the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListConflictsInput {
    pub filter: ConflictFilter,
    /// At most this many (1 to [`MAX_CONFLICTS_LISTED`]).
    pub limit: i64,
}

/// The recorded conflicts that pass the filter, newest first, without their payloads.
pub struct ListConflictsAction {
    pool: DbPool,
}

impl ListConflictsAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for ListConflictsAction {
    const NAME: &'static str = "sync.list_conflicts";
    type Input = ListConflictsInput;
    type Output = Vec<ConflictSummary>;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.list_conflicts", skip_all, fields(limit = input.limit))]
    async fn run(&self, input: ListConflictsInput) -> Result<Vec<ConflictSummary>, SyncError> {
        if !(1..=i64::from(MAX_CONFLICTS_LISTED)).contains(&input.limit) {
            return Err(SyncError::InvalidLimit {
                max: MAX_CONFLICTS_LISTED,
            });
        }
        self.pool
            .run(move |conn| {
                conflicts::list(conn, &input.filter, input.limit).map_err(SyncError::from)
            })
            .await
    }
}

/// One recorded conflict with both payloads; `None` when no conflict has the id.
pub struct GetConflictAction {
    pool: DbPool,
}

impl GetConflictAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for GetConflictAction {
    const NAME: &'static str = "sync.get_conflict";
    /// The conflict's id.
    type Input = i64;
    type Output = Option<Conflict>;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.get_conflict", skip_all, fields(id = id))]
    async fn run(&self, id: i64) -> Result<Option<Conflict>, SyncError> {
        self.pool
            .run(move |conn| conflicts::get(conn, id).map_err(SyncError::from))
            .await
    }
}

/// Whether a recorded payload is a live row or a tombstone (the kind whose validation it
/// passes); `None`: neither (recorded by another schema).
pub(crate) fn payload_kind(
    resource: &dyn SyncResource,
    entity: &str,
    payload: &serde_json::Value,
) -> Option<OpKind> {
    [OpKind::Upsert, OpKind::Delete]
        .into_iter()
        .find(|k| resource.validate(entity, *k, payload).is_ok())
}

/// `regionsync conflicts what-if --resource R --policy P`: the recorded conflicts of `R`
/// replayed under `P`.
#[derive(Debug, Clone)]
pub struct WhatIfInput {
    pub resource: String,
    pub policy: ConflictPolicy,
    /// At most this many changed outcomes are listed (all are counted).
    pub limit: usize,
}

/// One recorded conflict whose outcome `P` would turn around: the version that lost would win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnedAround {
    pub id: i64,
    pub entity_id: String,
    pub detected_at: chrono::NaiveDateTime,
    /// The rule that decided then.
    pub reason: String,
    /// `(origin, hlc, kind)` of the recorded winner and loser.
    pub winner: (String, i64, OpKind),
    pub loser: (String, i64, OpKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatIf {
    /// The resource's policy here now.
    pub current: ConflictPolicy,
    /// Conflicts of the resource in the ledger, and how many of them `P` would turn around.
    pub examined: u64,
    pub turned: u64,
    /// Conflicts whose payloads pass neither kind's validation (not judged).
    pub unreadable: u64,
    /// The first `limit` turned around, oldest first.
    pub listed: Vec<TurnedAround>,
}

/// Replays the ledger of one resource under another policy, changing nothing. Only what the
/// ledger holds can be replayed: a conflict recorded in another region is in that region's
/// ledger (each region records the conflicts that arrive there).
pub struct WhatIfAction {
    pool: DbPool,
    registry: ResourceRegistry,
}

impl WhatIfAction {
    pub fn new(pool: DbPool, registry: ResourceRegistry) -> Self {
        Self { pool, registry }
    }
}

/// Rows of the ledger read per query.
const WHAT_IF_PAGE: i64 = 1_000;

impl Action for WhatIfAction {
    const NAME: &'static str = "sync.conflicts_what_if";
    type Input = WhatIfInput;
    type Output = WhatIf;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.conflicts_what_if", skip_all, fields(resource = %input.resource, policy = %input.policy))]
    async fn run(&self, input: WhatIfInput) -> Result<WhatIf, SyncError> {
        let resource = super::synced(&self.registry, &input.resource)?;
        let current = self.registry.policy(resource.name());
        self.pool
            .run(move |conn| {
                let mut out = WhatIf {
                    current,
                    examined: 0,
                    turned: 0,
                    unreadable: 0,
                    listed: Vec::new(),
                };
                let mut after = 0;
                loop {
                    let page = conflicts::page_of(conn, resource.name(), after, WHAT_IF_PAGE)?;
                    let Some(last) = page.last() else { break };
                    after = last.id;
                    for c in page {
                        out.examined += 1;
                        let kind = |payload: &str| {
                            let payload = serde_json::from_str(payload).ok()?;
                            payload_kind(resource.as_ref(), &c.entity_id, &payload)
                        };
                        let version = |hlc: i64, origin: &str| {
                            Hlc::from_i64(hlc)
                                .ok()
                                .map(|hlc| Version::new(hlc, origin.to_string()))
                        };
                        let (Some(wk), Some(lk), Some(wv), Some(lv)) = (
                            kind(&c.winner_payload),
                            kind(&c.loser_payload),
                            version(c.winner_hlc, &c.winner_origin),
                            version(c.loser_hlc, &c.loser_origin),
                        ) else {
                            out.unreadable += 1;
                            continue;
                        };
                        let tomb = |k: OpKind| k == OpKind::Delete;
                        let order = input.policy.compare((&lv, tomb(lk)), (&wv, tomb(wk)));
                        if order != std::cmp::Ordering::Greater {
                            continue;
                        }
                        out.turned += 1;
                        if out.listed.len() < input.limit {
                            out.listed.push(TurnedAround {
                                id: c.id,
                                entity_id: c.entity_id,
                                detected_at: c.detected_at,
                                reason: c.reason,
                                winner: (c.winner_origin, c.winner_hlc, wk),
                                loser: (c.loser_origin, c.loser_hlc, lk),
                            });
                        }
                    }
                }
                Ok::<_, SyncError>(out)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_reads_in_words() {
        assert_eq!(rule_in_words("older_hlc"), "the later clock wins");
        assert_eq!(
            rule_in_words("equal_hlc_origin_tiebreak"),
            "equal clocks: the greater origin wins"
        );
        assert_eq!(
            rule_in_words("delete_wins"),
            "delete_wins: a tombstone is final"
        );
        assert_eq!(rule_in_words("other"), "an unknown rule");
    }

    #[test]
    fn an_hlc_reads_as_its_wall_clock_part() {
        // 2026-12-06T00:31:10.123Z, counter 5.
        let ms = 1_796_517_070_123_i64;
        let t = hlc_time((ms << 16) | 5);
        assert_eq!(
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            Some("2026-12-06T00:31:10.123Z".to_string())
        );
        assert_eq!(hlc_time(-1), None);
    }
}

/// How a conflict was resolved; `None` while it was not.
pub struct GetResolutionAction {
    pool: DbPool,
}

impl GetResolutionAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for GetResolutionAction {
    const NAME: &'static str = "sync.get_resolution";
    type Input = i64;
    type Output = Option<conflicts::Resolution>;
    type Error = SyncError;

    async fn run(&self, id: i64) -> Result<Option<conflicts::Resolution>, SyncError> {
        self.pool
            .run(move |conn| conflicts::resolution(conn, id).map_err(SyncError::from))
            .await
    }
}

/// Which version of a conflict to write again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Winner,
    Loser,
}

impl Take {
    pub fn as_str(self) -> &'static str {
        match self {
            Take::Winner => "winner",
            Take::Loser => "loser",
        }
    }
}

pub struct ResolveConflictInput {
    pub id: i64,
    pub take: Take,
    /// Who resolves it, and why (the audit line).
    pub by: String,
    pub why: String,
}

/// What a resolve did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Written as a new local write with this resolution's version; it replicates by the
    /// normal path (the changelog, the push and the pulls).
    Written(conflicts::Resolution),
    NoSuchConflict,
    /// Resolved before: nothing written.
    AlreadyResolved(conflicts::Resolution),
    /// Nothing written: the row no longer holds the conflict's winning version (a later write
    /// changed it), or writing the chosen version would break a reference (a customer
    /// tombstone that live orders name, an order whose customer is not here). Why, in words.
    Refused(String),
}

/// `regionsync conflicts resolve ID --take winner|loser`: the chosen version's payload written
/// again as a new local write of this region — a fresh version above the row's, recorded in the
/// changelog like any local write, so it replicates everywhere by the normal path — and an
/// audit line (who, why, which, the version). The kind (upsert or tombstone) is the one whose
/// validation the recorded payload passes.
pub struct ResolveConflictAction {
    pool: DbPool,
    registry: ship::contracts::ResourceRegistry,
    recorder: std::sync::Arc<dyn ship::contracts::ChangeRecorder>,
}

impl ResolveConflictAction {
    pub fn new(
        pool: DbPool,
        registry: ship::contracts::ResourceRegistry,
        recorder: std::sync::Arc<dyn ship::contracts::ChangeRecorder>,
    ) -> Self {
        Self {
            pool,
            registry,
            recorder,
        }
    }
}

impl Action for ResolveConflictAction {
    const NAME: &'static str = "sync.resolve_conflict";
    type Input = ResolveConflictInput;
    type Output = Resolved;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.resolve_conflict", skip_all, fields(id = input.id, take = input.take.as_str()))]
    async fn run(&self, input: ResolveConflictInput) -> Result<Resolved, SyncError> {
        use ship::contracts::{contract_error, ApplyOutcome, Change};
        let (registry, recorder) = (self.registry.clone(), std::sync::Arc::clone(&self.recorder));
        let broken = |m: String| SyncError::Db(contract_error(m));
        let resolved = self
            .pool
            .transaction(move |conn| {
                let Some(conflict) = conflicts::get(conn, input.id)? else {
                    return Ok(Resolved::NoSuchConflict);
                };
                if let Some(before) = conflicts::resolution(conn, input.id)? {
                    return Ok(Resolved::AlreadyResolved(before));
                }
                let resource = registry
                    .get(&conflict.resource)
                    .ok_or_else(|| broken(format!("`{}` is not synced here", conflict.resource)))?;
                let stored = match input.take {
                    Take::Winner => &conflict.winner_payload,
                    Take::Loser => &conflict.loser_payload,
                };
                let payload: serde_json::Value = serde_json::from_str(stored)
                    .map_err(|e| broken(format!("the recorded payload is not JSON: {e}")))?;
                let entity = conflict.entity_id.clone();
                let kind = payload_kind(resource.as_ref(), &entity, &payload)
                    .ok_or_else(|| {
                        broken("the recorded payload does not pass this region's validation".into())
                    })?;
                let stored = resource.entity(conn, &entity)?;
                let deleted = stored.as_ref().is_some_and(|c| c.kind == OpKind::Delete);
                let current = stored.map(|c| c.version);
                let winner = (conflict.winner_hlc, conflict.winner_origin.as_str());
                if current.as_ref().map(|v| (v.hlc.as_i64(), v.origin.as_str())) != Some(winner) {
                    return Ok(Resolved::Refused(format!(
                        "the row no longer holds the version that won ({}.{}): a later write changed it; see it with the API and write what it should hold",
                        conflict.winner_hlc, conflict.winner_origin
                    )));
                }
                let policy = registry.policy(&conflict.resource);
                if policy == ConflictPolicy::DeleteWins && deleted && kind == OpKind::Upsert {
                    return Ok(Resolved::Refused(format!(
                        "`{}` decides conflicts by delete_wins: its tombstone is final in every region, so a live version written over it would lose everywhere else; create a new row instead",
                        conflict.resource
                    )));
                }
                if let Some(why) = breaks_a_reference(conn, &registry, resource.as_ref(), &entity, kind, &payload)? {
                    return Ok(Resolved::Refused(why));
                }
                let version = recorder.stamp(current.map(|v| v.hlc));
                let change = Change {
                    resource: conflict.resource.clone(),
                    entity_id: entity,
                    kind,
                    version,
                    payload: payload.into(),
                };
                match resource.apply(conn, &change, policy)? {
                    // Over a tombstone, the chosen live version is `AppliedOver`: the delete
                    // is what the operator undoes.
                    ApplyOutcome::Applied | ApplyOutcome::AppliedOver { .. } => {}
                    other => {
                        return Err(broken(format!(
                            "the row changed while it was resolved ({other:?}): run it again"
                        )))
                    }
                }
                recorder.record_local(conn, &change)?;
                let resolution = conflicts::Resolution {
                    conflict_id: conflict.id,
                    took: input.take.as_str().to_string(),
                    hlc: change.version.hlc.as_i64(),
                    origin_region: change.version.origin.clone(),
                    resolved_by: input.by.chars().take(200).collect(),
                    why: input.why.chars().take(2_000).collect(),
                    resolved_at: ship::db::utc_now(),
                };
                conflicts::record_resolution(conn, &resolution)?;
                Ok::<_, SyncError>(Resolved::Written(resolution))
            })
            .await?;
        if matches!(resolved, Resolved::Written(_)) {
            self.recorder.committed();
        }
        Ok(resolved)
    }
}

/// Why writing `payload` as a local write of `entity` would break a reference (ADR 0015), if
/// it would: an upsert naming a row that is not here or is deleted, or a tombstone of a row
/// that live rows of another resource name.
fn breaks_a_reference(
    conn: &mut ship::AnyConnection,
    registry: &ship::contracts::ResourceRegistry,
    resource: &dyn ship::contracts::SyncResource,
    entity: &str,
    kind: ship::contracts::OpKind,
    payload: &serde_json::Value,
) -> Result<Option<String>, SyncError> {
    use ship::contracts::{OpKind, RowState};
    if kind == OpKind::Delete {
        let live = registry.live_referrers(conn, resource.name(), &[entity])?;
        return Ok((live > 0).then(|| {
            format!("{live} live row(s) of other resources name it: delete or change those first")
        }));
    }
    for reference in resource.references() {
        let Some(named) = payload.get(reference.field).and_then(|v| v.as_str()) else {
            continue;
        };
        let state = registry
            .row_info(conn, reference.resource, &[named])?
            .remove(named)
            .map(|info| info.state);
        if state != Some(RowState::Live) {
            return Ok(Some(format!(
                "it names {}/{named}, which is {} here",
                reference.resource,
                if state.is_some() { "deleted" } else { "not" }
            )));
        }
    }
    Ok(None)
}
