//! R1 (QUALITY-BARS.md): three regions as processes, random writes through the public API at
//! random regions on a small key space (conflicts on purpose), random faults on every link, a
//! SIGKILL and restart, one region's clock skewed by ±2 s; then heal, wait for quiescence and
//! check convergence. Everything random comes from the seed: a failing seed is printed and
//! replays with `CHAOS_SEED=<seed>`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::cluster::{Cluster, RegionSpec, Store, Tuning};
use crate::proxy::Fault;
use crate::state::RegionState;

/// What a write was, as the harness asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone)]
pub struct Write {
    pub entity: Option<String>,
    pub region: String,
    pub kind: Kind,
    /// The unique name it set (creates and updates).
    pub name: Option<String>,
    /// `(hlc, origin)` from the answer's ETag: the write was acknowledged.
    pub version: Option<(i64, String)>,
}

/// The parameters of one run.
#[derive(Debug, Clone)]
pub struct ChaosPlan {
    pub seed: u64,
    /// Random operations after the initial creates.
    pub ops: usize,
    /// Customers created first (the key space; creates during the run add to it).
    pub keys: usize,
    /// The regions (by index) on a database server, the others on SQLite (`server` URL
    /// without a database: `mysql://…` for MariaDB, `postgres://…` for PostgreSQL). One
    /// region per backend: `[(1, mariadb), (2, postgresql)]`.
    pub servers: Vec<(usize, String)>,
    /// How long quiescence may take after healing.
    pub settle_within: Duration,
}

impl ChaosPlan {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            ops: 80,
            keys: 6,
            servers: Vec::new(),
            settle_within: Duration::from_secs(90),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    pub seed: u64,
    pub acked: usize,
    pub unacked: usize,
    pub faults: usize,
    pub kills: usize,
    pub skew_ms: (String, i64),
    pub rows: usize,
    /// Orders at the end (tombstones included).
    pub orders: usize,
    /// Concurrent writes resolved by last-writer-wins, summed over the regions.
    pub conflicts: i64,
    pub settle: Duration,
}

const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

fn random_fault(rng: &mut fastrand::Rng) -> Fault {
    match rng.usize(0..8) {
        0 | 1 => Fault::Pass,
        2 => Fault::Delay {
            base: Duration::from_millis(rng.u64(5..150)),
            jitter: Duration::from_millis(rng.u64(0..50)),
        },
        3 => Fault::Blackhole,
        4 => Fault::Reset,
        5 => Fault::CloseAfter {
            bytes: rng.usize(1..3000),
        },
        6 => Fault::DropResponse,
        _ => Fault::Duplicate,
    }
}

/// `"<hlc>.<origin>"` → (hlc, origin).
pub fn etag(res: &reqwest::Response) -> Option<(i64, String)> {
    let tag = res.headers().get("etag")?.to_str().ok()?.trim_matches('"');
    let (hlc, origin) = tag.split_once('.')?;
    Some((hlc.parse().ok()?, origin.to_string()))
}

/// One write through the public API of `base`; `None` version when it was not acknowledged
/// (network error, the region down, a 5xx); `Err(())` when the API said it changed nothing
/// (404: the customer is not there, or is deleted, at that region).
pub async fn write(
    client: &reqwest::Client,
    base: &str,
    kind: &Kind,
    entity: Option<&str>,
    name: &str,
) -> Result<(Option<String>, Option<(i64, String)>), ()> {
    let request = match (kind, entity) {
        (Kind::Create, _) => client.post(format!("{base}/api/v1/customers")).json(
            &json!({"tenant_id": "acme", "name": name, "email": format!("{name}@example.com")}),
        ),
        (Kind::Update, Some(id)) => client
            .patch(format!("{base}/api/v1/customers/{id}"))
            .json(&json!({"name": name})),
        (Kind::Delete, Some(id)) => client.delete(format!("{base}/api/v1/customers/{id}")),
        _ => return Err(()),
    };
    answered(request, kind, entity).await
}

