//! `regionsync sync run`: a manual sync with progress bars — the push (outbox dispatch passes
//! until nothing more is delivered) and the pull (every peer and resource) — then a summary.

use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ship::parents::Action;
use sync::actions::{BootstrapInput, PullChangesInput, SyncStatusAction};

use crate::cli::output;
use crate::settings::Settings;
use crate::startup::{self, StartOptions};

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

pub async fn run(
    settings: &Settings,
    peer: Option<String>,
    resource: Option<String>,
    push: bool,
    pull: bool,
) -> anyhow::Result<()> {
    let (pool, wiring) = startup::prepare(settings, StartOptions { migrate: false }).await?;
    if let Some(r) = &resource {
        if !wiring.registry.names().any(|n| n == r) {
            let known: Vec<&str> = wiring.registry.names().collect();
            anyhow::bail!("unknown resource `{r}` (synced here: {})", known.join(", "));
        }
    }
    let started = Instant::now();
    let mut failures = Vec::new();

    if push {
        let owed: i64 = SyncStatusAction::new(pool.clone(), settings.region_id.clone())
            .run(())
            .await?
            .iter()
            .filter(|s| peer.as_deref().is_none_or(|p| p == s.peer))
            .filter(|s| resource.as_deref().is_none_or(|r| r == s.resource))
            .map(|s| s.pending)
            .sum();
        let bar = ProgressBar::new(owed.max(0) as u64).with_style(style(
            "push  {bar:30} {pos}/{len} entries  {msg}  {per_sec}",
        ));
        // By hand means now: what waits out a backoff goes too.
        let mut action = wiring.dispatch_action(&pool, settings)?.ignoring_backoff();
        if let Some(p) = &peer {
            action = action.only_peer(p.clone());
        }
        if let Some(r) = &resource {
            action = action.only_resource(r.clone());
        }
        let owner = format!("cli:{}", std::process::id());
        let (mut delivered, mut dead, mut retried, mut batches) = (0, 0, 0, 0);
        loop {
            let pass = action.run(owner.clone()).await?;
            delivered += pass.delivered;
            dead += pass.dead;
            retried += pass.retried;
            batches += pass.batches;
            bar.inc((pass.delivered + pass.dead) as u64);
            bar.set_message(format!("{batches} batches"));
            if pass.claimed == 0 || pass.delivered + pass.dead == 0 {
                break;
            }
        }
        bar.finish();
        output(&format!(
            "push: {delivered} delivered, {dead} dead-lettered, {retried} to retry later, {batches} batch(es)"
        ));
        if retried > 0 {
            failures.push(format!(
                "{retried} entries could not be delivered now (see `regionsync outbox list`)"
            ));
        }
    }

    if pull {
        let peers = wiring
            .peers_to_pull(settings, peer.clone())
            .await
            .context("cannot list the peers")?;
        let names: Vec<String> = wiring
            .registry
            .names()
            .filter(|n| resource.as_deref().is_none_or(|only| only == *n))
            .map(str::to_string)
            .collect();
        let bar = ProgressBar::new((peers.len() * names.len()) as u64)
            .with_style(style("pull  {bar:30} {pos}/{len} feeds  {msg}"));
        let action = wiring.pull_action(&pool, settings)?;
        let (mut applied, mut pages) = (0, 0);
        for p in &peers {
            for name in &names {
                bar.set_message(format!("{p}/{name}"));
                let input = PullChangesInput {
                    peer: p.clone(),
                    resource: name.clone(),
                    page_limit: settings.sync.pull_page_limit,
                    max_pages: u32::MAX,
                    run_for: None,
                };
                match action.run(input).await {
                    Ok(s) => {
                        applied += s.applied;
                        pages += s.pages;
                    }
                    Err(e) => failures.push(format!("pull {p}/{name}: {e}")),
                }
                bar.inc(1);
            }
        }
        bar.finish_with_message("done");
        output(&format!(
            "pull: {applied} applied from {} feed(s), {pages} page(s)",
            peers.len() * names.len()
        ));
    }

    output(&format!("took {:.1}s", started.elapsed().as_secs_f64()));
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("regionsync: {f}");
        }
        anyhow::bail!("{} part(s) of the sync failed", failures.len());
    }
    Ok(())
}

