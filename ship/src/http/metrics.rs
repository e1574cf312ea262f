//! `GET /metrics`: what the registered [`MetricsSources`] read, encoded in the OpenMetrics text
//! format (Prometheus scrapes it) by `prometheus-client`. A source that cannot read answers the
//! scrape 503 `metrics_unavailable`.
//!
//! After those gauges come what this process counted since it started: the counters a container
//! bumps where the work happens ([`count`], rendered as OpenMetrics counters, `…_total`), and
//! the duration of every request by route and status
//! (`regionsync_http_request_duration_seconds`, observed by the request span).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex, PoisonError};

use actix_web::{web, HttpResponse};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::contracts::{Gauge, MetricsSources};
use crate::errors::{HttpError, StatusCode};

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(metrics)));
}

/// What the registered sources read, and what this process counted, as OpenMetrics text.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    responses(
        (status = 200, description = "OpenMetrics text (docs/PROTOCOL.md, Metrics, lists the families).", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 500, description = "`metrics_unavailable`: the metrics could not be encoded.", body = crate::errors::ErrorEnvelope),
        (status = 503, description = "`metrics_unavailable`: a source could not read the database.", body = crate::errors::ErrorEnvelope),
    )
)]
async fn metrics(sources: Option<web::Data<MetricsSources>>) -> Result<HttpResponse, HttpError> {
    let mut gauges = Vec::new();
    for source in sources.iter().flat_map(|s| s.0.iter()) {
        gauges.extend(source.collect().await.map_err(|e| {
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "metrics_unavailable",
                format!("the metrics could not be read: {e}"),
            )
        })?);
    }
    gauges.extend(process_gauges());
    let body = render_with_process_counts(&gauges).map_err(|e| {
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics_unavailable",
            format!("the metrics could not be encoded: {e}"),
        )
    })?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(body))
}

/// What this process counted of the requests it refused (since it started; the database gauges
/// above are the same from every process of a region, these are per process).
fn process_gauges() -> Vec<Gauge> {
    let mut out: Vec<Gauge> = super::spans::refusal_counts()
        .into_iter()
        .map(|((status, code), n)| Gauge {
            name: "regionsync_http_refusals",
            help: "Requests this process answered with a 4xx since it started, by status and code \
                   (they are not logged one by one)",
            labels: vec![("status", status.to_string()), ("code", code)],
            value: n as f64,
        })
        .collect();
    out.push(Gauge {
        name: "regionsync_http_malformed_requests",
        help: "Requests this process's HTTP parser refused before routing since it started \
               (malformed head, conflicting lengths, oversized URI or headers)",
        labels: vec![],
        value: super::spans::malformed_count() as f64,
    });
    out
}

type Labels = Vec<(String, String)>;
/// One metric family: a gauge per label set.
type GaugeFamily = Family<Labels, PromGauge<f64, AtomicU64>>;

/// `gauges` as OpenMetrics text: one family per name (its first sample's help), one sample per
/// label set.
pub fn render(gauges: &[Gauge]) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    encode(&mut out, &gauge_registry(gauges))?;
    Ok(out)
}

/// [`render`], then this process's counters and request durations.
fn render_with_process_counts(gauges: &[Gauge]) -> Result<String, std::fmt::Error> {
    let mut registry = gauge_registry(gauges);
    let counters = COUNTERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for (name, (help, samples)) in counters {
        let family = CounterFamily::default();
        for (labels, n) in samples {
            family.get_or_create(&labels).inc_by(n);
        }
        registry.register(name, help, family);
    }
    registry.register(
        REQUEST_DURATION,
        "Time from a request's arrival to its response head, by route (the matched pattern; \
         `unmatched` for none) and status, since this process started",
        REQUEST_DURATIONS.clone(),
    );
    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}

/// The gauges, one family per name.
fn gauge_registry(gauges: &[Gauge]) -> Registry {
    let mut families: BTreeMap<&'static str, (&'static str, GaugeFamily)> = BTreeMap::new();
    for g in gauges {
        let (_, family) = families
            .entry(g.name)
            .or_insert_with(|| (g.help, Family::default()));
        let labels: Labels = g
            .labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        family.get_or_create(&labels).set(g.value);
    }
    let mut registry = Registry::default();
    for (name, (help, family)) in families {
        registry.register(name, help, family);
    }
    registry
}

