//! The broker's routes in the OpenAPI document (`GET /openapi.json`): every route
//! [`super::configure`] registers (`crates/app/tests/openapi.rs` fails on one left out). `app`
//! merges this part only on the region that runs the broker role, the one that serves them.

use serde::{Deserialize, Serialize};
use ship::auth::keys::PublicJwk;

use crate::ui::http::controllers;

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        controllers::resolve::resolve,
        controllers::heartbeat::heartbeat,
        controllers::keys::keys,
    ),
    tags((
        name = "broker",
        description = "The broker role (docs/PROTOCOL.md, Broker): the regions registry, \
                       tenant placement and the tokens regions call each other with. Served \
                       by the region that runs it (`broker.enabled`)."
    ))
)]
struct BrokerApi;

/// This container's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <BrokerApi as utoipa::OpenApi>::openapi()
}

// Its controller writes it as a JSON value; crates/app/tests/openapi.rs reads a real answer
// into this type.
/// The broker's public keys.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeysBody {
    /// The current signing key first, then retired keys still accepted.
    pub keys: Vec<PublicJwk>,
}
