//! `regionsync conflicts list | show`: each command calls one sync action.

use ship::parents::Action;
use sync::actions::conflicts::GetResolutionAction;
use sync::actions::conflicts::{hlc_time, rule_in_words};
use sync::actions::{
    ConflictFilter, GetConflictAction, ListConflictsAction, ListConflictsInput,
    ResolveConflictAction, ResolveConflictInput, Resolved, Take, WhatIfAction, WhatIfInput,
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
    if let ConflictsCommand::WhatIf {
        resource,
        policy,
        limit,
    } = command
    {
        return what_if(settings, resource, policy.into(), limit).await;
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
        ConflictsCommand::Resolve { .. } | ConflictsCommand::WhatIf { .. } => {}
    }
    Ok(())
}

/// `regionsync conflicts what-if --resource R --policy P [--limit N]`.
async fn what_if(
    settings: &Settings,
    resource: String,
    policy: ship::contracts::ConflictPolicy,
    limit: i64,
) -> anyhow::Result<()> {
    let (pool, wiring) =
        startup::prepare(settings, startup::StartOptions { migrate: false }).await?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let input = WhatIfInput {
        resource: resource.clone(),
        policy,
        limit,
    };
    let answer = WhatIfAction::new(pool, wiring.registry.clone())
        .run(input)
        .await?;
    output(&format!(
        "{resource}: decided by {} here; {} recorded conflict(s) replayed under {policy}: {} would end the other way",
        answer.current, answer.examined, answer.turned
    ));
    if answer.unreadable > 0 {
        output(&format!(
            "{} conflict(s) not judged: a payload passes neither kind's validation",
            answer.unreadable
        ));
    }
    if answer.listed.is_empty() {
        return Ok(());
    }
    output(&format!(
        "{:>6}  {:<19}  {:<36}  {:<25}  {:<28}  UNDER {}",
        "ID",
        "DETECTED (UTC)",
        "ENTITY",
        "RULE THEN",
        "WON THEN",
        policy.as_str().to_uppercase()
    ));
    let side = |(origin, hlc, kind): &(String, i64, ship::contracts::OpKind)| {
        let at = hlc_time(*hlc)
            .map_or_else(|| hlc.to_string(), |t| t.format("%H:%M:%S%.3f").to_string());
        format!("{} {origin} {at}", kind.as_str())
    };
    for t in &answer.listed {
        output(&format!(
            "{:>6}  {:<19}  {:<36}  {:<25}  {:<28}  {}",
            t.id,
            t.detected_at.format("%Y-%m-%d %H:%M:%S"),
            t.entity_id,
            t.reason,
            side(&t.winner),
            side(&t.loser)
        ));
    }
    if answer.turned > answer.listed.len() as u64 {
        output(&format!(
            "… and {} more (--limit)",
            answer.turned - answer.listed.len() as u64
        ));
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
