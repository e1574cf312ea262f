//! HTTP plumbing shared by every process that serves: the server builder (body limits, JSON
//! error envelope for every failure, request spans with a request id), and the health and
//! metrics routes.
//!
//! Architecture invariant: every error response leaving the server is the JSON envelope of
//! [`crate::errors`] — extractor failures through the `*Config` error handlers below, anything
//! else (unknown route, wrong method, actix's own errors) through [`envelope_errors`].

pub mod body;
mod health;
pub mod metrics;
pub mod openapi;
pub mod query;
pub mod spans;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, Service, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::config::HttpSettings;
use crate::db::DbPool;
use crate::errors::{HttpError, StatusCode};

pub use body::{BodyTimeouts, Json};
pub use health::configure as health_routes;
pub use health::RegionName;

/// A container's (or the app's) route registration.
pub type Configure = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// The response header carrying the request id (also in every log line of the request span).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The incarnation of the sending region's database (ADR 0012), on every sync request a
/// region makes and every sync answer it gives.
pub const INCARNATION_HEADER: &str = "regionsync-incarnation";

/// The conflict policy (`lww`, `delete_wins`) by which the sending region decides the
/// resource's conflicts, on every ops batch it pushes and every feed or snapshot page it
/// answers; absent means `lww` (regions from before policies). A peer whose policy differs is
/// refused: regions with different policies would diverge.
pub const CONFLICT_POLICY_HEADER: &str = "regionsync-conflict-policy";

/// A peer's `Regionsync-Conflict-Policy` value as text for judging and messages: lossy UTF-8,
/// at most 32 characters (a header is the peer's words: bounded like a client's).
pub fn stated_policy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).chars().take(32).collect()
}

/// JSON bodies: size limit, and every failure as the envelope.
/// Syntax errors are 400 `invalid_json`; well-formed JSON of the wrong shape is 422
/// `invalid_body`; too large is 413 `payload_too_large`; a wrong content type is 415.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| json_error(&err).into())
}

/// The envelope for a JSON body that could not be taken (exposed so a route with its own
/// `JsonConfig` keeps the same codes for everything it does not handle itself). What the
/// client sent is echoed clipped (serde quotes it in backticks).
pub fn json_error(err: &JsonPayloadError) -> HttpError {
    match err {
        JsonPayloadError::Payload(p) if body::is_body_timeout(p) => body::body_timeout_error(),
        JsonPayloadError::OverflowKnownLength { length, limit } => HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is {length} bytes; the limit is {limit}"),
        ),
        JsonPayloadError::Overflow { limit } => HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        ),
        JsonPayloadError::ContentType => HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!(
                "the JSON body does not have the expected shape: {}",
                crate::errors::clip_quoted(&e.to_string())
            ),
        ),
        JsonPayloadError::Deserialize(e) => HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "the body is not valid JSON: {}",
                crate::errors::clip_quoted(&e.to_string())
            ),
        ),
        // Cut short, or not in the `Content-Encoding` it declares (a body said to be gzip
        // that is not). Not `invalid_body`: that is a 422, a body read whole of the wrong shape.
        other => HttpError::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            format!(
                "the body could not be read (cut short, or not in its declared Content-Encoding): {}",
                crate::errors::clip_quoted(&other.to_string())
            ),
        ),
    }
}

/// Query strings: every failure is 400 `invalid_query`.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!(
                "the query string is invalid: {}",
                crate::errors::clip_quoted(&err.to_string())
            ),
        )
        .into()
    })
}

/// Path segments: a segment that does not parse is 400 `invalid_path`.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req: &HttpRequest| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!(
                "the path is invalid: {}",
                crate::errors::clip_quoted(&err.to_string())
            ),
        )
        .into()
    })
}

/// Turn any error response that is not already JSON into the envelope (404 for unknown
/// routes, 405 for wrong methods, errors raised inside actix itself).
pub fn envelope_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = res.response().error().map(|e| e.to_string());
    let (req, old) = res.into_parts();
    let mut new =
        HttpResponse::build(status).json(HttpError::from_status(status, message).envelope());
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = old.headers().get(&name) {
            new.headers_mut().insert(name, value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&HttpError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route for {} {}",
            req.method(),
            crate::errors::clip(req.path())
        ),
    ))
}

/// Build the HTTP server on an already bound listener (so tests can bind port 0).
///
/// Signals are not handled here: the caller owns shutdown (see `Server::handle`), because a
/// process that also runs the scheduler must stop both together.
pub fn server(
    listener: TcpListener,
    pool: DbPool,
    settings: &HttpSettings,
    configure: Configure,
) -> std::io::Result<Server> {
    let limit = settings.max_body_bytes;
    let timeouts = BodyTimeouts {
        idle: Duration::from_secs(settings.body_idle_timeout_secs),
        total: Duration::from_secs(settings.body_timeout_secs),
    };
    let pool = web::Data::new(pool);
    let mut server = HttpServer::new(move || {
        let configure = Arc::clone(&configure);
        App::new()
            .wrap(ErrorHandlers::new().default_handler(envelope_errors))
            // Inside the body deadline below: a gzipped body is read under it too.
            .wrap(actix_web::middleware::from_fn(body::decode_request_body))
            .wrap_fn(move |mut req, srv| {
                let unread = body::limit_body_time(&mut req, timeouts);
                let fut = srv.call(req);
                async move {
                    // (A middleware must answer its refusals as responses, not errors: an error
                    // skips this, so the unread body would be drained and the request id
                    // missing — see `auth::middleware::require_token`.)
                    let res = fut.await?.map_into_boxed_body();
                    // The rest of a stalled or unread body is not waited for.
                    let mut res = res.map_body(|_, b| body::hold_unread_body(&unread, b));
                    let id = res.request().extensions().get::<RequestId>().copied();
                    if let Some(value) =
                        id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok())
                    {
                        res.headers_mut()
                            .insert(header::HeaderName::from_static(REQUEST_ID_HEADER), value);
                    }
                    Ok(res)
                }
            })
            .wrap(TracingLogger::<spans::RequestSpan>::new())
            .app_data(json_config(limit))
            .app_data(web::PayloadConfig::new(limit))
            .app_data(body::DecodedBodyLimit(limit))
            .app_data(query_config())
            .app_data(path_config())
            .app_data(pool.clone())
            .configure(health_routes)
            .configure(metrics::configure)
            .configure(move |cfg| configure(cfg))
            .default_service(web::to(not_found))
    })
    // A response written in pieces (a gzipped page goes out chunk by chunk) must not wait for
    // the reader's delayed ACK between its last two writes (Nagle): ~40 ms per page on Linux.
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(settings.shutdown_timeout_secs);
    if let Some(workers) = settings.workers {
        server = server.workers(workers);
    }
    Ok(server.client_request_timeout(Duration::from_secs(30)).run())
}
