use serde::Serialize;

use crate::actions::CustomerPage;
use crate::models::{format_timestamp, Customer};

/// A customer as the REST API shows it (live customers only, so no `deleted_at`; the sync
/// columns are not part of the API). Timestamps as in the sync payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerResponse {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub email: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Customer> for CustomerResponse {
    fn from(c: &Customer) -> Self {
        CustomerResponse {
            id: c.id.clone(),
            tenant_id: c.tenant_id.clone(),
            name: c.name.clone(),
            email: c.email.clone(),
            status: c.status.clone(),
            created_at: format_timestamp(c.created_at),
            updated_at: format_timestamp(c.updated_at),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerPageResponse {
    pub items: Vec<CustomerResponse>,
    pub next_after: Option<String>,
}

impl From<&CustomerPage> for CustomerPageResponse {
    fn from(page: &CustomerPage) -> Self {
        CustomerPageResponse {
            items: page.items.iter().map(CustomerResponse::from).collect(),
            next_after: page.next_after.clone(),
        }
    }
}
