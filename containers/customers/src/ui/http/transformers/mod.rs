//! Models → response bodies.
pub mod customer_transformer;
