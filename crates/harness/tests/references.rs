//! References across regions (issue 15, ADR 0015): three regions as real processes; a customer
//! is created in `eu-west`, an order for it in `us-east`, and `ap-south` gets the order first —
//! every way the customer could reach it (eu-west's push, its pull of eu-west, its pull of
//! us-east's relay) is held back by the fault proxies while us-east's push of the order goes
//! through. ap-south parks the order (not refused, not lost); once the links heal, the
//! customer arrives, the order is applied, and the three regions converge with nothing parked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use harness::chaos::settle;
use harness::cluster::{Cluster, RegionSpec, Tuning};
use harness::proxy::Fault;
use serde_json::{json, Value};

const EU: usize = 0;
const US: usize = 1;
const AP: usize = 2;

async fn wait_for<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn spec_run(mysql: Option<String>) {
    let mut specs: Vec<RegionSpec> = ["eu-west", "us-east", "ap-south"]
        .into_iter()
        .map(RegionSpec::sqlite)
        .collect();
    if let Some(server) = mysql {
        specs[AP].store = harness::cluster::Store::on_server(&server);
    }
    let cluster = Cluster::start(specs, Tuning::default(), 15).await.unwrap();
    let client = reqwest::Client::new();
    let base = |i: usize| cluster.regions[i].base_url();

    // ap-south hears nothing of eu-west, and cannot pull us-east (which would relay the
    // customer): only us-east's push to ap-south goes through.
    for (from, to) in [(EU, AP), (AP, EU), (AP, US)] {
        cluster.set_fault(from, to, Fault::Blackhole);
    }

    let res = client
        .post(format!("{}/api/v1/customers", base(EU)))
        .json(&json!({"tenant_id": "acme", "name": "Ada", "email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let customer: Value = res.json().await.unwrap();
    let customer_id = customer["id"].as_str().unwrap().to_string();

    // us-east has the customer (eu-west's push), so it may take an order for it.
    let url = format!("{}/api/v1/customers/{customer_id}", base(US));
    wait_for("the customer at us-east", Duration::from_secs(30), || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    let res = client
        .post(format!("{}/api/v1/orders", base(US)))
        .json(&json!({
            "tenant_id": "acme", "customer_id": customer_id, "number": "SO-1", "currency": "EUR",
            "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1250}],
        }))
        .send()
        .await
        .unwrap();
    let order: Value = res.json().await.unwrap();
    let order_id = order["id"].as_str().expect("an order id").to_string();

    // ap-south gets the order before its customer: parked, not applied.
    wait_for(
        "the order parked at ap-south",
        Duration::from_secs(30),
        || {
            let parked = cluster.states().map(|s| s[AP].parked).unwrap_or(0);
            async move { parked == 1 }
        },
    )
    .await;
    let states = cluster.states().unwrap();
    assert!(!states[AP].rows.contains_key(&customer_id));
    assert!(
        !states[AP].orders.contains_key(&order_id),
        "parked, not applied"
    );
    let got = client
        .get(format!("{}/api/v1/orders/{order_id}", base(AP)))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 404);

    cluster.log_event("healing: the customer may reach ap-south now");
    cluster.heal();
    let states = settle(&cluster, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs(30)));
    for s in &states {
        assert_eq!(s.parked, 0, "{}: nothing parked at the end", s.region);
        assert!(s.rows.contains_key(&customer_id), "{}", s.region);
        let o = s.orders.get(&order_id).expect("the order everywhere");
        assert_eq!(
            (o.customer_id.as_str(), o.total_minor),
            (customer_id.as_str(), 2500)
        );
    }
    let got: Value = client
        .get(format!("{}/api/v1/orders/{order_id}", base(AP)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["customer_state"], "live", "{got}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_that_outruns_its_customer_parks_then_converges_everywhere() {
    spec_run(None).await;
}

/// The region that parks runs on MariaDB.
mod with_the_parking_region_on_mariadb {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        super::spec_run(Some(harness::cluster::mysql_server_from_env())).await;
    }
}

/// The region that parks runs on PostgreSQL.
mod with_the_parking_region_on_postgresql {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::spec_run(Some(harness::cluster::pg_server_from_env())).await;
    }
}
