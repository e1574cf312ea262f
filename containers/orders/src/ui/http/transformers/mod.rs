//! Models → response bodies.
pub mod order_transformer;
