//! Query of `GET /sync/{resource}/snapshot`, parsed into the action's input.

use serde::Deserialize;

use crate::actions::GetSnapshotInput;
use crate::config::SyncConfig;
use crate::cursor::SnapshotCursor;
use crate::errors::SyncError;
use crate::ui::http::requests::get_changes_request::parse_limit;

/// The most payload bytes one snapshot page carries (at least one row is always served).
pub const SNAPSHOT_PAGE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetSnapshotRequest {
    /// The `next_cursor` of the previous page; absent for the first page.
    pub after: Option<String>,
    /// Rows per page, `1..=sync.changes_max_limit` (default `sync.changes_default_limit`); a
    /// page also stops after the row that takes its payloads past 4 MiB.
    #[param(value_type = Option<u32>, minimum = 1)]
    pub limit: Option<String>,
}

impl GetSnapshotRequest {
    pub fn into_input(
        self,
        resource: String,
        reader: String,
        config: &SyncConfig,
    ) -> Result<GetSnapshotInput, SyncError> {
        let after = self
            .after
            .map(|c| {
                SnapshotCursor::decode(&c).map_err(|e| SyncError::InvalidCursor(e.to_string()))
            })
            .transpose()?;
        let limit = match self.limit.as_deref().filter(|l| !l.is_empty()) {
            None => config.changes_default_limit,
            Some(text) => parse_limit(text, config.changes_max_limit)?,
        };
        Ok(GetSnapshotInput {
            resource,
            after,
            limit,
            max_bytes: SNAPSHOT_PAGE_BYTES,
            reader: Some(reader),
            reader_policy: None,
        })
    }
}
