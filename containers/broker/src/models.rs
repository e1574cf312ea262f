//! The broker's rows and the views derived from them.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::data::schema::{broker_regions, broker_tenants};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = broker_regions)]
pub struct Region {
    pub id: String,
    pub base_url: String,
    pub credential_hash: String,
    pub scopes: String,
    pub last_heartbeat_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// All resources the broker serves.
pub const ALL_SCOPES: &str = "*";

impl Region {
    /// `online` when the last heartbeat is at most `offline_after_secs` old.
    pub fn status(&self, now: NaiveDateTime, offline_after_secs: u64) -> &'static str {
        match self.last_heartbeat_at {
            Some(at) if (now - at).num_seconds() <= offline_after_secs as i64 => "online",
            _ => "offline",
        }
    }

    /// The resources this region may sync: its own list, or every resource the broker serves.
    pub fn scope(&self, served: &[String]) -> Vec<String> {
        if self.scopes == ALL_SCOPES {
            return served.to_vec();
        }
        self.scopes
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn view(&self, now: NaiveDateTime, offline_after_secs: u64) -> RegionView {
        RegionView {
            id: self.id.clone(),
            base_url: self.base_url.clone(),
            status: self.status(now, offline_after_secs),
            scopes: self.scopes.clone(),
            last_heartbeat_at: self.last_heartbeat_at.map(|t| t.and_utc().to_rfc3339()),
        }
    }
}

/// A region as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RegionView {
    #[schema(example = "us-east")]
    pub id: String,
    /// Where the region is reached.
    #[schema(example = "https://10.0.0.2:8080")]
    pub base_url: String,
    /// `online`, or `offline` (no heartbeat for `broker.offline_after_secs`).
    #[schema(value_type = String, example = "online")]
    pub status: &'static str,
    /// The resources the region may be called for: `*` or a comma-separated list.
    #[schema(example = "*")]
    pub scopes: String,
    /// RFC 3339; `null` before its first heartbeat.
    pub last_heartbeat_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = broker_tenants)]
pub struct Tenant {
    pub tenant_id: String,
    pub home_region: String,
    pub epoch: i64,
    pub placed_at: NaiveDateTime,
}
