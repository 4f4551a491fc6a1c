//! The record of Docker hosts (`docker-hosts.json` in azdock's data directory): one entry per
//! VM, keyed by cloud, subscription, resource group and name, read and changed under its lock so
//! that two runs at once both land.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::DockerHost;
use crate::error::{Error, Result};
use crate::target::VmAddr;

impl DockerHost {
    /// The record's key: the VM's cloud, subscription, group and name. ARM names are
    /// case-insensitive, so the key is too.
    pub fn key(&self) -> String {
        key(&self.cloud, &self.subscription, &self.resource_group, &self.name)
    }

    /// `GROUP/NAME`, how messages and ambiguous names spell a host.
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.resource_group, self.name)
    }
}

fn key(cloud: &str, subscription: &str, group: &str, name: &str) -> String {
    format!("{cloud}/{subscription}/{group}/{name}").to_ascii_lowercase()
}

/// The hosts in the record, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts(BTreeMap<String, DockerHost>);

impl Hosts {
    /// The host on this VM of this cloud, if azdock set one up there.
    pub fn at(&self, cloud: &str, addr: &VmAddr) -> Option<&DockerHost> {
        self.0.get(&key(cloud, &addr.subscription, &addr.resource_group, &addr.name))
    }

    /// Every host, in key order.
    pub fn all(&self) -> impl Iterator<Item = &DockerHost> {
        self.0.values()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A host as a user names it: `NAME` where that name is unique, else `GROUP/NAME`. No match
    /// and an ambiguous name are usage errors naming what would do.
    pub fn find(&self, name: &str) -> Result<&DockerHost> {
        let (group, vm) = match name.split_once('/') {
            Some((g, n)) => (Some(g), n),
            None => (None, name),
        };
        let found: Vec<&DockerHost> = self
            .all()
            .filter(|h| h.name.eq_ignore_ascii_case(vm))
            .filter(|h| group.is_none_or(|g| h.resource_group.eq_ignore_ascii_case(g)))
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => {
                let known: Vec<String> = self.all().map(|h| self.spelling(h)).collect();
                let known = if known.is_empty() {
                    "none yet; create one with `azdock vm docker create`".to_owned()
                } else {
                    known.join(", ")
                };
                Err(Error::Usage(format!("no Docker host `{name}` known to azdock (known: {known})")))
            }
            many => {
                let candidates: Vec<String> = many
                    .iter()
                    .map(|h| format!("{} (cloud {}, subscription {})", h.qualified(), h.cloud, h.subscription))
                    .collect();
                Err(Error::Usage(format!(
                    "`{name}` names {} Docker hosts: {}; name one as GROUP/NAME",
                    many.len(),
                    candidates.join(", ")
                )))
            }
        }
    }

    /// How a user names `host` unambiguously: its name, or `GROUP/NAME` when another recorded
    /// host has the same name.
    pub fn spelling(&self, host: &DockerHost) -> String {
        let twins = self.all().filter(|h| h.name.eq_ignore_ascii_case(&host.name)).count();
        if twins > 1 { host.qualified() } else { host.name.clone() }
    }

    /// The docker context for `host`: named after the VM, or `NAME.GROUP` when another recorded
    /// host has the same name (so neither context points at the other's daemon).
    pub fn context_name(&self, host: &DockerHost) -> String {
        let twins = self.all().filter(|h| h.name.eq_ignore_ascii_case(&host.name)).count();
        if twins > 1 {
            format!("{}.{}", host.name, host.resource_group).to_ascii_lowercase()
        } else {
            host.name.clone()
        }
    }
}

/// `docker-hosts.json` in azdock's data directory, read and changed under its lock.
#[derive(Debug, Clone)]
pub struct HostRecord {
    path: PathBuf,
}

