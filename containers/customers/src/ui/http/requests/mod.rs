//! Request bodies and queries → action inputs. Bodies are taken as JSON values and parsed here,
//! so every problem (missing, wrong type, unknown field, broken rule) is reported per field in
//! one 422 `validation_failed`; only a body that is not JSON at all is ship's 400 `invalid_json`.

pub mod create_customer_request;
pub mod list_customers_request;
pub mod update_customer_request;

use serde_json::{Map, Value};
use ship::contracts::FieldError;

use crate::validation;
use crate::CustomersError;

/// The body as an object, or the validation error saying it is not one.
pub(crate) fn object(body: &Value) -> Result<&Map<String, Value>, CustomersError> {
    body.as_object().ok_or_else(|| {
        CustomersError::Validation(vec![validation::invalid_type("body", "a JSON object")])
    })
}

/// Unknown keys of `object`, as field errors.
pub(crate) fn unknown_fields(object: &Map<String, Value>, known: &[&str]) -> Vec<FieldError> {
    object
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| validation::unknown(k))
        .collect()
}

pub(crate) use crate::validation::take;
