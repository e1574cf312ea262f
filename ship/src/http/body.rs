//! Request bodies: a read deadline on every body, and the JSON extractor every typed body goes
//! through.
//!
//! - [`limit_body_time`] wraps each request's payload so that a body stalled for
//!   `http.body_idle_timeout_secs`, or still arriving after `http.body_timeout_secs`, ends with
//!   an I/O `TimedOut` error; [`super::json_error`] answers it `408 request_timeout`, and
//!   [`hold_unread_body`] makes actix close the connection after any answer given while the body
//!   was not read to its end. actix's own `client_request_timeout` covers only the request head.
//! - [`Json`] takes a body as JSON in two steps, so the codes follow the documented rule
//!   whatever the body's shape: first it must be JSON at all (syntax, nesting of at most 128,
//!   else `400 invalid_json`), then an object of the expected shape (else `422 invalid_body`).
//!   `web::Json<T>` decides directly into `T`, so a top-level array nested 200 deep was a shape
//!   error (`invalid_body`) and an array of the right length was taken as the struct's fields.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::web::Bytes;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::Stream;
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

/// A request's body while it is being read: `None` once it has been read to its end.
pub type BodySlot = Rc<RefCell<Option<Payload>>>;

/// Put the read deadline on `req`'s body. The body itself stays in the returned slot until it
/// has been read to its end: whoever answers the request first hands what is left of it to
/// [`hold_unread_body`], so that actix closes the connection instead of waiting for (or
/// draining) a body nobody reads.
pub fn limit_body_time(req: &mut ServiceRequest, timeouts: BodyTimeouts) -> BodySlot {
    let payload = req.take_payload();
    if matches!(payload, Payload::None) {
        req.set_payload(payload);
        return Rc::new(RefCell::new(None));
    }
    let slot = Rc::new(RefCell::new(Some(payload)));
    let now = Instant::now();
    let body = TimedBody {
        slot: Rc::clone(&slot),
        deadline: now + timeouts.total,
        idle: timeouts.idle,
        timer: Box::pin(tokio::time::sleep_until(
            (now + timeouts.idle).min(now + timeouts.total),
        )),
        timed_out: false,
    };
    let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(body);
    req.set_payload(Payload::from(boxed));
    slot
}

/// What is left of an unread (or timed-out) request body rides along with the response body
/// until that is sent: actix then sees a request body neither finished nor dropped when it
/// decides about the connection, and closes it after the answer. (A dropped chunked body
/// would be drained for as long as the client keeps sending it.)
pub fn hold_unread_body(slot: &BodySlot, body: BoxBody) -> BoxBody {
    match slot.borrow_mut().take() {
        Some(unread) => BoxBody::new(HoldingBody {
            body,
            _unread: unread,
        }),
        None => body,
    }
}

/// A response body that keeps the unread request body alive until it has been sent.
struct HoldingBody {
    body: BoxBody,
    _unread: Payload,
}

impl MessageBody for HoldingBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

/// The body as the handlers read it: the payload in the slot, with the deadlines.
struct TimedBody {
    slot: BodySlot,
    deadline: Instant,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    timed_out: bool,
}

impl Stream for TimedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(None);
        }
        let mut slot = this.slot.borrow_mut();
        let Some(payload) = slot.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(payload).poll_next(cx) {
            Poll::Ready(Some(chunk)) => {
                let next = (Instant::now() + this.idle).min(this.deadline);
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(chunk))
            }
            Poll::Ready(None) => {
                *slot = None;
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.timed_out = true;
                    Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        TIMED_OUT,
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
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

/// How large a request body may decode to (`http.max_body_bytes`): the bound of
/// [`decode_request_body`], registered as app data by ship's server.
#[derive(Debug, Clone, Copy)]
pub struct DecodedBodyLimit(pub usize);

/// Request bodies sent with `Content-Encoding: gzip`, decoded here, bounded, instead of by
/// actix's extractors — those inflate each network chunk whole before any limit applies, so a
/// small gzip "bomb" could take hundreds of MiB per request on any route. The compressed body
/// is read up to the limit, decoded on the blocking pool reading no more than the limit plus
/// one byte, and handed on plain (`Content-Encoding` removed): every route's own limit then
/// counts the decoded bytes. A body that decodes past the limit is `413 payload_too_large`, one
/// that is not gzip `400 unreadable_body`; another encoding is `415 unsupported_media_type`.
pub async fn decode_request_body<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    use actix_web::http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH};
    use futures_util::StreamExt;
    let encoding = req
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let Some(encoding) = encoding.filter(|e| !e.is_empty() && e != "identity") else {
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    let refuse =
        |req: ServiceRequest, err: HttpError| Ok(req.error_response(err).map_into_right_body());
    if encoding != "gzip" {
        return refuse(
            req,
            HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "a request body may be sent plain or with Content-Encoding: gzip",
            ),
        );
    }
    let limit = req
        .app_data::<DecodedBodyLimit>()
        .map_or(8 * 1024 * 1024, |l| l.0);
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body decodes to more than the limit of {limit} bytes"),
        )
    };
    let mut payload = req.take_payload();
    let mut raw = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) if is_body_timeout(&e) => return refuse(req, body_timeout_error()),
            Err(e) => {
                return refuse(
                    req,
                    HttpError::new(
                        StatusCode::BAD_REQUEST,
                        "unreadable_body",
                        format!("the body could not be read: {e}"),
                    ),
                )
            }
        };
        if raw.len() + chunk.len() > limit {
            return refuse(req, too_large());
        }
        raw.extend_from_slice(&chunk);
    }
    let decoded = web::block(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(flate2::read::GzDecoder::new(&raw[..]), limit as u64 + 1),
            &mut out,
        )
        .map(|_| out)
    })
    .await;
    let decoded = match decoded {
        Ok(Ok(out)) if out.len() > limit => return refuse(req, too_large()),
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return refuse(
                req,
                HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    format!("the body is not in its declared Content-Encoding (gzip): {e}"),
                ),
            )
        }
        Err(e) => return Err(actix_web::error::ErrorInternalServerError(e)),
    };
    let headers = req.headers_mut();
    headers.remove(CONTENT_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(decoded.len()));
    req.set_payload(Payload::from(Bytes::from(decoded)));
    next.call(req).await.map(|r| r.map_into_left_body())
}
