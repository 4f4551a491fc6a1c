//! `azdock login` / `logout`: a service principal's sign-in, checked against the cloud and kept
//! in `credentials.json` (0600) in the config directory — never in the config file.

use std::io::BufRead as _;
use std::sync::Arc;

use anyhow::Context as _;
use azdock_azure_sm::credential::stored::{LoginStore, StoredLogin};
use azdock_core::Secret;
use serde_json::{Value, json};

use super::{Ctx, interactive};
use crate::cli::{GlobalArgs, LoginArgs};
use crate::config::Config;
use crate::error::Usage;
use crate::session;

/// The stored sign-ins, in the config directory.
pub(crate) fn store() -> anyhow::Result<LoginStore> {
    Ok(LoginStore::new(crate::config::config_dir()?.join("credentials.json")))
}

/// The stored sign-in for a cloud, if any.
pub(crate) fn stored(cloud: &str) -> anyhow::Result<Option<StoredLogin>> {
    Ok(store()?.get(cloud)?)
}

fn read_secret(args: &LoginArgs, ctx: &Ctx) -> anyhow::Result<Secret<String>> {
    if let Some(p) = &args.password {
        ctx.warn("a secret on the command line is visible to other users of this machine and stays in shell history; prefer `--password-stdin`");
        return Ok(Secret::new(p.clone()));
    }
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the secret from standard input")?;
        let secret = line.trim_end_matches(['\r', '\n']).to_owned();
        if secret.is_empty() {
            return Err(Usage::new("`--password-stdin` read an empty secret").into());
        }
        return Ok(Secret::new(secret));
    }
    if interactive() {
        return Ok(Secret::new(rpassword::prompt_password("Client secret: ").context("cannot read the secret")?));
    }
    Err(Usage::new("no client secret: pass `--password-stdin` (or run on a terminal to be asked)").into())
}

/// A person's sign-in with a device code: the code and where to enter it go to stderr (always:
/// without them nobody can sign in), then Entra is polled until the person has entered it.
fn device_code_login(global: &GlobalArgs, config: &Config, args: &LoginArgs) -> anyhow::Result<StoredLogin> {
    use azdock_azure_sm::credential::{PUBLIC_CLIENT_ID, start_device_code, wait_for_person};
    let tenant = args.tenant.clone().unwrap_or_else(|| "organizations".into());
    let name = session::cloud_name(global, config);
    session::block_on(async {
        let (cloud, _) = session::cloud_of(&name).await?;
        let http = cloud.http_client(std::time::Duration::from_secs(30))?;
        let code = start_device_code(&http, &cloud.authority_host, &tenant, PUBLIC_CLIENT_ID, &cloud.scope()).await?;
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{}", code.message);
        }
        let tokens = wait_for_person(&http, &cloud.authority_host, &tenant, PUBLIC_CLIENT_ID, &code).await?;
        anyhow::Ok(StoredLogin::User {
            tenant,
            client_id: PUBLIC_CLIENT_ID.into(),
            refresh_token: Arc::new(tokens.refresh),
        })
    })
}

pub(crate) fn login(ctx: &Ctx, global: &GlobalArgs, config: &Config, args: &LoginArgs) -> anyhow::Result<()> {
    let other_way = args.service_principal
        || args.use_az_cli
        || args.identity
        || args.client_id.is_some()
        || args.certificate.is_some()
        || args.password.is_some()
        || args.password_stdin;
    let login = if args.use_device_code || !other_way {
        device_code_login(global, config, args)?
    } else if args.use_az_cli {
        StoredLogin::AzureCli { tenant: args.tenant.clone() }
    } else if args.identity {
        StoredLogin::ManagedIdentity { client_id: args.client_id.clone() }
    } else {
        let (Some(tenant), Some(client_id)) = (args.tenant.clone(), args.client_id.clone()) else {
            return Err(Usage::new("`--service-principal` needs `--username` (the client id) and `--tenant`").into());
        };
        match &args.certificate {
            Some(path) => {
                let path = std::path::absolute(path)
                    .with_context(|| format!("invalid certificate path `{}`", path.display()))?;
                let data = std::fs::read(&path)
                    .map_err(|e| Usage::new(format!("cannot read the certificate `{}`: {e}", path.display())))?;
                let pem = data.windows(11).any(|w| w == b"-----BEGIN ");
                // A PFX is encrypted: its password comes like a secret, or is empty.
                let asked = args.password.is_some() || args.password_stdin;
                if pem && asked {
                    return Err(Usage::new(
                        "a PEM certificate takes no password; `-p`/`--password-stdin` are for a PFX",
                    )
                    .into());
                }
                let password = if pem || !asked { None } else { Some(read_secret(args, ctx)?) };
                StoredLogin::Certificate { tenant, client_id, path, password }
            }
            None => StoredLogin::Secret { tenant, client_id, secret: Arc::new(read_secret(args, ctx)?) },
        }
    };
    let cloud = session::cloud_name(global, config);
    // Sign in and list subscriptions before storing anything: a wrong secret stores nothing.
    let (accounts, identity, chosen) = session::block_on(async {
        let (arm, identity) = session::arm_with(global, config, Some(&login)).await?;
        let subs = session::subscriptions(&arm).await?;
        // The subscription commands will work in: `--subscription` if the login sees it, else
        // the only one; with several and none chosen, commands ask for `--subscription`.
        let chosen = match &global.subscription {
            Some(id)
                if subs.iter().any(|s| s["subscriptionId"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(id))) =>
            {
                Some(id.clone())
            }
            Some(id) => {
                return Err(Usage::new(format!(
                    "the login cannot see subscription `{id}`; it sees {}",
                    subs.iter().filter_map(|s| s["subscriptionId"].as_str()).collect::<Vec<_>>().join(", ")
                ))
                .into());
            }
            None => session::only_subscription(&subs).ok(),
        };
        let accounts = subs.iter().map(|s| json!({"name": s["displayName"], "id": s["subscriptionId"], "tenantId": s["tenantId"], "state": s["state"], "cloudName": arm.cloud().name, "isDefault": chosen.as_deref() == s["subscriptionId"].as_str()})).collect::<Vec<_>>();
        anyhow::Ok((accounts, identity, chosen))
    })?;
    store()?.change(&cloud, Some(&login))?;
    // A new sign-in starts from a clean slate: the cloud's old tokens and subscription go.
    let tokens = session::token_file()?;
    tokens.clear(&session::cloud_prefix(&cloud), identity.as_deref());
    if let (Some(identity), Some(chosen)) = (identity, chosen) {
        tokens.remember_subscription(&identity, &chosen);
    }
    ctx.print(
        &Value::Array(accounts),
        &[("Name", "/name"), ("Subscription Id", "/id"), ("Tenant Id", "/tenantId"), ("State", "/state")],
    )
}

pub(crate) fn logout(ctx: &Ctx, global: &GlobalArgs, config: &Config) -> anyhow::Result<()> {
    let cloud = session::cloud_name(global, config);
    if !store()?.change(&cloud, None)? {
        ctx.warn(&format!("no stored sign-in for {cloud}"));
    }
    session::token_file()?.clear(&session::cloud_prefix(&cloud), None);
    Ok(())
}
