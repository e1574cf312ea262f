//! DispatchOutbox (push, SYNC-PROTOCOL §4, ADR 0009): claim what is owed to the push peers —
//! ranges of each peer's delivery stream whose time has come, and single outbox entries (dead
//! letters an operator retries) — with a lease committed before anything is sent; group it per
//! peer and resource into batches within the count and byte limits, and POST each batch with
//! a token from the peer directory. Then, per batch:
//!
//! - 200 → delivered;
//! - 413 → halves, down to single ops (a single op still too large is dead);
//! - 422 `invalid_ops` → exactly the named ops are dead, the rest is resent;
//! - 401 `token_expired` → one forced token refresh and one resend;
//! - unreachable, 5xx, anything else → one more attempt counted, the next one after an
//!   exponential backoff with jitter; after `max_attempts` the entries are dead.
//!
//! A range is sent in seq order and stops at the first failure: what went before it is
//! delivered, the rest is given back to the stream (which backs off) and claimed again later.
//! Ranges and entries claimed by one dispatcher are leased to it, so several dispatchers
//! (threads or processes) never send the same entry at the same time; a dispatcher that dies
//! leaves leases that become claimable again when they run out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ship::contracts::{PeerDirectory, Refresh};
use ship::parents::Action;
use ship::DbPool;

use crate::config::SyncConfig;
use crate::data::delivery::{self, ClaimedRange, DeadLetters, RangeEnd};
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
    /// This database's incarnation as read by the last pass (told to peers with each batch).
    incarnation: std::sync::RwLock<String>,
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
            incarnation: Default::default(),
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

    /// Send now what is waiting out a backoff too (`regionsync sync run`: an operator who
    /// fixed a peer wants it synced now, not after the backoff's few minutes).
    pub fn ignoring_backoff(mut self) -> Self {
        self.only.ignore_backoff = true;
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

/// What holds the entries of a batch: their own outbox rows, or a range of a delivery stream.
#[derive(Debug, Clone)]
enum Hold {
    Entries,
    Range(ClaimedRange),
}

/// One change ready to send, and what holds it.
struct Item {
    change: ChangeLogEntry,
    /// The outbox row (`Hold::Entries`).
    entry: Option<i64>,
    /// Failed attempts so far.
    attempts: i32,
}

/// How a run of batches ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Every item went or is a dead letter.
    Done,
    /// A failure: the rest was given back (or another dispatcher holds it now).
    Stopped,
}

