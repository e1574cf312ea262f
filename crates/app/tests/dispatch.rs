//! The outbox dispatcher (push) on each backend: against a real second region, and against a
//! fault-injecting peer — backoff and dead letters, halving on 413, dead-lettering only the
//! poison op on 422, one token refresh on 401, and two dispatchers never sending an entry
//! twice at the same time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use app::startup::{prepare, StartOptions};
use common::{count, customers_digest, register_region, settings_for, Region};
use serde_json::{json, Value};
use ship::parents::Action;
use ship::testing::TestDb;
use sync::actions::DispatchOutboxAction;
use sync::PeerConfig;

/// How the stub peer answers the n-th request (0-based) with this body.
type Behaviour = Arc<dyn Fn(usize, &Value) -> (u16, Value) + Send + Sync>;

/// A logical clock shared by every stub: orders events across peers without wall time.
static TICKS: AtomicUsize = AtomicUsize::new(0);

struct StubPeer {
    base: String,
    /// Every body received, in order.
    received: Arc<Mutex<Vec<Value>>>,
    /// Logical times of receipts and of answers.
    events: Arc<Mutex<Vec<(&'static str, usize)>>>,
    handle: actix_web::dev::ServerHandle,
}

impl StubPeer {
    fn start(behaviour: Behaviour, delay: Duration) -> Self {
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let events: Arc<Mutex<Vec<(&'static str, usize)>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (r, ev) = (Arc::clone(&received), Arc::clone(&events));
        let server = HttpServer::new(move || {
            let (received, calls, behaviour, events) = (
                Arc::clone(&r),
                Arc::clone(&calls),
                Arc::clone(&behaviour),
                Arc::clone(&ev),
            );
            App::new().route(
                "/sync/customers/ops",
                web::post().to(move |body: web::Json<Value>| {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    received.lock().unwrap().push(body.0.clone());
                    events
                        .lock()
                        .unwrap()
                        .push(("received", TICKS.fetch_add(1, Ordering::SeqCst)));
                    let (status, answer) = behaviour(n, &body.0);
                    let events = Arc::clone(&events);
                    async move {
                        tokio::time::sleep(delay).await;
                        events
                            .lock()
                            .unwrap()
                            .push(("answered", TICKS.fetch_add(1, Ordering::SeqCst)));
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                            .json(answer)
                    }
                }),
            )
        })
        .workers(2)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let base = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base,
            received,
            events,
            handle,
        }
    }

    /// The logical time of the first `what` ("received" or "answered").
    fn first(&self, what: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|(w, _)| *w == what)
            .map(|(_, t)| *t)
            .unwrap()
    }

    /// The op ids received, over all requests.
    fn op_ids(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| {
                b["ops"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["op_id"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn batch_sizes(&self) -> Vec<usize> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["ops"].as_array().unwrap().len())
            .collect()
    }
}

/// A broker that lists one peer, `stub`, with the status the test sets (`None`: unreachable).
struct Listing(Mutex<Option<&'static str>>);

impl Listing {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(None)))
    }

    fn set(&self, status: Option<&'static str>) {
        *self.0.lock().unwrap() = status;
    }
}

impl ship::contracts::PeerDirectory for Listing {
    fn peers(
        &self,
    ) -> ship::contracts::BoxFuture<
        '_,
        Result<Vec<ship::contracts::PeerGrant>, ship::contracts::DirectoryError>,
    > {
        let status = *self.0.lock().unwrap();
        Box::pin(async move {
            let status = status.ok_or_else(|| {
                ship::contracts::DirectoryError::BrokerUnreachable("refused".into())
            })?;
            Ok(vec![ship::contracts::PeerGrant {
                id: "stub".into(),
                base_url: "http://127.0.0.1:1".into(),
                status: status.into(),
                token: "t".into(),
                expires_at: i64::MAX,
            }])
        })
    }

    fn grant<'a>(
        &'a self,
        _peer: &'a str,
        _refresh: ship::contracts::Refresh,
    ) -> ship::contracts::BoxFuture<
        'a,
        Result<ship::contracts::PeerGrant, ship::contracts::DirectoryError>,
    > {
        Box::pin(async { Err(ship::contracts::DirectoryError::UnknownPeer("stub".into())) })
    }

    fn health(&self) -> ship::contracts::DirectoryHealth {
        ship::contracts::DirectoryHealth::default()
    }

    fn invalidate(&self, _peer: &str) {}
}

/// The second stream to `stub` (the orders', with nothing to send), backing off.
fn other_stream_backing_off(db: &TestDb) {
    diesel::connection::SimpleConnection::batch_execute(
        &mut *db.pool.get().unwrap(),
        "UPDATE sync_delivery SET attempts = 3, next_attempt_at = '2099-01-01 00:00:00' \
         WHERE peer = 'stub' AND resource = 'orders'",
    )
    .unwrap();
}

/// 1 while that stream still backs off.
const OTHER_STREAM_WAITING: &str = "SELECT COUNT(*) FROM sync_delivery WHERE peer = 'stub' AND resource = 'orders' AND next_attempt_at > '2098-01-01 00:00:00'";

