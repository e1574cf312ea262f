//! Logging: a tracing subscriber (pretty or JSON lines) on stderr, so command output on stdout
//! stays clean. HTTP requests get their span (with a request id) from [`crate::http`].

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Install the global subscriber. `RUST_LOG`, when set, overrides the configured filter.
/// Calling it a second time (tests) leaves the first subscriber in place.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let installed = match settings.format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // Err only means a subscriber is already installed (several tests in one process).
    let _ = installed;
}