/// One order write through the public API of `base` (answers as [`write`]): a create names
/// `customer` and takes `name` as its number; an update sets the number; a delete deletes. A
/// create for a customer that is not live at that region is a 422 (nothing acknowledged).
pub async fn order_write(
    client: &reqwest::Client,
    base: &str,
    kind: &Kind,
    entity: Option<&str>,
    customer: &str,
    name: &str,
) -> Result<(Option<String>, Option<(i64, String)>), ()> {
    let request = match (kind, entity) {
        (Kind::Create, _) => client.post(format!("{base}/api/v1/orders")).json(&json!({
            "tenant_id": "acme", "customer_id": customer, "number": name, "currency": "EUR",
            "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_minor": 100}],
        })),
        (Kind::Update, Some(id)) => client
            .patch(format!("{base}/api/v1/orders/{id}"))
            .json(&json!({"number": name})),
        (Kind::Delete, Some(id)) => client.delete(format!("{base}/api/v1/orders/{id}")),
        _ => return Err(()),
    };
    answered(request, kind, entity).await
}

/// What a write's answer acknowledged (see [`write`]).
async fn answered(
    request: reqwest::RequestBuilder,
    kind: &Kind,
    entity: Option<&str>,
) -> Result<(Option<String>, Option<(i64, String)>), ()> {
    match request.send().await {
        Ok(res) if res.status().is_success() => {
            let version = etag(&res);
            let id = match kind {
                Kind::Create => res
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_string)),
                _ => entity.map(str::to_string),
            };
            Ok((id, version))
        }
        Ok(res) if res.status().as_u16() == 404 => Err(()),
        // Refused (4xx other than 404: a customer that live orders name, an order for a
        // customer not here) or failed (5xx): nothing acknowledged.
        Ok(_) | Err(_) => Ok((entity.map(str::to_string), None)),
    }
}

/// Run R1 for `plan.seed`. `Ok` only when every check held.
pub async fn run(plan: &ChaosPlan) -> Result<ChaosReport> {
    let mut rng = fastrand::Rng::with_seed(plan.seed);
    let skewed = rng.usize(0..REGIONS.len());
    let skew = if rng.bool() { 2_000 } else { -2_000 };
    let specs: Vec<RegionSpec> = REGIONS
        .iter()
        .enumerate()
        .map(|(i, id)| RegionSpec {
            id: (*id).to_string(),
            store: match plan.servers.iter().find(|(index, _)| *index == i) {
                Some((_, server)) => Store::on_server(server),
                None => Store::Sqlite,
            },
            skew_ms: if i == skewed { skew } else { 0 },
            push: true,
        })
        .collect();
    let mut cluster = Cluster::start(specs, Tuning::default(), plan.seed).await?;
    let outcome = drive(&mut cluster, plan, &mut rng).await;
    let result = match outcome {
        Ok(mut report) => {
            report.skew_ms = (REGIONS[skewed].to_string(), skew);
            Ok(report)
        }
        Err(e) => Err(e.context(format!(
            "R1 seed {} failed (replay: CHAOS_SEED={}); region logs:\n{}",
            plan.seed,
            plan.seed,
            cluster.logs(15)
        ))),
    };
    // The run's own failure first: a failed shutdown must not hide it.
    let stopped = cluster.shutdown().await;
    let report = result?;
    stopped?;
    Ok(report)
}