/// One counter family: a counter per label set.
type CounterFamily = Family<Labels, PromCounter<u64, AtomicU64>>;

/// The counters of this process, by name (without `_total`): their help and their count per
/// label set.
type Counters = BTreeMap<&'static str, (&'static str, BTreeMap<Labels, u64>)>;
static COUNTERS: Mutex<Counters> = Mutex::new(BTreeMap::new());

/// Add `by` to the counter `name` (an OpenMetrics counter: give the name without `_total`,
/// which the text format appends) with these labels, for this process. A counter is never
/// reset; the labels' values must come from a bounded set (peers, resources, codes), never
/// from what a client sends unchecked. `by` 0 makes the series known (listed at 0: a family
/// with no series is not listed at all).
pub fn count(name: &'static str, help: &'static str, labels: &[(&'static str, &str)], by: u64) {
    let labels: Labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    let mut counters = COUNTERS.lock().unwrap_or_else(PoisonError::into_inner);
    let (_, samples) = counters
        .entry(name)
        .or_insert_with(|| (help, BTreeMap::new()));
    *samples.entry(labels).or_default() += by;
}

/// The request-duration histogram's name.
pub const REQUEST_DURATION: &str = "regionsync_http_request_duration_seconds";

/// Its buckets' upper bounds, in seconds (5 ms to 10 s; slower lands in `+Inf`).
pub const REQUEST_DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(REQUEST_DURATION_BUCKETS)
}

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Request durations by (route, status), since the process started.
static REQUEST_DURATIONS: LazyLock<HistogramFamily> =
    LazyLock::new(|| Family::new_with_constructor(duration_histogram as fn() -> Histogram));

/// Observe one request: `route` is the matched pattern (`unmatched` when none matched — never
/// the raw path, so the label set stays bounded), `seconds` from its arrival to its response.
pub fn observe_request(route: &str, status: u16, seconds: f64) {
    let labels = vec![
        ("route".to_string(), route.to_string()),
        ("status".to_string(), status.to_string()),
    ];
    REQUEST_DURATIONS.get_or_create(&labels).observe(seconds);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gauges_become_one_family_per_name_with_a_sample_per_label_set() {
        let g = |peer: &str, value| Gauge {
            name: "regionsync_sync_pending",
            help: "Changes owed to the peer",
            labels: vec![("peer", peer.into()), ("resource", "customers".into())],
            value,
        };
        let text = render(&[g("us-east", 3.0), g("ap-south", 0.5)]).unwrap();
        assert!(
            text.contains("# HELP regionsync_sync_pending Changes owed to the peer"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE regionsync_sync_pending gauge"),
            "{text}"
        );
        assert!(
            text.contains("regionsync_sync_pending{peer=\"us-east\",resource=\"customers\"} 3.0"),
            "{text}"
        );
        assert!(
            text.contains("regionsync_sync_pending{peer=\"ap-south\",resource=\"customers\"} 0.5"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(render(&[]).unwrap(), "# EOF\n");
    }

    #[test]
    fn process_counters_and_durations_follow_the_gauges() {
        let g = Gauge {
            name: "regionsync_sync_pending",
            help: "Changes owed to the peer",
            labels: vec![],
            value: 1.0,
        };
        count(
            "regionsync_test_counted",
            "Counted",
            &[("peer", "unit-a"), ("resource", "customers")],
            2,
        );
        count(
            "regionsync_test_counted",
            "Counted",
            &[("peer", "unit-a"), ("resource", "customers")],
            3,
        );
        observe_request("/unit/{id}", 200, 0.007);
        let text = render_with_process_counts(std::slice::from_ref(&g)).unwrap();
        let gauges_only = render(&[g]).unwrap();
        let head = gauges_only.trim_end_matches("# EOF\n");
        assert!(
            text.starts_with(head),
            "the gauges come first, unchanged: {text}"
        );
        assert!(
            text.contains("# TYPE regionsync_test_counted counter\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "regionsync_test_counted_total{peer=\"unit-a\",resource=\"customers\"} 5\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE regionsync_http_request_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "regionsync_http_request_duration_seconds_bucket\
                 {le=\"0.01\",route=\"/unit/{id}\",status=\"200\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
