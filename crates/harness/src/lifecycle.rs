//! R10: a region's life after its first start, with real processes. A third region joins a
//! running pair late — after rows older than the sync columns were found in one of them and
//! their changelogs were pruned — and a region comes back from an older copy of its database,
//! or from an empty one, under the same region id. Writes go on at every region all along;
//! after quiescence every region must hold the same rows with every acknowledged write (that
//! could survive) at its final value.
//!
//! What makes them pass: a region with no cursor for a peer, or one answered `410`, loads the
//! peer's snapshot by itself (ADR 0011); a database found to be new or an older copy gets a new
//! incarnation, its peers' cursors into its feed answer `409 cursor_diverged` and they load its
//! snapshot again, and it loads theirs, its own writes included (ADR 0012). Without the latter
//! the restored region never got its own writes back, deleted rows were live again there, and
//! its peers' cursors answered `400 invalid_cursor`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::chaos::{check, settle_and_pull, write, Kind, Write};
use crate::cluster::{Cluster, RegionSpec, Store, Tuning};
use crate::state::{Backend, RegionState, Row};
use crate::surgery::{
    copy_database, insert_legacy_rows, prune_changelog, random_uuid, replace_database, LegacyRow,
};

/// How long the regions may take to converge once the writes stop.
const SETTLE: Duration = Duration::from_secs(45);

/// Where the writer sends a region's writes.
#[derive(Debug, Clone)]
pub struct Target {
    pub region: String,
    pub base: String,
}

impl Target {
    pub fn of(cluster: &Cluster, i: usize) -> Target {
        Target {
            region: cluster.regions[i].spec.id.clone(),
            base: cluster.regions[i].base_url(),
        }
    }
}

/// Clients writing through the public API: creates, updates and deletes of random customers
/// at random regions (no faults), every attempt recorded with when it was sent.
pub struct Writer {
    rng: fastrand::Rng,
    client: reqwest::Client,
    prefix: String,
    counter: usize,
    /// Ids the workload updates and deletes.
    known: Vec<String>,
    pub writes: Vec<Write>,
    /// When each of `writes` was sent.
    pub sent_at: Vec<Instant>,
}

impl Writer {
    pub fn new(seed: u64, prefix: &str) -> Result<Writer> {
        Ok(Writer {
            rng: fastrand::Rng::with_seed(seed ^ 0x7772),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()?,
            prefix: prefix.to_string(),
            counter: 0,
            known: Vec::new(),
            writes: Vec::new(),
            sent_at: Vec::new(),
        })
    }

    /// Record a write made some other way (rows put into a database directly); `target`: the
    /// workload updates and deletes it from now on.
    pub fn adopt(&mut self, write: Write, target: bool) {
        if let (true, Some(id)) = (target, &write.entity) {
            self.known.push(id.clone());
        }
        self.writes.push(write);
        self.sent_at.push(Instant::now());
    }

    /// One random write at one of `targets`.
    pub async fn step(&mut self, targets: &[Target]) {
        let Some(target) = targets.get(self.rng.usize(..targets.len().max(1))) else {
            return;
        };
        let kind = if self.known.len() < 4 {
            Kind::Create
        } else {
            match self.rng.usize(0..20) {
                0..=2 => Kind::Delete,
                3..=6 => Kind::Create,
                _ => Kind::Update,
            }
        };
        let entity = match kind {
            Kind::Create => None,
            _ => Some(self.known[self.rng.usize(..self.known.len())].clone()),
        };
        self.counter += 1;
        let name = format!("{}-w{}", self.prefix, self.counter);
        let sent = Instant::now();
        // A 404 (the customer is not, or no longer, there) changed nothing: not recorded.
        if let Ok((id, version)) =
            write(&self.client, &target.base, &kind, entity.as_deref(), &name).await
        {
            if let (Kind::Create, Some(id)) = (&kind, &id) {
                self.known.push(id.clone());
            }
            self.writes.push(Write {
                entity: id,
                region: target.region.clone(),
                kind: kind.clone(),
                name: (kind != Kind::Delete).then_some(name),
                version,
            });
            self.sent_at.push(sent);
        }
    }