async fn drive(
    cluster: &mut Cluster,
    plan: &ChaosPlan,
    rng: &mut fastrand::Rng,
) -> Result<ChaosReport> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let mut report = ChaosReport {
        seed: plan.seed,
        ..ChaosReport::default()
    };
    let mut writes: Vec<Write> = Vec::new();
    let mut known: Vec<String> = Vec::new();
    // Orders of the known customers (issue 15): created at a region where the customer is
    // live, so they race its replication — and its deletes — across the other regions.
    let mut order_writes: Vec<Write> = Vec::new();
    let mut known_orders: Vec<String> = Vec::new();
    let mut counter = 0usize;
    let n = cluster.regions.len();
    let kill_at = plan.ops / 3 + rng.usize(0..plan.ops / 3);
    let mut down: Option<(usize, Instant)> = None;

    for step in 0..plan.keys + plan.ops {
        if step >= plan.keys {
            if rng.f32() < 0.15 {
                let from = rng.usize(0..n);
                let to = (from + 1 + rng.usize(0..n - 1)) % n;
                cluster.set_fault(from, to, random_fault(rng));
                report.faults += 1;
            }
            if step == plan.keys + kill_at {
                let victim = rng.usize(0..n);
                cluster.kill(victim).await?;
                report.kills += 1;
                down = Some((
                    victim,
                    Instant::now() + Duration::from_millis(rng.u64(300..1500)),
                ));
            }
            if let Some((victim, until)) = down {
                if Instant::now() >= until {
                    cluster.restart(victim).await?;
                    down = None;
                }
            }
        }
        let r = rng.usize(0..n);
        if step >= plan.keys && !known.is_empty() && rng.f32() < 0.35 {
            let kind = if known_orders.is_empty() {
                Kind::Create
            } else {
                match rng.usize(0..20) {
                    0..=2 => Kind::Delete,
                    3..=9 => Kind::Create,
                    _ => Kind::Update,
                }
            };
            let entity = (kind != Kind::Create)
                .then(|| known_orders[rng.usize(0..known_orders.len())].clone());
            let customer = known[rng.usize(0..known.len())].clone();
            counter += 1;
            let name = format!("s{:x}-o{counter}", plan.seed);
            let base = cluster.regions[r].base_url();
            let written =
                order_write(&client, &base, &kind, entity.as_deref(), &customer, &name).await;
            if let Ok((id, version)) = written {
                if let (Kind::Create, Some(id), Some(_)) = (&kind, &id, &version) {
                    known_orders.push(id.clone());
                }
                if version.is_some() {
                    report.acked += 1;
                } else {
                    report.unacked += 1;
                }
                order_writes.push(Write {
                    entity: id,
                    region: cluster.regions[r].spec.id.clone(),
                    kind: kind.clone(),
                    name: (kind != Kind::Delete).then_some(name),
                    version,
                });
            }
            tokio::time::sleep(Duration::from_millis(rng.u64(0..25))).await;
            continue;
        }
        let kind = if step < plan.keys || known.is_empty() {
            Kind::Create
        } else {
            match rng.usize(0..20) {
                0..=2 => Kind::Delete,
                3..=6 => Kind::Create,
                _ => Kind::Update,
            }
        };
        let entity = match kind {
            Kind::Create => None,
            _ => Some(known[rng.usize(0..known.len())].clone()),
        };
        counter += 1;
        let name = format!("s{:x}-w{counter}", plan.seed);
        let base = cluster.regions[r].base_url();
        match write(&client, &base, &kind, entity.as_deref(), &name).await {
            Err(()) => {}
            Ok((id, version)) => {
                if let (Kind::Create, Some(id)) = (&kind, &id) {
                    known.push(id.clone());
                }
                if version.is_some() {
                    report.acked += 1;
                } else {
                    report.unacked += 1;
                }
                writes.push(Write {
                    entity: id,
                    region: cluster.regions[r].spec.id.clone(),
                    kind: kind.clone(),
                    name: (kind != Kind::Delete).then_some(name),
                    version,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..25))).await;
    }

    cluster.log_event("heal: every link to Pass, every region up");
    cluster.heal();
    cluster.ensure_running().await?;
    let healed = Instant::now();
    let states = settle_and_pull(cluster, plan.settle_within).await?;
    report.settle = healed.elapsed();
    report.rows = states[0].rows.len();
    report.orders = states[0].orders.len();
    report.conflicts = states.iter().map(|s| s.conflicts).sum();
    check(&states, &writes)?;
    check_orders(&states, &order_writes)?;
    atomic(&states)?;
    // Every directed link carried traffic: the regions really reach each other through the
    // proxies (`[broker] peer_urls`), so the faults were real.
    for ((from, to), proxy) in &cluster.links {
        if proxy.stats().bytes_up == 0 {
            bail!(
                "no traffic from {} to {} went through its proxy",
                cluster.regions[*from].spec.id,
                cluster.regions[*to].spec.id
            );
        }
    }
    Ok(report)
}

