//! R3 (QUALITY-BARS.md): SIGKILL during a local write, during an apply, during a
//! claim/dispatch and during a cursor advance. After the restarts every region holds the same
//! rows, every row has the changelog entry of its version (all-or-nothing), every acknowledged
//! write is there (or superseded), nothing is a phantom and the outboxes are drained. A pull
//! cursor ahead of what was applied would leave the puller short of rows for good.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::chaos::{atomic, check, settle_and_pull, Kind, Write};
use crate::cluster::{Cluster, RegionSpec, Store, Tuning};
use crate::proxy::Fault;

/// Which process dies, and while doing what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// The region taking writes through its API is killed while they stream in.
    LocalWrite,
    /// The receiver is killed while applying a pushed backlog.
    Apply,
    /// The sender is killed while claiming and dispatching its backlog.
    Dispatch,
    /// The receiver is killed while pulling a backlog page by page (the sender does not push).
    CursorAdvance,
}

#[derive(Debug, Clone)]
pub struct CrashReport {
    pub crash: Crash,
    pub seed: u64,
    pub kills: usize,
    /// How far the work was at each kill (rows at the receiver, or the sender's outbox).
    pub at_kills: Vec<String>,
    pub acked: usize,
    pub unacked: usize,
    pub rows: usize,
    pub settle: Duration,
}

/// Customers created at region `region` (its API at `base`), `concurrency` at a time, `count` in all; every attempt is
/// returned (acknowledged ones carry their version).
pub async fn create_many(
    base: &str,
    region: &str,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> Vec<Write> {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(_) => return Vec::new(),
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || async {
        let mut out = Vec::new();
        loop {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n >= count {
                return out;
            }
            let name = format!("{prefix}-{n}");
            let res = client
                .post(format!("{base}/api/v1/customers"))
                .json(&json!({"tenant_id": "acme", "name": name, "email": format!("{name}@example.com")}))
                .send()
                .await;
            let (entity, version) = match res {
                Ok(res) if res.status().is_success() => {
                    let version = crate::chaos::etag(&res);
                    let id = res
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_string));
                    (id, version)
                }
                _ => {
                    // The region is down (or refused): do not burn the count in a tight loop.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    (None, None)
                }
            };
            out.push(Write {
                entity,
                region: region.to_string(),
                kind: Kind::Create,
                name: Some(name),
                version,
            });
        }
    };
    let results = futures_util::future::join_all((0..concurrency).map(|_| worker())).await;
    results.into_iter().flatten().collect()
}

/// Kill region `victim` `times` times, each time restarting it after a short pause. Before a
/// kill: a random (seeded) pause within `after_ms`, then a wait (at most 3 s) until `progress`
/// says the work is in flight, so the kill lands in the middle of it. What `progress` read at
/// each kill is returned, with whether the work was in flight then.
async fn kill_repeatedly(
    cluster: &mut Cluster,
    victim: usize,
    times: usize,
    rng: &mut fastrand::Rng,
    after_ms: std::ops::Range<u64>,
    progress: impl Fn(&Cluster) -> (String, bool),
) -> Result<Vec<(String, bool)>> {
    let mut seen = Vec::new();
    for _ in 0..times {
        tokio::time::sleep(Duration::from_millis(rng.u64(after_ms.clone()))).await;
        let deadline = Instant::now() + Duration::from_secs(3);
        while !progress(cluster).1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cluster.kill(victim).await?;
        seen.push(progress(cluster));
        tokio::time::sleep(Duration::from_millis(rng.u64(100..400))).await;
        cluster.restart(victim).await?;
    }
    Ok(seen)
}

/// Run one crash scenario with two regions on SQLite: `eu-west` (broker) and `us-east`.
pub async fn run(crash: Crash, seed: u64, backlog: usize) -> Result<CrashReport> {
    run_on(crash, seed, backlog, Store::Sqlite).await
}

/// Run one crash scenario with both regions on `store` (MariaDB: a fresh database each, so
/// the claim's stream-row lock and MariaDB's transactions are what the kills interrupt).
pub async fn run_on(crash: Crash, seed: u64, backlog: usize, store: Store) -> Result<CrashReport> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5233);
    let mut sender = RegionSpec::sqlite("eu-west");
    sender.store = store.clone();
    // Pull-only: the sender lists no peers, so the receiver gets its changes only by pulling.
    sender.push = crash != Crash::CursorAdvance;
    let mut receiver = RegionSpec::sqlite("us-east");
    receiver.store = store;
    let specs = vec![sender, receiver];
    let tuning = Tuning {
        // Many small pages: a pass advances the cursor many times.
        pull_page_limit: if crash == Crash::CursorAdvance {
            40
        } else {
            500
        },
        ..Tuning::default()
    };
    let mut cluster = Cluster::start(specs, tuning, seed).await?;
    let result = scenario(&mut cluster, crash, seed, backlog, &mut rng).await;
    let result = result.map_err(|e| {
        e.context(format!(
            "R3 {crash:?} seed {seed} failed; region logs:\n{}",
            cluster.logs(15)
        ))
    });
    // The run's own failure first: a failed shutdown must not hide it.
    let stopped = cluster.shutdown().await;
    let report = result?;
    stopped?;
    Ok(report)
}

