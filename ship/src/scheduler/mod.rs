//! The console kernel's engine (Laravel's scheduler, in Rust): jobs with a [`Schedule`], run by
//! a [`Kernel`] either forever ([`Kernel::work`]) or once for what is due ([`Kernel::run_due`],
//! for an external cron).
//!
//! - A schedule is a cron expression (croner; 5 fields, or 6 with seconds) or a fixed interval.
//!   A cron job is due when an occurrence of its expression lies after its last start (or, for
//!   a job that never ran, within the last minute); an interval job when the interval has passed
//!   since its last start (or it never ran).
//! - `without_overlapping`: a run is skipped while the previous run of the job in this process
//!   has not finished. Under [`Kernel::work`] a due time that falls inside a run is owed, not
//!   dropped: the next run starts as soon as the running one ends (once, however many due times
//!   it covered), so a long-running job (the dispatcher's 60 s stay) hands over without a gap
//!   of up to one interval.
//! - `on_one_server`: a run first takes the job's lease row (owner, expiry) in the database; a
//!   lease held by another live process means skip. The lease is renewed while the job runs and
//!   released when it ends; a crashed owner's lease expires, or is taken over at once by a
//!   scheduler of the same machine and pid namespace that sees the owner's pid gone
//!   ([`owner_is_gone`]).
//! - Every run has a timeout, its own task (a panic or an error fails that run only, never the
//!   kernel or the other jobs), a tracing span, and a row in `ship_scheduler_runs`.

mod data;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Timelike as _, Utc};
use croner::Cron;
use serde::Serialize;
use tracing::Instrument as _;

use crate::db::{DbError, DbPool};
use crate::parents::Job;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("`{expr}` is not a cron expression: {reason}")]
    Cron { expr: String, reason: String },
    #[error("`{0}` is not a time of day like 03:00")]
    TimeOfDay(String),
    #[error("an interval must be at least one second")]
    Interval,
    #[error("job `{0}` is scheduled twice")]
    Duplicate(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for SchedulerError {
    fn from(e: diesel::result::Error) -> Self {
        SchedulerError::Db(DbError::Query(e))
    }
}

#[derive(Debug, Clone)]
enum Cadence {
    Cron { expr: String, cron: Box<Cron> },
    Every(Duration),
}

/// When and how a job runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    cadence: Cadence,
    without_overlapping: bool,
    on_one_server: bool,
    timeout: Duration,
}

impl Schedule {
    fn new(cadence: Cadence) -> Self {
        Self {
            cadence,
            without_overlapping: false,
            on_one_server: false,
            timeout: Duration::from_secs(300),
        }
    }

