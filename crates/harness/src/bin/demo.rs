//! `make demo`: what regionsync does, in a few seconds. Three regions run as real processes on
//! loopback, each with its own database — one region per backend (SQLite, MariaDB,
//! PostgreSQL) when both servers answer, else three SQLite files — and replicate customers and
//! their orders to each other. The demo creates customers and orders at every region at once, then races
//! writes to the same customers at two or three regions (and deletes against a rename), and
//! a confirm against a cancel of the same orders, shows every region's state live until they
//! all hold the same rows, and says which write won each race: last-writer-wins on the
//! version `(hlc, origin)`, decided the same way at every region.
//!
//! `demo [--backends auto|mixed|sqlite] [--mysql URL] [--postgres URL]`: `auto` (the default)
//! puts us-east on MariaDB and ap-south on PostgreSQL when both servers take a connection
//! (`mysql://root@127.0.0.1:3306`, `postgres://postgres@127.0.0.1:5432` unless given; a
//! database `rs_chaos_*` is created on each and dropped at the end), and says why not when they
//! do not; `mixed` requires them; `sqlite` never asks.

#![allow(clippy::print_stdout)]

use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use futures_util::future::try_join_all;
use harness::chaos::quiescence_problem;
use harness::cluster::{Cluster, RegionSpec, Store, Tuning};
use harness::state::RegionState;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{json, Value};

const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
const PER_REGION: usize = 30;
/// Orders each region takes, for its first customers (never contested: a customer with live
/// orders cannot be deleted where they are).
const ORDERS_PER_REGION: usize = 10;
/// Orders confirmed at one region while another cancels them.
const ORDER_RACES: usize = 2;
/// Customers renamed at two or three regions at once, then customers deleted at one region
/// while another renames them.
const UPDATE_RACES: usize = 6;
const DELETE_RACES: usize = 2;
/// The names the races set, in order (17 are used).
const PEOPLE: &str = "Ada Lovelace, Grace Hopper, Alan Turing, Edsger Dijkstra, Barbara Liskov, \
    Donald Knuth, Leslie Lamport, Margaret Hamilton, Ken Thompson, Frances Allen, John Backus, \
    Radia Perlman, Tony Hoare, Niklaus Wirth, Jim Gray, Butler Lampson, Shafi Goldwasser, \
    Dennis Ritchie";
const PHASES: [&str; 4] = [
    "creating 30 customers and 10 orders at each region (and renaming 5 customers)",
    "waiting until the contested customers and orders have reached every region",
    "racing writes to the same customers and orders at different regions",
    "writes done; waiting for the regions to converge",
];
/// Between two creates at a region: slow enough to watch the table fill.
const PACE: Duration = Duration::from_millis(40);
const TICK: Duration = Duration::from_millis(300);
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);

/// What the writes have done so far, for the table.
#[derive(Default)]
struct Progress {
    phase: AtomicUsize,
    creates: AtomicUsize,
    updates: AtomicUsize,
    deletes: AtomicUsize,
}

/// One contested customer (or order) and the writes sent to different regions at the same
/// moment: `(region, Some(new name or status) or None for a delete, the version its ETag
/// acknowledged)`.
struct Race {
    id: String,
    label: String,
    /// The orders API (the race sets a status) rather than the customers API.
    order: bool,
    writes: Vec<(&'static str, Option<&'static str>, (i64, String))>,
}

const USAGE: &str = "usage: demo [--backends auto|mixed|sqlite] [--mysql URL] [--postgres URL]";

/// Where the regions keep their data (`--backends`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backends {
    /// One region per backend when both servers answer, else SQLite everywhere.
    Auto,
    /// One region per backend, or fail.
    Mixed,
    Sqlite,
}

struct Options {
    backends: Backends,
    mysql: String,
    postgres: String,
}

