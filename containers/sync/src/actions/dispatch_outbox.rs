//! DispatchOutbox (push, SYNC-PROTOCOL §4, ADR 0009, ADR 0014): claim ranges of each push
//! peer's delivery streams whose time has come, with a lease committed before anything is sent
//! (a retried dead letter is in a range too: there is no other path); cut each range into
//! batches within the count and byte limits, and POST them in seq order with a token from the
//! peer directory. Then, per batch:
//!
//! - 200 → delivered;
//! - 413 → halves, down to single ops (a single op still too large is dead);
//! - 422 `invalid_ops` → exactly the named ops are dead, the rest is resent;
//! - 401 `token_expired` → one forced token refresh and one resend;
//! - 422 `clock_drift`, 409 `conflict_policy_mismatch` → given back without an attempt
//!   counted (never dead);
//! - unreachable, 5xx, anything else → one more attempt counted, the next one after an
//!   exponential backoff with jitter; after `max_attempts` the entries are dead.
//!
//! The first failure stops the range: what went before it is delivered, the rest is given back
//! to the stream (which backs off) and claimed again later. A range is leased to one
//! dispatcher, so several dispatchers (threads or processes) never send the same entry at the
//! same time; a dispatcher that dies leaves leases that become claimable again when they run
//! out.
//!
//! A peer this dispatcher could not even connect to (down, not slow) that then takes a batch is
//! back (issue 13.7): its streams stop waiting out their backoff and go at the next pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ship::contracts::{PeerDirectory, Refresh, ResourceRegistry};
use ship::parents::Action;
use ship::DbPool;

use crate::config::SyncConfig;
use crate::data::delivery::{self, ClaimedRange, DeadLetters, RangeEnd};
use crate::errors::SyncError;
use crate::models::ChangeLogEntry;
use crate::tasks::send_ops::{self, SendOpsTask, SendOutcome};

/// What a dispatch pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchSummary {
    pub claimed: usize,
    pub delivered: usize,
    /// Entries rescheduled after a failed attempt.
    pub retried: usize,
    pub dead: usize,
    pub batches: usize,
}

pub struct DispatchOutboxAction {
    pool: DbPool,
    client: reqwest::Client,
    directory: Arc<dyn PeerDirectory>,
    region_id: String,
    config: SyncConfig,
    only: delivery::ClaimFilter,
    /// This database's incarnation as read by the last pass (told to peers with each batch).
    incarnation: std::sync::RwLock<String>,
    /// The peers a send could not connect to, until one takes a batch again.
    down: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The resources in dependency order (a customer before its orders, ADR 0015): a peer's
    /// streams are sent in this order; a resource not listed goes last, by name.
    order: Vec<String>,
    /// The resources' conflict policies (told to the peer with each batch).
    policies: ResourceRegistry,
}

impl DispatchOutboxAction {
    pub fn new(
        pool: DbPool,
        client: reqwest::Client,
        directory: Arc<dyn PeerDirectory>,
        region_id: impl Into<String>,
        config: SyncConfig,
    ) -> Self {
        Self {
            pool,
            client,
            directory,
            region_id: region_id.into(),
            config,
            only: delivery::ClaimFilter::default(),
            incarnation: Default::default(),
            down: Default::default(),
            order: Vec::new(),
            policies: ResourceRegistry::default(),
        }
    }

    /// Tell peers each resource's conflict policy from `registry` (`lww` for a resource not
    /// in it); a peer with another policy refuses the batches (PROTOCOL.md, "Conflict
    /// policy").
    pub fn with_policies(mut self, registry: ResourceRegistry) -> Self {
        self.policies = registry;
        self
    }

    /// Send each peer's streams in this resource order (`ResourceRegistry::dependency_order`),
    /// so a referenced row usually arrives before the rows that name it (they would park
    /// otherwise, and be applied when it comes).
    pub fn in_dependency_order(mut self, order: Vec<String>) -> Self {
        self.order = order;
        self
    }

    /// Deliver only what is owed to `peer` (`regionsync sync run --peer`).
    pub fn only_peer(mut self, peer: impl Into<String>) -> Self {
        self.only.peer = Some(peer.into());
        self
    }

    /// Deliver only the changes of `resource` (`regionsync sync run --resource`).
    pub fn only_resource(mut self, resource: impl Into<String>) -> Self {
        self.only.resource = Some(resource.into());
        self
    }

