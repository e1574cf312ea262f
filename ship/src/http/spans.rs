//! The request span and what a request's end writes to the log.
//!
//! A refusal (4xx) is the client's business: it is counted ([`refusal_counts`], served by
//! `/metrics` as `regionsync_http_refusals`) and logged at DEBUG only, so a flood of bad
//! requests cannot turn into gigabytes of log. A server error (5xx) is logged once at ERROR:
//! an [`HttpError`] was logged with its cause where it was made, anything else (an error of
//! actix's own) is logged here. Every client-supplied field of the
//! span is clipped ([`crate::errors::clip`]): the span's fields are repeated on every line the
//! request logs.
//!
//! Every request's duration (arrival to response head) is observed by route and status into
//! `regionsync_http_request_duration_seconds` ([`super::metrics::observe_request`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

use crate::errors::{clip, HttpError};

/// Refused requests since the process started, by (status, code).
static REFUSALS: Mutex<BTreeMap<(u16, String), u64>> = Mutex::new(BTreeMap::new());
/// Requests the HTTP/1 parser refused before any route saw them (see `telemetry`).
static MALFORMED: AtomicU64 = AtomicU64::new(0);

/// Count one refusal.
pub fn count_refusal(status: u16, code: &str) {
    let mut map = REFUSALS.lock().unwrap_or_else(PoisonError::into_inner);
    *map.entry((status, code.to_string())).or_default() += 1;
}

/// The refusals counted so far, by (status, code).
pub fn refusal_counts() -> Vec<((u16, String), u64)> {
    let map = REFUSALS.lock().unwrap_or_else(PoisonError::into_inner);
    map.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

/// Count one request the HTTP parser refused (malformed head, conflicting lengths, …).
pub fn count_malformed() {
    MALFORMED.fetch_add(1, Ordering::Relaxed);
}

/// Requests the HTTP parser refused so far.
pub fn malformed_count() -> u64 {
    MALFORMED.load(Ordering::Relaxed)
}

/// When the request arrived (kept in its extensions by the span, read at its end).
#[derive(Clone, Copy)]
struct Arrived(Instant);

/// The route label of a request: the pattern it matched (`/sync/{resource}/ops`), never the
/// raw path; `unmatched` when no route matched.
fn route_label(request: &actix_web::HttpRequest) -> String {
    request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string())
}

/// The root span of every request.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        request.extensions_mut().insert(Arrived(Instant::now()));
        let route = request.match_pattern().unwrap_or_default();
        let target = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("");
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %clip(&route),
            http.target = %clip(target),
            request_id = %id,
            http.status_code = tracing::field::Empty,
            error.code = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, error) = match outcome {
            Ok(response) => (response.status(), response.response().error()),
            Err(error) => (error.as_response_error().status_code(), Some(error)),
        };
        span.record("http.status_code", status.as_u16());
        // (An error that is no response carries no request: not timed. Handlers' errors are
        // responses by now.)
        if let Ok(response) = outcome {
            let request = response.request();
            let arrived = request.extensions().get::<Arrived>().copied();
            if let Some(Arrived(at)) = arrived {
                super::metrics::observe_request(
                    &route_label(request),
                    status.as_u16(),
                    at.elapsed().as_secs_f64(),
                );
            }
        }
        if !(status.is_client_error() || status.is_server_error()) {
            return;
        }
        let ours = error.and_then(|e| e.as_error::<HttpError>());
        let code = ours
            .map(|e| e.code.to_string())
            .unwrap_or_else(|| HttpError::from_status(status, None).code.into_owned());
        span.record("error.code", code.as_str());
        if status.is_server_error() {
            if ours.is_none() {
                tracing::error!(status = status.as_u16(), code = %code, "request failed");
            }
        } else {
            count_refusal(status.as_u16(), &code);
            tracing::debug!(status = status.as_u16(), code = %code, "request refused");
        }
    }
}
