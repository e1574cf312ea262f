//! `regionsync outbox …` and `regionsync sync status`: each command calls one sync action.

use chrono::{DateTime, Utc};
use ship::parents::Action;
use sync::actions::{
    DiscardOutboxAction, ListAlertsAction, ListOutboxAction, ListParkedAction,
    ListPeerClocksAction, RetryDeadAction, SyncStatusAction,
};
use sync::peer_clock::ClockVerdict;

use crate::cli::{output, OutboxCommand};
use crate::settings::Settings;
use crate::startup;

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn age(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| format!("{}s", (Utc::now() - t).num_seconds().max(0)))
        .unwrap_or_else(|| "-".into())
}

pub async fn status(settings: &Settings) -> anyhow::Result<()> {
    let pool = startup::connect(settings).await?;
    let parked = ListParkedAction::new(pool.clone()).run(0).await?;
    for c in &parked.counts {
        output(&format!(
            "{}: {} op(s) parked waiting for rows they name, oldest since {} (`regionsync sync parked list`)",
            c.resource,
            c.count,
            c.oldest.format("%Y-%m-%d %H:%M:%S")
        ));
    }
    let skew_max = settings.alerts.clock_skew_max_ms;
    let clocks = ListPeerClocksAction::new(pool.clone())
        .run(skew_max)
        .await?;
    let rows = SyncStatusAction::new(pool, settings.region_id.clone())
        .run(())
        .await?;
    if rows.is_empty() {
        output("no peer has entries or cursors yet");
    } else {
        status_table(rows);
    }
    for (c, judged) in clocks {
        let error = c
            .round_trip_ms
            .map_or_else(|| "one way".to_string(), |rt| format!("±{} ms", rt / 2));
        let verdict = match judged {
            ClockVerdict::Within => String::new(),
            ClockVerdict::Beyond => {
                format!(" — beyond alerts.clock_skew_max_ms ({skew_max} ms): clock_skew")
            }
            ClockVerdict::BehindOneWay => {
                " — not judged: one way, a caller looks behind by its transit time".into()
            }
            ClockVerdict::Stale => " — stale (over 10 minutes old): not judged".into(),
            ClockVerdict::Forgotten => " — forgotten (over a day old)".into(),
        };
        output(&format!(
            "{}: clock {:+} ms against ours ({error}, measured {}){verdict}",
            c.peer,
            c.offset_ms,
            c.measured_at.format("%Y-%m-%d %H:%M:%S")
        ));
    }
    Ok(())
}

/// The table of `sync status`: a line per peer and resource, then what needs a word.
fn status_table(rows: Vec<sync::actions::PeerStatus>) {
    output(&format!(
        "{:<16} {:<14} {:>8} {:>6} {:<20} {:<20} {:>8} {:<20} PUSH LAG",
        "PEER", "RESOURCE", "PENDING", "DEAD", "LAST PUSH", "LAST PULL", "READ TO", "LAST READ"
    ));
    let mut notes = Vec::new();
    let mut incarnations = std::collections::BTreeMap::new();
    for r in rows {
        if let Some(incarnation) = &r.peer_incarnation {
            incarnations.insert(r.peer.clone(), incarnation.clone());
        }
        if r.quarantined > 0 {
            notes.push(format!(
                "{}/{}: {} feed entr{} quarantined (`regionsync sync quarantine list`)",
                r.peer,
                r.resource,
                r.quarantined,
                if r.quarantined == 1 { "y" } else { "ies" }
            ));
        }
        if let Some(rows) = r.bootstrap_rows {
            notes.push(format!(
                "{}/{}: bootstrap under way, {rows} rows applied (`regionsync sync bootstrap --peer {}` resumes it)",
                r.peer, r.resource, r.peer
            ));
        }
        output(&format!(
            "{:<16} {:<14} {:>8} {:>6} {:<20} {:<20} {:>8} {:<20} {}",
            r.peer,
            r.resource,
            r.pending,
            r.dead,
            when(r.last_push_at),
            when(r.last_pull_at),
            r.feed_acked_seq
                .map_or_else(|| "-".into(), |seq| seq.to_string()),
            when(r.last_feed_read_at),
            age(r.oldest_pending_at)
        ));
    }
    for note in notes {
        output(&note);
    }
    for (peer, incarnation) in incarnations {
        output(&format!("{peer}: database incarnation {incarnation}"));
    }
}

