//! `[sync]`: limits of the changes feed and of ops batches, and the clock drift bound.

use serde::{Deserialize, Serialize};
use ship::config::{key, ConfigProblem, Validate};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Entries per `GET /changes` page when the caller names no `limit`.
    pub changes_default_limit: u32,
    /// The largest `limit` a caller may ask for.
    pub changes_max_limit: u32,
    /// The most ops one `POST /ops` batch may carry (more → 413 `batch_too_large`).
    pub max_ops_per_batch: u32,
    /// How far (ms) a remote clock may run ahead of ours before its ops are refused.
    pub max_clock_drift_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            changes_default_limit: 500,
            changes_max_limit: 5_000,
            max_ops_per_batch: 1_000,
            max_clock_drift_ms: 5_000,
        }
    }
}

impl Validate for SyncConfig {
    fn validate(&self, prefix: &str, problems: &mut Vec<ConfigProblem>) {
        if self.changes_default_limit == 0 || self.changes_default_limit > self.changes_max_limit {
            problems.push(ConfigProblem::new(
                key(prefix, "changes_default_limit"),
                format!(
                    "must be between 1 and changes_max_limit ({})",
                    self.changes_max_limit
                ),
            ));
        }
        if self.max_ops_per_batch == 0 {
            problems.push(ConfigProblem::new(
                key(prefix, "max_ops_per_batch"),
                "must be at least 1",
            ));
        }
        if self.max_clock_drift_ms == 0 {
            problems.push(ConfigProblem::new(
                key(prefix, "max_clock_drift_ms"),
                "must be at least 1",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_limits_are_named() {
        let mut problems = Vec::new();
        SyncConfig::default().validate("sync", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");

        SyncConfig {
            changes_default_limit: 10_000,
            max_ops_per_batch: 0,
            ..SyncConfig::default()
        }
        .validate("sync", &mut problems);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["sync.changes_default_limit", "sync.max_ops_per_batch"]
        );
    }
}
