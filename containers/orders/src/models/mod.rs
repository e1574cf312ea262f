//! Rows and the sync payload of the orders container.

mod order;
mod payload;

pub use order::{CustomerState, Order, OrderLine, OrderLines, OrderStatus};
pub use payload::{format_timestamp, parse_timestamp, OrderPayload};
