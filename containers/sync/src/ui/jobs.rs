//! The sync container's scheduled jobs (UIs: they call actions).

use std::sync::Arc;
use std::time::Duration;

use ship::contracts::PeerDirectory;
use ship::parents::{Action, Job, JobError, JobFuture};

use crate::actions::{
    AlertsInput, BootstrapAction, BootstrapInput, PullChangesAction, PullChangesInput,
};
use crate::errors::SyncError;

/// The peers the pull reads: the configured ones (`SyncConfig::pull_peer_ids`; possibly none:
/// push-only peers), else — no `[[sync.peers]]` at all — every region the broker lists. The
/// alerts evaluate `pull_lag` over the same set, and `regionsync sync pull|run` pull it.
pub async fn peers_to_pull(
    directory: &dyn PeerDirectory,
    configured: Option<&[String]>,
) -> Result<Vec<String>, ship::contracts::DirectoryError> {
    match configured {
        None => Ok(directory.peers().await?.into_iter().map(|g| g.id).collect()),
        Some(peers) => Ok(peers.to_vec()),
    }
}

/// PullChangesJob (anti-entropy, SYNC-PROTOCOL §10): for every peer and resource, pull the
/// feed from the stored cursor through `PullChangesAction`. One failing peer never stops the
/// others; the run fails (and is recorded so) when any pull failed.
///
/// With a bootstrap action (`sync.bootstrap = "auto"`), a peer there is no cursor into yet, and
/// a pull answered `410` or `409 cursor_diverged`, bootstraps from that peer's snapshot
/// (resuming one under way), then pulls again; the same refusal right after a finished
/// bootstrap is a loop, which the bootstrap action refuses until an operator acts.
pub struct PullChangesJob {
    action: PullChangesAction,
    bootstrap: Option<BootstrapAction>,
    directory: Arc<dyn PeerDirectory>,
    /// The configured pull peers; `None`: every region the broker lists.
    peers: Option<Vec<String>>,
    resources: Vec<String>,
    page_limit: u32,
    /// How long one pull of a peer's resource goes on while it has more.
    run_for: Duration,
}

impl PullChangesJob {
    pub const NAME: &'static str = "sync.pull_changes";

    pub fn new(
        action: PullChangesAction,
        directory: Arc<dyn PeerDirectory>,
        peers: Option<Vec<String>>,
        resources: Vec<String>,
        page_limit: u32,
    ) -> Self {
        Self {
            action,
            bootstrap: None,
            directory,
            peers,
            resources,
            page_limit,
            run_for: Duration::from_secs(60),
        }
    }

    /// How long one pull of a peer's resource goes on while it has more (`sync.pull_run_secs`,
    /// 60 s by default).
    pub fn running_for(mut self, run_for: Duration) -> Self {
        self.run_for = run_for;
        self
    }

    /// Bootstrap by itself (`sync.bootstrap = "auto"`): from a peer there is no cursor into
    /// yet (a region that joins, or a database with a new incarnation), after a 410 and after
    /// a `409 cursor_diverged` (the peer's database was replaced).
    pub fn with_bootstrap(mut self, bootstrap: BootstrapAction) -> Self {
        self.action = self.action.bootstrapping_first();
        self.bootstrap = Some(bootstrap);
        self
    }

    /// One peer and resource: the pull, and after a 410 the bootstrap and the pull again.
    async fn pull_one(&self, peer: &str, resource: &str) -> Result<(), SyncError> {
        let input = || PullChangesInput {
            peer: peer.to_string(),
            resource: resource.to_string(),
            page_limit: self.page_limit,
            // Bounded by time per run (`sync.pull_run_secs`), not by pages: a backlog drains
            // in one run; the next run goes on from the stored cursor.
            max_pages: u32::MAX,
            run_for: Some(self.run_for),
        };
        let outcome = self.action.run(input()).await;
        let Some(bootstrap) = &self.bootstrap else {
            return outcome.map(drop);
        };
        // A refusal of our cursor may be a loop (the same refusal right after a finished
        // bootstrap), which the bootstrap action refuses; no cursor yet never is.
        let auto = match &outcome {
            Err(SyncError::PeerCursorExpired { .. })
            | Err(SyncError::PeerCursorDiverged { .. }) => {
                tracing::warn!(%peer, %resource, error = %ship::errors::clip(&outcome.as_ref().err().map(ToString::to_string).unwrap_or_default()), "the peer's feed no longer continues our cursor: bootstrapping from its snapshot");
                true
            }
            Err(SyncError::BootstrapFirst { .. }) => {
                tracing::info!(%peer, %resource, "no cursor into the peer's feed yet: bootstrapping from its snapshot");
                false
            }
            _ => return outcome.map(drop),
        };
        let done = bootstrap
            .run(BootstrapInput {
                peer: peer.to_string(),
                resource: resource.to_string(),
                page_limit: self.page_limit,
                // Bounded per run like the pull; the next run resumes the bootstrap.
                max_pages: 1_000,
                auto,
            })
            .await?;
        if done.done {
            self.action.run(input()).await?;
        }
        Ok(())
    }

