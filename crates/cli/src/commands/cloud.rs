//! `azdock cloud …`: the clouds azdock can talk to — the three public Azure clouds, the local
//! cloud, and clouds the user registers (Azure Stack Hub, private and sovereign endpoints), whose
//! other endpoints are discovered from ARM's `/metadata/endpoints` as az does. Registered clouds
//! live in `clouds.toml` in the config directory, with a copy of their CA bundle beside it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use azdock_azure_sm::Cloud;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{CloudCommand, GlobalArgs};
use crate::config::{self, Config};
use crate::error::Usage;
use crate::output::Columns;
use crate::session;

const COLUMNS: Columns = &[
    ("Name", "/name"),
    ("IsActive", "/isActive"),
    ("ResourceManager", "/endpoints/resourceManager"),
    ("AuthorityHost", "/endpoints/activeDirectory"),
    ("Source", "/source"),
];

/// A registered cloud as `clouds.toml` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Registered {
    pub resource_manager: String,
    pub authority_host: String,
    pub audience: String,
    /// The copy of the CA bundle given at registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
}

/// The public clouds, by the names az uses.
fn builtin(name: &str) -> Option<Cloud> {
    match name.to_ascii_lowercase().as_str() {
        "azurecloud" => Some(Cloud::azure()),
        "azurechinacloud" => Some(Cloud::china()),
        "azureusgovernment" => Some(Cloud::us_government()),
        _ => None,
    }
}

const BUILTIN_NAMES: [&str; 3] = ["AzureCloud", "AzureChinaCloud", "AzureUSGovernment"];

fn registry_path() -> anyhow::Result<PathBuf> {
    Ok(config::config_dir()?.join("clouds.toml"))
}

/// The registered clouds; a missing file is none, a broken one an error naming it.
pub(crate) fn registered() -> anyhow::Result<BTreeMap<String, Registered>> {
    let path = registry_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| Usage::new(format!("invalid cloud registry `{}`: {}", path.display(), e.message())).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    }
}

fn save(map: &BTreeMap<String, Registered>) -> anyhow::Result<()> {
    crate::config::write_atomic(&registry_path()?, toml::to_string(map)?.as_bytes())
}

/// The cloud called `name` (any case), other than the local cloud; a usage error listing the
/// known names when there is none.
pub(crate) fn resolve(name: &str) -> anyhow::Result<Cloud> {
    if let Some(cloud) = builtin(name) {
        return Ok(cloud);
    }
    let all = registered()?;
    let Some((key, entry)) = all.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) else {
        let mut known: Vec<String> = BUILTIN_NAMES.iter().map(|s| (*s).to_owned()).collect();
        known.push(azdock_azure_sm::cloud::LOCAL_CLOUD.into());
        known.extend(all.keys().cloned());
        return Err(Usage::new(format!(
            "unknown cloud `{name}`: use {} (or register one with `azdock cloud register`)",
            known.join(", ")
        ))
        .into());
    };
    let ca = match &entry.ca_bundle {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the CA bundle of cloud `{key}`: `{}`", path.display()))?,
        ),
        None => None,
    };
    Ok(Cloud::custom(key, &entry.resource_manager, &entry.authority_host, &entry.audience, ca))
}

fn row(name: &str, active: &str, resource_manager: &str, authority: &str, source: &str) -> Value {
    json!({
        "name": name,
        "isActive": name.eq_ignore_ascii_case(active),
        "endpoints": {"resourceManager": resource_manager, "activeDirectory": authority},
        "source": source,
    })
}

fn cloud_row(cloud: &Cloud, active: &str, source: &str) -> Value {
    let mut r = row(&cloud.name, active, &cloud.resource_manager, &cloud.authority_host, source);
    r["endpoints"]["activeDirectoryResourceId"] = json!(cloud.audience);
    r
}

fn all_rows(active: &str) -> anyhow::Result<Vec<Value>> {
    let mut rows: Vec<Value> =
        BUILTIN_NAMES.iter().filter_map(|n| builtin(n)).map(|c| cloud_row(&c, active, "builtin")).collect();
    let local = azdock_azure_sm::cloud::LOCAL_CLOUD;
    rows.push(row(local, active, "(the local cloud's loopback address)", "(the local cloud)", local));
    for name in registered()?.keys() {
        rows.push(cloud_row(&resolve(name)?, active, "registered"));
    }
    Ok(rows)
}

/// A cloud name: letters, digits, `-` and `_`, as az's cloud names are.
fn check_name(name: &str) -> Result<(), Usage> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    if !ok {
        return Err(Usage::new(format!("invalid cloud name `{name}`: use 1 to 64 letters, digits, `-` or `_`")));
    }
    if builtin(name).is_some() || name.eq_ignore_ascii_case("local") {
        return Err(Usage::new(format!("`{name}` is a built-in cloud; register yours under another name")));
    }
    Ok(())
}

