//! `azdock account …`: the subscriptions the login can use.

use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{AccountCommand, GlobalArgs};
use crate::config::Config;
use crate::output::Columns;
use crate::session;

const COLUMNS: Columns = &[
    ("Name", "/name"),
    ("Subscription Id", "/id"),
    ("Tenant Id", "/tenantId"),
    ("State", "/state"),
    ("Is Default", "/isDefault"),
];

/// az's account shape: name, id, tenantId, state, isDefault, cloudName.
fn account(sub: &Value, default: Option<&str>, cloud: &str) -> Value {
    let id = sub["subscriptionId"].as_str().unwrap_or_default();
    json!({"name": sub["displayName"], "id": id, "tenantId": sub["tenantId"], "state": sub["state"], "isDefault": Some(id) == default, "cloudName": cloud})
}

pub(crate) fn run(ctx: &Ctx, global: &GlobalArgs, config: &Config, command: &AccountCommand) -> anyhow::Result<()> {
    if let AccountCommand::ListLocations = command {
        let regions = session::block_on(async {
            let s = session::session(global, config).await?;
            anyhow::Ok(azdock_azure_sm::locations::list(&s.arm, &s.subscription).await?)
        })?;
        let value: Vec<Value> =
            regions.iter().map(|r| json!({"name": r.name, "displayName": r.display_name})).collect();
        return ctx.print(&Value::Array(value), &[("Name", "/name"), ("DisplayName", "/displayName")]);
    }
    let value = session::block_on(async {
        match command {
            AccountCommand::List => {
                let arm = session::arm(global, config).await?;
                let default = global.subscription.clone().or_else(|| config.defaults.subscription.clone());
                let subs = session::subscriptions(&arm).await?;
                let only = (subs.len() == 1).then(|| subs[0]["subscriptionId"].as_str().unwrap_or_default().to_owned());
                let default = default.or(only);
                Ok(Value::Array(subs.iter().map(|s| account(s, default.as_deref(), &arm.cloud().name)).collect()))
            }
            AccountCommand::Set { subscription } => {
                let arm = session::arm(global, config).await?;
                let subs = session::subscriptions(&arm).await?;
                if !subs
                    .iter()
                    .any(|s| s["subscriptionId"].as_str().is_some_and(|id| id.eq_ignore_ascii_case(subscription)))
                {
                    let ids: Vec<&str> = subs.iter().filter_map(|s| s["subscriptionId"].as_str()).collect();
                    return Err(crate::error::Usage::new(format!(
                        "subscription `{subscription}` is not visible to this login; it sees: {}",
                        ids.join(", ")
                    ))
                    .into());
                }
                crate::config::set_default("subscription", subscription)?;
                Ok(Value::Null)
            }
            AccountCommand::ListLocations => unreachable!("answered above"),
            AccountCommand::Show => {
                let s = session::session(global, config).await?;
                let sub = s
                    .arm
                    .get(&format!("/subscriptions/{}?api-version={}", s.subscription, session::RESOURCES_API))
                    .await?;
                Ok(account(&sub, Some(&s.subscription), &s.arm.cloud().name))
            }
        }
    })?;
    if value.is_null() {
        return Ok(());
    }
    ctx.print(&value, COLUMNS)
}
