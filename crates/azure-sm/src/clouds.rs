//! The clouds azdock knows by name: the three public Azure clouds, the local cloud, and clouds
//! the user registers (Azure Stack Hub, private and sovereign endpoints), whose other endpoints
//! are discovered from ARM's `/metadata/endpoints` as az does. Registered clouds live in a TOML
//! file (changed under its lock), each CA bundle copied beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cloud::{Cloud, LOCAL_CLOUD};

/// What can go wrong with named clouds; `Usage` is a bad name, URL or file the user gave.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
}

impl CloudError {
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Usage(_))
    }
}

impl From<std::io::Error> for CloudError {
    fn from(source: std::io::Error) -> Self {
        Self::Io { action: "update", path: PathBuf::new(), source }
    }
}

type Result<T> = std::result::Result<T, CloudError>;

/// A registered cloud as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Registered {
    pub resource_manager: String,
    pub authority_host: String,
    pub audience: String,
    /// The copy of the CA bundle given at registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
}

/// The public clouds' names, as az spells them.
pub const BUILTIN_NAMES: [&str; 3] = ["AzureCloud", "AzureChinaCloud", "AzureUSGovernment"];

/// A public cloud by name (any case).
pub fn builtin(name: &str) -> Option<Cloud> {
    match name.to_ascii_lowercase().as_str() {
        "azurecloud" => Some(Cloud::azure()),
        "azurechinacloud" => Some(Cloud::china()),
        "azureusgovernment" => Some(Cloud::us_government()),
        _ => None,
    }
}

/// A name the registry may take: letters, digits, `-` and `_`, as az's cloud names are, and not
/// a built-in's.
pub fn check_name(name: &str) -> Result<()> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    if !ok {
        return Err(CloudError::Usage(format!("invalid cloud name `{name}`: use 1 to 64 letters, digits, `-` or `_`")));
    }
    if builtin(name).is_some() || name.eq_ignore_ascii_case(LOCAL_CLOUD) {
        return Err(CloudError::Usage(format!("`{name}` is a built-in cloud; register yours under another name")));
    }
    Ok(())
}

/// An https URL with a host, without its trailing `/`.
pub fn check_https(flag: &str, url: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| CloudError::Usage(format!("invalid {flag} `{url}`: {e}; give an https:// URL")))?;
    if parsed.scheme() != "https" || parsed.host_str().is_none() {
        return Err(CloudError::Usage(format!("invalid {flag} `{url}`: give an https:// URL")));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A CA bundle the user gave: readable, and PEM certificates.
pub fn read_ca_bundle(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CloudError::Usage(format!("cannot read the CA bundle `{}`: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(text.as_bytes()).unwrap_or_default();
    if certs.is_empty() || !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(CloudError::Usage(format!(
            "`{}` holds no PEM certificate; give the CA bundle as PEM",
            path.display()
        )));
    }
    Ok(text)
}

/// The login endpoint and token audience of the cloud at `arm` in a `/metadata/endpoints`
/// answer: public Azure's list of every cloud (the entry whose `resourceManager` is `arm`, else
/// the first), or the single-cloud object a custom cloud (Azure Stack Hub) serves.
fn authentication<'a>(arm: &str, body: &'a Value) -> Option<(&'a str, &'a str)> {
    let entry = match body {
        Value::Array(clouds) => clouds
            .iter()
            .find(|c| c["resourceManager"].as_str().is_some_and(|r| r.trim_end_matches('/') == arm))
            .or_else(|| clouds.first())?,
        other => other,
    };
    let auth = &entry["authentication"];
    Some((auth["loginEndpoint"].as_str()?, auth["audiences"][0].as_str()?))
}

/// Reads ARM's `/metadata/endpoints` (2022-09-01: a list or one cloud's object; else the
/// 2015-01-01 object): the authority host and the token audience.
pub async fn discover(arm: &str, ca_pem: Option<&str>) -> Result<(String, String)> {
    let failed = |e: reqwest::Error| CloudError::Failed(e.to_string());
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if let Some(pem) = ca_pem {
        for ca in reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(failed)? {
            builder = builder.add_root_certificate(ca);
        }
    }
    let http = builder.build().map_err(failed)?;
    let mut last = String::new();
    for version in ["2022-09-01", "2015-01-01"] {
        let url = format!("{arm}/metadata/endpoints?api-version={version}");
        let resp = http.get(&url).send().await.map_err(|e| CloudError::Failed(format!("cannot reach {url}: {e}")))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            last = format!("{url} answered HTTP {status}");
            continue;
        }
        if let Some((login, audience)) = authentication(arm, &body) {
            let login = check_https("loginEndpoint from the metadata", login)?;
            return Ok((login, audience.to_owned()));
        }
        last = format!("{url} named no authentication.loginEndpoint and audiences");
    }
    Err(CloudError::Failed(format!("cannot discover the cloud's endpoints: {last}")))
}