    /// Send now what is waiting out a backoff too (`regionsync sync run`: an operator who
    /// fixed a peer wants it synced now, not after the backoff's few minutes).
    pub fn ignoring_backoff(mut self) -> Self {
        self.only.ignore_backoff = true;
        self
    }

    /// Note whether `peer` answered (`reached`) or could not be reached; true when it answers
    /// after this dispatcher found it unreachable.
    fn came_back(&self, peer: &str, reached: bool) -> bool {
        let mut down = match self.down.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if reached {
            down.remove(peer)
        } else {
            down.insert(peer.to_string());
            false
        }
    }

    /// The delay before attempt `attempts + 1` (see [`backoff`]).
    fn backoff(&self, attempts: i32) -> Duration {
        backoff(
            self.config.retry_base_ms,
            self.config.retry_max_secs,
            attempts,
            fastrand::f64(),
        )
    }
}

/// The delay before attempt `attempts + 1`: `base_ms` · 2^attempts, capped at `max_secs`, times
/// a factor in [0.5, 1) made of `unit` (uniform in [0, 1)), so that failed senders do not
/// retry in step.
fn backoff(base_ms: u64, max_secs: u64, attempts: i32, unit: f64) -> Duration {
    let base = base_ms as f64 * 2f64.powi(attempts.clamp(0, 30));
    let capped = base.min(max_secs as f64 * 1000.0);
    Duration::from_millis((capped * (0.5 + unit.clamp(0.0, 1.0) / 2.0)) as u64)
}

/// How a range's batches ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Every change went or is a dead letter.
    Done,
    /// A failure: the rest was given back (or another dispatcher holds it now).
    Stopped,
}

/// A claimed range being sent: the range, and the retried dead letters among its changes
/// (`Loaded::retried` of `delivery::entries`, sorted), settled with it.
struct Sending {
    range: ClaimedRange,
    retried: Vec<i64>,
}

impl Action for DispatchOutboxAction {
    const NAME: &'static str = "sync.dispatch_outbox";
    /// The dispatcher's name in leases.
    type Input = String;
    type Output = DispatchSummary;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.dispatch_outbox", skip_all)]
    async fn run(&self, owner: String) -> Result<DispatchSummary, SyncError> {
        // A token per pass: results are written only for what this very pass still leases.
        let owner = format!(
            "{}:{:06x}",
            // 56 + 1 + 6 characters: within the VARCHAR(64) lease columns.
            owner.chars().take(56).collect::<String>(),
            fastrand::u32(..0xff_ffff)
        );
        let now = ship::db::utc_now();
        let lease_until =
            now + chrono::Duration::seconds(self.config.dispatch_lease_secs.min(86_400) as i64);
        let limit = i64::from(self.config.dispatch_claim_limit);
        let (lease_owner, only, origin) =
            (owner.clone(), self.only.clone(), self.region_id.clone());
        let (incarnation, ranges) = self
            .pool
            .run(move |conn| {
                let incarnation = ship::db::incarnation(conn)?.id;
                let mut ranges = Vec::new();
                let mut failed = None;
                for (peer, resource) in delivery::due_streams(conn, now, &only)? {
                    // Each stream in its own transaction: one that fails (a lock wait timed
                    // out) neither strands the ranges already claimed nor holds up the other
                    // streams; the next pass tries it again.
                    match delivery::claim(
                        conn,
                        &peer,
                        &resource,
                        &origin,
                        &lease_owner,
                        now,
                        lease_until,
                        limit,
                        only.ignore_backoff,
                    ) {
                        Ok(claimed) => ranges.extend(claimed),
                        Err(e) => {
                            tracing::warn!(%peer, %resource, error = %e, "could not claim a range");
                            failed.get_or_insert(e);
                        }
                    }
                }
                match failed {
                    Some(e) if ranges.is_empty() => Err(e.into()),
                    _ => Ok::<_, SyncError>((incarnation, ranges)),
                }
            })
            .await?;
        if let Ok(mut ours) = self.incarnation.write() {
            *ours = incarnation;
        }
        let mut per_peer: BTreeMap<String, Vec<ClaimedRange>> = BTreeMap::new();
        for range in ranges {
            per_peer.entry(range.peer.clone()).or_default().push(range);
        }
        let rank = |resource: &str| {
            self.order
                .iter()
                .position(|r| r == resource)
                .unwrap_or(self.order.len())
        };
        for ranges in per_peer.values_mut() {
            // Stable: a stream's ranges stay in seq order.
            ranges.sort_by(|a, b| {
                rank(&a.resource)
                    .cmp(&rank(&b.resource))
                    .then_with(|| a.resource.cmp(&b.resource))
            });
        }
        // Peers are served concurrently: a slow or hanging peer does not hold the others up.
        let results = futures_util::future::join_all(
            per_peer
                .into_iter()
                .map(|(peer, ranges)| self.deliver_peer(&owner, lease_until, peer, ranges)),
        )
        .await;
        let mut summary = DispatchSummary::default();
        for result in results {
            let part = result?;
            summary.claimed += part.claimed;
            summary.delivered += part.delivered;
            summary.retried += part.retried;
            summary.dead += part.dead;
            summary.batches += part.batches;
        }
        if summary.claimed > 0 {
            tracing::info!(
                claimed = summary.claimed,
                delivered = summary.delivered,
                retried = summary.retried,
                dead = summary.dead,
                batches = summary.batches,
                "dispatched"
            );
        }
        Ok(summary)
    }
}

