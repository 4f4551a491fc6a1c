//! `azdock account …`: the subscriptions the login can use.

use azdock_azure_sm::credential::stored::StoredLogin;
use azdock_azure_sm::{Arm, RetryPolicy};
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

/// The subscriptions a person sees in the tenants other than those of `seen`, each through a
/// token for that tenant from the same refresh token; a tenant that refuses is warned about.
async fn other_tenants(ctx: &Ctx, arm: &Arm, login: &StoredLogin, seen: &[Value]) -> anyhow::Result<Vec<Value>> {
    let StoredLogin::User { client_id, refresh_token, .. } = login else { return Ok(Vec::new()) };
    let tenants = arm.get(&format!("/tenants?api-version={}", session::RESOURCES_API)).await?;
    let mut found = Vec::new();
    for tenant in tenants["value"].as_array().into_iter().flatten().filter_map(|t| t["tenantId"].as_str()) {
        if seen.iter().any(|s| s["tenantId"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(tenant))) {
            continue;
        }
        let there = StoredLogin::User {
            tenant: tenant.to_owned(),
            client_id: client_id.clone(),
            refresh_token: refresh_token.clone(),
        };
        let other =
            Arm::new(arm.cloud().clone(), there.credential(&arm.cloud().authority_host)?, RetryPolicy::from_env())?;
        match session::subscriptions(&other).await {
            Ok(subs) => found.extend(subs),
            Err(e) => ctx.warn(&format!("cannot list the subscriptions of tenant {tenant}: {e:#}")),
        }
    }
    Ok(found)
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
                let mut subs = session::subscriptions(&arm).await?;
                // A person may belong to several tenants: each one's subscriptions, as az lists them.
                let cloud = session::working_cloud(global, config);
                if let Some(login @ StoredLogin::User { .. }) = crate::commands::login::stored(&cloud)? {
                    subs.extend(other_tenants(ctx, &arm, &login, &subs).await?);
                }
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