/// Wait until every outbox is drained and every region holds the same rows (twice in a row,
/// a quarter second apart); the states then. Fails with the last difference after `within`.
pub async fn settle(cluster: &Cluster, within: Duration) -> Result<Vec<RegionState>> {
    let deadline = Instant::now() + within;
    let mut stable = 0;
    loop {
        // A read that fails (a database busy a moment) is one more reason to wait.
        let (states, problem) = match cluster.states() {
            Ok(states) => {
                let problem = quiescence_problem(&states);
                (states, problem)
            }
            Err(e) => (Vec::new(), Some(format!("reading the regions: {e:#}"))),
        };
        if problem.is_none() {
            stable += 1;
            if stable >= 2 {
                return Ok(states);
            }
        } else {
            stable = 0;
            if std::env::var_os("HARNESS_VERBOSE").is_some() {
                cluster.log_event(&format!(
                    "not quiescent: {}",
                    problem.clone().unwrap_or_default()
                ));
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no quiescence within {within:?}: {}",
                problem.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `settle`, then wait until every region has stored a pull of every peer after quiescence
/// (its stored pull time changed: a pull pass reads to the end of the peer's feed) and check
/// that nothing changed: the regions are still identical and drained. So no pull cursor was
/// left behind a change that the pushes alone had not brought.
pub async fn settle_and_pull(cluster: &Cluster, within: Duration) -> Result<Vec<RegionState>> {
    let quiet = settle(cluster, within).await?;
    let deadline = Instant::now() + within;
    let peers = cluster.regions.len() - 1;
    loop {
        let Ok(states) = cluster.states() else {
            if Instant::now() > deadline {
                bail!("the regions could not be read after quiescence");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let behind: Vec<String> = states
            .iter()
            .zip(&quiet)
            .flat_map(|(now, before)| {
                let mut out = Vec::new();
                if now.cursors.len() < peers {
                    out.push(format!(
                        "{} has pulled {} of {peers} peers",
                        now.region,
                        now.cursors.len()
                    ));
                }
                for (peer, (_, pulled_at)) in &now.cursors {
                    if before.cursors.get(peer).map(|(_, at)| at) == Some(pulled_at) {
                        out.push(format!(
                            "{} has not pulled {peer} since quiescence",
                            now.region
                        ));
                    }
                }
                out
            })
            .collect();
        if behind.is_empty() {
            if let Some(problem) = quiescence_problem(&states) {
                bail!("a pull after quiescence changed the regions: {problem}");
            }
            if states.iter().zip(&quiet).any(|(a, b)| a.rows != b.rows) {
                bail!("a pull after quiescence changed rows");
            }
            return Ok(states);
        }
        if Instant::now() > deadline {
            bail!(
                "cursors not at head within {within:?}: {}",
                behind.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Why the regions are not quiescent yet, if they are not.
pub fn quiescence_problem(states: &[RegionState]) -> Option<String> {
    for s in states {
        if s.pending() > 0 || s.dead() > 0 {
            return Some(format!("{}: outbox {:?}", s.region, s.outbox));
        }
        if s.parked > 0 {
            return Some(format!("{}: {} op(s) parked", s.region, s.parked));
        }
    }
    let first = states.first()?;
    for s in &states[1..] {
        if s.orders != first.orders {
            return Some(format!(
                "{} and {} differ in orders ({} vs {} rows)",
                first.region,
                s.region,
                first.orders.len(),
                s.orders.len()
            ));
        }
        if s.rows != first.rows {
            let ids: BTreeSet<&String> = first.rows.keys().chain(s.rows.keys()).collect();
            let differing: Vec<String> = ids
                .into_iter()
                .filter(|id| first.rows.get(*id) != s.rows.get(*id))
                .take(3)
                .map(|id| format!("{id}: {:?} vs {:?}", first.rows.get(id), s.rows.get(id)))
                .collect();
            return Some(format!(
                "{} and {} differ ({} vs {} rows): {}",
                first.region,
                s.region,
                first.rows.len(),
                s.rows.len(),
                differing.join("; ")
            ));
        }
    }
    None
}

/// Every row's version has its changelog entry in the same region: no domain write (local or
/// applied) committed without its change (R3: all-or-nothing).
pub fn atomic(states: &[RegionState]) -> Result<()> {
    for s in states {
        let orphans = s.rows_without_their_change();
        if !orphans.is_empty() {
            bail!(
                "{}: {} row(s) without the changelog entry of their version, e.g. {:?}",
                s.region,
                orphans.len(),
                orphans[0]
            );
        }
    }
    Ok(())
}

/// The R1 checks on converged states: no acknowledged write lost (each present or superseded
/// by a higher `(hlc, origin)`), no phantom rows (every row's content was written by the
/// workload), identical rows everywhere (already checked by `settle`).
pub fn check(states: &[RegionState], writes: &[Write]) -> Result<()> {
    let Some(state) = states.first() else {
        bail!("no region");
    };
    let entries = state
        .rows
        .values()
        .map(|r| Entry {
            id: &r.id,
            name: &r.name,
            version: r.version(),
            deleted: r.deleted(),
            shown: format!("{r:?}"),
        })
        .collect();
    check_entries(entries, writes)
}

/// [`check`] for the orders: an order's name is its number.
pub fn check_orders(states: &[RegionState], writes: &[Write]) -> Result<()> {
    let Some(state) = states.first() else {
        bail!("no region");
    };
    let entries = state
        .orders
        .values()
        .map(|o| Entry {
            id: &o.id,
            name: &o.number,
            version: o.version(),
            deleted: o.deleted(),
            shown: format!("{o:?}"),
        })
        .collect();
    check_entries(entries, writes).map_err(|e| e.context("orders"))
}

/// One row as the checks see it, whatever its resource.
struct Entry<'a> {
    id: &'a str,
    /// The unique value the workload wrote (a customer's name, an order's number).
    name: &'a str,
    version: (i64, String),
    deleted: bool,
    shown: String,
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

fn check_entries(rows: Vec<Entry<'_>>, writes: &[Write]) -> Result<()> {
    let rows: BTreeMap<&str, Entry<'_>> = rows.into_iter().map(|e| (e.id, e)).collect();
    let mut problems = Vec::new();
    for w in writes {
        let (Some(entity), Some(version)) = (&w.entity, &w.version) else {
            continue;
        };
        let Some(row) = rows.get(entity.as_str()) else {
            problems.push(format!(
                "lost: acknowledged {w:?} but {entity} is in no region"
            ));
            continue;
        };
        let stored = row.version.clone();
        if stored < *version {
            problems.push(format!(
                "lost: acknowledged {w:?} but the row is older: {row:?}"
            ));
        } else if stored == *version {
            let same = match w.kind {
                Kind::Delete => row.deleted,
                Kind::Create | Kind::Update => !row.deleted && w.name.as_deref() == Some(row.name),
            };
            if !same {
                problems.push(format!(
                    "same version, other content: acknowledged {w:?}, stored {row:?}"
                ));
            }
        }
    }
    // Phantoms: each row's name was set by a write of that entity (acknowledged or not), or,
    // for an id no acknowledged create returned, by an unacknowledged create.
    let mut names: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut orphan_creates: BTreeSet<&str> = BTreeSet::new();
    for w in writes {
        match (&w.entity, &w.name) {
            (Some(entity), Some(name)) => {
                names.entry(entity).or_default().insert(name);
            }
            (None, Some(name)) if w.kind == Kind::Create => {
                orphan_creates.insert(name);
            }
            _ => {}
        }
    }
    for row in rows.values() {
        let written = names.get(row.id).is_some_and(|n| n.contains(row.name))
            || orphan_creates.contains(row.name);
        if !written {
            problems.push(format!("phantom: {row:?} was never written"));
        }
        if !REGIONS.contains(&row.version.1.as_str()) {
            problems.push(format!("phantom origin: {row:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{} problem(s):\n{}", problems.len(), problems.join("\n"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::Row;

    fn row(id: &str, name: &str, hlc: i64, origin: &str, deleted: bool) -> Row {
        Row {
            id: id.into(),
            tenant_id: "acme".into(),
            name: name.into(),
            email: format!("{name}@example.com"),
            status: "active".into(),
            sync_version: hlc,
            sync_origin: origin.into(),
            tombstone: if deleted {
                "deleted".into()
            } else {
                String::new()
            },
        }
    }

    fn state(region: &str, rows: Vec<Row>) -> RegionState {
        RegionState {
            region: region.into(),
            rows: rows.into_iter().map(|r| (r.id.clone(), r)).collect(),
            outbox: BTreeMap::new(),
            conflicts: 0,
            changelog: BTreeSet::new(),
            refusals: BTreeMap::new(),
            cursors: BTreeMap::new(),
            orders: BTreeMap::new(),
            parked: 0,
        }
    }

    fn acked(entity: &str, kind: Kind, name: Option<&str>, hlc: i64, origin: &str) -> Write {
        Write {
            entity: Some(entity.into()),
            region: origin.into(),
            kind,
            name: name.map(str::to_string),
            version: Some((hlc, origin.into())),
        }
    }

    #[test]
    fn a_superseded_write_passes_and_a_lost_one_fails() {
        let writes = vec![
            acked("a", Kind::Create, Some("w1"), 10, "eu-west"),
            acked("a", Kind::Update, Some("w2"), 20, "us-east"),
        ];
        let won = vec![state("eu-west", vec![row("a", "w2", 20, "us-east", false)])];
        check(&won, &writes).unwrap();
        // The later acknowledged write is not there: the row still has the first one.
        let lost = vec![state("eu-west", vec![row("a", "w1", 10, "eu-west", false)])];
        let err = check(&lost, &writes).unwrap_err().to_string();
        assert!(err.contains("lost"), "{err}");
        // Gone altogether.
        let err = check(&[state("eu-west", vec![])], &writes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("in no region"), "{err}");
    }

    #[test]
    fn equal_versions_must_carry_the_acknowledged_content() {
        let writes = vec![acked("a", Kind::Delete, None, 30, "ap-south")];
        let live = vec![state(
            "eu-west",
            vec![row("a", "w1", 30, "ap-south", false)],
        )];
        let err = check(&live, &writes).unwrap_err().to_string();
        assert!(err.contains("other content"), "{err}");
        let gone = vec![state("eu-west", vec![row("a", "w1", 30, "ap-south", true)])];
        // "w1" was never written by the workload: a phantom, even as a tombstone.
        let err = check(&gone, &writes).unwrap_err().to_string();
        assert!(err.contains("phantom"), "{err}");
    }

    #[test]
    fn rows_nobody_wrote_are_phantoms_and_unacknowledged_creates_are_not() {
        let writes = vec![Write {
            entity: None,
            region: "eu-west".into(),
            kind: Kind::Create,
            name: Some("w9".into()),
            version: None,
        }];
        let ok = vec![state("eu-west", vec![row("x", "w9", 5, "eu-west", false)])];
        check(&ok, &writes).unwrap();
        let phantom = vec![state("eu-west", vec![row("y", "w10", 5, "eu-west", false)])];
        assert!(check(&phantom, &writes)
            .unwrap_err()
            .to_string()
            .contains("phantom"));
        let origin = vec![state("eu-west", vec![row("x", "w9", 5, "mars", false)])];
        assert!(check(&origin, &writes)
            .unwrap_err()
            .to_string()
            .contains("phantom origin"));
    }

    fn order(id: &str, number: &str, hlc: i64, origin: &str) -> crate::state::OrderRow {
        crate::state::OrderRow {
            id: id.into(),
            customer_id: "c".into(),
            number: number.into(),
            status: "pending".into(),
            lines: "[]".into(),
            total_minor: 100,
            sync_version: hlc,
            sync_origin: origin.into(),
            tombstone: String::new(),
        }
    }

    #[test]
    fn orders_are_checked_by_their_number_and_quiescence_needs_equal_orders_and_nothing_parked() {
        let writes = vec![
            acked("o", Kind::Create, Some("n1"), 10, "eu-west"),
            acked("o", Kind::Update, Some("n2"), 20, "us-east"),
        ];
        let mut won = state("eu-west", vec![]);
        won.orders
            .insert("o".into(), order("o", "n2", 20, "us-east"));
        check_orders(std::slice::from_ref(&won), &writes).unwrap();
        let mut lost = state("eu-west", vec![]);
        lost.orders
            .insert("o".into(), order("o", "n1", 10, "eu-west"));
        let err = format!("{:#}", check_orders(&[lost.clone()], &writes).unwrap_err());
        assert!(err.contains("orders") && err.contains("lost"), "{err}");
        // The customers' check does not look at orders.
        check(&[lost.clone()], &[]).unwrap();

        assert!(quiescence_problem(&[won.clone(), lost])
            .unwrap()
            .contains("orders"));
        let mut parked = won.clone();
        parked.parked = 1;
        assert!(quiescence_problem(&[won, parked])
            .unwrap()
            .contains("parked"));
    }

    #[test]
    fn quiescence_needs_drained_outboxes_and_equal_rows() {
        let a = state("eu-west", vec![row("a", "w1", 1, "eu-west", false)]);
        let b = state("us-east", vec![row("a", "w1", 1, "eu-west", false)]);
        assert_eq!(quiescence_problem(&[a.clone(), b.clone()]), None);
        let mut pending = b.clone();
        pending.outbox.insert("pending".into(), 1);
        assert!(quiescence_problem(&[a.clone(), pending])
            .unwrap()
            .contains("outbox"));
        let mut dead = b.clone();
        dead.outbox.insert("dead".into(), 1);
        assert!(quiescence_problem(&[a.clone(), dead]).is_some());
        let other = state("us-east", vec![row("a", "w1", 1, "eu-west", true)]);
        assert!(quiescence_problem(&[a, other]).unwrap().contains("differ"));
    }
}
