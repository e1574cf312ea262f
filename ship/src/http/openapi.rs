//! The OpenAPI document, served at `GET /openapi.json` (no token, like `/health`).
//!
//! Each part of the binary contributes its own piece, built with utoipa from the handlers'
//! `#[utoipa::path]` attributes and the `ToSchema` types of their requests and answers: a
//! domain container through `ship::contracts::Domain::openapi`, the sync and broker containers
//! through their `ui::http::openapi()`, and ship through [`document`] here — the health,
//! metrics and `/openapi.json` routes, the error envelope every error answers with
//! ([`crate::errors::ErrorEnvelope`], the body of every non-2xx response) and the two bearer
//! schemes ([`REGION_TOKEN`], [`REGION_CREDENTIAL`]). `app` [`merge`]s them and registers
//! [`configure`] with the result.
//!
//! That every registered route is documented is checked by `crates/app/tests/openapi.rs`.

use std::collections::BTreeSet;

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

/// Where the document is served.
pub const PATH: &str = "/openapi.json";

/// The security scheme of the `/sync/*` routes: `Authorization: Bearer <token>`, an Ed25519
/// JWT the broker signed for this call (docs/PROTOCOL.md, "Authentication between regions").
pub const REGION_TOKEN: &str = "region_token";

/// The security scheme of the broker's `resolve` and `heartbeat`: `Authorization: Bearer
/// rsc_…`, the credential of a registered region.
pub const REGION_CREDENTIAL: &str = "region_credential";

/// The HTTP methods an OpenAPI path item may hold, as the document spells them.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "regionsync",
        description = "The HTTP API of one regionsync region: the domain API (`/api/v1/…`), the \
                       inter-region sync protocol (`/sync/{resource}/…`, docs/PROTOCOL.md), the \
                       broker (`/api/v1/broker/…`, on the region that runs the broker role), \
                       health, metrics and this document. Every error answer is the \
                       `ErrorEnvelope`; a wrong method on a known path is 405 \
                       `method_not_allowed` with `Allow`, an unknown path 404 `not_found`, a \
                       body that is not JSON 400 `invalid_json`, one over `http.max_body_bytes` \
                       413 `payload_too_large`, one not sent as `application/json` 415 \
                       `unsupported_media_type`, one that stalls 408 `request_timeout`."
    ),
    paths(super::health::live, super::health::ready, super::metrics::metrics, serve),
    components(
        schemas(crate::errors::ErrorEnvelope),
        responses(
            BadJson,
            BodyTimeout,
            PayloadTooLarge,
            UnsupportedMediaType,
            Unavailable,
            InternalError
        )
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness and readiness of the process."),
        (name = "metrics", description = "OpenMetrics text for Prometheus."),
        (name = "openapi", description = "This document."),
    )
)]
struct ShipApi;

/// The two bearer schemes (utoipa's attribute cannot declare them).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            REGION_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An EdDSA (Ed25519) JWT the broker issued for this call \
                         (`POST /api/v1/broker/resolve`): `aud` this region, `scope` the \
                         resource, `sub` the caller; at most 300 s long. Refusals: 401 \
                         `token_missing`, `token_invalid`, `token_expired`, \
                         `token_not_yet_valid`; 403 `token_wrong_audience`, `token_scope`, \
                         `token_wrong_subject`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            REGION_CREDENTIAL,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A registered region's credential (`rsc_…`, printed once by \
                         `regionsync broker regions add`). Refusals: 401 `credential_missing`, \
                         `credential_invalid`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Ship's part of the document: the info, the health, metrics and `/openapi.json` routes, the
