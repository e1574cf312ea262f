use serde::Deserialize;

use crate::actions::list_orders::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::actions::ListOrdersInput;
use ship::http::query;

use crate::{validation, OrdersError};

/// `GET /api/v1/orders?tenant_id=&customer_id=&limit=&after=`: `tenant_id` required,
/// `customer_id` (a customer id, a UUID) only that customer's orders, `limit` 1..=500 (default
/// 50), `after` the previous page's `next_after` (an order id, a UUID).
///
/// The rules, as in PROTOCOL.md's error table: an unknown parameter (refused by serde, through
/// ship's query config), a `limit` that is not a whole number and an `after` or `customer_id`
/// that is not a UUID are 400 `invalid_query`; a `limit` that is a number outside the range is
/// 400 `invalid_limit`; a missing or blank `tenant_id` is 422 `validation_failed`. The 400s
/// come first. Empty `limit=`, `after=` and `customer_id=` are as if absent.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOrdersRequest {
    /// The tenant whose orders are listed (missing or blank: 422 `validation_failed`).
    #[param(required = true, value_type = String, min_length = 1, max_length = 64)]
    pub tenant_id: Option<String>,
    /// Only this customer's orders (a customer id, a UUID; else 400 `invalid_query`).
    #[param(format = Uuid)]
    pub customer_id: Option<String>,
    /// Page size (not a whole number: 400 `invalid_query`; out of range: 400 `invalid_limit`).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<String>,
    /// The previous page's `next_after` (an order id, a UUID): only orders with a greater id.
    #[param(format = Uuid)]
    pub after: Option<String>,
}

impl ListOrdersRequest {
    pub fn parse(self) -> Result<ListOrdersInput, OrdersError> {
        let limit = query::limit(self.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let after = query::uuid(
            "after",
            "an order id",
            ": pass the previous page's next_after",
            self.after,
        )?;
        let customer_id = query::uuid("customer_id", "a customer id", "", self.customer_id)?;
        let Some(tenant_id) = self.tenant_id else {
            return Err(OrdersError::Validation(vec![validation::required(
                "tenant_id",
            )]));
        };
        validation::tenant_id(&tenant_id).map_err(|e| OrdersError::Validation(vec![e]))?;
        Ok(ListOrdersInput {
            tenant_id,
            customer_id,
            limit,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(limit: Option<&str>, after: Option<&str>) -> ListOrdersRequest {
        ListOrdersRequest {
            tenant_id: Some("acme".into()),
            limit: limit.map(str::to_string),
            after: after.map(str::to_string),
            ..ListOrdersRequest::default()
        }
    }

    #[test]
    fn limits_follow_the_protocol_table() {
        for (raw, expected) in [
            (None, Ok(DEFAULT_LIMIT)),
            (Some(""), Ok(DEFAULT_LIMIT)),
            (Some("1"), Ok(1)),
            (Some("500"), Ok(500)),
            (Some("+7"), Ok(7)),
            (Some("0"), Err("invalid_limit")),
            (Some("-1"), Err("invalid_limit")),
            (Some("501"), Err("invalid_limit")),
            (Some("99999999999999999999999"), Err("invalid_limit")),
            (Some("abc"), Err("invalid_query")),
            (Some("1.5"), Err("invalid_query")),
            (Some("-"), Err("invalid_query")),
            (Some(" 5"), Err("invalid_query")),
        ] {
            let got = request(raw, None)
                .parse()
                .map(|i| i.limit)
                .map_err(|e| ship::errors::ApiError::code(&e));
            assert_eq!(got, expected, "{raw:?}");
        }
    }

    #[test]
    fn ids_must_be_uuids_and_are_taken_canonically() {
        let id = "0190f3a2-7c4e-7b1a-9d2e-3f4a5b6c7d8e";
        let upper = id.to_uppercase();
        for (raw, expected) in [
            (Some(id), Ok(Some(id.to_string()))),
            (Some(upper.as_str()), Ok(Some(id.to_string()))),
            (Some(""), Ok(None)),
            (None, Ok(None)),
            (Some("not-a-uuid"), Err("invalid_query")),
        ] {
            let got = request(None, raw)
                .parse()
                .map(|i| i.after)
                .map_err(|e| ship::errors::ApiError::code(&e));
            assert_eq!(got, expected, "after {raw:?}");
            let got = ListOrdersRequest {
                customer_id: raw.map(str::to_string),
                ..request(None, None)
            }
            .parse()
            .map(|i| i.customer_id)
            .map_err(|e| ship::errors::ApiError::code(&e));
            assert_eq!(got, expected, "customer_id {raw:?}");
        }
    }
}
