//! `GET /metrics`: what the registered [`MetricsSources`] read, encoded in the OpenMetrics text
//! format (Prometheus scrapes it) by `prometheus-client`. A source that cannot read answers the
//! scrape 503 `metrics_unavailable`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use actix_web::{web, HttpResponse};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::registry::Registry;

use crate::contracts::{Gauge, MetricsSources};
use crate::errors::{HttpError, StatusCode};

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(metrics)));
}

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
    let body = render(&gauges).map_err(|e| {
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
    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
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
}
