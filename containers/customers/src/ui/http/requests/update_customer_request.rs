use serde_json::Value;
use ship::contracts::FieldError;

use super::{object, take, unknown_fields};
use crate::actions::UpdateCustomerInput;
use crate::models::CustomerStatus;
use crate::{validation, CustomersError};

/// `PATCH /api/v1/customers/{id}` body: any non-empty subset of `{"name", "email", "status"}`.
/// Other keys (including `id`, `tenant_id` and the timestamps) are refused (`unknown_field`);
/// an empty object is refused (`no_changes`).
pub struct UpdateCustomerRequest;

const FIELDS: [&str; 3] = ["name", "email", "status"];

// For the OpenAPI document (the request is read as a JSON value); a test ties these
// properties to the keys the request takes.
/// Any non-empty subset (an empty object is `no_changes`), with the create rules; `tenant_id`,
/// `id` and the timestamps are refused (`unknown_field`).
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"status": "closed"}))]
pub struct UpdateCustomerBody {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 254)]
    pub email: Option<String>,
    pub status: Option<crate::models::CustomerStatus>,
}

impl UpdateCustomerRequest {
    pub fn parse(id: String, body: &Value) -> Result<UpdateCustomerInput, CustomersError> {
        let object = object(body)?;
        let mut errors = unknown_fields(object, &FIELDS);
        if object.is_empty() {
            errors.push(FieldError::new(
                "body",
                "no_changes",
                "send at least one of name, email, status",
            ));
        }
        let present = |field: &str| object.contains_key(field);
        let name = present("name")
            .then(|| take(object, "name", validation::name, &mut errors))
            .flatten();
        let email = present("email")
            .then(|| take(object, "email", validation::email, &mut errors))
            .flatten();
        let status = present("status")
            .then(|| take(object, "status", validation::status, &mut errors))
            .flatten()
            .and_then(|s| CustomerStatus::parse(&s));
        if !errors.is_empty() {
            return Err(CustomersError::Validation(errors));
        }
        Ok(UpdateCustomerInput {
            id,
            name,
            email,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_body_has_exactly_the_keys_the_request_takes() {
        assert_eq!(
            ship::http::openapi::property_names::<UpdateCustomerBody>(),
            FIELDS.iter().map(|f| f.to_string()).collect()
        );
    }
}
