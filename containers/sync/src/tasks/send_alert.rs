//! SendAlert: POST one alert to the webhook (timeout per attempt, a few attempts with a short
//! backoff): taken (2xx), refused (a 4xx other than 408/429: a verdict on this alert, not
//! retried), or the webhook unavailable (no answer, 5xx, 408, 429 after every attempt).

use std::time::Duration;

use serde_json::Value;
use ship::parents::Task;

pub(crate) struct SendAlertTask;

/// What became of one alert at the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlertSent {
    Taken,
    /// The webhook refused this alert (4xx): the others may still go through.
    Refused,
    /// The webhook did not answer usefully after every attempt: the others would fare no better.
    Unavailable,
}

impl Task for SendAlertTask {
    const NAME: &'static str = "sync.send_alert";
}

impl SendAlertTask {
    pub(crate) async fn run(
        client: &reqwest::Client,
        url: &str,
        body: &Value,
        timeout: Duration,
        attempts: u32,
    ) -> AlertSent {
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt - 1))).await;
            }
            match client.post(url).timeout(timeout).json(body).send().await {
                Ok(res) if res.status().is_success() => return AlertSent::Taken,
                Ok(res)
                    if res.status().is_client_error()
                        && !matches!(res.status().as_u16(), 408 | 429) =>
                {
                    tracing::warn!(
                        status = res.status().as_u16(),
                        "the alert webhook refused this alert"
                    );
                    return AlertSent::Refused;
                }
                Ok(res) => {
                    tracing::warn!(status = res.status().as_u16(), "the alert webhook failed")
                }
                // Without the URL: a webhook's path is often its secret (config show hides it).
                Err(e) => tracing::warn!(
                    error = %e.without_url(),
                    "the alert webhook cannot be reached"
                ),
            }
        }
        AlertSent::Unavailable
    }
}
