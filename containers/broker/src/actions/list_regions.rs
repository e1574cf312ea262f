//! ListRegions: the registry as the broker sees it (`regionsync broker regions list`).

use ship::parents::Action;
use ship::DbPool;

use crate::data::regions;
use crate::errors::BrokerError;
use crate::models::RegionView;

pub struct ListRegionsAction {
    pool: DbPool,
    offline_after_secs: u64,
}

impl ListRegionsAction {
    pub fn new(pool: DbPool, offline_after_secs: u64) -> Self {
        Self {
            pool,
            offline_after_secs,
        }
    }
}

impl Action for ListRegionsAction {
    const NAME: &'static str = "broker.list_regions";
    type Input = ();
    type Output = Vec<RegionView>;
    type Error = BrokerError;

    async fn run(&self, _input: ()) -> Result<Vec<RegionView>, BrokerError> {
        let offline_after = self.offline_after_secs;
        self.pool
            .run(move |conn| {
                let now = ship::db::utc_now();
                Ok(regions::all(conn)?
                    .iter()
                    .map(|r| r.view(now, offline_after))
                    .collect())
            })
            .await
    }
}
