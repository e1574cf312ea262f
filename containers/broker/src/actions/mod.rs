//! The broker's use cases.

pub mod heartbeat;
pub mod list_regions;
pub mod place_tenant;
pub mod public_keys;
pub mod register_region;
pub mod register_self;
pub mod remove_region;
pub mod resolve;

pub use heartbeat::{HeartbeatAction, HeartbeatInput};
pub use list_regions::ListRegionsAction;
pub use place_tenant::{PlaceTenantAction, PlaceTenantInput, Placement};
pub use public_keys::PublicKeysAction;
pub use register_region::{RegisterRegionAction, RegisterRegionInput, RegisteredRegion};
pub use register_self::{RegisterSelfAction, RegisterSelfInput};
pub use remove_region::RemoveRegionAction;
pub use resolve::{Caller, ResolveAction, ResolveInput, ResolveOutput, ResolvedRegion};

/// Region ids are slugs; base URLs are http(s).
pub(crate) fn check_base_url(url: &str) -> Result<(), crate::BrokerError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2048
        && url.len() > "http://".len();
    if ok {
        Ok(())
    } else {
        Err(crate::BrokerError::Invalid(format!(
            "base_url `{url}` is not an http(s) URL"
        )))
    }
}
