//! Field rules shared by the HTTP requests and the sync payload validation. Each rule returns
//! the [`FieldError`] (stable snake_case `code`) for the field it is given.

use serde_json::Value;
pub(crate) use ship::contracts::fields::{
    invalid_type, length, required, take, timestamp, unknown, uuid,
};
use ship::contracts::{FieldError, OpKind};

use crate::models::{CustomerPayload, CustomerStatus};

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