    /// A cron expression: `*/5 * * * *`, or with seconds `*/10 * * * * *`.
    pub fn cron(expr: &str) -> Result<Self, SchedulerError> {
        let cron = Cron::from_str(expr).map_err(|e| SchedulerError::Cron {
            expr: expr.into(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(Cadence::Cron {
            expr: expr.into(),
            cron: Box::new(cron),
        }))
    }

    pub fn every_seconds(n: u64) -> Result<Self, SchedulerError> {
        if n == 0 {
            return Err(SchedulerError::Interval);
        }
        Ok(Self::new(Cadence::Every(Duration::from_secs(n))))
    }

    pub fn every_minute() -> Self {
        Self::new(Cadence::Every(Duration::from_secs(60)))
    }

    pub fn hourly() -> Result<Self, SchedulerError> {
        Self::cron("0 * * * *")
    }

    /// Every day at `HH:MM` (UTC).
    pub fn daily_at(time: &str) -> Result<Self, SchedulerError> {
        let at = NaiveTime::parse_from_str(time, "%H:%M")
            .map_err(|_| SchedulerError::TimeOfDay(time.into()))?;
        Self::cron(&format!(
            "{} {} * * *",
            chrono::Timelike::minute(&at),
            chrono::Timelike::hour(&at)
        ))
    }

    pub fn without_overlapping(mut self) -> Self {
        self.without_overlapping = true;
        self
    }

    pub fn on_one_server(mut self) -> Self {
        self.on_one_server = true;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `cron */5 * * * *` or `every 30s`, plus the flags.
    pub fn describe(&self) -> String {
        let mut out = match &self.cadence {
            Cadence::Cron { expr, .. } => format!("cron {expr}"),
            Cadence::Every(d) => format!("every {}s", d.as_secs()),
        };
        if self.without_overlapping {
            out.push_str(", without overlapping");
        }
        if self.on_one_server {
            out.push_str(", on one server");
        }
        out
    }

    /// Whether a run is due at `now`, given the job's last start.
    pub fn is_due(&self, now: DateTime<Utc>, last_start: Option<DateTime<Utc>>) -> bool {
        match &self.cadence {
            Cadence::Every(every) => last_start
                .is_none_or(|last| (now - last).to_std().is_ok_and(|elapsed| elapsed >= *every)),
            Cadence::Cron { cron, .. } => {
                // On whole seconds: a tick later in the occurrence's second must not see the
                // occurrence as newer than the run it already started.
                let now = now.with_nanosecond(0).unwrap_or(now);
                let Ok(previous) = cron.find_previous_occurrence(&now, true) else {
                    return false;
                };
                match last_start {
                    Some(last) => previous > last,
                    None => now - previous < chrono::Duration::seconds(60),
                }
            }
        }
    }

    /// The next time a run will be due after `last_start` (now for a job never run).
    pub fn next_due(
        &self,
        now: DateTime<Utc>,
        last_start: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match &self.cadence {
            Cadence::Every(every) => Some(match last_start {
                None => now,
                Some(last) => last + chrono::Duration::from_std(*every).ok()?,
            }),
            Cadence::Cron { cron, .. } => {
                let from = last_start.map_or(now, |last| last.max(now));
                cron.find_next_occurrence(&from, false).ok()
            }
        }
    }
}

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed,
    TimedOut,
    /// Not started: the previous run is still going (`without_overlapping`) or another server
    /// holds the lease (`on_one_server`).
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Skipped => "skipped",
        }
    }
}

/// A job's line in `schedule list`.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub name: &'static str,
    pub schedule: String,
    pub last_started_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub next_due_at: Option<DateTime<Utc>>,
}

struct Entry {
    job: Arc<dyn Job>,
    schedule: Schedule,
    running: Arc<AtomicBool>,
}

/// The list of scheduled jobs and the loop that runs them.
pub struct Kernel {
    pool: DbPool,
    owner: String,
    entries: Vec<Entry>,
    /// Last start per job in this process (seeded from the run records).
    last_start: Mutex<HashMap<&'static str, DateTime<Utc>>>,
    /// True once the kernel stops starting runs (see [`Kernel::stopping`]).
    stopping: tokio::sync::watch::Sender<bool>,
    /// Notified when a run ends (`work` starts an owed run at once).
    finished: Arc<tokio::sync::Notify>,
    /// How long an `on_one_server` lease lasts without renewal.
    lease_ttl: Duration,
}

impl Kernel {
    /// `owner` names this process in leases and run records (e.g. `host:pid`).
    pub fn new(pool: DbPool, owner: impl Into<String>) -> Self {
        Self {
            pool,
            owner: owner.into(),
            entries: Vec::new(),
            last_start: Mutex::new(HashMap::new()),
            stopping: tokio::sync::watch::channel(false).0,
            finished: Arc::new(tokio::sync::Notify::new()),
            lease_ttl: LEASE_TTL,
        }
    }