    async fn pull_all(&self) -> Result<(), JobError> {
        let peers = peers_to_pull(self.directory.as_ref(), self.peers.as_deref()).await?;
        let mut failed = Vec::new();
        for peer in &peers {
            for resource in &self.resources {
                if let Err(e) = self.pull_one(peer, resource).await {
                    tracing::warn!(%peer, %resource, error = %e, "pull failed");
                    failed.push(format!("{peer}/{resource}: {e}"));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; ").into())
        }
    }
}

impl Job for PullChangesJob {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(self.pull_all())
    }
}

/// DispatchOutboxJob (push, SYNC-PROTOCOL §4): `workers` dispatchers, each running passes
/// through `DispatchOutboxAction` for up to `stay` (a minute): a pass that filled its whole
/// claim is followed at once by the next; otherwise the worker waits for a local write to
/// commit in this process (`wake`), for `poll`, or for the kernel to stop, whichever comes
/// first. So a write is pushed within milliseconds when the web server and the scheduler share
/// a process, and within `poll` otherwise; a stopping kernel ends the run after the passes in
/// flight. Workers claim different entries (leases), so while one waits for a peer's answer
/// another sends the next batch.
pub struct DispatchOutboxJob {
    action: crate::actions::DispatchOutboxAction,
    owner: String,
    claim_limit: usize,
    workers: usize,
    /// Under a stream of local writes, a worker's passes start at least this far apart, so
    /// the writes of that time leave in one batch (Kafka's `linger.ms`); a write after a quiet
    /// spell goes at once.
    linger: std::time::Duration,
    wake: Arc<tokio::sync::Notify>,
    poll: std::time::Duration,
    stay: std::time::Duration,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl DispatchOutboxJob {
    pub const NAME: &'static str = "sync.dispatch_outbox";

    /// `owner`: this dispatcher's name in the outbox leases.
    pub fn new(
        action: crate::actions::DispatchOutboxAction,
        owner: impl Into<String>,
        claim_limit: u32,
        wake: Arc<tokio::sync::Notify>,
        poll: std::time::Duration,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            action,
            owner: owner.into(),
            claim_limit: claim_limit as usize,
            workers: 1,
            linger: std::time::Duration::ZERO,
            wake,
            poll,
            stay: std::time::Duration::from_secs(60),
            stopping,
        }
    }

    /// Space a worker's passes `linger` apart while local writes keep waking it (see the
    /// field).
    pub fn with_linger(mut self, linger: std::time::Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Run `workers` (at least one) dispatchers at once.
    pub fn with_workers(mut self, workers: u32) -> Self {
        self.workers = workers.max(1) as usize;
        self
    }

    async fn dispatch(&self) -> Result<(), JobError> {
        let results =
            futures_util::future::join_all((0..self.workers).map(|w| self.worker(w))).await;
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; ").into())
        }
    }

    async fn worker(&self, index: usize) -> Result<(), JobError> {
        let owner = if self.workers > 1 {
            format!("{}/{index}", self.owner)
        } else {
            self.owner.clone()
        };
        let started = std::time::Instant::now();
        loop {
            // At least one pass per run, even when the kernel is already stopping: that is how
            // `schedule run` (once, for an external cron) dispatches.
            let summary = self.action.run(owner.clone()).await?;
            let pass_ended = tokio::time::Instant::now();
            let mut stopping = self.stopping.clone();
            if *stopping.borrow() || started.elapsed() >= self.stay {
                return Ok(());
            }
            let more = summary.claimed >= self.claim_limit && summary.delivered > 0;
            if more {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {
                    // Woken by a write soon after the last pass: more are likely on their
                    // way; gather them (a no-op after a quiet spell).
                    tokio::select! {
                        _ = tokio::time::sleep_until(pass_ended + self.linger) => {}
                        _ = stopping.changed() => return Ok(()),
                    }
                }
                _ = tokio::time::sleep(self.poll) => {}
                // A stopping kernel starts no new pass.
                _ = stopping.changed() => return Ok(()),
            }
        }
    }
}

impl Job for DispatchOutboxJob {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(self.dispatch())
    }
}

/// PruneJob: retention through `PruneAction` (what may be deleted, and only that).
pub struct PruneJob {
    action: crate::actions::PruneAction,
    input: crate::actions::PruneInput,
}

impl PruneJob {
    pub const NAME: &'static str = "sync.prune";

    pub fn new(action: crate::actions::PruneAction, input: crate::actions::PruneInput) -> Self {
        Self { action, input }
    }
}

impl Job for PruneJob {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(async move {
            self.action.run(self.input).await?;
            Ok(())
        })
    }
}

/// WatchPeersJob (issue 13.7): the broker's list of peers with their heartbeat status, given
/// to `PeersSeenAction` — a peer online again after being listed offline is served at once.
/// The list comes through the directory's cache (refreshed every minute), so a comeback is
/// seen within the heartbeat interval plus a minute; a broker that cannot be reached changes
/// nothing.
pub struct WatchPeersJob {
    action: crate::actions::PeersSeenAction,
    directory: Arc<dyn PeerDirectory>,
}

