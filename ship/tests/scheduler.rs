//! The scheduler against a real database on each backend: runs are recorded, failures and
//! panics stay in their run, timeouts end a run, `on_one_server` lets one of two schedulers on
//! one database run a job, `without_overlapping` never runs a job twice at once, and a stopping
//! scheduler lets the running job finish.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ship::parents::{Job, JobFuture};
use ship::scheduler::{Kernel, Outcome, Schedule};
use ship::testing::TestDb;

/// A job that counts its starts and ends, tracks its peak concurrency, sleeps, then does
/// `then`.
struct Probe {
    name: &'static str,
    sleep: Duration,
    then: fn() -> Result<(), ship::parents::JobError>,
    starts: AtomicUsize,
    ends: AtomicUsize,
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Probe {
    fn new(
        name: &'static str,
        sleep_ms: u64,
        then: fn() -> Result<(), ship::parents::JobError>,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            sleep: Duration::from_millis(sleep_ms),
            then,
            starts: AtomicUsize::new(0),
            ends: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }
}

impl Job for Probe {
    fn name(&self) -> &'static str {
        self.name
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(async move {
            self.starts.fetch_add(1, Ordering::SeqCst);
            let live = self.live.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(live, Ordering::SeqCst);
            tokio::time::sleep(self.sleep).await;
            self.live.fetch_sub(1, Ordering::SeqCst);
            self.ends.fetch_add(1, Ordering::SeqCst);
            (self.then)()
        })
    }
}

fn ok() -> Result<(), ship::parents::JobError> {
    Ok(())
}

fn fail() -> Result<(), ship::parents::JobError> {
    Err("the peer said no".into())
}

fn boom() -> Result<(), ship::parents::JobError> {
    panic!("a bug in the job")
}

fn runs(db: &TestDb, job: &str) -> Vec<(String, Option<String>)> {
    use diesel::prelude::*;
    use diesel::sql_types::{Nullable, Text};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        outcome: String,
        #[diesel(sql_type = Nullable<Text>)]
        error: Option<String>,
    }
    diesel::sql_query(format!(
        "SELECT outcome, error FROM ship_scheduler_runs WHERE job = '{job}' ORDER BY id"
    ))
    .load::<Row>(&mut db.pool.get().unwrap())
    .unwrap()
    .into_iter()
    .map(|r| (r.outcome, r.error))
    .collect()
}

