//! N regions as real `regionsync serve --with-scheduler` processes on loopback. Region 0 is
//! the broker; every region lists every other one as a peer and reaches it through the fault
//! proxy of that directed link (`[broker] peer_urls`); calls to the broker go direct.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::proxy::{Fault, FaultProxy};
use crate::state::{Backend, RegionState};

/// The MariaDB server of `TEST_MYSQL_URL` without its database (`mysql://user@host:port`), for
/// [`Store::Mysql`]: each region gets a fresh database there. Panics when it is not set (the
/// MariaDB suites require it).
pub fn mysql_server_from_env() -> String {
    let url = std::env::var("TEST_MYSQL_URL")
        .unwrap_or_else(|_| panic!("TEST_MYSQL_URL is not set: the MariaDB suites need a server"));
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url,
    }
}

/// The PostgreSQL server of `TEST_PG_URL` without its database (`postgres://user@host:port`),
/// for [`Store::Postgres`]: each region gets a fresh database there. Panics when it is not set
/// (the PostgreSQL suites require it).
pub fn pg_server_from_env() -> String {
    let url = std::env::var("TEST_PG_URL")
        .unwrap_or_else(|_| panic!("TEST_PG_URL is not set: the PostgreSQL suites need a server"));
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url,
    }
}

/// Where a region keeps its data.
#[derive(Debug, Clone)]
pub enum Store {
    /// A SQLite file in the cluster's directory.
    Sqlite,
    /// A fresh MariaDB database on this server (`mysql://user@host:port`, no database).
    Mysql { server: String },
    /// A fresh PostgreSQL database on this server (`postgres://user@host:port`, no database).
    Postgres { server: String },
}

impl Store {
    /// A fresh database on `server`, MariaDB or PostgreSQL by its scheme.
    pub fn on_server(server: &str) -> Store {
        match crate::state::server_backend(server) {
            Backend::Postgres => Store::Postgres {
                server: server.to_string(),
            },
            _ => Store::Mysql {
                server: server.to_string(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegionSpec {
    pub id: String,
    pub store: Store,
    /// `CHAOS_CLOCK_SKEW_MS` of the process.
    pub skew_ms: i64,
    /// Lists the other regions in `[[sync.peers]]`: pushes its writes to them. When false it
    /// has no outbox, and the others get its changes only by pulling its feed.
    pub push: bool,
}

impl RegionSpec {
    pub fn sqlite(id: &str) -> Self {
        Self {
            id: id.into(),
            store: Store::Sqlite,
            skew_ms: 0,
            push: true,
        }
    }
}

/// Timing of the regions' jobs: short, so that a test converges in seconds.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub pull_interval_secs: u64,
    pub retry_base_ms: u64,
    pub retry_max_secs: u64,
    pub peer_timeout_secs: u64,
    pub max_clock_drift_ms: u64,
    /// Changes per page a puller asks for.
    pub pull_page_limit: u32,
    /// `sync.bootstrap` of every region (`auto`, the default, or `manual`).
    pub bootstrap: String,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            pull_interval_secs: 1,
            retry_base_ms: 100,
            retry_max_secs: 1,
            peer_timeout_secs: 2,
            max_clock_drift_ms: 5_000,
            pull_page_limit: 500,
            bootstrap: "auto".into(),
        }
    }
}

pub struct Region {
    pub spec: RegionSpec,
    pub port: u16,
    pub config: PathBuf,
    pub db_url: String,
    log: PathBuf,
    child: Option<tokio::process::Child>,
    starts: usize,
    /// Its credential at the broker (`None` for the broker itself, region 0).
    credential: Option<String>,
}

impl Region {
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn backend(&self) -> Backend {
        match self.spec.store {
            Store::Sqlite => Backend::Sqlite,
            Store::Mysql { .. } => Backend::Mysql,
            Store::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Its data and sync state, read from its database.
    ///
    /// The read is blocking (diesel, a SQLite busy wait): it runs in `block_in_place`, so the
    /// fault proxies on this runtime's other tasks keep forwarding meanwhile (a multi-thread
    /// runtime is required, as every harness test and the demo use).
    pub fn state(&self) -> Result<RegionState> {
        tokio::task::block_in_place(|| {
            RegionState::read(&self.spec.id, self.backend(), &self.db_url)
        })
    }

    /// How many lines of the region's log (every start) contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The last `lines` lines of the region's log (every start appends to it).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

pub struct Cluster {
    /// Kept for the cluster's life: configs, SQLite files, logs.
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub regions: Vec<Region>,
    /// `(from, to)` → the proxy `from` reaches `to` through.
    pub links: BTreeMap<(usize, usize), FaultProxy>,
    mysql_databases: Vec<(String, String)>,
    started: Instant,
    tuning: Tuning,
    seed: u64,
}

/// The `regionsync` binary: `HARNESS_BIN`, else next to the running executable (or one
/// directory up, for test executables in `target/<profile>/deps`).
pub fn regionsync_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("HARNESS_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for candidate in [dir.join("regionsync"), dir.join("../regionsync")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "no regionsync binary next to {}: run `cargo build --bin regionsync` (or set HARNESS_BIN)",
        exe.display()
    )
}

/// A `regionsync` command that reads only the configuration the harness wrote: every
/// `REGIONSYNC_*` variable of the harness's own environment is removed (the binary reads them
/// as configuration).
fn regionsync(bin: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bin);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGIONSYNC_") {
            command.env_remove(key);
        }
    }
    command
}

/// Ports handed to regions by this process, never handed out twice.
static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A port for a region: free now, below the kernel's ephemeral range so no
/// `bind(0)` elsewhere (proxies, clients, other clusters) can take it while the region is
/// down between a SIGKILL and its restart, and never given to two regions of this process.
/// Regression: seed 3 of a 200-seed run restarted a region into "address in use" — a
/// concurrent cluster's proxy had been given its port — and the proxies then fed another
/// cluster's region.
fn free_port() -> Result<u16> {
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    // Below the kernel's ephemeral range (32768 by default; some images lower it).
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let high = ephemeral_low.min(32_000);
    if high <= 10_000 {
        bail!("the ephemeral port range starts at {ephemeral_low}: no room for region ports");
    }
    for _ in 0..1000 {
        let port = fastrand::u16(10_000..high);
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return Ok(port);
        }
    }
    bail!("no free port below {high}")
}

