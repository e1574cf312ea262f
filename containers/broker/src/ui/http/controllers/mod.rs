//! Controllers: read the credential and the body, call one action, answer JSON.

pub mod heartbeat;
pub mod keys;
pub mod resolve;

use actix_web::HttpRequest;
use ship::auth::middleware::bearer_token;

use crate::actions::Caller;

/// The caller as its bearer credential says (empty when there is none: `credential_missing`).
fn caller(req: &HttpRequest) -> Caller {
    Caller::Credential(bearer_token(req).unwrap_or_default().to_string())
}
