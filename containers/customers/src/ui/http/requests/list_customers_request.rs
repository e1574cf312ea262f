use serde::Deserialize;

use crate::actions::list_customers::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::actions::ListCustomersInput;
use ship::http::query;

use crate::{validation, CustomersError};

/// `GET /api/v1/customers?tenant_id=&limit=&after=`: `tenant_id` required, `limit` 1..=500
/// (default 50), `after` the previous page's `next_after` (a customer id, a UUID).
///
/// The rules, as in PROTOCOL.md's error table: an unknown parameter (refused by serde, through
/// ship's query config), a `limit` that is not a whole number and an `after` that is not a UUID
/// are 400 `invalid_query`; a `limit` that is a number outside the range is 400
/// `invalid_limit`; a missing or blank `tenant_id` is 422 `validation_failed`. The 400s come
/// first. Empty `limit=` and `after=` are as if absent.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCustomersRequest {
    /// The tenant whose customers are listed (missing or blank: 422 `validation_failed`).
    #[param(required = true, value_type = String, min_length = 1, max_length = 64)]
    pub tenant_id: Option<String>,
    /// Page size (not a whole number: 400 `invalid_query`; out of range: 400 `invalid_limit`).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<String>,
    /// The previous page's `next_after` (a customer id, a UUID): only customers with a greater id.
    #[param(format = Uuid)]
    pub after: Option<String>,
}

impl ListCustomersRequest {
    pub fn parse(self) -> Result<ListCustomersInput, CustomersError> {
        let limit = query::limit(self.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let after = query::uuid(
            "after",
            "a customer id",
            ": pass the previous page's next_after",
            self.after,
        )?;
        let tenant_id = match self.tenant_id {
            None => {
                return Err(CustomersError::Validation(vec![validation::required(
                    "tenant_id",
                )]))
            }
            Some(t) => t,
        };
        validation::tenant_id(&tenant_id).map_err(|e| CustomersError::Validation(vec![e]))?;
        Ok(ListCustomersInput {
            tenant_id,
            limit,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(limit: Option<&str>, after: Option<&str>) -> ListCustomersRequest {
        ListCustomersRequest {
            tenant_id: Some("acme".into()),
            limit: limit.map(str::to_string),
            after: after.map(str::to_string),
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
            (Some("1000000000000"), Err("invalid_limit")),
            (
                Some("99999999999999999999999999999999999999999"),
                Err("invalid_limit"),
            ),
            (Some("abc"), Err("invalid_query")),
            (Some("1.5"), Err("invalid_query")),
            (Some("1e3"), Err("invalid_query")),
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
    fn after_must_be_a_uuid_and_is_taken_canonically() {
        let id = "0190f3a2-7c4e-7b1a-9d2e-3f4a5b6c7d8e";
        let upper = id.to_uppercase();
        for (raw, expected) in [
            (Some(id), Ok(Some(id.to_string()))),
            (Some(upper.as_str()), Ok(Some(id.to_string()))),
            (Some(""), Ok(None)),
            (None, Ok(None)),
            (Some("not-a-uuid"), Err("invalid_query")),
            (Some("0190f3a2"), Err("invalid_query")),
        ] {
            let got = request(None, raw)
                .parse()
                .map(|i| i.after)
                .map_err(|e| ship::errors::ApiError::code(&e));
            assert_eq!(got, expected, "{raw:?}");
        }
        let err = request(None, Some("not-a-uuid"))
            .parse()
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("after"), "{err}");
        let long = "x".repeat(10_000);
        let err = request(None, Some(&long)).parse().map(|_| ()).unwrap_err();
        assert!(
            err.to_string().len() < 300,
            "the message echoes a prefix only"
        );
    }
}
