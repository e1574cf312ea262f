//! Logging: a tracing subscriber (pretty or JSON lines) on stderr, so command output on stdout
//! stays clean. HTTP requests get their span (with a request id) from [`crate::http`].
//!
//! actix-http logs each request its HTTP/1 parser refuses (conflicting `Content-Length`s, a
//! 100 KB URI, 300 headers, a client gone mid-response) at ERROR, before any route or
//! middleware of ours sees it — one line per request that any client can produce. Those events
//! are counted (`regionsync_http_malformed_requests` in `/metrics`) instead of written.

use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

use crate::config::{LogFormat, LogSettings};

/// An error or warning of actix-http's HTTP/1 dispatcher: a client's doing, not ours.
fn is_parser_noise(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("actix_http::h1") && *meta.level() <= Level::WARN
}

/// Counts what [`is_parser_noise`] keeps out of the log.
struct CountParserNoise;

impl<S: Subscriber> Layer<S> for CountParserNoise {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if is_parser_noise(event.metadata()) {
            crate::http::spans::count_malformed();
        }
    }
}

/// Install the global subscriber. `RUST_LOG`, when set, overrides the configured filter.
/// Calling it a second time (tests) leaves the first subscriber in place.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let output: Box<dyn Layer<Registry> + Send + Sync> = match settings.format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter_fn(|meta| !is_parser_noise(meta)))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter_fn(|meta| !is_parser_noise(meta)))
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(output)
        .with(CountParserNoise)
        .with(filter)
        .try_init();
    // Err only means a subscriber is already installed (several tests in one process).
    let _ = installed;
}