ship::backend_tests! {
    async fn runs_are_isolated_recorded_and_timed_out(db: TestDb) {
        let (good, bad, panics, slow) = (
            Probe::new("good", 0, ok),
            Probe::new("bad", 0, fail),
            Probe::new("panics", 0, boom),
            Probe::new("slow", 5_000, ok),
        );
        let mut kernel = Kernel::new(db.pool.clone(), "test-owner");
        kernel.schedule(good.clone(), Schedule::every_minute()).unwrap();
        kernel.schedule(bad.clone(), Schedule::every_minute()).unwrap();
        kernel.schedule(panics.clone(), Schedule::every_minute()).unwrap();
        kernel
            .schedule(slow.clone(), Schedule::every_minute().timeout(Duration::from_millis(200)))
            .unwrap();
        assert!(kernel.schedule(good.clone(), Schedule::every_minute()).is_err(), "one name, one entry");

        let mut outcomes = kernel.run_due().await.unwrap();
        outcomes.sort();
        assert_eq!(
            outcomes,
            vec![("bad", Outcome::Failed), ("good", Outcome::Ok), ("panics", Outcome::Failed), ("slow", Outcome::TimedOut)]
        );
        assert_eq!(runs(&db, "good"), vec![("ok".into(), None)]);
        assert_eq!(runs(&db, "bad"), vec![("failed".into(), Some("the peer said no".into()))]);
        assert!(runs(&db, "panics")[0].1.as_deref().unwrap().contains("panicked"));
        assert_eq!(runs(&db, "slow")[0].0, "timed_out");
        assert_eq!(slow.ends.load(Ordering::SeqCst), 0, "a timed-out run is stopped");

        // Nothing is due a moment later, also for a new scheduler process (the records say
        // when each job last started).
        assert!(kernel.run_due().await.unwrap().is_empty());
        let mut again = Kernel::new(db.pool.clone(), "another-process");
        again.schedule(good.clone(), Schedule::every_minute()).unwrap();
        assert!(again.run_due().await.unwrap().is_empty());
        let listed = again.list().await.unwrap();
        assert_eq!(listed[0].last_outcome.as_deref(), Some("ok"));
        assert!(listed[0].next_due_at > listed[0].last_started_at);
        assert_eq!(good.starts.load(Ordering::SeqCst), 1);
    }

    async fn on_one_server_runs_a_job_on_one_of_two_schedulers(db: TestDb) {
        let job = Probe::new("pull", 400, ok);
        let kernel = |owner: &str| {
            let mut k = Kernel::new(db.pool.clone(), owner);
            k.schedule(job.clone(), Schedule::every_minute().on_one_server()).unwrap();
            k
        };
        let (a, b) = (kernel("a"), kernel("b"));
        let (ra, rb) = tokio::join!(a.run_due(), b.run_due());
        // The second scheduler either finds the lease taken (skipped) or, when it reads the run
        // records after the first run has started, finds the job not due at all (regression:
        // this test once indexed an empty list).
        let mut outcomes: Vec<&str> = [ra.unwrap(), rb.unwrap()]
            .iter()
            .map(|o| o.first().map_or("not due", |(_, outcome)| outcome.as_str()))
            .collect();
        outcomes.sort();
        assert!(
            outcomes == ["ok", "skipped"] || outcomes == ["not due", "ok"],
            "{outcomes:?}"
        );
        assert_eq!(job.starts.load(Ordering::SeqCst), 1, "one run between the two");
        assert_eq!(job.peak.load(Ordering::SeqCst), 1);
        // The lease is released at the end: the next due run may go to either.
        let leases = diesel::RunQueryDsl::execute(
            diesel::sql_query("DELETE FROM ship_scheduler_leases"),
            &mut db.pool.get().unwrap(),
        )
        .unwrap();
        assert_eq!(leases, 0, "no lease left behind");
    }

    async fn a_dead_owners_lease_expires(db: TestDb) {
        diesel::RunQueryDsl::execute(
            diesel::sql_query(
                "INSERT INTO ship_scheduler_leases (job, owner, expires_at) VALUES ('pull', 'crashed', '2020-01-01 00:00:00')",
            ),
            &mut db.pool.get().unwrap(),
        )
        .unwrap();
        let job = Probe::new("pull", 0, ok);
        let mut kernel = Kernel::new(db.pool.clone(), "alive");
        kernel.schedule(job.clone(), Schedule::every_minute().on_one_server()).unwrap();
        assert_eq!(kernel.run_due().await.unwrap(), vec![("pull", Outcome::Ok)]);
        // A live lease of another owner is respected.
        diesel::RunQueryDsl::execute(
            diesel::sql_query(
                "INSERT INTO ship_scheduler_leases (job, owner, expires_at) VALUES ('pull', 'busy', '2999-01-01 00:00:00')",
            ),
            &mut db.pool.get().unwrap(),
        )
        .unwrap();
        let mut other = Kernel::new(db.pool.clone(), "alive-2");
        other.schedule(job.clone(), Schedule::every_seconds(1).unwrap().on_one_server()).unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(other.run_due().await.unwrap(), vec![("pull", Outcome::Skipped)]);
    }

    async fn work_never_overlaps_a_job_and_lets_the_running_one_finish(db: TestDb) {
        let job = Probe::new("dispatch", 1_300, ok);
        let mut kernel = Kernel::new(db.pool.clone(), "worker");
        kernel.schedule(job.clone(), Schedule::every_seconds(1).unwrap().without_overlapping()).unwrap();
        let started = job.clone();
        let stop = async move {
            // Stop while the second run is in flight.
            while started.starts.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), kernel.work(stop)).await.unwrap().unwrap();
        assert_eq!(job.peak.load(Ordering::SeqCst), 1, "never two runs at once");
        assert_eq!(job.ends.load(Ordering::SeqCst), job.starts.load(Ordering::SeqCst), "the running job finished");
        let recorded = runs(&db, "dispatch");
        assert!(recorded.iter().all(|(outcome, _)| outcome == "ok"), "{recorded:?}");
    }
}

/// A job that loops within its run until the kernel stops.
struct Looper {
    stopping: tokio::sync::watch::Receiver<bool>,
    passes: AtomicUsize,
}

impl Job for Looper {
    fn name(&self) -> &'static str {
        "looper"
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(async move {
            let mut stopping = self.stopping.clone();
            while !*stopping.borrow() {
                self.passes.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                    _ = stopping.changed() => {}
                }
            }
            Ok(())
        })
    }
}

