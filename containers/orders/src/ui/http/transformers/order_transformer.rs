use serde::Serialize;

use crate::actions::{OrderPage, OrderView};
use crate::models::{CustomerState, Order, OrderPayload};

/// An order as the REST API shows it: its sync payload's fields (in the payload's order,
/// timestamps as there; `deleted_at` is `null`, since only live orders are answered), its
/// `version` and the state here of its customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderResponse {
    #[serde(flatten)]
    pub order: OrderPayload,
    /// `<hlc>.<origin>`, the same string as the `ETag` of this order, unquoted.
    #[schema(example = "117736526335442944.eu-west")]
    pub version: String,
    pub customer_state: CustomerState,
}

impl From<&OrderView> for OrderResponse {
    fn from(view: &OrderView) -> Self {
        OrderResponse {
            order: OrderPayload::from(&view.order),
            version: version(&view.order),
            customer_state: view.customer_state,
        }
    }
}

/// The `ETag` of an order's version: `"<hlc>.<origin>"`, the (hybrid timestamp, region) the
/// last write of it was given. Every single-order response carries it (a delete's too).
pub fn etag(o: &Order) -> (actix_web::http::header::HeaderName, String) {
    (actix_web::http::header::ETAG, format!("\"{}\"", version(o)))
}

/// An order's version, `<hlc>.<origin>`: the `ETag` without its quotes.
pub fn version(o: &Order) -> String {
    format!("{}.{}", o.sync_version, o.sync_origin)
}

/// One page of a tenant's live orders, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderPageResponse {
    pub items: Vec<OrderResponse>,
    /// The `after` of the next page; `null` on the last one.
    pub next_after: Option<String>,
}

impl From<&OrderPage> for OrderPageResponse {
    fn from(page: &OrderPage) -> Self {
        OrderPageResponse {
            items: page.items.iter().map(OrderResponse::from).collect(),
            next_after: page.next_after.clone(),
        }
    }
}
