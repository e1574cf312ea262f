//! `[alerts]`: thresholds of the anomaly alerts and where they go.

use serde::{Deserialize, Serialize};
use ship::config::{key, ConfigProblem, Validate};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where alerts are POSTed as JSON; none: they are only recorded (`regionsync alerts list`)
    /// and logged.
    pub webhook_url: Option<String>,
    /// How often the conditions are evaluated, in seconds.
    pub interval_secs: u64,
    /// Backlog: the oldest entry owed to a peer is older than this (seconds).
    pub backlog_max_age_secs: u64,
    /// Backlog: more entries than this are owed to a peer.
    pub backlog_max_entries: i64,
    /// Pull lag: a peer the pull job reads has not been pulled successfully for this long
    /// (seconds); a peer never pulled counts from when this scheduler process first listed it.
    pub pull_lag_max_secs: u64,
    /// Push lag: changes are owed to a peer and nothing reached it for this long (seconds):
    /// since the later of its last delivery and its oldest pending change.
    pub push_lag_max_secs: u64,
    /// Parked ops: an op that names a row not here yet (an order before its customer) has
    /// waited this long (seconds) — ADR 0015.
    pub parked_max_age_secs: u64,
    /// Clock skew: a peer's wall clock, measured from the `Regionsync-Clock` header of the
    /// sync exchanges, is off ours by more than this (ms) — ADR 0016. Changes stamped more
    /// than `sync.max_clock_drift_ms` (5000) ahead are refused: this warns before.
    pub clock_skew_max_ms: u64,
    /// History loss risk: with `sync.feed_hold_max_hours` set, a feed reader's oldest unread
    /// entry will pass the cap within this many seconds at the reader's measured rate.
    pub history_loss_horizon_secs: u64,
    /// A firing alert is sent again after this long; a condition that resolved less than this
    /// long ago does not fire again (flapping), in seconds.
    pub cool_down_secs: u64,
    /// Webhook timeout per attempt, and attempts per notification.
    pub webhook_timeout_secs: u64,
    pub webhook_attempts: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            interval_secs: 30,
            backlog_max_age_secs: 300,
            backlog_max_entries: 10_000,
            pull_lag_max_secs: 600,
            push_lag_max_secs: 600,
            parked_max_age_secs: 600,
            clock_skew_max_ms: 1_000,
            history_loss_horizon_secs: 3_600,
            cool_down_secs: 3600,
            webhook_timeout_secs: 5,
            webhook_attempts: 3,
        }
    }
}

impl Validate for AlertsConfig {
    fn validate(&self, prefix: &str, problems: &mut Vec<ConfigProblem>) {
        if let Some(url) = &self.webhook_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(ConfigProblem::new(
                    key(prefix, "webhook_url"),
                    format!("`{url}` is not an http(s) URL"),
                ));
            }
        }
        for (name, value) in [
            ("interval_secs", self.interval_secs),
            ("backlog_max_age_secs", self.backlog_max_age_secs),
            ("pull_lag_max_secs", self.pull_lag_max_secs),
            ("push_lag_max_secs", self.push_lag_max_secs),
            ("parked_max_age_secs", self.parked_max_age_secs),
            ("clock_skew_max_ms", self.clock_skew_max_ms),
            ("history_loss_horizon_secs", self.history_loss_horizon_secs),
            ("webhook_timeout_secs", self.webhook_timeout_secs),
            ("webhook_attempts", u64::from(self.webhook_attempts)),
        ] {
            if value == 0 {
                problems.push(ConfigProblem::new(key(prefix, name), "must be at least 1"));
            }
        }
        if self.backlog_max_entries < 1 {
            problems.push(ConfigProblem::new(
                key(prefix, "backlog_max_entries"),
                "must be at least 1",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_threshold_must_be_positive() {
        let config = AlertsConfig {
            pull_lag_max_secs: 0,
            push_lag_max_secs: 0,
            ..AlertsConfig::default()
        };
        let mut problems = Vec::new();
        config.validate("alerts", &mut problems);
        let keys: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 2, "{keys:?}");
        assert!(
            keys.iter().any(|k| k.contains("alerts.push_lag_max_secs")),
            "{keys:?}"
        );
        assert!(
            keys.iter().any(|k| k.contains("alerts.pull_lag_max_secs")),
            "{keys:?}"
        );
        let mut none = Vec::new();
        AlertsConfig::default().validate("alerts", &mut none);
        assert!(none.is_empty(), "the defaults are valid");
        assert_eq!(AlertsConfig::default().push_lag_max_secs, 600);
    }
}
