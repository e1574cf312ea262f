//! Request bodies and queries → action inputs. Bodies are taken as JSON values and parsed here,
//! so every problem (missing, wrong type, unknown field, broken rule) is reported per field in
//! one 422 `validation_failed`; only a body that is not JSON at all is ship's 400 `invalid_json`.

pub mod create_customer_request;
pub mod create_customers_request;
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

pub(crate) use crate::validation::take;

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: 100 000 unknown keys (or one of 1 MiB) are answered with a few short errors.
    #[test]
    fn unknown_keys_are_named_by_the_first_few_and_clipped() {
        let mut object = Map::new();
        for i in 0..100_000 {
            object.insert(format!("x{i}"), Value::Null);
        }
        assert_eq!(unknown_fields(&object, &["name"]).len(), MAX_UNKNOWN_NAMED);
        let mut object = Map::new();
        object.insert("k".repeat(1 << 20), Value::Null);
        let errors = unknown_fields(&object, &["name"]);
        assert!(errors[0].field.len() < 200, "{}", errors[0].field.len());
    }
}