    /// Write at `targets` until `stop` is set (a region that is down answers nothing: its
    /// writes are recorded unacknowledged).
    pub async fn run(&mut self, targets: &[Target], stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            self.step(targets).await;
            tokio::time::sleep(Duration::from_millis(self.rng.u64(5..40))).await;
        }
    }

    /// Write at `targets` for `duration`.
    pub async fn run_for(&mut self, targets: &[Target], duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.step(targets).await;
            tokio::time::sleep(Duration::from_millis(self.rng.u64(5..40))).await;
        }
    }

    pub fn acked(&self) -> usize {
        self.writes.iter().filter(|w| w.version.is_some()).count()
    }
}

#[derive(Debug, Clone, Default)]
pub struct LifecycleReport {
    pub scenario: String,
    pub seed: u64,
    pub acked: usize,
    pub unacked: usize,
    /// Rows (live and deleted) and live rows at the end, at every region.
    pub rows: usize,
    pub live: usize,
    /// From the last write to quiescence.
    pub settle: Duration,
    /// What happened on the way (prunes, copies, which writes were lost with a database, what
    /// the regions logged about cursors and bootstraps).
    pub notes: Vec<String>,
}

fn describe(row: Option<&Row>) -> String {
    match row {
        None => "missing".into(),
        Some(r) => format!(
            "({}, {}) {} {:?}",
            r.sync_version,
            r.sync_origin,
            if r.deleted() { "deleted" } else { "live" },
            r.name
        ),
    }
}

