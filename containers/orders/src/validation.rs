//! Field rules shared by the HTTP requests, the actions and the sync payload validation. Each
//! rule returns the [`FieldError`] (stable snake_case `code`) for the field it is given.

use serde_json::{Map, Value};
pub(crate) use ship::contracts::fields::{
    invalid_type, length, out_of_range, required, take, timestamp, unknown, uuid,
};
use ship::contracts::{FieldError, OpKind};

use crate::models::{OrderLine, OrderLines, OrderPayload, OrderStatus};

pub(crate) const TENANT_ID_MAX: usize = 64;
pub(crate) const NUMBER_MAX: usize = 64;
pub(crate) const SKU_MAX: usize = 64;
pub(crate) const LINES_MAX: usize = 100;
pub(crate) const QUANTITY_MAX: i64 = 1_000_000;
pub(crate) const UNIT_PRICE_MAX: i64 = 1_000_000_000_000;
/// 2^53 − 1: the largest integer every JSON client reads exactly.
pub(crate) const TOTAL_MAX: i64 = 9_007_199_254_740_991;

/// The keys of a payload, in order.
pub(crate) const PAYLOAD_FIELDS: [&str; 11] = [
    "id",
    "tenant_id",
    "customer_id",
    "number",
    "status",
    "currency",
    "lines",
    "total_minor",
    "created_at",
    "updated_at",
    "deleted_at",
];

/// The keys of a line, in order.
const LINE_FIELDS: [&str; 3] = ["sku", "quantity", "unit_price_minor"];

pub(crate) fn tenant_id(value: &str) -> Result<(), FieldError> {
    length("tenant_id", value, TENANT_ID_MAX)
}

pub(crate) fn number(value: &str) -> Result<(), FieldError> {
    length("number", value, NUMBER_MAX)
}

pub(crate) fn customer_id(value: &str) -> Result<(), FieldError> {
    uuid("customer_id", value)
}

pub(crate) fn status(value: &str) -> Result<(), FieldError> {
    if OrderStatus::parse(value).is_some() {
        Ok(())
    } else {
        let allowed: Vec<_> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        Err(FieldError::new(
            "status",
            "invalid_value",
            format!("status must be one of {}", allowed.join(", ")),
        ))
    }
}

/// ISO 4217's shape: three uppercase ASCII letters (the list of codes is not checked).
pub(crate) fn currency(value: &str) -> Result<(), FieldError> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(FieldError::new(
            "currency",
            "invalid_currency",
            "currency must be three uppercase letters (ISO 4217), e.g. EUR",
        ))
    }
}

/// The broken rules of typed lines: 1 to [`LINES_MAX`] of them, each with a SKU of 1 to
/// [`SKU_MAX`] characters and a quantity and a unit price in range; fields named
/// `lines[i].<field>`.
pub(crate) fn lines(lines: &[OrderLine]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(e) = line_count(lines.len()) {
        errors.push(e);
    }
    for (i, line) in lines.iter().enumerate() {
        errors.extend(line_rules(i, line));
    }
    errors
}

fn line_count(n: usize) -> Option<FieldError> {
    if n == 0 {
        Some(FieldError::new(
            "lines",
            "blank",
            "lines must hold at least one line",
        ))
    } else if n > LINES_MAX {
        Some(FieldError::new(
            "lines",
            "too_long",
            format!("lines holds {n} lines; at most {LINES_MAX} are allowed"),
        ))
    } else {
        None
    }
}

fn line_rules(i: usize, line: &OrderLine) -> Vec<FieldError> {
    let field = |name: &str| format!("lines[{i}].{name}");
    let mut errors = Vec::new();
    if let Err(mut e) = length("sku", &line.sku, SKU_MAX) {
        e.field = field("sku");
        errors.push(e);
    }
    if !(1..=QUANTITY_MAX).contains(&line.quantity) {
        errors.push(out_of_range(&field("quantity"), 1, QUANTITY_MAX));
    }
    if !(0..=UNIT_PRICE_MAX).contains(&line.unit_price_minor) {
        errors.push(out_of_range(&field("unit_price_minor"), 0, UNIT_PRICE_MAX));
    }
    errors
}

/// The exact total of valid lines, or the error saying it is too large to be shown exactly
/// (above [`TOTAL_MAX`], or beyond `i64`: checked arithmetic, never a wrapped sum).
pub(crate) fn total(lines: &OrderLines) -> Result<i64, FieldError> {
    match lines.total() {
        Some(total) if total <= TOTAL_MAX => Ok(total),
        _ => Err(FieldError::new(
            "lines",
            "total_too_large",
            format!("the order's total must be at most {TOTAL_MAX} minor units"),
        )),
    }
}

