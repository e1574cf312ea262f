//! The `customers` table as both backends declare it (`migrations/*/2026-11-25-0002*_customers_*`):
//! SQLite `TIMESTAMP` and MariaDB `DATETIME(6)` are both `Timestamp`; `VARCHAR` is `Text`.

diesel::table! {
    customers (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        email -> Text,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        sync_version -> BigInt,
        sync_origin -> Text,
        deleted_at -> Nullable<Timestamp>,
    }
}
