pub mod lock;
pub mod regions;
pub mod schema;
pub mod tenants;
