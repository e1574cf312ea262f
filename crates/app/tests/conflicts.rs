//! The conflict ledger (issue 16): conflicts provoked through `POST /sync/{resource}/ops` on a
//! real region, read back through `ListConflictsAction` / `GetConflictAction` and counted by
//! `GET /metrics`, on each backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{customer, hlc, order, settings_for, Region};
use serde_json::{json, Value};
use ship::parents::Action;
use ship::testing::TestDb;
use sync::actions::{
    ConflictFilter, ConflictSummary, GetConflictAction, ListConflictsAction, ListConflictsInput,
};

const X: &str = "01939d2e-0000-7000-8000-00000000000a";
const Y: &str = "01939d2e-0000-7000-8000-00000000000b";
const O: &str = "01939d2e-0000-7000-8000-0000000000e1";

/// A push of one op from its origin (a push speaks only for its sender).
async fn push(
    region: &Region,
    resource: &str,
    id: &str,
    hlc: i64,
    origin: &str,
    payload: &Value,
) -> String {
    let body = json!({"source_region": origin, "batch_id": format!("b-{origin}-{hlc}"), "schema_version": 1,
        "ops": [{"op_id": format!("{origin}-{hlc}"), "entity_id": id, "kind": "upsert", "hlc": hlc, "origin": origin, "payload": payload}]});
    let (status, answer) = region.post(&format!("/sync/{resource}/ops"), &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["results"][0]["status"].as_str().unwrap().to_string()
}

/// One conflict as the pushes wrote it.
struct Written {
    resource: &'static str,
    entity: &'static str,
    winner: (i64, &'static str, Value),
    loser: (i64, &'static str, Value),
    reason: &'static str,
}

#[allow(clippy::too_many_arguments)]
fn written(
    resource: &'static str,
    entity: &'static str,
    w_hlc: i64,
    w_origin: &'static str,
    w_payload: Value,
    l_hlc: i64,
    l_origin: &'static str,
    l_payload: Value,
    reason: &'static str,
) -> Written {
    Written {
        resource,
        entity,
        winner: (w_hlc, w_origin, w_payload),
        loser: (l_hlc, l_origin, l_payload),
        reason,
    }
}

/// What the pushes wrote, in the order the conflicts were provoked, and a time between the
/// first and the second.
struct Provoked {
    conflicts: Vec<Written>,
    between: chrono::NaiveDateTime,
}

/// Three conflicts, each through the ops route: (a) customer X — ap-south's older write
/// arrives after us-east's (`older_hlc`); (b) customer Y — equal clocks, aa-bottom arrives
/// after zz-top (`equal_hlc_origin_tiebreak`); (c) order O — ap-south's older write again.
async fn provoke(region: &Region) -> Provoked {
    let (h0, h1) = (hlc(-2_000), hlc(-1_000));
    let (x_new, x_old) = (
        customer(X, "us-east wrote this", false),
        customer(X, "ap-south wrote this", false),
    );
    assert_eq!(
        push(region, "customers", X, h1, "us-east", &x_new).await,
        "applied"
    );
    assert_eq!(
        push(region, "customers", X, h0, "ap-south", &x_old).await,
        "stale"
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = ship::db::utc_now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (y_zz, y_aa) = (
        customer(Y, "zz wins", false),
        customer(Y, "aa loses", false),
    );
    assert_eq!(
        push(region, "customers", Y, h1, "zz-top", &y_zz).await,
        "applied"
    );
    assert_eq!(
        push(region, "customers", Y, h1, "aa-bottom", &y_aa).await,
        "stale"
    );
    let (o_new, o_old) = (
        order(O, X, "confirmed", false),
        order(O, X, "pending", false),
    );
    assert_eq!(
        push(region, "orders", O, h1, "us-east", &o_new).await,
        "applied"
    );
    assert_eq!(
        push(region, "orders", O, h0, "ap-south", &o_old).await,
        "stale"
    );
    Provoked {
        conflicts: vec![
            written(
                "customers",
                X,
                h1,
                "us-east",
                x_new,
                h0,
                "ap-south",
                x_old,
                "older_hlc",
            ),
            written(
                "customers",
                Y,
                h1,
                "zz-top",
                y_zz,
                h1,
                "aa-bottom",
                y_aa,
                "equal_hlc_origin_tiebreak",
            ),
            written(
                "orders",
                O,
                h1,
                "us-east",
                o_new,
                h0,
                "ap-south",
                o_old,
                "older_hlc",
            ),
        ],
        between,
    }
}

/// `GET /metrics`, its text.
async fn metrics(region: &Region) -> String {
    let res = reqwest::get(format!("{}/metrics", region.base))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.text().await.unwrap()
}

async fn list(db: &TestDb, filter: ConflictFilter, limit: i64) -> Vec<ConflictSummary> {
    ListConflictsAction::new(db.pool.clone())
        .run(ListConflictsInput { filter, limit })
        .await
        .unwrap()
}

fn entities(rows: &[ConflictSummary]) -> Vec<String> {
    rows.iter()
        .map(|c| format!("{}/{}", c.resource, c.entity_id))
        .collect()
}

ship::backend_tests! {
    async fn conflicts_provoked_through_the_ops_route_are_listed_and_shown(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let provoked = provoke(&region).await;

        // Newest first, one row each, as written.
        let all = list(&db, ConflictFilter::default(), 50).await;
        assert_eq!(entities(&all), [format!("orders/{O}"), format!("customers/{Y}"), format!("customers/{X}")]);
        for (row, w) in all.iter().rev().zip(&provoked.conflicts) {
            assert_eq!(
                (row.resource.as_str(), row.entity_id.as_str(), row.winner_hlc, row.winner_origin.as_str(), row.loser_hlc, row.loser_origin.as_str(), row.reason.as_str()),
                (w.resource, w.entity, w.winner.0, w.winner.1, w.loser.0, w.loser.1, w.reason)
            );
        }
        assert!(all.windows(2).all(|w| (w[0].detected_at, w[0].id) > (w[1].detected_at, w[1].id)), "newest first");

        // Each in full: both versions and both payloads, exactly the JSON written.
        for (row, w) in all.iter().rev().zip(&provoked.conflicts) {
            let c = GetConflictAction::new(db.pool.clone()).run(row.id).await.unwrap().unwrap();
            assert_eq!((c.id, c.resource.as_str(), c.entity_id.as_str(), c.reason.as_str()), (row.id, w.resource, w.entity, w.reason));
            assert_eq!((c.winner_hlc, c.winner_origin.as_str()), (w.winner.0, w.winner.1));
            assert_eq!((c.loser_hlc, c.loser_origin.as_str()), (w.loser.0, w.loser.1));
            assert_eq!(serde_json::from_str::<Value>(&c.winner_payload).unwrap(), w.winner.2, "winner payload of {}", w.entity);
            assert_eq!(serde_json::from_str::<Value>(&c.loser_payload).unwrap(), w.loser.2, "loser payload of {}", w.entity);
            assert_eq!(c.detected_at, row.detected_at);
        }
        assert_eq!(GetConflictAction::new(db.pool.clone()).run(999_999).await.unwrap(), None);

        // Filters.
        let only = |resource: Option<&str>, entity: Option<&str>, since: Option<chrono::NaiveDateTime>| ConflictFilter {
            resource: resource.map(str::to_string),
            entity_id: entity.map(str::to_string),
            since,
        };
        let customers = list(&db, only(Some("customers"), None, None), 50).await;
        assert_eq!(entities(&customers), [format!("customers/{Y}"), format!("customers/{X}")]);
        let orders = list(&db, only(Some("orders"), None, None), 50).await;
        assert_eq!(entities(&orders), [format!("orders/{O}")]);
        let x = list(&db, only(None, Some(X), None), 50).await;
        assert_eq!(entities(&x), [format!("customers/{X}")]);
        assert!(list(&db, only(Some("orders"), Some(X), None), 50).await.is_empty(), "both filters apply");
        let since = list(&db, only(None, None, Some(provoked.between)), 50).await;
        assert_eq!(entities(&since), [format!("orders/{O}"), format!("customers/{Y}")]);
        let later = provoked.between + chrono::TimeDelta::hours(1);
        assert!(list(&db, only(None, None, Some(later)), 50).await.is_empty());
        let newest = list(&db, ConflictFilter::default(), 1).await;
        assert_eq!(entities(&newest), [format!("orders/{O}")]);

        // A limit out of range is refused.
        for limit in [0, -1, 10_001] {
            let refused = ListConflictsAction::new(db.pool.clone())
                .run(ListConflictsInput { filter: ConflictFilter::default(), limit })
                .await
                .unwrap_err();
            assert!(matches!(refused, sync::errors::SyncError::InvalidLimit { .. }), "{refused}");
        }

        // A re-delivered losing write records nothing new.
        let (h0, _, x_old) = &provoked.conflicts[0].loser;
        assert_eq!(push(&region, "customers", X, *h0, "ap-south", x_old).await, "stale");
        assert_eq!(list(&db, ConflictFilter::default(), 50).await.len(), 3);
        region.stop().await;
    }

    async fn metrics_count_conflicts_per_resource_and_rule(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let text = metrics(&region).await;
        assert!(!text.contains("regionsync_sync_conflicts"), "no conflict, no sample: {text}");

        provoke(&region).await;
        let text = metrics(&region).await;
        assert!(text.contains("# TYPE regionsync_sync_conflicts gauge"), "{text}");
        assert!(text.contains("regionsync_sync_conflicts{reason=\"older_hlc\",resource=\"customers\"} 1.0"), "{text}");
        assert!(text.contains("regionsync_sync_conflicts{reason=\"equal_hlc_origin_tiebreak\",resource=\"customers\"} 1.0"), "{text}");
        assert!(text.contains("regionsync_sync_conflicts{reason=\"older_hlc\",resource=\"orders\"} 1.0"), "{text}");

        // Another older write of X from a third region: a second `older_hlc` conflict.
        assert_eq!(push(&region, "customers", X, hlc(-3_000), "sa-east", &customer(X, "sa", false)).await, "stale");
        let text = metrics(&region).await;
        assert!(text.contains("regionsync_sync_conflicts{reason=\"older_hlc\",resource=\"customers\"} 2.0"), "{text}");
        region.stop().await;
    }
}

ship::backend_tests! {
    /// `conflicts resolve` (issue 16.3): the chosen version is written again as a new local
    /// write of this region — a fresh version above the row's, in the changelog (owed to the
    /// push peers) — with an audit line; once per conflict.
    async fn resolving_writes_the_chosen_version_again_as_a_new_local_write(db: TestDb) {
        use sync::actions::{ResolveConflictAction, ResolveConflictInput, Resolved, Take};
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![sync::PeerConfig::both("us-east")];
        let region = Region::start(&settings).await;
        let (h_old, h_new) = (hlc(-2_000), hlc(-1_000));
        assert_eq!(push(&region, "customers", X, h_new, "us-east", &customer(X, "Ada (us-east)", false)).await, "applied");
        assert_eq!(push(&region, "customers", X, h_old, "ap-south", &customer(X, "Ada (ap-south)", false)).await, "stale");
        let id = ListConflictsAction::new(db.pool.clone())
            .run(ListConflictsInput { filter: ConflictFilter::default(), limit: 10 })
            .await
            .unwrap()[0]
            .id;

        let (pool, wiring) = app::startup::prepare(&settings, app::startup::StartOptions::default()).await.unwrap();
        let recorder: std::sync::Arc<dyn ship::contracts::ChangeRecorder> = wiring.recorder.clone();
        let resolve = ResolveConflictAction::new(pool, wiring.registry.clone(), recorder);
        let input = |id, take| ResolveConflictInput { id, take, by: "ops@example.com".into(), why: "the customer called".into() };
        let Resolved::Written(done) = resolve.run(input(id, Take::Loser)).await.unwrap() else { panic!("written") };
        assert_eq!((done.took.as_str(), done.origin_region.as_str(), done.resolved_by.as_str()), ("loser", "eu-west", "ops@example.com"));
        assert!(done.hlc > h_new, "a fresh version above the row's");

        let (_, got) = region.get(&format!("/api/v1/customers/{X}")).await;
        assert_eq!(got["name"], "Ada (ap-south)", "the loser's content, as a new write");
        let mut conn = db.pool.get().unwrap();
        let ours = format!("SELECT COUNT(*) FROM sync_changelog WHERE entity_id = '{X}' AND origin_region = 'eu-west' AND hlc = {}", done.hlc);
        assert_eq!(common::count(&mut conn, &ours), 1, "in the changelog as this region's write");
        drop(conn);
        assert_eq!(common::owed(&db, "eu-west", "us-east"), 1, "owed to the push peer");

        // Once per conflict; an unknown id writes nothing either.
        let again = resolve.run(input(id, Take::Winner)).await.unwrap();
        assert!(matches!(again, Resolved::AlreadyResolved(ref r) if r.took == "loser"), "{again:?}");
        assert_eq!(resolve.run(input(id + 1000, Take::Winner)).await.unwrap(), Resolved::NoSuchConflict);
        let (_, got) = region.get(&format!("/api/v1/customers/{X}")).await;
        assert_eq!(got["name"], "Ada (ap-south)");
        assert_eq!(common::owed(&db, "eu-west", "us-east"), 1);

        // Regression (review): a conflict whose row a later write changed is not resolved —
        // resolving would silently undo that write.
        assert_eq!(push(&region, "customers", Y, h_new, "us-east", &customer(Y, "Grace (us-east)", false)).await, "applied");
        assert_eq!(push(&region, "customers", Y, h_old, "ap-south", &customer(Y, "Grace (ap-south)", false)).await, "stale");
        assert_eq!(push(&region, "customers", Y, hlc(0), "us-east", &customer(Y, "Grace (later)", false)).await, "applied");
        let newest = ListConflictsAction::new(db.pool.clone())
            .run(ListConflictsInput { filter: ConflictFilter { entity_id: Some(Y.into()), ..ConflictFilter::default() }, limit: 1 })
            .await
            .unwrap()[0]
            .id;
        let refused = resolve.run(input(newest, Take::Loser)).await.unwrap();
        assert!(matches!(refused, Resolved::Refused(ref why) if why.contains("a later write changed it")), "{refused:?}");
        let (_, got) = region.get(&format!("/api/v1/customers/{Y}")).await;
        assert_eq!(got["name"], "Grace (later)");
        assert_eq!(common::owed(&db, "eu-west", "us-east"), 1, "nothing written");
        region.stop().await;
    }
}

/// A push of one op of `kind` from its origin, saying the sender's conflict policy (`None`: no
/// header): (status, the op's status or the error code).
async fn push_as(
    region: &Region,
    (id, kind, hlc, origin): (&str, &str, i64, &str),
    payload: &Value,
    policy: Option<&str>,
) -> (u16, String) {
    let body = json!({"source_region": origin, "batch_id": format!("b-{origin}-{hlc}"), "schema_version": 1,
        "ops": [{"op_id": format!("{origin}-{hlc}"), "entity_id": id, "kind": kind, "hlc": hlc, "origin": origin, "payload": payload}]});
    let mut request = region
        .client
        .post(region.url("/sync/customers/ops"))
        .bearer_auth(region.token_from(origin))
        .json(&body);
    if let Some(policy) = policy {
        request = request.header("regionsync-conflict-policy", policy);
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    let answer: Value = res.json().await.unwrap();
    let what = if status == 200 {
        &answer["results"][0]["status"]
    } else {
        &answer["error"]
    };
    (status, what.as_str().unwrap().to_string())
}

fn delete_wins(db: &TestDb) -> app::Settings {
    let mut settings = settings_for(db, "eu-west");
    settings.sync.conflict_policy.insert(
        "customers".into(),
        ship::contracts::ConflictPolicy::DeleteWins,
    );
    settings
}

ship::backend_tests! {
    /// Issue 16.2: under `delete_wins` a delete sticks — an older delete replaces a concurrent
    /// update and a later update of the deleted row is stale, each recorded with reason
    /// `delete_wins` — while under `lww` the later update undoes the delete, recorded too.
    async fn delete_wins_makes_a_delete_stick_and_records_both_arrivals(db: TestDb) {
        let region = Region::start(&delete_wins(&db)).await;
        let dw = Some("delete_wins");
        let (h0, h1, h2) = (hlc(-3_000), hlc(-2_000), hlc(-1_000));
        assert_eq!(push_as(&region, (X, "upsert", h1, "us-east"), &customer(X, "updated in us-east", false), dw).await, (200, "applied".into()));
        // ap-south deleted X before us-east's update arrived there: the delete wins anyway.
        assert_eq!(push_as(&region, (X, "delete", h0, "ap-south"), &customer(X, "deleted in ap-south", true), dw).await, (200, "applied".into()));
        let (status, _) = region.get(&format!("/api/v1/customers/{X}")).await;
        assert_eq!(status, 404, "deleted");
        // A later update does not bring it back.
        assert_eq!(push_as(&region, (X, "upsert", h2, "us-east"), &customer(X, "updated again", false), dw).await, (200, "stale".into()));
        let (status, _) = region.get(&format!("/api/v1/customers/{X}")).await;
        assert_eq!(status, 404, "still deleted");

        let all = list(&db, ConflictFilter::default(), 50).await;
        assert_eq!(all.len(), 2, "{all:?}");
        for c in &all {
            assert_eq!((c.reason.as_str(), c.winner_origin.as_str(), c.winner_hlc), ("delete_wins", "ap-south", h0));
            assert_eq!(c.loser_origin, "us-east");
        }
        let losers: Vec<i64> = all.iter().map(|c| c.loser_hlc).collect();
        assert_eq!(losers, [h2, h1], "the lost update, then the refused one (newest first)");
        let text = metrics(&region).await;
        assert!(text.contains("regionsync_sync_conflicts{reason=\"delete_wins\",resource=\"customers\"} 2.0"), "{text}");

        // `conflicts resolve --take loser` would write a live version over the tombstone, which
        // every other region refuses: refused here too, nothing written (the same under lww
        // restores the row: `the_loser_of_a_delete_is_restored_under_lww`).
        use sync::actions::{ResolveConflictAction, ResolveConflictInput, Resolved, Take};
        let (pool, wiring) = app::startup::prepare(&delete_wins(&db), app::startup::StartOptions::default()).await.unwrap();
        let recorder: std::sync::Arc<dyn ship::contracts::ChangeRecorder> = wiring.recorder.clone();
        let refused = ResolveConflictAction::new(pool, wiring.registry.clone(), recorder)
            .run(ResolveConflictInput { id: all[0].id, take: Take::Loser, by: "ops".into(), why: "test".into() })
            .await
            .unwrap();
        assert!(matches!(refused, Resolved::Refused(ref why) if why.contains("delete_wins")), "{refused:?}");
        let (status, _) = region.get(&format!("/api/v1/customers/{X}")).await;
        assert_eq!(status, 404);
        region.stop().await;

        // The same under lww (another region): the update undoes the delete, and the undone
        // delete is recorded (reason older_hlc).
        let lww = TestDb::new(db.backend());
        let region = Region::start(&settings_for(&lww, "eu-west")).await;
        assert_eq!(push_as(&region, (Y, "delete", h0, "ap-south"), &customer(Y, "deleted", true), None).await, (200, "applied".into()));
        assert_eq!(push_as(&region, (Y, "upsert", h1, "us-east"), &customer(Y, "back", false), None).await, (200, "applied".into()));
        let (status, got) = region.get(&format!("/api/v1/customers/{Y}")).await;
        assert_eq!((status, got["name"].as_str()), (200, Some("back")));
        let all = list(&lww, ConflictFilter::default(), 50).await;
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(
            (all[0].reason.as_str(), all[0].winner_origin.as_str(), all[0].winner_hlc, all[0].loser_origin.as_str(), all[0].loser_hlc),
            ("older_hlc", "us-east", h1, "ap-south", h0)
        );
        region.stop().await;
    }

    /// Regression (review): under `lww`, taking the live loser of a conflict whose winner is a
    /// tombstone restores the row — the apply answered `AppliedOver` (a delete undone), which
    /// resolve took for a row changed under it and refused on every try.
    async fn the_loser_of_a_delete_is_restored_under_lww(db: TestDb) {
        use sync::actions::{ResolveConflictAction, ResolveConflictInput, Resolved, Take};
        let settings = settings_for(&db, "eu-west");
        let region = Region::start(&settings).await;
        let (h0, h1) = (hlc(-2_000), hlc(-1_000));
        assert_eq!(push_as(&region, (X, "delete", h1, "ap-south"), &customer(X, "deleted", true), None).await, (200, "applied".into()));
        assert_eq!(push_as(&region, (X, "upsert", h0, "us-east"), &customer(X, "kept in us-east", false), None).await, (200, "stale".into()));
        let id = list(&db, ConflictFilter::default(), 1).await[0].id;
        let (pool, wiring) = app::startup::prepare(&settings, app::startup::StartOptions::default()).await.unwrap();
        let recorder: std::sync::Arc<dyn ship::contracts::ChangeRecorder> = wiring.recorder.clone();
        let done = ResolveConflictAction::new(pool, wiring.registry.clone(), recorder)
            .run(ResolveConflictInput { id, take: Take::Loser, by: "ops".into(), why: "not to be deleted".into() })
            .await
            .unwrap();
        assert!(matches!(done, Resolved::Written(_)), "{done:?}");
        let (status, got) = region.get(&format!("/api/v1/customers/{X}")).await;
        assert_eq!((status, got["name"].as_str()), (200, Some("kept in us-east")));
        region.stop().await;
    }

    /// `conflicts what-if` replays the ledger under another policy and lists the outcomes it
    /// would turn around, changing nothing.
    async fn what_if_lists_the_conflicts_another_policy_would_turn_around(db: TestDb) {
        use sync::actions::{WhatIfAction, WhatIfInput};
        use ship::contracts::{ConflictPolicy, OpKind};
        let settings = settings_for(&db, "eu-west");
        let region = Region::start(&settings).await;
        let (h0, h1, h2) = (hlc(-3_000), hlc(-2_000), hlc(-1_000));
        // X: a delete undone by a later update (lww) — delete_wins would keep the delete.
        push_as(&region, (X, "delete", h0, "ap-south"), &customer(X, "deleted", true), None).await;
        push_as(&region, (X, "upsert", h1, "us-east"), &customer(X, "back", false), None).await;
        // Y: an older update losing to a newer one — the same under either policy.
        push_as(&region, (Y, "upsert", h2, "us-east"), &customer(Y, "new", false), None).await;
        push_as(&region, (Y, "upsert", h1, "ap-south"), &customer(Y, "old", false), None).await;
        let before = common::customers_digest(&db);

        let (pool, wiring) = app::startup::prepare(&settings, app::startup::StartOptions::default()).await.unwrap();
        let what_if = WhatIfAction::new(pool, wiring.registry.clone());
        let run = |policy, limit| what_if.run(WhatIfInput { resource: "customers".into(), policy, limit });
        let under = run(ConflictPolicy::DeleteWins, 50).await.unwrap();
        assert_eq!((under.current, under.examined, under.turned, under.unreadable), (ConflictPolicy::Lww, 2, 1, 0));
        assert_eq!(under.listed.len(), 1);
        let t = &under.listed[0];
        assert_eq!((t.entity_id.as_str(), t.reason.as_str()), (X, "older_hlc"));
        assert_eq!(t.winner, ("us-east".to_string(), h1, OpKind::Upsert));
        assert_eq!(t.loser, ("ap-south".to_string(), h0, OpKind::Delete));
        // Under the policy that decided them, nothing turns; the limit bounds the list only.
        let same = run(ConflictPolicy::Lww, 50).await.unwrap();
        assert_eq!((same.examined, same.turned), (2, 0));
        let none_listed = run(ConflictPolicy::DeleteWins, 0).await.unwrap();
        assert_eq!((none_listed.turned, none_listed.listed.len()), (1, 0));
        let unknown = what_if.run(WhatIfInput { resource: "nope".into(), policy: ConflictPolicy::Lww, limit: 1 }).await;
        assert!(matches!(unknown, Err(sync::errors::SyncError::UnknownResource(_))), "{unknown:?}");
        assert_eq!(common::customers_digest(&db), before, "a what-if changes nothing");
        region.stop().await;
    }

    /// Regions with different policies for a resource refuse each other's batches and reads
    /// (409 `conflict_policy_mismatch`), applying nothing; a caller without the header is a
    /// region from before policies: `lww`.
    async fn a_peer_with_another_conflict_policy_is_refused(db: TestDb) {
        let region = Region::start(&delete_wins(&db)).await;
        let h = hlc(-1_000);
        let live = customer(X, "x", false);
        assert_eq!(push_as(&region, (X, "upsert", h, "us-east"), &live, Some("lww")).await, (409, "conflict_policy_mismatch".into()));
        assert_eq!(push_as(&region, (X, "upsert", h, "us-east"), &live, None).await, (409, "conflict_policy_mismatch".into()), "no header: lww");
        assert_eq!(push_as(&region, (X, "upsert", h, "us-east"), &live, Some("newest_wins")).await, (409, "conflict_policy_mismatch".into()));
        let (status, _) = region.get(&format!("/api/v1/customers/{X}")).await;
        assert_eq!(status, 404, "nothing applied");
        assert_eq!(push_as(&region, (X, "upsert", h, "us-east"), &live, Some("delete_wins")).await, (200, "applied".into()));

        let token = region.token_from("us-east");
        for path in ["/sync/customers/changes", "/sync/customers/snapshot", "/sync/customers/digest?prefix=&depth=1"] {
            let read = |policy: Option<&str>| {
                let mut request = region.client.get(region.url(path)).bearer_auth(&token);
                if let Some(policy) = policy {
                    request = request.header("regionsync-conflict-policy", policy);
                }
                request.send()
            };
            for policy in [Some("lww"), None] {
                let refused = read(policy).await.unwrap();
                assert_eq!(refused.status().as_u16(), 409, "{path} {policy:?}");
                let body: Value = refused.json().await.unwrap();
                assert_eq!(body["error"], "conflict_policy_mismatch", "{path}: {body}");
            }
            let served = read(Some("delete_wins")).await.unwrap();
            assert_eq!(served.status().as_u16(), 200, "{path}");
            assert_eq!(served.headers()["regionsync-conflict-policy"], "delete_wins", "{path}: the answer says ours");
        }
        // Orders keep the default.
        let (status, _) = region.get("/sync/orders/changes").await;
        assert_eq!(status, 200);
        region.stop().await;
    }
}