pub async fn alerts(settings: &Settings, limit: i64) -> anyhow::Result<()> {
    let pool = startup::connect(settings).await?;
    let rows = ListAlertsAction::new(pool).run(limit).await?;
    output(&format!(
        "{:>6} {:<9} {:<20} {:<16} {:<20} {:<20} MESSAGE",
        "ID", "STATE", "KIND", "PEER", "FIRED", "RESOLVED"
    ));
    for a in rows {
        output(&format!(
            "{:>6} {:<9} {:<20} {:<16} {:<20} {:<20} {}",
            a.id,
            a.state,
            a.kind,
            if a.subject.is_empty() {
                "-"
            } else {
                &a.subject
            },
            a.fired_at.format("%Y-%m-%d %H:%M:%S"),
            a.resolved_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_else(|| "-".into()),
            a.message
        ));
    }
    Ok(())
}

pub async fn run(settings: &Settings, command: OutboxCommand) -> anyhow::Result<()> {
    let pool = startup::connect(settings).await?;
    match command {
        OutboxCommand::List { dead, limit } => {
            let rows = ListOutboxAction::new(pool, settings.region_id.clone())
                .run((dead, limit))
                .await?;
            output(&format!(
                "{:>8} {:<16} {:<14} {:>8} {:<9} {:>8} {:<20} LAST ERROR",
                "ID", "PEER", "RESOURCE", "SEQ", "STATUS", "ATTEMPTS", "NEXT ATTEMPT"
            ));
            for r in rows {
                output(&format!(
                    "{:>8} {:<16} {:<14} {:>8} {:<9} {:>8} {:<20} {}",
                    r.id.map_or_else(|| "-".to_string(), |id| id.to_string()),
                    r.peer,
                    r.resource,
                    r.seq,
                    r.status,
                    r.attempts,
                    r.next_attempt_at.format("%Y-%m-%d %H:%M:%S"),
                    r.last_error.unwrap_or_default()
                ));
            }
        }
        OutboxCommand::Retry { id, all_dead } => {
            let which = if all_dead { None } else { id };
            let n = RetryDeadAction::new(pool).run(which).await?;
            if n == 0 {
                anyhow::bail!(
                    "no dead entry {}",
                    id.map(|i| format!("with id {i}")).unwrap_or_default()
                );
            }
            output(&format!(
                "{n} dead entr{} will be sent again",
                if n == 1 { "y" } else { "ies" }
            ));
        }
        OutboxCommand::Discard { id, peer } => {
            let forgetting = id.is_none().then(|| peer.clone()).flatten();
            let gone = DiscardOutboxAction::new(pool, settings.region_id.clone())
                .run((id, peer))
                .await?;
            let n = gone.entries;
            output(&format!(
                "{n} undelivered entr{} discarded",
                if n == 1 { "y" } else { "ies" }
            ));
            if let Some(peer) = forgetting {
                let n = gone.feed_acks;
                output(&format!(
                    "{n} feed acknowledgment{} of {peer} forgotten (it holds back pruning no more; a read of the feed by {peer} records a new one)",
                    if n == 1 { "" } else { "s" }
                ));
            }
        }
        OutboxCommand::Stats => {
            let rows = SyncStatusAction::new(pool, settings.region_id.clone())
                .run(())
                .await?;
            output(&format!(
                "{:<16} {:<14} {:>8} {:>6} {:>10} OLDEST PENDING",
                "PEER", "RESOURCE", "PENDING", "DEAD", "DELIVERED"
            ));
            for r in rows {
                output(&format!(
                    "{:<16} {:<14} {:>8} {:>6} {:>10} {}",
                    r.peer,
                    r.resource,
                    r.pending,
                    r.dead,
                    r.delivered,
                    age(r.oldest_pending_at)
                ));
            }
        }
    }
    Ok(())
}
