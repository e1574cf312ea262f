//! The use cases of the orders container. Each owns its transaction (`DbPool::transaction`)
//! and knows nothing of HTTP: controllers, CLI commands and jobs call the same actions.

pub mod create_order;
pub mod delete_order;
pub mod get_order;
pub mod list_orders;
pub mod update_order;

pub use create_order::{CreateOrderAction, CreateOrderInput};
pub use delete_order::DeleteOrderAction;
pub use get_order::GetOrderAction;
pub use list_orders::{ListOrdersAction, ListOrdersInput, OrderPage};
pub use update_order::{UpdateOrderAction, UpdateOrderInput};

use ship::contracts::FieldError;

use crate::models::{CustomerState, Order};
use crate::OrdersError;

/// An order as the actions answer it: the row and the state of its customer here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub order: Order,
    pub customer_state: CustomerState,
}

/// Collect the failed rules into one validation error.
pub(crate) fn check(results: Vec<Result<(), FieldError>>) -> Result<(), OrdersError> {
    let errors: Vec<FieldError> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(OrdersError::Validation(errors))
    }
}

/// Ids are UUIDs: anything else cannot name an order.
pub(crate) fn known_id(id: &str) -> Result<(), OrdersError> {
    crate::validation::uuid("id", id).map_err(|_| OrdersError::NotFound(id.to_string()))
}
