//! Query of `GET /sync/{resource}/changes`, parsed into the action's input.

use serde::Deserialize;
use ship::config::check_region_id;

use crate::actions::GetChangesInput;
use crate::config::SyncConfig;
use crate::cursor::FeedCursor;
use crate::errors::SyncError;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetChangesRequest {
    /// An opaque cursor from an earlier answer (`next_cursor` or `high_watermark`); default:
    /// the start of the feed. Reading is acknowledging: the caller has applied everything up to
    /// it (unless `ack` says less).
    pub since: Option<String>,
    /// Entries per page, `1..=sync.changes_max_limit` (5000; default
    /// `sync.changes_default_limit`, 500). A number outside the range is `invalid_limit`,
    /// anything else that is not a whole number `invalid_query` (it is taken as text for that).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub limit: Option<String>,
    /// Leave out entries whose origin is this region (normally the caller's own id).
    pub exclude_origin: Option<String>,
    /// The cursor up to which the reader has applied the feed, when that is behind `since` (a
    /// reader fetching its next page while it applies the current one); default: `since`.
    pub ack: Option<String>,
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
        let ack = self
            .ack
            .map(|c| {
                FeedCursor::decode(&c)
                    .map(|c| c.seq)
                    .map_err(|e| SyncError::InvalidCursor(format!("ack: {e}")))
            })
            .transpose()?;
        if let Some(ack) = ack {
            if ack > since.as_ref().map_or(0, |s| s.seq) {
                return Err(SyncError::InvalidQuery(
                    "ack: a reader cannot have applied more than it has read (ack is after since)"
                        .into(),
                ));
            }
        }
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
            ack,
            reader_policy: None,
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
