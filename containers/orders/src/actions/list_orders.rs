use ship::contracts::ResourceRegistry;
use ship::parents::Action;
use ship::DbPool;

use super::OrderView;
use crate::data::orders;
use crate::models::CustomerState;
use crate::tasks::customer_states::Read;
use crate::tasks::CustomerStatesTask;
use crate::{validation, OrdersError};

/// Page size when the caller names none.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page a caller may ask for.
pub const MAX_LIMIT: u32 = 500;

/// A tenant's live orders (of one customer, when named) by id, one keyset page at a time
/// (tombstones excluded), each with its customer's state: one customer lookup per page.
pub struct ListOrdersAction {
    pool: DbPool,
    registry: ResourceRegistry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOrdersInput {
    pub tenant_id: String,
    /// Only this customer's orders.
    pub customer_id: Option<String>,
    /// 1..=[`MAX_LIMIT`].
    pub limit: u32,
    /// Only ids greater than this one (the previous page's `next_after`).
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub items: Vec<OrderView>,
    /// The `after` of the next page; `None` on the last page.
    pub next_after: Option<String>,
}

impl ListOrdersAction {
    pub fn new(pool: DbPool, registry: ResourceRegistry) -> Self {
        Self { pool, registry }
    }
}

impl Action for ListOrdersAction {
    const NAME: &'static str = "orders.list_orders";
    type Input = ListOrdersInput;
    type Output = OrderPage;
    type Error = OrdersError;

    #[tracing::instrument(name = "orders.list_orders", skip_all, fields(tenant_id = %ship::errors::clip(&input.tenant_id)))]
    async fn run(&self, input: ListOrdersInput) -> Result<OrderPage, OrdersError> {
        super::check(vec![
            validation::tenant_id(&input.tenant_id),
            input
                .customer_id
                .as_deref()
                .map_or(Ok(()), validation::customer_id),
        ])?;
        if !(1..=MAX_LIMIT).contains(&input.limit) {
            return Err(OrdersError::InvalidLimit { max: MAX_LIMIT });
        }
        let limit = i64::from(input.limit);
        let registry = self.registry.clone();
        self.pool
            .run(move |conn| {
                // One more than asked tells whether there is a next page.
                let mut rows = orders::live_page(
                    conn,
                    &input.tenant_id,
                    input.customer_id.as_deref(),
                    input.after.as_deref(),
                    limit + 1,
                )?;
                let more = rows.len() as i64 > limit;
                rows.truncate(input.limit as usize);
                let next_after = if more {
                    rows.last().map(|o| o.id.clone())
                } else {
                    None
                };
                let customer_ids: Vec<&str> = rows.iter().map(|o| o.customer_id.as_str()).collect();
                let states = CustomerStatesTask::run(
                    conn,
                    &registry,
                    Read::Plain,
                    &input.tenant_id,
                    &customer_ids,
                )?;
                let items = rows
                    .into_iter()
                    .map(|order| OrderView {
                        customer_state: states
                            .get(&order.customer_id)
                            .copied()
                            .unwrap_or(CustomerState::Missing),
                        order,
                    })
                    .collect();
                Ok(OrderPage { items, next_after })
            })
            .await
    }
}
