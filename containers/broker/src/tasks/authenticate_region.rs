//! AuthenticateRegion: the region a credential belongs to, or the caller a trusted in-process
//! call names.

use ship::parents::Task;
use ship::AnyConnection;

use crate::actions::Caller;
use crate::credentials;
use crate::data::regions;
use crate::errors::BrokerError;
use crate::models::{Region, ALL_SCOPES};

pub(crate) struct AuthenticateRegionTask;

impl Task for AuthenticateRegionTask {
    const NAME: &'static str = "broker.authenticate_region";
}

impl AuthenticateRegionTask {
    pub(crate) fn run(conn: &mut AnyConnection, caller: &Caller) -> Result<Region, BrokerError> {
        match caller {
            Caller::Credential(credential) => {
                if credential.is_empty() {
                    return Err(BrokerError::CredentialMissing);
                }
                regions::find_by_credential(conn, &credentials::hash(credential))?
                    .ok_or(BrokerError::CredentialInvalid)
            }
            Caller::Region(id) => {
                regions::find(conn, id)?.ok_or_else(|| BrokerError::UnknownRegion(id.clone()))
            }
            // The broker region itself may not be registered yet (it registers when it
            // serves); it speaks for every resource.
            Caller::Local(id) => Ok(regions::find(conn, id)?.unwrap_or_else(|| {
                let now = ship::db::utc_now();
                Region {
                    id: id.clone(),
                    base_url: String::new(),
                    credential_hash: String::new(),
                    scopes: ALL_SCOPES.to_string(),
                    last_heartbeat_at: None,
                    created_at: now,
                    updated_at: now,
                }
            })),
        }
    }
}