impl DispatchOutboxAction {
    /// The ranges claimed for one peer, in turn.
    async fn deliver_peer(
        &self,
        owner: &str,
        claimed_until: chrono::NaiveDateTime,
        peer: String,
        ranges: Vec<ClaimedRange>,
    ) -> Result<DispatchSummary, SyncError> {
        let mut summary = DispatchSummary::default();
        for range in ranges {
            // The range's changes: ours, without its dead letters (a range's seqs include
            // other regions').
            let (r, origin) = (range.clone(), self.region_id.clone());
            let loaded = self
                .pool
                .run(move |conn| delivery::entries(conn, &r, &origin).map_err(SyncError::from))
                .await?;
            summary.claimed += loaded.changes.len();
            let sending = Sending {
                range,
                retried: loaded.retried,
            };
            let batches = self.batches(loaded.changes);
            let flow = self
                .deliver(owner, claimed_until, &peer, &sending, batches, &mut summary)
                .await?;
            if flow == Flow::Done {
                self.complete(owner, &sending, RangeEnd::Delivered).await?;
            }
        }
        Ok(summary)
    }

    /// Consecutive changes within the op count and byte limits (one schema version each).
    fn batches(&self, changes: Vec<ChangeLogEntry>) -> Vec<Vec<ChangeLogEntry>> {
        let (max_ops, max_bytes) = (
            self.config.push_batch_ops as usize,
            self.config.push_batch_bytes,
        );
        let mut out: Vec<Vec<ChangeLogEntry>> = Vec::new();
        let mut bytes = 0;
        for change in changes {
            let size = change.payload.len() + 200;
            let fits = out.last().is_some_and(|b| {
                b.len() < max_ops
                    && bytes + size <= max_bytes
                    && b[0].schema_version == change.schema_version
            });
            if !fits {
                out.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            if let Some(batch) = out.last_mut() {
                batch.push(change);
            }
        }
        out
    }

    /// Send `batches` in order (halving one on 413, dropping poison ops on 422, refreshing an
    /// expired token once). The first failure stops: the failed batch and every batch after it
    /// are given back together (regression: a range's last attempt dead-lettered only the
    /// failed batch and completed the range, dropping the batches after it unsent).
    async fn deliver(
        &self,
        owner: &str,
        claimed_until: chrono::NaiveDateTime,
        peer: &str,
        sending: &Sending,
        batches: Vec<Vec<ChangeLogEntry>>,
        summary: &mut DispatchSummary,
    ) -> Result<Flow, SyncError> {
        let resource = sending.range.resource.as_str();
        // A stack: the next batch to send on top, later seqs below.
        let mut pending: Vec<Vec<ChangeLogEntry>> = batches.into_iter().rev().collect();
        let mut refreshed = false;
        // Sends until everything went (`Flow::Done`) or a failure says why and how the rest
        // (the failed batch back on top) goes back.
        let (why, how) = loop {
            let Some(batch) = pending.pop() else {
                return Ok(Flow::Done);
            };
            let grant = match self.directory.grant(peer, Refresh::IfNeeded).await {
                Ok(grant) => grant,
                Err(e) => {
                    pending.push(batch);
                    break (e.to_string(), Again::AfterFailure);
                }
            };
            // The lease may have run out during a slow pass (or a slow call to the broker just
            // now) and another dispatcher may hold the range now: extend it, and send only
            // while it is still ours. Checked after the grant, right before sending.
            if !self
                .still_ours(owner, claimed_until, &sending.range)
                .await?
            {
                tracing::warn!(
                    "a range's lease ran out during the pass: it is another dispatcher's now"
                );
                return Ok(Flow::Stopped);
            }
            let changes: Vec<&ChangeLogEntry> = batch.iter().collect();
            let body = match send_ops::body(&self.region_id, &changes) {
                Ok(body) => body,
                Err(e) => {
                    // A stored payload that is not JSON can never be sent.
                    summary.dead += batch.len();
                    let why = format!("a stored payload is not JSON: {e}");
                    self.dead(owner, sending, &batch, &why).await?;
                    continue;
                }
            };
            summary.batches += 1;
            let bytes = body.len();
            let ours = self
                .incarnation
                .read()
                .map(|i| i.clone())
                .unwrap_or_default();
            let send = SendOpsTask::run(
                &self.client,
                &grant,
                resource,
                body,
                &ours,
                self.config.compression,
                self.policies.policy(resource),
            );
            match self.keeping_lease(owner, &sending.range, send).await {
                SendOutcome::Applied => {
                    summary.delivered += batch.len();
                    crate::counters::sent(peer, resource, batch.len(), bytes);
                    if self.came_back(peer, true) {
                        self.peer_is_back(peer).await;
                    }
                }
                SendOutcome::TooLarge if batch.len() > 1 => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
                SendOutcome::TooLarge => {
                    summary.dead += 1;
                    let why = "413: a single op is over the peer's limit";
                    self.dead(owner, sending, &batch, why).await?;
                }
                SendOutcome::InvalidOps(bad) => {
                    let (poison, rest): (Vec<_>, Vec<_>) = batch
                        .into_iter()
                        .enumerate()
                        .partition(|(i, _)| bad.contains(i));
                    let poison: Vec<ChangeLogEntry> = poison.into_iter().map(|(_, c)| c).collect();
                    let rest: Vec<ChangeLogEntry> = rest.into_iter().map(|(_, c)| c).collect();
                    if poison.is_empty() {
                        // The peer named no op of this batch: an attempt failed, never a loop.
                        pending.push(rest);
                        break (
                            "422 invalid_ops naming no op of the batch".to_string(),
                            Again::AfterFailure,
                        );
                    }
                    summary.dead += poison.len();
                    let why = "422: the peer refused the op as invalid";
                    self.dead(owner, sending, &poison, why).await?;
                    if !rest.is_empty() {
                        pending.push(rest);
                    }
                }
                SendOutcome::TokenExpired if !refreshed => {
                    refreshed = true;
                    if let Err(e) = self.directory.grant(peer, Refresh::Force).await {
                        pending.push(batch);
                        break (e.to_string(), Again::AfterFailure);
                    }
                    pending.push(batch);
                }
                SendOutcome::TokenExpired => {
                    pending.push(batch);
                    break (
                        "401 token_expired after a refresh".to_string(),
                        Again::AfterFailure,
                    );
                }
                SendOutcome::Unreachable { reason, down } => {
                    if down {
                        // Not even a connection: the peer is down (a timeout is not: a slow
                        // stream of a peer that takes the others' batches keeps its backoff).
                        self.came_back(peer, false);
                    }
                    self.directory.invalidate(peer);
                    pending.push(batch);
                    break (reason, Again::AfterFailure);
                }
                SendOutcome::Failed(reason) => {
                    pending.push(batch);
                    break (reason, Again::AfterFailure);
                }
                SendOutcome::ClockDrift(reason) | SendOutcome::PolicyMismatch(reason) => {
                    pending.push(batch);
                    break (reason, Again::Postponed);
                }
            }
        };
        let rest: Vec<ChangeLogEntry> = pending.into_iter().rev().flatten().collect();
        self.again(owner, sending, rest, &why, how, summary).await
    }

    /// Run `send` while extending the lease on `range` every third of the lease, so a request
    /// that outlasts the lease is never overlapped by another dispatcher's claim.
    async fn keeping_lease<T>(
        &self,
        owner: &str,
        range: &ClaimedRange,
        send: impl std::future::Future<Output = T>,
    ) -> T {
        let lease = Duration::from_secs(self.config.dispatch_lease_secs.clamp(1, 86_400));
        let mut renew = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
        renew.tick().await;
        tokio::pin!(send);
        loop {
            tokio::select! {
                out = &mut send => return out,
                _ = renew.tick() => {
                    let until = ship::db::utc_now()
                        + chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(60));
                    if let Err(e) = self.renew(owner, range, until).await {
                        tracing::warn!(error = %e, "could not extend the lease of a batch in flight");
                    }
                }
            }
        }
    }

