//! The `orders` table as both backends declare it (`migrations/*/2026-12-06-0004*_orders_*`):
//! SQLite `TIMESTAMP` and MariaDB `DATETIME(6)` are both `Timestamp`; `VARCHAR` and `TEXT` are
//! `Text`.

diesel::table! {
    orders (id) {
        id -> Text,
        tenant_id -> Text,
        customer_id -> Text,
        number -> Text,
        status -> Text,
        currency -> Text,
        lines -> Text,
        total_minor -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        sync_version -> BigInt,
        sync_origin -> Text,
        deleted_at -> Nullable<Timestamp>,
    }
}
