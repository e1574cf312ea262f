//! The orders container's errors. Each variant has an HTTP status and a stable snake_case
//! code:
//!
//! | variant | status | code |
//! |---|---|---|
//! | `Validation` | 422 | `validation_failed` (details: `{"fields": [{"field","code","message"}]}`) |
//! | `InvalidQuery` | 400 | `invalid_query` (a query parameter that does not parse, or an unknown one; details: `{"parameter"}`) |
//! | `InvalidLimit` | 400 | `invalid_limit` (a `limit` that is a number outside `1..=500`; details: `{"parameter": "limit", "min", "max"}`) |
//! | `NotFound` | 404 | `order_not_found` (also for a deleted order) |
//! | `InvalidStatusTransition` | 409 | `invalid_status_transition` (details: `{"from", "to"}`) |
//! | `NotEditable` | 409 | `order_not_editable` (`number` or `lines` changed after `pending`; details: `{"status"}`) |
//! | `Db` | 503 / 500 | `database_unavailable` or `database_busy` / `internal_error` |
//!
//! Field codes in `details.fields[].code`: `required`, `invalid_type`, `unknown_field`, `blank`,
//! `too_long`, `invalid_value`, `invalid_uuid`, `invalid_currency`, `invalid_timestamp`,
//! `out_of_range`, `total_too_large`, `total_mismatch` (payloads), `must_be_null` (payloads),
//! `no_changes`, `unknown_customer`, `deleted_customer`. Fields of a line are named
//! `lines[i].<field>`.

use ship::contracts::FieldError;
use ship::errors::{ApiError, StatusCode};
use ship::DbError;

use crate::models::OrderStatus;

#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
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
    #[error("order `{0}` not found")]
    NotFound(String),
    /// A local write may not move the order from `from` to `to`.
    #[error("an order cannot go from {} to {}", .from.as_str(), .to.as_str())]
    InvalidStatusTransition { from: OrderStatus, to: OrderStatus },
    /// `number` or `lines` changed on an order that is no longer pending.
    #[error("the order is {}: its number and lines can change only while it is pending", .status.as_str())]
    NotEditable { status: OrderStatus },
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

impl From<diesel::result::Error> for OrdersError {
    fn from(e: diesel::result::Error) -> Self {
        OrdersError::Db(DbError::Query(e))
    }
}

impl ApiError for OrdersError {
    fn status(&self) -> StatusCode {
        match self {
            OrdersError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            OrdersError::InvalidQuery { .. } | OrdersError::InvalidLimit { .. } => {
                StatusCode::BAD_REQUEST
            }
            OrdersError::NotFound(_) => StatusCode::NOT_FOUND,
            OrdersError::InvalidStatusTransition { .. } | OrdersError::NotEditable { .. } => {
                StatusCode::CONFLICT
            }
            OrdersError::Db(e) => e.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            OrdersError::Validation(_) => "validation_failed",
            OrdersError::InvalidQuery { .. } => "invalid_query",
            OrdersError::InvalidLimit { .. } => "invalid_limit",
            OrdersError::NotFound(_) => "order_not_found",
            OrdersError::InvalidStatusTransition { .. } => "invalid_status_transition",
            OrdersError::NotEditable { .. } => "order_not_editable",
            OrdersError::Db(e) => e.code(),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            OrdersError::Validation(fields) => Some(serde_json::json!({ "fields": fields })),
            OrdersError::InvalidQuery { parameter, .. } => {
                Some(serde_json::json!({ "parameter": parameter }))
            }
            OrdersError::InvalidLimit { max } => {
                Some(serde_json::json!({ "parameter": "limit", "min": 1, "max": max }))
            }
            OrdersError::InvalidStatusTransition { from, to } => {
                Some(serde_json::json!({ "from": from.as_str(), "to": to.as_str() }))
            }
            OrdersError::NotEditable { status } => {
                Some(serde_json::json!({ "status": status.as_str() }))
            }
            _ => None,
        }
    }
}

impl From<ship::http::query::QueryProblem> for OrdersError {
    fn from(problem: ship::http::query::QueryProblem) -> Self {
        match problem {
            ship::http::query::QueryProblem::Invalid { parameter, message } => {
                OrdersError::InvalidQuery { parameter, message }
            }
            ship::http::query::QueryProblem::LimitOutOfRange { max } => {
                OrdersError::InvalidLimit { max }
            }
        }
    }
}
