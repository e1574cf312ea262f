//! ApplyOps: a peer's batch of ops (`POST /sync/{resource}/ops`), applied idempotently by
//! last-writer-wins on `(hlc, origin)`.
//!
//! 1. The whole batch is validated first; one invalid op refuses the batch with every op's
//!    errors (422), and nothing is applied and the clock does not move.
//! 2. One transaction applies the ops in entity-id order (a fixed lock order: two batches on
//!    the same rows never deadlock each other), then appends the winners to the changelog with
//!    their remote origin — no outbox fan-out: their origin pushes them, pulls relay them —
//!    and records the conflicts. The sequence row is locked last, after every entity row, so
//!    appliers and local writers (entity row, then sequence row) take locks in one order.
//! 3. After the commit, the clock observes the newest op (so later local writes are newer).
//!
//! Re-delivering a batch applies nothing: every op is `duplicate` (or `stale`), no changelog
//! entry is added, no conflict is recorded twice.

use std::sync::Arc;

use serde_json::Value;
use ship::contracts::{ConflictPolicy, HybridClock, ResourceRegistry, SyncResource};
use ship::parents::Action;
use ship::DbPool;

use crate::data::refusals;
use crate::errors::SyncError;
use crate::tasks::apply_changes::ApplyChangesTask;
pub use crate::tasks::apply_changes::OpStatus;
use crate::tasks::observe_peer::ObservePeerTask;
use crate::tasks::validate_ops::{Origins, ValidateOpsTask, SPLIT_FROM};

pub struct ApplyOpsInput {
    pub resource: String,
    pub source_region: String,
    pub batch_id: String,
    pub schema_version: u32,
    pub ops: Vec<Value>,
    /// The sender's database incarnation (its `Regionsync-Incarnation` header; '' if absent).
    pub source_incarnation: String,
    /// The sender's conflict policy for the resource (its `Regionsync-Conflict-Policy` header;
    /// '' if absent, which is `lww`): a batch from a region with another policy is refused.
    pub source_policy: String,
}

#[derive(Debug)]
pub struct ApplyOpsOutput {
    pub batch_id: String,
    pub results: Vec<(String, OpStatus)>,
    pub receiver_hlc: i64,
    /// This database's incarnation (answered in the `Regionsync-Incarnation` header).
    pub incarnation: String,
    /// How this region decides the resource's conflicts (answered in the
    /// `Regionsync-Conflict-Policy` header: a sender whose policy differs stops sending).
    pub policy: ConflictPolicy,
}

impl ApplyOpsOutput {
    pub fn count(&self, status: OpStatus) -> usize {
        self.results.iter().filter(|(_, s)| *s == status).count()
    }
}

/// Batch limits (from `[sync]`).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_ops: usize,
    /// The batch's entries go to the changelog as batch rows (`sync.batch_rows`, ADR 0026).
    pub batch_rows: bool,
}

pub struct ApplyOpsAction {
    /// This region: a batch may not speak for it (its own writes are only made here).
    region_id: String,
    pool: DbPool,
    registry: ResourceRegistry,
    clock: Arc<HybridClock>,
    limits: BatchLimits,
}

impl ApplyOpsAction {
    pub fn new(
        region_id: impl Into<String>,
        pool: DbPool,
        registry: ResourceRegistry,
        clock: Arc<HybridClock>,
        limits: BatchLimits,
    ) -> Self {
        Self {
            region_id: region_id.into(),
            pool,
            registry,
            clock,
            limits,
        }
    }
}

impl Action for ApplyOpsAction {
    const NAME: &'static str = "sync.apply_ops";
    type Input = ApplyOpsInput;
    type Output = ApplyOpsOutput;
    type Error = SyncError;