impl Cluster {
    /// Configure the regions, register them at the broker (region 0), start a proxy on every
    /// directed link (all in `Pass`) and every region, and wait until each one is ready.
    pub async fn start(specs: Vec<RegionSpec>, tuning: Tuning, seed: u64) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("regionsync-cluster-")
            .tempdir()?;
        let bin = regionsync_bin()?;
        let mut cluster = Cluster {
            dir,
            bin,
            regions: Vec::new(),
            links: BTreeMap::new(),
            mysql_databases: Vec::new(),
            started: Instant::now(),
            tuning,
            seed,
        };
        for spec in specs {
            cluster.place(spec).await?;
        }
        cluster.configure().await?;
        for i in 0..cluster.regions.len() {
            cluster.spawn(i)?;
        }
        for i in 0..cluster.regions.len() {
            cluster.wait_ready(i, Duration::from_secs(60)).await?;
        }
        Ok(cluster)
    }

    /// Give a new region its port, database and proxies on the links between it and every
    /// region placed before it (nothing is configured or started).
    async fn place(&mut self, spec: RegionSpec) -> Result<usize> {
        let i = self.regions.len();
        let port = free_port()?;
        let db_url = match &spec.store {
            Store::Sqlite => format!(
                "sqlite://{}",
                self.dir.path().join(format!("{}.db", spec.id)).display()
            ),
            Store::Mysql { server } | Store::Postgres { server } => {
                let name = format!(
                    "rs_chaos_{}_{:08x}",
                    spec.id.replace('-', "_"),
                    fastrand::u32(..)
                );
                crate::state::create_database(server, &name)?;
                self.mysql_databases.push((server.clone(), name.clone()));
                format!("{}/{name}", server.trim_end_matches('/'))
            }
        };
        self.regions.push(Region {
            port,
            config: self.dir.path().join(format!("{}.toml", spec.id)),
            db_url,
            log: self.dir.path().join(format!("{}.log", spec.id)),
            child: None,
            starts: 0,
            credential: None,
            spec,
        });
        for other in 0..i {
            for (from, to) in [(other, i), (i, other)] {
                let upstream: SocketAddr = ([127, 0, 0, 1], self.regions[to].port).into();
                let name = format!(
                    "{}->{}",
                    self.regions[from].spec.id, self.regions[to].spec.id
                );
                let proxy =
                    FaultProxy::start(name, upstream, self.seed ^ ((from * 31 + to) as u64))
                        .await?;
                self.links.insert((from, to), proxy);
            }
        }
        Ok(i)
    }

    /// Add a region to a running cluster, as an operator does: register it at the broker,
    /// give it a configuration listing every region as a peer, and rewrite every other
    /// region's configuration to list it. Nothing is started or restarted: the running regions
    /// read their new configuration when restarted ([`Cluster::stop`], [`Cluster::restart`]);
    /// the new one starts with [`Cluster::restart`]. Its index.
    pub async fn add_region(&mut self, spec: RegionSpec) -> Result<usize> {
        if self.regions.iter().any(|r| r.spec.id == spec.id) {
            bail!("region {} is already in the cluster", spec.id);
        }
        let i = self.place(spec).await?;
        self.log_event(&format!("add region {}", self.regions[i].spec.id));
        self.register(i).await?;
        for j in 0..self.regions.len() {
            self.write_config(j)?;
        }
        Ok(i)
    }

    /// The directory of the cluster's configs, SQLite files and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Run `regionsync --config <region i's config> <args>` to its end (an operator's command
    /// next to the running process): its output, failed or not.
    pub async fn cli(&self, i: usize, args: &[&str]) -> Result<std::process::Output> {
        self.log_event(&format!(
            "at {}: regionsync {}",
            self.regions[i].spec.id,
            args.join(" ")
        ));
        Ok(regionsync(&self.bin)
            .arg("--config")
            .arg(&self.regions[i].config)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await?)
    }

    fn config_text(&self, i: usize) -> String {
        let tuning = &self.tuning;
        let region = &self.regions[i];
        let credential = if i == 0 {
            None
        } else {
            region.credential.as_deref()
        };
        let broker = &self.regions[0];
        let peers: String = self
            .regions
            .iter()
            .filter(|r| region.spec.push && r.spec.id != region.spec.id)
            .map(|r| format!("[[sync.peers]]\nid = \"{}\"\n", r.spec.id))
            .collect();
        let peer_urls: String = self
            .links
            .iter()
            .filter(|((from, _), _)| *from == i)
            .map(|((_, to), proxy)| {
                format!(
                    "\"{}\" = \"http://{}\"\n",
                    self.regions[*to].spec.id,
                    proxy.addr()
                )
            })
            .collect();
        let broker_role = match credential {
            None => format!(
                "enabled = true\npublic_url = \"{}\"\nsigning_key_file = \"{}\"\n",
                region.base_url(),
                self.dir.path().join("broker-signing-key.pem").display()
            ),
            Some(credential) => format!(
                "enabled = false\nurl = \"{}\"\ncredential = \"{credential}\"\npublic_url = \"{}\"\n",
                broker.base_url(),
                region.base_url()
            ),
        };
        format!(
            "region_id = \"{id}\"\n\
             [http]\nbind = \"127.0.0.1:{port}\"\n\
             [database]\nurl = \"{db}\"\n\
             [broker]\n{broker_role}heartbeat_interval_secs = 2\nrequest_timeout_secs = 2\n\
             [broker.peer_urls]\n{peer_urls}\
             [sync]\n\
             pull_interval_secs = {pull}\n\
             retry_base_ms = {base}\n\
             retry_max_secs = {max}\n\
             peer_timeout_secs = {timeout}\n\
             max_clock_drift_ms = {drift}\n\
             pull_page_limit = {page}\n\
             max_attempts = 100000\n\
             dispatch_lease_secs = 3\n\
             bootstrap = \"{bootstrap}\"\n\
             {peers}",
            id = region.spec.id,
            port = region.port,
            db = region.db_url,
            pull = tuning.pull_interval_secs,
            base = tuning.retry_base_ms,
            max = tuning.retry_max_secs,
            timeout = tuning.peer_timeout_secs,
            drift = tuning.max_clock_drift_ms,
            page = tuning.pull_page_limit,
            bootstrap = tuning.bootstrap,
        )
    }

    /// Write region 0's config, register the others at it (their credentials), write theirs.
    async fn configure(&mut self) -> Result<()> {
        self.write_config(0)?;
        for i in 1..self.regions.len() {
            self.register(i).await?;
            self.write_config(i)?;
        }
        Ok(())
    }

    /// Register region `i` at the broker (region 0) and keep its credential.
    async fn register(&mut self, i: usize) -> Result<()> {
        let out = regionsync(&self.bin)
            .arg("--config")
            .arg(&self.regions[0].config)
            .args([
                "broker",
                "regions",
                "add",
                &self.regions[i].spec.id,
                &self.regions[i].base_url(),
            ])
            .env("RUST_LOG", "warn")
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let credential = stdout
            .split_whitespace()
            .find(|w| w.starts_with("rsc_"))
            .ok_or_else(|| {
                anyhow!(
                    "`broker regions add` printed no credential: {stdout} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?
            .to_string();
        self.regions[i].credential = Some(credential);
        Ok(())
    }

    /// (Re)write region `i`'s configuration file from the cluster as it is now.
    fn write_config(&self, i: usize) -> Result<()> {
        std::fs::write(&self.regions[i].config, self.config_text(i))?;
        Ok(())
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let region = &mut self.regions[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&region.log)?;
        let child = regionsync(&self.bin)
            .arg("--config")
            .arg(&region.config)
            .args(["serve", "--with-scheduler"])
            .env(
                "RUST_LOG",
                std::env::var("HARNESS_REGION_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("CHAOS_CLOCK_SKEW_MS", region.spec.skew_ms.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        region.child = Some(child);
        region.starts += 1;
        Ok(())
    }

    /// Wait until `GET /health/live` answers 200 while our child process is alive (the port
    /// could otherwise be answered by another process).
    pub async fn wait_ready(&mut self, i: usize, within: Duration) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + within;
        let url = format!("{}/health/live", self.regions[i].base_url());
        loop {
            if let Ok(res) = client.get(&url).send().await {
                let alive = match self.regions[i].child.as_mut() {
                    Some(child) => child.try_wait()?.is_none(),
                    None => false,
                };
                // Answered, and by our process (not one that took the port meanwhile).
                if res.status().is_success() && alive {
                    return Ok(());
                }
            }
            if let Some(child) = self.regions[i].child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "region {} exited ({status}) while starting:\n{}",
                        self.regions[i].spec.id,
                        self.regions[i].log_tail(30)
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "region {} not ready within {within:?}:\n{}",
                    self.regions[i].spec.id,
                    self.regions[i].log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL region `i` (no shutdown of any kind) and wait for it to be gone.
    pub async fn kill(&mut self, i: usize) -> Result<()> {
        self.log_event(&format!("SIGKILL {}", self.regions[i].spec.id));
        if let Some(mut child) = self.regions[i].child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Start region `i` again on the same database and port.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.log_event(&format!("restart {}", self.regions[i].spec.id));
        self.spawn(i)?;
        self.wait_ready(i, Duration::from_secs(60)).await
    }

    /// Graceful stop (SIGTERM through `kill -TERM`), then SIGKILL after `grace`.
    pub async fn stop(&mut self, i: usize, grace: Duration) -> Result<()> {
        if let Some(mut child) = self.regions[i].child.take() {
            if let Some(pid) = child.id() {
                let _ = tokio::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                child.kill().await?;
            }
        }
        Ok(())
    }

    pub fn set_fault(&self, from: usize, to: usize, fault: Fault) {
        if let Some(proxy) = self.links.get(&(from, to)) {
            proxy.set(fault);
        }
    }

    /// Every link back to `Pass`.
    pub fn heal(&self) {
        for proxy in self.links.values() {
            if proxy.fault() != Fault::Pass {
                proxy.set(Fault::Pass);
            }
        }
    }

    /// Restart every region that is down.
    pub async fn ensure_running(&mut self) -> Result<()> {
        for i in 0..self.regions.len() {
            if !self.regions[i].is_running() {
                self.restart(i).await?;
            }
        }
        Ok(())
    }

    pub fn log_event(&self, what: &str) {
        eprintln!("[cluster] +{}ms {what}", self.started.elapsed().as_millis());
    }

    /// Every region's data and sync state, read from its database.
    pub fn states(&self) -> Result<Vec<RegionState>> {
        self.regions.iter().map(Region::state).collect()
    }

    /// The last lines of every region's log, for a failure report.
    pub fn logs(&self, lines: usize) -> String {
        self.regions
            .iter()
            .map(|r| {
                format!(
                    "--- {} (started {}x) ---\n{}",
                    r.spec.id,
                    r.starts,
                    r.log_tail(lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stop every region (gracefully, bounded) and drop the MariaDB databases.
    pub async fn shutdown(mut self) -> Result<()> {
        // Everything is stopped and dropped even when one step fails; the first error is
        // returned.
        let mut first_error = None;
        for i in 0..self.regions.len() {
            if let Err(e) = self.stop(i, Duration::from_secs(10)).await {
                first_error.get_or_insert(e);
            }
        }
        for proxy in self.links.values() {
            proxy.stop();
        }
        for (server, name) in std::mem::take(&mut self.mysql_databases) {
            if let Err(e) = crate::state::drop_database(&server, &name) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A cluster dropped without [`Cluster::shutdown`] — a failed start, a panic, a demo
/// interrupted while starting — still leaves no database behind on the servers: its processes
/// are killed (as `kill_on_drop` would, but first, so that nothing holds the databases), then
/// the databases dropped, best effort.
impl Drop for Cluster {
    fn drop(&mut self) {
        if self.mysql_databases.is_empty() {
            return;
        }
        for region in &mut self.regions {
            if let Some(child) = region.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        for (server, name) in std::mem::take(&mut self.mysql_databases) {
            if let Err(e) = crate::state::drop_database(&server, &name) {
                eprintln!("harness: database {name} could not be dropped: {e:#}");
            }
        }
    }
}
