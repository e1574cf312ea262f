//! EvaluateAlerts (SendAnomalyAlertJob, SYNC-PROTOCOL §10): evaluate the anomaly conditions,
//! keep one alert per firing (kind, subject) in `sync_alerts`, and tell the webhook when an
//! alert fires, is still firing after the cool-down, and resolves.
//!
//! Conditions, per peer unless said: `backlog_age` (the oldest entry owed is older than
//! `backlog_max_age_secs`), `backlog_size` (more than `backlog_max_entries` owed),
//! `dead_letters` (dead entries exist), `push_lag` (entries are owed and nothing reached the
//! peer for `push_lag_max_secs`: counted from the later of its last delivery and its oldest
//! pending entry, so a write after a quiet spell is not late at once), `pull_lag` (a peer the
//! pull job reads — the input's peers — not pulled successfully for `pull_lag_max_secs`; a peer
//! never pulled counts from when this action first saw it in its input, and an alert already
//! firing for a peer that still was never pulled keeps firing across restarts),
//! `bootstrap_needed` (per peer/resource: its feed answered 410 and the pull stopped),
//! `quarantined` (per peer/resource: entries of its feed parked because they cannot apply),
//! `parked_ops` (per resource: ops waiting for a row they name for longer than
//! `parked_max_age_secs`, ADR 0015),
//! `divergence` (per peer/resource: the last verify found rows that differ),
//! `bootstrap_loop` (per peer/resource: a 410 right after a finished bootstrap from it),
//! `restored` (this region's database was found to be an older copy of itself and got a new
//! incarnation) and `peer_reincarnated` (per peer: its database showed a new incarnation) —
//! events, each firing for an hour after it happened (ADR 0012),
//! `clock_drift_refusals` (per source region) and `auth_refusals` (per token code) when such
//! refusals happened within the last two evaluation intervals, and for the region
//! `broker_unreachable` (as this process's directory sees it), and per peer `peer_offline` (the
//! broker lists it offline: its heartbeats stopped; kept as it is while the list cannot be had). A condition that resolved less
//! than `cool_down_secs` ago does not fire again.
//!
//! Predictive ones (ADR 0016): `clock_skew` (per peer: its wall clock, as last measured from
//! the `Regionsync-Clock` headers, is off ours by more than `clock_skew_max_ms`; a measurement
//! older than [`CLOCK_MEASUREMENT_MAX_AGE_SECS`] neither fires nor resolves it, one older
//! than [`CLOCK_MEASUREMENT_FORGOTTEN_SECS`] resolves it; a one-way reading fires only for a
//! peer ahead of us) and
//! `history_loss_risk` (per reader/resource, only with a feed hold cap: at the reader's
//! measured rate, the oldest entry it has not read passes the cap within
//! `history_loss_horizon_secs`, or is gone already).
//!
//! Notifications are sent one after the other. A webhook that refuses one (a 4xx other than
//! 408/429) refuses that one only: it is tried again at the next evaluation and the others go
//! on. Once the webhook failed every attempt for one (no answer, 5xx), the others wait for the
//! next evaluation, so an unreachable webhook holds an evaluation for at most one
//! notification's attempts. While the peer list is unknown (`AlertsInput::peers_unknown`)
//! firing `pull_lag` alerts are left as they are.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use ship::contracts::PeerDirectory;
use ship::parents::Action;
use ship::DbPool;

use crate::alerts_config::AlertsConfig;
use crate::data::alerts::{self, Alert};
use crate::errors::SyncError;
use crate::peer_clock::ClockVerdict;
use crate::tasks::peer_status::PeerStatusTask;
use crate::tasks::send_alert::{AlertSent, SendAlertTask};

/// What an evaluation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlertsSummary {
    pub fired: usize,
    pub resolved: usize,
    pub notified: usize,
}

/// One evaluation's input.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlertsInput {
    /// The peers the pull job reads (the configured peers, else the broker's list): the
    /// subjects of `pull_lag`.
    pub peers: Vec<String>,
    /// The peer list could not be had (the broker is unreachable and this process never got
    /// one): firing `pull_lag` alerts are kept as they are, neither resolved nor re-judged.
    pub peers_unknown: bool,
}

