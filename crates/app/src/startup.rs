//! Building and running the web process.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use ship::db::{self, migrations, DbPool};
use ship::ShipError;

use crate::settings::Settings;
use crate::wiring::{PublicUrl, Wiring};

/// What `serve` does before it listens.
#[derive(Debug, Clone, Copy)]
pub struct StartOptions {
    /// Apply pending migrations first (the default); `--no-migrate` turns it off.
    pub migrate: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self { migrate: true }
    }
}

/// A built, not yet running web process.
pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
    wiring: Wiring,
    public_url: PublicUrl,
    key_refresh_every: std::time::Duration,
    scheduler: Option<ship::scheduler::Kernel>,
}

impl Application {
    /// [`prepare`] the region, then bind the listener and build the server.
    pub async fn build(settings: &Settings, options: StartOptions) -> Result<Self, ShipError> {
        let (pool, wiring) = prepare(settings, options).await?;
        let listener = TcpListener::bind(&settings.http.bind)?;
        let port = listener.local_addr()?.port();
        let server = ship::http::server(
            listener,
            pool.clone(),
            &settings.http,
            wiring.routes(&pool, settings)?,
        )?;
        let public_url = PublicUrl::of(settings, port);
        // Before serving: the broker region registers itself; another region announces
        // itself and fetches the broker's keys (a broker that is down is logged, not fatal).
        let heartbeat = wiring
            .broker
            .heartbeat_job(&pool, &settings.region_id, &public_url);
        if let Err(e) = ship::parents::Job::handle(&heartbeat).await {
            tracing::warn!(error = %e, "the start-up heartbeat failed");
        }
        wiring.broker.refresh_keys().await;
        Ok(Self {
            port,
            server,
            pool,
            wiring,
            public_url,
            key_refresh_every: std::time::Duration::from_secs(
                settings.broker.heartbeat_interval_secs,
            ),
            scheduler: None,
        })
    }

    /// Where the other regions reach this one.
    pub fn public_url(&self) -> &PublicUrl {
        &self.public_url
    }

    /// Run the console kernel in this process too (`serve --with-scheduler`); it stops with
    /// the server, letting running jobs finish.
    pub fn with_scheduler(mut self, kernel: ship::scheduler::Kernel) -> Self {
        self.scheduler = Some(kernel);
        self
    }

    pub fn wiring(&self) -> &Wiring {
        &self.wiring
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serve until `shutdown` resolves, then stop gracefully (in-flight requests finish within
    /// `http.shutdown_timeout_secs`).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        // The web process refreshes the broker's keys as often as a heartbeat goes out, so a
        // key retired at the broker stops being accepted here too.
        // It also hands its token refusal counts to the database, where the scheduler's
        // anomaly alerts (another process, usually) read them.
        let (wiring, every, pool) = (self.wiring, self.key_refresh_every, self.pool.clone());
        let keys = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let record = sync::actions::RecordRefusalsAction::new(pool);
            let mut flushed = std::collections::BTreeMap::new();
            loop {
                ticks.tick().await;
                wiring.broker.refresh_keys().await;
                let now = wiring.broker.verifier.refusals();
                let deltas: Vec<(String, String, i64)> = now
                    .iter()
                    .map(|(code, n)| {
                        let before = flushed.get(code).copied().unwrap_or(0);
                        (
                            code.to_string(),
                            String::new(),
                            n.saturating_sub(before) as i64,
                        )
                    })
                    .collect();
                match ship::parents::Action::run(&record, deltas).await {
                    Ok(()) => flushed = now,
                    Err(e) => tracing::warn!(error = %e, "token refusal counts not recorded"),
                }
            }
        });
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let scheduler = self.scheduler.map(|kernel| {
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                };
                if let Err(e) = kernel.work(stopped).await {
                    tracing::error!(error = %e, "the scheduler stopped with an error");
                }
            })
        });
        shutdown.await;
        keys.abort();
        let _ = stop_tx.send(true);
        tracing::info!("shutting down: finishing in-flight requests");
        handle.stop(true).await;
        if let Some(scheduler) = scheduler {
            let _ = scheduler.await;
        }
        match server.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Everything a process of a region needs before it works: connect the database (failing
/// within `connect_timeout_secs`), migrate unless told not to (and refuse a schema with
/// pending migrations), check the database belongs to this region, and wire the containers.
pub async fn prepare(
    settings: &Settings,
    options: StartOptions,
) -> Result<(DbPool, Wiring), ShipError> {
    let pool = connect(settings).await?;
    let region = settings.region_id.clone();
    let migrate = options.migrate;
    let wiring_settings = settings.clone();
    let wiring_pool = pool.clone();
    let wiring = pool
        .run(move |conn| -> Result<Wiring, ShipError> {
            if migrate {
                for name in migrations::run_pending(conn)? {
                    tracing::info!(migration = %name, "applied migration");
                }
            }
            // The region binding is checked first: a foreign database is the more serious
            // problem, and its table exists as soon as the first migration ran.
            let identity_ready = migrate
                || migrations::status(conn)?
                    .iter()
                    .any(|m| m.applied && m.name == db::IDENTITY_MIGRATION);
            if identity_ready && db::bind_region(conn, &region)? {
                tracing::info!(region = %region, "database bound to this region");
            }
            // Without migrating, a schema that is behind the binary is refused (the sync
            // tables may not exist); an operator runs `regionsync migrate run` first.
            let pending = migrations::pending(conn)?;
            if !pending.is_empty() {
                return Err(ShipError::Db(ship::DbError::Migration(format!(
                    "{} migration(s) pending ({}); run `regionsync migrate run` or start without --no-migrate",
                    pending.len(),
                    pending.join(", ")
                ))));
            }
            if identity_ready {
                // A new database (or one bound before incarnations) gets its incarnation here.
                let incarnation = db::incarnation(conn)?;
                tracing::info!(incarnation = %incarnation.id, "database incarnation");
            }
            Wiring::build(&wiring_settings, conn, &wiring_pool)
        })
        .await?;
    Ok((pool, wiring))
}

/// Open the pool for the configured database, on the blocking pool (connecting blocks).
pub async fn connect(settings: &Settings) -> Result<DbPool, ShipError> {
    let url = settings.database.url.clone();
    let options = settings.database.pool_options();
    tokio::task::spawn_blocking(move || DbPool::connect(&url, options))
        .await
        .map_err(|e| ShipError::Db(ship::DbError::Blocking(e.to_string())))?
        .map_err(ShipError::from)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("received SIGTERM"),
                    _ = int.recv() => tracing::info!("received SIGINT"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
