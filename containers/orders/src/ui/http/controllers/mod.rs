//! One handler per endpoint: parse the request, call one action, transform the result.

pub mod create_order;
pub mod delete_order;
pub mod get_order;
pub mod list_orders;
pub mod update_order;
