//! Request bodies: a read deadline on every body, and the JSON extractor every typed body goes
//! through.
//!
//! - [`limit_body_time`] wraps each request's payload so that a body stalled for
//!   `http.body_idle_timeout_secs`, or still arriving after `http.body_timeout_secs`, ends with
//!   an I/O `TimedOut` error; [`super::json_error`] answers it `408 request_timeout` and the
//!   connection is closed. actix's own `client_request_timeout` covers only the request head.
//! - [`Json`] takes a body as JSON in two steps, so the codes follow the documented rule
//!   whatever the body's shape: first it must be JSON at all (syntax, nesting of at most 128,
//!   else `400 invalid_json`), then an object of the expected shape (else `422 invalid_body`).
//!   `web::Json<T>` decides directly into `T`, so a top-level array nested 200 deep was a shape
//!   error (`invalid_body`) and an array of the right length was taken as the struct's fields.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::web::Bytes;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::errors::{HttpError, StatusCode};

/// How long a body may take: idle between chunks, and in all.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeouts {
    pub idle: Duration,
    pub total: Duration,
}

/// The message of a body that timed out (also how [`is_body_timeout`] knows it).
const TIMED_OUT: &str = "the request body was not received in time";

/// Put the read deadline on `req`'s body (a request without a body is left as it is).
pub fn limit_body_time(req: &mut ServiceRequest, timeouts: BodyTimeouts) {
    let payload = req.take_payload();
    if matches!(payload, Payload::None) {
        req.set_payload(payload);
        return;
    }
    let deadline = Instant::now() + timeouts.total;
    let stream = futures_util::stream::unfold(Some(payload), move |state| async move {
        let mut payload = state?;
        let wait = timeouts
            .idle
            .min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, payload.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(payload))),
            Ok(None) => None,
            Err(_) => Some((
                Err(PayloadError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    TIMED_OUT,
                ))),
                None,
            )),
        }
    });
    let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
    req.set_payload(Payload::from(boxed));
}

/// Whether a payload error is the body deadline of [`limit_body_time`].
pub fn is_body_timeout(err: &PayloadError) -> bool {
    match err {
        PayloadError::Io(e) | PayloadError::Incomplete(Some(e)) => {
            e.kind() == io::ErrorKind::TimedOut
        }
        _ => false,
    }
}

/// The `408 request_timeout` answer.
pub fn body_timeout_error() -> HttpError {
    HttpError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!("{TIMED_OUT}: send the whole body without pausing (see http.body_timeout_secs)"),
    )
}

/// A JSON object body of type `T` (see the module doc for the codes). The size limit and the
/// answers to a body that cannot be read are the route's `web::JsonConfig`'s.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Syntax and depth first (serde_json's Value parser refuses nesting deeper than 128
        // as a syntax error); the shape second.
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = value.await?.into_inner();
            if !value.is_object() {
                return Err(HttpError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    "the body must be a JSON object",
                )
                .into());
            }
            serde_json::from_value::<T>(value)
                .map(Json)
                .map_err(|e| super::json_error(&JsonPayloadError::Deserialize(e)).into())
        })
    }
}