/// `stub` answers at `base` now, and its customers stream's backoff is over (its time came).
fn stub_back_at(db: &TestDb, base: &str) {
    diesel::connection::SimpleConnection::batch_execute(
        &mut *db.pool.get().unwrap(),
        &format!(
            "UPDATE broker_regions SET base_url = '{base}' WHERE id = 'stub'; \
             UPDATE sync_delivery SET next_attempt_at = '2000-01-01 00:00:00' WHERE resource = 'customers'"
        ),
    )
    .unwrap();
}

fn ok() -> (u16, Value) {
    (200, json!({"applied": 0}))
}

/// Region eu-west on `db` (the broker) with peer `peer` registered at `base`, `writes`
/// customers written; its dispatch action.
async fn region_with_outbox(
    db: &TestDb,
    peer: &str,
    base: &str,
    writes: usize,
    tune: impl FnOnce(&mut app::Settings),
) -> (Region, DispatchOutboxAction) {
    let mut settings = settings_for(db, "eu-west");
    settings.sync.peers = vec![PeerConfig::both(peer)];
    settings.sync.retry_base_ms = 60_000;
    tune(&mut settings);
    let region = Region::start(&settings).await;
    register_region(db, peer, base).await;
    for i in 0..writes {
        let (status, _) = region
            .post(
                "/api/v1/customers",
                &json!({"tenant_id": "t1", "name": format!("c{i}"), "email": "x@example.com"}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
    (region, wiring.dispatch_action(&pool, &settings).unwrap())
}

/// Changes of eu-west's by delivery state, over every push peer: "pending" (owed: stream
/// entries above `delivered_through` and retried dead letters), "delivered" (stream entries at
/// or below it, and retried dead letters delivered), or "dead" (dead letters).
fn outbox(db: &TestDb, status: &str) -> i64 {
    let single = count(
        &mut db.pool.get().unwrap(),
        &format!("SELECT COUNT(*) FROM sync_outbox WHERE status = '{status}'"),
    );
    let side = match status {
        "pending" => ">",
        "delivered" => "<=",
        _ => return single,
    };
    single
        + count(
            &mut db.pool.get().unwrap(),
            &format!(
                "SELECT COUNT(*) FROM sync_changelog c JOIN sync_delivery d ON c.resource = d.resource \
                 WHERE c.origin_region = 'eu-west' AND c.seq {side} d.delivered_through \
                 AND NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.peer = d.peer AND o.resource = d.resource AND o.seq = c.seq)"
            ),
        )
}

ship::backend_tests! {
    async fn the_outbox_reaches_a_real_region_once(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let b = Region::start(&settings_for(&db_b, "us-east")).await;
        let (a, dispatch) = region_with_outbox(&db, "us-east", &b.base, 5, |_| {}).await;
        assert_eq!(outbox(&db, "pending"), 5);
        let summary = dispatch.run("worker-1".into()).await.unwrap();
        assert_eq!((summary.claimed, summary.delivered, summary.batches), (5, 5, 1), "{summary:?}");
        assert_eq!((outbox(&db, "pending"), outbox(&db, "delivered")), (0, 5));
        assert_eq!(customers_digest(&db), customers_digest(&db_b), "B holds A's writes");
        let again = dispatch.run("worker-1".into()).await.unwrap();
        assert_eq!(again.claimed, 0, "delivered entries are not sent again");
        a.stop().await;
        b.stop().await;
    }

    /// Issue 14.2: a bulk create of 1,000 customers is 1,000 changelog entries at consecutive
    /// seqs, and reaches a real peer like single writes do.
    async fn a_bulk_create_reaches_a_real_region(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let b = Region::start(&settings_for(&db_b, "us-east")).await;
        let (a, dispatch) = region_with_outbox(&db, "us-east", &b.base, 0, |_| {}).await;
        let items: Vec<Value> = (0..1_000)
            .map(|i| json!({"tenant_id": "t1", "name": format!("c{i}"), "email": "x@example.com"}))
            .collect();
        let (status, body) = a.post("/api/v1/customers:batch", &json!({"items": items})).await;
        assert_eq!(status, 201, "{body}");
        let mut conn = db.pool.get().unwrap();
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_changelog WHERE resource = 'customers'"), 1_000);
        assert_eq!(count(&mut conn, "SELECT MAX(seq) - MIN(seq) + 1 FROM sync_changelog WHERE resource = 'customers'"), 1_000);
        let mut delivered = 0;
        while delivered < 1_000 {
            let summary = dispatch.run("w".into()).await.unwrap();
            assert!(summary.delivered > 0, "{summary:?}");
            delivered += summary.delivered;
        }
        assert_eq!(customers_digest(&db), customers_digest(&db_b), "B holds the bulk load");
        a.stop().await;
        b.stop().await;
    }

    async fn failures_back_off_and_die_after_max_attempts(db: TestDb) {
        let peer = StubPeer::start(Arc::new(|_, _| (503, json!({"error": "database_busy"}))), Duration::ZERO);
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 3, |s| s.sync.max_attempts = 2).await;
        let first = dispatch.run("w".into()).await.unwrap();
        assert_eq!((first.claimed, first.retried, first.dead), (3, 3, 0), "{first:?}");
        let attempts = count(&mut db.pool.get().unwrap(), "SELECT MIN(attempts) FROM sync_delivery_ranges");
        assert_eq!(attempts, 1);
        // Backing off: nothing is due right now.
        assert_eq!(dispatch.run("w".into()).await.unwrap().claimed, 0);
        diesel::RunQueryDsl::execute(diesel::sql_query("UPDATE sync_delivery SET next_attempt_at = '2020-01-01 00:00:00'"), &mut db.pool.get().unwrap()).unwrap();
        let second = dispatch.run("w".into()).await.unwrap();
        assert_eq!((second.claimed, second.dead), (3, 3), "{second:?}");
        assert_eq!(outbox(&db, "dead"), 3);
        let error = count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_outbox WHERE last_error LIKE '503%'");
        assert_eq!(error, 3, "the reason is kept");

        // The operator sees them, and sends them again.
        let pool = db.pool.clone();
        let dead = sync::actions::ListOutboxAction::new(pool.clone(), "eu-west").run((true, 10)).await.unwrap();
        assert_eq!(dead.len(), 3);
        assert!(dead.iter().all(|e| e.peer == "stub" && e.attempts == 2), "{dead:?}");
        let status = sync::actions::SyncStatusAction::new(pool.clone(), "eu-west").run(()).await.unwrap();
        // A stream per resource (customers, orders); the customers' holds the dead letters.
        assert_eq!((status.len(), status[0].resource.as_str(), status[0].dead, status[0].pending), (2, "customers", 3, 0), "{status:?}");
        assert_eq!((status[1].dead, status[1].pending), (0, 0), "{status:?}");
        assert_eq!(sync::actions::RetryDeadAction::new(pool.clone()).run(dead[0].id).await.unwrap(), 1);
        assert_eq!(sync::actions::RetryDeadAction::new(pool.clone()).run(dead[0].id).await.unwrap(), 0, "no longer dead");
        assert_eq!(sync::actions::RetryDeadAction::new(pool.clone()).run(None).await.unwrap(), 2);
        assert_eq!((outbox(&db, "pending"), outbox(&db, "dead")), (3, 0));
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT MAX(attempts) FROM sync_outbox"), 0);
        // A peer gone for good: its undelivered entries are given up.
        let gone = sync::actions::DiscardOutboxAction::new(pool.clone(), "eu-west").run((None, Some("stub".into()))).await.unwrap();
        assert_eq!((gone.entries, gone.feed_acks, outbox(&db, "pending")), (3, 0, 0));
        peer.handle.stop(true).await;
        a.stop().await;
    }

    /// Regression: a range's last attempt dead-lettered only the batch that failed and
    /// completed the range, so the batches after it were dropped unsent — neither delivered
    /// nor dead. Now the failed batch and every later one of the range go back together.
    async fn a_last_attempt_dead_letters_every_unsent_batch_of_the_range(db: TestDb) {
        let peer = StubPeer::start(Arc::new(|_, _| (503, json!({"error": "database_busy"}))), Duration::ZERO);
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 5, |s| {
            s.sync.max_attempts = 1;
            s.sync.push_batch_ops = 2;
        })
        .await;
        let summary = dispatch.run("w".into()).await.unwrap();
        assert_eq!((summary.claimed, summary.dead, summary.batches), (5, 5, 1), "{summary:?}");
        assert_eq!((outbox(&db, "dead"), outbox(&db, "pending"), outbox(&db, "delivered")), (5, 0, 0));
        assert_eq!(peer.batch_sizes(), vec![2], "the first batch failed; nothing more was sent");
        peer.handle.stop(true).await;
        a.stop().await;
    }

    /// ADR 0014: retried dead letters go out through their stream, as one range: a failure
    /// gives the whole range back with one attempt counted for every entry of it (on their
    /// rows too), the last attempt makes them dead again, and retried once more they are
    /// delivered — in seq order, batched like any range, their rows `delivered`.
    async fn retried_dead_letters_go_through_the_stream_and_can_die_again(db: TestDb) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let peer = StubPeer::start(
            Arc::new(move |_, _| if c.fetch_add(1, Ordering::SeqCst) < 2 { (503, json!({"error": "database_busy"})) } else { ok() }),
            Duration::ZERO,
        );
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 5, |s| {
            s.sync.push_batch_ops = 2;
            s.sync.max_attempts = 2;
        })
        .await;
        common::dead_letter_all(&db, "eu-west", "stub");
        let retry = sync::actions::RetryDeadAction::new(db.pool.clone());
        assert_eq!(retry.run(None).await.unwrap(), 5);
        let first = dispatch.run("w".into()).await.unwrap();
        assert_eq!((first.claimed, first.retried, first.dead, first.batches), (5, 5, 0, 1), "{first:?}");
        let mut conn = db.pool.get().unwrap();
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_outbox WHERE status = 'pending' AND attempts = 1 AND last_error LIKE '503%'"), 5);
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_delivery_ranges WHERE first_seq = 1 AND last_seq = 5 AND attempts = 1"), 1);
        assert_eq!(outbox(&db, "pending"), 5);
        diesel::RunQueryDsl::execute(diesel::sql_query("UPDATE sync_delivery SET next_attempt_at = '2020-01-01 00:00:00'"), &mut conn).unwrap();
        let second = dispatch.run("w".into()).await.unwrap();
        assert_eq!((second.claimed, second.dead), (5, 5), "{second:?}");
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_outbox WHERE status = 'dead' AND attempts = 2"), 5, "dead again, the same rows");
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_delivery_ranges"), 0);
        assert_eq!(retry.run(None).await.unwrap(), 5);
        let third = dispatch.run("w".into()).await.unwrap();
        assert_eq!((third.claimed, third.delivered, third.batches), (5, 5, 3), "{third:?}");
        assert_eq!((outbox(&db, "pending"), outbox(&db, "dead"), outbox(&db, "delivered")), (0, 0, 5));
        let ids = peer.op_ids();
        assert_eq!(ids.len(), 2 + 2 + 5, "two failed batches of two, then the five");
        assert_eq!((&ids[0..2], &ids[2..4]), (&ids[4..6], &ids[4..6]), "each time from the first, in seq order");
        let mut last: Vec<&String> = ids[4..].iter().collect();
        last.sort();
        last.dedup();
        assert_eq!(last.len(), 5, "the last pass sent each once");
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_delivery_ranges"), 0);
        peer.handle.stop(true).await;
        a.stop().await;
    }

    /// An operator's `sync run` sends now what waits out a backoff (the scheduled push keeps
    /// waiting): after fixing a peer nobody wants to wait the backoff's minutes.
    async fn a_push_by_hand_does_not_wait_for_the_backoff(db: TestDb) {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let peer = StubPeer::start(
            Arc::new(move |_, _| {
                if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 { (503, json!({"error": "database_busy"})) } else { ok() }
            }),
            Duration::ZERO,
        );
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 3, |_| {}).await;
        assert_eq!(dispatch.run("w".into()).await.unwrap().retried, 3);
        assert_eq!(dispatch.run("w".into()).await.unwrap().claimed, 0, "the scheduled push waits (a minute's backoff here)");
        let by_hand = dispatch.ignoring_backoff().run("cli".into()).await.unwrap();
        assert_eq!((by_hand.claimed, by_hand.delivered), (3, 3), "{by_hand:?}");
        assert_eq!(outbox(&db, "pending"), 0);
        peer.handle.stop(true).await;
        a.stop().await;
    }

    /// Issue 13.7: a peer a send could not connect to that takes a batch again is back — its
    /// other streams stop waiting out their backoff. Taking batches while it was never down
    /// changes nothing.
    async fn a_peer_that_takes_a_batch_again_ends_the_backoff_of_its_other_streams(db: TestDb) {
        use diesel::connection::SimpleConnection;
        // Nobody listens there yet: the first pass finds the peer unreachable.
        let (a, dispatch) = region_with_outbox(&db, "stub", "http://127.0.0.1:1", 2, |_| {}).await;
        assert_eq!(dispatch.run("w".into()).await.unwrap().retried, 2);
        // A second stream to the same peer, backing off too (another resource's).
        other_stream_backing_off(&db);
        let waiting = OTHER_STREAM_WAITING;
        assert_eq!(count(&mut db.pool.get().unwrap(), waiting), 1);

        // The peer is back at a new address; the customers stream's backoff ends (its time came).
        let peer = StubPeer::start(Arc::new(|_, _| ok()), Duration::ZERO);
        stub_back_at(&db, &peer.base);
        assert_eq!(dispatch.run("w".into()).await.unwrap().delivered, 2);
        assert_eq!(count(&mut db.pool.get().unwrap(), waiting), 0, "the other stream is due now");

        // Taking batches while it was never unreachable is no comeback: a backoff set now stays.
        db.pool.get().unwrap().batch_execute(
            "UPDATE sync_delivery SET next_attempt_at = '2099-01-01 00:00:00' WHERE resource = 'orders'",
        ).unwrap();
        let (status, _) = a.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": "late", "email": "x@example.com"})).await;
        assert_eq!(status, 201);
        assert_eq!(dispatch.run("w".into()).await.unwrap().delivered, 1);
        assert_eq!(count(&mut db.pool.get().unwrap(), waiting), 1);
        peer.handle.stop(true).await;
        a.stop().await;
    }

    /// Issue 13.7: a peer the broker lists online again (its heartbeat) after listing it
    /// offline is served at once — its streams stop waiting out their backoff. Being listed
    /// online all along (while our sends to it fail: a partition between us two) changes
    /// nothing, and neither does a broker that cannot be reached.
    async fn a_peer_online_again_at_the_broker_ends_the_backoff_of_its_streams(db: TestDb) {
        use diesel::connection::SimpleConnection;
        use ship::parents::Job;
        let (a, _dispatch) = region_with_outbox(&db, "stub", "http://127.0.0.1:1", 0, |_| {}).await;
        let later = "UPDATE sync_delivery SET next_attempt_at = '2099-01-01 00:00:00' WHERE peer = 'stub'";
        let waiting = "SELECT COUNT(*) FROM sync_delivery WHERE peer = 'stub' AND next_attempt_at > '2098-01-01 00:00:00'";
        db.pool.get().unwrap().batch_execute(later).unwrap();
        let broker = Listing::new();
        let job = sync::ui::jobs::WatchPeersJob::new(sync::actions::PeersSeenAction::new(db.pool.clone()), broker.clone());
        let waits = || count(&mut db.pool.get().unwrap(), waiting);

        broker.set(Some("online"));
        job.handle().await.unwrap();
        // Both of its streams (customers and orders) back off.
        assert_eq!(waits(), 2, "online all along: the backoff stays");
        broker.set(Some("offline"));
        job.handle().await.unwrap();
        broker.set(None);
        assert!(job.handle().await.is_err(), "the broker cannot be reached");
        assert_eq!(waits(), 2);
        broker.set(Some("online"));
        job.handle().await.unwrap();
        assert_eq!(waits(), 0, "online again: due now");
        db.pool.get().unwrap().batch_execute(later).unwrap();
        job.handle().await.unwrap();
        assert_eq!(waits(), 2, "still online: no second comeback");
        a.stop().await;
    }

    async fn a_413_halves_the_batch_until_it_fits(db: TestDb) {
        let peer = StubPeer::start(
            Arc::new(|_, body| if body["ops"].as_array().unwrap().len() > 2 { (413, json!({"error": "batch_too_large"})) } else { ok() }),
            Duration::ZERO,
        );
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 5, |_| {}).await;
        let summary = dispatch.run("w".into()).await.unwrap();
        assert_eq!((summary.delivered, summary.dead), (5, 0), "{summary:?}");
        assert_eq!(peer.batch_sizes(), vec![5, 2, 3, 1, 2], "halves, first half first");
        assert_eq!(peer.op_ids().len(), 5 + 2 + 3 + 1 + 2);
        assert_eq!(outbox(&db, "delivered"), 5);
        peer.handle.stop(true).await;
        a.stop().await;
    }

    /// Issue 12: a receiver that could not take the body in its time (408 request_timeout)
    /// gets halves too; counting an attempt would dead-letter a slow link's big batches.
    async fn a_408_halves_the_batch_like_a_413(db: TestDb) {
        let peer = StubPeer::start(
            Arc::new(|_, body| if body["ops"].as_array().unwrap().len() > 2 { (408, json!({"error": "request_timeout"})) } else { ok() }),
            Duration::ZERO,
        );
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 5, |_| {}).await;
        let summary = dispatch.run("w".into()).await.unwrap();
        assert_eq!((summary.delivered, summary.dead), (5, 0), "{summary:?}");
        assert_eq!(peer.batch_sizes(), vec![5, 2, 3, 1, 2], "halves, first half first");
        peer.handle.stop(true).await;
        a.stop().await;
    }

    async fn a_422_dead_letters_only_the_poison_op(db: TestDb) {
        let poison = Arc::new(Mutex::new(String::new()));
        let p = Arc::clone(&poison);
        let peer = StubPeer::start(
            Arc::new(move |_, body| {
                let poison = p.lock().unwrap().clone();
                let bad: Vec<Value> = body["ops"].as_array().unwrap().iter().enumerate()
                    .filter(|(_, op)| op["entity_id"] == poison.as_str())
                    .map(|(i, op)| json!({"index": i, "op_id": op["op_id"], "field": "payload.email", "code": "invalid_email", "message": "no"}))
                    .collect();
                if bad.is_empty() { ok() } else { (422, json!({"error": "invalid_ops", "message": "1 op(s)", "details": {"errors": bad}})) }
            }),
            Duration::ZERO,
        );
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 4, |_| {}).await;
        let third: String = {
            use diesel::prelude::*;
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("(SELECT entity_id FROM sync_changelog WHERE seq = 3)"))
                .get_result(&mut db.pool.get().unwrap())
                .unwrap()
        };
        *poison.lock().unwrap() = third;
        let summary = dispatch.run("w".into()).await.unwrap();
        assert_eq!((summary.delivered, summary.dead), (3, 1), "{summary:?}");
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT seq FROM sync_outbox WHERE status = 'dead'"), 3);
        assert_eq!(peer.batch_sizes(), vec![4, 3], "the rest resent without the poison op");
        peer.handle.stop(true).await;
        a.stop().await;
    }

    async fn an_expired_token_is_refreshed_once_per_batch(db: TestDb) {
        let peer = StubPeer::start(
            Arc::new(|n, _| if n == 0 { (401, json!({"error": "token_expired"})) } else { ok() }),
            Duration::ZERO,
        );
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 2, |_| {}).await;
        let summary = dispatch.run("w".into()).await.unwrap();
        assert_eq!(summary.delivered, 2, "{summary:?}");
        let tokens: Vec<Value> = peer.received.lock().unwrap().clone();
        assert_eq!(tokens.len(), 2, "one refusal, one resend");
        peer.handle.stop(true).await;

        // A peer that refuses every token: one refresh, then a failed attempt (never a loop).
        let db2 = TestDb::new(db.backend());
        let peer = StubPeer::start(Arc::new(|_, _| (401, json!({"error": "token_expired"}))), Duration::ZERO);
        let (a2, dispatch) = region_with_outbox(&db2, "stub", &peer.base, 2, |_| {}).await;
        let summary = dispatch.run("w".into()).await.unwrap();
        assert_eq!((summary.delivered, summary.retried), (0, 2), "{summary:?}");
        assert_eq!(peer.batch_sizes().len(), 2);
        peer.handle.stop(true).await;
        a.stop().await;
        a2.stop().await;
    }

    async fn two_dispatchers_never_send_an_entry_twice(db: TestDb) {
        let peer = StubPeer::start(Arc::new(|_, _| ok()), Duration::from_millis(300));
        let (a, first) = region_with_outbox(&db, "stub", &peer.base, 40, |s| {
            s.sync.dispatch_claim_limit = 10;
            s.sync.push_batch_ops = 5;
        })
        .await;
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("stub")];
        settings.sync.dispatch_claim_limit = 10;
        settings.sync.push_batch_ops = 5;
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let second = wiring.dispatch_action(&pool, &settings).unwrap();
        let mut delivered = 0;
        for _ in 0..4 {
            let (x, y) = tokio::join!(first.run("one".into()), second.run("two".into()));
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(x.claimed + y.claimed <= 20);
            delivered += x.delivered + y.delivered;
        }
        assert_eq!(delivered, 40);
        let mut ids = peer.op_ids();
        let total = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!((total, ids.len()), (40, 40), "every entry sent exactly once");
        peer.handle.stop(true).await;
        a.stop().await;
    }
}