async fn scenario(
    cluster: &mut Cluster,
    crash: Crash,
    seed: u64,
    backlog: usize,
    rng: &mut fastrand::Rng,
) -> Result<CrashReport> {
    let (sender, receiver) = (0, 1);
    let prefix = format!("r3-{seed:x}");
    let kills = 3;
    // In flight: the receiver holds some of the backlog, not all of it.
    let rows_at = move |c: &Cluster| {
        c.regions[receiver].state().map_or_else(
            |e| (format!("unreadable: {e}"), false),
            |s| {
                let rows = s.rows.len();
                (format!("{rows} rows"), rows > 0 && rows < backlog)
            },
        )
    };
    let (writes, at_kills) = match crash {
        Crash::LocalWrite => {
            // Writes stream into the receiver while it is killed and restarted.
            let base = cluster.regions[receiver].base_url();
            let id = cluster.regions[receiver].spec.id.clone();
            let writing = create_many(&base, &id, &prefix, backlog, 8);
            let (writes, killed) = tokio::join!(
                writing,
                kill_repeatedly(cluster, receiver, kills, rng, 20..400, rows_at)
            );
            (writes, killed?)
        }
        Crash::Apply | Crash::Dispatch | Crash::CursorAdvance => {
            // A backlog builds up behind a cut link, then flows, slowed down, while one side
            // dies again and again.
            cluster.set_fault(sender, receiver, Fault::Blackhole);
            cluster.set_fault(receiver, sender, Fault::Blackhole);
            let base = cluster.regions[sender].base_url();
            let id = cluster.regions[sender].spec.id.clone();
            let writes = create_many(&base, &id, &prefix, backlog, 8).await;
            // Slow enough that a pushed backlog takes a while: with two dispatch workers and
            // 500-op batches, 2 000 entries otherwise drain before a kill can land (CI caught
            // every kill of the dispatch scenario after the last delivery).
            let slow = if crash == Crash::CursorAdvance {
                Fault::Delay {
                    base: Duration::from_millis(10),
                    jitter: Duration::from_millis(5),
                }
            } else {
                Fault::Delay {
                    base: Duration::from_millis(100),
                    jitter: Duration::from_millis(20),
                }
            };
            cluster.set_fault(sender, receiver, slow.clone());
            cluster.set_fault(receiver, sender, slow);
            let at_kills = if crash == Crash::Dispatch {
                // In flight: some of the backlog delivered, some still owed.
                let outbox_at = move |c: &Cluster| {
                    c.regions[sender].state().map_or_else(
                        |e| (format!("unreadable: {e}"), false),
                        |s| {
                            // A range completes as a whole (ADR 0009): a kill while one is
                            // leased, with entries still owed, is a kill mid-dispatch.
                            let delivered = s.outbox.get("delivered").copied().unwrap_or(0);
                            let leased = s.outbox.get("leased").copied().unwrap_or(0);
                            (
                                format!("outbox {:?}", s.outbox),
                                (delivered > 0 || leased > 0) && s.pending() > 0,
                            )
                        },
                    )
                };
                kill_repeatedly(cluster, sender, kills, rng, 20..400, outbox_at).await?
            } else {
                // A puller starts a pass every second (the first one a second after it
                // starts): aim at the passes.
                let after = if crash == Crash::CursorAdvance {
                    300..1200
                } else {
                    20..400
                };
                kill_repeatedly(cluster, receiver, kills, rng, after, rows_at).await?
            };
            cluster.heal();
            (writes, at_kills)
        }
    };
    // A scenario whose kills all missed the work would prove nothing.
    if !at_kills.iter().any(|(_, in_flight)| *in_flight) {
        anyhow::bail!("no kill landed while the work was in flight: {at_kills:?}");
    }
    let at_kills: Vec<String> = at_kills
        .into_iter()
        .map(|(seen, in_flight)| format!("{seen}{}", if in_flight { " (in flight)" } else { "" }))
        .collect();
    cluster.ensure_running().await?;
    let healed = Instant::now();
    let states = settle_and_pull(cluster, Duration::from_secs(90)).await?;
    atomic(&states)?;
    check(&states, &writes)?;
    Ok(CrashReport {
        crash,
        seed,
        kills,
        at_kills,
        acked: writes.iter().filter(|w| w.version.is_some()).count(),
        unacked: writes.iter().filter(|w| w.version.is_none()).count(),
        rows: states[0].rows.len(),
        settle: healed.elapsed(),
    })
}
