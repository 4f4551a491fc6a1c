//! Persistence: the cloud's resources, VM runtimes and guests survive `azdock local down` and
//! `up`. A background task writes `state.json` atomically when something changed, at most every
//! 250 ms, and once more on stop; operations in flight are treated as finished on load.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Shared;
use crate::guest::Guest;
use crate::state::{Inner, Job, Resource, VmRuntime};

const FILE: &str = "state.json";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    next_ip: u32,
    resources: Vec<StoredResource>,
    vms: BTreeMap<String, StoredVm>,
    /// Certificates registered for principals at run time, by client id.
    #[serde(default)]
    certificates: BTreeMap<String, Vec<String>>,
    /// Federated identity credentials added at run time, by client id.
    #[serde(default)]
    federated: BTreeMap<String, Vec<crate::FederatedCredential>>,
}

#[derive(Serialize, Deserialize)]
struct StoredResource {
    id: String,
    body: Value,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredVm {
    power: String,
    guest: Guest,
    /// The guest's Docker certificates (kept out of the guest's JSON view), so its daemon can
    /// come back after a restart. The state directory is private (0700).
    #[serde(default)]
    docker_certs: Option<[String; 3]>,
    extension_status: BTreeMap<String, Vec<Value>>,
}

fn power(name: &str) -> &'static str {
    match name {
        "stopped" | "stopping" => "stopped",
        "deallocated" | "deallocating" => "deallocated",
        _ => "running",
    }
}

/// Loads `state.json` into `inner`; returns the jobs that bring running Docker hosts back.
pub(crate) fn load(
    dir: &Path,
    inner: &mut Inner,
    principals: &mut [crate::ServicePrincipal],
) -> std::io::Result<Vec<Job>> {
    let path = dir.join(FILE);
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let snapshot: Snapshot = serde_json::from_slice(&data)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("`{}`: {e}", path.display())))?;
    inner.next_ip = snapshot.next_ip;
    for p in principals.iter_mut() {
        for pem in snapshot.certificates.get(&p.client_id).into_iter().flatten() {
            if !p.certificates.contains(pem) {
                p.certificates.push(pem.clone());
            }
        }
        for f in snapshot.federated.get(&p.client_id).into_iter().flatten() {
            if !p.federated.contains(f) {
                p.federated.push(f.clone());
            }
        }
    }
    for r in snapshot.resources {
        let mut body = r.body;
        match body["properties"]["provisioningState"].as_str() {
            // What was being deleted when the cloud stopped is gone now.
            Some("Deleting") => continue,
            Some("Creating" | "Updating") => body["properties"]["provisioningState"] = json!("Succeeded"),
            _ => {}
        }
        inner.resources.insert(r.id.to_ascii_lowercase(), Resource { id: r.id, body });
    }
    let mut jobs = Vec::new();
    for (key, vm) in snapshot.vms {
        if !inner.resources.contains_key(&key) {
            continue;
        }
        let mut guest = vm.guest;
        let running = power(&vm.power) == "running";
        if let Some(docker) = guest.docker.as_mut() {
            docker.certs = vm.docker_certs;
            if docker.certs.is_some() && running {
                docker.daemon = crate::guest::Daemon::Starting;
                jobs.push(Job::StartDocker { vm_key: key.clone(), op: None });
            } else if docker.certs.is_some() {
                docker.daemon = crate::guest::Daemon::Stopped;
            }
        }
        inner.vms.insert(key, VmRuntime { power: power(&vm.power), guest, extension_status: vm.extension_status });
    }
    Ok(jobs)
}

fn snapshot(inner: &Inner, principals: &[crate::ServicePrincipal]) -> Snapshot {
    Snapshot {
        certificates: principals
            .iter()
            .filter(|p| !p.certificates.is_empty())
            .map(|p| (p.client_id.clone(), p.certificates.clone()))
            .collect(),
        federated: principals
            .iter()
            .filter(|p| !p.federated.is_empty())
            .map(|p| (p.client_id.clone(), p.federated.clone()))
            .collect(),
        version: VERSION,
        next_ip: inner.next_ip,
        resources: inner
            .resources
            .values()
            .map(|r| StoredResource { id: r.id.clone(), body: r.body.clone() })
            .collect(),
        vms: inner
            .vms
            .iter()
            .map(|(k, vm)| {
                let stored = StoredVm {
                    power: vm.power.to_owned(),
                    guest: vm.guest.clone(),
                    docker_certs: vm.guest.docker.as_ref().and_then(|d| d.certs.clone()),
                    extension_status: vm.extension_status.clone(),
                };
                (k.clone(), stored)
            })
            .collect(),
    }
}

/// Writes `state.json` now if anything changed since the last save.
pub(crate) fn save(shared: &Shared) -> std::io::Result<()> {
    let data = {
        let mut inner = shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !inner.dirty {
            return Ok(());
        }
        inner.dirty = false;
        serde_json::to_vec(&snapshot(&inner, &shared.principals())).map_err(std::io::Error::other)?
    };
    write_atomic(&shared.state_dir.join(FILE), &data)
}

/// Saves every 250 ms while something changes, until the emulator stops.
pub(crate) async fn saver(shared: Arc<Shared>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = shutdown.changed() => break,
        }
        let s = shared.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || save(&s)).await {
            tracing::warn!("cannot save the local cloud's state: {e}");
        }
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
