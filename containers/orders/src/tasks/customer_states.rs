use std::collections::HashMap;

use ship::contracts::{contract_error, ResourceRegistry, RowState};
use ship::parents::Task;
use ship::{AnyConnection, DbError};

use crate::models::CustomerState;
use crate::CUSTOMER_REF;

/// The state here of the customers `customer_ids` name, as seen from `tenant_id`: one read
/// through the registry (the customers resource's `row_info`), on the caller's connection.
/// A customer of another tenant is `Missing`, exactly as one that does not exist: an order
/// never learns of another tenant's customers.
pub(crate) struct CustomerStatesTask;

/// Whether the customers read stay locked to the end of the caller's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// For a write that depends on them (a create): the registry's locking `row_info`, called
    /// before the write locks any order, so locks go customers first, as the apply takes them.
    Locked,
    /// For showing `customer_state` only: no lock (a read after the order's lock must not wait
    /// for a customer's).
    Plain,
}

impl Task for CustomerStatesTask {
    const NAME: &'static str = "orders.customer_states";
}

impl CustomerStatesTask {
    /// Every id of `customer_ids` with its state (duplicates are read once).
    pub(crate) fn run(
        conn: &mut AnyConnection,
        registry: &ResourceRegistry,
        read: Read,
        tenant_id: &str,
        customer_ids: &[&str],
    ) -> Result<HashMap<String, CustomerState>, DbError> {
        let mut ids = customer_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let found = match read {
            _ if ids.is_empty() => HashMap::new(),
            Read::Locked => registry.row_info(conn, CUSTOMER_REF.resource, &ids)?,
            Read::Plain => registry
                .get(CUSTOMER_REF.resource)
                .ok_or_else(|| {
                    contract_error(format!(
                        "no registered resource `{}`",
                        CUSTOMER_REF.resource
                    ))
                })?
                .row_info(conn, &ids, false)?,
        };
        Ok(ids
            .into_iter()
            .map(|id| {
                let state = match found.get(id) {
                    Some(info) if info.tenant_id == tenant_id => match info.state {
                        RowState::Live => CustomerState::Live,
                        RowState::Deleted => CustomerState::Deleted,
                    },
                    _ => CustomerState::Missing,
                };
                (id.to_string(), state)
            })
            .collect())
    }

    /// The state of one customer.
    pub(crate) fn one(
        conn: &mut AnyConnection,
        registry: &ResourceRegistry,
        read: Read,
        tenant_id: &str,
        customer_id: &str,
    ) -> Result<CustomerState, DbError> {
        Ok(Self::run(conn, registry, read, tenant_id, &[customer_id])?
            .remove(customer_id)
            .unwrap_or(CustomerState::Missing))
    }
}
