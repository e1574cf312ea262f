//! The sync container's errors. Each variant has an HTTP status and a stable snake_case code,
//! listed in docs/PROTOCOL.md.

use ship::errors::{ApiError, StatusCode};
use ship::DbError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("unknown resource `{0}`")]
    UnknownResource(String),
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    #[error(
        "the cursor is older than the retained history (entries through {pruned_through} were \
         pruned); bootstrap from a snapshot instead of pulling"
    )]
    CursorExpired { pruned_through: i64 },
    #[error(
        "this region's feed no longer continues the cursor ({0}); bootstrap from a snapshot \
         instead of pulling"
    )]
    CursorDiverged(String),
    #[error("limit must be between 1 and {max}")]
    InvalidLimit { max: u32 },
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    BatchTooLarge(String),
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// The sender decides this resource's conflicts by another policy (PROTOCOL.md, "Conflict
    /// policy"): applying its ops would let the regions diverge.
    #[error("{0}")]
    ConflictPolicyMismatch(String),
    #[error(
        "{} op(s) of the batch are invalid; nothing was applied",
        invalid_ops(errors)
    )]
    InvalidOps {
        errors: Vec<crate::tasks::validate_ops::OpError>,
    },
    #[error("peer `{peer}` is unreachable: {reason}")]
    PeerUnreachable { peer: String, reason: String },
    #[error("peer `{peer}` answered {status}: {message}")]
    PeerRefused {
        peer: String,
        status: u16,
        message: String,
    },
    #[error(
        "peer `{peer}` no longer has the history after our cursor (410 cursor_expired): this \
         region needs a bootstrap from a snapshot of that peer"
    )]
    PeerCursorExpired { peer: String },
    #[error(
        "peer `{peer}`'s feed no longer continues our cursor (409 cursor_diverged: its database \
         was replaced or restored): this region needs a bootstrap from a snapshot of that peer"
    )]
    PeerCursorDiverged { peer: String },
    #[error(
        "no cursor into peer `{peer}`'s feed of `{resource}` in this database's incarnation: \
         its snapshot is loaded first (sync.bootstrap = \"auto\")"
    )]
    BootstrapFirst { peer: String, resource: String },
    #[error("peer `{peer}` refused our token ({code}): {message}")]
    PeerAuthRefused {
        peer: String,
        code: String,
        message: String,
    },
    #[error("the peer directory cannot help: {0}")]
    Directory(#[from] ship::contracts::DirectoryError),
    #[error(
        "peer `{peer}` sent {} invalid op(s); the cursor did not move",
        invalid_ops(errors)
    )]
    PeerSentInvalid {
        peer: String,
        errors: Vec<crate::tasks::validate_ops::OpError>,
    },
    #[error(
        "peer `{peer}` answered 410 again right after a bootstrap from it (for `{resource}`): \
         not bootstrapping again by itself; find why its feed does not reach back to the \
         snapshot's watermark, then run `regionsync sync bootstrap --peer {peer}`"
    )]
    BootstrapLoop { peer: String, resource: String },
    #[error(
        "peer `{peer}` decides conflicts of `{resource}` by {theirs}, this region by {ours}: \
         nothing of it is applied until every region has the same `sync.conflict_policy`"
    )]
    PeerPolicyMismatch {
        peer: String,
        resource: String,
        theirs: String,
        ours: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// How many distinct ops `errors` name.
fn invalid_ops(errors: &[crate::tasks::validate_ops::OpError]) -> usize {
    errors
        .iter()
        .map(|e| e.index)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

impl From<diesel::result::Error> for SyncError {
    fn from(e: diesel::result::Error) -> Self {
        SyncError::Db(DbError::Query(e))
    }
}

impl ApiError for SyncError {
    fn status(&self) -> StatusCode {
        match self {
            SyncError::UnknownResource(_) => StatusCode::NOT_FOUND,
            SyncError::InvalidCursor(_)
            | SyncError::InvalidLimit { .. }
            | SyncError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            SyncError::CursorExpired { .. } => StatusCode::GONE,
            SyncError::CursorDiverged(_) | SyncError::ConflictPolicyMismatch(_) => {
                StatusCode::CONFLICT
            }
            SyncError::BatchTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            SyncError::InvalidBatch(_) | SyncError::InvalidOps { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            SyncError::PeerUnreachable { .. }
            | SyncError::PeerRefused { .. }
            | SyncError::PeerCursorExpired { .. }
            | SyncError::PeerCursorDiverged { .. }
            | SyncError::BootstrapFirst { .. }
            | SyncError::PeerAuthRefused { .. }
            | SyncError::PeerSentInvalid { .. }
            | SyncError::BootstrapLoop { .. }
            | SyncError::PeerPolicyMismatch { .. } => StatusCode::BAD_GATEWAY,
            SyncError::Directory(ship::contracts::DirectoryError::UnknownPeer(_)) => {
                StatusCode::NOT_FOUND
            }
            SyncError::Directory(_) => StatusCode::BAD_GATEWAY,
            SyncError::Db(e) => e.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            SyncError::UnknownResource(_) => "unknown_resource",
            SyncError::InvalidCursor(_) => "invalid_cursor",
            SyncError::CursorExpired { .. } => "cursor_expired",
            SyncError::CursorDiverged(_) => "cursor_diverged",
            SyncError::InvalidLimit { .. } => "invalid_limit",
            SyncError::InvalidQuery(_) => "invalid_query",
            SyncError::BatchTooLarge(_) => "batch_too_large",
            SyncError::InvalidBatch(_) => "invalid_batch",
            SyncError::ConflictPolicyMismatch(_) => "conflict_policy_mismatch",
            SyncError::InvalidOps { .. } => "invalid_ops",
            SyncError::PeerUnreachable { .. } => "peer_unreachable",
            SyncError::PeerRefused { .. } => "peer_refused",
            SyncError::PeerCursorExpired { .. } => "peer_cursor_expired",
            SyncError::PeerCursorDiverged { .. } => "peer_cursor_diverged",
            SyncError::BootstrapFirst { .. } => "bootstrap_first",
            SyncError::PeerAuthRefused { .. } => "peer_auth_refused",
            SyncError::Directory(ship::contracts::DirectoryError::UnknownPeer(_)) => "unknown_peer",
            SyncError::Directory(ship::contracts::DirectoryError::BrokerUnreachable(_)) => {
                "broker_unreachable"
            }
            SyncError::Directory(ship::contracts::DirectoryError::Refused { .. }) => {
                "broker_refused"
            }
            SyncError::Directory(ship::contracts::DirectoryError::InsecurePeer { .. }) => {
                "peer_url_insecure"
            }
            SyncError::PeerSentInvalid { .. } => "peer_sent_invalid_ops",
            SyncError::BootstrapLoop { .. } => "bootstrap_loop",
            SyncError::PeerPolicyMismatch { .. } => "peer_conflict_policy_mismatch",
            SyncError::Db(e) => e.code(),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            SyncError::CursorExpired { pruned_through } => Some(serde_json::json!({
                "pruned_through": pruned_through,
                "bootstrap": "snapshot bootstrap is required: this cursor can never be served again",
            })),
            SyncError::CursorDiverged(_) => Some(serde_json::json!({
                "bootstrap": "snapshot bootstrap is required: this feed is not the one the cursor was read from",
            })),
            SyncError::InvalidOps { errors } | SyncError::PeerSentInvalid { errors, .. } => {
                Some(serde_json::json!({ "errors": errors }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ship::contracts::DirectoryError;

    /// The outbound rows of docs/PROTOCOL.md's error table (what `sync pull` and other calls
    /// to peers and the broker report): each variant's status and code, as documented.
    #[test]
    fn outbound_failures_answer_the_documented_status_and_code() {
        let peer = || "us-east".to_string();
        let cases: Vec<(SyncError, u16, &str)> = vec![
            (
                SyncError::PeerUnreachable {
                    peer: peer(),
                    reason: "refused".into(),
                },
                502,
                "peer_unreachable",
            ),
            (
                SyncError::PeerRefused {
                    peer: peer(),
                    status: 500,
                    message: "x".into(),
                },
                502,
                "peer_refused",
            ),
            (
                SyncError::PeerAuthRefused {
                    peer: peer(),
                    code: "token_invalid".into(),
                    message: "x".into(),
                },
                502,
                "peer_auth_refused",
            ),
            (
                SyncError::PeerCursorExpired { peer: peer() },
                502,
                "peer_cursor_expired",
            ),
            (
                SyncError::PeerCursorDiverged { peer: peer() },
                502,
                "peer_cursor_diverged",
            ),
            (
                SyncError::BootstrapFirst {
                    peer: peer(),
                    resource: "customers".into(),
                },
                502,
                "bootstrap_first",
            ),
            (
                SyncError::PeerSentInvalid {
                    peer: peer(),
                    errors: vec![],
                },
                502,
                "peer_sent_invalid_ops",
            ),
            (
                SyncError::PeerPolicyMismatch {
                    peer: peer(),
                    resource: "customers".into(),
                    theirs: "lww".into(),
                    ours: "delete_wins".into(),
                },
                502,
                "peer_conflict_policy_mismatch",
            ),
            (
                SyncError::Directory(DirectoryError::BrokerUnreachable("down".into())),
                502,
                "broker_unreachable",
            ),
            (
                SyncError::Directory(DirectoryError::Refused {
                    code: "credential_invalid".into(),
                    message: "x".into(),
                }),
                502,
                "broker_refused",
            ),
            (
                SyncError::Directory(DirectoryError::InsecurePeer {
                    peer: peer(),
                    url: "http://10.0.0.2".into(),
                }),
                502,
                "peer_url_insecure",
            ),
            (
                SyncError::Directory(DirectoryError::UnknownPeer(peer())),
                404,
                "unknown_peer",
            ),
            (
                SyncError::BootstrapLoop {
                    peer: peer(),
                    resource: "customers".into(),
                },
                502,
                "bootstrap_loop",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(
                (error.status().as_u16(), error.code()),
                (status, code),
                "{error}"
            );
        }
    }
}
