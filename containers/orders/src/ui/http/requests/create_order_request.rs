use serde_json::Value;

use super::{object, take, take_lines, unknown_fields};
use crate::actions::CreateOrderInput;
use crate::models::OrderStatus;
use crate::{validation, OrdersError};

/// `POST /api/v1/orders` body: `{"tenant_id", "customer_id", "number", "currency", "lines",
/// "status"?}`; `status` defaults to `pending`, the only status an order is created with. Any
/// other key (`total_minor` included: the server computes it) is refused (`unknown_field`).
pub struct CreateOrderRequest;

const FIELDS: [&str; 6] = [
    "tenant_id",
    "customer_id",
    "number",
    "currency",
    "lines",
    "status",
];

// For the OpenAPI document: the request is read as a JSON value by `CreateOrderRequest`, which
// reports every broken field at once; a test ties these properties to the keys it takes.
/// A new order (pending); any other key (`total_minor` included: the region computes it) is
/// refused (`unknown_field`).
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"tenant_id": "acme", "customer_id": "01a248bf-34b6-7521-ba0b-5f64d3791d67", "number": "SO-1001", "currency": "EUR", "lines": [{"sku": "BOOK-1", "quantity": 2, "unit_price_minor": 1250}]}))]
pub struct CreateOrderBody {
    #[schema(min_length = 1, max_length = 64)]
    pub tenant_id: String,
    /// A live customer of the same tenant here (else field code `unknown_customer` or
    /// `deleted_customer`).
    #[schema(format = Uuid)]
    pub customer_id: String,
    /// 1–64 characters, not blank; not unique.
    #[schema(min_length = 1, max_length = 64)]
    pub number: String,
    /// Three uppercase letters (ISO 4217 shape).
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    pub lines: crate::models::OrderLines,
    /// Only `pending` (the default): an order is created pending.
    pub status: Option<crate::models::OrderStatus>,
}

impl CreateOrderRequest {
    pub fn parse(body: &Value) -> Result<CreateOrderInput, OrdersError> {
        let object = object(body)?;
        let mut errors = unknown_fields(object, &FIELDS);
        let tenant_id = take(object, "tenant_id", validation::tenant_id, &mut errors);
        let customer_id = take(object, "customer_id", validation::customer_id, &mut errors);
        let number = take(object, "number", validation::number, &mut errors);
        let currency = take(object, "currency", validation::currency, &mut errors);
        let lines = take_lines(object, &mut errors);
        let status = if object.contains_key("status") {
            take(object, "status", validation::status, &mut errors)
                .and_then(|s| OrderStatus::parse(&s))
        } else {
            Some(OrderStatus::Pending)
        };
        match (tenant_id, customer_id, number, currency, lines, status) {
            (
                Some(tenant_id),
                Some(customer_id),
                Some(number),
                Some(currency),
                Some((lines, _total)),
                Some(status),
            ) if errors.is_empty() => Ok(CreateOrderInput {
                tenant_id,
                customer_id,
                number,
                currency,
                lines,
                status,
            }),
            _ => Err(OrdersError::Validation(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_body_has_exactly_the_keys_the_request_takes() {
        assert_eq!(
            ship::http::openapi::property_names::<CreateOrderBody>(),
            FIELDS.iter().map(|f| f.to_string()).collect()
        );
    }
}
