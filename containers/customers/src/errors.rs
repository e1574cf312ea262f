//! The customers container's errors. Each variant has an HTTP status and a stable snake_case
//! code:
//!
//! | variant | status | code |
//! |---|---|---|
//! | `Validation` | 422 | `validation_failed` (details: `{"fields": [{"field","code","message"}]}`) |
//! | `InvalidQuery` | 400 | `invalid_query` (a query parameter that does not parse, or an unknown one; details: `{"parameter"}`) |
//! | `InvalidLimit` | 400 | `invalid_limit` (a `limit` that is a number outside `1..=500`; details: `{"parameter": "limit", "min", "max"}`) |
//! | `NotFound` | 404 | `customer_not_found` (also for a deleted customer) |
//! | `Referenced` | 409 | `customer_referenced` (a delete while live rows of another resource name the customer, e.g. orders; details: `{"live_referrers"}`) |
//! | `BatchTooLarge` | 413 | `batch_too_large` (a bulk create of more than `max` items; details: `{"max", "got"}`) |
//! | `Db` | 503 / 500 | `database_unavailable` / `internal_error` |
//!
//! Field codes in `details.fields[].code`: `required`, `invalid_type`, `unknown_field`, `blank`,
//! `too_long`, `invalid_email`, `invalid_value`, `invalid_uuid`, `invalid_timestamp`,
//! `invalid_number`, `out_of_range`, `must_be_null`, `no_changes`.

use ship::contracts::FieldError;
use ship::errors::{ApiError, StatusCode};
use ship::DbError;

#[derive(Debug, thiserror::Error)]
pub enum CustomersError {
    #[error("the request is invalid: {}", summary(.0))]
    Validation(Vec<FieldError>),
    /// A query parameter that does not parse (`parameter` names it).
    #[error("{message}")]
    InvalidQuery {
        parameter: &'static str,
        message: String,
    },
    /// A `limit` that is a number, but outside `1..=max`.
    #[error("limit must be between 1 and {max}")]
    InvalidLimit { max: u32 },
    #[error("customer `{0}` not found")]
    NotFound(String),
    /// A delete of a customer that live rows of another resource (orders) name.
    #[error("customer `{id}` is named by {live} live rows of other resources (orders): delete or reassign those first")]
    Referenced { id: String, live: i64 },
    /// A bulk create of more customers than one takes.
    #[error("{got} customers in one request; at most {max}: split the load into several")]
    BatchTooLarge { max: usize, got: usize },
    #[error(transparent)]
    Db(#[from] DbError),
}

fn summary(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<diesel::result::Error> for CustomersError {
    fn from(e: diesel::result::Error) -> Self {
        CustomersError::Db(DbError::Query(e))
    }
}

impl ApiError for CustomersError {
    fn status(&self) -> StatusCode {
        match self {
            CustomersError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            CustomersError::InvalidQuery { .. } | CustomersError::InvalidLimit { .. } => {
                StatusCode::BAD_REQUEST
            }
            CustomersError::NotFound(_) => StatusCode::NOT_FOUND,
            CustomersError::Referenced { .. } => StatusCode::CONFLICT,
            CustomersError::BatchTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            CustomersError::Db(e) => e.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            CustomersError::Validation(_) => "validation_failed",
            CustomersError::InvalidQuery { .. } => "invalid_query",
            CustomersError::InvalidLimit { .. } => "invalid_limit",
            CustomersError::NotFound(_) => "customer_not_found",
            CustomersError::Referenced { .. } => "customer_referenced",
            CustomersError::BatchTooLarge { .. } => "batch_too_large",
            CustomersError::Db(e) => e.code(),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            CustomersError::Validation(fields) => Some(serde_json::json!({ "fields": fields })),
            CustomersError::InvalidQuery { parameter, .. } => {
                Some(serde_json::json!({ "parameter": parameter }))
            }
            CustomersError::InvalidLimit { max } => {
                Some(serde_json::json!({ "parameter": "limit", "min": 1, "max": max }))
            }
            CustomersError::Referenced { live, .. } => {
                Some(serde_json::json!({ "live_referrers": live }))
            }
            CustomersError::BatchTooLarge { max, got } => {
                Some(serde_json::json!({ "max": max, "got": got }))
            }
            _ => None,
        }
    }
}

impl From<ship::http::query::QueryProblem> for CustomersError {
    fn from(problem: ship::http::query::QueryProblem) -> Self {
        match problem {
            ship::http::query::QueryProblem::Invalid { parameter, message } => {
                CustomersError::InvalidQuery { parameter, message }
            }
            ship::http::query::QueryProblem::LimitOutOfRange { max } => {
                CustomersError::InvalidLimit { max }
            }
        }
    }
}