    /// `on_one_server` leases last `ttl` without renewal (default 60 s) and are renewed every
    /// sixth of it while the job runs: a crashed holder blocks the job for at most `ttl`.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(600));
        self
    }

    /// Turns true when the kernel stops (`work` got its shutdown) or runs once (`run_due`):
    /// a job that loops within its run (waiting for work) watches it and returns.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// A name for this process: `host:pid:place+random`, where `host` is the host name cut to
    /// 24 characters (for people), `place` 8 hex digits of a hash of the whole host name, the
    /// boot id and the pid namespace (for [`owner_is_gone`]), and `random` 8 hex digits. At
    /// most 24 + 1 + 10 + 1 + 16 = 52 characters (lease columns are VARCHAR(64)).
    pub fn process_owner() -> String {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!(
            "{}:{}:{}{}",
            host_name().chars().take(24).collect::<String>(),
            std::process::id(),
            place(),
            &suffix[..8]
        )
    }

    pub fn schedule(
        &mut self,
        job: Arc<dyn Job>,
        schedule: Schedule,
    ) -> Result<(), SchedulerError> {
        if self.entries.iter().any(|e| e.job.name() == job.name()) {
            return Err(SchedulerError::Duplicate(job.name().into()));
        }
        self.entries.push(Entry {
            job,
            schedule,
            running: Arc::new(AtomicBool::new(false)),
        });
        Ok(())
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Every job with its schedule, last run and next due time.
    pub async fn list(&self) -> Result<Vec<JobStatus>, SchedulerError> {
        let last = self.last_runs().await?;
        let now = Utc::now();
        Ok(self
            .entries
            .iter()
            .map(|e| {
                let run = last.get(e.job.name());
                let started = run.map(|r| r.0);
                JobStatus {
                    name: e.job.name(),
                    schedule: e.schedule.describe(),
                    last_started_at: started,
                    last_outcome: run.map(|r| r.1.clone()),
                    next_due_at: e.schedule.next_due(now, started),
                }
            })
            .collect())
    }

    /// Run what is due now, wait for it, and return each started or skipped job's outcome
    /// (`schedule run`, for an external cron).
    pub async fn run_due(&self) -> Result<Vec<(&'static str, Outcome)>, SchedulerError> {
        // One pass each: looping jobs return after their first pass.
        self.stopping.send_replace(true);
        self.seed_last_starts().await?;
        let mut runs = Vec::new();
        for (index, at) in self.due_now() {
            let name = self.entries[index].job.name();
            runs.push((name, self.spawn_run(index, at)));
        }
        let mut outcomes = Vec::new();
        for (name, run) in runs {
            outcomes.push((name, run.await.unwrap_or(Outcome::Failed)));
        }
        Ok(outcomes)
    }

    /// Run jobs as they come due until `shutdown` resolves; then start nothing new, let the
    /// running jobs finish (each within its timeout) and return (`schedule work`).
    pub async fn work(&self, shutdown: impl Future<Output = ()>) -> Result<(), SchedulerError> {
        self.seed_last_starts().await?;
        tracing::info!(jobs = self.entries.len(), owner = %self.owner, "scheduler started");
        let mut running = Vec::new();
        // Due while a run of the same `without_overlapping` job was in flight: start when it ends.
        let mut owed = vec![false; self.entries.len()];
        let mut ticks = tokio::time::interval(Duration::from_millis(250));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.finished.notified() => {
                    for (index, entry) in self.entries.iter().enumerate() {
                        if owed[index] && !entry.running.load(Ordering::Acquire) {
                            owed[index] = false;
                            let at = self.mark_started(index);
                            running.push(self.spawn_run(index, at));
                        }
                    }
                }
                _ = ticks.tick() => {
                    running.retain(|h: &tokio::task::JoinHandle<Outcome>| !h.is_finished());
                    for (index, at) in self.due_now() {
                        let entry = &self.entries[index];
                        if entry.schedule.without_overlapping && entry.running.load(Ordering::Acquire) {
                            owed[index] = true;
                            continue;
                        }
                        running.push(self.spawn_run(index, at));
                    }
                }
            }
        }
        // Looping jobs (see `stopping`) end their run after the pass in flight.
        self.stopping.send_replace(true);
        tracing::info!(
            running = running.len(),
            "scheduler stopping: finishing running jobs"
        );
        for handle in running {
            let _ = handle.await;
        }
        tracing::info!("scheduler stopped");
        Ok(())
    }

    /// The jobs due now, with the time they were found due (recorded as their start, so the
    /// next due time is computed from the same instant); marks them started in memory.
    fn due_now(&self) -> Vec<(usize, DateTime<Utc>)> {
        let now = Utc::now();
        let mut last = match self.last_start.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut due = Vec::new();
        for (index, entry) in self.entries.iter().enumerate() {
            let name = entry.job.name();
            if entry.schedule.is_due(now, last.get(name).copied()) {
                last.insert(name, now);
                due.push((index, now));
            }
        }
        due
    }

    /// Record entry `index` as started now (in memory); the start time.
    fn mark_started(&self, index: usize) -> DateTime<Utc> {
        let now = Utc::now();
        let mut last = match self.last_start.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        last.insert(self.entries[index].job.name(), now);
        now
    }

    async fn seed_last_starts(&self) -> Result<(), SchedulerError> {
        // Run records older than a week only fill the table: the latest per job is kept.
        self.pool
            .run(|conn| data::prune_runs(conn, chrono::Duration::days(7)))
            .await?;
        let runs = self.last_runs().await?;
        let mut last = match self.last_start.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for entry in &self.entries {
            if let Some((started, _)) = runs.get(entry.job.name()) {
                last.entry(entry.job.name()).or_insert(*started);
            }
        }
        Ok(())
    }

    async fn last_runs(&self) -> Result<HashMap<String, (DateTime<Utc>, String)>, SchedulerError> {
        let names: Vec<String> = self
            .entries
            .iter()
            .map(|e| e.job.name().to_string())
            .collect();
        self.pool
            .run(move |conn| data::last_runs(conn, &names).map_err(SchedulerError::from))
            .await
    }

    /// Start one run of entry `index` on its own task.
    fn spawn_run(&self, index: usize, due_at: DateTime<Utc>) -> tokio::task::JoinHandle<Outcome> {
        let entry = &self.entries[index];
        let run = Run {
            due_at,
            job: Arc::clone(&entry.job),
            schedule: entry.schedule.clone(),
            running: Arc::clone(&entry.running),
            pool: self.pool.clone(),
            owner: self.owner.clone(),
            finished: Arc::clone(&self.finished),
            lease_ttl: self.lease_ttl,
        };
        let span = tracing::info_span!("job", name = entry.job.name());
        tokio::spawn(run.execute().instrument(span))
    }
}

