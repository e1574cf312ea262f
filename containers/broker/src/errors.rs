//! The broker container's errors, each with a status and a stable code.

use ship::errors::StatusCode;
use ship::{ApiError, DbError};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("send the region's credential as `Authorization: Bearer <credential>`")]
    CredentialMissing,
    #[error("the region credential is not valid")]
    CredentialInvalid,
    #[error("no tenant `{0}` is placed; place it with `regionsync broker tenants place`")]
    UnknownTenant(String),
    #[error("no region `{0}` is registered at the broker")]
    UnknownRegion(String),
    #[error("region `{0}` is already registered")]
    RegionExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("this region does not run the broker role (broker.enabled = false)")]
    NotBroker,
    #[error("tokens cannot be signed: {0}")]
    Signing(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for BrokerError {
    fn from(e: diesel::result::Error) -> Self {
        BrokerError::Db(DbError::Query(e))
    }
}

impl ApiError for BrokerError {
    fn status(&self) -> StatusCode {
        match self {
            BrokerError::CredentialMissing | BrokerError::CredentialInvalid => {
                StatusCode::UNAUTHORIZED
            }
            BrokerError::UnknownTenant(_)
            | BrokerError::UnknownRegion(_)
            | BrokerError::NotBroker => StatusCode::NOT_FOUND,
            BrokerError::RegionExists(_) => StatusCode::CONFLICT,
            BrokerError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            BrokerError::Signing(_) => StatusCode::INTERNAL_SERVER_ERROR,
            BrokerError::Db(e) => e.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            BrokerError::CredentialMissing => "credential_missing",
            BrokerError::CredentialInvalid => "credential_invalid",
            BrokerError::UnknownTenant(_) => "unknown_tenant",
            BrokerError::UnknownRegion(_) => "unknown_region",
            BrokerError::RegionExists(_) => "region_exists",
            BrokerError::Invalid(_) => "invalid_request",
            BrokerError::NotBroker => "not_broker",
            BrokerError::Signing(_) => "internal_error",
            BrokerError::Db(e) => e.code(),
        }
    }
}