/// Regression: `work` once told looping jobs nothing when it stopped, so SIGTERM waited for
/// the dispatcher's whole run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_kernel_ends_looping_runs() {
    let db = TestDb::sqlite();
    let mut kernel = Kernel::new(db.pool.clone(), "w");
    let looper = Arc::new(Looper {
        stopping: kernel.stopping(),
        passes: AtomicUsize::new(0),
    });
    kernel
        .schedule(looper.clone(), Schedule::every_minute())
        .unwrap();
    let started = looper.clone();
    let stop = async move {
        while started.passes.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), kernel.work(stop))
        .await
        .expect("work returns once the looping run ends")
        .unwrap();
    assert_eq!(runs(&db, "looper"), vec![("ok".into(), None)]);
}

/// Regression: a running on-one-server job's own process took its lease again (the holder was
/// itself), so overlapping runs of one process were not kept apart by the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_lease_is_never_taken_twice_even_by_its_holder() {
    let db = TestDb::sqlite();
    let job = Probe::new("pull", 600, ok);
    let mut kernel = Kernel::new(db.pool.clone(), "same-process");
    kernel
        .schedule(job.clone(), Schedule::every_minute().on_one_server())
        .unwrap();
    let mut twin = Kernel::new(db.pool.clone(), "same-process");
    twin.schedule(job.clone(), Schedule::every_minute().on_one_server())
        .unwrap();
    let (a, b) = tokio::join!(kernel.run_due(), twin.run_due());
    // The twin either finds the lease held (Skipped) or, when it reads the run records after
    // the first run started, finds the job not due at all (no outcome): never a second run.
    let outcomes: Vec<Outcome> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(|(_, outcome)| outcome)
        .collect();
    let ran = outcomes.iter().filter(|o| **o == Outcome::Ok).count();
    assert_eq!(ran, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Ok | Outcome::Skipped)),
        "{outcomes:?}"
    );
    assert_eq!(job.peak.load(Ordering::SeqCst), 1);
    assert_eq!(job.starts.load(Ordering::SeqCst), 1);
}

/// Regression: two schedulers whose ticks were offset both ran an on-one-server job in the
/// same period (each after the other released the lease). Now the run records decide once the
/// lease is held: a run another server started since is not repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_another_server_just_made_is_not_repeated() {
    let db = TestDb::sqlite();
    let job = Probe::new("pull", 0, ok);
    let mut kernel = Kernel::new(db.pool.clone(), "b");
    kernel
        .schedule(
            job.clone(),
            Schedule::every_seconds(1).unwrap().on_one_server(),
        )
        .unwrap();
    assert_eq!(kernel.run_due().await.unwrap(), vec![("pull", Outcome::Ok)]);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Server "a" ran it a moment ago (this kernel's memory does not know).
    let now = chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.6f");
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO ship_scheduler_runs (job, owner, started_at, finished_at, outcome) VALUES ('pull', 'a', '{now}', '{now}', 'ok')"
        )),
        &mut db.pool.get().unwrap(),
    )
    .unwrap();
    assert_eq!(
        kernel.run_due().await.unwrap(),
        vec![("pull", Outcome::Skipped)]
    );
    assert_eq!(job.starts.load(Ordering::SeqCst), 1);
}

/// A job that records when each of its runs started and ended.
struct Timed {
    sleep: Duration,
    spans: std::sync::Mutex<Vec<(std::time::Instant, Option<std::time::Instant>)>>,
}

impl Job for Timed {
    fn name(&self) -> &'static str {
        "timed"
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(async move {
            let index = {
                let mut spans = self.spans.lock().unwrap();
                spans.push((std::time::Instant::now(), None));
                spans.len() - 1
            };
            tokio::time::sleep(self.sleep).await;
            self.spans.lock().unwrap()[index].1 = Some(std::time::Instant::now());
            Ok(())
        })
    }
}

