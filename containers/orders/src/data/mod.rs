//! Schema and queries of the orders table. No business rules here.

pub(crate) mod orders;
pub(crate) mod schema;
