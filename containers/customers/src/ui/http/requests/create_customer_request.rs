use serde_json::Value;

use super::{object, take, unknown_fields};
use crate::actions::CreateCustomerInput;
use crate::models::CustomerStatus;
use crate::{validation, CustomersError};

/// `POST /api/v1/customers` body: `{"tenant_id", "name", "email", "status"?}`; `status`
/// defaults to `active`. Any other key is refused (`unknown_field`).
pub struct CreateCustomerRequest;

const FIELDS: [&str; 4] = ["tenant_id", "name", "email", "status"];

impl CreateCustomerRequest {
    pub fn parse(body: &Value) -> Result<CreateCustomerInput, CustomersError> {
        let object = object(body)?;
        let mut errors = unknown_fields(object, &FIELDS);
        let tenant_id = take(object, "tenant_id", validation::tenant_id, &mut errors);
        let name = take(object, "name", validation::name, &mut errors);
        let email = take(object, "email", validation::email, &mut errors);
        let status = if object.contains_key("status") {
            take(object, "status", validation::status, &mut errors)
                .and_then(|s| CustomerStatus::parse(&s))
        } else {
            Some(CustomerStatus::Active)
        };
        match (tenant_id, name, email, status) {
            (Some(tenant_id), Some(name), Some(email), Some(status)) if errors.is_empty() => {
                Ok(CreateCustomerInput {
                    tenant_id,
                    name,
                    email,
                    status,
                })
            }
            _ => Err(CustomersError::Validation(errors)),
        }
    }
}