fn check_https(flag: &str, url: &str) -> Result<String, Usage> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Usage::new(format!("invalid {flag} `{url}`: {e}; give an https:// URL")))?;
    if parsed.scheme() != "https" || parsed.host_str().is_none() {
        return Err(Usage::new(format!("invalid {flag} `{url}`: give an https:// URL")));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

pub(crate) fn run(ctx: &Ctx, global: &GlobalArgs, config: &Config, command: &CloudCommand) -> anyhow::Result<()> {
    // What commands would use; `cloud list` with nothing configured shows `local` active.
    let active = if matches!(command, CloudCommand::List | CloudCommand::Show { .. }) {
        session::working_cloud(global, config)
    } else {
        session::cloud_name(global, config)
    };
    match command {
        CloudCommand::List => ctx.print(&Value::Array(all_rows(&active)?), COLUMNS),
        CloudCommand::Show { name } => {
            let name = name.as_deref().unwrap_or(&active);
            let found = all_rows(&active)?
                .into_iter()
                .find(|r| r["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)));
            match found {
                Some(r) => ctx.print(&r, COLUMNS),
                None => resolve(name).map(|_| ()),
            }
        }
        CloudCommand::Set { name } => {
            let canonical = if name.eq_ignore_ascii_case("local") { "local".to_owned() } else { resolve(name)?.name };
            config::set_default("cloud", &canonical)
        }
        CloudCommand::Unregister { name } => {
            if builtin(name).is_some() || name.eq_ignore_ascii_case("local") {
                return Err(Usage::new(format!("`{name}` is a built-in cloud and cannot be unregistered")).into());
            }
            let mut all = registered()?;
            let Some(key) = all.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned() else {
                return Err(Usage::new(format!("no registered cloud `{name}` (see `azdock cloud list`)")).into());
            };
            if key.eq_ignore_ascii_case(&active) {
                return Err(Usage::new(format!(
                    "`{key}` is the active cloud; switch with `azdock cloud set AzureCloud` (or another) first"
                ))
                .into());
            }
            let entry = all.remove(&key);
            save(&all)?;
            if let Some(bundle) = entry.and_then(|e| e.ca_bundle) {
                let _ = std::fs::remove_file(bundle);
            }
            Ok(())
        }
        CloudCommand::Register { name, endpoint_resource_manager, ca_bundle } => {
            check_name(name)?;
            if registered()?.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                return Err(Usage::new(format!(
                    "cloud `{name}` is already registered; `azdock cloud unregister {name}` first"
                ))
                .into());
            }
            let arm = check_https("--endpoint-resource-manager", endpoint_resource_manager)?;
            let bundle = match ca_bundle {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| Usage::new(format!("cannot read the CA bundle `{}`: {e}", path.display())))?;
                    let certs = reqwest::Certificate::from_pem_bundle(text.as_bytes()).unwrap_or_default();
                    if certs.is_empty() || !text.contains("-----BEGIN CERTIFICATE-----") {
                        return Err(Usage::new(format!(
                            "`{}` holds no PEM certificate; give the CA bundle as PEM",
                            path.display()
                        ))
                        .into());
                    }
                    Some(text)
                }
                None => None,
            };
            let discovered = session::block_on(discover(&arm, bundle.as_deref()))?;
            let (authority, audience) = discovered;
            let mut entry = Registered { resource_manager: arm, authority_host: authority, audience, ca_bundle: None };
            if let Some(text) = &bundle {
                let dir = config::config_dir()?.join("clouds");
                std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
                let copy = dir.join(format!("{name}-ca.pem"));
                std::fs::write(&copy, text).with_context(|| format!("cannot write `{}`", copy.display()))?;
                entry.ca_bundle = Some(copy);
            }
            let mut all = registered()?;
            all.insert(name.clone(), entry);
            save(&all)?;
            ctx.print(&cloud_row(&resolve(name)?, &active, "registered"), COLUMNS)
        }
    }
}

/// Reads ARM's `/metadata/endpoints` (the 2022-09-01 list, else the 2015-01-01 object Azure
/// Stack Hub serves): the authority host and the token audience.
async fn discover(arm: &str, ca_pem: Option<&str>) -> anyhow::Result<(String, String)> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if let Some(pem) = ca_pem {
        for ca in reqwest::Certificate::from_pem_bundle(pem.as_bytes())? {
            builder = builder.add_root_certificate(ca);
        }
    }
    let http = builder.build()?;
    let mut last = String::new();
    for version in ["2022-09-01", "2015-01-01"] {
        let url = format!("{arm}/metadata/endpoints?api-version={version}");
        let resp = http.get(&url).send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            last = format!("{url} answered HTTP {status}");
            continue;
        }
        let entry = match &body {
            Value::Array(clouds) => clouds
                .iter()
                .find(|c| c["resourceManager"].as_str().is_some_and(|r| r.trim_end_matches('/') == arm))
                .or_else(|| clouds.first())
                .cloned()
                .unwrap_or(Value::Null),
            other => other.clone(),
        };
        let auth = &entry["authentication"];
        if let (Some(login), Some(audience)) = (auth["loginEndpoint"].as_str(), auth["audiences"][0].as_str()) {
            let login = check_https("loginEndpoint from the metadata", login)?;
            return Ok((login, audience.to_owned()));
        }
        last = format!("{url} named no authentication.loginEndpoint and audiences");
    }
    anyhow::bail!("cannot discover the cloud's endpoints: {last}")
}
