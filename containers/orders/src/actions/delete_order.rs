use std::sync::Arc;

use ship::contracts::ChangeRecorder;
use ship::db::utc_now;
use ship::parents::Action;
use ship::DbPool;

use crate::data::orders;
use crate::models::Order;
use crate::tasks::save_local_write::Write;
use crate::tasks::SaveLocalWriteTask;
use crate::OrdersError;

/// Delete a live order, whatever its status: the row stays as a tombstone (`deleted_at` set)
/// with a new version, recorded as a `delete` change, in one transaction. Deleting a deleted
/// order is not found.
pub struct DeleteOrderAction {
    pool: DbPool,
    recorder: Arc<dyn ChangeRecorder>,
}

impl DeleteOrderAction {
    pub fn new(pool: DbPool, recorder: Arc<dyn ChangeRecorder>) -> Self {
        Self { pool, recorder }
    }
}

impl Action for DeleteOrderAction {
    const NAME: &'static str = "orders.delete_order";
    type Input = String;
    /// The tombstone.
    type Output = Order;
    type Error = OrdersError;

    #[tracing::instrument(name = "orders.delete_order", skip_all, fields(order_id = %ship::errors::clip(&id)))]
    async fn run(&self, id: String) -> Result<Order, OrdersError> {
        super::known_id(&id)?;
        let recorder = Arc::clone(&self.recorder);
        let saved = self
            .pool
            .transaction(move |conn| {
                let mut row = match orders::find_for_update(conn, &id)? {
                    Some(row) if !row.is_deleted() => row,
                    _ => return Err(OrdersError::NotFound(id)),
                };
                let now = utc_now();
                row.updated_at = now;
                row.deleted_at = Some(now);
                Ok(SaveLocalWriteTask::run(
                    conn,
                    recorder.as_ref(),
                    row,
                    Write::Update,
                )?)
            })
            .await?;
        // Committed: a dispatcher in this process may deliver it now.
        self.recorder.committed();
        Ok(saved)
    }
}