ship::backend_tests! {
    /// Regression: the lease was taken once per pass and never extended or checked again, so a
    /// send slower than the lease (here 1.5 s against 1 s) overlapped a second dispatcher's
    /// claim of the same entries, and both sent them. Now a batch's lease is extended while it
    /// is in flight and checked before each batch.
    async fn a_slow_pass_never_lets_two_dispatchers_send_an_entry(db: TestDb) {
        let peer = StubPeer::start(Arc::new(|_, _| ok()), Duration::from_millis(1_500));
        let tune = |s: &mut app::Settings| {
            s.sync.dispatch_lease_secs = 1;
            s.sync.push_batch_ops = 1;
        };
        let (a, first) = region_with_outbox(&db, "stub", &peer.base, 3, tune).await;
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("stub")];
        tune(&mut settings);
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let second = wiring.dispatch_action(&pool, &settings).unwrap();
        let late = async {
            tokio::time::sleep(Duration::from_millis(1_200)).await;
            second.run("two".into()).await.unwrap()
        };
        let (x, y) = tokio::join!(first.run("one".into()), late);
        let mut ids = peer.op_ids();
        let sent = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(sent, ids.len(), "no entry sent twice: {:?} / {x:?} {y:?}", peer.op_ids());
        // Whatever is left is picked up by the next passes.
        for _ in 0..5 {
            first.run("one".into()).await.unwrap();
        }
        assert_eq!(outbox(&db, "delivered"), 3);
        let mut ids = peer.op_ids();
        let sent = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!((sent, ids.len()), (3, 3), "each entry sent exactly once");
        peer.handle.stop(true).await;
        a.stop().await;
    }

    /// Regression: a 422 naming no op of the batch made the dispatcher resend it in a loop.
    async fn a_422_naming_no_op_of_the_batch_is_a_failed_attempt(db: TestDb) {
        let peer = StubPeer::start(
            Arc::new(|_, _| (422, json!({"error": "invalid_ops", "details": {"errors": [{"index": 99, "code": "invalid_email"}]}}))),
            Duration::ZERO,
        );
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 2, |_| {}).await;
        let summary = dispatch.run("w".into()).await.unwrap();
        assert_eq!((summary.retried, summary.dead, peer.batch_sizes().len()), (2, 0, 1), "{summary:?}");
        peer.handle.stop(true).await;
        a.stop().await;
    }

    /// A peer whose clock is behind ours refuses ops as clock_drift: retried later, never dead.
    async fn clock_drift_refusals_are_retried_not_dead_lettered(db: TestDb) {
        let peer = StubPeer::start(
            Arc::new(|_, _| (422, json!({"error": "invalid_ops", "details": {"errors": [{"index": 0, "code": "clock_drift"}]}}))),
            Duration::ZERO,
        );
        // Regression: a clock_drift refusal counted an attempt, so after max_attempts the
        // entries died although nothing was wrong with them. One attempt allowed here.
        let (a, dispatch) =
            region_with_outbox(&db, "stub", &peer.base, 2, |s| s.sync.max_attempts = 1).await;
        for _ in 0..3 {
            let summary = dispatch.run("w".into()).await.unwrap();
            assert_eq!((summary.retried, summary.dead), (2, 0), "{summary:?}");
            assert_eq!(outbox(&db, "dead"), 0);
            assert_eq!(outbox(&db, "pending"), 2);
            let mut conn = db.pool.get().unwrap();
            assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_delivery_ranges WHERE attempts > 0"), 0);
            assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_delivery_ranges WHERE last_error LIKE '%clock_drift%'"), 1);
            // Postponed (not due now); make them due again for the next round.
            assert_eq!(dispatch.run("w".into()).await.unwrap().claimed, 0);
            diesel::RunQueryDsl::execute(
                diesel::sql_query("UPDATE sync_delivery SET next_attempt_at = created_at"),
                &mut conn,
            )
            .unwrap();
        }
        peer.handle.stop(true).await;
        a.stop().await;
    }
}