/// How long an `on_one_server` lease lasts without renewal by default (renewed every sixth of
/// it while the job runs): a crashed holder blocks the job for at most this long.
const LEASE_TTL: Duration = Duration::from_secs(60);

/// One run of one job, with everything it needs on its own task.
struct Run {
    due_at: DateTime<Utc>,
    job: Arc<dyn Job>,
    schedule: Schedule,
    running: Arc<AtomicBool>,
    pool: DbPool,
    owner: String,
    finished: Arc<tokio::sync::Notify>,
    lease_ttl: Duration,
}

impl Run {
    async fn execute(self) -> Outcome {
        let name = self.job.name();
        if self.schedule.without_overlapping && self.running.swap(true, Ordering::AcqRel) {
            tracing::debug!("skipped: the previous run has not finished");
            return Outcome::Skipped;
        }
        let outcome = self.leased().await;
        if self.schedule.without_overlapping {
            self.running.store(false, Ordering::Release);
        }
        self.finished.notify_one();
        match outcome {
            Outcome::Ok => tracing::debug!(job = name, "run finished"),
            Outcome::Skipped => {}
            other => tracing::warn!(job = name, outcome = other.as_str(), "run did not succeed"),
        }
        outcome
    }

    /// Take the lease if the job runs on one server, run, release.
    async fn leased(&self) -> Outcome {
        let name = self.job.name();
        let ttl = self.lease_ttl;
        if self.schedule.on_one_server {
            let (owner, ttl_c) = (self.owner.clone(), ttl);
            let taken = self
                .pool
                .run(move |conn| data::take_lease(conn, name, &owner, ttl_c))
                .await;
            match taken {
                Ok(true) => {
                    // Another server may have run this occurrence a moment ago (its ticks are
                    // offset from ours): the run records decide.
                    let names = vec![name.to_string()];
                    let last = self
                        .pool
                        .run(move |conn| data::last_runs(conn, &names).map_err(DbError::Query))
                        .await
                        .ok()
                        .and_then(|runs| runs.get(name).map(|(at, _)| *at));
                    if last.is_some_and(|at| !self.schedule.is_due(self.due_at, Some(at))) {
                        let owner = self.owner.clone();
                        let _ = self
                            .pool
                            .run(move |conn| data::release_lease(conn, name, &owner))
                            .await;
                        tracing::debug!("skipped: another server already ran this one");
                        return Outcome::Skipped;
                    }
                }
                Ok(false) => {
                    tracing::debug!("skipped: another server holds the lease");
                    return Outcome::Skipped;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "skipped: the lease could not be taken");
                    return Outcome::Skipped;
                }
            }
        }
        let outcome = self.recorded().await;
        if self.schedule.on_one_server {
            let owner = self.owner.clone();
            if let Err(e) = self
                .pool
                .run(move |conn| data::release_lease(conn, name, &owner))
                .await
            {
                tracing::warn!(error = %e, "the lease could not be released (it expires)");
            }
        }
        outcome
    }

    /// Record the start, run with the timeout (renewing the lease meanwhile), record the end.
    async fn recorded(&self) -> Outcome {
        let name = self.job.name();
        let owner = self.owner.clone();
        let run_id = self
            .pool
            .run({
                let started = self.due_at.naive_utc();
                move |conn| data::start_run(conn, name, &owner, started)
            })
            .await
            .map_err(|e: DbError| tracing::warn!(error = %e, "the run could not be recorded"))
            .ok();
        let job = Arc::clone(&self.job);
        let mut task = tokio::spawn(async move { job.handle().await.map_err(|e| e.to_string()) });
        let deadline = tokio::time::sleep(self.schedule.timeout);
        tokio::pin!(deadline);
        let mut renew = tokio::time::interval(self.lease_ttl / 6);
        renew.tick().await;
        let (outcome, error) = loop {
            tokio::select! {
                joined = &mut task => break match joined {
                    Ok(Ok(())) => (Outcome::Ok, None),
                    Ok(Err(e)) => (Outcome::Failed, Some(e)),
                    Err(e) => (Outcome::Failed, Some(format!("the job panicked: {e}"))),
                },
                _ = &mut deadline => {
                    task.abort();
                    break (Outcome::TimedOut, Some(format!("no result within {:?}", self.schedule.timeout)));
                }
                _ = renew.tick(), if self.schedule.on_one_server => {
                    let (owner, ttl) = (self.owner.clone(), self.lease_ttl);
                    let _ = self.pool.run(move |conn| data::renew_lease(conn, name, &owner, ttl)).await;
                }
            }
        };
        if let Some(e) = &error {
            tracing::warn!(error = %e, "job run failed");
        }
        if let Some(id) = run_id {
            let result = self
                .pool
                .run(move |conn| data::finish_run(conn, id, outcome.as_str(), error.as_deref()))
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "the run's end could not be recorded");
            }
        }
        outcome
    }
}