    #[tracing::instrument(
        name = "sync.apply_ops",
        skip_all,
        fields(
            resource = %ship::errors::clip(&input.resource),
            source = %ship::errors::clip(&input.source_region),
            batch = %ship::errors::clip(&input.batch_id),
            ops = input.ops.len()
        )
    )]
    async fn run(&self, input: ApplyOpsInput) -> Result<ApplyOpsOutput, SyncError> {
        let resource = super::synced(&self.registry, &input.resource)?;
        check_batch(&input, resource.as_ref(), self.limits, &self.region_id)?;
        check_policy(&input.source_policy, resource.name(), &self.registry)?;
        // A push carries only its sender's own changes: a relay of another region's would
        // reach this region but never that region (its pull leaves its own origin out), and
        // an op claiming this region's origin would be pushed on as our own write.
        let origins = Origins::SenderOnly(&input.source_region);
        // The ops are counted (their JSON size); a large batch on another thread while it is
        // checked (a small one — a single local write pushed — is not worth a thread).
        let check = || ValidateOpsTask::check(resource.as_ref(), &self.clock, origins, &input.ops);
        let count = || crate::counters::received(&input.source_region, resource.name(), &input.ops);
        let checked = if input.ops.len() >= SPLIT_FROM {
            ship::parallel::join(check, count).0
        } else {
            count();
            check()
        };
        let validated = checked.map(|checked| ValidateOpsTask::owned(checked, input.ops));
        let mut ops = match validated {
            Ok(ops) => ops,
            Err(errors) => {
                let drift = errors.iter().filter(|e| e.code == "clock_drift").count() as i64;
                if drift > 0 {
                    tracing::warn!(
                        refused = drift,
                        "ops refused: remote clock beyond the drift bound"
                    );
                    // Counted for the anomaly alerts (operational record, not data).
                    let source = input.source_region.clone();
                    let counted = self
                        .pool
                        .run(move |conn| {
                            refusals::add(conn, "clock_drift", &source, drift)
                                .map_err(SyncError::from)
                        })
                        .await;
                    if let Err(e) = counted {
                        tracing::warn!(error = %e, "the refusal could not be counted");
                    }
                }
                return Err(SyncError::InvalidOps { errors });
            }
        };
        let newest = ops.iter().map(|op| op.change.version.hlc).max();
        let (source, theirs) = (input.source_region.clone(), input.source_incarnation);
        let registry = self.registry.clone();
        let region = self.limits.batch_rows.then(|| self.region_id.clone());
        let (ops, statuses, incarnation) = self
            .pool
            .transaction(move |conn| {
                ObservePeerTask::run(conn, &source, &theirs)?;
                let statuses = ApplyChangesTask::run(
                    conn,
                    &registry,
                    resource.as_ref(),
                    &mut ops,
                    region.as_deref(),
                )?;
                let incarnation = ship::db::incarnation(conn)?.id;
                Ok::<_, SyncError>((ops, statuses, incarnation))
            })
            .await?;
        crate::counters::ops(&input.source_region, &input.resource, &statuses);
        // Only a committed batch moves the clock (within the drift bound checked above); a
        // local write to a row applied here is stamped above it anyway (`stamp(stored)`).
        if let Some(newest) = newest {
            let _ = self.clock.observe(newest);
        }
        let output = ApplyOpsOutput {
            batch_id: input.batch_id,
            results: ops.into_iter().map(|op| op.op_id).zip(statuses).collect(),
            receiver_hlc: self.clock.last().as_i64(),
            incarnation,
            policy: self.registry.policy(&input.resource),
        };
        tracing::info!(
            applied = output.count(OpStatus::Applied),
            stale = output.count(OpStatus::Stale),
            duplicate = output.count(OpStatus::Duplicate),
            parked = output.count(OpStatus::Parked),
            "batch applied"
        );
        Ok(output)
    }
}

/// The sender must decide the resource's conflicts as this region does (`theirs`: its header,
/// '' for `lww`): under different policies the same ops would leave the regions different.
pub(crate) fn check_policy(
    theirs: &str,
    resource: &str,
    registry: &ResourceRegistry,
) -> Result<(), SyncError> {
    let ours = registry.policy(resource);
    let sent = if theirs.is_empty() {
        Some(ConflictPolicy::Lww)
    } else {
        ConflictPolicy::parse(theirs)
    };
    if sent == Some(ours) {
        return Ok(());
    }
    let theirs = match sent {
        Some(p) => p.as_str().to_string(),
        None => format!("an unknown policy `{theirs}`"),
    };
    Err(SyncError::ConflictPolicyMismatch(format!(
        "this region decides conflicts of `{resource}` by {ours}, the sender by {theirs}: \
         every region must have the same `sync.conflict_policy` for a resource, or they \
         would diverge; nothing was applied"
    )))
}

/// Batch-level checks that need no op parsing.
fn check_batch(
    input: &ApplyOpsInput,
    resource: &dyn SyncResource,
    limits: BatchLimits,
    receiver: &str,
) -> Result<(), SyncError> {
    if input.ops.len() > limits.max_ops {
        return Err(SyncError::BatchTooLarge(format!(
            "{} ops in one batch; the limit is {}: split the batch",
            input.ops.len(),
            limits.max_ops
        )));
    }
    let problem = if input.ops.is_empty() {
        Some("a batch needs at least one op".to_string())
    } else if let Err(m) = ship::config::check_region_id(&input.source_region) {
        Some(format!("source_region: {m}"))
    } else if input.source_region == receiver {
        Some(format!(
            "source_region `{receiver}` is this region: a region does not push to itself"
        ))
    } else if input.batch_id.is_empty() || input.batch_id.len() > 64 {
        Some("batch_id must be 1 to 64 bytes".to_string())
    } else if input.schema_version != resource.schema_version() {
        Some(format!(
            "schema_version {} is not this region's schema version {} of `{}`",
            input.schema_version,
            resource.schema_version(),
            resource.name()
        ))
    } else {
        None
    };
    match problem {
        Some(message) => Err(SyncError::InvalidBatch(message)),
        None => Ok(()),
    }
}