ship::backend_tests! {
    /// Regression: peers were served one after another, so a hanging peer held every other
    /// peer's deliveries up for its whole timeout.
    async fn a_slow_peer_does_not_hold_the_others_up(db: TestDb) {
        let slow = StubPeer::start(Arc::new(|_, _| ok()), Duration::from_millis(1_500));
        let fast = StubPeer::start(Arc::new(|_, _| ok()), Duration::ZERO);
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("a-slow"), PeerConfig::both("b-fast")];
        let region = Region::start(&settings).await;
        register_region(&db, "a-slow", &slow.base).await;
        register_region(&db, "b-fast", &fast.base).await;
        assert_eq!(region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": "c", "email": "x@example.com"})).await.0, 201);
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let summary = wiring.dispatch_action(&pool, &settings).unwrap().run("w".into()).await.unwrap();
        assert_eq!(summary.delivered, 2);
        assert!(fast.first("received") < slow.first("answered"), "the fast peer was served while the slow one was still answering");
        slow.handle.stop(true).await;
        fast.handle.stop(true).await;
        region.stop().await;
    }
}

ship::backend_tests! {
    /// A peer that does not answer within `peer_timeout_secs`: a failed attempt, backed off.
    /// A peer that timed out is slow, not down: when it takes a batch again, its other streams
    /// keep their backoff (a stream that keeps timing out must not be retried at every pass of
    /// the others and dead-lettered within minutes).
    async fn a_peer_that_timed_out_and_then_takes_a_batch_is_no_comeback(db: TestDb) {
        let slow = StubPeer::start(Arc::new(|_, _| ok()), Duration::from_secs(5));
        let (a, dispatch) = region_with_outbox(&db, "stub", &slow.base, 2, |s| s.sync.peer_timeout_secs = 1).await;
        assert_eq!(dispatch.run("w".into()).await.unwrap().retried, 2, "timed out");
        other_stream_backing_off(&db);
        let fast = StubPeer::start(Arc::new(|_, _| ok()), Duration::ZERO);
        stub_back_at(&db, &fast.base);
        assert_eq!(dispatch.run("w".into()).await.unwrap().delivered, 2);
        let waiting = OTHER_STREAM_WAITING;
        assert_eq!(count(&mut db.pool.get().unwrap(), waiting), 1, "the other stream keeps its backoff");
        slow.handle.stop(true).await;
        fast.handle.stop(true).await;
        a.stop().await;
    }

    async fn a_peer_that_times_out_is_a_failed_attempt(db: TestDb) {
        let peer = StubPeer::start(Arc::new(|_, _| ok()), Duration::from_secs(5));
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 2, |s| s.sync.peer_timeout_secs = 1).await;
        let summary = dispatch.run("w".into()).await.unwrap();
        assert_eq!((summary.delivered, summary.retried), (0, 2), "{summary:?}");
        assert_eq!(outbox(&db, "pending"), 2);
        let failed = count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_delivery_ranges WHERE attempts = 1 AND first_seq = 1 AND last_seq = 2 AND last_error IS NOT NULL");
        assert_eq!(failed, 1, "one attempt counted for both entries, with its reason");
        peer.handle.stop(true).await;
        a.stop().await;
    }
}