impl WatchPeersJob {
    pub const NAME: &'static str = "sync.watch_peers";

    pub fn new(action: crate::actions::PeersSeenAction, directory: Arc<dyn PeerDirectory>) -> Self {
        Self { action, directory }
    }

    async fn watch(&self) -> Result<(), JobError> {
        let seen = self
            .directory
            .peers()
            .await?
            .into_iter()
            .map(|grant| crate::actions::PeerSeen {
                online: grant.status == "online",
                peer: grant.id,
            })
            .collect();
        self.action.run(seen).await?;
        Ok(())
    }
}

impl Job for WatchPeersJob {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(self.watch())
    }
}

/// SendAnomalyAlertJob: evaluate the anomaly conditions and notify the webhook
/// (`EvaluateAlertsAction`), with the peers the pull reads (`pull_lag`). When the broker's
/// list cannot be had, the last one this job got stands in (the evaluation still runs:
/// `broker_unreachable` is one of its conditions).
pub struct SendAnomalyAlertJob {
    action: crate::actions::EvaluateAlertsAction,
    directory: Arc<dyn PeerDirectory>,
    /// The configured peers; empty: every region the broker lists.
    peers: Option<Vec<String>>,
    /// The last peer list this job got (none yet: unknown).
    last_listed: std::sync::Mutex<Option<Vec<String>>>,
}

impl SendAnomalyAlertJob {
    pub const NAME: &'static str = "sync.anomaly_alerts";

    pub fn new(
        action: crate::actions::EvaluateAlertsAction,
        directory: Arc<dyn PeerDirectory>,
        peers: Option<Vec<String>>,
    ) -> Self {
        Self {
            action,
            directory,
            peers,
            last_listed: std::sync::Mutex::default(),
        }
    }

    async fn evaluate(&self) -> Result<(), JobError> {
        let listed = peers_to_pull(self.directory.as_ref(), self.peers.as_deref()).await;
        let (peers, peers_unknown) = {
            let mut last = self
                .last_listed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match (listed, last.as_ref()) {
                (Ok(peers), _) => {
                    *last = Some(peers.clone());
                    (peers, false)
                }
                (Err(e), Some(known)) => {
                    tracing::warn!(error = %e, "no peer list from the broker; pull lag uses the last one");
                    (known.clone(), false)
                }
                (Err(e), None) => {
                    tracing::warn!(error = %e, "no peer list from the broker yet; pull lag alerts are left as they are");
                    (Vec::new(), true)
                }
            }
        };
        self.action
            .run(AlertsInput {
                peers,
                peers_unknown,
            })
            .await?;
        Ok(())
    }
}

impl Job for SendAnomalyAlertJob {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(self.evaluate())
    }
}

/// VerifyJob (`sync.verify`, daily by default): compare every pull peer's rows with ours,
/// resource by resource (`VerifyAction` records each result; the `divergence` alert reads it).
pub struct VerifyJob {
    action: crate::actions::VerifyAction,
    directory: Arc<dyn PeerDirectory>,
    peers: Option<Vec<String>>,
    resources: Vec<String>,
}

impl VerifyJob {
    pub const NAME: &'static str = "sync.verify";

    pub fn new(
        action: crate::actions::VerifyAction,
        directory: Arc<dyn PeerDirectory>,
        peers: Option<Vec<String>>,
        resources: Vec<String>,
    ) -> Self {
        Self {
            action,
            directory,
            peers,
            resources,
        }
    }

    async fn verify_all(&self) -> Result<(), JobError> {
        let peers = peers_to_pull(self.directory.as_ref(), self.peers.as_deref()).await?;
        let mut failed = Vec::new();
        for peer in &peers {
            for resource in &self.resources {
                let input = crate::actions::VerifyInput {
                    peer: peer.clone(),
                    resource: resource.clone(),
                };
                match self.action.run(input).await {
                    Ok(s) if !s.differing.is_empty() => tracing::warn!(
                        %peer, %resource, differing = s.differing.len(),
                        "rows differ from the peer (divergence alert)"
                    ),
                    Ok(s) => {
                        tracing::info!(%peer, %resource, rows = s.rows_local, bytes = s.bytes, "verified: no row differs")
                    }
                    Err(e) => failed.push(format!("{peer}/{resource}: {e}")),
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; ").into())
        }
    }
}

impl Job for VerifyJob {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(self.verify_all())
    }
}

/// ReleaseParkedJob (ADR 0015): apply the parked ops whose missing row has arrived
/// (`ReleaseParkedAction`); the inline release does it at once on the path that brings the
/// row, this catches the rest.
pub struct ReleaseParkedJob {
    action: crate::actions::ReleaseParkedAction,
}

impl ReleaseParkedJob {
    pub const NAME: &'static str = "sync.release_parked";

    pub fn new(action: crate::actions::ReleaseParkedAction) -> Self {
        Self { action }
    }
}

impl Job for ReleaseParkedJob {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(async move {
            self.action.run(()).await?;
            Ok(())
        })
    }
}
