//! The sync container's use cases. Each owns its transaction; controllers, CLI commands and jobs
//! call them.

/// The synced resource `name`, or `unknown_resource`.
pub(crate) fn synced(
    registry: &ship::contracts::ResourceRegistry,
    name: &str,
) -> Result<std::sync::Arc<dyn ship::contracts::SyncResource>, crate::errors::SyncError> {
    registry
        .get(name)
        .map(std::sync::Arc::clone)
        .ok_or_else(|| crate::errors::SyncError::UnknownResource(name.to_string()))
}
pub mod get_changes;

pub use get_changes::{ChangesPage, EntrySink, GetChangesAction, GetChangesInput, Page, SinkError};
pub mod get_snapshot;

pub use get_snapshot::{GetSnapshotAction, GetSnapshotInput, SnapshotPage};
pub mod bootstrap;

pub use bootstrap::{BootstrapAction, BootstrapInput, BootstrapSummary};
pub mod apply_ops;

pub use apply_ops::{ApplyOpsAction, ApplyOpsInput, ApplyOpsOutput, BatchLimits, OpStatus};
pub mod pull_changes;

pub use pull_changes::{PullChangesAction, PullChangesInput, PullSummary};
pub mod peers_seen;

pub use peers_seen::{PeerSeen, PeersSeenAction};
pub mod dispatch_outbox;

pub use dispatch_outbox::{DispatchOutboxAction, DispatchSummary};
pub mod outbox_admin;

pub use outbox_admin::{
    DiscardOutboxAction, Discarded, ListOutboxAction, PeerStatus, RecordRefusalsAction,
    RetryDeadAction, SyncMetricsAction, SyncMetricsData, SyncStatusAction,
};
pub mod parked;

pub use parked::{ListParkedAction, ParkedCount, ParkedView, ReleaseParkedAction};
pub mod prune;

pub use prune::{PruneAction, PruneInput, PruneSummary};
pub mod evaluate_alerts;

pub use evaluate_alerts::{
    AlertRow, AlertsInput, AlertsSummary, EvaluateAlertsAction, ListAlertsAction,
};
pub mod quarantine_admin;

pub use quarantine_admin::{
    DiscardQuarantineAction, ListQuarantineAction, RetryQuarantineAction, RetrySummary,
};
pub mod get_digest;

pub use get_digest::{Bucket, DigestAnswer, GetDigestAction, GetDigestInput, RowDigest};
pub mod verify;

pub use verify::{Divergence, VerifyAction, VerifyInput, VerifySummary};
pub mod repair;

pub use repair::{Prefer, RepairAction, RepairInput, RepairSummary};
pub mod conflicts;

pub use conflicts::{
    Conflict, ConflictFilter, ConflictSummary, GetConflictAction, ListConflictsAction,
    ListConflictsInput, ResolveConflictAction, ResolveConflictInput, Resolved, Take, TurnedAround,
    WhatIf, WhatIfAction, WhatIfInput,
};
pub mod peer_clocks;

pub use peer_clocks::{ListPeerClocksAction, PeerClockMeter};