/// Work claimed for one peer: (resource, what holds it, claimed outbox rows if any).
type Work = (String, Hold, Vec<Claimed>);

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
        let (incarnation, entries, ranges) = self
            .pool
            .run(move |conn| {
                let incarnation = ship::db::incarnation(conn)?.id;
                // Single entries first (few: retried dead letters), then each due stream.
                let entries = outbox::claim(conn, &lease_owner, now, lease_until, limit, &only)?;
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
                if let Some(e) = failed {
                    if ranges.is_empty() && entries.is_empty() {
                        return Err(e.into());
                    }
                }
                Ok::<_, SyncError>((incarnation, entries, ranges))
            })
            .await?;
        if let Ok(mut ours) = self.incarnation.write() {
            *ours = incarnation;
        }
        // Ranges add their entries once loaded (a range's seqs include other regions').
        let mut summary = DispatchSummary {
            claimed: entries.len(),
            ..DispatchSummary::default()
        };
        let mut per_peer: BTreeMap<String, Vec<Work>> = BTreeMap::new();
        let mut groups: BTreeMap<(String, String), Vec<Claimed>> = BTreeMap::new();
        for c in entries {
            groups
                .entry((c.peer.clone(), c.resource.clone()))
                .or_default()
                .push(c);
        }
        for ((peer, resource), mut entries) in groups {
            // Claimed oldest due first; sent in changelog order.
            entries.sort_by_key(|c| c.seq);
            per_peer
                .entry(peer)
                .or_default()
                .push((resource, Hold::Entries, entries));
        }
        for range in ranges {
            per_peer.entry(range.peer.clone()).or_default().push((
                range.resource.clone(),
                Hold::Range(range),
                Vec::new(),
            ));
        }
        // Peers are served concurrently: a slow or hanging peer does not hold the others up.
        let results = futures_util::future::join_all(
            per_peer
                .into_iter()
                .map(|(peer, work)| self.deliver_peer(&owner, lease_until, peer, work)),
        )
        .await;
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
    /// Everything claimed for one peer, in turn.
    async fn deliver_peer(
        &self,
        owner: &str,
        claimed_until: chrono::NaiveDateTime,
        peer: String,
        work: Vec<Work>,
    ) -> Result<DispatchSummary, SyncError> {
        let mut summary = DispatchSummary::default();
        for (resource, hold, entries) in work {
            let items = match &hold {
                Hold::Entries => self.load(owner, &resource, entries, &mut summary).await?,
                Hold::Range(range) => {
                    let items = self.load_range(range).await?;
                    summary.claimed += items.len();
                    items
                }
            };
            let flow = self
                .deliver(
                    owner,
                    claimed_until,
                    &peer,
                    &resource,
                    &hold,
                    self.batches(items),
                    &mut summary,
                )
                .await?;
            if let (Hold::Range(range), Flow::Done) = (&hold, flow) {
                self.complete(owner, range).await?;
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
                Some(change) => items.push(Item {
                    change,
                    entry: Some(claimed.id),
                    attempts: claimed.attempts,
                }),
                None => orphans.push(claimed.id),
            }
        }
        if !orphans.is_empty() {
            summary.dead += orphans.len();
            tracing::warn!(
                entries = orphans.len(),
                "dead-lettered: the change is no longer in the changelog"
            );
            let owner = owner.to_string();
            self.pool
                .run(move |conn| {
                    outbox::mark_dead(
                        conn,
                        &owner,
                        &orphans,
                        "the change is no longer in the changelog",
                    )
                    .map_err(SyncError::from)
                })
                .await?;
        }
        Ok(items)
    }

    /// The changes of a range (ours, without its dead letters).
    async fn load_range(&self, range: &ClaimedRange) -> Result<Vec<Item>, SyncError> {
        let (r, origin) = (range.clone(), self.region_id.clone());
        let changes = self
            .pool
            .run(move |conn| delivery::entries(conn, &r, &origin).map_err(SyncError::from))
            .await?;
        Ok(changes
            .into_iter()
            .map(|change| Item {
                change,
                entry: None,
                attempts: range.attempts,
            })
            .collect())
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

    /// Send `batches` in order (halving one on 413, dropping poison ops on 422, refreshing an
    /// expired token once). The first failure stops: the failed batch and every batch after it
    /// are given back together (regression: a range's last attempt dead-lettered only the
    /// failed batch and completed the range, dropping the batches after it unsent).
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        owner: &str,
        claimed_until: chrono::NaiveDateTime,
        peer: &str,
        resource: &str,
        hold: &Hold,
        batches: Vec<Vec<Item>>,
        summary: &mut DispatchSummary,
    ) -> Result<Flow, SyncError> {
        // A stack: the next batch to send on top, later seqs below.
        let mut pending: Vec<Vec<Item>> = batches.into_iter().rev().collect();
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
            // now) and another dispatcher may own these entries: extend it, and send only what
            // is still ours. Checked after the grant, right before sending.
            let batch = self.still_ours(owner, claimed_until, hold, batch).await?;
            if batch.is_empty() {
                if matches!(hold, Hold::Range(_)) {
                    // The range is another dispatcher's now: it sends the rest.
                    return Ok(Flow::Stopped);
                }
                continue;
            }
            let changes: Vec<&ChangeLogEntry> = batch.iter().map(|i| &i.change).collect();
            let body = match send_ops::body(&self.region_id, &changes) {
                Ok(body) => body,
                Err(e) => {
                    // A stored payload that is not JSON can never be sent.
                    summary.dead += batch.len();
                    self.dead(
                        owner,
                        hold,
                        &batch,
                        &format!("a stored payload is not JSON: {e}"),
                    )
                    .await?;
                    continue;
                }
            };
            summary.batches += 1;
            let ours = self
                .incarnation
                .read()
                .map(|i| i.clone())
                .unwrap_or_default();
            let send = SendOpsTask::run(&self.client, &grant, resource, body, &ours);
            match self.keeping_lease(owner, hold, &batch, send).await {
                SendOutcome::Applied => {
                    summary.delivered += batch.len();
                    self.delivered(owner, hold, &batch).await?;
                }
                SendOutcome::TooLarge if batch.len() > 1 => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
                SendOutcome::TooLarge => {
                    summary.dead += 1;
                    self.dead(
                        owner,
                        hold,
                        &batch,
                        "413: a single op is over the peer's limit",
                    )
                    .await?;
                }
                SendOutcome::InvalidOps(bad) => {
                    let mut poison = Vec::new();
                    let mut rest = Vec::new();
                    for (i, item) in batch.into_iter().enumerate() {
                        if bad.contains(&i) {
                            poison.push(item);
                        } else {
                            rest.push(item);
                        }
                    }
                    if poison.is_empty() {
                        // The peer named no op of this batch: an attempt failed, never a loop.
                        pending.push(rest);
                        break (
                            "422 invalid_ops naming no op of the batch".to_string(),
                            Again::AfterFailure,
                        );
                    }
                    summary.dead += poison.len();
                    self.dead(
                        owner,
                        hold,
                        &poison,
                        "422: the peer refused the op as invalid",
                    )
                    .await?;
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
                SendOutcome::Unreachable(reason) => {
                    self.directory.invalidate(peer);
                    pending.push(batch);
                    break (reason, Again::AfterFailure);
                }
                SendOutcome::Failed(reason) => {
                    pending.push(batch);
                    break (reason, Again::AfterFailure);
                }
                SendOutcome::ClockDrift(reason) => {
                    pending.push(batch);
                    break (reason, Again::Postponed);
                }
            }
        };
        self.again(owner, hold, pending, &why, how, summary).await
    }

    /// Run `send` while extending the lease on what holds `batch` every third of the lease, so
    /// a request that outlasts the lease is never overlapped by another dispatcher's claim.
    async fn keeping_lease<T>(
        &self,
        owner: &str,
        hold: &Hold,
        batch: &[Item],
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
                    if let Err(e) = self.renew(owner, hold, batch, until).await {
                        tracing::warn!(error = %e, "could not extend the lease of a batch in flight");
                    }
                }
            }
        }
    }

    /// Extend the lease on what holds `batch` to `until`: the items still ours.
    async fn renew(
        &self,
        owner: &str,
        hold: &Hold,
        batch: &[Item],
        until: chrono::NaiveDateTime,
    ) -> Result<Vec<bool>, SyncError> {
        let owner = owner.to_string();
        match hold {
            Hold::Entries => {
                let ids: Vec<i64> = batch.iter().filter_map(|i| i.entry).collect();
                let kept = self
                    .pool
                    .run(move |conn| {
                        outbox::renew(conn, &owner, &ids, until).map_err(SyncError::from)
                    })
                    .await?;
                Ok(batch
                    .iter()
                    .map(|i| i.entry.is_some_and(|id| kept.contains(&id)))
                    .collect())
            }
            Hold::Range(range) => {
                let id = range.id;
                let kept = self
                    .pool
                    .run(move |conn| {
                        delivery::renew(conn, &owner, &[id], until).map_err(SyncError::from)
                    })
                    .await?;
                Ok(vec![!kept.is_empty(); batch.len()])
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
        hold: &Hold,
        batch: Vec<Item>,
    ) -> Result<Vec<Item>, SyncError> {
        let lease = chrono::Duration::seconds(self.config.dispatch_lease_secs.min(86_400) as i64);
        if ship::db::utc_now() < claimed_until - lease * 2 / 3 {
            return Ok(batch);
        }
        let until = ship::db::utc_now() + lease;
        let kept = self.renew(owner, hold, &batch, until).await?;
        let lost = kept.iter().filter(|k| !**k).count();
        if lost > 0 {
            tracing::warn!(
                lost,
                "leases ran out during the pass: those entries are another dispatcher's now"
            );
        }
        Ok(batch
            .into_iter()
            .zip(kept)
            .filter_map(|(item, ours)| ours.then_some(item))
            .collect())
    }

    /// The peer applied `batch`. A range's items are recorded when the whole range is done.
    async fn delivered(&self, owner: &str, hold: &Hold, batch: &[Item]) -> Result<(), SyncError> {
        if let Hold::Entries = hold {
            let ids: Vec<i64> = batch.iter().filter_map(|i| i.entry).collect();
            let owner = owner.to_string();
            self.pool
                .run(move |conn| {
                    outbox::mark_delivered(conn, &owner, &ids).map_err(SyncError::from)
                })
                .await?;
        }
        Ok(())
    }

    /// `items` can never be delivered (the peer refused the op itself): dead letters.
    async fn dead(
        &self,
        owner: &str,
        hold: &Hold,
        items: &[Item],
        why: &str,
    ) -> Result<(), SyncError> {
        tracing::warn!(entries = items.len(), reason = why, "dead-lettered");
        let (owner, why) = (owner.to_string(), why.to_string());
        match hold {
            Hold::Entries => {
                let ids: Vec<i64> = items.iter().filter_map(|i| i.entry).collect();
                self.pool
                    .run(move |conn| {
                        outbox::mark_dead(conn, &owner, &ids, &why).map_err(SyncError::from)
                    })
                    .await
            }
            Hold::Range(range) => {
                let changes = written(items);
                let attempts = items.iter().map(|i| i.attempts).max().unwrap_or(0) + 1;
                let range = range.clone();
                let recorded = self
                    .pool
                    .run(move |conn| {
                        let dead = DeadLetters {
                            changes: &changes,
                            attempts,
                            error: &why,
                        };
                        delivery::dead_letter(conn, &range, &owner, dead).map_err(SyncError::from)
                    })
                    .await?;
                if !recorded {
                    tracing::warn!("a range's lease ran out: its dead letters are left to the dispatcher that has it now");
                }
                Ok(())
            }
        }
    }

    /// Everything of `range` went (or is a dead letter): the stream moves on.
    async fn complete(&self, owner: &str, range: &ClaimedRange) -> Result<(), SyncError> {
        let (range, owner) = (range.clone(), owner.to_string());
        let done = self
            .pool
            .run(move |conn| {
                delivery::complete(conn, &range, &owner, RangeEnd::Delivered)
                    .map_err(SyncError::from)
            })
            .await?;
        if !done {
            tracing::warn!(
                "a range's lease ran out before it was delivered: another dispatcher resends it"
            );
        }
        Ok(())
    }

    /// Give what did not go (`rest`: batches, the next one on top) back, due again later (see
    /// `Again`). Always `Flow::Stopped`.
    async fn again(
        &self,
        owner: &str,
        hold: &Hold,
        rest: Vec<Vec<Item>>,
        why: &str,
        how: Again,
        summary: &mut DispatchSummary,
    ) -> Result<Flow, SyncError> {
        // The failed batch is on top (last); the batches below it were not tried. A range
        // counts one attempt for all it holds; single entries only for those tried.
        let tried = match hold {
            Hold::Entries => rest.last().map_or(0, Vec::len),
            Hold::Range(_) => rest.iter().map(Vec::len).sum(),
        };
        let items: Vec<Item> = rest.into_iter().flatten().collect();
        let (untried, tried) = items.split_at(items.len() - tried);
        let max = i32::try_from(self.config.max_attempts).unwrap_or(i32::MAX);
        let attempts = items.iter().map(|i| i.attempts).max().unwrap_or(0);
        let delay = match how {
            Again::AfterFailure => {
                let dying = tried.iter().filter(|i| i.attempts + 1 >= max).count();
                summary.dead += dying;
                summary.retried += items.len() - dying;
                self.backoff(attempts)
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
        let (owner, why) = (owner.to_string(), why.to_string());
        match hold {
            Hold::Entries => {
                if items.is_empty() {
                    return Ok(Flow::Stopped);
                }
                let ids = |items: &[Item]| items.iter().filter_map(|i| i.entry).collect::<Vec<_>>();
                // A postponement counts no attempt for any of them.
                let (counted, uncounted) = match how {
                    Again::AfterFailure => (ids(tried), ids(untried)),
                    Again::Postponed => (Vec::new(), ids(&items)),
                };
                // All of these updates or none.
                self.pool
                    .transaction(move |conn| {
                        outbox::mark_failed(conn, &owner, &counted, &why, next, max)?;
                        // Not sent (or not their fault): due with the others, no attempt counted.
                        outbox::reschedule(conn, &owner, &uncounted, &why, next, false)
                            .map_err(SyncError::from)
                    })
                    .await?;
            }
            Hold::Range(range) => {
                let range = range.clone();
                let Some(rest_from) = items.iter().map(|i| i.change.seq).min() else {
                    // Nothing left to send (everything else went or died).
                    self.complete(&owner, &range).await?;
                    return Ok(Flow::Stopped);
                };
                if how == Again::AfterFailure && range.attempts + 1 >= max {
                    // The last attempt: the rest is dead, and the stream moves on.
                    let changes = written(&items);
                    let done = self
                        .pool
                        .run(move |conn| {
                            let dead = DeadLetters {
                                changes: &changes,
                                attempts: max,
                                error: &why,
                            };
                            delivery::complete(conn, &range, &owner, RangeEnd::Dead(dead))
                                .map_err(SyncError::from)
                        })
                        .await?;
                    if !done {
                        tracing::warn!("a range's lease ran out before its last attempt ended");
                    }
                    return Ok(Flow::Stopped);
                }
                let released = self
                    .pool
                    .run(move |conn| {
                        delivery::release(
                            conn,
                            &range,
                            &owner,
                            rest_from,
                            &why,
                            next,
                            how == Again::AfterFailure,
                        )
                        .map_err(SyncError::from)
                    })
                    .await?;
                if !released {
                    tracing::warn!("a range's lease ran out before it was given back: another dispatcher has it");
                }
            }
        }
        Ok(Flow::Stopped)
    }
}

/// (seq, when written) of each item.
fn written(items: &[Item]) -> Vec<(i64, chrono::NaiveDateTime)> {
    items
        .iter()
        .map(|i| (i.change.seq, i.change.created_at))
        .collect()
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
