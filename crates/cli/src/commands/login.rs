//! `azdock login` / `logout`: a service principal's sign-in, checked against the cloud and kept
//! in `credentials.json` (0600) in the config directory — never in the config file.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use azdock_core::Secret;
use serde_json::{Value, json};

use super::{Ctx, interactive};
use crate::cli::{GlobalArgs, LoginArgs};
use crate::config::Config;
use crate::error::Usage;
use crate::session;

/// A stored sign-in for one cloud.
#[derive(Debug, Clone)]
pub(crate) enum StoredLogin {
    /// A service principal with a client secret.
    Secret { tenant: String, client_id: String, secret: Secret<String> },
    /// A service principal with a certificate (the PEM or PFX file's path, and a PFX's password).
    Certificate { tenant: String, client_id: String, path: PathBuf, password: Option<Secret<String>> },
    /// The Azure CLI's sign-in, optionally in one tenant.
    AzureCli { tenant: Option<String> },
    /// The machine's managed identity (a user-assigned one by its client id).
    ManagedIdentity { client_id: Option<String> },
}

impl StoredLogin {
    /// The credential for this sign-in against `authority_host`.
    pub(crate) fn credential(
        &self,
        authority_host: &str,
    ) -> anyhow::Result<std::sync::Arc<dyn azdock_azure_sm::Credential>> {
        Ok(match self {
            StoredLogin::Secret { tenant, client_id, secret } => std::sync::Arc::new(
                azdock_azure_sm::ClientSecretCredential::new(authority_host, tenant, client_id, secret.clone()),
            ),
            StoredLogin::Certificate { tenant, client_id, path, password } => {
                std::sync::Arc::new(azdock_azure_sm::ClientCertificateCredential::from_file(
                    authority_host,
                    tenant,
                    client_id,
                    path,
                    password.as_ref(),
                )?)
            }
            StoredLogin::ManagedIdentity { client_id } => {
                std::sync::Arc::new(azdock_azure_sm::ManagedIdentityCredential::from_env(client_id.as_deref()))
            }
            StoredLogin::AzureCli { tenant } => {
                std::sync::Arc::new(azdock_azure_sm::AzureCliCredential::new("az", tenant.as_deref()))
            }
        })
    }
}

fn path() -> anyhow::Result<PathBuf> {
    Ok(crate::config::config_dir()?.join("credentials.json"))
}

/// Every stored sign-in. A file that is not a JSON object is refused, never taken for empty:
/// the next login would overwrite it and drop the other clouds' sign-ins.
fn read_all() -> anyhow::Result<serde_json::Map<String, Value>> {
    let path = path()?;
    match std::fs::read(&path) {
        Ok(data) => match serde_json::from_slice::<Value>(&data) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(corrupt(&path, "it is not a JSON object")),
            Err(e) => Err(corrupt(&path, &format!("it is not valid JSON ({e})"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::Map::new()),
        Err(e) => Err(e).context("cannot read the stored credentials"),
    }
}

fn corrupt(path: &std::path::Path, why: &str) -> anyhow::Error {
    crate::error::Usage::new(format!(
        "cannot read the stored sign-ins in `{}`: {why}; repair it, or move it away and sign in again with `azdock login`",
        path.display()
    ))
    .into()
}

fn write_all(map: &serde_json::Map<String, Value>) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = path()?;
    let dir = path.parent().context("no config directory")?;
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write `{}`", tmp.display()))?;
    file.write_all(&serde_json::to_vec_pretty(&Value::Object(map.clone()))?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write `{}`", path.display()))
}

/// The stored sign-in for a cloud, if any.
pub(crate) fn stored(cloud: &str) -> anyhow::Result<Option<StoredLogin>> {
    let all = read_all()?;
    let Some(entry) = all.get(&cloud.to_ascii_lowercase()) else { return Ok(None) };
    let text = |k: &str| {
        entry[k]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the stored credentials lack `{k}`; run `azdock login` again"))
    };
    if entry["kind"] == "azureCli" {
        return Ok(Some(StoredLogin::AzureCli { tenant: entry["tenantId"].as_str().map(str::to_owned) }));
    }
    if entry["kind"] == "managedIdentity" {
        return Ok(Some(StoredLogin::ManagedIdentity { client_id: entry["clientId"].as_str().map(str::to_owned) }));
    }
    if entry["kind"] == "clientCertificate" {
        return Ok(Some(StoredLogin::Certificate {
            tenant: text("tenantId")?,
            client_id: text("clientId")?,
            path: PathBuf::from(text("certificatePath")?),
            password: entry["certificatePassword"].as_str().map(|p| Secret::new(p.to_owned())),
        }));
    }
    Ok(Some(StoredLogin::Secret {
        tenant: text("tenantId")?,
        client_id: text("clientId")?,
        secret: Secret::new(text("clientSecret")?),
    }))
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

pub(crate) fn login(ctx: &Ctx, global: &GlobalArgs, config: &Config, args: &LoginArgs) -> anyhow::Result<()> {
    let login = if args.use_az_cli {
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
            None => StoredLogin::Secret { tenant, client_id, secret: read_secret(args, ctx)? },
        }
    };
    let cloud = session::cloud_name(global, config);
    // Sign in and list subscriptions before storing anything: a wrong secret stores nothing.
    let accounts = session::block_on(async {
        let arm = session::arm_with(global, config, Some(login.clone())).await?;
        let subs = session::subscriptions(&arm).await?;
        anyhow::Ok(subs.iter().map(|s| json!({"name": s["displayName"], "id": s["subscriptionId"], "tenantId": s["tenantId"], "state": s["state"], "cloudName": arm.cloud().name})).collect::<Vec<_>>())
    })?;
    let mut all = read_all()?;
    let entry = match &login {
        StoredLogin::Secret { tenant, client_id, secret } => {
            json!({"kind": "clientSecret", "tenantId": tenant, "clientId": client_id, "clientSecret": secret.expose()})
        }
        StoredLogin::Certificate { tenant, client_id, path, password } => {
            let mut entry = json!({"kind": "clientCertificate", "tenantId": tenant, "clientId": client_id, "certificatePath": path});
            if let Some(p) = password {
                entry["certificatePassword"] = json!(p.expose());
            }
            entry
        }
        StoredLogin::AzureCli { tenant } => json!({"kind": "azureCli", "tenantId": tenant}),
        StoredLogin::ManagedIdentity { client_id } => json!({"kind": "managedIdentity", "clientId": client_id}),
    };
    all.insert(cloud.to_ascii_lowercase(), entry);
    write_all(&all)?;
    ctx.print(
        &Value::Array(accounts),
        &[("Name", "/name"), ("Subscription Id", "/id"), ("Tenant Id", "/tenantId"), ("State", "/state")],
    )
}

pub(crate) fn logout(ctx: &Ctx, global: &GlobalArgs, config: &Config) -> anyhow::Result<()> {
    let cloud = session::cloud_name(global, config);
    let mut all = read_all()?;
    if all.remove(&cloud.to_ascii_lowercase()).is_none() {
        ctx.warn(&format!("no stored sign-in for {cloud}"));
        return Ok(());
    }
    write_all(&all)
}