/// The options, or `None` when help was asked for.
fn options(args: impl Iterator<Item = String>) -> Result<Option<Options>> {
    let mut o = Options {
        backends: Backends::Auto,
        mysql: "mysql://root@127.0.0.1:3306".into(),
        postgres: "postgres://postgres@127.0.0.1:5432".into(),
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--backends" | "--mysql" | "--postgres" => {}
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => bail!("{flag} needs a value\n{USAGE}"),
        };
        match flag.as_str() {
            "--backends" => {
                o.backends = match value.as_str() {
                    "auto" => Backends::Auto,
                    "mixed" => Backends::Mixed,
                    "sqlite" => Backends::Sqlite,
                    other => bail!("--backends {other}: auto, mixed or sqlite\n{USAGE}"),
                }
            }
            "--mysql" if value.starts_with("mysql://") => o.mysql = value,
            "--postgres"
                if value.starts_with("postgres://") || value.starts_with("postgresql://") =>
            {
                o.postgres = value
            }
            _ => bail!("{flag} {value}: not a {} URL", &flag[2..]),
        }
    }
    Ok(Some(o))
}

/// The regions' stores: eu-west on SQLite, us-east on MariaDB and ap-south on PostgreSQL, or
/// all three on SQLite (`auto` says why).
fn stores(o: &Options) -> Result<[Store; 3]> {
    let sqlite = [Store::Sqlite, Store::Sqlite, Store::Sqlite];
    if o.backends == Backends::Sqlite {
        return Ok(sqlite);
    }
    let answers = [&o.mysql, &o.postgres]
        .into_iter()
        .map(|server| harness::state::server_answers(server))
        .collect::<Result<Vec<()>>>();
    match (answers, o.backends) {
        (Ok(_), _) => Ok([
            Store::Sqlite,
            Store::on_server(&o.mysql),
            Store::on_server(&o.postgres),
        ]),
        (Err(e), Backends::Mixed) => Err(e.context("--backends mixed needs both servers")),
        (Err(e), _) => {
            println!(
                "(one region per backend needs MariaDB and PostgreSQL: {e:#}; using SQLite for all \
                 three — give --mysql/--postgres, or --backends sqlite to not ask)"
            );
            Ok(sqlite)
        }
    }
}

fn backend_name(store: &Store) -> &'static str {
    match store {
        Store::Sqlite => "SQLite",
        Store::Mysql { .. } => "MariaDB",
        Store::Postgres { .. } => "PostgreSQL",
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let stores = match options(std::env::args().skip(1)) {
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Some(o)) => stores(&o),
        Err(e) => Err(e),
    };
    let stores = match stores {
        Ok(stores) => stores,
        Err(e) => {
            eprintln!("demo: {e:#}");
            return ExitCode::from(2);
        }
    };
    let on_servers = stores.iter().any(|s| !matches!(s, Store::Sqlite));
    let placed: Vec<String> = REGIONS
        .iter()
        .zip(&stores)
        .map(|(id, store)| format!("{id} on {}", backend_name(store)))
        .collect();
    println!("starting 3 regions on loopback: {}…", placed.join(", "));
    let specs = REGIONS
        .iter()
        .zip(stores)
        .map(|(id, store)| RegionSpec {
            store,
            ..RegionSpec::sqlite(id)
        })
        .collect();
    let cluster = tokio::select! {
        started = Cluster::start(specs, Tuning::default(), fastrand::u64(..)) => started,
        // Dropping a half-started cluster kills what it spawned (`kill_on_drop`).
        _ = tokio::signal::ctrl_c() => return interrupted(),
    };
    let cluster = match cluster {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("demo: the regions did not start: {e:#}");
            if on_servers {
                eprintln!("(`make demo ARGS='--backends sqlite'` runs all three on SQLite)");
            }
            return ExitCode::FAILURE;
        }
    };
    let outcome = tokio::select! {
        outcome = run(&cluster) => Some(outcome),
        _ = tokio::signal::ctrl_c() => None,
    };
    if let Some(Err(e)) = &outcome {
        eprintln!(
            "\ndemo failed: {e:#}\n\nthe regions' last log lines:\n{}",
            cluster.logs(10)
        );
    }
    // Whatever happened: stop every region (SIGTERM, then SIGKILL after a grace period).
    let stopped = cluster.shutdown().await;
    if let Err(e) = &stopped {
        eprintln!("demo: stopping the regions: {e:#}");
    }
    match outcome {
        None => interrupted(),
        Some(Ok(())) if stopped.is_ok() => ExitCode::SUCCESS,
        Some(_) => ExitCode::FAILURE,
    }
}

fn interrupted() -> ExitCode {
    eprintln!("\ndemo: interrupted; the regions are stopped");
    ExitCode::from(130)
}

