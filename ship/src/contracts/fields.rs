//! Field rules every domain container's validation uses, for its HTTP requests and its sync
//! payloads alike: each returns the [`FieldError`] (a stable snake_case `code`) for the field
//! it is given. A container adds its own rules (an email, a status, an order's lines).

use serde_json::{Map, Value};

use super::timestamps::parse_timestamp;
use super::FieldError;

/// 1 to `max` characters, not blank (`blank`, `too_long`).
pub fn length(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    let n = value.chars().count();
    if n == 0 || value.trim().is_empty() {
        return Err(FieldError::new(
            field,
            "blank",
            format!("{field} must not be blank"),
        ));
    }
    if n > max {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("{field} is {n} characters long; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// A UUID in lowercase hyphenated form (`invalid_uuid`).
pub fn uuid(field: &str, value: &str) -> Result<(), FieldError> {
    match uuid::Uuid::parse_str(value) {
        // The lowercase hyphenated form is the only one 36 bytes long without an uppercase
        // digit (`parse_str` also takes the simple, braced and URN forms): checked without
        // writing the form out.
        Ok(_) if value.len() == 36 && !value.bytes().any(|b| b.is_ascii_uppercase()) => Ok(()),
        _ => Err(FieldError::new(
            field,
            "invalid_uuid",
            format!("{field} must be a UUID in lowercase hyphenated form"),
        )),
    }
}

/// A payload timestamp ([`parse_timestamp`]; `invalid_timestamp`).
pub fn timestamp(field: &str, value: &str) -> Result<(), FieldError> {
    if parse_timestamp(value).is_some() {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "invalid_timestamp",
            format!(
                "{field} must be an RFC 3339 timestamp with at most microsecond precision, \
                 e.g. 2026-11-25T15:00:00.123456Z"
            ),
        ))
    }
}

pub fn unknown(field: &str) -> FieldError {
    FieldError::new(
        field,
        "unknown_field",
        format!("{field} is not a known field"),
    )
}

pub fn required(field: &str) -> FieldError {
    FieldError::new(field, "required", format!("{field} is required"))
}

pub fn invalid_type(field: &str, expected: &str) -> FieldError {
    FieldError::new(field, "invalid_type", format!("{field} must be {expected}"))
}

pub fn out_of_range(field: &str, min: i64, max: i64) -> FieldError {
    FieldError::new(
        field,
        "out_of_range",
        format!("{field} must be between {min} and {max}"),
    )
}

/// A required string field of `object`, or the error for it.
pub fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a str, FieldError> {
    match object.get(field) {
        None => Err(required(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid_type(field, "a string")),
    }
}

/// Apply `rule` to the string at `field`; record the problem in `errors`.
pub fn take(
    object: &Map<String, Value>,
    field: &str,
    rule: impl Fn(&str) -> Result<(), FieldError>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match string_field(object, field).and_then(|s| rule(s).map(|()| s.to_string())) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_its_field_and_code() {
        let code = |r: Result<(), FieldError>| r.err().map(|e| (e.field, e.code));
        assert_eq!(
            code(length("name", " ", 5)),
            Some(("name".into(), "blank".into()))
        );
        assert_eq!(
            code(length("name", "abcdef", 5)),
            Some(("name".into(), "too_long".into()))
        );
        assert_eq!(
            code(length("name", "Zoë", 3)),
            None,
            "characters, not bytes"
        );
        assert_eq!(
            code(uuid("id", "01939D2E-0000-7000-8000-00000000000A")),
            Some(("id".into(), "invalid_uuid".into()))
        );
        assert_eq!(
            code(uuid("id", "01939d2e-0000-7000-8000-00000000000a")),
            None
        );
        // The other forms `Uuid::parse_str` takes are not the wire form.
        for other in [
            "01939d2e00007000800000000000000a",
            "{01939d2e-0000-7000-8000-00000000000a}",
            "urn:uuid:01939d2e-0000-7000-8000-00000000000a",
        ] {
            assert_eq!(
                code(uuid("id", other)),
                Some(("id".into(), "invalid_uuid".into())),
                "{other}"
            );
        }
        assert_eq!(
            code(timestamp("at", "2026-11-25")),
            Some(("at".into(), "invalid_timestamp".into()))
        );
        let object = serde_json::json!({"a": "x", "b": 1});
        let object = object.as_object().unwrap_or_else(|| unreachable!());
        let mut errors = Vec::new();
        assert_eq!(take(object, "a", |_| Ok(()), &mut errors), Some("x".into()));
        assert_eq!(take(object, "b", |_| Ok(()), &mut errors), None);
        assert_eq!(take(object, "c", |_| Ok(()), &mut errors), None);
        let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["invalid_type", "required"]);
    }
}
