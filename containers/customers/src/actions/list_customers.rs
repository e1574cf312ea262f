use ship::parents::Action;
use ship::DbPool;

use crate::data::customers;
use crate::models::Customer;
use crate::{validation, CustomersError};

/// Page size when the caller names none.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page a caller may ask for.
pub const MAX_LIMIT: u32 = 500;

/// A tenant's live customers by id, one keyset page at a time (tombstones excluded).
pub struct ListCustomersAction {
    pool: DbPool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCustomersInput {
    pub tenant_id: String,
    /// 1..=[`MAX_LIMIT`].
    pub limit: u32,
    /// Only ids greater than this one (the previous page's `next_after`).
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerPage {
    pub items: Vec<Customer>,
    /// The `after` of the next page; `None` on the last page.
    pub next_after: Option<String>,
}

impl ListCustomersAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for ListCustomersAction {
    const NAME: &'static str = "customers.list_customers";
    type Input = ListCustomersInput;
    type Output = CustomerPage;
    type Error = CustomersError;

    #[tracing::instrument(name = "customers.list_customers", skip_all, fields(tenant_id = %input.tenant_id))]
    async fn run(&self, input: ListCustomersInput) -> Result<CustomerPage, CustomersError> {
        super::check(vec![validation::tenant_id(&input.tenant_id)])?;
        if !(1..=MAX_LIMIT).contains(&input.limit) {
            return Err(CustomersError::InvalidLimit { max: MAX_LIMIT });
        }
        let limit = i64::from(input.limit);
        self.pool
            .run(move |conn| {
                // One more than asked tells whether there is a next page.
                let mut items = customers::live_page(
                    conn,
                    &input.tenant_id,
                    input.after.as_deref(),
                    limit + 1,
                )?;
                let more = items.len() as i64 > limit;
                items.truncate(input.limit as usize);
                let next_after = if more {
                    items.last().map(|c| c.id.clone())
                } else {
                    None
                };
                Ok(CustomerPage { items, next_after })
            })
            .await
    }
}
