//! IssueTokens: one signed token per target region, for `caller` on its scope.

use ship::auth::{IssuedToken, TokenIssuer};
use ship::parents::Task;

use crate::errors::BrokerError;
use crate::models::Region;

pub(crate) struct IssueTokensTask;

impl Task for IssueTokensTask {
    const NAME: &'static str = "broker.issue_tokens";
}

impl IssueTokensTask {
    pub(crate) fn run(
        issuer: &TokenIssuer,
        caller: &Region,
        served: &[String],
        targets: &[Region],
    ) -> Result<Vec<IssuedToken>, BrokerError> {
        let scope = caller.scope(served);
        targets
            .iter()
            .map(|target| {
                issuer
                    .issue(&caller.id, &target.id, &scope)
                    .map_err(|e| BrokerError::Signing(e.to_string()))
            })
            .collect()
    }
}
