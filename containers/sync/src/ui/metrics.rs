//! The sync container's part of `GET /metrics` (`ship::contracts::MetricsSource`): per push or
//! pull peer and resource, what is owed, what died, how late the push is and when each
//! direction last moved — the numbers of `regionsync sync status`, for Prometheus. Also the
//! parked ops, the recorded conflicts per resource and rule, and the alerts that are firing.
//! Read at scrape time from the database (`SyncMetricsAction`, the numbers `sync status`
//! shows), so the web and the scheduler process report the same state.
//!
//! Replication lag per peer and resource, in seconds: `regionsync_sync_push_lag_seconds`, the
//! age of the oldest change still owed to the peer (0 when none), and
//! `regionsync_sync_pull_lag_seconds`, the wall-clock age of the newest change applied here
//! whose origin is the peer (its HLC's physical time), among the newest
//! [`PULL_LAG_WINDOW`](crate::actions::outbox_admin::PULL_LAG_WINDOW) changelog entries of the
//! resource (a peer with none there is left out).
//! Clocks and history (ADR 0016): `regionsync_peer_clock_offset_seconds{peer}`, the peer's
//! wall clock minus ours as last measured, and the measurement's age; and per feed reader
//! `regionsync_sync_feed_oldest_unread_age_seconds{peer,resource}`, the age of the oldest
//! changelog entry it has not read (0 when it read everything).
//! The counters of what this process did (`crate::counters`) of every peer and resource in
//! the status are made known here (0 until counted), so that `/metrics` lists them from the
//! start.

use ship::contracts::{BoxFuture, Gauge, MetricsSource};
use ship::parents::Action;

use crate::actions::{SyncMetricsAction, SyncMetricsData};

pub struct SyncMetrics {
    action: SyncMetricsAction,
}

impl SyncMetrics {
    pub fn new(action: SyncMetricsAction) -> Self {
        Self { action }
    }
}

fn seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl MetricsSource for SyncMetrics {
    fn collect(&self) -> BoxFuture<'_, Result<Vec<Gauge>, String>> {
        Box::pin(async move {
            let data = self.action.run(()).await.map_err(|e| e.to_string())?;
            for s in &data.status {
                crate::counters::known(&s.peer, &s.resource);
            }
            Ok(gauges(data))
        })
    }
}

