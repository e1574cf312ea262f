//! The `regionsync` application: wiring only. It composes the settings, assembles the route
//! table from each container's `configure`, builds the server and runs the CLI commands.
//! Business logic lives in the containers; infrastructure in `ship`.

pub mod cli;
pub mod routes;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use startup::Application;
