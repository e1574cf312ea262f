pub mod apply_ops;
pub mod get_changes;
pub mod get_digest;
pub mod get_snapshot;

/// The calling region's database incarnation (its `Regionsync-Incarnation` header), when it
/// sent a plausible one ('' otherwise: older regions send none).
/// The caller's `Regionsync-Conflict-Policy` header, as sent (clipped to 32 characters; ''
/// if absent: a region that does not say — one from before policies, or a `curl` — is `lww`).
/// The action judges it.
pub(crate) fn sender_policy(request: &actix_web::HttpRequest) -> String {
    request
        .headers()
        .get(ship::http::CONFLICT_POLICY_HEADER)
        .map(|v| ship::http::stated_policy(v.as_bytes()))
        .unwrap_or_default()
}

pub(crate) fn sender_incarnation(request: &actix_web::HttpRequest) -> String {
    request
        .headers()
        .get(ship::http::INCARNATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 32 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .unwrap_or_default()
        .to_string()
}
