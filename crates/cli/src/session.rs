//! A session with a cloud: which cloud, which credential, which subscription — resolved from
//! flags, the environment and the config file, in the order az users expect.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use azdock_azure_sm::credential::stored::StoredLogin;
use azdock_azure_sm::credential::{PersistedCredential, TokenFile};
use azdock_azure_sm::{Arm, ChainedCredential, ClientSecretCredential, Cloud, CloudKind, Credential, RetryPolicy};
use azdock_core::Secret;
use serde_json::Value;

use crate::cli::GlobalArgs;
use crate::config::Config;
use crate::error::Usage;

pub(crate) use azdock_azure_sm::api::RESOURCES as RESOURCES_API;

/// A signed-in client and the subscription commands work in.
pub(crate) struct Session {
    pub arm: Arm,
    pub subscription: String,
}

/// The cloud named by `--cloud`, `AZDOCK_CLOUD` or `defaults.cloud`, else AzureCloud: the
/// cloud `login` and `logout` work on.
pub(crate) fn cloud_name(global: &GlobalArgs, config: &Config) -> String {
    global.cloud.clone().or_else(|| config.defaults.cloud.clone()).unwrap_or_else(|| "AzureCloud".into())
}

/// The cloud commands work in: the one named, else AzureCloud when any sign-in for it is
/// configured (a stored login, the `AZURE_*` or managed-identity environment, the Azure CLI),
/// else the local cloud — so that a fresh machine runs everything locally, and says so.
pub(crate) fn working_cloud(global: &GlobalArgs, config: &Config) -> String {
    if let Some(named) = global.cloud.clone().or_else(|| config.defaults.cloud.clone()) {
        return named;
    }
    if !implicit_local() {
        return "AzureCloud".into();
    }
    if !global.only_show_errors {
        eprintln!(
            "WARNING: no Azure sign-in is configured, so this runs in azdock's local cloud; `azdock login` or `az login` to use Azure, or `--cloud` to choose"
        );
    }
    azdock_azure_sm::cloud::LOCAL_CLOUD.into()
}

/// Whether, with no cloud named, no Azure sign-in is configured either (a stored login, the
/// `AZURE_*` or managed-identity environment, the Azure CLI): then commands run in the local
/// cloud without anyone having chosen it.
fn implicit_local() -> bool {
    // Asked by the destructive-command check and again by the session: looked up once (it
    // searches PATH and reads the stored sign-ins).
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        let var = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        let az = azdock_azure_sm::credential::az_cli_installed();
        let stored = crate::commands::login::stored("AzureCloud").ok().flatten().is_some();
        !(stored || az || var("AZURE_CLIENT_ID") || var("AZURE_TENANT_ID") || var("IDENTITY_ENDPOINT"))
    })
}

/// A command that deletes, resets, removes, rotates, uninstalls or stops (`what`) is refused on a
/// local cloud nobody chose: the user may believe it acts on Azure.
pub(crate) fn refuse_implicit_local(global: &GlobalArgs, config: &Config, what: &str) -> Result<(), Usage> {
    let named = global.cloud.is_some() || config.defaults.cloud.is_some();
    if named || !implicit_local() {
        return Ok(());
    }
    Err(Usage::new(format!(
        "no Azure sign-in is configured, and `{what}` changes what it acts on: pass `--cloud local` to run it in azdock's local cloud, or sign in to Azure (`azdock login`, `az login`) first"
    )))
}

/// Signs in to the cloud: with the login stored by `azdock login` for it, else the local
/// cloud's own principal (starting it when it is not running), else for the other clouds the
/// chain of [`ChainedCredential::from_env`]: the `AZURE_*` environment, the Azure CLI, managed
/// identity.
pub(crate) async fn arm(global: &GlobalArgs, config: &Config) -> anyhow::Result<Arm> {
    Ok(signed_in(global, config).await?.0)
}

/// The client of the cloud commands work on, and the name of its sign-in where its tokens and
/// subscription are kept between runs.
async fn signed_in(global: &GlobalArgs, config: &Config) -> anyhow::Result<(Arm, Option<String>)> {
    let name = working_cloud(global, config);
    let stored = crate::commands::login::stored(&name)?;
    arm_on(&name, stored.as_ref(), true).await
}

/// Like [`arm`] on the cloud `login` works on, with this login instead of the stored one.
pub(crate) async fn arm_with(
    global: &GlobalArgs,
    config: &Config,
    login: Option<&StoredLogin>,
) -> anyhow::Result<(Arm, Option<String>)> {
    arm_on(&cloud_name(global, config), login, false).await
}

/// `tokens.json`, beside the stored sign-ins.
pub(crate) fn token_file() -> anyhow::Result<TokenFile> {
    Ok(TokenFile::new(crate::config::config_dir()?.join("tokens.json")))
}

/// What starts the identity of every sign-in of a cloud (what `logout` forgets).
pub(crate) fn cloud_prefix(cloud: &str) -> String {
    format!("{}|", cloud.to_ascii_lowercase())
}

