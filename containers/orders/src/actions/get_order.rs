use ship::contracts::ResourceRegistry;
use ship::parents::Action;
use ship::DbPool;

use super::OrderView;
use crate::data::orders;
use crate::tasks::customer_states::Read;
use crate::tasks::CustomerStatesTask;
use crate::OrdersError;

/// One live order by id, with its customer's state; a deleted one is not found.
pub struct GetOrderAction {
    pool: DbPool,
    registry: ResourceRegistry,
}

impl GetOrderAction {
    pub fn new(pool: DbPool, registry: ResourceRegistry) -> Self {
        Self { pool, registry }
    }
}

impl Action for GetOrderAction {
    const NAME: &'static str = "orders.get_order";
    type Input = String;
    type Output = OrderView;
    type Error = OrdersError;

    #[tracing::instrument(name = "orders.get_order", skip_all, fields(order_id = %ship::errors::clip(&id)))]
    async fn run(&self, id: String) -> Result<OrderView, OrdersError> {
        super::known_id(&id)?;
        let registry = self.registry.clone();
        self.pool
            .run(move |conn| {
                let order = match orders::find(conn, &id)? {
                    Some(row) if !row.is_deleted() => row,
                    _ => return Err(OrdersError::NotFound(id)),
                };
                let customer_state = CustomerStatesTask::one(
                    conn,
                    &registry,
                    Read::Plain,
                    &order.tenant_id,
                    &order.customer_id,
                )?;
                Ok(OrderView {
                    order,
                    customer_state,
                })
            })
            .await
    }
}
