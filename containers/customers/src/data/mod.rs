//! Schema and queries of the customers table. No business rules here.

pub(crate) mod customers;
pub(crate) mod schema;
