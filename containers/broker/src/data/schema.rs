//! `diesel::table!` for the broker's tables (migrations `*_broker_*`).

diesel::table! {
    broker_regions (id) {
        id -> Text,
        base_url -> Text,
        credential_hash -> Text,
        scopes -> Text,
        last_heartbeat_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    broker_tenants (tenant_id) {
        tenant_id -> Text,
        home_region -> Text,
        epoch -> BigInt,
        placed_at -> Timestamp,
    }
}

diesel::table! {
    broker_registry_lock (id) {
        id -> Integer,
        version -> BigInt,
    }
}
