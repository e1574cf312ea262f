//! The `regionsync` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ship::db::migrations;
use ship::parents::Action;
use sync::actions::PullChangesInput;

use crate::settings::Settings;
use crate::startup::{self, Application, StartOptions};

#[derive(Debug, Parser)]
#[command(
    name = "regionsync",
    version,
    about = "Keeps independently deployed regions of one application consistent."
)]
pub struct Cli {
    /// Configuration file (TOML). Also read from REGIONSYNC_CONFIG.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web process (migrates the database first unless --no-migrate).
    Serve {
        /// Do not apply pending migrations at start (readiness reports them).
        #[arg(long)]
        no_migrate: bool,
        /// Run the scheduler (the console kernel's jobs) in this process too; production runs
        /// `regionsync schedule work` as its own process instead.
        #[arg(long)]
        with_scheduler: bool,
    },
    /// The scheduler: the console kernel's jobs (push, pull, heartbeat, …).
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// Inspect or change the database schema.
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
    /// Replicate by hand (the scheduler will do this continuously).
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Inspect the effective configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The anomaly alerts this region raised.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Inspect and repair the outbox (what this region still has to deliver).
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// The conflict ledger: remote writes that lost by last-writer-wins here, both versions kept.
    Conflicts {
        #[command(subcommand)]
        command: ConflictsCommand,
    },
    /// Administer the broker (on the region that runs the broker role).
    Broker {
        #[command(subcommand)]
        command: BrokerCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BrokerCommand {
    /// The regions registry.
    Regions {
        #[command(subcommand)]
        command: RegionsCommand,
    },
    /// Tenant placement.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Print the public keys the broker serves (current first, then retired ones still
    /// accepted), one JWK per line — what `broker.accepted_keys` / `auth.trusted_keys` take.
    Keys {
        /// Print the public JWK of the private key in this PEM file instead (key rotation:
        /// publish the next key before signing with it).
        #[arg(long, value_name = "PEM")]
        key_file: Option<PathBuf>,
    },
    /// Print a token for calling region TARGET (debugging: `curl -H "Authorization: Bearer …"`).
    Token {
        target: String,
        /// The calling region (`sub`); default: this region.
        #[arg(long = "as", value_name = "REGION")]
        as_region: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegionsCommand {
    /// Register a region and print its credential (shown once; only its hash is kept).
    Add {
        id: String,
        /// Where the region is reached, e.g. http://10.0.0.2:8080
        base_url: String,
        /// Resources it may sync (comma-separated); default: every resource.
        #[arg(long, value_delimiter = ',')]
        scope: Option<Vec<String>>,
        /// Accept a link-local or cloud metadata address (169.254.0.0/16, fe80::/10,
        /// metadata.google.internal, …), refused by default. Loopback and private networks
        /// (10/8, 172.16/12, 192.168/16) need no flag; user:password@ and control characters
        /// are refused always.
        #[arg(long)]
        allow_private: bool,
    },
    /// List the regions with their status (online/offline by heartbeat).
    List,
    /// Remove a region: its credential stops working at once.
    Remove { id: String },
    /// Give a region a new credential (printed once); the old one stops working at once.
    RotateCredential { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Make REGION the home of TENANT (a move increments the placement epoch).
    Place { tenant: String, region: String },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Run jobs as they come due, forever; SIGTERM lets the running jobs finish, then exits.
    Work,
    /// Run what is due now, once, and exit (for an external cron); exit 1 if a run failed.
    Run,
    /// The jobs, their schedules, last run and next due time.
    List,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply every pending migration.
    Run,
    /// List migrations and whether each is applied.
    Status,
    /// Revert the newest applied migration (or all of them with --all).
    Revert {
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Pull the configured peers' changes (leaving out our own) and apply them here; each
    /// page is applied and its cursor stored in one transaction.
    Pull {
        /// Only this peer (default: every `[[sync.peers]]` entry, or every region the broker
        /// lists when none is configured).
        #[arg(long)]
        peer: Option<String>,
        /// Only this resource (default: every synced resource).
        #[arg(long)]
        resource: Option<String>,
        /// Entries per page asked of the peer.
        #[arg(long, default_value_t = 500)]
        page_limit: u32,
    },
    /// Load PEER's snapshot of each resource (its rows, tombstones included) through the same
    /// last-writer-wins apply as ops, then pull its feed from the snapshot's watermark: a region
    /// that joins with data that exists, or that got `410 cursor_expired`. Resumable: run it
    /// again after an interruption and it continues from its last applied page.
    Bootstrap {
        #[arg(long)]
        peer: String,
        /// Only this resource (default: every synced resource).
        #[arg(long)]
        resource: Option<String>,
        /// Rows per page asked of the peer.
        #[arg(long, default_value_t = 500)]
        page_limit: u32,
    },
    /// Compare this region's rows with PEER's (hashes over ranges of ids, descending only into
    /// the ranges that differ) and list every row that differs, with both versions; exit 1 if
    /// any does.
    Verify {
        #[arg(long)]
        peer: String,
        /// Only this resource (default: every synced resource).
        #[arg(long)]
        resource: Option<String>,
    },
    /// Verify against PEER, then make both sides agree on each differing row, in one run: PEER's
    /// newer versions are applied here by last-writer-wins; this region's own newer rows are
    /// sent to PEER (its ops route); a newer row here of a third region's write, and a row with
    /// the same version but other content (the content of the side `--prefer` names), are
    /// re-asserted as a new write of this region and sent to PEER. Then verify is clean at both.
    Repair {
        #[arg(long)]
        peer: String,
        #[arg(long)]
        resource: Option<String>,
        /// Whose content wins where both hold the same version (an edit behind the service).
        #[arg(long, value_enum, default_value_t = PreferArg::Peer)]
        prefer: PreferArg,
    },
    /// Entries of peers' feeds that cannot apply here as they are, parked so the pulls go on.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// Remote ops kept until a row they name arrives (an order before its customer, ADR 0015).
    Parked {
        #[command(subcommand)]
        command: ParkedCommand,
    },
    /// Per peer and resource: pending and dead entries, last push and pull, push lag; and the
    /// parked ops per resource.
    Status,
    /// Sync now, by hand: push the outbox and pull the peers' feeds, with progress bars and a
    /// summary (both unless --push or --pull).
    Run {
        /// Only this peer.
        #[arg(long)]
        peer: Option<String>,
        /// Only this resource (push and pull).
        #[arg(long)]
        resource: Option<String>,
        #[arg(long, conflicts_with = "pull")]
        push: bool,
        #[arg(long)]
        pull: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PreferArg {
    Peer,
    Local,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// The parked entries: id, peer, resource, seq, entity and why.
    List,
    /// Validate parked entries again (after the cause is fixed) and apply those that pass, by
    /// last-writer-wins; the others stay with their new reason.
    Retry {
        /// One entry.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every parked entry.
        #[arg(long)]
        all: bool,
    },
    /// Forget a parked entry for good (its change is not applied here).
    Discard { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum ParkedCommand {
    /// The parked ops per resource, and the oldest ones: entity, version, what each waits for.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Apply now the parked ops whose row has arrived (the scheduler's `sync.release_parked`
    /// does it every pull interval).
    Release,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// The alert history, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Pending entries (or dead ones with --dead), oldest first.
    List {
        #[arg(long)]
        dead: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Send dead entries again: one by id, or every one with --all-dead.
    Retry {
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<i64>,
        #[arg(long)]
        all_dead: bool,
    },
    /// Entries per peer, resource and status.
    Stats,
    /// Give up on undelivered entries: one by id, or every one owed to --peer (a region that
    /// is gone for good; its entries would otherwise hold back changelog pruning). With
    /// --peer, also forget the peer's feed acknowledgments (what it read of our feed), which
    /// hold back pruning the same way.
    Discard {
        #[arg(required_unless_present = "peer", conflicts_with = "peer")]
        id: Option<i64>,
        #[arg(long)]
        peer: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConflictsCommand {
    /// The recorded conflicts, newest first: id, when, resource/entity, the rule that decided,
    /// the winner's and the loser's origin.
    List {
        /// Only this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Only this entity (its id).
        #[arg(long = "entity", value_name = "ID")]
        entity: Option<String>,
        /// Only those detected at or after this time (RFC 3339, e.g. 2026-12-06T00:00:00Z).
        #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many.
        #[arg(
            long,
            default_value_t = 50,
            value_parser = clap::value_parser!(i64).range(1..=CONFLICTS_LISTED_MAX)
        )]
        limit: i64,
    },
    /// One conflict: both versions, their clocks and origins, the rule that decided, when, and
    /// both payloads; exit 1 when no conflict has the id.
    Show { id: i64 },
    /// Write the chosen version again as a new local write of this region (a fresh version:
    /// it replicates everywhere by the normal path), with an audit line; once per conflict.
    Resolve {
        id: i64,
        /// The version to keep: the one that won, or the one that lost.
        #[arg(long, value_enum)]
        take: TakeArg,
        /// Why (the audit line keeps it).
        #[arg(long)]
        why: String,
        /// Who resolves it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Replay the recorded conflicts of a resource under another policy and list those whose
    /// outcome it would turn around (the version that lost would win); changes nothing. Try
    /// it in every region before changing `sync.conflict_policy` (each region records the
    /// conflicts that arrive there).
    WhatIf {
        #[arg(long)]
        resource: String,
        #[arg(long, value_enum)]
        policy: PolicyArg,
        /// At most this many listed (all are counted).
        #[arg(
            long,
            default_value_t = 50,
            value_parser = clap::value_parser!(i64).range(1..=CONFLICTS_LISTED_MAX)
        )]
        limit: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TakeArg {
    Winner,
    Loser,
}

/// A conflict policy on the command line (`lww`, `delete-wins` or `delete_wins`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyArg {
    Lww,
    #[value(alias = "delete_wins")]
    DeleteWins,
}

impl From<PolicyArg> for ship::contracts::ConflictPolicy {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Lww => ship::contracts::ConflictPolicy::Lww,
            PolicyArg::DeleteWins => ship::contracts::ConflictPolicy::DeleteWins,
        }
    }
}

/// The largest `conflicts list --limit`.
const CONFLICTS_LISTED_MAX: i64 = sync::actions::conflicts::MAX_CONFLICTS_LISTED as i64;

/// An RFC 3339 time (`--since`), as UTC.
fn parse_rfc3339(value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-12-06T00:00:00Z ({e})"))
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings (defaults → file → environment) as TOML, secrets redacted.
    Show,
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Config {
            command: ConfigCommand::Show,
        } => {
            output(
                &settings
                    .to_redacted_toml()
                    .context("cannot print the settings")?,
            );
            Ok(())
        }
        Command::Serve {
            no_migrate,
            with_scheduler,
        } => {
            ship::telemetry::init(&settings.log);
            serve(&settings, no_migrate, with_scheduler).await
        }
        Command::Schedule { command } => {
            ship::telemetry::init(&settings.log);
            schedule(&settings, command).await
        }
        Command::Migrate { command } => {
            ship::telemetry::init(&settings.log);
            migrate(&settings, command).await
        }
        Command::Sync {
            command:
                SyncCommand::Run {
                    peer,
                    resource,
                    push,
                    pull,
                },
        } => {
            ship::telemetry::init(&settings.log);
            crate::sync_run::run(&settings, peer, resource, !pull || push, !push || pull).await
        }
        Command::Sync {
            command: SyncCommand::Status,
        } => {
            ship::telemetry::init(&settings.log);
            crate::outbox_cli::status(&settings).await
        }
        Command::Alerts {
            command: AlertsCommand::List { limit },
        } => {
            ship::telemetry::init(&settings.log);
            crate::outbox_cli::alerts(&settings, limit).await
        }
        Command::Outbox { command } => {
            ship::telemetry::init(&settings.log);
            crate::outbox_cli::run(&settings, command).await
        }
        Command::Sync {
            command:
                SyncCommand::Repair {
                    peer,
                    resource,
                    prefer,
                },
        } => {
            ship::telemetry::init(&settings.log);
            crate::sync_run::repair(&settings, &peer, resource, prefer).await
        }
        Command::Sync {
            command: SyncCommand::Verify { peer, resource },
        } => {
            ship::telemetry::init(&settings.log);
            crate::sync_run::verify(&settings, &peer, resource).await
        }
        Command::Sync {
            command: SyncCommand::Parked { command },
        } => {
            ship::telemetry::init(&settings.log);
            crate::sync_run::parked(&settings, command).await
        }
        Command::Sync {
            command: SyncCommand::Quarantine { command },
        } => {
            ship::telemetry::init(&settings.log);
            crate::sync_run::quarantine(&settings, command).await
        }
        Command::Sync {
            command:
                SyncCommand::Bootstrap {
                    peer,
                    resource,
                    page_limit,
                },
        } => {
            ship::telemetry::init(&settings.log);
            crate::sync_run::bootstrap(&settings, &peer, resource, page_limit).await
        }
        Command::Sync {
            command:
                SyncCommand::Pull {
                    peer,
                    resource,
                    page_limit,
                },
        } => {
            ship::telemetry::init(&settings.log);
            pull(&settings, peer, resource, page_limit).await
        }
        Command::Conflicts { command } => {
            ship::telemetry::init(&settings.log);
            crate::conflicts_cli::run(&settings, command).await
        }
        Command::Broker { command } => {
            ship::telemetry::init(&settings.log);
            crate::broker_cli::run(&settings, command).await
        }
    }
}

async fn serve(settings: &Settings, no_migrate: bool, with_scheduler: bool) -> anyhow::Result<()> {
    let mut app = Application::build(
        settings,
        StartOptions {
            migrate: !no_migrate,
        },
    )
    .await?;
    if with_scheduler {
        let kernel =
            crate::console_kernel::kernel(settings, app.pool(), app.wiring(), app.public_url())?;
        app = app.with_scheduler(kernel);
    }
    let host = settings
        .http
        .bind
        .rsplit_once(':')
        .map_or("127.0.0.1", |(host, _)| host);
    tracing::info!(
        region = %settings.region_id,
        database = %settings.database.url,
        "listening on http://{host}:{}",
        app.port()
    );
    app.run_until(startup::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn schedule(settings: &Settings, command: ScheduleCommand) -> anyhow::Result<()> {
    let (pool, wiring) = startup::prepare(settings, StartOptions { migrate: false }).await?;
    let port = settings
        .http
        .bind
        .parse::<std::net::SocketAddr>()
        .map(|a| a.port())
        .unwrap_or_default();
    let url = crate::wiring::PublicUrl::of(settings, port);
    let kernel = crate::console_kernel::kernel(settings, &pool, &wiring, &url)?;
    match command {
        ScheduleCommand::Work => kernel.work(startup::shutdown_signal()).await?,
        ScheduleCommand::Run => {
            let outcomes = kernel.run_due().await?;
            if outcomes.is_empty() {
                output("nothing is due");
            }
            let mut failed = 0;
            for (job, outcome) in outcomes {
                output(&format!("{job}: {}", outcome.as_str()));
                if matches!(
                    outcome,
                    ship::scheduler::Outcome::Failed | ship::scheduler::Outcome::TimedOut
                ) {
                    failed += 1;
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} job run(s) failed (the log says why)");
            }
        }
        ScheduleCommand::List => {
            output(&format!(
                "{:<20} {:<44} {:<10} {:<22} NEXT DUE",
                "JOB", "SCHEDULE", "LAST", "LAST STARTED"
            ));
            let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "-".into())
            };
            for job in kernel.list().await? {
                output(&format!(
                    "{:<20} {:<44} {:<10} {:<22} {}",
                    job.name,
                    job.schedule,
                    job.last_outcome.as_deref().unwrap_or("never"),
                    fmt(job.last_started_at),
                    fmt(job.next_due_at)
                ));
            }
        }
    }
    Ok(())
}

async fn migrate(settings: &Settings, command: MigrateCommand) -> anyhow::Result<()> {
    let pool = startup::connect(settings).await?;
    let database = settings.database.url.to_string();
    match command {
        MigrateCommand::Run => {
            let applied = pool.run(migrations::run_pending).await?;
            if applied.is_empty() {
                output(&format!("{database}: up to date, nothing to apply"));
            }
            for name in applied {
                output(&format!("applied  {name}"));
            }
        }
        MigrateCommand::Status => {
            let all = pool.run(migrations::status).await?;
            output(&database);
            for m in all {
                output(&format!(
                    "{}  {}",
                    if m.applied { "applied" } else { "pending" },
                    m.name
                ));
            }
        }
        MigrateCommand::Revert { all } => {
            let reverted = pool
                .run(move |conn| {
                    if all {
                        migrations::revert_all(conn)
                    } else {
                        migrations::revert_last(conn).map(|one| one.into_iter().collect())
                    }
                })
                .await?;
            if reverted.is_empty() {
                output(&format!("{database}: no migration is applied"));
            }
            for name in reverted {
                output(&format!("reverted {name}"));
            }
        }
    }
    Ok(())
}

async fn pull(
    settings: &Settings,
    peer: Option<String>,
    resource: Option<String>,
    page_limit: u32,
) -> anyhow::Result<()> {
    let (pool, wiring) = startup::prepare(settings, StartOptions { migrate: false }).await?;
    let names = resource_names(&wiring, resource)?;
    let peers = wiring
        .peers_to_pull(settings, peer)
        .await
        .context("cannot list the peers")?;
    if peers.is_empty() {
        anyhow::bail!(
            "no peer to pull from: register regions at the broker (`regionsync broker regions add`) \
             or list them in [[sync.peers]]"
        );
    }
    let action = wiring.pull_action(&pool, settings)?;
    let mut failed = 0;
    for p in &peers {
        for name in &names {
            let input = PullChangesInput {
                peer: p.clone(),
                resource: name.clone(),
                page_limit,
                max_pages: u32::MAX,
                run_for: None,
            };
            match action.run(input).await {
                Ok(s) => output(&format!(
                    "pulled {p}/{name}: {} page(s), {} applied, {} stale, {} duplicate, {} parked{}",
                    s.pages,
                    s.applied,
                    s.stale,
                    s.duplicate,
                    s.parked,
                    if s.caught_up { ", caught up" } else { "" }
                )),
                Err(e) => {
                    failed += 1;
                    eprintln!("regionsync: pull {p}/{name} failed: {e}");
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} pull(s) failed");
    }
    Ok(())
}

/// The synced resources a command covers: `only` that one (refused when unknown), else all.
pub(crate) fn resource_names(
    wiring: &crate::wiring::Wiring,
    only: Option<String>,
) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = wiring
        .registry
        .names()
        .filter(|n| only.as_deref().is_none_or(|o| o == *n))
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        anyhow::bail!("unknown resource `{}`", only.unwrap_or_default());
    }
    Ok(names)
}

/// Command output goes to stdout; logs go to stderr.
#[allow(clippy::print_stdout)]
pub(crate) fn output(line: &str) {
    println!("{line}");
}
