//! Query of `GET /sync/{resource}/digest`, parsed into the action's input.

use serde::Deserialize;

use crate::actions::get_digest::{GetDigestInput, MAX_PREFIX};
use crate::errors::SyncError;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetDigestRequest {
    /// Lower-case hex digits, 0 to 8 (default: the whole resource).
    #[param(pattern = "^[0-9a-f]{0,8}$")]
    pub prefix: Option<String>,
    /// 1 to 3: the ranges that many digits below `prefix` (default 2).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 3)]
    pub depth: Option<String>,
    /// `true`: the rows of `prefix` instead of its ranges.
    pub rows: Option<bool>,
    /// With `rows`: each row's kind and payload too.
    pub full: Option<bool>,
}

impl GetDigestRequest {
    pub fn into_input(self, resource: String) -> Result<GetDigestInput, SyncError> {
        let prefix = self.prefix.unwrap_or_default();
        if prefix.len() > MAX_PREFIX
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(SyncError::InvalidQuery(format!(
                "prefix: `{}` is not 0 to {MAX_PREFIX} lower-case hex digits",
                ship::errors::clip(&prefix)
            )));
        }
        let depth = match (self.rows.unwrap_or(false), self.depth.as_deref()) {
            (true, None) => None,
            (true, Some(_)) => {
                return Err(SyncError::InvalidQuery(
                    "ask for `rows` or for a `depth`, not both".into(),
                ))
            }
            (false, None) => Some(2),
            (false, Some(d)) => match d.parse::<usize>() {
                Ok(d @ 1..=3) => Some(d),
                _ => {
                    return Err(SyncError::InvalidQuery(format!(
                        "depth: `{}` is not 1, 2 or 3",
                        ship::errors::clip(d)
                    )))
                }
            },
        };
        let full = self.full.unwrap_or(false);
        if full && depth.is_some() {
            return Err(SyncError::InvalidQuery("`full` goes with `rows`".into()));
        }
        Ok(GetDigestInput {
            resource,
            prefix,
            depth,
            full,
            reader_policy: None,
        })
    }
}
