use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::data::schema::customers;

/// One row of `customers`, sync columns included. Timestamps are UTC, truncated to
/// microseconds (`ship::db::utc_now`), so every backend stores the same value.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = customers)]
#[diesel(treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct Customer {
    /// UUID v7, lowercase hyphenated, generated where the customer is created.
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub email: String,
    /// One of [`CustomerStatus`], stored as its snake_case name.
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// HLC (`ship::contracts::Hlc::as_i64`) of the write that produced this state.
    pub sync_version: i64,
    /// Region of that write.
    pub sync_origin: String,
    /// Set when the customer is deleted: the row stays as a tombstone, with its version.
    pub deleted_at: Option<NaiveDateTime>,
}

impl Customer {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// The statuses a customer can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum CustomerStatus {
    Active,
    Suspended,
    Closed,
}

impl CustomerStatus {
    pub const ALL: [CustomerStatus; 3] = [
        CustomerStatus::Active,
        CustomerStatus::Suspended,
        CustomerStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CustomerStatus::Active => "active",
            CustomerStatus::Suspended => "suspended",
            CustomerStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}
