//! The token check in front of each route: `resource.wrap(from_fn(middleware::require_token))`
//! with an [`AuthGate`] registered as `web::Data`. The resource is the route's `{resource}`
//! match, percent-decoded exactly as `web::Path` decodes it, so the scope is checked on the
//! resource the handler will serve (never on the raw, still-encoded path). Verified claims go
//! into the request's extensions;
//! a controller whose body names a source region checks it with
//! [`TokenVerifier::check_subject`].
//!
//! A token naming a key id this region does not know triggers one refresh of the key set from
//! the [`KeySource`] (at most once per `min_refresh_interval`), then one more verification.
//! The refresh is single-flight: requests arriving while it runs wait for it and verify against
//! its result, so a rotation does not refuse the requests racing the first one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use super::{AuthError, TokenVerifier};
use crate::contracts::KeySource;
use crate::errors::HttpError;

/// The verifier, where to refresh its keys, and how often that may happen.
pub struct AuthGate {
    pub verifier: Arc<TokenVerifier>,
    keys: Option<Arc<dyn KeySource>>,
    min_refresh_interval: Duration,
    /// When the last refresh started; held for the whole refresh (single flight).
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl AuthGate {
    pub fn new(verifier: Arc<TokenVerifier>, keys: Option<Arc<dyn KeySource>>) -> Self {
        Self {
            verifier,
            keys,
            min_refresh_interval: Duration::from_secs(10),
            last_refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// Verify `token` for `resource`, refreshing the keys once if it names an unknown kid.
    pub async fn verify(
        &self,
        token: Option<&str>,
        resource: &str,
    ) -> Result<super::TokenClaims, AuthError> {
        if let (Some(token), Some(source)) = (token, &self.keys) {
            if let Some(kid) =
                TokenVerifier::kid_of(token).filter(|kid| !self.verifier.knows_kid(kid))
            {
                self.refresh_for(&kid, source.as_ref()).await;
            }
        }
        self.verifier.verify(token, resource)
    }

    /// Fetch the key set unless a refresh ran recently; callers that arrive while one runs
    /// wait for it instead of starting another.
    async fn refresh_for(&self, kid: &str, source: &dyn KeySource) {
        let mut last = self.last_refresh.lock().await;
        if self.verifier.knows_kid(kid) {
            return; // the refresh we waited for brought it
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refresh_interval) {
            return;
        }
        *last = Some(Instant::now());
        match source.public_keys().await {
            Ok(keys) => {
                if let Err(e) = self.verifier.set_keys(&keys) {
                    tracing::warn!(error = %e, "the broker's key set is unusable");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not refresh the broker's keys"),
        }
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(req: &actix_web::HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `from_fn` middleware: refuse the request unless its token is valid for the resource.
///
/// A refusal is answered as a response (not returned as an error), so it passes through the
/// server's own middleware like any answer: it carries the request id, and the request body
/// it never read is held until the answer is sent, so the connection is closed instead of a
/// never-ending body being drained (`ship::http::body`).
pub async fn require_token<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(gate) = req.app_data::<web::Data<AuthGate>>().cloned() else {
        tracing::error!("require_token without an AuthGate: refusing");
        let error = HttpError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        );
        return Ok(req.error_response(error).map_into_right_body());
    };
    let resource = routed_resource(&req);
    let token = bearer_token(req.request()).map(str::to_string);
    match gate.verify(token.as_deref(), &resource).await {
        Ok(claims) => {
            req.extensions_mut().insert(claims);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(req.error_response(HttpError::from(e)).map_into_right_body()),
    }
}

/// The `{resource}` the router matched, fully percent-decoded (as `web::Path` decodes it). A
/// route without that parameter, or a name that does not decode to UTF-8, yields a name no
/// token can have in scope.
fn routed_resource(req: &ServiceRequest) -> String {
    req.match_info()
        .get("resource")
        .and_then(|raw| percent_encoding::percent_decode_str(raw).decode_utf8().ok())
        .map(|name| name.into_owned())
        .unwrap_or_default()
}
