//! Query of `GET /sync/{resource}/changes`, parsed into the action's input.

use serde::Deserialize;
use ship::config::check_region_id;

use crate::actions::GetChangesInput;
use crate::config::SyncConfig;
use crate::cursor::FeedCursor;
use crate::errors::SyncError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetChangesRequest {
    pub since: Option<String>,
    /// Taken as text: a number outside the range is `invalid_limit`, anything else that is not
    /// a whole number is `invalid_query` (as documented), not one or the other by accident of
    /// the integer type.
    pub limit: Option<String>,
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
            .map(|c| FeedCursor::decode(&c).map_err(|e| SyncError::InvalidCursor(e.to_string())))
            .transpose()?;
        // An empty `limit=` is no limit given (as on the customers list).
        let limit = match self.limit.as_deref().filter(|l| !l.is_empty()) {
            None => config.changes_default_limit,
            Some(text) => parse_limit(text, config.changes_max_limit)?,
        };
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

/// `limit`: a whole number (optionally signed) in `1..=max`.
pub(crate) fn parse_limit(text: &str, max: u32) -> Result<u32, SyncError> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SyncError::InvalidQuery(format!(
            "limit: `{}` is not a whole number",
            ship::errors::clip(text)
        )));
    }
    match text.parse::<i64>() {
        Ok(n) if n >= 1 && n <= i64::from(max) => {
            u32::try_from(n).map_err(|_| SyncError::InvalidLimit { max })
        }
        _ => Err(SyncError::InvalidLimit { max }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_outside_the_range_is_invalid_limit_and_not_a_number_is_invalid_query() {
        for ok in ["1", "500", "+7", "0005000"] {
            assert!(parse_limit(ok, 5000).is_ok(), "{ok}");
        }
        for out in [
            "0",
            "-1",
            "5001",
            "1000000000000",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(parse_limit(out, 5000), Err(SyncError::InvalidLimit { .. })),
                "{out}"
            );
        }
        for bad in ["abc", "1.5", "1e3", "-", " 1", "0x10"] {
            assert!(
                matches!(parse_limit(bad, 5000), Err(SyncError::InvalidQuery(_))),
                "{bad}"
            );
        }
    }
}
