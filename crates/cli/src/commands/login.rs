//! `azdock login` / `logout`: a service principal's sign-in, checked against the cloud and kept
//! in `credentials.json` (0600) in the config directory — never in the config file.

use std::io::BufRead as _;
use std::path::PathBuf;

use anyhow::Context as _;
use azdock_core::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Ctx, interactive};
use crate::cli::{GlobalArgs, LoginArgs};
use crate::config::Config;
use crate::error::Usage;
use crate::session;

/// A stored sign-in for one cloud, as `credentials.json` keeps it: tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub(crate) enum StoredLogin {
    /// A service principal with a client secret.
    #[serde(rename = "clientSecret")]
    Secret {
        #[serde(rename = "tenantId")]
        tenant: String,
        client_id: String,
        #[serde(rename = "clientSecret", serialize_with = "azdock_core::secret::expose")]
        secret: Secret<String>,
    },
    /// A service principal with a certificate (the PEM or PFX file's path, and a PFX's password).
    #[serde(rename = "clientCertificate")]
    Certificate {
        #[serde(rename = "tenantId")]
        tenant: String,
        client_id: String,
        #[serde(rename = "certificatePath")]
        path: PathBuf,
        #[serde(
            rename = "certificatePassword",
            default,
            serialize_with = "azdock_core::secret::expose_option",
            skip_serializing_if = "Option::is_none"
        )]
        password: Option<Secret<String>>,
    },
    /// The Azure CLI's sign-in, optionally in one tenant.
    AzureCli {
        #[serde(rename = "tenantId", default)]
        tenant: Option<String>,
    },
    /// The machine's managed identity (a user-assigned one by its client id).
    ManagedIdentity {
        #[serde(default)]
        client_id: Option<String>,
    },
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

/// Every stored sign-in, by lower-cased cloud name. A file that is not a JSON object is
/// refused, never taken for empty: the next login would overwrite it and drop the other
/// clouds' sign-ins.
fn parse_all(path: &std::path::Path, data: &[u8]) -> anyhow::Result<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(corrupt(path, "it is not a JSON object")),
        Err(e) => Err(corrupt(path, &format!("it is not valid JSON ({e})"))),
    }
}

fn corrupt(path: &std::path::Path, why: &str) -> anyhow::Error {
    crate::error::Usage::new(format!(
        "cannot read the stored sign-ins in `{}`: {why}; repair it, or move it away and sign in again with `azdock login`",
        path.display()
    ))
    .into()
}

/// Sets (or with `None` removes) the sign-in of `cloud` under the file's lock, so two logins at
/// once both land; returns whether there was one before.
fn change(cloud: &str, login: Option<&StoredLogin>) -> anyhow::Result<bool> {
    let path = path()?;
    let mut had = false;
    azdock_files::update(&path, 0o600, |old| -> anyhow::Result<Option<Vec<u8>>> {
        let mut all = match old {
            Some(data) => parse_all(&path, &data)?,
            None => serde_json::Map::new(),
        };
        let key = cloud.to_ascii_lowercase();
        had = match login {
            Some(login) => all.insert(key, serde_json::to_value(login)?).is_some(),
            None => all.remove(&key).is_some(),
        };
        if login.is_none() && !had {
            return Ok(None);
        }
        Ok(Some(serde_json::to_vec_pretty(&Value::Object(all))?))
    })
    .with_context(|| format!("cannot store the sign-in in `{}`", path.display()))?;
    Ok(had)
}

/// The stored sign-in for a cloud, if any. Entries written before sign-ins were tagged have no
/// `kind`: those are client secrets.
pub(crate) fn stored(cloud: &str) -> anyhow::Result<Option<StoredLogin>> {
    let path = path()?;
    let all = match std::fs::read(&path) {
        Ok(data) => parse_all(&path, &data)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("cannot read the stored credentials"),
    };
    let Some(entry) = all.get(&cloud.to_ascii_lowercase()) else { return Ok(None) };
    let mut entry = entry.clone();
    if let Some(map) = entry.as_object_mut() {
        map.entry("kind").or_insert_with(|| json!("clientSecret"));
    }
    serde_json::from_value(entry).map(Some).map_err(|e| {
        corrupt(&path, &format!("the sign-in for {cloud} is not readable ({e}); run `azdock login` again"))
    })
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
    change(&cloud, Some(&login))?;
    ctx.print(
        &Value::Array(accounts),
        &[("Name", "/name"), ("Subscription Id", "/id"), ("Tenant Id", "/tenantId"), ("State", "/state")],
    )
}

pub(crate) fn logout(ctx: &Ctx, global: &GlobalArgs, config: &Config) -> anyhow::Result<()> {
    let cloud = session::cloud_name(global, config);
    if !change(&cloud, None)? {
        ctx.warn(&format!("no stored sign-in for {cloud}"));
    }
    Ok(())
}
