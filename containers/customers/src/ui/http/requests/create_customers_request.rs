use serde_json::Value;

use super::create_customer_request::CreateCustomerRequest;
use super::{object, unknown_fields};
use crate::actions::create_customers::{item_errors, MAX_ERRORS_NAMED};
use crate::actions::{CreateCustomerInput, MAX_BATCH};
use crate::{validation, CustomersError};

/// `POST /api/v1/customers:batch` body: `{"items": [<a create body>, …]}`, 1 to
/// [`MAX_BATCH`] items, each as `POST /api/v1/customers` takes it. Broken items are reported
/// together, each field named `items[i].<field>` (at most [`MAX_ERRORS_NAMED`]); more items
/// than one request takes is 413 `batch_too_large`, before any item is read.
pub struct CreateCustomersRequest;

// For the OpenAPI document (the request is read as a JSON value).
/// Customers to create in one transaction: all or none.
#[derive(utoipa::ToSchema)]
pub struct CreateCustomersBody {
    /// 1 to 1,000 customers, each as `POST /api/v1/customers` takes it.
    #[schema(min_items = 1, max_items = 1000)]
    pub items: Vec<super::create_customer_request::CreateCustomerBody>,
}

impl CreateCustomersRequest {
    pub fn parse(body: &Value) -> Result<Vec<CreateCustomerInput>, CustomersError> {
        let object = object(body)?;
        let mut errors = unknown_fields(object, &["items"]);
        let items = match object.get("items") {
            Some(Value::Array(items)) => items,
            Some(_) => {
                errors.push(validation::invalid_type("items", "an array of customers"));
                return Err(CustomersError::Validation(errors));
            }
            None => {
                errors.push(validation::required("items"));
                return Err(CustomersError::Validation(errors));
            }
        };
        if items.len() > MAX_BATCH {
            return Err(CustomersError::BatchTooLarge {
                max: MAX_BATCH,
                got: items.len(),
            });
        }
        let mut inputs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if errors.len() >= MAX_ERRORS_NAMED {
                break;
            }
            match CreateCustomerRequest::parse(item) {
                Ok(input) => inputs.push(input),
                Err(CustomersError::Validation(broken)) => errors.extend(item_errors(i, broken)),
                Err(other) => return Err(other),
            }
        }
        errors.truncate(MAX_ERRORS_NAMED);
        if errors.is_empty() {
            Ok(inputs)
        } else {
            Err(CustomersError::Validation(errors))
        }
    }
}
