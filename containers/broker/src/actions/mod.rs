//! The broker's use cases.

pub mod heartbeat;
pub mod list_regions;
pub mod place_tenant;
pub mod public_keys;
pub mod register_region;
pub mod register_self;
pub mod remove_region;
pub mod resolve;
pub mod rotate_credential;

pub use heartbeat::{HeartbeatAction, HeartbeatInput};
pub use list_regions::ListRegionsAction;
pub use place_tenant::{PlaceTenantAction, PlaceTenantInput, Placement};
pub use public_keys::PublicKeysAction;
pub use register_region::{RegisterRegionAction, RegisterRegionInput, RegisteredRegion};
pub use register_self::{RegisterSelfAction, RegisterSelfInput};
pub use remove_region::RemoveRegionAction;
pub use resolve::{Caller, ResolveAction, ResolveInput, ResolveOutput, ResolvedRegion};
pub use rotate_credential::RotateCredentialAction;

/// Every base URL that enters the registry (register, heartbeat, register_self) passes this
/// rule: see [`crate::base_url`].
pub(crate) fn check_base_url(
    url: &str,
    policy: crate::base_url::UrlPolicy,
) -> Result<(), crate::BrokerError> {
    crate::base_url::check(url, policy)
}
