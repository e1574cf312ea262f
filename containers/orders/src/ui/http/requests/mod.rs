//! Request bodies and queries → action inputs. Bodies are taken as JSON values and parsed here,
//! so every problem (missing, wrong type, unknown field, broken rule) is reported per field in
//! one 422 `validation_failed`; only a body that is not JSON at all is ship's 400 `invalid_json`.

pub mod create_order_request;
pub mod list_orders_request;
pub mod update_order_request;

use serde_json::{Map, Value};
use ship::contracts::FieldError;

use crate::validation;
use crate::OrdersError;

/// The body as an object, or the validation error saying it is not one.
pub(crate) fn object(body: &Value) -> Result<&Map<String, Value>, OrdersError> {
    body.as_object().ok_or_else(|| {
        OrdersError::Validation(vec![validation::invalid_type("body", "a JSON object")])
    })
}

/// How many unknown keys are named one by one (a body of 600 000 keys is answered with these).
const MAX_UNKNOWN_NAMED: usize = 10;

/// Unknown keys of `object`, as field errors: the first [`MAX_UNKNOWN_NAMED`] by name.
pub(crate) fn unknown_fields(object: &Map<String, Value>, known: &[&str]) -> Vec<FieldError> {
    object
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .take(MAX_UNKNOWN_NAMED)
        .map(|k| validation::unknown(&ship::errors::clip(k)))
        .collect()
}

pub(crate) use crate::validation::{take, take_lines};
