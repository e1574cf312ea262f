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

/// How much of any client-supplied string an error message or a log line echoes.
pub const CLIENT_ECHO_BYTES: usize = 128;
/// The most an error message carries, whatever it embeds.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// The most any one string inside `details` carries.
pub const MAX_DETAIL_STRING_BYTES: usize = 256;

/// `text` cut to [`CLIENT_ECHO_BYTES`] (on a character boundary) and marked as cut, so a
/// message can name what a client sent without echoing a megabyte of it.
pub fn clip(text: &str) -> Cow<'_, str> {
    clip_to(text, CLIENT_ECHO_BYTES)
}

/// `text` cut to at most `max` bytes plus the marker `…(cut, N bytes)`.
pub fn clip_to(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…(cut, {} bytes)", &text[..end], text.len()))
}

/// Room for the marker [`clip`] appends (a run that carries it and fits was cut already).
const MARKER_ROOM: usize = 40;

/// Every `` `quoted` `` run of `message` (how serde and our messages quote what a client sent)
/// clipped to [`CLIENT_ECHO_BYTES`] (a run [`clip`] already cut is left as it is).
pub fn clip_quoted(message: &str) -> Cow<'_, str> {
    let already_cut = |q: &str| q.len() <= CLIENT_ECHO_BYTES + MARKER_ROOM && q.contains("…(cut, ");
    let too_long = |q: &str| q.len() > CLIENT_ECHO_BYTES && !already_cut(q);
    let parts: Vec<&str> = message.split('`').collect();
    if !parts.iter().skip(1).step_by(2).any(|q| too_long(q)) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(MAX_MESSAGE_BYTES);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 && too_long(part) {
            out.push_str(&clip(part));
        } else {
            out.push_str(part);
        }
    }
    Cow::Owned(out)
}

/// The most entries of any one list or object in `details` (an ops batch holds at most 1 000
/// ops by default, each named once or a few times; the sender dead-letters by these).
pub const MAX_DETAIL_ENTRIES: usize = 2_000;

/// Every string in `value` (keys too) clipped to [`MAX_DETAIL_STRING_BYTES`], every list and
/// object to [`MAX_DETAIL_ENTRIES`] entries.
fn bound_details(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(clip_to(s, MAX_DETAIL_STRING_BYTES).into_owned()),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .take(MAX_DETAIL_ENTRIES)
                .map(bound_details)
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .take(MAX_DETAIL_ENTRIES)
                .map(|(k, v)| {
                    (
                        clip_to(k, MAX_DETAIL_STRING_BYTES).into_owned(),
                        bound_details(v),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What an error must say to be answered over HTTP.
pub trait ApiError: std::error::Error {
    fn status(&self) -> StatusCode;
    /// Stable snake_case code; clients match on it, so it never changes once published.
    fn code(&self) -> &'static str;
    fn details(&self) -> Option<serde_json::Value> {
        None
    }
}

/// The JSON body of every error response (in the OpenAPI document as `ErrorEnvelope`, the body
/// of every error answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"error": "invalid_cursor", "message": "invalid cursor: the cursor is not base64url", "details": null}))]
pub struct ErrorEnvelope {
    /// The stable snake_case code clients match on (docs/PROTOCOL.md lists every code).
    pub error: String,
    /// What went wrong, for a person: at most 1 KiB, client text clipped to 128 bytes; a
    /// server error (5xx) says only that the log has the cause.
    pub message: String,
    /// Code-specific detail (`fields` of `validation_failed`, `errors` of `invalid_ops`,
    /// `parameter` of `invalid_query`, …), or `null`.
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

    /// The JSON body: bounded whatever the error embeds — the message to
    /// [`MAX_MESSAGE_BYTES`] with quoted client text clipped, each detail string to
    /// [`MAX_DETAIL_STRING_BYTES`].
    pub fn envelope(&self) -> ErrorEnvelope {
        let message = clip_quoted(&self.message);
        ErrorEnvelope {
            error: self.code.to_string(),
            message: clip_to(&message, MAX_MESSAGE_BYTES).into_owned(),
            details: self.details.as_ref().map(bound_details),
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
            clip_to(&clip_quoted(&self.message), MAX_MESSAGE_BYTES)
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

    /// Issue 12: a megabyte of client text in a message or in details answers a bounded body.
    #[test]
    fn envelopes_are_bounded_whatever_the_error_embeds() {
        let huge = "é".repeat(600_000);
        let e = HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("unknown field `{huge}`, expected `name`"),
        )
        .with_details(serde_json::json!({"fields": [{"field": huge.clone(), "message": huge}]}));
        let body = serde_json::to_string(&e.envelope()).unwrap();
        assert!(body.len() < 2048, "{} bytes", body.len());
        let envelope = e.envelope();
        assert!(envelope.message.starts_with("unknown field `éé"));
        assert!(envelope
            .message
            .contains("(cut, 1200000 bytes)`, expected `name`"));
        assert!(e.to_string().len() < 1200);
        let many = HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "x")
            .with_details(
                serde_json::json!({"fields": vec![serde_json::json!({"f": 1}); 100_000]}),
            );
        let listed = many.envelope().details.unwrap()["fields"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(listed, MAX_DETAIL_ENTRIES);
        let cut_once = format!("a `{}` b", clip(&"q".repeat(10_000)));
        assert_eq!(
            clip_quoted(&cut_once),
            cut_once,
            "a run cut already is left as it is"
        );
        let plain = HttpError::new(StatusCode::BAD_REQUEST, "x", "short `and` plain");
        assert_eq!(plain.envelope().message, "short `and` plain");
        assert_eq!(clip("abc"), "abc");
        assert_eq!(clip_to("abcdef", 3), "abc…(cut, 6 bytes)");
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
