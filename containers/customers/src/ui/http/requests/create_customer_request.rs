use serde_json::Value;

use super::{object, take, unknown_fields};
use crate::actions::CreateCustomerInput;
use crate::models::CustomerStatus;
use crate::{validation, CustomersError};

/// `POST /api/v1/customers` body: `{"tenant_id", "name", "email", "status"?}`; `status`
/// defaults to `active`. Any other key is refused (`unknown_field`).
pub struct CreateCustomerRequest;

const FIELDS: [&str; 4] = ["tenant_id", "name", "email", "status"];

// For the OpenAPI document: the request is read as a JSON value by `CreateCustomerRequest`,
// which reports every broken field at once; a test ties these properties to the keys it takes.
/// A new customer: `status` defaults to `active`; any other key is refused (`unknown_field`).
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"tenant_id": "acme", "name": "Ada Lovelace", "email": "ada@example.com"}))]
pub struct CreateCustomerBody {
    /// 1–64 characters, not blank; never changes.
    #[schema(min_length = 1, max_length = 64)]
    pub tenant_id: String,
    /// 1–200 characters, not blank.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// At most 254 characters, `local@domain` without spaces.
    #[schema(max_length = 254)]
    pub email: String,
    /// Default `active`.
    pub status: Option<crate::models::CustomerStatus>,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_body_has_exactly_the_keys_the_request_takes() {
        assert_eq!(
            ship::http::openapi::property_names::<CreateCustomerBody>(),
            FIELDS.iter().map(|f| f.to_string()).collect()
        );
    }
}
