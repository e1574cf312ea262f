//! The component traits containers implement (Porto's "parents"). They are deliberately small:
//! their job is a uniform shape and a name for tracing spans, not a framework.
//!
//! - An **action** is one use case: it owns the transaction, may call tasks and `data::`
//!   functions, never another action, and knows nothing of HTTP. Controllers, CLI commands and
//!   jobs all call actions.
//! - A **task** does one thing with a connection it is handed (it never opens a transaction) or
//!   one outbound call; it never calls another task or an action.
//! - A **job** is a scheduled UI: the console kernel runs it; it calls actions.

use std::future::Future;
use std::pin::Pin;

/// One use case.
pub trait Action {
    /// Name used for the tracing span, e.g. `sync.apply_ops`.
    const NAME: &'static str;
    type Input;
    type Output;
    type Error;

    fn run(
        &self,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// One step of an action. Tasks differ in shape (a query on `&mut AnyConnection`, an HTTP call),
/// so the trait only names them; each task has one inherent `run`.
pub trait Task {
    const NAME: &'static str;
}

/// The error a job reports to the scheduler; the scheduler logs it and records the run as
/// failed, and the other jobs go on.
pub type JobError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A future a job returns (jobs are stored as trait objects by the scheduler).
pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// A scheduled unit of work.
pub trait Job: Send + Sync {
    /// Stable name: used in `schedule list`, leases and run records.
    fn name(&self) -> &'static str;
    fn handle(&self) -> JobFuture<'_>;
}
