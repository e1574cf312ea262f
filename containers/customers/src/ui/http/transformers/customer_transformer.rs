use serde::Serialize;

use crate::actions::CustomerPage;
use crate::models::{format_timestamp, Customer};

/// A customer as the REST API shows it (live customers only, so no `deleted_at`; the sync
/// columns are not part of the API). Timestamps as in the sync payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CustomerResponse {
    /// A UUID (v7, lowercase hyphenated), given by the region on create.
    #[schema(example = "01a242ca-5331-712e-9d3a-bd06a8091ae6")]
    pub id: String,
    #[schema(example = "acme")]
    pub tenant_id: String,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[schema(value_type = crate::models::CustomerStatus)]
    pub status: String,
    /// RFC 3339, UTC, microseconds.
    #[schema(example = "2026-12-04T20:41:25.553655Z")]
    pub created_at: String,
    /// RFC 3339, UTC, microseconds; moves with each change.
    #[schema(example = "2026-12-04T20:41:25.553655Z")]
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

/// The `ETag` of a customer's version: `"<hlc>.<origin>"`, the (hybrid timestamp, region) the
/// last write of it was given. Every single-customer response carries it (a delete's too), so
/// a client can tell whether another region has caught up with its write: versions order by
/// `(hlc, origin)`.
pub fn etag(c: &Customer) -> (actix_web::http::header::HeaderName, String) {
    (actix_web::http::header::ETAG, format!("\"{}\"", version(c)))
}

/// A customer's version, `<hlc>.<origin>`: the `ETag` without its quotes.
pub fn version(c: &Customer) -> String {
    format!("{}.{}", c.sync_version, c.sync_origin)
}

/// An item of a list answer: the customer and its version (a list has no per-item `ETag`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CustomerListItem {
    #[serde(flatten)]
    pub customer: CustomerResponse,
    /// `<hlc>.<origin>`, the same string as the `ETag` of a `GET` of this customer, unquoted.
    #[schema(example = "117729977011863552.eu-west")]
    pub version: String,
}

impl From<&Customer> for CustomerListItem {
    fn from(c: &Customer) -> Self {
        CustomerListItem {
            customer: CustomerResponse::from(c),
            version: version(c),
        }
    }
}

/// One page of a tenant's live customers, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CustomerPageResponse {
    pub items: Vec<CustomerListItem>,
    /// The `after` of the next page; `null` on the last one.
    pub next_after: Option<String>,
}

impl From<&CustomerPage> for CustomerPageResponse {
    fn from(page: &CustomerPage) -> Self {
        CustomerPageResponse {
            items: page.items.iter().map(CustomerListItem::from).collect(),
            next_after: page.next_after.clone(),
        }
    }
}

/// The answer to a bulk create: the customers in the order given, each with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CustomersCreatedResponse {
    pub items: Vec<CustomerListItem>,
}

impl From<&[Customer]> for CustomersCreatedResponse {
    fn from(customers: &[Customer]) -> Self {
        CustomersCreatedResponse {
            items: customers.iter().map(CustomerListItem::from).collect(),
        }
    }
}
