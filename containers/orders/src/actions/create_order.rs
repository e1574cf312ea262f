use std::sync::Arc;

use ship::contracts::{ChangeRecorder, FieldError, ResourceRegistry};
use ship::db::utc_now;
use ship::parents::Action;
use ship::DbPool;

use super::OrderView;
use crate::models::{CustomerState, Order, OrderLines, OrderStatus};
use crate::tasks::customer_states::Read;
use crate::tasks::save_local_write::Write;
use crate::tasks::{CustomerStatesTask, SaveLocalWriteTask};
use crate::{validation, OrdersError};

/// Create an order of a live customer of its tenant: a new UUID v7 and the server's total,
/// the customer checked, the row written and recorded, in one transaction.
pub struct CreateOrderAction {
    pool: DbPool,
    recorder: Arc<dyn ChangeRecorder>,
    registry: ResourceRegistry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOrderInput {
    pub tenant_id: String,
    pub customer_id: String,
    pub number: String,
    pub currency: String,
    pub lines: OrderLines,
    /// Must be [`OrderStatus::Pending`]: every order starts pending.
    pub status: OrderStatus,
}

impl CreateOrderInput {
    /// The input's broken rules, or its lines' total.
    fn checked_total(&self) -> Result<i64, OrdersError> {
        let mut errors: Vec<FieldError> = [
            validation::tenant_id(&self.tenant_id),
            validation::customer_id(&self.customer_id),
            validation::number(&self.number),
            validation::currency(&self.currency),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect();
        if self.status != OrderStatus::Pending {
            errors.push(FieldError::new(
                "status",
                "invalid_value",
                "an order is created pending",
            ));
        }
        let line_errors = validation::lines(&self.lines.0);
        if !line_errors.is_empty() {
            errors.extend(line_errors);
        } else {
            match validation::total(&self.lines) {
                Ok(total) if errors.is_empty() => return Ok(total),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        Err(OrdersError::Validation(errors))
    }

    /// The new row: a fresh UUID v7, created and updated `now`, not versioned yet.
    fn into_row(self, total_minor: i64, now: chrono::NaiveDateTime) -> Order {
        Order {
            id: uuid::Uuid::now_v7().hyphenated().to_string(),
            tenant_id: self.tenant_id,
            customer_id: self.customer_id,
            number: self.number,
            status: self.status.as_str().to_string(),
            currency: self.currency,
            lines: self.lines,
            total_minor,
            created_at: now,
            updated_at: now,
            sync_version: 0,
            sync_origin: String::new(),
            deleted_at: None,
        }
    }
}

impl CreateOrderAction {
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

/// The refusal of an order whose customer is not live in its tenant (another tenant's customer
/// is unknown: its existence is not revealed).
fn customer_refused(state: CustomerState) -> Option<OrdersError> {
    let (code, message) = match state {
        CustomerState::Live => return None,
        CustomerState::Deleted => ("deleted_customer", "customer_id names a deleted customer"),
        CustomerState::Missing => (
            "unknown_customer",
            "customer_id names no customer of this tenant",
        ),
    };
    Some(OrdersError::Validation(vec![FieldError::new(
        "customer_id",
        code,
        message,
    )]))
}

impl Action for CreateOrderAction {
    const NAME: &'static str = "orders.create_order";
    type Input = CreateOrderInput;
    type Output = OrderView;
    type Error = OrdersError;

    #[tracing::instrument(name = "orders.create_order", skip_all, fields(order_id))]
    async fn run(&self, input: CreateOrderInput) -> Result<OrderView, OrdersError> {
        let total = input.checked_total()?;
        let row = input.into_row(total, utc_now());
        tracing::Span::current().record("order_id", row.id.as_str());
        let recorder = Arc::clone(&self.recorder);
        let registry = self.registry.clone();
        let saved = self
            .pool
            .transaction(move |conn| {
                // Checked in the write's transaction, the customer's row locked (MariaDB; on
                // SQLite the transaction holds the write lock): it cannot be deleted between
                // the check and the insert. Locked before anything of ours: the dependency
                // order (customers, then orders) the apply takes its locks in.
                let state = CustomerStatesTask::one(
                    conn,
                    &registry,
                    Read::Locked,
                    &row.tenant_id,
                    &row.customer_id,
                )?;
                if let Some(refused) = customer_refused(state) {
                    return Err(refused);
                }
                // A fresh UUID v7: the row is known to be new, there is nothing to lock.
                let order = SaveLocalWriteTask::run(conn, recorder.as_ref(), row, Write::Insert)?;
                Ok(OrderView {
                    order,
                    customer_state: state,
                })
            })
            .await?;
        // Committed: a dispatcher in this process may deliver it now.
        self.recorder.committed();
        Ok(saved)
    }
}