/// Every check of the end state, each failure saying what differs where: the regions hold
/// identical rows (else each differing id with its version at every region); at every region,
/// every acknowledged write in `writes` is there or superseded and no row is a phantom
/// (`chaos::check`); and no entity whose last acknowledged write is a delete is live anywhere.
/// Writes that may be lost are passed with `version: None` (they still name what a row may
/// hold).
pub fn verdict(states: &[RegionState], writes: &[Write]) -> Result<()> {
    let mut problems = Vec::new();
    let ids: BTreeSet<&String> = states.iter().flat_map(|s| s.rows.keys()).collect();
    let differing: Vec<&String> = ids
        .into_iter()
        .filter(|id| {
            states
                .iter()
                .any(|s| s.rows.get(*id) != states[0].rows.get(*id))
        })
        .collect();
    if !differing.is_empty() {
        let digests: Vec<String> = states
            .iter()
            .map(|s| {
                format!(
                    "{} {} ({} rows, {} live)",
                    s.region,
                    s.digest(),
                    s.rows.len(),
                    s.live()
                )
            })
            .collect();
        problems.push(format!(
            "{} row(s) differ between the regions [{}]; first ones (version, origin, state, name per region):",
            differing.len(),
            digests.join("; ")
        ));
        for id in differing.iter().take(20) {
            let at: Vec<String> = states
                .iter()
                .map(|s| format!("{}={}", s.region, describe(s.rows.get(*id))))
                .collect();
            problems.push(format!("  {id}: {}", at.join(", ")));
        }
    }
    for s in states {
        if let Err(e) = check(std::slice::from_ref(s), writes) {
            let text = format!("{e:#}");
            let lines: Vec<&str> = text.lines().collect();
            problems.push(format!("at {}: {}", s.region, lines[0]));
            for line in lines.iter().skip(1).take(12) {
                problems.push(format!("  {line}"));
            }
            if lines.len() > 13 {
                problems.push(format!("  … {} more", lines.len() - 13));
            }
        }
    }
    // The last acknowledged write of each entity (by version: what last-writer-wins keeps).
    let mut last: BTreeMap<&str, &Write> = BTreeMap::new();
    for w in writes {
        let (Some(entity), Some(version)) = (&w.entity, &w.version) else {
            continue;
        };
        let later = last
            .get(entity.as_str())
            .is_none_or(|prev| prev.version.as_ref().is_some_and(|v| v < version));
        if later {
            last.insert(entity, w);
        }
    }
    let mut resurrected = Vec::new();
    for (entity, w) in &last {
        if w.kind != Kind::Delete {
            continue;
        }
        for s in states {
            if let Some(row) = s.rows.get(*entity) {
                // Live at a version at or below the delete's: the delete is undone there (a
                // live row above it is a later write that was never acknowledged).
                if !row.deleted() && w.version.as_ref().is_some_and(|v| row.version() <= *v) {
                    resurrected.push(format!(
                        "  {entity} at {}: {} although its last acknowledged write is the delete {:?} at {}",
                        s.region,
                        describe(Some(row)),
                        w.version,
                        w.region
                    ));
                }
            }
        }
    }
    if !resurrected.is_empty() {
        problems.push(format!("{} deleted row(s) live again:", resurrected.len()));
        problems.extend(resurrected.into_iter().take(20));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

/// What each region logged about cursors and bootstraps (informative: which path a region
/// took, and how a failure looks).
fn log_notes(cluster: &Cluster) -> Vec<String> {
    cluster
        .regions
        .iter()
        .map(|r| {
            let counts: Vec<String> = [
                "invalid_cursor",
                "cursor_expired",
                "cursor_diverged",
                "incarnation",
                "bootstrap",
            ]
            .iter()
            .map(|needle| format!("{needle} {}", r.log_count(needle)))
            .collect();
            format!("{} log lines: {}", r.spec.id, counts.join(", "))
        })
        .collect()
}

/// Wait for quiescence and judge the end state; on a timeout the verdict on the states as they
/// are says what differs.
async fn finish(cluster: &Cluster, writes: &[Write], report: &mut LifecycleReport) -> Result<()> {
    cluster.log_event("writes stopped: waiting for quiescence");
    let stopped = Instant::now();
    let settled = settle_and_pull(cluster, SETTLE).await;
    report.settle = stopped.elapsed();
    report.notes.extend(log_notes(cluster));
    report.acked = writes.iter().filter(|w| w.version.is_some()).count();
    report.unacked = writes.len() - report.acked;
    let states = match settled {
        Ok(states) => states,
        Err(e) => {
            let states = cluster.states()?;
            let why = verdict(&states, writes)
                .err()
                .map_or_else(String::new, |v| format!("{v:#}"));
            bail!("{e:#}\n{why}");
        }
    };
    verdict(&states, writes)?;
    report.rows = states[0].rows.len();
    report.live = states[0].live();
    Ok(())
}

/// The end of a run: on failure the error carries the notes and the regions' logs; the
/// cluster is shut down either way.
async fn conclude(
    cluster: Cluster,
    report: LifecycleReport,
    result: Result<()>,
) -> Result<LifecycleReport> {
    let result = result.map_err(|e| {
        e.context(format!(
            "R10 {} seed {} failed (replay: CHAOS_SEED={}); notes:\n{}\nregion logs:\n{}",
            report.scenario,
            report.seed,
            report.seed,
            report.notes.join("\n"),
            cluster.logs(20)
        ))
    });
    // The run's own failure first: a failed shutdown must not hide it.
    let stopped = cluster.shutdown().await;
    result?;
    stopped?;
    Ok(report)
}

fn store(mysql: &Option<String>, on_mysql: bool) -> Store {
    match mysql {
        Some(server) if on_mysql => Store::on_server(server),
        _ => Store::Sqlite,
    }
}

fn spec(id: &str, store: Store) -> RegionSpec {
    RegionSpec {
        id: id.into(),
        store,
        skew_ms: 0,
        push: true,
    }
}

/// How the late region gets the data that exists at its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// By itself (`sync.bootstrap = "auto"`, the default): no operator command.
    Auto,
    /// The operator runs `regionsync sync bootstrap --peer P` at it for each peer
    /// (`sync.bootstrap = "manual"` everywhere, so the command is what does it).
    Cli,
}

#[derive(Debug, Clone)]
pub struct LateJoin {
    pub seed: u64,
    /// The database server (no database; `mysql://…` or `postgres://…`) for `eu-west` (with
    /// the legacy rows) and `ap-south` (the late region); SQLite everywhere when `None`.
    pub mysql: Option<String>,
    /// Prune `eu-west`'s and `us-east`'s changelogs before `ap-south` joins.
    pub prune: bool,
    pub join: Join,
    /// Customers put into `eu-west` as rows older than the sync columns.
    pub legacy_rows: usize,
}

impl LateJoin {
    pub fn new(seed: u64) -> LateJoin {
        LateJoin {
            seed,
            mysql: None,
            prune: true,
            join: Join::Auto,
            legacy_rows: 12,
        }
    }
}

/// A third region joins late. `eu-west` and `us-east` push to and pull from each other while
/// clients write at both; rows older than the sync columns are put into `eu-west` (no
/// changelog entry) and both changelogs are pruned (`plan.prune`); then `ap-south` is added —
/// registered at the broker, listed as a peer in the others' configurations (they are
/// restarted with it, as an operator does) — and starts on an empty database while clients
/// go on writing, at all three once it is up. After quiescence all three hold the same rows
/// and every acknowledged write, the legacy rows included.
pub async fn late_join(plan: &LateJoin) -> Result<LifecycleReport> {
    let tuning = Tuning {
        bootstrap: match plan.join {
            Join::Auto => "auto".into(),
            Join::Cli => "manual".into(),
        },
        ..Tuning::default()
    };
    let specs = vec![
        spec("eu-west", store(&plan.mysql, true)),
        spec("us-east", Store::Sqlite),
    ];
    let mut cluster = Cluster::start(specs, tuning, plan.seed).await?;
    let mut report = LifecycleReport {
        scenario: format!(
            "late join ({}, {:?}{})",
            if plan.prune { "pruned" } else { "unpruned" },
            plan.join,
            match plan.mysql.as_deref().map(crate::state::server_backend) {
                Some(Backend::Postgres) => ", eu-west and ap-south on PostgreSQL",
                Some(_) => ", eu-west and ap-south on MariaDB",
                None => "",
            }
        ),
        seed: plan.seed,
        ..LifecycleReport::default()
    };
    let result = late_join_scenario(&mut cluster, plan.clone(), &mut report).await;
    conclude(cluster, report, result).await
}

async fn late_join_scenario(
    cluster: &mut Cluster,
    plan: LateJoin,
    report: &mut LifecycleReport,
) -> Result<()> {
    let (a, b) = (0, 1);
    let mut rng = fastrand::Rng::with_seed(plan.seed ^ 0x6c6a);
    let prefix = format!("r6j-{:x}", plan.seed);
    let mut writer = Writer::new(plan.seed, &prefix)?;
    let ab = [Target::of(cluster, a), Target::of(cluster, b)];
    writer.run_for(&ab, Duration::from_secs(4)).await;
    settle_and_pull(cluster, SETTLE)
        .await
        .context("eu-west and us-east before the legacy rows")?;

    // Rows from before the sync columns, at eu-west only: in no feed.
    let legacy: Vec<LegacyRow> = (0..plan.legacy_rows)
        .map(|k| LegacyRow {
            id: random_uuid(&mut rng),
            name: format!("{prefix}-legacy{k}"),
        })
        .collect();
    tokio::task::block_in_place(|| insert_legacy_rows(&cluster.regions[a], &legacy))?;
    let at_a = cluster.regions[a].state()?;
    for (k, row) in legacy.iter().enumerate() {
        let stored = at_a
            .rows
            .get(&row.id)
            .with_context(|| format!("legacy row {} not stored", row.id))?;
        if stored.sync_origin != "eu-west" || stored.sync_version <= 0 {
            bail!("the migration left {stored:?} on a legacy row");
        }
        writer.adopt(
            Write {
                entity: Some(row.id.clone()),
                region: "eu-west".into(),
                kind: Kind::Create,
                name: Some(row.name.clone()),
                version: Some(stored.version()),
            },
            // Half of them are updated and deleted by the workload from now on (at us-east a
            // 404 until it has them); the others stay as they are, reachable only by a
            // snapshot.
            k % 2 == 0,
        );
    }
    report.notes.push(format!(
        "{} legacy rows at eu-west (versions {:?}…)",
        legacy.len(),
        legacy
            .first()
            .and_then(|r| at_a.rows.get(&r.id))
            .map(Row::version)
    ));

    if plan.prune {
        for i in [a, b] {
            let pruned =
                tokio::task::block_in_place(|| prune_changelog(&cluster.regions[i], "customers"))?;
            report
                .notes
                .push(format!("{} pruned: {pruned:?}", cluster.regions[i].spec.id));
            // A prune that deleted nothing would let the late region read the whole history.
            if pruned.pruned_through == 0 || pruned.deleted == 0 {
                bail!(
                    "nothing pruned at {}: {pruned:?}",
                    cluster.regions[i].spec.id
                );
            }
        }
    }

    // ap-south joins: registered, configured, the others restarted with it as a peer; writes
    // go on at eu-west and us-east meanwhile.
    let c = cluster
        .add_region(spec("ap-south", store(&plan.mysql, true)))
        .await?;
    let stop = AtomicBool::new(false);
    let join = plan.join;
    let (_, joined) = tokio::join!(writer.run(&ab, &stop), async {
        let result: Result<Vec<String>> = async {
            for i in [a, b] {
                cluster.stop(i, Duration::from_secs(10)).await?;
                cluster.restart(i).await?;
            }
            cluster.restart(c).await?;
            let mut notes = Vec::new();
            if join == Join::Cli {
                for peer in ["eu-west", "us-east"] {
                    let out = cluster
                        .cli(c, &["sync", "bootstrap", "--peer", peer])
                        .await?;
                    let said = format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    if !out.status.success() {
                        bail!("`sync bootstrap --peer {peer}` at ap-south failed: {said}");
                    }
                    notes.push(format!(
                        "sync bootstrap --peer {peer}: {}",
                        said.trim().replace('\n', " | ")
                    ));
                }
            }
            Ok(notes)
        }
        .await;
        stop.store(true, Ordering::Release);
        result
    });
    report.notes.extend(joined?);
    let abc = [ab[0].clone(), ab[1].clone(), Target::of(cluster, c)];
    writer.run_for(&abc, Duration::from_secs(6)).await;
    finish(cluster, &writer.writes, report).await
}

/// What the restored region's database is replaced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// A consistent copy of itself taken a few seconds before the crash.
    OlderCopy,
    /// An empty database (a new SQLite file, an empty MariaDB database).
    Empty,
}