/// The registry of clouds the user registered: `clouds.toml` in `dir`, CA bundles in
/// `dir/clouds/`.
#[derive(Debug, Clone)]
pub struct CloudRegistry {
    dir: PathBuf,
}

impl CloudRegistry {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("clouds.toml")
    }

    fn parse(&self, text: &str) -> Result<BTreeMap<String, Registered>> {
        toml::from_str(text).map_err(|e| {
            CloudError::Usage(format!("invalid cloud registry `{}`: {}", self.path().display(), e.message()))
        })
    }

    /// The registered clouds; a missing file is none, a broken one an error naming it.
    pub fn registered(&self) -> Result<BTreeMap<String, Registered>> {
        let path = self.path();
        match std::fs::read_to_string(&path) {
            Ok(text) => self.parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(CloudError::Io { action: "read", path, source }),
        }
    }

    /// Changes the registry under its lock; `change` says whether anything changed.
    fn change<T>(&self, change: impl FnOnce(&mut BTreeMap<String, Registered>) -> Result<T>) -> Result<T> {
        let path = self.path();
        let mut out = None;
        azdock_files::update(&path, 0o600, |old| -> Result<Option<Vec<u8>>> {
            let mut all = match old {
                Some(data) => self.parse(&String::from_utf8_lossy(&data))?,
                None => BTreeMap::new(),
            };
            out = Some(change(&mut all)?);
            let text = toml::to_string(&all).map_err(|e| CloudError::Failed(e.to_string()))?;
            Ok(Some(text.into_bytes()))
        })
        .map_err(|e| match e {
            CloudError::Io { source, .. } => CloudError::Io { action: "update", path: path.clone(), source },
            other => other,
        })?;
        out.ok_or_else(|| CloudError::Failed("the registry was not changed".into()))
    }

    /// The cloud called `name` (any case), other than the local cloud; a usage error listing the
    /// known names when there is none.
    pub fn resolve(&self, name: &str) -> Result<Cloud> {
        if let Some(cloud) = builtin(name) {
            return Ok(cloud);
        }
        let all = self.registered()?;
        let Some((key, entry)) = all.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) else {
            let mut known: Vec<String> = BUILTIN_NAMES.iter().map(|s| (*s).to_owned()).collect();
            known.push(LOCAL_CLOUD.into());
            known.extend(all.keys().cloned());
            return Err(CloudError::Usage(format!(
                "unknown cloud `{name}`: use {} (or register one with `azdock cloud register`)",
                known.join(", ")
            )));
        };
        let ca = match &entry.ca_bundle {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|source| CloudError::Io {
                action: "read the CA bundle of cloud",
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        Ok(Cloud::custom(key, &entry.resource_manager, &entry.authority_host, &entry.audience, ca))
    }

    /// Registers `name` at `arm` (checked, https), its other endpoints read from the cloud's
    /// metadata; `ca_bundle` (PEM, read by [`read_ca_bundle`]) is trusted for it and copied beside
    /// the registry. Nothing is written unless the cloud answered.
    pub async fn register(&self, name: &str, arm: &str, ca_bundle: Option<&str>) -> Result<Cloud> {
        check_name(name)?;
        let taken = |all: &BTreeMap<String, Registered>| {
            if all.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                return Err(CloudError::Usage(format!(
                    "cloud `{name}` is already registered; `azdock cloud unregister {name}` first"
                )));
            }
            Ok(())
        };
        taken(&self.registered()?)?;
        let arm = check_https("--endpoint-resource-manager", arm)?;
        let (authority_host, audience) = discover(&arm, ca_bundle).await?;
        let mut entry = Registered { resource_manager: arm, authority_host, audience, ca_bundle: None };
        if let Some(text) = ca_bundle {
            let copy = self.dir.join("clouds").join(format!("{name}-ca.pem"));
            azdock_files::write_atomic(&copy, text.as_bytes(), 0o644).map_err(|source| CloudError::Io {
                action: "write",
                path: copy.clone(),
                source,
            })?;
            entry.ca_bundle = Some(copy);
        }
        self.change(|all| {
            taken(all)?;
            all.insert(name.to_owned(), entry);
            Ok(())
        })?;
        self.resolve(name)
    }

    /// Removes a registered cloud (and its CA bundle's copy); never a built-in or `active`.
    pub fn unregister(&self, name: &str, active: &str) -> Result<()> {
        if builtin(name).is_some() || name.eq_ignore_ascii_case(LOCAL_CLOUD) {
            return Err(CloudError::Usage(format!("`{name}` is a built-in cloud and cannot be unregistered")));
        }
        let removed = self.change(|all| {
            let Some(key) = all.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned() else {
                return Err(CloudError::Usage(format!("no registered cloud `{name}` (see `azdock cloud list`)")));
            };
            if key.eq_ignore_ascii_case(active) {
                return Err(CloudError::Usage(format!(
                    "`{key}` is the active cloud; switch with `azdock cloud set AzureCloud` (or another) first"
                )));
            }
            Ok(all.remove(&key))
        })?;
        if let Some(bundle) = removed.and_then(|e| e.ca_bundle) {
            let _ = std::fs::remove_file(bundle);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn metadata_is_read_as_a_list_of_clouds_or_one_clouds_object() {
        let auth = |login: &str| json!({"loginEndpoint": login, "audiences": [format!("{login}/aud")]});
        // Public Azure's list: the entry of this ARM, wherever it is in the list.
        let list = json!([
            {"resourceManager": "https://other.example/", "authentication": auth("https://login.other")},
            {"resourceManager": "https://m.example/", "authentication": auth("https://login.m")},
        ]);
        assert_eq!(authentication("https://m.example", &list), Some(("https://login.m", "https://login.m/aud")));
        // A list without this ARM: its first cloud.
        assert_eq!(authentication("https://x.example", &list).map(|a| a.0), Some("https://login.other"));
        // A custom cloud's single object (Azure Stack Hub, the local cloud).
        let one = json!({"resourceManager": "https://m.example", "authentication": auth("https://login.one")});
        assert_eq!(authentication("https://m.example", &one).map(|a| a.0), Some("https://login.one"));
        assert_eq!(authentication("https://m.example", &json!([])), None);
        assert_eq!(authentication("https://m.example", &json!({"authentication": {"loginEndpoint": "x"}})), None);
    }

    #[test]
    fn names_and_urls_are_checked_before_anything_is_asked() {
        assert!(check_name("stack-1_a").is_ok());
        for bad in ["", "has space", "AzureCloud", "LOCAL", &"x".repeat(65)] {
            assert!(check_name(bad).unwrap_err().is_usage(), "{bad}");
        }
        assert_eq!(check_https("--x", "https://m.example/").unwrap(), "https://m.example");
        for bad in ["http://m.example", "https://", "not a url"] {
            let e = check_https("--x", bad).unwrap_err();
            assert!(e.is_usage() && e.to_string().contains("--x"), "{bad}: {e}");
        }
        assert_eq!(builtin("azurechinacloud").unwrap().name, Cloud::china().name);
        assert!(builtin("stack").is_none());
    }

    #[test]
    fn the_registry_resolves_lists_and_refuses_what_it_cannot_change() {
        let dir = tempfile::tempdir().unwrap();
        let registry = CloudRegistry::new(dir.path().to_owned());
        assert!(registry.registered().unwrap().is_empty());
        let e = registry.resolve("stack").unwrap_err().to_string();
        assert!(e.contains("unknown cloud `stack`") && e.contains("AzureCloud") && e.contains("local"), "{e}");
        let entry = Registered {
            resource_manager: "https://m.example".into(),
            authority_host: "https://login.example".into(),
            audience: "https://m.example/".into(),
            ca_bundle: None,
        };
        registry
            .change(|all| {
                all.insert("Stack".into(), entry.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(registry.registered().unwrap()["Stack"], entry);
        assert_eq!(registry.resolve("stack").unwrap().resource_manager, "https://m.example");
        assert!(registry.unregister("AzureCloud", "local").unwrap_err().is_usage());
        assert!(registry.unregister("stack", "Stack").unwrap_err().to_string().contains("is the active cloud"));
        assert!(registry.unregister("other", "local").unwrap_err().to_string().contains("no registered cloud"));
        registry.unregister("STACK", "local").unwrap();
        assert!(registry.registered().unwrap().is_empty());
        std::fs::write(dir.path().join("clouds.toml"), "[x]\nunknown = 1\n").unwrap();
        assert!(registry.registered().unwrap_err().to_string().contains("invalid cloud registry"));
    }
}
