use serde::Deserialize;
use ship::contracts::FieldError;

use crate::actions::list_customers::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::actions::ListCustomersInput;
use crate::{validation, CustomersError};

/// `GET /api/v1/customers?tenant_id=&limit=&after=`: `tenant_id` required, `limit` 1..=500
/// (default 50), `after` the previous page's `next_after`. Taken as strings so a bad number is
/// a field error (422 `validation_failed`), not a bare query error.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListCustomersRequest {
    pub tenant_id: Option<String>,
    pub limit: Option<String>,
    pub after: Option<String>,
}

impl ListCustomersRequest {
    pub fn parse(self) -> Result<ListCustomersInput, CustomersError> {
        let mut errors = Vec::new();
        let tenant_id = match self.tenant_id {
            None => {
                errors.push(validation::required("tenant_id"));
                None
            }
            Some(t) => match validation::tenant_id(&t) {
                Ok(()) => Some(t),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };
        let limit = match self.limit.as_deref() {
            None | Some("") => Some(DEFAULT_LIMIT),
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Some(n),
                Ok(_) => {
                    errors.push(FieldError::new(
                        "limit",
                        "out_of_range",
                        format!("limit must be between 1 and {MAX_LIMIT}"),
                    ));
                    None
                }
                Err(_) => {
                    errors.push(FieldError::new(
                        "limit",
                        "invalid_number",
                        "limit must be a whole number",
                    ));
                    None
                }
            },
        };
        let after = self.after.filter(|a| !a.is_empty());
        match (tenant_id, limit) {
            (Some(tenant_id), Some(limit)) if errors.is_empty() => Ok(ListCustomersInput {
                tenant_id,
                limit,
                after,
            }),
            _ => Err(CustomersError::Validation(errors)),
        }
    }
}
