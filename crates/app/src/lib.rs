//! The `regionsync` application: wiring only. It composes the settings, connects the contracts
//! to their implementations and assembles the route table from each container's `configure`
//! ([`wiring`]), builds the server and runs the CLI commands.
//! Business logic lives in the containers; infrastructure in `ship`.

pub mod broker_cli;
pub mod cli;
pub mod conflicts_cli;
pub mod console_kernel;
pub mod outbox_cli;
pub mod settings;
pub mod startup;
pub mod sync_run;
pub mod wiring;

pub use settings::Settings;
pub use startup::Application;
