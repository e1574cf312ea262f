//! DispatchOutbox (push, SYNC-PROTOCOL §4): claim pending outbox entries whose time has come
//! (a lease, committed before anything is sent), group them per peer and resource into
//! batches within the count and byte limits, and POST each batch with a token from the peer
//! directory. Then, per batch:
//!
//! - 200 → delivered;
//! - 413 → halves, down to single ops (a single op still too large is dead);
//! - 422 `invalid_ops` → exactly the named ops are dead, the rest is resent;
//! - 401 `token_expired` → one forced token refresh and one resend;
//! - unreachable, 5xx, anything else → one more attempt counted, the next one after an
//!   exponential backoff with jitter; after `max_attempts` the entries are dead.
//!
//! Entries claimed by one dispatcher are leased to it, so several dispatchers (threads or
//! processes) never send the same entry at the same time; a dispatcher that dies leaves
//! entries that become claimable again when the lease runs out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ship::contracts::{PeerDirectory, Refresh};
use ship::parents::Action;
use ship::DbPool;

use crate::config::SyncConfig;
use crate::data::outbox::{self, Claimed};
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
    only: outbox::ClaimFilter,
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
            only: outbox::ClaimFilter::default(),
        }
    }

    /// Deliver only what is owed to `peer` (`regionsync sync run --peer`).
    pub fn only_peer(mut self, peer: impl Into<String>) -> Self {
        self.only.peer = Some(peer.into());
        self
    }

    /// Deliver only the entries of `resource` (`regionsync sync run --resource`).
    pub fn only_resource(mut self, resource: impl Into<String>) -> Self {
        self.only.resource = Some(resource.into());
        self
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

/// One entry and its change, ready to send.
struct Item {
    claimed: Claimed,
    change: ChangeLogEntry,
}

impl Action for DispatchOutboxAction {
    const NAME: &'static str = "sync.dispatch_outbox";
    /// The dispatcher's name in leases.
    type Input = String;
    type Output = DispatchSummary;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.dispatch_outbox", skip_all)]
    async fn run(&self, owner: String) -> Result<DispatchSummary, SyncError> {
        // A token per pass: results are written only for rows this very pass still leases.
        let owner = format!(
            "{}:{:06x}",
            // 56 + 1 + 6 characters: within the VARCHAR(64) lease column.
            owner.chars().take(56).collect::<String>(),
            fastrand::u32(..0xff_ffff)
        );
        let now = ship::db::utc_now();
        let lease_until =
            now + chrono::Duration::seconds(self.config.dispatch_lease_secs.min(86_400) as i64);
        let limit = i64::from(self.config.dispatch_claim_limit);
        let (lease_owner, only) = (owner.clone(), self.only.clone());
        let claimed = self
            .pool
            .run(move |conn| {
                outbox::claim(conn, &lease_owner, now, lease_until, limit, &only)
                    .map_err(SyncError::from)
            })
            .await?;
        let mut summary = DispatchSummary {
            claimed: claimed.len(),
            ..DispatchSummary::default()
        };
        let mut groups: BTreeMap<(String, String), Vec<Claimed>> = BTreeMap::new();
        for c in claimed {
            groups
                .entry((c.peer.clone(), c.resource.clone()))
                .or_default()
                .push(c);
        }
        // Peers are served concurrently: a slow or hanging peer does not hold the others up.
        let mut per_peer: BTreeMap<String, Vec<(String, Vec<Claimed>)>> = BTreeMap::new();
        for ((peer, resource), mut entries) in groups {
            // Claimed oldest due first; sent in changelog order.
            entries.sort_by_key(|c| c.seq);
            per_peer.entry(peer).or_default().push((resource, entries));
        }
        let results = futures_util::future::join_all(
            per_peer
                .into_iter()
                .map(|(peer, groups)| self.deliver_peer(&owner, lease_until, peer, groups)),
        )
        .await;
        for result in results {
            let part = result?;
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
    /// Everything claimed for one peer, resource by resource.
    async fn deliver_peer(
        &self,
        owner: &str,
        claimed_until: chrono::NaiveDateTime,
        peer: String,
        groups: Vec<(String, Vec<Claimed>)>,
    ) -> Result<DispatchSummary, SyncError> {
        let mut summary = DispatchSummary::default();
        for (resource, entries) in groups {
            let items = self.load(owner, &resource, entries, &mut summary).await?;
            for batch in self.batches(items) {
                self.deliver(owner, claimed_until, &peer, &resource, batch, &mut summary)
                    .await?;
            }
        }
        Ok(summary)
    }

    /// The changes of `entries`; an entry whose change is gone from the changelog is dead.
    async fn load(
        &self,
        owner: &str,
        resource: &str,
        entries: Vec<Claimed>,
        summary: &mut DispatchSummary,
    ) -> Result<Vec<Item>, SyncError> {
        let seqs: Vec<i64> = entries.iter().map(|c| c.seq).collect();
        let name = resource.to_string();
        let changes = self
            .pool
            .run(move |conn| outbox::changes(conn, &name, &seqs).map_err(SyncError::from))
            .await?;
        let mut by_seq: BTreeMap<i64, ChangeLogEntry> =
            changes.into_iter().map(|c| (c.seq, c)).collect();
        let mut items = Vec::with_capacity(entries.len());
        let mut orphans = Vec::new();
        for claimed in entries {
            match by_seq.remove(&claimed.seq) {
                Some(change) => items.push(Item { claimed, change }),
                None => orphans.push(claimed.id),
            }
        }
        if !orphans.is_empty() {
            summary.dead += orphans.len();
            self.mark_dead(owner, orphans, "the change is no longer in the changelog")
                .await?;
        }
        Ok(items)
    }

    /// Consecutive items within the op count and byte limits (one schema version each).
    fn batches(&self, items: Vec<Item>) -> Vec<Vec<Item>> {
        let (max_ops, max_bytes) = (
            self.config.push_batch_ops as usize,
            self.config.push_batch_bytes,
        );
        let mut out: Vec<Vec<Item>> = Vec::new();
        let mut bytes = 0;
        for item in items {
            let size = item.change.payload.len() + 200;
            let fits = out.last().is_some_and(|b| {
                b.len() < max_ops
                    && bytes + size <= max_bytes
                    && b[0].change.schema_version == item.change.schema_version
            });
            if !fits {
                out.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            if let Some(batch) = out.last_mut() {
                batch.push(item);
            }
        }
        out
    }

    async fn deliver(
        &self,
        owner: &str,
        claimed_until: chrono::NaiveDateTime,
        peer: &str,
        resource: &str,
        batch: Vec<Item>,
        summary: &mut DispatchSummary,
    ) -> Result<(), SyncError> {
        let mut pending = vec![batch];
        let mut refreshed = false;
        while let Some(batch) = pending.pop() {
            let grant = match self.directory.grant(peer, Refresh::IfNeeded).await {
                Ok(grant) => grant,
                Err(e) => {
                    pending.push(batch);
                    let rest: Vec<Item> = pending.into_iter().flatten().collect();
                    return self.fail(owner, rest, &e.to_string(), summary).await;
                }
            };
            // The lease may have run out during a slow pass (or a slow call to the broker just
            // now) and another dispatcher may own these rows: extend it, and send only the
            // rows still ours. Checked after the grant, right before sending.
            let batch = self.still_ours(owner, claimed_until, batch).await?;
            if batch.is_empty() {
                continue;
            }
            let changes: Vec<&ChangeLogEntry> = batch.iter().map(|i| &i.change).collect();
            let body = match send_ops::body(&self.region_id, &changes) {
                Ok(body) => body,
                Err(e) => {
                    // A stored payload that is not JSON can never be sent.
                    summary.dead += batch.len();
                    let ids = batch.iter().map(|i| i.claimed.id).collect();
                    self.mark_dead(owner, ids, &format!("a stored payload is not JSON: {e}"))
                        .await?;
                    continue;
                }
            };
            summary.batches += 1;
            let ids: Vec<i64> = batch.iter().map(|i| i.claimed.id).collect();
            let send = SendOpsTask::run(&self.client, &grant, resource, body);
            match self.keeping_lease(owner, &ids, send).await {
                SendOutcome::Applied => {
                    summary.delivered += batch.len();
                    let ids: Vec<i64> = batch.iter().map(|i| i.claimed.id).collect();
                    let owner = owner.to_string();
                    self.pool
                        .run(move |conn| {
                            outbox::mark_delivered(conn, &owner, &ids).map_err(SyncError::from)
                        })
                        .await?;
                }
                SendOutcome::TooLarge if batch.len() > 1 => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
                SendOutcome::TooLarge => {
                    summary.dead += 1;
                    let ids = batch.iter().map(|i| i.claimed.id).collect();
                    self.mark_dead(owner, ids, "413: a single op is over the peer's limit")
                        .await?;
                }
                SendOutcome::InvalidOps(bad) => {
                    let mut poison = Vec::new();
                    let mut rest = Vec::new();
                    for (i, item) in batch.into_iter().enumerate() {
                        if bad.contains(&i) {
                            poison.push(item.claimed.id);
                        } else {
                            rest.push(item);
                        }
                    }
                    if poison.is_empty() {
                        // The peer named no op of this batch: an attempt failed, never a loop.
                        pending.push(rest);
                        let rest: Vec<Item> = pending.into_iter().flatten().collect();
                        return self
                            .fail(
                                owner,
                                rest,
                                "422 invalid_ops naming no op of the batch",
                                summary,
                            )
                            .await;
                    }
                    summary.dead += poison.len();
                    self.mark_dead(owner, poison, "422: the peer refused the op as invalid")
                        .await?;
                    if !rest.is_empty() {
                        pending.push(rest);
                    }
                }
                SendOutcome::TokenExpired if !refreshed => {
                    refreshed = true;
                    if let Err(e) = self.directory.grant(peer, Refresh::Force).await {
                        pending.push(batch);
                        let rest: Vec<Item> = pending.into_iter().flatten().collect();
                        return self.fail(owner, rest, &e.to_string(), summary).await;
                    }
                    pending.push(batch);
                }
                SendOutcome::TokenExpired => {
                    pending.push(batch);
                    let rest: Vec<Item> = pending.into_iter().flatten().collect();
                    return self
                        .fail(owner, rest, "401 token_expired after a refresh", summary)
                        .await;
                }
                SendOutcome::Unreachable(reason) => {
                    self.directory.invalidate(peer);
                    pending.push(batch);
                    let rest: Vec<Item> = pending.into_iter().flatten().collect();
                    return self.fail(owner, rest, &reason, summary).await;
                }
                SendOutcome::Failed(reason) => {
                    pending.push(batch);
                    let rest: Vec<Item> = pending.into_iter().flatten().collect();
                    return self.fail(owner, rest, &reason, summary).await;
                }
                SendOutcome::ClockDrift(reason) => {
                    pending.push(batch);
                    let rest: Vec<Item> = pending.into_iter().flatten().collect();
                    return self
                        .again(owner, rest, &reason, Again::Postponed, summary)
                        .await;
                }
            }
        }
        Ok(())
    }

    /// Run `send` while extending the lease on `ids` every third of the lease, so a request
    /// that outlasts the lease is never overlapped by another dispatcher's claim.
    async fn keeping_lease<T>(
        &self,
        owner: &str,
        ids: &[i64],
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
                    let (owner, ids) = (owner.to_string(), ids.to_vec());
                    let renewed = self
                        .pool
                        .run(move |conn| outbox::renew(conn, &owner, &ids, until).map_err(SyncError::from))
                        .await;
                    if let Err(e) = renewed {
                        tracing::warn!(error = %e, "could not extend the lease of a batch in flight");
                    }
                }
            }
        }
    }

    /// The items of `batch` whose lease this pass could extend. While less than a third of
    /// the lease has gone by since the claim (`claimed_until` is the claim's expiry) no other
    /// dispatcher can hold them, and no round trip is needed: the usual pass sends its first
    /// batches without one (two statements per batch fewer, B5).
    async fn still_ours(
        &self,
        owner: &str,
        claimed_until: chrono::NaiveDateTime,
        batch: Vec<Item>,
    ) -> Result<Vec<Item>, SyncError> {
        let lease = chrono::Duration::seconds(self.config.dispatch_lease_secs.min(86_400) as i64);
        if ship::db::utc_now() < claimed_until - lease * 2 / 3 {
            return Ok(batch);
        }
        let until = ship::db::utc_now()
            + chrono::Duration::seconds(self.config.dispatch_lease_secs.min(86_400) as i64);
        let ids: Vec<i64> = batch.iter().map(|i| i.claimed.id).collect();
        let owner_c = owner.to_string();
        let kept = self
            .pool
            .run(move |conn| outbox::renew(conn, &owner_c, &ids, until).map_err(SyncError::from))
            .await?;
        if kept.len() < batch.len() {
            tracing::warn!(
                lost = batch.len() - kept.len(),
                "leases ran out during the pass: those entries are another dispatcher's now"
            );
        }
        Ok(batch
            .into_iter()
            .filter(|i| kept.contains(&i.claimed.id))
            .collect())
    }

    async fn mark_dead(&self, owner: &str, ids: Vec<i64>, why: &str) -> Result<(), SyncError> {
        tracing::warn!(entries = ids.len(), reason = why, "dead-lettered");
        let (owner, why) = (owner.to_string(), why.to_string());
        self.pool
            .run(move |conn| outbox::mark_dead(conn, &owner, &ids, &why).map_err(SyncError::from))
            .await
    }

    /// A failed attempt for `items`: rescheduled with backoff (or dead at max attempts).
    async fn fail(
        &self,
        owner: &str,
        items: Vec<Item>,
        why: &str,
        summary: &mut DispatchSummary,
    ) -> Result<(), SyncError> {
        self.again(owner, items, why, Again::AfterFailure, summary)
            .await
    }

    /// Give `items` back to the outbox, due again later (see `Again`).
    async fn again(
        &self,
        owner: &str,
        items: Vec<Item>,
        why: &str,
        how: Again,
        summary: &mut DispatchSummary,
    ) -> Result<(), SyncError> {
        if items.is_empty() {
            return Ok(());
        }
        let max = i32::try_from(self.config.max_attempts).unwrap_or(i32::MAX);
        let delay = match how {
            Again::AfterFailure => {
                let dying = items
                    .iter()
                    .filter(|i| i.claimed.attempts + 1 >= max)
                    .count();
                summary.dead += dying;
                summary.retried += items.len() - dying;
                self.backoff(items.iter().map(|i| i.claimed.attempts).max().unwrap_or(0))
            }
            Again::Postponed => {
                summary.retried += items.len();
                let wait = self.config.retry_max_secs.clamp(1, 60) as f64;
                Duration::from_secs_f64(wait * (0.5 + fastrand::f64() / 2.0))
            }
        };
        tracing::warn!(
            entries = items.len(),
            reason = why,
            retry_in_ms = delay.as_millis() as u64,
            attempt_counted = how == Again::AfterFailure,
            "delivery failed"
        );
        let next = ship::db::utc_now()
            + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::seconds(60));
        let ids: Vec<i64> = items.iter().map(|i| i.claimed.id).collect();
        let (owner, why) = (owner.to_string(), why.to_string());
        // Both of mark_failed's updates or neither.
        self.pool
            .transaction(move |conn| {
                match how {
                    Again::AfterFailure => outbox::mark_failed(conn, &owner, &ids, &why, next, max),
                    Again::Postponed => outbox::reschedule(conn, &owner, &ids, &why, next, false),
                }
                .map_err(SyncError::from)
            })
            .await
    }
}

/// How entries that did not go come back to the outbox.
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
