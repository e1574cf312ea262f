//! `regionsync broker …`: the operator's side of the broker role. Each command calls one
//! broker action on this region's database; all of them need `broker.enabled = true`.

use anyhow::Context;
use std::sync::Arc;

use broker::actions::{
    Caller, ListRegionsAction, PlaceTenantAction, PlaceTenantInput, PublicKeysAction,
    RegisterRegionAction, RegisterRegionInput, RemoveRegionAction, ResolveAction, ResolveInput,
    RotateCredentialAction,
};
use broker::base_url;
use ship::parents::Action;

use crate::cli::{output, BrokerCommand, RegionsCommand, TenantsCommand};
use crate::settings::Settings;
use crate::startup::{self, StartOptions};

pub async fn run(settings: &Settings, command: BrokerCommand) -> anyhow::Result<()> {
    if let BrokerCommand::Keys {
        key_file: Some(path),
    } = &command
    {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let key = ship::auth::SigningKey::from_pem(&text)
            .with_context(|| format!("{} is not an Ed25519 PKCS#8 key", path.display()))?;
        output(&serde_json::to_string(key.public_jwk()).context("a key as JSON")?);
        return Ok(());
    }
    if !settings.broker.enabled {
        anyhow::bail!(
            "this region does not run the broker role (broker.enabled = false); run the command \
             on the broker region ({})",
            settings
                .broker
                .url
                .as_deref()
                .unwrap_or("broker.url is not set")
        );
    }
    let (pool, wiring) = startup::prepare(settings, StartOptions::default()).await?;
    let offline_after = settings.broker.offline_after_secs;
    match command {
        BrokerCommand::Regions {
            command:
                RegionsCommand::Add {
                    id,
                    base_url,
                    scope,
                    allow_private,
                },
        } => {
            let added = RegisterRegionAction::new(pool, offline_after)
                .allowing_private(allow_private)
                .run(RegisterRegionInput {
                    id,
                    base_url,
                    scopes: scope,
                })
                .await?;
            output(&format!(
                "registered region {} at {} (scope: {})",
                added.region.id,
                base_url::for_display(&added.region.base_url),
                added.region.scopes
            ));
            output("its credential, shown this once (set it as broker.credential there):");
            output(&added.credential);
        }
        BrokerCommand::Regions {
            command: RegionsCommand::List,
        } => {
            let regions = ListRegionsAction::new(pool, offline_after).run(()).await?;
            output(&format!(
                "{:<24} {:<8} {:<32} {:<20} BASE URL",
                "REGION", "STATUS", "LAST HEARTBEAT", "SCOPE"
            ));
            // Every field shown as one safe line, also for rows stored before the URL rule
            // (a password in the URL is hidden, a newline escaped).
            for r in regions {
                output(&format!(
                    "{:<24} {:<8} {:<32} {:<20} {}",
                    r.id,
                    r.status,
                    r.last_heartbeat_at.as_deref().unwrap_or("never"),
                    base_url::for_display(&r.scopes),
                    base_url::for_display(&r.base_url)
                ));
            }
        }
        BrokerCommand::Regions {
            command: RegionsCommand::Remove { id },
        } => {
            RemoveRegionAction::new(pool).run(id.clone()).await?;
            output(&format!("removed region {id}"));
        }
        BrokerCommand::Regions {
            command: RegionsCommand::RotateCredential { id },
        } => {
            let credential = RotateCredentialAction::new(pool).run(id.clone()).await?;
            output(&format!(
                "new credential for region {id}, shown this once (the old one no longer works):"
            ));
            output(&credential);
        }
        BrokerCommand::Tenants {
            command: TenantsCommand::Place { tenant, region },
        } => {
            let placed = PlaceTenantAction::new(pool)
                .run(PlaceTenantInput {
                    tenant_id: tenant,
                    region,
                })
                .await?;
            output(&format!(
                "tenant {} → {} (epoch {}){}",
                placed.tenant_id,
                placed.home_region,
                placed.epoch,
                if placed.changed { "" } else { ", unchanged" }
            ));
        }
        BrokerCommand::Keys { .. } => {
            let keys = PublicKeysAction::new(Arc::clone(
                wiring
                    .broker
                    .keys
                    .as_ref()
                    .context("the broker role is not wired")?,
            ))
            .run(())
            .await?;
            for key in keys {
                output(&serde_json::to_string(&key).context("a key as JSON")?);
            }
        }
        BrokerCommand::Token { target, as_region } => {
            let resolve: &ResolveAction = wiring
                .broker
                .resolve
                .as_deref()
                .context("the broker role is not wired")?;
            let out = resolve
                .run(ResolveInput {
                    caller: match as_region {
                        Some(other) => Caller::Region(other),
                        None => Caller::Local(settings.region_id.clone()),
                    },
                    tenant_id: None,
                    target_region: Some(target),
                })
                .await?;
            for r in out.regions {
                output(&r.token);
            }
        }
    }
    Ok(())
}