#[derive(Debug, Clone)]
pub struct Restored {
    pub seed: u64,
    /// The database server (no database; `mysql://…` or `postgres://…`) for the restored
    /// region; SQLite when `None`.
    pub mysql: Option<String>,
    pub restore: Restore,
}

/// The region that is restored: `ap-south` (not the broker).
const X: usize = 2;

/// A region restored from an older copy of itself, or from nothing. Three regions take writes
/// at random; at T1 a consistent copy of `ap-south`'s database is taken while it runs
/// ([`Restore::OlderCopy`]); at T2 it is SIGKILLed, its database replaced by the copy (or by
/// an empty one) under the same region id, and it is started again, while the others — and,
/// once it is back, it too — keep taking writes. After quiescence: the three hold the same
/// rows; every write eu-west or us-east acknowledged is there at its final value, every write
/// ap-south acknowledged after its restart, and every one it acknowledged before the kill
/// that had reached eu-west or us-east by then (the others were lost with its old database:
/// that is inherent); no deleted row is live again.
pub async fn restored(plan: &Restored) -> Result<LifecycleReport> {
    let specs = vec![
        spec("eu-west", Store::Sqlite),
        spec("us-east", Store::Sqlite),
        spec("ap-south", store(&plan.mysql, true)),
    ];
    let mut cluster = Cluster::start(specs, Tuning::default(), plan.seed).await?;
    let mut report = LifecycleReport {
        scenario: format!(
            "ap-south restored from {}{}",
            match plan.restore {
                Restore::OlderCopy => "an older copy",
                Restore::Empty => "an empty database",
            },
            match plan.mysql.as_deref().map(crate::state::server_backend) {
                Some(Backend::Postgres) => " (on PostgreSQL)",
                Some(_) => " (on MariaDB)",
                None => "",
            }
        ),
        seed: plan.seed,
        ..LifecycleReport::default()
    };
    let result = restored_scenario(&mut cluster, plan.clone(), &mut report).await;
    conclude(cluster, report, result).await
}

