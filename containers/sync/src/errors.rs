//! The sync container's errors. Each variant has an HTTP status and a stable snake_case code
//! (documented in docs/PROTOCOL.md once the routes exist).

use ship::errors::{ApiError, StatusCode};
use ship::DbError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("unknown resource `{0}`")]
    UnknownResource(String),
    #[error(transparent)]
    Db(#[from] DbError),
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
            SyncError::Db(e) => e.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            SyncError::UnknownResource(_) => "unknown_resource",
            SyncError::Db(e) => e.code(),
        }
    }
}