/// The gauges of the peers' status, the parked ops, the recorded conflicts and the firing
/// alerts.
fn gauges(data: SyncMetricsData) -> Vec<Gauge> {
    let SyncMetricsData {
        status,
        firing,
        parked,
        conflicts,
        newest_remote,
        peer_clocks,
        feed_readers,
    } = data;
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for c in peer_clocks {
        let labels = vec![("peer", c.peer)];
        out.push(Gauge {
            name: "regionsync_peer_clock_offset_seconds",
            help: "The peer's wall clock minus ours, as last measured from the Regionsync-Clock \
                   headers of the sync exchanges (positive: it runs ahead)",
            labels: labels.clone(),
            value: c.offset_ms as f64 / 1000.0,
        });
        out.push(Gauge {
            name: "regionsync_peer_clock_measurement_age_seconds",
            help: "How long ago the peer's clock offset was measured",
            labels,
            value: (now - c.measured_at.and_utc()).num_milliseconds().max(0) as f64 / 1000.0,
        });
    }
    for r in feed_readers {
        let age = r.oldest_needed.map_or(0.0, |(_, at)| {
            (now - at.and_utc()).num_milliseconds().max(0) as f64 / 1000.0
        });
        out.push(Gauge {
            name: "regionsync_sync_feed_oldest_unread_age_seconds",
            help: "Age of the oldest changelog entry the peer has not read from this region's \
                   feed (0 when it read everything)",
            labels: vec![("peer", r.peer), ("resource", r.resource)],
            value: age,
        });
    }
    let now_ms = now.timestamp_millis();
    for (origin, resource, hlc) in newest_remote {
        let applied_ms = hlc >> 16;
        out.push(Gauge {
            name: "regionsync_sync_pull_lag_seconds",
            help: "Wall-clock age of the newest change applied here whose origin is the peer \
                   (now minus its HLC's physical time)",
            labels: vec![("peer", origin), ("resource", resource)],
            value: now_ms.saturating_sub(applied_ms).max(0) as f64 / 1000.0,
        });
    }
    for p in parked {
        let labels = vec![("resource", p.resource.clone())];
        out.push(Gauge {
            name: "regionsync_sync_parked_ops",
            help: "Remote ops kept until a row they name arrives (`sync parked list`, ADR 0015)",
            labels: labels.clone(),
            value: p.count as f64,
        });
        out.push(Gauge {
            name: "regionsync_sync_parked_oldest_age_seconds",
            help: "How long the oldest parked op of the resource has waited",
            labels,
            value: (now - p.oldest.and_utc()).num_milliseconds().max(0) as f64 / 1000.0,
        });
    }
    for (resource, reason, count) in conflicts {
        out.push(Gauge {
            name: "regionsync_sync_conflicts",
            help: "Remote writes that lost by the conflict policy here and are still in the ledger (`regionsync conflicts list`; kept sync.conflict_retention_days), by resource and rule",
            labels: vec![("reason", reason), ("resource", resource)],
            value: count as f64,
        });
    }
    for s in status {
        let labels = || vec![("peer", s.peer.clone()), ("resource", s.resource.clone())];
        let mut gauge = |name, help, value| {
            out.push(Gauge {
                name,
                help,
                labels: labels(),
                value,
            })
        };
        gauge(
            "regionsync_sync_pending",
            "Changes of this region owed to the peer (not delivered, not dead)",
            s.pending as f64,
        );
        gauge(
            "regionsync_sync_dead_letters",
            "Changes the peer refused or that ran out of attempts (`outbox list --dead`)",
            s.dead as f64,
        );
        let owed_age = s
            .oldest_pending_at
            .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        gauge(
            "regionsync_sync_oldest_pending_age_seconds",
            "Age of the oldest change owed to the peer (0 when nothing is owed)",
            owed_age,
        );
        gauge(
            "regionsync_sync_push_lag_seconds",
            "Push lag: age of the oldest change still owed to the peer (0 when nothing is owed)",
            owed_age,
        );
        if let Some(seq) = s.delivered_through {
            gauge(
                "regionsync_sync_delivered_through",
                "Every change of this region up to this changelog seq is delivered to the peer",
                seq as f64,
            );
        }
        if let Some(t) = s.last_push_at {
            gauge(
                "regionsync_sync_last_push_seconds",
                "When a push to the peer last succeeded (Unix time)",
                seconds(t),
            );
        }
        if let Some(t) = s.last_pull_at {
            gauge(
                "regionsync_sync_last_pull_seconds",
                "When a pull of the peer's feed last succeeded (Unix time)",
                seconds(t),
            );
        }
        gauge(
            "regionsync_sync_quarantined",
            "Entries of the peer's feed parked because they cannot apply here (`sync quarantine list`)",
            s.quarantined as f64,
        );
        if let Some(n) = s.verify_differing {
            gauge(
                "regionsync_sync_verify_differing",
                "Rows that differed from the peer at the last verify (`sync verify`)",
                n as f64,
            );
        }
        if let Some(rows) = s.bootstrap_rows {
            gauge(
                "regionsync_sync_bootstrap_rows",
                "A bootstrap from the peer's snapshot under way: rows applied so far",
                rows as f64,
            );
        }
        if let Some(seq) = s.feed_acked_seq {
            gauge(
                "regionsync_sync_feed_acked_seq",
                "How far the peer has read this region's feed (its acknowledged seq)",
                seq as f64,
            );
        }
    }
    for (kind, subject) in firing {
        out.push(Gauge {
            name: "regionsync_alerts_firing",
            help: "Anomaly alerts firing now (1 each), by kind and subject",
            labels: vec![("kind", kind), ("subject", subject)],
            value: 1.0,
        });
    }
    out
}
