use serde::{Deserialize, Serialize};

use super::{Order, OrderLines};

/// The sync payload of one order: the full row state, without the sync columns (those travel
/// as the op's version).
///
/// **The sync container and other regions rely on this exact format** (schema version 1):
///
/// ```json
/// {
///   "id": "0193a6f2-7c4e-7b1a-9f3e-2d4c5b6a7e8f",
///   "tenant_id": "acme",
///   "customer_id": "0193a6f2-0000-7b1a-9f3e-2d4c5b6a7e8f",
///   "number": "SO-1042",
///   "status": "pending",
///   "currency": "EUR",
///   "lines": [{"sku": "TEA-01", "quantity": 3, "unit_price_minor": 450}],
///   "total_minor": 1350,
///   "created_at": "2026-12-06T15:00:00.123456Z",
///   "updated_at": "2026-12-06T15:00:00.123456Z",
///   "deleted_at": null
/// }
/// ```
///
/// - exactly these eleven keys, all present (`deleted_at` may be `null`), no others;
/// - `id` and `customer_id`: UUIDs in lowercase hyphenated form (`id` v7 when created by a
///   region); `customer_id` names a customer of the same tenant where the order was created;
/// - `tenant_id`: 1–64 characters; `number`: 1–64 characters, not blank, not unique;
///   `status`: `pending`, `confirmed`, `shipped`, `delivered` or `cancelled`; `currency`: three
///   uppercase ASCII letters;
/// - `lines`: 1 to 100 objects of exactly `sku` (1–64 characters, not blank), `quantity` (an
///   integer, 1 to 1,000,000) and `unit_price_minor` (an integer, 0 to 10^12), in that key
///   order;
/// - `total_minor`: Σ quantity × unit_price_minor, exactly, at most 2^53 − 1;
/// - timestamps: RFC 3339 in UTC with exactly six fraction digits and `Z`
///   (`YYYY-MM-DDTHH:MM:SS.ffffffZ`); [`parse_timestamp`] also accepts other RFC 3339 forms
///   with at most microsecond precision and converts them to UTC;
/// - `deleted_at`: `null` for an `upsert` op, a timestamp for a `delete` op (a tombstone).
///
/// The key order above is the serialisation order, which [`crate::OrdersResource::digest`]
/// relies on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPayload {
    /// A UUID (v7 when created by a region).
    #[schema(example = "01a248bf-354f-75bb-b7a4-ffc516fc4cd9")]
    pub id: String,
    #[schema(min_length = 1, max_length = 64, example = "acme")]
    pub tenant_id: String,
    /// The customer the order was taken for (a UUID); never changes.
    #[schema(example = "01a248bf-34b6-7521-ba0b-5f64d3791d67")]
    pub customer_id: String,
    /// The client's order number: 1–64 characters, not blank, not unique.
    #[schema(min_length = 1, max_length = 64, example = "SO-1001")]
    pub number: String,
    #[schema(value_type = super::OrderStatus)]
    pub status: String,
    /// Three uppercase letters (ISO 4217 shape); never changes.
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
    pub lines: OrderLines,
    /// Σ quantity × unit price, in minor units, computed by the region; at most 2^53 − 1.
    #[schema(minimum = 0, example = 2899)]
    pub total_minor: i64,
    /// RFC 3339, UTC, microseconds.
    #[schema(example = "2026-12-06T00:27:00.303551Z")]
    pub created_at: String,
    #[schema(example = "2026-12-06T00:27:00.303551Z")]
    pub updated_at: String,
    /// `null` for a live order (only live orders are answered by the API).
    pub deleted_at: Option<String>,
}

pub use ship::contracts::timestamps::{format_timestamp, parse_timestamp};

impl From<&Order> for OrderPayload {
    fn from(o: &Order) -> Self {
        OrderPayload {
            id: o.id.clone(),
            tenant_id: o.tenant_id.clone(),
            customer_id: o.customer_id.clone(),
            number: o.number.clone(),
            status: o.status.clone(),
            currency: o.currency.clone(),
            lines: o.lines.clone(),
            total_minor: o.total_minor,
            created_at: format_timestamp(o.created_at),
            updated_at: format_timestamp(o.updated_at),
            deleted_at: o.deleted_at.map(format_timestamp),
        }
    }
}

impl OrderPayload {
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
            "customer_id": self.customer_id,
            "number": self.number,
            "status": self.status,
            "currency": self.currency,
            "lines": self.lines.0.iter().map(|line| serde_json::json!({
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price_minor,
            })).collect::<Vec<_>>(),
            "total_minor": self.total_minor,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted_at": self.deleted_at,
        })
    }

    /// The row this payload describes, with the given version. `None` when a timestamp does
    /// not parse (validate the payload first).
    pub fn to_row(&self, sync_version: i64, sync_origin: &str) -> Option<Order> {
        Some(Order {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            customer_id: self.customer_id.clone(),
            number: self.number.clone(),
            status: self.status.clone(),
            currency: self.currency.clone(),
            lines: self.lines.clone(),
            total_minor: self.total_minor,
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
    use crate::models::OrderLine;

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

    /// An order of one line, live.
    fn sample() -> OrderPayload {
        OrderPayload {
            id: "i".into(),
            tenant_id: "t".into(),
            customer_id: "c".into(),
            number: "n".into(),
            status: "pending".into(),
            currency: "EUR".into(),
            lines: OrderLines(vec![OrderLine {
                sku: "s".into(),
                quantity: 2,
                unit_price_minor: 5,
            }]),
            total_minor: 10,
            created_at: "a".into(),
            updated_at: "b".into(),
            deleted_at: None,
        }
    }

    #[test]
    fn the_payload_serialises_its_keys_in_the_documented_order() {
        let payload = sample();
        assert_eq!(
            serde_json::to_string(&payload).unwrap(),
            "{\"id\":\"i\",\"tenant_id\":\"t\",\"customer_id\":\"c\",\"number\":\"n\",\
             \"status\":\"pending\",\"currency\":\"EUR\",\
             \"lines\":[{\"sku\":\"s\",\"quantity\":2,\"unit_price_minor\":5}],\
             \"total_minor\":10,\"created_at\":\"a\",\"updated_at\":\"b\",\"deleted_at\":null}"
        );
        assert_eq!(
            serde_json::from_value::<OrderPayload>(payload.to_value()).unwrap(),
            payload
        );
    }

    #[test]
    fn a_local_write_carries_the_same_json_as_the_value() {
        let payload = OrderPayload {
            number: "n\"1".into(),
            deleted_at: Some("d".into()),
            ..sample()
        };
        let carried = payload.to_payload().unwrap();
        assert_eq!(carried.text(), serde_json::to_string(&payload).unwrap());
        assert_eq!(carried, payload.to_value());
    }
}
