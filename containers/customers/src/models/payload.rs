use serde::{Deserialize, Serialize};

use super::Customer;

/// The sync payload of one customer: the full row state, without the sync columns (those travel
/// as the op's version).
///
/// **The sync container and other regions rely on this exact format** (schema version 1):
///
/// ```json
/// {
///   "id": "0193a6f2-7c4e-7b1a-9f3e-2d4c5b6a7e8f",
///   "tenant_id": "acme",
///   "name": "Zoë Ünïcode",
///   "email": "zoe@example.com",
///   "status": "active",
///   "created_at": "2026-11-25T15:00:00.123456Z",
///   "updated_at": "2026-11-25T15:00:00.123456Z",
///   "deleted_at": null
/// }
/// ```
///
/// - exactly these eight keys, all present (`deleted_at` may be `null`), no others;
/// - `id`: a UUID in lowercase hyphenated form (v7 when created by a region);
/// - `tenant_id`: 1–64 characters; `name`: 1–200 characters, not blank; `email`: at most 254
///   characters, `local@domain`, no whitespace; `status`: `active`, `suspended` or `closed`;
/// - timestamps: RFC 3339 in UTC with exactly six fraction digits and `Z`
///   (`YYYY-MM-DDTHH:MM:SS.ffffffZ`); [`parse_timestamp`] also accepts other RFC 3339 forms
///   with at most microsecond precision and converts them to UTC;
/// - `deleted_at`: `null` for an `upsert` op, a timestamp for a `delete` op (a tombstone).
///
/// The key order above is the serialisation order, which [`crate::CustomersResource::digest`]
/// relies on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerPayload {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub email: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

pub use ship::contracts::timestamps::{format_timestamp, parse_timestamp};

impl From<&Customer> for CustomerPayload {
    fn from(c: &Customer) -> Self {
        CustomerPayload {
            id: c.id.clone(),
            tenant_id: c.tenant_id.clone(),
            name: c.name.clone(),
            email: c.email.clone(),
            status: c.status.clone(),
            created_at: format_timestamp(c.created_at),
            updated_at: format_timestamp(c.updated_at),
            deleted_at: c.deleted_at.map(format_timestamp),
        }
    }
}

impl CustomerPayload {
    /// The payload as a local write's change carries it: its text, written straight from this
    /// struct in the documented key order (no JSON tree built only to be written out again).
    pub fn to_payload(&self) -> Result<ship::contracts::Payload, ship::DbError> {
        ship::contracts::Payload::serialized(self)
            .map_err(|e| crate::tasks::invalid(&format!("the payload does not serialize: {e}")))
    }

    /// The payload as a JSON value (what a `Change` carries).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "email": self.email,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted_at": self.deleted_at,
        })
    }

    /// The row this payload describes, with the given version. `None` when a timestamp does
    /// not parse (validate the payload first).
    pub fn to_row(&self, sync_version: i64, sync_origin: &str) -> Option<Customer> {
        Some(Customer {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
            status: self.status.clone(),
            created_at: parse_timestamp(&self.created_at)?,
            updated_at: parse_timestamp(&self.updated_at)?,
            sync_version,
            sync_origin: sync_origin.to_string(),
            deleted_at: match &self.deleted_at {
                Some(t) => Some(parse_timestamp(t)?),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let t = parse_timestamp("2026-11-25T15:00:00.123456Z").unwrap();
        assert_eq!(format_timestamp(t), "2026-11-25T15:00:00.123456Z");
        let whole = parse_timestamp("2026-11-25T15:00:00Z").unwrap();
        assert_eq!(format_timestamp(whole), "2026-11-25T15:00:00.000000Z");
        let offset = parse_timestamp("2026-11-25T16:00:00.5+01:00").unwrap();
        assert_eq!(format_timestamp(offset), "2026-11-25T15:00:00.500000Z");
        assert_eq!(parse_timestamp("2026-11-25T15:00:00.123456789Z"), None);
        assert_eq!(parse_timestamp("2026-11-25 15:00:00"), None);
    }

    #[test]
    fn a_local_write_carries_the_payload_as_text_in_the_documented_order_and_as_the_same_value() {
        let payload = CustomerPayload {
            id: "0193a6f2-7c4e-7b1a-9f3e-2d4c5b6a7e8f".into(),
            tenant_id: "acme".into(),
            name: "Zoë \"Z\" Ünïcode".into(),
            email: "zoe@example.com".into(),
            status: "active".into(),
            created_at: "2026-11-25T15:00:00.123456Z".into(),
            updated_at: "2026-11-25T15:00:00.123456Z".into(),
            deleted_at: None,
        };
        let carried = payload.to_payload().unwrap();
        assert_eq!(
            carried.text(),
            "{\"id\":\"0193a6f2-7c4e-7b1a-9f3e-2d4c5b6a7e8f\",\"tenant_id\":\"acme\",\
             \"name\":\"Zoë \\\"Z\\\" Ünïcode\",\"email\":\"zoe@example.com\",\"status\":\"active\",\
             \"created_at\":\"2026-11-25T15:00:00.123456Z\",\"updated_at\":\"2026-11-25T15:00:00.123456Z\",\
             \"deleted_at\":null}"
        );
        assert_eq!(
            carried,
            payload.to_value(),
            "the same JSON as the value a peer's op carries"
        );
    }
}
