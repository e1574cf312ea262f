//! One handler per endpoint: parse the request, call one action, transform the result.

pub mod create_customer;
pub mod create_customers;
pub mod delete_customer;
pub mod get_customer;
pub mod list_customers;
pub mod update_customer;