    /// Extend the lease on `range` to `until`: whether it is still ours.
    async fn renew(
        &self,
        owner: &str,
        range: &ClaimedRange,
        until: chrono::NaiveDateTime,
    ) -> Result<bool, SyncError> {
        let (owner, id) = (owner.to_string(), range.id);
        let kept = self
            .pool
            .run(move |conn| delivery::renew(conn, &owner, &[id], until).map_err(SyncError::from))
            .await?;
        Ok(!kept.is_empty())
    }

    /// Whether `range` is still this pass's, its lease extended. While less than a third of the
    /// lease has gone by since the claim (`claimed_until` is the claim's expiry) no other
    /// dispatcher can hold it, and no round trip is needed: the usual pass sends its first
    /// batches without one (two statements per batch fewer, B5).
    async fn still_ours(
        &self,
        owner: &str,
        claimed_until: chrono::NaiveDateTime,
        range: &ClaimedRange,
    ) -> Result<bool, SyncError> {
        let lease = chrono::Duration::seconds(self.config.dispatch_lease_secs.min(86_400) as i64);
        if ship::db::utc_now() < claimed_until - lease * 2 / 3 {
            return Ok(true);
        }
        self.renew(owner, range, ship::db::utc_now() + lease).await
    }

    /// `changes` can never be delivered (the peer refused the op itself): dead letters.
    async fn dead(
        &self,
        owner: &str,
        sending: &Sending,
        changes: &[ChangeLogEntry],
        why: &str,
    ) -> Result<(), SyncError> {
        tracing::warn!(entries = changes.len(), reason = why, "dead-lettered");
        let (owner, why, range) = (owner.to_string(), why.to_string(), sending.range.clone());
        let written = written(changes);
        let attempts = range.attempts + 1;
        let recorded = self
            .pool
            .run(move |conn| {
                let dead = DeadLetters {
                    changes: &written,
                    attempts,
                    error: &why,
                };
                delivery::dead_letter(conn, &range, &owner, dead).map_err(SyncError::from)
            })
            .await?;
        if !recorded {
            tracing::warn!(
                "a range's lease ran out: its dead letters are left to the dispatcher that has it now"
            );
        }
        Ok(())
    }