/// The name under which a sign-in's tokens are kept, or `None` for one whose tokens are not:
/// the Azure CLI's (it keeps its own, and its account may change under us) and a managed
/// identity's (the endpoint is on the machine).
fn identity(cloud: &str, login: &StoredLogin) -> Option<String> {
    let prefix = cloud_prefix(cloud);
    match login {
        StoredLogin::Secret { tenant, client_id, .. } => Some(format!("{prefix}secret|{tenant}|{client_id}")),
        StoredLogin::Certificate { tenant, client_id, path, .. } => {
            Some(format!("{prefix}certificate|{tenant}|{client_id}|{}", path.display()))
        }
        StoredLogin::User { tenant, client_id, .. } => Some(format!("{prefix}user|{tenant}|{client_id}")),
        StoredLogin::AzureCli { .. } | StoredLogin::ManagedIdentity { .. } => None,
    }
}

/// A credential and the name its tokens are kept under.
type Signing = (Arc<dyn Credential>, String);

/// The cloud called `name`: a registered or built-in one, or the local cloud (started when it
/// is not running) with its own principal's credential and the name its tokens are kept under.
pub(crate) async fn cloud_of(name: &str) -> anyhow::Result<(Cloud, Option<Signing>)> {
    let name = name.to_owned();
    Ok(match CloudKind::of(&name) {
        CloudKind::Local => {
            crate::output::mark_local_cloud();
            let up = tokio::task::spawn_blocking(crate::commands::local::ensure_running).await??;
            let text = |k: &str| {
                up[k].as_str().map(str::to_owned).with_context(|| format!("the local cloud did not report {k}"))
            };
            let ca = std::fs::read_to_string(text("caCertificate")?).context("cannot read the local cloud's CA")?;
            let cloud = Cloud::local(&text("endpoint")?, &ca);
            // Without a stored sign-in, the local cloud's own principal.
            let own = ClientSecretCredential::new(
                &cloud.authority_host,
                &text("tenantId")?,
                &text("clientId")?,
                Secret::new(text("clientSecret")?),
            );
            let identity =
                format!("{}own|{}|{}|{}", cloud_prefix(&name), text("endpoint")?, text("tenantId")?, text("clientId")?);
            (cloud, Some((Arc::new(own), identity)))
        }
        CloudKind::Azure => (crate::commands::cloud::resolve(&name)?, None),
    })
}

/// A client of the cloud `name` signed in with `login` (else the local cloud's principal, else
/// the environment's chain). `keep_rotated`: a person's renewed refresh tokens replace the
/// stored one (not while `login` is only being tried).
async fn arm_on(name: &str, login: Option<&StoredLogin>, keep_rotated: bool) -> anyhow::Result<(Arm, Option<String>)> {
    let (cloud, fallback) = cloud_of(name).await?;
    let (credential, identity): (Arc<dyn Credential>, Option<String>) = match (login, fallback) {
        (Some(StoredLogin::User { tenant, client_id, refresh_token }), _) if keep_rotated => {
            let store = crate::commands::login::store()?;
            let credential =
                store.user_credential(name, &cloud.authority_host, tenant, client_id, Arc::clone(refresh_token));
            (Arc::new(credential), login.and_then(|l| identity(name, l)))
        }
        (Some(login), _) => (login.credential(&cloud.authority_host)?, identity(name, login)),
        (None, Some((own, identity))) => (own, Some(identity)),
        (None, None) => (Arc::new(ChainedCredential::from_env(&cloud)?), None),
    };
    let credential: Arc<dyn Credential> = match &identity {
        Some(identity) => Arc::new(PersistedCredential::new(credential, token_file()?, identity.clone())),
        None => credential,
    };
    Ok((Arm::new(cloud, credential, RetryPolicy::from_env())?, identity))
}

/// The subscriptions the login can see.
pub(crate) async fn subscriptions(arm: &Arm) -> anyhow::Result<Vec<Value>> {
    let body = arm.get(&format!("/subscriptions?api-version={RESOURCES_API}")).await?;
    Ok(body["value"].as_array().cloned().unwrap_or_default())
}

/// Signs in and picks the subscription: `--subscription`, `AZDOCK_SUBSCRIPTION`,
/// `defaults.subscription`, the one remembered for this sign-in (at login, or found before), or
/// the only one the login can see (then remembered).
pub(crate) async fn session(global: &GlobalArgs, config: &Config) -> anyhow::Result<Session> {
    let (arm, identity) = signed_in(global, config).await?;
    let chosen = global.subscription.clone().or_else(|| config.defaults.subscription.clone());
    let remembered = || -> anyhow::Result<Option<String>> {
        Ok(match &identity {
            Some(identity) => token_file()?.subscription(identity),
            None => None,
        })
    };
    let subscription = match chosen {
        Some(id) => id,
        None => match remembered()? {
            Some(id) => id,
            None => {
                let id = only_subscription(&subscriptions(&arm).await?)?;
                if let Some(identity) = &identity {
                    token_file()?.remember_subscription(identity, &id);
                }
                id
            }
        },
    };
    Ok(Session { arm, subscription })
}

/// The one subscription a login can see, or why there is not one.
pub(crate) fn only_subscription(subs: &[Value]) -> anyhow::Result<String> {
    match subs {
        [one] => Ok(one["subscriptionId"].as_str().unwrap_or_default().to_owned()),
        [] => bail!("the login can see no subscription"),
        many => {
            let ids: Vec<&str> = many.iter().filter_map(|s| s["subscriptionId"].as_str()).collect();
            Err(Usage::new(format!(
                "the login can see several subscriptions ({}); pass `--subscription`",
                ids.join(", ")
            ))
            .into())
        }
    }
}

/// A current-thread runtime for one command: nothing async runs at start-up.
pub(crate) fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}