async fn run(cluster: &Cluster) -> Result<()> {
    let client = Client::builder().timeout(Duration::from_secs(5)).build()?;
    let urls: Vec<String> = cluster.regions.iter().map(|r| r.base_url()).collect();
    let progress = Progress::default();
    let mut screen = Screen::new(cluster);

    // The writes go on while the table is redrawn (both in this task: no locks needed).
    let writes = workload(&client, &urls, &progress);
    tokio::pin!(writes);
    let mut tick = tokio::time::interval(TICK);
    let (races, last_write) = loop {
        tokio::select! {
            done = &mut writes => break done?,
            _ = tick.tick() => screen.show(&progress, &cluster.states()?),
        }
    };
    progress.phase.store(3, Relaxed);

    // Converged: every outbox drained and identical rows at every region, seen twice in a
    // row one tick apart (what the harness's `settle` waits for).
    let mut clean_since: Option<Instant> = None;
    let states = loop {
        tick.tick().await;
        let states = cluster.states()?;
        screen.show(&progress, &states);
        match (quiescence_problem(&states), clean_since) {
            (None, Some(_)) => break states,
            (None, None) => clean_since = Some(Instant::now()),
            (Some(_), _) => clean_since = None,
        }
        if last_write.elapsed() > CONVERGE_WITHIN {
            let why = quiescence_problem(&states).unwrap_or_default();
            bail!("gave up: not converged {CONVERGE_WITHIN:?} after the last write: {why}");
        }
    };
    let after = clean_since.unwrap_or_else(Instant::now) - last_write;
    summary(&progress, &races, &states, after)
}

