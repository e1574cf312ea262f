//! A cluster dropped without `shutdown` (a failed start, a panic, an interrupted `make demo`)
//! leaves no database behind on the servers (review finding: the demo's default put regions
//! on the developer's own servers, and every failed start left its databases there).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel::{Connection, RunQueryDsl};
use harness::cluster::{Cluster, RegionSpec, Store, Tuning};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Whether database `name` exists on `server`.
fn exists(server: &str, name: &str) -> bool {
    let count: Count = if server.starts_with("postgres") {
        let mut c = diesel::PgConnection::establish(server).unwrap();
        diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM pg_database WHERE datname = '{name}'"
        ))
        .get_result(&mut c)
        .unwrap()
    } else {
        let mut c = diesel::MysqlConnection::establish(server).unwrap();
        diesel::sql_query(format!(
            "SELECT CAST(COUNT(*) AS SIGNED) AS n FROM information_schema.schemata WHERE schema_name = '{name}'"
        ))
        .get_result(&mut c)
        .unwrap()
    };
    count.n == 1
}

async fn a_dropped_cluster_drops_its_databases(server: String) {
    let spec = RegionSpec {
        store: Store::on_server(&server),
        ..RegionSpec::sqlite("eu-west")
    };
    let cluster = Cluster::start(vec![spec], Tuning::default(), 7)
        .await
        .unwrap();
    let name = cluster.regions[0]
        .db_url
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert!(name.starts_with("rs_chaos_"), "{name}");
    assert!(
        exists(&server, &name),
        "the region's database is there while it runs"
    );
    drop(cluster);
    assert!(!exists(&server, &name), "{name} is left on {server}");
}

mod a_dropped_cluster_leaves_no_database {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        a_dropped_cluster_drops_its_databases(harness::cluster::mysql_server_from_env()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        a_dropped_cluster_drops_its_databases(harness::cluster::pg_server_from_env()).await;
    }
}
