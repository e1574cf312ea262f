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

/// A base URL is an absolute http(s) URL with a host, at most 2048 bytes.
pub(crate) fn check_base_url(url: &str) -> Result<(), crate::BrokerError> {
    let ok = url.len() <= 2048
        && (url.starts_with("http://") || url.starts_with("https://"))
        && url::Url::parse(url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.query().is_none()
                && u.fragment().is_none()
        });
    if ok {
        Ok(())
    } else {
        Err(crate::BrokerError::Invalid(format!(
            "base_url `{url}` is not an http(s) URL"
        )))
    }
}