/// The scheduler's part of `GET /metrics` (`crate::contracts::MetricsSource`): per job, the
/// runs on record (a week, and each job's latest) by outcome, and the latest run's start,
/// duration and success — from the run records, so any process of the region reports them.
pub struct SchedulerMetrics {
    pool: DbPool,
}

impl SchedulerMetrics {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl crate::contracts::MetricsSource for SchedulerMetrics {
    fn collect(
        &self,
    ) -> crate::contracts::BoxFuture<'_, Result<Vec<crate::contracts::Gauge>, String>> {
        Box::pin(async move {
            self.pool
                .run(data::metrics)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_interval_is_due_when_it_has_passed_since_the_last_start() {
        let every = Schedule::every_seconds(30).unwrap();
        let now = at("2026-11-25T10:00:00Z");
        assert!(every.is_due(now, None), "never ran");
        assert!(!every.is_due(now, Some(at("2026-11-25T09:59:45Z"))));
        assert!(every.is_due(now, Some(at("2026-11-25T09:59:30Z"))));
        assert_eq!(
            every.next_due(now, Some(at("2026-11-25T09:59:45Z"))),
            Some(at("2026-11-25T10:00:15Z"))
        );
        assert!(Schedule::every_seconds(0).is_err());
    }

    #[test]
    fn a_cron_job_is_due_once_per_occurrence() {
        let five = Schedule::cron("*/5 * * * *").unwrap();
        let now = at("2026-11-25T10:05:20Z");
        assert!(
            five.is_due(now, None),
            "occurrence 10:05 is less than a minute old"
        );
        assert!(
            !five.is_due(at("2026-11-25T10:07:00Z"), None),
            "10:05 is two minutes old"
        );
        assert!(
            !five.is_due(now, Some(at("2026-11-25T10:05:01Z"))),
            "already ran for 10:05"
        );
        assert!(five.is_due(now, Some(at("2026-11-25T10:04:59Z"))));
        assert!(
            five.is_due(at("2026-11-25T10:31:00Z"), Some(at("2026-11-25T10:05:01Z"))),
            "missed occurrences run once when the scheduler comes back"
        );
        assert_eq!(
            five.next_due(now, Some(at("2026-11-25T10:05:01Z"))),
            Some(at("2026-11-25T10:10:00Z"))
        );
    }

    /// Regression: ticks later in an occurrence's second saw the occurrence (with the tick's
    /// sub-second part) as newer than the run just started: an every-5-s cron job ran ~4 times
    /// per occurrence.
    #[test]
    fn a_cron_job_runs_once_per_occurrence_whatever_the_tick() {
        let every_five = Schedule::cron("*/5 * * * * *").unwrap();
        let started = at("2026-11-25T10:05:00.300Z");
        assert!(every_five.is_due(started, Some(at("2026-11-25T10:04:55.250Z"))));
        for later in [
            "2026-11-25T10:05:00.550Z",
            "2026-11-25T10:05:00.800Z",
            "2026-11-25T10:05:04.999Z",
        ] {
            assert!(!every_five.is_due(at(later), Some(started)), "{later}");
        }
        assert!(every_five.is_due(at("2026-11-25T10:05:05.050Z"), Some(started)));
    }

    #[test]
    fn builders_and_descriptions() {
        let daily = Schedule::daily_at("03:30").unwrap();
        assert_eq!(daily.describe(), "cron 30 3 * * *");
        assert!(daily.is_due(at("2026-11-25T03:30:10Z"), None));
        assert!(!daily.is_due(at("2026-11-25T03:31:10Z"), None));
        assert_eq!(Schedule::hourly().unwrap().describe(), "cron 0 * * * *");
        assert_eq!(
            Schedule::every_minute()
                .without_overlapping()
                .on_one_server()
                .describe(),
            "every 60s, without overlapping, on one server"
        );
        assert!(Schedule::daily_at("25:00").is_err());
        assert!(matches!(
            Schedule::cron("61 * * * *"),
            Err(SchedulerError::Cron { .. })
        ));
        assert!(
            Schedule::cron("*/10 * * * * *").is_ok(),
            "six fields: seconds"
        );
    }
}

/// This machine's name: `HOSTNAME`, else the kernel's host name, else `host`.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// Where this process's pids mean something: 8 hex digits of a hash of the whole host name,
/// the kernel's boot id and this process's pid namespace. Two processes with the same place
/// see the same pids; `00000000` when any of it is unknown (then nothing is judged).
fn place() -> String {
    use sha2::Digest;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok();
    let pid_ns = std::fs::read_link("/proc/self/ns/pid").ok();
    match (boot, pid_ns) {
        (Some(boot), Some(ns)) => {
            let digest = sha2::Sha256::digest(format!(
                "{}\n{}\n{}",
                host_name(),
                boot.trim(),
                ns.display()
            ));
            digest[..4].iter().map(|b| format!("{b:02x}")).collect()
        }
        _ => UNKNOWN_PLACE.into(),
    }
}

const UNKNOWN_PLACE: &str = "00000000";

/// `host:pid:place+random` (what `Kernel::process_owner` makes) → (pid, place).
fn parse_owner(owner: &str) -> Option<(u32, &str)> {
    let mut parts = owner.rsplitn(3, ':');
    let suffix = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?;
    (suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (pid, &suffix[..8]))
}

/// Whether `holder`, a lease owner that is not `me`, is a process that is gone: a scheduler
/// killed without releasing its leases (SIGKILL, OOM, power) would otherwise keep its
/// restarted successor off the on-one-server jobs until the leases expire. Judged only when
/// both names come from `Kernel::process_owner` in the same place (same host name, boot and
/// pid namespace: the pids mean the same thing) and `/proc` shows every process (pid 1 is
/// visible, so no `hidepid`): then the holder is gone when its pid has no `/proc` entry. Any
/// other lease is never judged (it may be alive); it expires as before.
pub(crate) fn owner_is_gone(holder: &str, me: &str) -> bool {
    let (Some((holder_pid, holder_place)), Some((my_pid, my_place))) =
        (parse_owner(holder), parse_owner(me))
    else {
        return false;
    };
    holder != me
        && holder_place == my_place
        && my_place != UNKNOWN_PLACE
        && holder_pid != my_pid
        && pid_is_gone(holder_pid)
}

#[cfg(target_os = "linux")]
fn pid_is_gone(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    proc.join("self").exists() && proc.join("1").exists() && !proc.join(pid.to_string()).exists()
}

#[cfg(not(target_os = "linux"))]
fn pid_is_gone(_: u32) -> bool {
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod owner_tests {
    use super::*;

    #[test]
    fn only_a_gone_pid_of_the_same_place_is_gone() {
        let me = Kernel::process_owner();
        let (_, here) = parse_owner(&me).unwrap();
        assert_ne!(here, UNKNOWN_PLACE, "this test runs on Linux: {me}");
        // A pid nobody has (above the kernel's pid_max), same place: gone.
        assert!(owner_is_gone(&format!("box:99999999:{here}ffffffff"), &me));
        // A live process of the same place (pid 1 always exists).
        assert!(!owner_is_gone(&format!("box:1:{here}ffffffff"), &me));
        // Our own pid under another suffix: not judged (a container restarted in place waits
        // for the lease to expire; pid 1 of every pod is not proof of anything).
        let mine = std::process::id();
        assert!(!owner_is_gone(&format!("box:{mine}:{here}ffffffff"), &me));
        // Another place (another machine, boot or pid namespace), or an unknown one.
        assert!(!owner_is_gone("box:99999999:12345678ffffffff", &me));
        assert!(!owner_is_gone(
            "box:99999999:00000000ffffffff",
            "box:1:00000000aaaaaaaa"
        ));
        // Myself, and names not made by process_owner.
        assert!(!owner_is_gone(&me, &me));
        assert!(!owner_is_gone("w", &me));
        assert!(!owner_is_gone("box:99999999:ffffffff", &me));
        assert!(!owner_is_gone(
            &format!("box:99999999:{here}ffffffff"),
            "same-process"
        ));
    }

    #[test]
    fn process_owners_parse_and_fit_their_column() {
        let owner = Kernel::process_owner();
        let (pid, place) = parse_owner(&owner).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(place.len(), 8);
        assert_eq!(place, self::place());
        assert!(owner.len() <= 64, "{owner}");
        // A long host name is cut for display, never for the place.
        assert_ne!(Kernel::process_owner(), owner, "a random part per process");
    }
}
