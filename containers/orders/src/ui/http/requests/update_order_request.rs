use serde_json::Value;
use ship::contracts::FieldError;

use super::{object, take, take_lines, unknown_fields};
use crate::actions::UpdateOrderInput;
use crate::models::OrderStatus;
use crate::{validation, OrdersError};

/// `PATCH /api/v1/orders/{id}` body: any non-empty subset of `{"status", "number", "lines"}`.
/// `tenant_id`, `customer_id` and `currency` never change; they and every other key (`id`,
/// `total_minor`, the timestamps) are refused (`unknown_field`); an empty object is refused
/// (`no_changes`).
pub struct UpdateOrderRequest;

const FIELDS: [&str; 3] = ["status", "number", "lines"];

// For the OpenAPI document (the request is read as a JSON value); a test ties these
// properties to the keys the request takes.
/// Any non-empty subset (an empty object is `no_changes`); `tenant_id`, `customer_id`,
/// `currency` never change and are refused.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"status": "confirmed"}))]
pub struct UpdateOrderBody {
    /// `pending → confirmed | cancelled`, `confirmed → shipped | cancelled`, `shipped →
    /// delivered` (else 409 `invalid_status_transition`).
    pub status: Option<crate::models::OrderStatus>,
    /// Only while `pending` (else 409 `order_not_editable`).
    #[schema(min_length = 1, max_length = 64)]
    pub number: Option<String>,
    /// Only while `pending` (else 409 `order_not_editable`).
    pub lines: Option<crate::models::OrderLines>,
}

/// Fields an order has but a PATCH cannot change.
const IMMUTABLE: [&str; 3] = ["tenant_id", "customer_id", "currency"];

impl UpdateOrderRequest {
    pub fn parse(id: String, body: &Value) -> Result<UpdateOrderInput, OrdersError> {
        let object = object(body)?;
        let mut errors: Vec<FieldError> = unknown_fields(object, &FIELDS)
            .into_iter()
            .map(|mut e| {
                if IMMUTABLE.contains(&e.field.as_str()) {
                    e.message = format!("{} cannot be changed", e.field);
                }
                e
            })
            .collect();
        if object.is_empty() {
            errors.push(FieldError::new(
                "body",
                "no_changes",
                "send at least one of status, number, lines",
            ));
        }
        let present = |field: &str| object.contains_key(field);
        let status = present("status")
            .then(|| take(object, "status", validation::status, &mut errors))
            .flatten()
            .and_then(|s| OrderStatus::parse(&s));
        let number = present("number")
            .then(|| take(object, "number", validation::number, &mut errors))
            .flatten();
        let lines = present("lines")
            .then(|| take_lines(object, &mut errors))
            .flatten()
            .map(|(lines, _total)| lines);
        if !errors.is_empty() {
            return Err(OrdersError::Validation(errors));
        }
        Ok(UpdateOrderInput {
            id,
            status,
            number,
            lines,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_body_has_exactly_the_keys_the_request_takes() {
        assert_eq!(
            ship::http::openapi::property_names::<UpdateOrderBody>(),
            FIELDS.iter().map(|f| f.to_string()).collect()
        );
    }
}
