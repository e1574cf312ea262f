//! Query of `GET /sync/{resource}/changes`, parsed into the action's input.

use serde::Deserialize;
use ship::config::check_region_id;

use crate::actions::GetChangesInput;
use crate::config::SyncConfig;
use crate::cursor::Cursor;
use crate::errors::SyncError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetChangesRequest {
    pub since: Option<String>,
    pub limit: Option<u32>,
    pub exclude_origin: Option<String>,
}

impl GetChangesRequest {
    pub fn into_input(
        self,
        resource: String,
        reader: String,
        config: &SyncConfig,
    ) -> Result<GetChangesInput, SyncError> {
        let since = self
            .since
            .map(|c| Cursor::decode(&c).map_err(|e| SyncError::InvalidCursor(e.to_string())))
            .transpose()?;
        let limit = self.limit.unwrap_or(config.changes_default_limit);
        if limit == 0 || limit > config.changes_max_limit {
            return Err(SyncError::InvalidLimit {
                max: config.changes_max_limit,
            });
        }
        if let Some(origin) = &self.exclude_origin {
            check_region_id(origin)
                .map_err(|m| SyncError::InvalidQuery(format!("exclude_origin: {m}")))?;
        }
        Ok(GetChangesInput {
            resource,
            since,
            limit,
            exclude_origin: self.exclude_origin,
            reader: Some(reader),
        })
    }
}
