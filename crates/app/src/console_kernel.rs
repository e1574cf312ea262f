//! The console kernel: the one list of scheduled jobs, as in Laravel's `app/Console/Kernel`.
//! `regionsync schedule work` runs it forever, `schedule run` once for what is due,
//! `schedule list` shows it, and `serve --with-scheduler` runs it beside the web server.

use std::sync::Arc;
use std::time::Duration;

use ship::contracts::PeerDirectory;
use ship::scheduler::{Kernel, Schedule, SchedulerError};
use ship::{DbPool, ShipError};
use sync::actions::{PruneAction, PruneInput, ReleaseParkedAction};
use sync::ui::jobs::{
    DispatchOutboxJob, PruneJob, PullChangesJob, ReleaseParkedJob, VerifyJob, WatchPeersJob,
};

use crate::settings::Settings;
use crate::wiring::{PublicUrl, Wiring};

/// Every scheduled job of a region.
pub fn kernel(
    settings: &Settings,
    pool: &DbPool,
    wiring: &Wiring,
    public_url: &PublicUrl,
) -> Result<Kernel, ShipError> {
    let mut kernel = Kernel::new(pool.clone(), Kernel::process_owner());
    let wire = |e: SchedulerError| ShipError::Wiring(e.to_string());

    // Liveness at the broker: one heartbeat per region, whichever scheduler sends it.
    kernel
        .schedule(
            Arc::new(
                wiring
                    .broker
                    .heartbeat_job(pool, &settings.region_id, public_url),
            ),
            Schedule::every_seconds(settings.broker.heartbeat_interval_secs)
                .map_err(wire)?
                .on_one_server()
                .timeout(Duration::from_secs(
                    settings.broker.request_timeout_secs * 2,
                )),
        )
        .map_err(wire)?;

    // Push: deliver the outbox. Every scheduler process may run it: the entries it claims are
    // leased to it, so dispatchers share the work without sending an entry twice at once.
    kernel
        .schedule(
            Arc::new(
                wiring.measuring(
                    DispatchOutboxJob::new(
                        wiring.dispatch_action(pool, settings)?,
                        kernel.owner().to_string(),
                        settings.sync.dispatch_claim_limit,
                        wiring.recorder.wake(),
                        Duration::from_secs(settings.sync.dispatch_interval_secs),
                        kernel.stopping(),
                    )
                    .with_workers(settings.sync.dispatch_workers)
                    .with_linger(Duration::from_millis(settings.sync.dispatch_linger_ms)),
                ),
            ),
            Schedule::every_seconds(settings.sync.dispatch_interval_secs)
                .map_err(wire)?
                .without_overlapping()
                .timeout(Duration::from_secs(600)),
        )
        .map_err(wire)?;

    // A peer the broker lists online again (its heartbeat) after offline: its streams stop
    // waiting out their backoff (any scheduler may: making a stream due twice is once).
    kernel
        .schedule(
            Arc::new(WatchPeersJob::new(
                sync::actions::PeersSeenAction::new(pool.clone()),
                wiring.directory(),
            )),
            Schedule::every_seconds(settings.broker.heartbeat_interval_secs)
                .map_err(wire)?
                .without_overlapping()
                .timeout(Duration::from_secs(
                    settings.broker.request_timeout_secs * 2,
                )),
        )
        .map_err(wire)?;

    // Anti-entropy: pull every peer's feed from the stored cursors.
    let directory: Arc<dyn PeerDirectory> = wiring.broker.directory.clone();
    let resources = wiring.registry.names().map(str::to_string).collect();
    let mut pull = PullChangesJob::new(
        wiring.pull_action(pool, settings)?,
        directory,
        settings.sync.pull_peer_ids(),
        resources,
        settings.sync.pull_page_limit,
    )
    .running_for(Duration::from_secs(settings.sync.pull_run_secs));
    if settings.sync.bootstrap == sync::BootstrapMode::Auto {
        pull = pull.with_bootstrap(wiring.bootstrap_action(pool, settings)?);
    }
    kernel
        .schedule(
            Arc::new(wiring.measuring(pull)),
            Schedule::every_seconds(settings.sync.pull_interval_secs)
                .map_err(wire)?
                .without_overlapping()
                .on_one_server()
                .timeout(Duration::from_secs(600)),
        )
        .map_err(wire)?;
    // Proof that the regions agree: compare each pull peer's rows with ours.
    if !settings.sync.verify_at.is_empty() {
        kernel
            .schedule(
                Arc::new(wiring.measuring(VerifyJob::new(
                    wiring.verify_action(pool, settings)?,
                    wiring.directory(),
                    settings.sync.pull_peer_ids(),
                    wiring.registry.names().map(str::to_string).collect(),
                ))),
                Schedule::daily_at(&settings.sync.verify_at)
                    .map_err(wire)?
                    .without_overlapping()
                    .on_one_server()
                    .timeout(Duration::from_secs(3_600)),
            )
            .map_err(wire)?;
    }
    // References (ADR 0015): parked ops whose row has arrived by a path that raced their park.
    kernel
        .schedule(
            Arc::new(ReleaseParkedJob::new(ReleaseParkedAction::new(
                pool.clone(),
                wiring.registry.clone(),
            ))),
            Schedule::every_seconds(settings.sync.pull_interval_secs)
                .map_err(wire)?
                .without_overlapping()
                .on_one_server()
                .timeout(Duration::from_secs(600)),
        )
        .map_err(wire)?;
    // Retention: delivered outbox entries, and changelog entries no peer is owed.
    kernel
        .schedule(
            Arc::new(PruneJob::new(
                PruneAction::new(pool.clone(), wiring.registry.clone())
                    .holding_feed_for(Duration::from_secs(
                        settings.sync.feed_hold_max_hours.saturating_mul(3600),
                    ))
                    .keeping_conflicts_for(Duration::from_secs(
                        settings.sync.conflict_retention_days.saturating_mul(86_400),
                    )),
                PruneInput {
                    outbox_retention: Duration::from_secs(
                        settings.sync.outbox_retention_hours * 3600,
                    ),
                    changelog_retention: Duration::from_secs(
                        settings.sync.changelog_retention_hours * 3600,
                    ),
                    tombstone_retention: Duration::from_secs(
                        settings.sync.tombstone_retention_days * 86_400,
                    ),
                },
            )),
            Schedule::hourly()
                .map_err(wire)?
                .on_one_server()
                .timeout(Duration::from_secs(1800)),
        )
        .map_err(wire)?;
    // Anomaly alerts: backlog, dead letters, push and pull lag, broker reachability → the webhook.
    kernel
        .schedule(
            Arc::new(wiring.alerts_job(pool, settings)?),
            Schedule::every_seconds(settings.alerts.interval_secs)
                .map_err(wire)?
                .without_overlapping()
                .on_one_server()
                .timeout(Duration::from_secs(120)),
        )
        .map_err(wire)?;
    Ok(kernel)
}