    /// `peer` takes batches again: its streams waiting out a backoff are due now. A failure
    /// here is logged, never the range's: its batches went.
    async fn peer_is_back(&self, peer: &str) {
        let who = peer.to_string();
        let due = self
            .pool
            .run(move |conn| {
                delivery::peer_is_back(conn, &who, ship::db::utc_now()).map_err(SyncError::from)
            })
            .await;
        match due {
            Ok(due) => {
                tracing::info!(%peer, streams = due, "a peer takes batches again: its streams are due now")
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "a peer takes batches again, but its streams could not be made due")
            }
        }
    }

    /// `sending` is over: everything went or is a dead letter (`RangeEnd::Delivered`), or its
    /// last attempt failed (`RangeEnd::Dead`, the rest dead). The stream moves on.
    async fn complete(
        &self,
        owner: &str,
        sending: &Sending,
        end: RangeEnd<'_>,
    ) -> Result<(), SyncError> {
        let (range, owner, retried) = (
            sending.range.clone(),
            owner.to_string(),
            sending.retried.clone(),
        );
        let (dead, delivered) = match end {
            RangeEnd::Delivered => (None, true),
            RangeEnd::Dead(d) => (
                Some((d.changes.to_vec(), d.attempts, d.error.to_string())),
                false,
            ),
        };
        let done = self
            .pool
            .run(move |conn| {
                let end = match &dead {
                    Some((changes, attempts, error)) => RangeEnd::Dead(DeadLetters {
                        changes,
                        attempts: *attempts,
                        error,
                    }),
                    None => RangeEnd::Delivered,
                };
                delivery::complete(conn, &range, &owner, end, &retried).map_err(SyncError::from)
            })
            .await?;
        if !done {
            tracing::warn!(
                delivered,
                "a range's lease ran out before it ended: another dispatcher has it"
            );
        }
        Ok(())
    }

    /// Give what did not go (`rest`, in seq order) back to the stream, due again later (see
    /// `Again`); at the range's last attempt the rest is dead instead. Always `Flow::Stopped`.
    async fn again(
        &self,
        owner: &str,
        sending: &Sending,
        rest: Vec<ChangeLogEntry>,
        why: &str,
        how: Again,
        summary: &mut DispatchSummary,
    ) -> Result<Flow, SyncError> {
        let range = &sending.range;
        let max = i32::try_from(self.config.max_attempts).unwrap_or(i32::MAX);
        // A range counts one attempt for all it holds.
        let last_attempt = how == Again::AfterFailure && range.attempts + 1 >= max;
        let delay = match how {
            Again::AfterFailure => self.backoff(range.attempts),
            Again::Postponed => {
                let wait = self.config.retry_max_secs.clamp(1, 60) as f64;
                Duration::from_secs_f64(wait * (0.5 + fastrand::f64() / 2.0))
            }
        };
        if last_attempt {
            summary.dead += rest.len();
        } else {
            summary.retried += rest.len();
        }
        tracing::warn!(
            entries = rest.len(),
            reason = why,
            retry_in_ms = delay.as_millis() as u64,
            attempt_counted = how == Again::AfterFailure,
            "delivery failed"
        );
        let Some(rest_from) = rest.first().map(|c| c.seq) else {
            // Nothing left to send (everything else went or died).
            self.complete(owner, sending, RangeEnd::Delivered).await?;
            return Ok(Flow::Stopped);
        };
        if last_attempt {
            // The last attempt: the rest is dead, and the stream moves on.
            let changes = written(&rest);
            let dead = DeadLetters {
                changes: &changes,
                attempts: max,
                error: why,
            };
            self.complete(owner, sending, RangeEnd::Dead(dead)).await?;
            return Ok(Flow::Stopped);
        }
        let next = ship::db::utc_now()
            + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::seconds(60));
        let (range, owner, why, retried) = (
            range.clone(),
            owner.to_string(),
            why.to_string(),
            sending.retried.clone(),
        );
        let counted = how == Again::AfterFailure;
        let released = self
            .pool
            .run(move |conn| {
                delivery::release(
                    conn, &range, &owner, rest_from, &why, next, counted, &retried,
                )
                .map_err(SyncError::from)
            })
            .await?;
        if !released {
            tracing::warn!(
                "a range's lease ran out before it was given back: another dispatcher has it"
            );
        }
        Ok(Flow::Stopped)
    }
}

