//! Rows and the sync payload of the customers container.

mod customer;
mod payload;

pub use customer::{Customer, CustomerStatus};
pub use payload::{format_timestamp, parse_timestamp, CustomerPayload};
