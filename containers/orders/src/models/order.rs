use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::schema::orders;

/// One row of `orders`, sync columns included. Timestamps are UTC, truncated to microseconds
/// (`ship::db::utc_now`), so every backend stores the same value.
///
/// `Insertable` and `AsChangeset` take the row by value (`lines` is converted into its stored
/// text on the way in).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = orders)]
#[diesel(treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct Order {
    /// UUID v7, lowercase hyphenated, generated where the order is created.
    pub id: String,
    pub tenant_id: String,
    /// The customer's id (a customer of `tenant_id`, checked where the order is created).
    pub customer_id: String,
    /// The client's order number: not unique (two regions can create the same one).
    pub number: String,
    /// One of [`OrderStatus`], stored as its snake_case name.
    pub status: String,
    /// ISO 4217 shape: three uppercase ASCII letters.
    pub currency: String,
    /// Stored as compact JSON text ([`OrderLines::to_json`]).
    #[diesel(serialize_as = String, deserialize_as = String)]
    pub lines: OrderLines,
    /// Σ quantity × unit_price_minor, computed by the server.
    pub total_minor: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// HLC (`ship::contracts::Hlc::as_i64`) of the write that produced this state.
    pub sync_version: i64,
    /// Region of that write.
    pub sync_origin: String,
    /// Set when the order is deleted: the row stays as a tombstone, with its version.
    pub deleted_at: Option<NaiveDateTime>,
}

impl Order {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// One line of an order. Serialised with its keys in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// 1–64 characters, not blank.
    #[schema(min_length = 1, max_length = 64, example = "BOOK-1")]
    pub sku: String,
    #[schema(minimum = 1, maximum = 1_000_000, example = 2)]
    pub quantity: i64,
    /// The price of one unit in minor units (cents).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, example = 1250)]
    pub unit_price_minor: i64,
}

/// The lines of an order, as the `lines` column stores them: a JSON array of [`OrderLine`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(description = "1 to 100 lines.")]
pub struct OrderLines(pub Vec<OrderLine>);

impl OrderLines {
    /// Compact JSON, each line's keys in the documented order (`sku`, `quantity`,
    /// `unit_price_minor`): what the column stores, the same on every backend.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(2 + self.0.len() * 64);
        out.push('[');
        for (i, line) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // A `Value`'s `Display` is compact JSON (here: the escaped string) and cannot fail.
            out.push_str(&format!(
                "{{\"sku\":{},\"quantity\":{},\"unit_price_minor\":{}}}",
                serde_json::Value::from(line.sku.as_str()),
                line.quantity,
                line.unit_price_minor
            ));
        }
        out.push(']');
        out
    }

    /// Σ quantity × unit_price_minor, `None` on an `i64` overflow.
    pub fn total(&self) -> Option<i64> {
        self.0.iter().try_fold(0i64, |sum, line| {
            line.quantity
                .checked_mul(line.unit_price_minor)
                .and_then(|amount| sum.checked_add(amount))
        })
    }
}

impl From<OrderLines> for String {
    fn from(lines: OrderLines) -> String {
        lines.to_json()
    }
}

impl TryFrom<String> for OrderLines {
    type Error = serde_json::Error;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&text)
    }
}

/// The statuses an order can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether a local write may move an order from `self` to `next`: pending → confirmed or
    /// cancelled, confirmed → shipped or cancelled, shipped → delivered; delivered and
    /// cancelled are final; staying is always allowed. (A replicated write is not checked:
    /// last-writer-wins on the full state decides.)
    pub fn may_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        self == next
            || matches!(
                (self, next),
                (Pending, Confirmed | Cancelled)
                    | (Confirmed, Shipped | Cancelled)
                    | (Shipped, Delivered)
            )
    }
}

/// The referenced customer's state in this region, as an answered order shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CustomerState {
    Live,
    /// A tombstone.
    Deleted,
    /// No such customer here (not replicated yet, purged, or of another tenant).
    Missing,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_are_stored_as_serde_would_write_them() {
        let lines = OrderLines(vec![
            OrderLine {
                sku: "A-1 \"quoted\" é 🦀 \\".into(),
                quantity: 3,
                unit_price_minor: 250,
            },
            OrderLine {
                sku: "B".into(),
                quantity: 1_000_000,
                unit_price_minor: 0,
            },
        ]);
        assert_eq!(lines.to_json(), serde_json::to_string(&lines).unwrap());
        assert!(lines.to_json().starts_with("[{\"sku\":"));
        assert_eq!(OrderLines::try_from(lines.to_json()).unwrap(), lines);
        assert_eq!(OrderLines::default().to_json(), "[]");
        assert_eq!(lines.total(), Some(750));
        let huge = OrderLines(vec![
            OrderLine {
                sku: "x".into(),
                quantity: 1_000_000,
                unit_price_minor: 1_000_000_000_000,
            };
            10
        ]);
        assert_eq!(huge.total(), None, "overflow is detected, never wrapped");
    }

    #[test]
    fn transitions_follow_the_lifecycle() {
        use OrderStatus::*;
        let allowed: Vec<(OrderStatus, OrderStatus)> = OrderStatus::ALL
            .into_iter()
            .flat_map(|from| OrderStatus::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| from != to && from.may_become(*to))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Pending, Confirmed),
                (Pending, Cancelled),
                (Confirmed, Shipped),
                (Confirmed, Cancelled),
                (Shipped, Delivered),
            ]
        );
        assert!(OrderStatus::ALL.iter().all(|s| s.may_become(*s)));
    }
}