/// error envelope and the security schemes. The other parts are [`merge`]d into it.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ShipApi::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// Merge `part` into `document`, and say what clashed: a method of a path documented by both,
/// or a schema or security scheme of one name defined differently. (utoipa's own merge keeps
/// the first silently; two containers naming a schema alike would lose one.)
pub fn merge(
    document: &mut utoipa::openapi::OpenApi,
    part: utoipa::openapi::OpenApi,
) -> Vec<String> {
    let mut clashes = Vec::new();
    for (path, item) in &part.paths.paths {
        if let Some(ours) = document.paths.paths.get(path) {
            let (ours, theirs) = (json(ours), json(item));
            for method in METHODS {
                if ours.get(method).is_some() && theirs.get(method).is_some() {
                    clashes.push(format!(
                        "{} {path} is documented twice",
                        method.to_uppercase()
                    ));
                }
            }
        }
    }
    if let (Some(ours), Some(theirs)) = (&document.components, &part.components) {
        for (name, schema) in &theirs.schemas {
            if ours
                .schemas
                .get(name)
                .is_some_and(|s| json(s) != json(schema))
            {
                clashes.push(format!("schema `{name}` is defined twice, differently"));
            }
        }
        for (name, scheme) in &theirs.security_schemes {
            if ours
                .security_schemes
                .get(name)
                .is_some_and(|s| json(s) != json(scheme))
            {
                clashes.push(format!(
                    "security scheme `{name}` is defined twice, differently"
                ));
            }
        }
    }
    document.merge(part);
    clashes
}

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Every `(METHOD, path)` the document describes (`("GET", "/health/live")`, …).
pub fn operations(document: &utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
    document
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            let item = json(item);
            METHODS
                .iter()
                .filter(move |m| item.get(**m).is_some())
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

// The error answers most routes share, for `(status = …, response = …)` in a route's
// `#[utoipa::path]`; each is the envelope. (Registered in [`document`]'s components.)

/// `invalid_json`: the body is not JSON (also NaN, nesting deeper than 128); `unreadable_body`:
/// it was cut short or is not in its declared `Content-Encoding`.
#[derive(ToResponse)]
pub struct BadJson(pub crate::errors::ErrorEnvelope);

/// `request_timeout`: the body paused longer than `http.body_idle_timeout_secs` or took longer
/// than `http.body_timeout_secs`; the connection is closed after the answer.
#[derive(ToResponse)]
pub struct BodyTimeout(pub crate::errors::ErrorEnvelope);

/// `payload_too_large`: the body (decoded, when gzipped) is over `http.max_body_bytes`.
#[derive(ToResponse)]
pub struct PayloadTooLarge(pub crate::errors::ErrorEnvelope);

/// `unsupported_media_type`: the body is not sent as `application/json`, or with a
/// `Content-Encoding` other than gzip.
#[derive(ToResponse)]
pub struct UnsupportedMediaType(pub crate::errors::ErrorEnvelope);

/// `database_unavailable`: the database does not answer; `database_busy`: a transient lock
/// failure. Retry.
#[derive(ToResponse)]
pub struct Unavailable(pub crate::errors::ErrorEnvelope);

/// `internal_error`: a bug or an unexpected database error; the server log has the cause.
#[derive(ToResponse)]
pub struct InternalError(pub crate::errors::ErrorEnvelope);

/// The names of `T`'s schema's own properties: for a test that ties a documented body to the
/// keys its request takes (a body parsed from a JSON value has no type of its own to derive
/// the schema from).
pub fn property_names<T: utoipa::PartialSchema>() -> BTreeSet<String> {
    json(&T::schema())
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The document as served: rendered once, at start.
#[derive(Debug, Clone)]
pub struct OpenApiJson(String);

impl OpenApiJson {
    pub fn render(document: &utoipa::openapi::OpenApi) -> Result<Self, serde_json::Error> {
        document.to_json().map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Register `GET /openapi.json`, answering `document`.
pub fn configure(cfg: &mut web::ServiceConfig, document: web::Data<OpenApiJson>) {
    cfg.service(
        web::resource(PATH)
            .app_data(document)
            .route(web::get().to(serve)),
    );
}

/// The OpenAPI 3.1 document of this process's routes (a region that does not run the broker
/// role leaves the broker's routes out, as it does not serve them).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document (JSON).", body = Object, content_type = "application/json"),
    )
)]
async fn serve(document: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(document.as_str().to_string())
}

/// `GET /health/live` answers this.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveBody {
    /// Always `live`.
    #[schema(example = "live")]
    pub status: String,
}

/// `GET /health/ready` answers this when the database answers and every migration is applied.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadyBody {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: String,
    /// `sqlite` or `mysql`.
    #[schema(example = "sqlite")]
    pub backend: String,
    /// Always `current`.
    #[schema(example = "current")]
    pub migrations: String,
    /// The region this process serves (when the app registers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// What the registered status sources report, by name (`broker`, `tokens`):
    /// informational, never makes the process unready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ship_documents_its_routes_the_envelope_and_the_bearer_schemes() {
        let doc = document();
        let ops = operations(&doc);
        for (method, path) in [
            ("GET", "/health/live"),
            ("GET", "/health/ready"),
            ("GET", "/metrics"),
            ("GET", PATH),
        ] {
            assert!(
                ops.contains(&(method.into(), path.into())),
                "{method} {path}"
            );
        }
        let components = doc.components.as_ref().unwrap();
        assert!(components.schemas.contains_key("ErrorEnvelope"));
        assert!(components.security_schemes.contains_key(REGION_TOKEN));
        assert!(components.security_schemes.contains_key(REGION_CREDENTIAL));
    }

    #[test]
    fn a_clash_is_reported_and_a_new_path_is_not() {
        let mut doc = document();
        assert_eq!(
            merge(&mut doc, document()),
            vec![
                "GET /health/live is documented twice",
                "GET /health/ready is documented twice",
                "GET /metrics is documented twice",
                "GET /openapi.json is documented twice",
            ]
        );
        let mut other = utoipa::openapi::OpenApi::default();
        other.paths.paths.insert(
            "/elsewhere".into(),
            utoipa::openapi::PathItem::new(
                utoipa::openapi::HttpMethod::Get,
                utoipa::openapi::path::Operation::new(),
            ),
        );
        assert!(merge(&mut doc, other).is_empty());
        assert!(operations(&doc).contains(&("GET".into(), "/elsewhere".into())));
    }

    /// The answer of the live route is what the document says.
    #[actix_web::test]
    async fn the_live_answer_deserializes_into_its_documented_shape() {
        let res = super::super::health::live().await;
        let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
        let live: LiveBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(live.status, "live");
    }
}