ship::backend_tests! {
    /// `sync.dispatch_workers`: the job's two workers claim different entries, so the second
    /// batch is on its way while the slow peer still holds the first; no entry goes twice.
    async fn dispatch_workers_overlap_without_sending_an_entry_twice(db: TestDb) {
        use ship::parents::Job;
        let peer = StubPeer::start(Arc::new(|_, _| ok()), Duration::from_millis(300));
        let (a, action) = region_with_outbox(&db, "stub", &peer.base, 20, |s| {
            s.sync.dispatch_claim_limit = 5;
            s.sync.push_batch_ops = 5;
        })
        .await;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let job = Arc::new(
            sync::ui::jobs::DispatchOutboxJob::new(
                action,
                "scheduler",
                5,
                Arc::new(tokio::sync::Notify::new()),
                Duration::from_millis(50),
                stopping,
            )
            .with_workers(2),
        );
        let running = tokio::spawn({
            let job = Arc::clone(&job);
            async move { job.handle().await }
        });
        tokio::time::timeout(Duration::from_secs(20), async {
            while peer.op_ids().len() < 20 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("every entry sent");
        stop.send(true).unwrap();
        running.await.unwrap().unwrap();
        let events = peer.events.lock().unwrap().clone();
        let second_received = events.iter().filter(|(w, _)| *w == "received").nth(1).unwrap().1;
        assert!(
            second_received < peer.first("answered"),
            "two batches in flight at once: {events:?}"
        );
        let mut ids = peer.op_ids();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 20, "every entry sent exactly once");
        assert_eq!(outbox(&db, "delivered"), 20);
        peer.handle.stop(true).await;
        a.stop().await;
    }
}

ship::backend_tests! {
    /// `sync.dispatch_linger_ms`: a write after a quiet spell is sent at once, alone; the
    /// writes that keep waking the dispatcher after it wait for the linger and leave together.
    async fn a_stream_of_writes_lingers_into_one_batch_and_a_lone_write_does_not(db: TestDb) {
        use ship::parents::Job;
        let peer = StubPeer::start(Arc::new(|_, _| ok()), Duration::ZERO);
        let (a, action) = region_with_outbox(&db, "stub", &peer.base, 0, |_| {}).await;
        let wake = Arc::new(tokio::sync::Notify::new());
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let job = Arc::new(
            sync::ui::jobs::DispatchOutboxJob::new(
                action,
                "scheduler",
                1_000,
                Arc::clone(&wake),
                Duration::from_secs(60),
                stopping,
            )
            .with_linger(Duration::from_secs(2)),
        );
        let running = tokio::spawn({
            let job = Arc::clone(&job);
            async move { job.handle().await }
        });
        // A quiet spell longer than the linger, then eight writes 100 ms apart.
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        for i in 0..8 {
            let (status, _) = a
                .post(
                    "/api/v1/customers",
                    &json!({"tenant_id": "t1", "name": format!("w{i}"), "email": "x@example.com"}),
                )
                .await;
            assert_eq!(status, 201);
            wake.notify_one();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::timeout(Duration::from_secs(20), async {
            while peer.op_ids().len() < 8 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("every write sent");
        stop.send(true).unwrap();
        running.await.unwrap().unwrap();
        let sizes = peer.batch_sizes();
        assert_eq!(sizes[0], 1, "the first write went at once, alone: {sizes:?}");
        assert!(sizes.len() <= 3, "the stream lingered into few batches: {sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 8, "{sizes:?}");
        peer.handle.stop(true).await;
        a.stop().await;
    }
}

ship::backend_tests! {
    /// `schedule run` (the kernel already stopping) still makes one dispatch pass per worker
    /// and returns. Regression: a stop check before the first pass made it send nothing.
    async fn a_stopping_kernel_still_makes_one_pass(db: TestDb) {
        use ship::parents::Job;
        let peer = StubPeer::start(Arc::new(|_, _| ok()), Duration::ZERO);
        let (a, action) = region_with_outbox(&db, "stub", &peer.base, 3, |_| {}).await;
        let (_stop, stopping) = tokio::sync::watch::channel(true);
        let job = sync::ui::jobs::DispatchOutboxJob::new(
            action,
            "scheduler",
            1_000,
            Arc::new(tokio::sync::Notify::new()),
            Duration::from_secs(60),
            stopping,
        )
        .with_workers(2)
        .with_linger(Duration::from_secs(5));
        tokio::time::timeout(Duration::from_secs(10), job.handle())
            .await
            .expect("returns after its pass")
            .unwrap();
        assert_eq!(peer.op_ids().len(), 3);
        assert_eq!(outbox(&db, "delivered"), 3);
        peer.handle.stop(true).await;
        a.stop().await;
    }
}

ship::backend_tests! {
    /// Issue 16.2: a push peer that decides `customers` by another conflict policy refuses the
    /// batches (409 `conflict_policy_mismatch`): retried later without an attempt counted, never
    /// dead, and delivered once the operators agree.
    async fn a_peer_with_another_conflict_policy_is_retried_not_dead_lettered(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let b = Region::start(&settings_for(&db_b, "us-east")).await;
        let delete_wins = |s: &mut app::Settings| {
            s.sync.conflict_policy.insert("customers".into(), ship::contracts::ConflictPolicy::DeleteWins);
        };
        let (a, dispatch) = region_with_outbox(&db, "us-east", &b.base, 2, |s| {
            s.sync.max_attempts = 1;
            delete_wins(s);
        })
        .await;
        for _ in 0..2 {
            let summary = dispatch.run("w".into()).await.unwrap();
            assert_eq!((summary.delivered, summary.dead), (0, 0), "{summary:?}");
            assert_eq!((outbox(&db, "dead"), outbox(&db, "pending")), (0, 2));
            let mut conn = db.pool.get().unwrap();
            assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_delivery_ranges WHERE attempts > 0"), 0);
            assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_delivery_ranges WHERE last_error LIKE '%conflict_policy_mismatch%'"), 1);
            diesel::RunQueryDsl::execute(diesel::sql_query("UPDATE sync_delivery SET next_attempt_at = created_at"), &mut conn).unwrap();
        }
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 0, "nothing applied");
        // B's operator sets the same policy as A's (delete_wins) and restarts it (same
        // address): the next pass delivers — A's batches say delete_wins.
        let address = b.base.trim_start_matches("http://").to_string();
        b.stop().await;
        let mut b_settings = settings_for(&db_b, "us-east");
        delete_wins(&mut b_settings);
        b_settings.http.bind = address;
        let b = Region::start(&b_settings).await;
        let summary = dispatch.run("w".into()).await.unwrap();
        assert_eq!(summary.delivered, 2, "{summary:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        a.stop().await;
        b.stop().await;
    }

    /// A receiver from before policies ignores the header and answers 200 without one (it
    /// decided by `lww`): a `delete_wins` sender stops there, the entries kept and retried
    /// (review: the answer's policy was not read, so every batch went).
    async fn a_receiver_that_does_not_state_its_policy_counts_as_lww(db: TestDb) {
        let peer = StubPeer::start(Arc::new(|_, _| ok()), Duration::ZERO);
        let (a, dispatch) = region_with_outbox(&db, "stub", &peer.base, 2, |s| {
            s.sync.max_attempts = 1;
            s.sync.conflict_policy.insert("customers".into(), ship::contracts::ConflictPolicy::DeleteWins);
        })
        .await;
        let summary = dispatch.run("w".into()).await.unwrap();
        assert_eq!((summary.delivered, summary.dead), (0, 0), "{summary:?}");
        assert_eq!(outbox(&db, "pending"), 2);
        let mut conn = db.pool.get().unwrap();
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_delivery_ranges WHERE last_error LIKE '%decides `customers` by lww%'"), 1);
        peer.handle.stop(true).await;
        a.stop().await;
    }
}