/// Every write the demo makes, through the regions' public API: the races, and when the last
/// write was acknowledged.
async fn workload(client: &Client, urls: &[String], p: &Progress) -> Result<(Vec<Race>, Instant)> {
    // 1. Every region creates its customers and orders, the three regions at the same time.
    let populated = try_join_all((0..REGIONS.len()).map(|r| populate(client, urls, r, p))).await?;
    let (created, orders): (Vec<Vec<String>>, Vec<Vec<String>>) = populated.into_iter().unzip();

    // 2. A region can only change a customer it has: wait until the contested ones (created at
    //    all three regions) have replicated everywhere.
    p.phase.store(1, Relaxed);
    let mut contested = Vec::new();
    for k in 0..UPDATE_RACES + DELETE_RACES {
        let (r, n) = (k % 3, k / 3);
        contested.push((created[r][n].clone(), format!("{} #{n:02}", REGIONS[r])));
    }
    let contested_orders: Vec<(String, String)> = (0..ORDER_RACES)
        .map(|k| {
            (
                orders[k % 3][k / 3].clone(),
                format!("order of {} #{:02}", REGIONS[k % 3], k / 3),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let paths = contested
        .iter()
        .map(|(id, _)| format!("api/v1/customers/{id}"))
        .chain(
            contested_orders
                .iter()
                .map(|(id, _)| format!("api/v1/orders/{id}")),
        );
    for path in paths {
        for base in urls {
            while !exists(client, &format!("{base}/{path}")).await {
                if Instant::now() > deadline {
                    bail!("{path} did not reach {base} within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    // 3. The races, all at the same moment: two or three regions rename the same customer (or
    //    one deletes it while another renames it), none having seen the others' write.
    p.phase.store(2, Relaxed);
    let mut people = PEOPLE.split(", ").cycle();
    let races = contested.into_iter().enumerate().map(|(k, (id, label))| {
        let racers: Vec<(usize, Option<&str>)> = match k {
            k if k >= UPDATE_RACES => vec![(k % 3, None), ((k + 1) % 3, people.next())],
            k if k % 2 == 0 => (0..3).map(|r| (r, people.next())).collect(),
            k => vec![(k % 3, people.next()), ((k + 2) % 3, people.next())],
        };
        race(client, urls, p, (id, label, false), racers)
    });
    // The orders: one region confirms, the next cancels — both allowed from `pending`.
    let order_races = contested_orders
        .into_iter()
        .enumerate()
        .map(|(k, (id, label))| {
            let racers = vec![(k % 3, Some("confirmed")), ((k + 1) % 3, Some("cancelled"))];
            race(client, urls, p, (id, label, true), racers)
        });
    let races = try_join_all(races.chain(order_races).collect::<Vec<_>>()).await?;
    Ok((races, Instant::now()))
}

/// Send every racer's write to customer `id` at once: `(region, Some(name))` renames it there,
/// `(region, None)` deletes it; for an order, `Some(status)` sets its status.
async fn race(
    client: &Client,
    urls: &[String],
    p: &Progress,
    (id, label, order): (String, String, bool),
    racers: Vec<(usize, Option<&'static str>)>,
) -> Result<Race> {
    let path = &match order {
        true => format!("api/v1/orders/{id}"),
        false => format!("api/v1/customers/{id}"),
    };
    let field = if order { "status" } else { "name" };
    let writes = racers.into_iter().map(|(r, name)| async move {
        let url = format!("{}/{path}", urls[r]);
        let (request, counter) = match name {
            Some(name) => (client.patch(url).json(&json!({ field: name })), &p.updates),
            None => (client.delete(url), &p.deletes),
        };
        let version = etag(&send(request).await?)?;
        counter.fetch_add(1, Relaxed);
        anyhow::Ok((REGIONS[r], name, version))
    });
    let writes = try_join_all(writes).await?;
    Ok(Race {
        id,
        label,
        order,
        writes,
    })
}

/// Region `r` creates its customers, an order for each of the first ones, then renames five
/// customers (ordinary updates: nobody else writes those); the customers' and the orders' ids.
async fn populate(
    client: &Client,
    urls: &[String],
    r: usize,
    p: &Progress,
) -> Result<(Vec<String>, Vec<String>)> {
    let (region, base) = (REGIONS[r], &urls[r]);
    let mut ids = Vec::new();
    for n in 0..PER_REGION {
        let name = format!("{region} #{n:02}");
        let email = format!("{region}.{n:02}@example.com");
        let body = json!({"tenant_id": "acme", "name": name, "email": email});
        let res = send(client.post(format!("{base}/api/v1/customers")).json(&body)).await?;
        let customer: Value = res.json().await?;
        let id = customer["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no id: {customer}"))?;
        ids.push(id.to_string());
        p.creates.fetch_add(1, Relaxed);
        tokio::time::sleep(PACE).await;
    }
    // Orders of customers nobody contests (the races below use the first 8 of each region).
    let mut orders = Vec::new();
    for (n, customer) in ids.iter().enumerate().skip(10).take(ORDERS_PER_REGION) {
        let body = json!({
            "tenant_id": "acme", "customer_id": customer, "number": format!("{region}-SO-{n:02}"),
            "currency": "EUR", "lines": [{"sku": "BOOK-1", "quantity": n % 3 + 1, "unit_price_minor": 1250}],
        });
        let res = send(client.post(format!("{base}/api/v1/orders")).json(&body)).await?;
        let order: Value = res.json().await?;
        let id = order["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no id: {order}"))?;
        orders.push(id.to_string());
        p.creates.fetch_add(1, Relaxed);
        tokio::time::sleep(PACE).await;
    }
    for (n, id) in ids.iter().enumerate().skip(PER_REGION - 5) {
        let name = json!({"name": format!("{region} #{n:02} (renamed)")});
        let url = format!("{base}/api/v1/customers/{id}");
        send(client.patch(url).json(&name)).await?;
        p.updates.fetch_add(1, Relaxed);
    }
    Ok((ids, orders))
}

async fn exists(client: &Client, url: &str) -> bool {
    let res = client.get(url).send().await;
    res.is_ok_and(|r| r.status().is_success())
}

/// Send, and fail on anything but a 2xx.
async fn send(request: RequestBuilder) -> Result<Response> {
    Ok(request.send().await?.error_for_status()?)
}

/// `ETag: "<hlc>.<origin>"`: the version the write got.
fn etag(res: &Response) -> Result<(i64, String)> {
    harness::chaos::etag(res).ok_or_else(|| anyhow!("no ETag <hlc>.<origin>"))
}

/// The live table: redrawn in place on a terminal; elsewhere (a pipe, a CI log) printed again
/// only when something in it changed.
struct Screen {
    /// Each region's backend, by region id.
    backends: std::collections::BTreeMap<String, &'static str>,
    tty: bool,
    started: Instant,
    drawn: usize,
    last: String,
}

impl Screen {
    fn new(cluster: &Cluster) -> Self {
        let tty = std::io::stdout().is_terminal();
        let (started, drawn, last) = (Instant::now(), 0, String::new());
        let backends = cluster
            .regions
            .iter()
            .map(|r| (r.spec.id.clone(), backend_name(&r.spec.store)))
            .collect();
        Self {
            backends,
            tty,
            started,
            drawn,
            last,
        }
    }

    fn show(&mut self, p: &Progress, states: &[RegionState]) {
        let (creates, updates) = (p.creates.load(Relaxed), p.updates.load(Relaxed));
        let (phase, deletes) = (p.phase.load(Relaxed), p.deletes.load(Relaxed));
        let mut body = format!(
            "{}\nwrites acknowledged: {creates} creates, {updates} updates, {deletes} deletes\n\n\
             region     backend    customers  tombstones  orders  parked  outbox pending  conflicts  digest\n",
            PHASES[phase.min(PHASES.len() - 1)],
        );
        for s in states {
            let (live, dead) = (s.live(), s.rows.len() - s.live());
            let orders = s.orders.values().filter(|o| !o.deleted()).count();
            let (pending, conflicts, parked) = (s.pending(), s.conflicts, s.parked);
            let digest = s.digest().chars().take(8).collect::<String>();
            let region = &s.region;
            let backend = self.backends.get(region).copied().unwrap_or("?");
            body += &format!(
                "{region:<10} {backend:<10} {live:>9} {dead:>11} {orders:>7} {parked:>7} {pending:>15} {conflicts:>10}  {digest}\n"
            );
        }
        body += &match quiescence_problem(states) {
            None => "converged: yes (outboxes drained, the same rows everywhere)\n".to_string(),
            Some(why) => format!(
                "converged: no ({})\n",
                why.chars().take(64).collect::<String>()
            ),
        };
        let elapsed = self.started.elapsed().as_secs_f64();
        let header = format!("── regionsync demo: 3 regions, t+{elapsed:.1}s ──");
        let mut out = std::io::stdout().lock();
        if self.tty {
            // Back to the top of the last block, clear to the end of the screen, redraw.
            if self.drawn > 0 {
                let _ = write!(out, "\x1b[{}F\x1b[J", self.drawn);
            }
            let _ = write!(out, "{header}\n{body}");
            self.drawn = 1 + body.lines().count();
        } else if body != self.last {
            let _ = write!(out, "\n{header}\n{body}");
            self.last = body;
        }
        let _ = out.flush();
    }
}

fn summary(p: &Progress, races: &[Race], states: &[RegionState], after: Duration) -> Result<()> {
    let end = states.first().ok_or_else(|| anyhow!("no regions"))?;
    let (creates, updates) = (p.creates.load(Relaxed), p.updates.load(Relaxed));
    let deletes = p.deletes.load(Relaxed);
    let racing: usize = races.iter().map(|r| r.writes.len()).sum();
    let contested = races.len();
    let conflicts: i64 = states.iter().map(|s| s.conflicts).sum();
    let (digest, live, after) = (end.digest(), end.live(), after.as_secs_f64());
    let tombstones = end.rows.len() - live;
    let orders = end.orders.len();
    println!(
        "
== summary ==
writes made:        {creates} creates, {updates} updates, {deletes} deletes
racing writes:      {racing}, to {contested} customers and orders, sent to their regions at the
                    same moment ({UPDATE_RACES} rename races, {DELETE_RACES} of a delete against a rename,
                    {ORDER_RACES} of a confirm against a cancel of the same order)
conflicts resolved: {conflicts}: rows of sync_conflicts, summed over the regions. Each is a write
                    from another region that arrived after a newer version of the same row
                    and lost (both versions are kept); a losing write is recorded at every region
                    it reached late, never at its own.
time to converge:   {after:.2} s after the last write was acknowledged
final digest:       {digest}, the same at every region ({live} live customers, tombstones:
                    {tombstones}; {orders} orders, each naming a customer every region has)

who won each race (last-writer-wins: the highest (hlc, origin), at every region):"
    );
    for race in races {
        if race.order {
            let order = end
                .orders
                .get(&race.id)
                .ok_or_else(|| anyhow!("order {} is gone", race.id))?;
            let tried: Vec<String> = race
                .writes
                .iter()
                .map(|(region, status, _)| format!("{region} {}", status.unwrap_or("DELETE")))
                .collect();
            let highest = race.writes.iter().map(|(_, _, version)| version).max();
            let odd = match highest == Some(&order.version()) {
                true => "",
                false => "  (!) not the highest acknowledged version",
            };
            let (label, origin, status) = (&race.label, &order.sync_origin, &order.status);
            println!(
                "  {label}: {}\n           won: {status}, written at {origin}{odd}",
                tried.join(", ")
            );
            continue;
        }
        let row = end
            .rows
            .get(&race.id)
            .ok_or_else(|| anyhow!("{} is gone", race.id))?;
        let tried: Vec<String> = race
            .writes
            .iter()
            .map(|(region, name, _)| match name {
                Some(name) => format!("{region} \"{name}\""),
                None => format!("{region} DELETE"),
            })
            .collect();
        let won = match row.deleted() {
            true => "deleted".to_string(),
            false => format!("\"{}\"", row.name),
        };
        let highest = race.writes.iter().map(|(_, _, version)| version).max();
        let odd = match highest == Some(&row.version()) {
            true => "",
            false => "  (!) not the highest acknowledged version",
        };
        let (label, origin) = (&race.label, &row.sync_origin);
        println!(
            "  {label}: {}\n           won: {won}, written at {origin}{odd}",
            tried.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Result<Options> {
        options(args.iter().map(|a| a.to_string())).map(|o| o.unwrap())
    }

    #[test]
    fn options_default_to_auto_on_the_local_servers() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.backends, Backends::Auto);
        assert_eq!(o.mysql, "mysql://root@127.0.0.1:3306");
        assert_eq!(o.postgres, "postgres://postgres@127.0.0.1:5432");
    }

    #[test]
    fn a_password_never_reaches_a_message() {
        use harness::state::without_password;
        assert_eq!(without_password("mysql://u:secret@h:1"), "mysql://u@h:1");
        assert_eq!(without_password("postgres://p@h:2"), "postgres://p@h:2");
        let e = harness::state::server_answers("mysql://root:hunter2@127.0.0.1:1").unwrap_err();
        assert!(!format!("{e:#}").contains("hunter2"), "{e:#}");
    }

    #[test]
    fn help_is_asked_for() {
        for flag in ["-h", "--help"] {
            assert!(options([flag.to_string()].into_iter()).unwrap().is_none());
        }
    }

    #[test]
    fn options_take_both_spellings_and_refuse_what_they_do_not_know() {
        let o = parse(&[
            "--backends",
            "mixed",
            "--mysql=mysql://u@h:1",
            "--postgres",
            "postgresql://p@h:2",
        ])
        .unwrap();
        assert_eq!(o.backends, Backends::Mixed);
        assert_eq!(
            (o.mysql.as_str(), o.postgres.as_str()),
            ("mysql://u@h:1", "postgresql://p@h:2")
        );
        for (args, says) in [
            (&["--backends", "oracle"][..], "auto, mixed or sqlite"),
            (&["--backends"][..], "needs a value"),
            (&["--mysql", "postgres://x"][..], "not a mysql URL"),
            (&["--postgres", "mysql://x"][..], "not a postgres URL"),
            (&["--fast"][..], "unknown argument --fast"),
        ] {
            let e = parse(args).err().unwrap().to_string();
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }

    #[test]
    fn sqlite_never_asks_a_server_and_mixed_fails_without_one() {
        let o = Options {
            backends: Backends::Sqlite,
            mysql: "mysql://root@127.0.0.1:1".into(),
            postgres: "postgres://postgres@127.0.0.1:1".into(),
        };
        assert!(stores(&o)
            .unwrap()
            .iter()
            .all(|s| matches!(s, Store::Sqlite)));
        let o = Options {
            backends: Backends::Mixed,
            ..o
        };
        assert!(stores(&o)
            .unwrap_err()
            .to_string()
            .contains("needs both servers"));
        let o = Options {
            backends: Backends::Auto,
            ..o
        };
        assert!(stores(&o)
            .unwrap()
            .iter()
            .all(|s| matches!(s, Store::Sqlite)));
    }
}