/// (kind, subject) → (message, value).
type Conditions = BTreeMap<(String, String), (String, i64)>;

/// (kind, subject) of alerts that cannot be judged now: a firing one is kept as it is.
type Unjudged = BTreeSet<(String, String)>;

/// When the age of a reader's oldest unread entry was taken, and that age in seconds.
type AgeSample = (DateTime<Utc>, f64);

/// A peer clock measurement older than this (seconds) says nothing about the clock now: a
/// `clock_skew` alert is neither fired nor resolved from it (a peer that is unreachable, or no
/// longer exchanged with, keeps its alert as it stood).
pub const CLOCK_MEASUREMENT_MAX_AGE_SECS: i64 = crate::peer_clock::MEASUREMENT_MAX_AGE_SECS;

/// A measurement older than this (seconds) no longer holds a `clock_skew` alert: it resolves
/// (review: a peer that stopped sending the header kept its alert firing for ever, and the only
/// way out was to forget the peer altogether).
pub const CLOCK_MEASUREMENT_FORGOTTEN_SECS: i64 = crate::peer_clock::MEASUREMENT_FORGOTTEN_SECS;

/// Per peer: pending, dead, oldest pending creation, last delivery.
#[derive(Default)]
struct Owed {
    pending: i64,
    dead: i64,
    oldest_pending: Option<DateTime<Utc>>,
    last_delivery: Option<DateTime<Utc>>,
}

pub struct EvaluateAlertsAction {
    pool: DbPool,
    directory: Arc<dyn PeerDirectory>,
    client: reqwest::Client,
    region: String,
    config: AlertsConfig,
    /// When this action first saw each peer in its input: a peer never pulled lags from then.
    first_seen: Mutex<HashMap<String, DateTime<Utc>>>,
    /// The age past which a reader's unread entries are pruned anyway (the larger of
    /// `sync.feed_hold_max_hours` and `sync.changelog_retention_hours`); `None`: no cap, a
    /// reader never loses history (`history_loss_risk` is not evaluated).
    feed_hold: Option<chrono::Duration>,
    /// Per (reader, resource), the previous evaluation's time and age of its oldest unread
    /// entry: the rate that age changes at. In memory: after a restart the first evaluation
    /// takes the reader as stalled.
    reader_ages: Mutex<HashMap<(String, String), AgeSample>>,
}

impl EvaluateAlertsAction {
    pub fn new(
        pool: DbPool,
        directory: Arc<dyn PeerDirectory>,
        client: reqwest::Client,
        region: impl Into<String>,
        config: AlertsConfig,
    ) -> Self {
        Self {
            pool,
            directory,
            client,
            region: region.into(),
            config,
            first_seen: Mutex::default(),
            feed_hold: None,
            reader_ages: Mutex::default(),
        }
    }

    /// Evaluate `history_loss_risk` against the feed hold cap `cap` (`sync.feed_hold_max_hours`;
    /// zero: no cap, nothing to predict) — an unread entry goes once older than both it and the
    /// changelog retention `retention`.
    pub fn with_feed_hold(mut self, cap: Duration, retention: Duration) -> Self {
        self.feed_hold = (!cap.is_zero())
            .then(|| chrono::Duration::from_std(cap.max(retention)).ok())
            .flatten();
        self
    }

