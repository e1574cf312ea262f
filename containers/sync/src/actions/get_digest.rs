//! GetDigest: `GET /sync/{resource}/digest` — the hashes of a resource's rows over ranges of
//! their hashed ids, or the rows of one small range (see `tasks::digest_ranges`).

use ship::contracts::ResourceRegistry;
use ship::parents::Action;
use ship::DbPool;

use crate::errors::SyncError;
use crate::tasks::digest_ranges::DigestRangesTask;
pub use crate::tasks::digest_ranges::{Bucket, RowDigest, MAX_PREFIX};

/// The most rows one range's listing answers (ask a longer prefix for more).
pub const MAX_ROWS: usize = 5_000;
/// Rows are listed for ranges of at least this many hex digits (a 256th of the table at most).
pub const MIN_ROWS_PREFIX: usize = 2;

pub struct GetDigestInput {
    pub resource: String,
    /// Hex digits (0 to [`MAX_PREFIX`]): the range asked about.
    pub prefix: String,
    /// `Some(depth)`: the hashes of the ranges `depth` (1–3) digits below; `None`: its rows.
    pub depth: Option<usize>,
    /// With rows: each with its kind and payload (what `sync repair` takes).
    pub full: bool,
    /// The reader's conflict policy, judged as the feed does
    /// (`GetChangesInput::reader_policy`): rows compared or repaired across policies would
    /// mean nothing.
    pub reader_policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestAnswer {
    Buckets(Vec<Bucket>),
    Rows(Vec<RowDigest>),
}

pub struct GetDigestAction {
    pool: DbPool,
    registry: ResourceRegistry,
    region_id: String,
}

impl GetDigestAction {
    pub fn new(pool: DbPool, registry: ResourceRegistry, region_id: impl Into<String>) -> Self {
        Self {
            pool,
            registry,
            region_id: region_id.into(),
        }
    }
}

impl Action for GetDigestAction {
    const NAME: &'static str = "sync.get_digest";
    type Input = GetDigestInput;
    type Output = DigestAnswer;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.get_digest", skip_all, fields(resource = %input.resource, prefix = %input.prefix))]
    async fn run(&self, input: GetDigestInput) -> Result<DigestAnswer, SyncError> {
        let resource = super::synced(&self.registry, &input.resource)?;
        if let Some(theirs) = input.reader_policy.as_deref() {
            super::apply_ops::check_policy(theirs, resource.name(), &self.registry)?;
        }
        let region = self.region_id.clone();
        self.pool
            .run(move |conn| match input.depth {
                Some(depth) => DigestRangesTask::buckets(
                    conn,
                    resource.as_ref(),
                    &region,
                    &input.prefix,
                    depth,
                )
                .map(DigestAnswer::Buckets),
                None => {
                    if input.prefix.len() < MIN_ROWS_PREFIX {
                        return Err(SyncError::InvalidQuery(format!(
                            "rows are listed for a prefix of at least {MIN_ROWS_PREFIX} hex digits"
                        )));
                    }
                    let rows = DigestRangesTask::rows(
                        conn,
                        resource.as_ref(),
                        &region,
                        &input.prefix,
                        input.full,
                        MAX_ROWS,
                    )?;
                    if rows.len() > MAX_ROWS {
                        return Err(SyncError::InvalidQuery(format!(
                            "the range `{}` holds more than {MAX_ROWS} rows: ask with a longer \
                             prefix",
                            input.prefix
                        )));
                    }
                    Ok(DigestAnswer::Rows(rows))
                }
            })
            .await
    }
}
