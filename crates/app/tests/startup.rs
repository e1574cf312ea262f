//! The web process built in-process on each backend: migrations, region binding, the route
//! table from every container, graceful stop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use app::startup::{Application, StartOptions};
use app::Settings;
use serde_json::Value;
use ship::testing::TestDb;

fn settings_for(db: &TestDb, region: &str) -> Settings {
    let mut settings = Settings {
        region_id: region.into(),
        ..Settings::default()
    };
    settings.database.url = db.url.clone();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = Some(1);
    settings
}

ship::backend_tests! {
    async fn the_app_serves_health_and_the_error_envelope(db: TestDb) {
        let app = Application::build(&settings_for(&db, "eu-west"), StartOptions::default()).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until(std::future::pending()));
        let client = reqwest::Client::new();

        let ready = client.get(format!("{base}/health/ready")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let res = client.get(format!("{base}/nope")).send().await.unwrap();
        assert_eq!(res.status(), 404);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "not_found");

        handle.stop(true).await;
        server.abort();
    }

    async fn a_second_region_cannot_start_on_the_same_database(db: TestDb) {
        let first = Application::build(&settings_for(&db, "eu-west"), StartOptions::default()).await.unwrap();
        first.run_until(async {}).await.unwrap();
        let err = Application::build(&settings_for(&db, "us-east"), StartOptions::default())
            .await
            .err()
            .expect("a second region is refused");
        let message = err.to_string();
        assert!(message.contains("eu-west") && message.contains("us-east"), "{message}");
        // The same region starts again.
        let again = Application::build(&settings_for(&db, "eu-west"), StartOptions::default()).await.unwrap();
        again.run_until(async {}).await.unwrap();
    }
}

/// `serve --no-migrate` on a database whose binding table exists still checks the region.
#[tokio::test]
async fn no_migrate_still_checks_the_region_binding() {
    let db = TestDb::sqlite();
    ship::db::bind_region(&mut db.pool.get().unwrap(), "eu-west").unwrap();
    let err = Application::build(
        &settings_for(&db, "us-east"),
        StartOptions { migrate: false },
    )
    .await
    .err()
    .expect("a foreign region is refused without migrating too");
    assert!(err.to_string().contains("eu-west"), "{err}");
}
