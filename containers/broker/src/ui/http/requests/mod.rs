//! Request bodies of the broker routes.

use serde::Deserialize;

/// `POST /api/v1/broker/resolve`: at most one of the two.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The tenant's home region (and its placement `epoch`).
    pub tenant_id: Option<String>,
    /// That region only.
    pub target_region: Option<String>,
}

/// `POST /api/v1/broker/heartbeat`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// Where the region is reached now, if that changed.
    pub base_url: Option<String>,
}
