//! PublicKeys: the keys verifiers accept (`GET /api/v1/broker/keys`).

use std::sync::Arc;

use ship::auth::PublicJwk;
use ship::parents::Action;

use crate::errors::BrokerError;
use crate::signing::BrokerKeys;

pub struct PublicKeysAction {
    keys: Arc<BrokerKeys>,
}

impl PublicKeysAction {
    pub fn new(keys: Arc<BrokerKeys>) -> Self {
        Self { keys }
    }
}

impl Action for PublicKeysAction {
    const NAME: &'static str = "broker.public_keys";
    type Input = ();
    type Output = Vec<PublicJwk>;
    type Error = BrokerError;

    async fn run(&self, _input: ()) -> Result<Vec<PublicJwk>, BrokerError> {
        Ok(self.keys.public_keys())
    }
}
