//! The one error envelope every HTTP error answers with:
//!
//! ```json
//! {"error": "invalid_json", "message": "…", "details": null}
//! ```
//!
//! Containers keep their own `thiserror` enums and implement [`ApiError`] on them (a status and
//! a stable snake_case code per variant); controllers return [`HttpError`], into which any
//! `ApiError` converts with `?`.

use std::borrow::Cow;
use std::fmt;

pub use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::db::{DbError, RegionBindingError};

/// What an error must say to be answered over HTTP.
pub trait ApiError: std::error::Error {
    fn status(&self) -> StatusCode;
    /// Stable snake_case code; clients match on it, so it never changes once published.
    fn code(&self) -> &'static str;
    fn details(&self) -> Option<serde_json::Value> {
        None
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: String,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

/// An error on its way to becoming an HTTP response.
#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: self.code.to_string(),
            message: self.message.clone(),
            details: self.details.clone(),
        }
    }

    /// The envelope for a bare status (unknown route, wrong method, …).
    pub fn from_status(status: StatusCode, message: Option<String>) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::NOT_ACCEPTABLE => "not_acceptable",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::CONFLICT => "conflict",
            StatusCode::LENGTH_REQUIRED => "length_required",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::URI_TOO_LONG => "uri_too_long",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
            StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
            StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
            s if s.is_client_error() => "bad_request",
            _ => "internal_error",
        };
        let message = message
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
        Self::new(status, code, message)
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(self.envelope())
    }
}

impl<E: ApiError> From<E> for HttpError {
    fn from(error: E) -> Self {
        let status = error.status();
        if status.is_server_error() {
            // The cause goes to the log, which has the request span; the client gets the code.
            tracing::error!(code = error.code(), error = %error, "request failed");
            let mut out = HttpError::new(status, error.code(), server_message(status));
            out.details = error.details();
            return out;
        }
        HttpError {
            status,
            code: Cow::Borrowed(error.code()),
            message: error.to_string(),
            details: error.details(),
        }
    }
}

fn server_message(status: StatusCode) -> &'static str {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        "the service is temporarily unavailable; retry later"
    } else {
        "internal error; the server log has the cause"
    }
}

/// Errors of the shared kernel itself.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    RegionBinding(#[from] RegionBindingError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("wiring: {0}")]
    Wiring(String),
}

impl From<diesel::result::Error> for ShipError {
    fn from(e: diesel::result::Error) -> Self {
        ShipError::Db(DbError::Query(e))
    }
}

impl ApiError for DbError {
    fn status(&self) -> StatusCode {
        if self.is_unavailable() || self.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }

    fn code(&self) -> &'static str {
        if self.is_unavailable() {
            "database_unavailable"
        } else if self.is_transient() {
            "database_busy"
        } else {
            "internal_error"
        }
    }
}

impl ApiError for ShipError {
    fn status(&self) -> StatusCode {
        match self {
            ShipError::Db(e) => e.status(),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ShipError::Db(e) => e.code(),
            _ => "internal_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("name must not be empty")]
    struct EmptyName;

    impl ApiError for EmptyName {
        fn status(&self) -> StatusCode {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        fn code(&self) -> &'static str {
            "validation_failed"
        }
        fn details(&self) -> Option<serde_json::Value> {
            Some(serde_json::json!({"fields": {"name": "required"}}))
        }
    }

    #[test]
    fn client_errors_keep_their_message_and_details() {
        let e = HttpError::from(EmptyName);
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let body = serde_json::to_value(e.envelope()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "validation_failed",
                "message": "name must not be empty",
                "details": {"fields": {"name": "required"}}
            })
        );
    }

    #[test]
    fn server_errors_hide_their_cause() {
        let e = HttpError::from(DbError::Migration("secret table layout".into()));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.code, "internal_error");
        assert!(!e.message.contains("secret"));
        let e = HttpError::from(DbError::Unreachable {
            url: "mysql://x".into(),
            reason: "refused".into(),
        });
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, "database_unavailable");
    }

    #[test]
    fn transient_database_errors_are_retryable_503s() {
        use diesel::result::{DatabaseErrorKind, Error};
        let deadlock = DbError::Query(Error::DatabaseError(
            DatabaseErrorKind::SerializationFailure,
            Box::new("Deadlock found when trying to get lock".to_string()),
        ));
        let busy = DbError::Query(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_string()),
        ));
        for e in [deadlock, busy] {
            let http = HttpError::from(e);
            assert_eq!(
                (http.status, http.code.as_ref()),
                (StatusCode::SERVICE_UNAVAILABLE, "database_busy")
            );
        }
        let other = HttpError::from(DbError::Query(Error::NotFound));
        assert_eq!(other.code, "internal_error");
    }

    #[test]
    fn bare_statuses_map_to_stable_codes() {
        assert_eq!(
            HttpError::from_status(StatusCode::NOT_FOUND, None).code,
            "not_found"
        );
        assert_eq!(
            HttpError::from_status(StatusCode::METHOD_NOT_ALLOWED, None).code,
            "method_not_allowed"
        );
        assert_eq!(
            HttpError::from_status(StatusCode::PAYLOAD_TOO_LARGE, None).code,
            "payload_too_large"
        );
        assert_eq!(
            HttpError::from_status(StatusCode::NOT_FOUND, None).message,
            "Not Found"
        );
    }
}