    /// `clock_skew`: per peer, its last measured clock offset beyond `clock_skew_max_ms`. A
    /// round-trip measurement counts only what its error (half the round trip) cannot explain.
    /// Stale measurements go to `unjudged`.
    async fn clock_conditions(
        &self,
        now: DateTime<Utc>,
        out: &mut Conditions,
        unjudged: &mut Unjudged,
    ) -> Result<(), SyncError> {
        let clocks = self
            .pool
            .run(|conn| crate::data::peer_clocks::all(conn).map_err(SyncError::from))
            .await?;
        let max = i64::try_from(self.config.clock_skew_max_ms).unwrap_or(i64::MAX);
        for c in clocks {
            let key = ("clock_skew".to_string(), c.peer.clone());
            let judged = crate::peer_clock::verdict(
                c.offset_ms,
                c.round_trip_ms,
                c.measured_at.and_utc(),
                now,
                max,
            );
            match judged {
                // Forgotten resolves; within and one-way-behind do not fire.
                ClockVerdict::Forgotten | ClockVerdict::Within | ClockVerdict::BehindOneWay => {
                    continue
                }
                ClockVerdict::Stale => {
                    unjudged.insert(key);
                    continue;
                }
                ClockVerdict::Beyond => {}
            }
            let error = c.round_trip_ms.map_or(0, |rt| rt / 2);
            let how = match c.round_trip_ms {
                Some(rt) => format!("over a {rt} ms round trip, ±{error} ms"),
                None => "one way, from its request: its transit time makes it look behind".into(),
            };
            out.insert(
                key,
                (
                    format!(
                        "{}'s clock is {} ms {} ours (measured {}, {how}; the bound is {max} ms): its changes are refused once more than `sync.max_clock_drift_ms` ahead of a receiver; check NTP/chrony on both regions",
                        c.peer,
                        c.offset_ms.saturating_abs(),
                        if c.offset_ms > 0 { "ahead of" } else { "behind" },
                        c.measured_at.and_utc().to_rfc3339(),
                    ),
                    c.offset_ms,
                ),
            );
        }
        Ok(())
    }

    /// `history_loss_risk`: per feed reader and resource, with a cap: its oldest unread entry
    /// is older than the cap within the horizon at the rate its age changed since the previous
    /// evaluation (first sample: stalled, 1 s/s; the rate is at most that), or is gone already.
    async fn history_conditions(
        &self,
        now: DateTime<Utc>,
        out: &mut Conditions,
        unjudged: &mut Unjudged,
    ) -> Result<(), SyncError> {
        let Some(cap) = self.feed_hold else {
            return Ok(());
        };
        let readers = self
            .pool
            .run(|conn| crate::data::feed_acks::readers(conn).map_err(SyncError::from))
            .await?;
        let cap_secs = cap.num_seconds() as f64;
        let horizon = self.config.history_loss_horizon_secs as f64;
        let mut ages = self
            .reader_ages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut kept = BTreeSet::new();
        for r in readers {
            let (peer, resource) = (r.peer.clone(), r.resource.clone());
            let key = (
                "history_loss_risk".to_string(),
                format!("{peer}/{resource}"),
            );
            if r.lost {
                out.insert(
                    key,
                    (
                        format!(
                            "{peer} has lost {resource} history: it read to seq {} and what follows was pruned (older than the feed hold cap, `sync.feed_hold_max_hours`); its next read is answered 410 and it needs a bootstrap — if {peer} is gone for good, `regionsync outbox discard --peer {peer}`",
                            r.acked_seq
                        ),
                        0,
                    ),
                );
                continue;
            }
            let Some((seq, created_at)) = r.oldest_needed else {
                continue; // read to the end: nothing to lose
            };
            let age = (now - created_at.and_utc()).num_milliseconds() as f64 / 1000.0;
            let rate = match ages.get(&(peer.clone(), resource.clone())) {
                Some((at, before)) if now > *at => {
                    let elapsed = (now - *at).num_milliseconds() as f64 / 1000.0;
                    ((age - before) / elapsed).min(1.0)
                }
                // No sample in this process yet (it just started): nothing is judged from one
                // point — the alert stays as it stands until the next evaluation has a rate
                // (review: taking every reader as stalled fired false alerts after each
                // restart, and the flapping rule then held a real one back). A reader already
                // past the cap needs no rate.
                _ if age < cap_secs => {
                    ages.insert((peer.clone(), resource.clone()), (now, age));
                    kept.insert((peer.clone(), resource.clone()));
                    unjudged.insert(key);
                    continue;
                }
                _ => 1.0,
            };
            ages.insert((peer.clone(), resource.clone()), (now, age));
            kept.insert((peer.clone(), resource.clone()));
            if age + rate * horizon < cap_secs {
                continue;
            }
            let left = if age >= cap_secs {
                0
            } else {
                ((cap_secs - age) / rate.max(f64::MIN_POSITIVE)) as i64
            };
            out.insert(
                key,
                (
                    format!(
                        "{peer} has not read {resource} from seq {seq} on, written {} s ago; at its rate (its oldest unread entry ages {rate:.2} s/s) that entry is pruned in about {left} s (past {} s: `sync.feed_hold_max_hours`, at least `changelog_retention_hours`), and {peer} then needs a bootstrap: check that it is up and pulling (`regionsync sync status`: READ TO, LAST READ {}), or raise `sync.feed_hold_max_hours`",
                        age as i64,
                        cap.num_seconds(),
                        r.last_seen_at.and_utc().to_rfc3339(),
                    ),
                    left,
                ),
            );
        }
        ages.retain(|k, _| kept.contains(k));
        Ok(())
    }