impl HostRecord {
    /// The record in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self { path: data_dir.join("docker-hosts.json") }
    }

    /// The file's hosts. Records written before the key held the cloud, subscription and group
    /// were keyed by VM name; every entry carries all four, so they are keyed again on reading.
    fn parse(&self, data: &[u8]) -> Result<Hosts> {
        let by_any_key: BTreeMap<String, DockerHost> = serde_json::from_slice(data).map_err(|e| {
            Error::Failed(format!("`{}` is damaged ({e}); delete it to start over", self.path.display()))
        })?;
        Ok(Hosts(by_any_key.into_values().map(|h| (h.key(), h)).collect()))
    }

    /// Every known host.
    pub fn load(&self) -> Result<Hosts> {
        match std::fs::read(&self.path) {
            Ok(data) => self.parse(&data),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Hosts::default()),
            Err(e) => Err(Error::io("read", &self.path)(e)),
        }
    }

    /// Changes the record under its lock; `f` says whether it changed anything.
    fn change(&self, f: impl FnOnce(&mut Hosts) -> bool) -> Result<()> {
        azdock_files::update(&self.path, 0o600, |old| {
            let mut hosts = match old {
                Some(data) => self.parse(&data)?,
                None => Hosts::default(),
            };
            if !f(&mut hosts) {
                return Ok(None);
            }
            serde_json::to_vec_pretty(&hosts.0).map(Some).map_err(|e| Error::Failed(e.to_string()))
        })
        .map_err(|e: Error| match e {
            Error::File(source) => Error::Io { action: "update", path: self.path.clone(), source },
            other => other,
        })
    }

    /// Adds or replaces a host.
    pub fn record(&self, mut host: DockerHost) -> Result<()> {
        self.change(|hosts| {
            // The admin's SSH key outlives a switch to TLS: a switch back logs in with it.
            if host.ssh_identity.is_none() {
                host.ssh_identity = hosts.0.get(&host.key()).and_then(|old| old.ssh_identity.clone());
            }
            hosts.0.insert(host.key(), host);
            true
        })
    }

    /// Forgets the host on this VM of this cloud.
    pub fn forget(&self, cloud: &str, addr: &VmAddr) -> Result<()> {
        self.change(|hosts| hosts.0.remove(&key(cloud, &addr.subscription, &addr.resource_group, &addr.name)).is_some())
    }

    /// Records `ca` (a CA fingerprint) as the CA of each host of `keys`, under the lock; keys
    /// the record does not hold are skipped.
    pub fn set_ca(&self, keys: &[String], ca: &str) -> Result<()> {
        self.change(|hosts| {
            let mut changed = false;
            for k in keys {
                if let Some(h) = hosts.0.get_mut(k) {
                    changed |= h.ca.as_deref() != Some(ca);
                    h.ca = Some(ca.to_owned());
                }
            }
            changed
        })
    }

    /// A host as a user names it (see [`Hosts::find`]).
    pub fn get(&self, name: &str) -> Result<DockerHost> {
        self.load()?.find(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::host;
    use super::*;

    #[test]
    fn the_record_keeps_hosts_across_processes_and_names_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let record = HostRecord::new(dir.path());
        let e = record.get("web").unwrap_err();
        assert!(e.is_usage());
        assert!(e.to_string().contains("none yet; create one with `azdock vm docker create`"), "{e}");
        record.record(host("web", "g1")).unwrap();
        record.record(host("db", "g1")).unwrap();
        assert_eq!(HostRecord::new(dir.path()).get("web").unwrap(), host("web", "g1"));
        assert_eq!(record.get("G1/WEB").unwrap(), host("web", "g1"));
        let e = record.get("cache").unwrap_err().to_string();
        assert!(e.contains("(known: db, web)"), "{e}");
        let addr = |g: &str, n: &str| VmAddr::new("s", g, n);
        record.forget("local", &addr("g1", "db")).unwrap();
        record.forget("local", &addr("g1", "db")).unwrap();
        // Another cloud's or group's VM of the same name is not this one.
        record.forget("AzureCloud", &addr("g1", "web")).unwrap();
        record.forget("local", &addr("g2", "web")).unwrap();
        let hosts = record.load().unwrap();
        assert_eq!(hosts.all().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["web"]);
        assert_eq!(hosts.at("LOCAL", &addr("G1", "Web")), Some(&host("web", "g1")));
        assert_eq!(hosts.at("local", &addr("g2", "web")), None);
        std::fs::write(dir.path().join("docker-hosts.json"), "{").unwrap();
        let e = record.load().unwrap_err().to_string();
        assert!(e.contains("is damaged") && e.contains("delete it to start over"), "{e}");
        assert!(record.record(host("x", "g")).is_err());
        assert_eq!(std::fs::read_to_string(dir.path().join("docker-hosts.json")).unwrap(), "{");
    }

    #[test]
    fn one_name_in_two_groups_is_two_hosts_and_a_short_name_must_be_unique() {
        let dir = tempfile::tempdir().unwrap();
        let record = HostRecord::new(dir.path());
        record.record(host("web", "g1")).unwrap();
        let alone = record.load().unwrap();
        assert_eq!(
            (alone.context_name(&host("web", "g1")), alone.spelling(&host("web", "g1"))),
            ("web".into(), "web".into())
        );
        record.record(host("web", "g2")).unwrap();
        let mut other_cloud = host("web", "g1");
        other_cloud.cloud = "AzureCloud".into();
        record.record(other_cloud.clone()).unwrap();
        let hosts = record.load().unwrap();
        assert_eq!((hosts.len(), hosts.is_empty()), (3, false));
        assert!(Hosts::default().is_empty());
        let e = record.get("web").unwrap_err();
        assert!(e.is_usage());
        let e = e.to_string();
        assert!(
            e.contains("`web` names 3 Docker hosts")
                && e.contains("g1/web (cloud local, subscription s)")
                && e.contains("g1/web (cloud AzureCloud, subscription s)")
                && e.contains("g2/web (cloud local")
                && e.contains("name one as GROUP/NAME"),
            "{e}"
        );
        assert_eq!(record.get("g2/web").unwrap(), host("web", "g2"));
        assert!(record.get("g1/web").unwrap_err().to_string().contains("names 2 Docker hosts"));
        assert_eq!(hosts.context_name(&host("web", "g2")), "web.g2");
        assert_eq!(hosts.spelling(&host("web", "g2")), "g2/web");
        let e = record.get("nope").unwrap_err().to_string();
        assert!(e.contains("known: g1/web, g1/web, g2/web"), "{e}");
    }

    #[test]
    fn a_record_keyed_by_name_alone_is_read_and_rewritten_with_full_keys() {
        let dir = tempfile::tempdir().unwrap();
        let old: BTreeMap<String, DockerHost> = [("web".to_owned(), host("web", "g1"))].into();
        std::fs::write(dir.path().join("docker-hosts.json"), serde_json::to_vec(&old).unwrap()).unwrap();
        let record = HostRecord::new(dir.path());
        assert_eq!(record.get("web").unwrap(), host("web", "g1"));
        record.record(host("web", "g2")).unwrap();
        let text = std::fs::read_to_string(dir.path().join("docker-hosts.json")).unwrap();
        let keys: Vec<String> =
            serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&text).unwrap().into_keys().collect();
        assert_eq!(keys, ["local/s/g1/web", "local/s/g2/web"]);
    }

    #[test]
    fn a_ca_is_set_on_the_hosts_named() {
        let dir = tempfile::tempdir().unwrap();
        let record = HostRecord::new(dir.path());
        record.record(host("web", "g1")).unwrap();
        record.record(host("db", "g1")).unwrap();
        let web = host("web", "g1").key();
        record.set_ca(&[web.clone(), "local/s/g9/gone".into()], "AB:CD").unwrap();
        let hosts = record.load().unwrap();
        assert_eq!(hosts.find("web").unwrap().ca.as_deref(), Some("AB:CD"));
        assert_eq!(hosts.find("db").unwrap().ca, None);
        let before = std::fs::metadata(dir.path().join("docker-hosts.json")).unwrap().modified().unwrap();
        record.set_ca(&[web], "AB:CD").unwrap();
        let after = std::fs::metadata(dir.path().join("docker-hosts.json")).unwrap().modified().unwrap();
        assert_eq!(before, after, "nothing changed, nothing written");
    }

    #[test]
    fn concurrent_records_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let dir = dir.path().to_owned();
                // The same VM name in six groups: six hosts.
                std::thread::spawn(move || HostRecord::new(&dir).record(host("vm", &format!("g{i}"))).unwrap())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(HostRecord::new(dir.path()).load().unwrap().len(), 6);
    }
}
