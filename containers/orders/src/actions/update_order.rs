use std::sync::Arc;

use ship::contracts::{ChangeRecorder, ResourceRegistry};
use ship::db::utc_now;
use ship::parents::Action;
use ship::DbPool;

use super::OrderView;
use crate::data::orders;
use crate::models::{OrderLines, OrderStatus};
use crate::tasks::customer_states::Read;
use crate::tasks::invalid;
use crate::tasks::save_local_write::Write;
use crate::tasks::{CustomerStatesTask, SaveLocalWriteTask};
use crate::{validation, OrdersError};

/// Change a live order: move its status along the lifecycle ([`OrderStatus::may_become`]) and,
/// while it is pending, its number and lines (the total follows). Lock, check, version, write
/// and record in one transaction.
pub struct UpdateOrderAction {
    pool: DbPool,
    recorder: Arc<dyn ChangeRecorder>,
    registry: ResourceRegistry,
}

/// A partial update; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateOrderInput {
    pub id: String,
    pub status: Option<OrderStatus>,
    pub number: Option<String>,
    pub lines: Option<OrderLines>,
}

impl UpdateOrderAction {
    pub fn new(
        pool: DbPool,
        recorder: Arc<dyn ChangeRecorder>,
        registry: ResourceRegistry,
    ) -> Self {
        Self {
            pool,
            recorder,
            registry,
        }
    }
}

impl Action for UpdateOrderAction {
    const NAME: &'static str = "orders.update_order";
    type Input = UpdateOrderInput;
    type Output = OrderView;
    type Error = OrdersError;

    #[tracing::instrument(name = "orders.update_order", skip_all, fields(order_id = %ship::errors::clip(&input.id)))]
    async fn run(&self, input: UpdateOrderInput) -> Result<OrderView, OrdersError> {
        super::known_id(&input.id)?;
        let mut results = vec![input.number.as_deref().map_or(Ok(()), validation::number)];
        let mut total = None;
        if let Some(lines) = &input.lines {
            let line_errors = validation::lines(&lines.0);
            if line_errors.is_empty() {
                match validation::total(lines) {
                    Ok(t) => total = Some(t),
                    Err(e) => results.push(Err(e)),
                }
            } else {
                results.extend(line_errors.into_iter().map(Err));
            }
        }
        super::check(results)?;
        let recorder = Arc::clone(&self.recorder);
        let registry = self.registry.clone();
        let saved = self
            .pool
            .transaction(move |conn| {
                let mut row = match orders::find_for_update(conn, &input.id)? {
                    Some(row) if !row.is_deleted() => row,
                    _ => return Err(OrdersError::NotFound(input.id)),
                };
                let current = OrderStatus::parse(&row.status)
                    .ok_or_else(|| invalid("a stored order has an unknown status"))?;
                if let Some(next) = input.status {
                    if !current.may_become(next) {
                        return Err(OrdersError::InvalidStatusTransition {
                            from: current,
                            to: next,
                        });
                    }
                }
                let before = row.clone();
                if let Some(number) = input.number {
                    row.number = number;
                }
                if let (Some(lines), Some(total)) = (input.lines, total) {
                    row.lines = lines;
                    row.total_minor = total;
                }
                // Sending the number or lines it has already is not a change: a retried PATCH
                // of a pending order that confirmed it succeeds again.
                if (row.number != before.number || row.lines != before.lines)
                    && current != OrderStatus::Pending
                {
                    return Err(OrdersError::NotEditable { status: current });
                }
                if let Some(next) = input.status {
                    row.status = next.as_str().to_string();
                }
                let order = if row == before {
                    // Nothing changes: no new version, no change to replicate.
                    before
                } else {
                    row.updated_at = utc_now();
                    SaveLocalWriteTask::run(conn, recorder.as_ref(), row, Write::Update)?
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
            .await?;
        // Committed: a dispatcher in this process may deliver it now.
        self.recorder.committed();
        Ok(saved)
    }
}