/// Whether `survivor` had `w` (or a newer version of its entity) when it was read.
fn reached(survivor: &RegionState, w: &Write) -> bool {
    let (Some(entity), Some((hlc, origin))) = (&w.entity, &w.version) else {
        return false;
    };
    survivor
        .changelog
        .contains(&(entity.clone(), *hlc, origin.clone()))
        || survivor
            .rows
            .get(entity)
            .is_some_and(|row| row.version() >= (*hlc, origin.clone()))
}

async fn restored_scenario(
    cluster: &mut Cluster,
    plan: Restored,
    report: &mut LifecycleReport,
) -> Result<()> {
    let x_id = cluster.regions[X].spec.id.clone();
    let targets: Vec<Target> = (0..cluster.regions.len())
        .map(|i| Target::of(cluster, i))
        .collect();
    let mut writer = Writer::new(plan.seed, &format!("r6r-{:x}", plan.seed))?;
    let copy_path = cluster.dir().join(format!("{x_id}.copy"));
    let stop = AtomicBool::new(false);
    let restore = plan.restore;
    let (_, controlled) = tokio::join!(writer.run(&targets, &stop), async {
        let result: Result<(Vec<RegionState>, Instant)> = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let copy = match restore {
                Restore::OlderCopy => {
                    copy_database(&cluster.regions[X], &copy_path).await?;
                    cluster.log_event(&format!("T1: consistent copy of {x_id} taken"));
                    Some(copy_path.clone())
                }
                Restore::Empty => None,
            };
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.kill(X).await?;
            // What the survivors hold at the kill: what of X's writes reached them.
            let survivors = vec![cluster.regions[0].state()?, cluster.regions[1].state()?];
            replace_database(&cluster.regions[X], copy.as_deref()).await?;
            cluster.log_event(&format!(
                "T2: {x_id}'s database replaced by {}",
                if copy.is_some() {
                    "the copy"
                } else {
                    "an empty one"
                }
            ));
            let restarted_at = Instant::now();
            cluster.restart(X).await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok((survivors, restarted_at))
        }
        .await;
        stop.store(true, Ordering::Release);
        result
    });
    let (survivors, restarted_at) = controlled?;

    // Writes X acknowledged before the kill that had reached no survivor were lost with its
    // old database: they may be missing (no longer required), but still name what a row may
    // hold.
    let mut required = Vec::with_capacity(writer.writes.len());
    let (mut before_kill, mut lost) = (0, 0);
    for (w, sent) in writer.writes.iter().zip(&writer.sent_at) {
        let mut w = w.clone();
        if w.region == x_id && w.version.is_some() && *sent < restarted_at {
            before_kill += 1;
            if !survivors.iter().any(|s| reached(s, &w)) {
                lost += 1;
                w.version = None;
            }
        }
        required.push(w);
    }
    let after: usize = writer
        .writes
        .iter()
        .zip(&writer.sent_at)
        .filter(|(w, sent)| w.region == x_id && w.version.is_some() && **sent >= restarted_at)
        .count();
    report.notes.push(format!(
        "{x_id} acknowledged {before_kill} writes before the kill ({lost} of them had reached no other region: not required) and {after} after its restart; {} writes acknowledged in all",
        writer.acked()
    ));
    finish(cluster, &required, report).await
}