/// (seq, when written) of each change.
fn written(changes: &[ChangeLogEntry]) -> Vec<(i64, chrono::NaiveDateTime)> {
    changes.iter().map(|c| (c.seq, c.created_at)).collect()
}

/// How changes that did not go come back to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    /// A failed attempt: counted, backoff, dead at `max_attempts`.
    AfterFailure,
    /// Not the entries' fault (the peer's clock is behind): not counted, so never a dead
    /// letter; tried again within a minute (or `retry_max_secs`, if shorter), with jitter.
    Postponed,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 5: "exponential backoff with jitter" — doubles per attempt from the base, never
    /// above the cap, and the jitter keeps it within [half, whole) of that.
    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_half_to_whole() {
        let ms = |attempts, unit| backoff(1_000, 60, attempts, unit).as_millis();
        assert_eq!(
            [ms(0, 0.0), ms(1, 0.0), ms(2, 0.0), ms(3, 0.0)],
            [500, 1_000, 2_000, 4_000]
        );
        assert_eq!(ms(3, 0.999_999), 7_999);
        assert_eq!(ms(6, 0.0), 30_000, "64 s is capped at 60 s");
        assert_eq!(ms(30, 0.5), 45_000);
        assert_eq!(ms(i32::MAX, 0.0), 30_000, "no overflow");
        assert_eq!(ms(-5, 0.0), 500, "a negative count is the first attempt");
        // Spread: a thousand senders after the same failure do not come back together.
        let mut rng = fastrand::Rng::with_seed(7);
        let delays: std::collections::BTreeSet<u128> = (0..1_000)
            .map(|_| backoff(1_000, 60, 4, rng.f64()).as_millis())
            .collect();
        assert!(delays.len() > 900, "{} distinct delays", delays.len());
        assert!(delays.iter().all(|d| (8_000..16_000).contains(d)));
    }
}
