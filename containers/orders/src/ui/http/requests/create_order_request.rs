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