/// `regionsync sync bootstrap --peer P [--resource R]`: one page at a time, so the bar moves
/// with each applied page and an interrupted run resumes from the last one.
pub async fn bootstrap(
    settings: &Settings,
    peer: &str,
    resource: Option<String>,
    page_limit: u32,
) -> anyhow::Result<()> {
    let (pool, wiring) = startup::prepare(settings, StartOptions { migrate: false }).await?;
    let names = crate::cli::resource_names(&wiring, resource)?;
    let action = wiring.bootstrap_action(&pool, settings)?;
    for name in names {
        let started = Instant::now();
        let bar = ProgressBar::new_spinner().with_style(style(
            "bootstrap {prefix}  {spinner} {pos} rows  {per_sec}  {elapsed}  {msg}",
        ));
        bar.set_prefix(format!("{peer}/{name}"));
        let (mut applied, mut stale, mut duplicate, mut parked) = (0, 0, 0, 0);
        loop {
            let step = action
                .run(BootstrapInput {
                    peer: peer.to_string(),
                    resource: name.clone(),
                    page_limit,
                    max_pages: 1,
                    auto: false,
                })
                .await
                .with_context(|| {
                    format!("bootstrap of {name} from {peer} stopped (run it again to resume)")
                })?;
            if let Some(total) = step.total_rows {
                // The first page said how many rows there are: a bar with an ETA (rows written
                // meanwhile may take it a little past the end).
                bar.set_style(style(
                    "bootstrap {prefix}  {wide_bar} {pos}/{len} rows  {per_sec}  ETA {eta}  {msg}",
                ));
                bar.set_length(total.max(0) as u64);
            }
            bar.set_position(step.rows.max(0) as u64);
            applied += step.applied;
            stale += step.stale;
            duplicate += step.duplicate;
            parked += step.parked;
            if step.done {
                break;
            }
        }
        bar.finish_and_clear();
        output(&format!(
            "bootstrapped {peer}/{name}: {applied} applied, {stale} stale, {duplicate} duplicate, {parked} parked in {:.1}s; \
             pulling its feed from the snapshot's watermark from now on",
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// `regionsync sync parked list [--limit N] | release`.
pub async fn parked(settings: &Settings, command: crate::cli::ParkedCommand) -> anyhow::Result<()> {
    use crate::cli::ParkedCommand;
    use sync::actions::{ListParkedAction, ReleaseParkedAction};
    let (pool, wiring) = startup::prepare(settings, StartOptions { migrate: false }).await?;
    match command {
        ParkedCommand::List { limit } => {
            let view = ListParkedAction::new(pool).run(limit).await?;
            if view.counts.is_empty() {
                output("no parked ops");
            }
            for c in &view.counts {
                output(&format!(
                    "{}: {} parked op(s), oldest since {}",
                    c.resource,
                    c.count,
                    c.oldest.format("%Y-%m-%d %H:%M:%S")
                ));
            }
            for p in view.oldest {
                output(&format!(
                    "{}/{}  {} hlc {} from {}  waits for {}/{}  since {}",
                    p.resource,
                    p.entity_id,
                    p.op,
                    p.hlc,
                    p.origin_region,
                    p.waits_resource,
                    p.waits_id,
                    p.parked_at.format("%Y-%m-%d %H:%M:%S")
                ));
            }
        }
        ParkedCommand::Release => {
            let released = ReleaseParkedAction::new(pool, wiring.registry.clone())
                .run(())
                .await?;
            output(&format!("{released} parked op(s) released"));
        }
    }
    Ok(())
}

/// `regionsync sync quarantine list | retry ID|--all | discard ID`.
pub async fn quarantine(
    settings: &Settings,
    command: crate::cli::QuarantineCommand,
) -> anyhow::Result<()> {
    use crate::cli::QuarantineCommand;
    use sync::actions::{DiscardQuarantineAction, ListQuarantineAction, RetryQuarantineAction};
    let (pool, wiring) = startup::prepare(settings, StartOptions { migrate: false }).await?;
    match command {
        QuarantineCommand::List => {
            let parked = ListQuarantineAction::new(pool).run(()).await?;
            if parked.is_empty() {
                output("no quarantined entries");
            }
            for q in parked {
                output(&format!(
                    "{:>6}  {}/{}  seq {}  {}  {}  {}",
                    q.id,
                    q.peer,
                    q.resource,
                    q.seq,
                    q.entity_id,
                    q.created_at.format("%Y-%m-%d %H:%M:%S"),
                    q.reason
                ));
            }
        }
        QuarantineCommand::Retry { id, all } => {
            let action = RetryQuarantineAction::new(
                pool,
                wiring.registry.clone(),
                std::sync::Arc::clone(&wiring.clock),
                settings.region_id.clone(),
            );
            let done = action.run(if all { None } else { id }).await?;
            output(&format!(
                "{} applied, {} still refused (see `regionsync sync quarantine list`)",
                done.applied, done.still_refused
            ));
            if done.still_refused > 0 {
                anyhow::bail!(
                    "{} quarantined entr{} still refused",
                    done.still_refused,
                    if done.still_refused == 1 {
                        "y is"
                    } else {
                        "ies are"
                    }
                );
            }
        }
        QuarantineCommand::Discard { id } => {
            let gone = DiscardQuarantineAction::new(pool).run(id).await?;
            if gone == 0 {
                anyhow::bail!("no quarantined entry {id}");
            }
            output(&format!("discarded quarantined entry {id}"));
        }
    }
    Ok(())
}

/// `regionsync sync verify --peer P [--resource R]`: exit 1 when any row differs.
pub async fn verify(
    settings: &Settings,
    peer: &str,
    resource: Option<String>,
) -> anyhow::Result<()> {
    let (pool, wiring) = startup::prepare(settings, StartOptions { migrate: false }).await?;
    let names = crate::cli::resource_names(&wiring, resource)?;
    let action = wiring.verify_action(&pool, settings)?;
    let version = |v: &Option<(i64, String)>| {
        v.as_ref().map_or_else(
            || "absent".to_string(),
            |(hlc, origin)| format!("{hlc}.{origin}"),
        )
    };
    let mut differing = 0;
    for name in names {
        let s = action
            .run(sync::actions::VerifyInput {
                peer: peer.to_string(),
                resource: name.clone(),
            })
            .await
            .with_context(|| format!("verify of {name} against {peer} failed"))?;
        output(&format!(
            "{name}: {} rows here, {} at {peer}; {} differ ({} request(s), {} bytes from {peer})",
            s.rows_local,
            s.rows_remote,
            s.differing.len(),
            s.requests,
            s.bytes
        ));
        for d in &s.differing {
            output(&format!(
                "  {}  here {}  {peer} {}",
                d.entity_id,
                version(&d.local),
                version(&d.remote)
            ));
        }
        differing += s.differing.len();
    }
    if differing > 0 {
        anyhow::bail!("{differing} row(s) differ from {peer}");
    }
    Ok(())
}

/// `regionsync sync repair --peer P [--resource R] [--prefer peer|local]`.
pub async fn repair(
    settings: &Settings,
    peer: &str,
    resource: Option<String>,
    prefer: crate::cli::PreferArg,
) -> anyhow::Result<()> {
    let (pool, wiring) = startup::prepare(settings, StartOptions { migrate: false }).await?;
    let names = crate::cli::resource_names(&wiring, resource)?;
    let verify = wiring.verify_action(&pool, settings)?;
    let repair = wiring.repair_action(&pool, settings)?;
    let prefer = match prefer {
        crate::cli::PreferArg::Peer => sync::actions::Prefer::Peer,
        crate::cli::PreferArg::Local => sync::actions::Prefer::Local,
    };
    for name in names {
        let found = verify
            .run(sync::actions::VerifyInput {
                peer: peer.to_string(),
                resource: name.clone(),
            })
            .await?;
        let done = repair
            .run(sync::actions::RepairInput {
                peer: peer.to_string(),
                resource: name.clone(),
                differing: found.differing,
                prefer,
            })
            .await?;
        let again = if done.changed > 0 {
            ": repair again"
        } else {
            ""
        };
        output(&format!(
            "{name}: took {} newer row(s) from {peer}, sent {} newer row(s) to {peer}, re-asserted {} row(s) as new writes here (sent to {peer} too); {} row(s) written since the verify left alone{again}",
            done.taken, done.sent, done.reasserted, done.changed
        ));
    }
    Ok(())
}
