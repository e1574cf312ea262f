//! The `regionsync` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ship::db::migrations;

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
    },
    /// Inspect or change the database schema.
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
    /// Inspect the effective configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
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
        Command::Serve { no_migrate } => {
            ship::telemetry::init(&settings.log);
            serve(&settings, no_migrate).await
        }
        Command::Migrate { command } => {
            ship::telemetry::init(&settings.log);
            migrate(&settings, command).await
        }
    }
}

async fn serve(settings: &Settings, no_migrate: bool) -> anyhow::Result<()> {
    let app = Application::build(
        settings,
        StartOptions {
            migrate: !no_migrate,
        },
    )
    .await?;
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

/// Command output goes to stdout; logs go to stderr.
#[allow(clippy::print_stdout)]
fn output(line: &str) {
    println!("{line}");
}