/// Lines as JSON (an array of `{"sku", "quantity", "unit_price_minor"}`), checked against
/// every rule and with their total; every problem is reported.
pub(crate) fn lines_value(value: &Value) -> Result<(OrderLines, i64), Vec<FieldError>> {
    let Value::Array(items) = value else {
        return Err(vec![invalid_type("lines", "an array of lines")]);
    };
    if let Some(e) = line_count(items.len()) {
        // Not read further: a thousand lines are not reported one by one.
        return Err(vec![e]);
    }
    let mut errors = Vec::new();
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(object) = item.as_object() else {
            errors.push(invalid_type(&format!("lines[{i}]"), "an object"));
            continue;
        };
        let before = errors.len();
        errors.extend(
            object
                .keys()
                .filter(|k| !LINE_FIELDS.contains(&k.as_str()))
                .take(3)
                .map(|k| unknown(&format!("lines[{i}].{}", ship::errors::clip(k)))),
        );
        let sku = match object.get("sku") {
            None => {
                errors.push(required(&format!("lines[{i}].sku")));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(invalid_type(&format!("lines[{i}].sku"), "a string"));
                None
            }
        };
        let quantity = integer(object, &format!("lines[{i}]"), "quantity", &mut errors);
        let price = integer(
            object,
            &format!("lines[{i}]"),
            "unit_price_minor",
            &mut errors,
        );
        if let (Some(sku), Some(quantity), Some(unit_price_minor)) = (sku, quantity, price) {
            let line = OrderLine {
                sku,
                quantity,
                unit_price_minor,
            };
            errors.extend(line_rules(i, &line));
            if errors.len() == before {
                parsed.push(line);
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let lines = OrderLines(parsed);
    let total = total(&lines).map_err(|e| vec![e])?;
    Ok((lines, total))
}

/// A required integer field of a line. An integer beyond `i64` is out of range, not a type
/// error; a number with a fraction (or an exponent) is not an integer.
fn integer(
    object: &Map<String, Value>,
    prefix: &str,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    let field = format!("{prefix}.{name}");
    match object.get(name) {
        None => errors.push(required(&field)),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => match n.as_i64() {
            Some(i) => return Some(i),
            None => errors.push(FieldError::new(
                field.as_str(),
                "out_of_range",
                format!("{field} is too large"),
            )),
        },
        Some(_) => errors.push(invalid_type(&field, "an integer")),
    }
    None
}

/// The lines at `field` of `object` (required), checked; record the problems in `errors`.
pub(crate) fn take_lines(
    object: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<(OrderLines, i64)> {
    match object.get("lines") {
        None => {
            errors.push(required("lines"));
            None
        }
        Some(value) => match lines_value(value) {
            Ok(lines) => Some(lines),
            Err(e) => {
                errors.extend(e);
                None
            }
        },
    }
}

/// Check a sync payload (see [`OrderPayload`] for the format); every problem is reported,
/// including a `total_minor` that is not the lines' exact total.
pub(crate) fn payload(kind: OpKind, value: &Value) -> Result<OrderPayload, Vec<FieldError>> {
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
    let customer = check("customer_id", &customer_id);
    let number_ = check("number", &number);
    let status_ = check("status", &status);
    let currency_ = check("currency", &currency);
    let lines_ = take_lines(object, &mut errors);
    let total_minor = match object.get("total_minor") {
        None => {
            errors.push(required("total_minor"));
            None
        }
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => match n.as_i64() {
            Some(t) if (0..=TOTAL_MAX).contains(&t) => Some(t),
            _ => {
                errors.push(out_of_range("total_minor", 0, TOTAL_MAX));
                None
            }
        },
        Some(_) => {
            errors.push(invalid_type("total_minor", "an integer"));
            None
        }
    };
    if let (Some((_, sum)), Some(total)) = (&lines_, total_minor) {
        if *sum != total {
            errors.push(FieldError::new(
                "total_minor",
                "total_mismatch",
                format!("total_minor is {total}; the lines add up to {sum}"),
            ));
        }
    }
    let created = take(
        object,
        "created_at",
        |s| timestamp("created_at", s),
        &mut errors,
    );
    let updated = take(
        object,
        "updated_at",
        |s| timestamp("updated_at", s),
        &mut errors,
    );
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
    if !errors.is_empty() {
        return Err(errors);
    }
    match (
        id,
        tenant,
        customer,
        number_,
        status_,
        currency_,
        lines_,
        total_minor,
        created,
        updated,
        deleted,
    ) {
        (
            Some(id),
            Some(tenant_id),
            Some(customer_id),
            Some(number),
            Some(status),
            Some(currency),
            Some((lines, _)),
            Some(total_minor),
            Some(created_at),
            Some(updated_at),
            Some(deleted_at),
        ) => Ok(OrderPayload {
            id,
            tenant_id,
            customer_id,
            number,
            status,
            currency,
            lines,
            total_minor,
            created_at,
            updated_at,
            deleted_at,
        }),
        _ => Err(errors),
    }
}