    /// When each of `peers` was first seen by this action (now for a new one).
    fn first_seen(&self, peers: &[String], now: DateTime<Utc>) -> HashMap<String, DateTime<Utc>> {
        let mut seen = self
            .first_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        peers
            .iter()
            .map(|p| (p.clone(), *seen.entry(p.clone()).or_insert(now)))
            .collect()
    }

    /// The conditions that hold now; `listed`: the broker's view of the regions (`None`: it
    /// could not be had).
    async fn conditions(
        &self,
        input: &AlertsInput,
        listed: Option<&[ship::contracts::PeerGrant]>,
    ) -> Result<(Conditions, Unjudged), SyncError> {
        let mut out = BTreeMap::new();
        let mut unjudged = BTreeSet::new();
        let now = Utc::now();
        let first_seen = self.first_seen(&input.peers, now);
        let (status, open) = self
            .pool
            .run({
                let region = self.region.clone();
                move |conn| {
                    Ok::<_, SyncError>((
                        PeerStatusTask::run(conn, &region, false)?,
                        alerts::open(conn)?,
                    ))
                }
            })
            .await?;
        let mut pulled: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        let mut owed: BTreeMap<String, Owed> = BTreeMap::new();
        for s in &status {
            let entry = owed.entry(s.peer.clone()).or_default();
            entry.pending += s.pending;
            entry.dead += s.dead;
            entry.oldest_pending = [entry.oldest_pending, s.oldest_pending_at]
                .into_iter()
                .flatten()
                .min();
            entry.last_delivery = entry.last_delivery.max(s.last_push_at);
            if let Some(at) = s.last_pull_at {
                let latest = pulled.entry(s.peer.clone()).or_insert(at);
                *latest = (*latest).max(at);
            }
        }
        for (peer, owed) in owed {
            if let Some(oldest) = owed.oldest_pending {
                let age = (now - oldest).num_seconds();
                if age > self.config.backlog_max_age_secs as i64 {
                    out.insert(
                        ("backlog_age".into(), peer.clone()),
                        (
                            format!("the oldest change owed to {peer} is {age} s old"),
                            age,
                        ),
                    );
                }
                // Nothing owed before `oldest` was written: the push is late from the later of
                // the last delivery and that write.
                let since = owed.last_delivery.map_or(oldest, |at| at.max(oldest));
                let lag = (now - since).num_seconds();
                if lag > self.config.push_lag_max_secs as i64 {
                    let message = match owed.last_delivery {
                        Some(at) => format!(
                            "{} change(s) are owed to {peer} and nothing reached it for {lag} s (last delivery {})",
                            owed.pending,
                            at.to_rfc3339()
                        ),
                        None => format!(
                            "{} change(s) are owed to {peer}, no delivery on record, the oldest is {lag} s old",
                            owed.pending
                        ),
                    };
                    out.insert(("push_lag".into(), peer.clone()), (message, lag));
                }
            }
            let pending = owed.pending;
            if pending > self.config.backlog_max_entries {
                out.insert(
                    ("backlog_size".into(), peer.clone()),
                    (format!("{pending} changes are owed to {peer}"), pending),
                );
            }
            let dead = owed.dead;
            if dead > 0 {
                out.insert(
                    ("dead_letters".into(), peer.clone()),
                    (
                        format!("{dead} change(s) for {peer} are dead letters (`regionsync outbox list --dead`)"),
                        dead,
                    ),
                );
            }
        }
        for peer in &input.peers {
            let max = self.config.pull_lag_max_secs as i64;
            let (lag, message) = match pulled.get(peer) {
                Some(at) => {
                    let lag = (now - *at).num_seconds();
                    (lag, format!("{peer} was last pulled {lag} s ago"))
                }
                None => {
                    let seen = first_seen.get(peer).copied().unwrap_or(now);
                    let mut lag = (now - seen).num_seconds();
                    // Still never pulled and already alerting (from before a restart of this
                    // process, say): it lagged more than the threshold when the alert fired
                    // and was not pulled since.
                    if let Some(alert) = open
                        .iter()
                        .find(|a| a.kind == "pull_lag" && &a.subject == peer)
                    {
                        lag = lag.max((now - alert.fired_at.and_utc()).num_seconds() + max + 1);
                    }
                    (
                        lag,
                        format!("{peer} was never pulled successfully (for at least {lag} s)"),
                    )
                }
            };
            if lag > max {
                out.insert(("pull_lag".into(), peer.clone()), (message, lag));
            }
        }
        let flagged = self
            .pool
            .run(|conn| crate::data::cursors::needing_bootstrap(conn).map_err(SyncError::from))
            .await?;
        for (peer, resource, since) in flagged {
            out.insert(
                ("bootstrap_needed".into(), format!("{peer}/{resource}")),
                (
                    format!(
                        "{peer} no longer has the history of {resource} this region needs (410 since {}): bootstrap from a snapshot",
                        since.and_utc().to_rfc3339()
                    ),
                    1,
                ),
            );
        }
        // A 410 right after a finished bootstrap: not retried by itself (issue 13).
        let looping = self
            .pool
            .run(|conn| crate::data::bootstraps::looping(conn).map_err(SyncError::from))
            .await?;
        for (peer, resource, since) in looping {
            out.insert(
                ("bootstrap_loop".into(), format!("{peer}/{resource}")),
                (
                    format!(
                        "{peer}'s feed of {resource} answered 410 again right after a bootstrap from it (since {}): not bootstrapping again by itself; find why it prunes past the watermark, then `regionsync sync bootstrap --peer {peer}`",
                        since.and_utc().to_rfc3339()
                    ),
                    1,
                ),
            );
        }
        // The last verify against a peer found rows that differ (issue 13).
        let verified = self
            .pool
            .run(|conn| crate::data::verify_results::all(conn).map_err(SyncError::from))
            .await?;
        for (peer, resource, differing, at) in verified.into_iter().filter(|v| v.2 > 0) {
            out.insert(
                ("divergence".into(), format!("{peer}/{resource}")),
                (
                    format!(
                        "{differing} row(s) of {resource} differ from {peer} (verified {}): `regionsync sync verify --peer {peer}`, then `sync repair`",
                        at.and_utc().to_rfc3339()
                    ),
                    differing,
                ),
            );
        }
        // Databases replaced or restored (ADR 0012): events, each standing for an hour.
        let hour_ago = ship::db::utc_now() - chrono::Duration::hours(1);
        let (ours, reincarnated, under_way) = self
            .pool
            .run(move |conn| {
                Ok::<_, SyncError>((
                    ship::db::incarnation(conn)?,
                    crate::data::peer_incarnations::changed_since(conn, hour_ago)?,
                    crate::data::bootstraps::under_way(conn)?.len(),
                ))
            })
            .await?;
        if let Some(at) = ours
            .since
            .filter(|at| !ours.previous.is_empty() && *at >= hour_ago)
        {
            out.insert(
                ("restored".into(), String::new()),
                (
                    format!(
                        "this region's database was found to be an older copy of itself (a restored backup; incarnation {} → {} at {}): its pull cursors are void and it bootstraps again from every peer it pulls ({under_way} bootstrap(s) under way; with sync.bootstrap = \"manual\", run `regionsync sync bootstrap --peer P` for each)",
                        ours.previous,
                        ours.id,
                        at.and_utc().to_rfc3339()
                    ),
                    1,
                ),
            );
        }
        for (peer, incarnation, previous, at) in reincarnated {
            out.insert(
                ("peer_reincarnated".into(), peer.clone()),
                (
                    format!(
                        "{peer}'s database was replaced or restored (incarnation {previous} → {incarnation} at {}): it bootstraps from its peers; this region re-reads its feed from a snapshot",
                        at.and_utc().to_rfc3339()
                    ),
                    1,
                ),
            );
        }
        // Feed entries parked in the quarantine (issue 13): firing while any are there.
        let parked = self
            .pool
            .run(|conn| crate::data::quarantine::counts(conn).map_err(SyncError::from))
            .await?;
        for (peer, resource, n, oldest) in parked {
            out.insert(
                ("quarantined".into(), format!("{peer}/{resource}")),
                (
                    format!(
                        "{n} entr{} of {peer}'s {resource} feed cannot apply here and are quarantined (oldest {}): `regionsync sync quarantine list`, then retry or discard",
                        if n == 1 { "y" } else { "ies" },
                        oldest.and_utc().to_rfc3339()
                    ),
                    n,
                ),
            );
        }
        // Ops parked for a row they name that has not arrived within the bound (ADR 0015).
        let waited = self
            .pool
            .run(|conn| crate::data::parked_ops::counts(conn).map_err(SyncError::from))
            .await?;
        let bound = chrono::Duration::seconds(self.config.parked_max_age_secs as i64);
        for (resource, n, oldest) in waited {
            if ship::db::utc_now() - oldest < bound {
                continue;
            }
            out.insert(
                ("parked_ops".into(), resource.clone()),
                (
                    format!(
                        "{n} {resource} op(s) are parked waiting for rows they name (oldest since {}, longer than {} s): a referenced row has not arrived — check the peers' push and pull of the referenced resource (`regionsync sync status`, `regionsync sync parked list`)",
                        oldest.and_utc().to_rfc3339(),
                        self.config.parked_max_age_secs
                    ),
                    n,
                ),
            );
        }
        // Refusals in the recent window (the web process counts them).
        let window = chrono::Duration::seconds((self.config.interval_secs * 2).max(60) as i64);
        let since = ship::db::utc_now() - window;
        let refused = self
            .pool
            .run(move |conn| crate::data::refusals::recent(conn, since).map_err(SyncError::from))
            .await?;
        for (kind, source, total, _) in refused {
            let (alert, subject) = if kind == "clock_drift" {
                ("clock_drift_refusals", source.clone())
            } else {
                ("auth_refusals", kind.clone())
            };
            out.insert(
                (alert.into(), subject),
                (
                    format!(
                        "recent {kind} refusals{} ({total} since counting began)",
                        if source.is_empty() {
                            String::new()
                        } else {
                            format!(" from {source}")
                        }
                    ),
                    total,
                ),
            );
        }
        // The broker's heartbeat view: a region it lists offline (issue 16.5).
        if let Some(listed) = listed {
            for peer in listed.iter().filter(|p| p.status == "offline") {
                out.insert(
                    ("peer_offline".into(), peer.id.clone()),
                    (
                        format!(
                            "the broker lists {} offline (no heartbeat from it for `broker.offline_after_secs`): what this region owes it waits, and its writes do not arrive; see `regionsync broker regions list` at the broker",
                            peer.id
                        ),
                        1,
                    ),
                );
            }
        }
        let health = self.directory.health();
        if !health.broker_reachable && health.last_error.is_some() {
            out.insert(
                ("broker_unreachable".into(), String::new()),
                (
                    format!(
                        "the broker cannot be reached: {}",
                        health.last_error.unwrap_or_default()
                    ),
                    1,
                ),
            );
        }
        self.clock_conditions(now, &mut out, &mut unjudged).await?;
        self.history_conditions(now, &mut out, &mut unjudged)
            .await?;
        Ok((out, unjudged))
    }
}

