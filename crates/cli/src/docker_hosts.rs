//! The Docker hosts azdock set up, kept in `docker-hosts.json` in the data directory: what
//! `docker env`, `docker context`, `verify` and a CA rotation need to find each host again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// One Docker host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DockerHost {
    pub name: String,
    pub cloud: String,
    pub subscription: String,
    pub resource_group: String,
    /// What clients connect to: the FQDN, or the public IP in the local cloud.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    pub port: u16,
    pub handler: String,
    pub cert_dir: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cert_sans: Vec<String>,
}

impl DockerHost {
    /// `tcp://<address>:<port>`, Docker's `DOCKER_HOST`.
    pub(crate) fn docker_host(&self) -> String {
        let address = if self.address.contains(':') { format!("[{}]", self.address) } else { self.address.clone() };
        format!("tcp://{address}:{}", self.port)
    }
}

fn path() -> anyhow::Result<PathBuf> {
    Ok(crate::config::data_dir()?.join("docker-hosts.json"))
}

/// Every known host, by name.
pub(crate) fn load() -> anyhow::Result<BTreeMap<String, DockerHost>> {
    let path = path()?;
    match std::fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data)
            .with_context(|| format!("`{}` is damaged; delete it to start over", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    }
}

fn save(hosts: &BTreeMap<String, DockerHost>) -> anyhow::Result<()> {
    crate::config::write_atomic(&path()?, &serde_json::to_vec_pretty(hosts)?)
}

/// Adds or replaces a host.
pub(crate) fn record(host: DockerHost) -> anyhow::Result<()> {
    let mut hosts = load()?;
    hosts.insert(host.name.clone(), host);
    save(&hosts)
}

/// Forgets a host.
pub(crate) fn forget(name: &str) -> anyhow::Result<()> {
    let mut hosts = load()?;
    if hosts.remove(name).is_some() {
        save(&hosts)?;
    }
    Ok(())
}

/// A host by name; a usage error listing the known ones when there is none.
pub(crate) fn get(name: &str) -> anyhow::Result<DockerHost> {
    let hosts = load()?;
    hosts.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = hosts.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none yet; create one with `azdock vm docker create`".to_owned()
        } else {
            known.join(", ")
        };
        crate::error::Usage::new(format!("no Docker host `{name}` known to azdock (known: {known})")).into()
    })
}