/// Regression (B6's ~1.2 s stalls): the dispatcher's run ends after its 60 s stay, and the
/// due time that fell inside it was dropped as "skipped", so the next run waited for the next
/// interval while writes queued up. A due time inside a `without_overlapping` run is now owed
/// and the next run starts as soon as the running one ends. Here the interval is 3 s and a run
/// lasts 3.4 s: the dropped due time made a gap of at least 2.3 s; the owed one, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_time_inside_a_run_starts_the_next_run_when_it_ends() {
    let db = TestDb::sqlite();
    let mut kernel = Kernel::new(db.pool.clone(), "w");
    let job = Arc::new(Timed {
        sleep: Duration::from_millis(3_400),
        spans: std::sync::Mutex::new(Vec::new()),
    });
    kernel
        .schedule(
            job.clone(),
            Schedule::every_seconds(3).unwrap().without_overlapping(),
        )
        .unwrap();
    let watched = job.clone();
    let stop = async move {
        while watched.spans.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), kernel.work(stop))
        .await
        .expect("the second run starts")
        .unwrap();
    let spans = job.spans.lock().unwrap().clone();
    let first_end = spans[0]
        .1
        .expect("the first run ended before the second began");
    let gap = spans[1].0.saturating_duration_since(first_end);
    assert!(
        gap < Duration::from_millis(1_500),
        "the owed run started {gap:?} after the first ended"
    );
    assert_eq!(
        runs(&db, "timed").len(),
        2,
        "both runs ran and were recorded"
    );
}

ship::backend_tests! {
    /// Issue 5: the `on_one_server` lease is "renewed while running". With a 0.9 s lease and
    /// a 2.5 s run, a second scheduler asking 1.5 s in finds the lease still held (renewed
    /// every 150 ms) and skips; without the renewal it would take the expired lease and run
    /// the job a second time at once.
    async fn a_long_run_keeps_its_lease_by_renewing_it(db: TestDb) {
        let job = Probe::new("long", 2_500, ok);
        let kernel = |owner: &str| {
            let mut k = Kernel::new(db.pool.clone(), owner).with_lease_ttl(Duration::from_millis(900));
            k.schedule(job.clone(), Schedule::every_seconds(1).unwrap().on_one_server()).unwrap();
            k
        };
        let (a, b) = (kernel("a"), kernel("b"));
        let first = tokio::spawn(async move { a.run_due().await.unwrap() });
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(job.starts.load(Ordering::SeqCst), 1);
        assert_eq!(b.run_due().await.unwrap(), vec![("long", Outcome::Skipped)], "the lease was renewed");
        assert_eq!(first.await.unwrap(), vec![("long", Outcome::Ok)]);
        assert_eq!((job.starts.load(Ordering::SeqCst), job.peak.load(Ordering::SeqCst)), (1, 1));
    }
}

ship::backend_tests! {
    /// `GET /metrics` for the scheduler: the runs on record by outcome, and each job's latest
    /// run — when it started, how long it took, whether it succeeded.
    async fn the_run_records_are_metrics(db: TestDb) {
        use ship::contracts::MetricsSource;
        let (good, bad) = (Probe::new("good", 20, ok), Probe::new("bad", 0, fail));
        let mut kernel = Kernel::new(db.pool.clone(), "test-owner");
        kernel.schedule(good.clone(), Schedule::every_minute()).unwrap();
        kernel.schedule(bad.clone(), Schedule::every_minute()).unwrap();
        kernel.run_due().await.unwrap();
        let gauges = ship::scheduler::SchedulerMetrics::new(db.pool.clone()).collect().await.unwrap();
        let value = |name: &str, labels: &[(&str, &str)]| {
            gauges
                .iter()
                .find(|g| g.name == name && g.labels.iter().map(|(k, v)| (*k, v.as_str())).eq(labels.iter().copied()))
                .map(|g| g.value)
        };
        assert_eq!(value("regionsync_scheduler_runs", &[("job", "good"), ("outcome", "ok")]), Some(1.0));
        assert_eq!(value("regionsync_scheduler_runs", &[("job", "bad"), ("outcome", "failed")]), Some(1.0));
        assert_eq!(value("regionsync_scheduler_last_run_ok", &[("job", "good")]), Some(1.0));
        assert_eq!(value("regionsync_scheduler_last_run_ok", &[("job", "bad")]), Some(0.0));
        let took = value("regionsync_scheduler_last_run_duration_seconds", &[("job", "good")]).unwrap();
        assert!((0.015..30.0).contains(&took), "the good job sleeps 20 ms: {took}");
        let started = value("regionsync_scheduler_last_run_started_seconds", &[("job", "good")]).unwrap();
        assert!((chrono::Utc::now().timestamp() as f64 - started).abs() < 60.0, "{started}");
        let text = ship::http::metrics::render(&gauges).unwrap();
        assert!(text.contains("regionsync_scheduler_runs{job=\"bad\",outcome=\"failed\"} 1.0"), "{text}");
    }
}