impl Action for EvaluateAlertsAction {
    const NAME: &'static str = "sync.evaluate_alerts";
    type Input = AlertsInput;
    type Output = AlertsSummary;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.evaluate_alerts", skip_all)]
    async fn run(&self, input: AlertsInput) -> Result<AlertsSummary, SyncError> {
        // The broker's list, when the broker answers (a directory that cannot reach it serves
        // what it cached: not a view of who is offline now).
        let listed = if self.directory.health().broker_reachable {
            self.directory.peers().await.ok()
        } else {
            None
        };
        let (holding, unjudged) = self.conditions(&input, listed.as_deref()).await?;
        let keep_pull_lag = input.peers_unknown;
        // Without the broker's list, `peer_offline` cannot be judged: kept as it is.
        let keep_peer_offline = listed.is_none();
        let cool_down = chrono::Duration::seconds(self.config.cool_down_secs as i64);
        let mut summary = AlertsSummary::default();
        let (fired, resolved) = self
            .pool
            .transaction(move |conn| {
                let open: Vec<Alert> = alerts::open(conn)?;
                let mut fired = 0;
                let mut resolved = 0;
                for alert in &open {
                    match holding.get(&(alert.kind.clone(), alert.subject.clone())) {
                        Some((message, value)) => alerts::update(conn, alert.id, message, *value)?,
                        // Regression (review): with no peer list (a fresh process while the
                        // broker is down) every pull_lag alert looked resolved, and the
                        // cool-down then kept it from firing again for an hour.
                        None if keep_pull_lag && alert.kind == "pull_lag" => {}
                        None if keep_peer_offline && alert.kind == "peer_offline" => {}
                        None if unjudged.contains(&(alert.kind.clone(), alert.subject.clone())) => {
                        }
                        None => {
                            alerts::resolve(conn, alert.id)?;
                            resolved += 1;
                        }
                    }
                }
                let now = ship::db::utc_now();
                for ((kind, subject), (message, value)) in &holding {
                    if open
                        .iter()
                        .any(|a| &a.kind == kind && &a.subject == subject)
                    {
                        continue;
                    }
                    let flapping = alerts::last_resolved(conn, kind, subject)?
                        .is_some_and(|at| now - at < cool_down);
                    if !flapping {
                        alerts::fire(conn, kind, subject, message, *value)?;
                        fired += 1;
                    }
                }
                Ok::<_, SyncError>((fired, resolved))
            })
            .await?;
        summary.fired = fired;
        summary.resolved = resolved;

        let remind_before = ship::db::utc_now() - cool_down;
        let due = self
            .pool
            .run(move |conn| alerts::to_notify(conn, remind_before).map_err(SyncError::from))
            .await?;
        for alert in due {
            if alert.notified_state.as_deref() != Some(alert.state.as_str()) {
                tracing::warn!(kind = %alert.kind, subject = %alert.subject, state = %alert.state, "{}", alert.message);
            }
            let sent = match &self.config.webhook_url {
                None => AlertSent::Taken,
                Some(url) => {
                    let body = json!({
                        "region": self.region,
                        "kind": alert.kind,
                        "subject": alert.subject,
                        "state": alert.state,
                        "message": alert.message,
                        "value": alert.value,
                        "fired_at": alert.fired_at.and_utc().to_rfc3339(),
                        "resolved_at": alert.resolved_at.map(|t| t.and_utc().to_rfc3339()),
                    });
                    SendAlertTask::run(
                        &self.client,
                        url,
                        &body,
                        Duration::from_secs(self.config.webhook_timeout_secs),
                        self.config.webhook_attempts,
                    )
                    .await
                }
            };
            match sent {
                AlertSent::Taken => {
                    summary.notified += 1;
                    let (id, state) = (alert.id, alert.state.clone());
                    self.pool
                        .run(move |conn| {
                            alerts::notified(conn, id, &state).map_err(SyncError::from)
                        })
                        .await?;
                }
                // A verdict on this alert (its payload): it is tried again at the next
                // evaluation, and it never holds up the alerts behind it.
                AlertSent::Refused => {}
                AlertSent::Unavailable => {
                    // No answer after every attempt: the rest wait for the next evaluation
                    // instead of each waiting out the same timeouts.
                    tracing::warn!("the alert webhook failed; the remaining notifications wait for the next evaluation");
                    break;
                }
            }
        }
        Ok(summary)
    }
}

/// The alert history, newest first (`regionsync alerts list`).
pub struct ListAlertsAction {
    pool: DbPool,
}

impl ListAlertsAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for ListAlertsAction {
    const NAME: &'static str = "sync.list_alerts";
    type Input = i64;
    type Output = Vec<Alert>;
    type Error = SyncError;

    async fn run(&self, limit: i64) -> Result<Vec<Alert>, SyncError> {
        self.pool
            .run(move |conn| alerts::list(conn, limit).map_err(SyncError::from))
            .await
    }
}

pub use crate::data::alerts::Alert as AlertRow;
