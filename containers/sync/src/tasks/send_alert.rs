//! SendAlert: POST one alert to the webhook (timeout per attempt, a few attempts with a short
//! backoff). True when the webhook took it (2xx).

use std::time::Duration;

use serde_json::Value;
use ship::parents::Task;

pub(crate) struct SendAlertTask;

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
    ) -> bool {
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt - 1))).await;
            }
            match client.post(url).timeout(timeout).json(body).send().await {
                Ok(res) if res.status().is_success() => return true,
                Ok(res) => {
                    tracing::warn!(status = res.status().as_u16(), "the alert webhook refused")
                }
                Err(e) => tracing::warn!(error = %e, "the alert webhook cannot be reached"),
            }
        }
        false
    }
}
