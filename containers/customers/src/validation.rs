//! Field rules shared by the HTTP requests and the sync payload validation. Each rule returns
//! the [`FieldError`] (stable snake_case `code`) for the field it is given.

use serde_json::{Map, Value};
use ship::contracts::{FieldError, OpKind};

use crate::models::{parse_timestamp, CustomerPayload, CustomerStatus};

pub(crate) const TENANT_ID_MAX: usize = 64;
pub(crate) const NAME_MAX: usize = 200;
pub(crate) const EMAIL_MAX: usize = 254;

/// The keys of a payload, in order.
pub(crate) const PAYLOAD_FIELDS: [&str; 8] = [
    "id",
    "tenant_id",
    "name",
    "email",
    "status",
    "created_at",
    "updated_at",
    "deleted_at",
];

fn length(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
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

pub(crate) fn tenant_id(value: &str) -> Result<(), FieldError> {
    length("tenant_id", value, TENANT_ID_MAX)
}

pub(crate) fn name(value: &str) -> Result<(), FieldError> {
    length("name", value, NAME_MAX)
}

pub(crate) fn email(value: &str) -> Result<(), FieldError> {
    length("email", value, EMAIL_MAX)?;
    let well_formed = !value.chars().any(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if well_formed {
        Ok(())
    } else {
        Err(FieldError::new(
            "email",
            "invalid_email",
            "email must look like local@domain, without spaces",
        ))
    }
}

pub(crate) fn status(value: &str) -> Result<(), FieldError> {
    if CustomerStatus::parse(value).is_some() {
        Ok(())
    } else {
        let allowed: Vec<_> = CustomerStatus::ALL.iter().map(|s| s.as_str()).collect();
        Err(FieldError::new(
            "status",
            "invalid_value",
            format!("status must be one of {}", allowed.join(", ")),
        ))
    }
}

/// A UUID in its canonical lowercase hyphenated form (ids are compared as strings).
pub(crate) fn uuid(field: &str, value: &str) -> Result<(), FieldError> {
    match uuid::Uuid::parse_str(value) {
        Ok(u) if u.hyphenated().to_string() == value => Ok(()),
        _ => Err(FieldError::new(
            field,
            "invalid_uuid",
            format!("{field} must be a UUID in lowercase hyphenated form"),
        )),
    }
}

pub(crate) fn timestamp(field: &str, value: &str) -> Result<(), FieldError> {
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

pub(crate) fn unknown(field: &str) -> FieldError {
    FieldError::new(
        field,
        "unknown_field",
        format!("{field} is not a known field"),
    )
}

pub(crate) fn required(field: &str) -> FieldError {
    FieldError::new(field, "required", format!("{field} is required"))
}

pub(crate) fn invalid_type(field: &str, expected: &str) -> FieldError {
    FieldError::new(field, "invalid_type", format!("{field} must be {expected}"))
}

/// A required string field of `object`, or the error for it.
pub(crate) fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a str, FieldError> {
    match object.get(field) {
        None => Err(required(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid_type(field, "a string")),
    }
}

/// Check a sync payload (see [`CustomerPayload`] for the format); every problem is reported.
pub(crate) fn payload(kind: OpKind, value: &Value) -> Result<CustomerPayload, Vec<FieldError>> {
    let Some(object) = value.as_object() else {
        return Err(vec![invalid_type("payload", "a JSON object")]);
    };
    let mut errors: Vec<FieldError> = object
        .keys()
        .filter(|k| !PAYLOAD_FIELDS.contains(&k.as_str()))
        .map(|k| unknown(k))
        .collect();
    let mut check = |field: &str, rule: &dyn Fn(&str) -> Result<(), FieldError>| {
        take(object, field, rule, &mut errors)
    };
    let id = check("id", &|s| uuid("id", s));
    let tenant = check("tenant_id", &tenant_id);
    let name_ = check("name", &name);
    let email_ = check("email", &email);
    let status_ = check("status", &status);
    let created = check("created_at", &|s| timestamp("created_at", s));
    let updated = check("updated_at", &|s| timestamp("updated_at", s));
    let deleted = match object.get("deleted_at") {
        None => {
            errors.push(required("deleted_at"));
            None
        }
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => match timestamp("deleted_at", s) {
            Ok(()) => Some(Some(s.clone())),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        Some(_) => {
            errors.push(invalid_type("deleted_at", "null or a timestamp"));
            None
        }
    };
    match (kind, &deleted) {
        (OpKind::Delete, Some(None)) => errors.push(FieldError::new(
            "deleted_at",
            "required",
            "a delete op carries the tombstone: deleted_at must be a timestamp",
        )),
        (OpKind::Upsert, Some(Some(_))) => errors.push(FieldError::new(
            "deleted_at",
            "must_be_null",
            "an upsert op carries a live row: deleted_at must be null",
        )),
        _ => {}
    }
    match (
        id, tenant, name_, email_, status_, created, updated, deleted,
    ) {
        (
            Some(id),
            Some(tenant_id),
            Some(name),
            Some(email),
            Some(status),
            Some(created_at),
            Some(updated_at),
            Some(deleted_at),
        ) if errors.is_empty() => Ok(CustomerPayload {
            id,
            tenant_id,
            name,
            email,
            status,
            created_at,
            updated_at,
            deleted_at,
        }),
        _ => Err(errors),
    }
}

/// Apply `rule` to the string at `field`; record the problem in `errors`.
pub(crate) fn take(
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
