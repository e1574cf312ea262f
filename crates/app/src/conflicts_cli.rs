//! `regionsync conflicts list | show`: each command calls one sync action.

use ship::parents::Action;
use sync::actions::conflicts::GetResolutionAction;
use sync::actions::conflicts::{hlc_time, rule_in_words};
use sync::actions::{
    ConflictFilter, GetConflictAction, ListConflictsAction, ListConflictsInput,
    ResolveConflictAction, ResolveConflictInput, Resolved, Take,
};

use crate::cli::{output, ConflictsCommand, TakeArg};
use crate::settings::Settings;
use crate::startup;

/// An HLC as the number and as the UTC time of its wall-clock part.
fn clock(hlc: i64) -> String {
    match hlc_time(hlc) {
        Some(t) => format!(
            "{hlc} ({}, counter {})",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            hlc & 0xffff
        ),
        None => format!("{hlc} (not a clock value)"),
    }
}

/// A stored payload as indented JSON (as stored when it is not JSON).
fn pretty(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_string())
}

pub async fn run(settings: &Settings, command: ConflictsCommand) -> anyhow::Result<()> {
    if let ConflictsCommand::Resolve { id, take, why, by } = command {
        return resolve(settings, id, take, why, by).await;
    }
    let pool = startup::connect(settings).await?;
    match command {
        ConflictsCommand::List {
            resource,
            entity,
            since,
            limit,
        } => {
            let filtered = resource.is_some() || entity.is_some() || since.is_some();
            let filter = ConflictFilter {
                resource,
                entity_id: entity,
                since: since.map(|t| t.naive_utc()),
            };
            let rows = ListConflictsAction::new(pool)
                .run(ListConflictsInput { filter, limit })
                .await?;
            if rows.is_empty() {
                output(if filtered {
                    "no conflict recorded that matches"
                } else {
                    "no conflict recorded"
                });
                return Ok(());
            }
            output(&format!(
                "{:>6}  {:<19}  {:<48}  {:<25}  {:<16}  LOSER",
                "ID", "DETECTED (UTC)", "RESOURCE/ENTITY", "RULE", "WINNER"
            ));
            for c in rows {
                output(&format!(
                    "{:>6}  {:<19}  {:<48}  {:<25}  {:<16}  {}",
                    c.id,
                    c.detected_at.format("%Y-%m-%d %H:%M:%S"),
                    format!("{}/{}", c.resource, c.entity_id),
                    c.reason,
                    c.winner_origin,
                    c.loser_origin
                ));
            }
        }
        ConflictsCommand::Show { id } => {
            let Some(c) = GetConflictAction::new(pool.clone()).run(id).await? else {
                anyhow::bail!("no conflict {id}");
            };
            output(&format!(
                "conflict {}: {}/{}",
                c.id, c.resource, c.entity_id
            ));
            output(&format!(
                "detected: {} UTC",
                c.detected_at.format("%Y-%m-%d %H:%M:%S%.3f")
            ));
            output(&format!(
                "rule:     {} ({})",
                c.reason,
                rule_in_words(&c.reason)
            ));
            output(&format!(
                "winner:   {}  hlc {}",
                c.winner_origin,
                clock(c.winner_hlc)
            ));
            output(&format!(
                "loser:    {}  hlc {}",
                c.loser_origin,
                clock(c.loser_hlc)
            ));
            output("winner payload (what the row held when the losing write arrived):");
            output(&pretty(&c.winner_payload));
            output("loser payload (the write that lost, not applied):");
            output(&pretty(&c.loser_payload));
            if let Some(r) = GetResolutionAction::new(pool).run(id).await? {
                output(&format!(
                    "resolved: took the {} as a new write, hlc {} of {}, by {} at {} UTC: {}",
                    r.took,
                    r.hlc,
                    r.origin_region,
                    r.resolved_by,
                    r.resolved_at.format("%Y-%m-%d %H:%M:%S"),
                    r.why
                ));
            }
        }
        ConflictsCommand::Resolve { .. } => {}
    }
    Ok(())
}

/// `regionsync conflicts resolve ID --take winner|loser --why … [--by …]`.
async fn resolve(
    settings: &Settings,
    id: i64,
    take: TakeArg,
    why: String,
    by: Option<String>,
) -> anyhow::Result<()> {
    let (pool, wiring) =
        startup::prepare(settings, startup::StartOptions { migrate: false }).await?;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let take = match take {
        TakeArg::Winner => Take::Winner,
        TakeArg::Loser => Take::Loser,
    };
    let recorder: std::sync::Arc<dyn ship::contracts::ChangeRecorder> = wiring.recorder.clone();
    let done = ResolveConflictAction::new(pool, wiring.registry.clone(), recorder)
        .run(ResolveConflictInput { id, take, by, why })
        .await?;
    match done {
        Resolved::Written(r) => output(&format!(
            "conflict {id}: the {} written again as a new write of {} (hlc {}); it replicates to the peers like any local write",
            r.took, r.origin_region, r.hlc
        )),
        Resolved::NoSuchConflict => anyhow::bail!("no conflict {id}"),
        Resolved::Refused(why) => anyhow::bail!("conflict {id} not resolved, nothing written: {why}"),
        Resolved::AlreadyResolved(r) => anyhow::bail!(
            "conflict {id} was resolved already (took the {} by {} at {} UTC): nothing written",
            r.took,
            r.resolved_by,
            r.resolved_at.format("%Y-%m-%d %H:%M:%S")
        ),
    }
    Ok(())
}
