//! Persistence: nothing the local cloud acknowledged is lost when it stops or crashes.
//!
//! Every change is a record in a journal (`state.journal.<generation>`, one JSON line per
//! changed resource, VM, operation, address counter or principal credential — its whole new
//! value, or its removal), appended under the state lock in the order the changes happened. A
//! response is sent only once the journal holds its changes on disk: one committer thread writes
//! and `fdatasync`s whatever has queued up while the previous sync ran, so concurrent writes
//! share one sync (group commit) and the cost of a write follows its own size, not the cloud's.
//! `state.json` is a snapshot: written at start (after replaying the journal) and whenever the
//! journal outgrows `Config::checkpoint_bytes`, each time with a new journal generation; the journals of
//! older generations are then deleted. Replaying is idempotent (records carry whole values), so
//! a crash at any point leaves a snapshot and journals that replay to every acknowledged write.
//! A torn last line — a write that was never acknowledged — ends the replay.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::Shared;
use crate::guest::Guest;
use crate::state::{Effect, Inner, Job, Operation, Resource, VmRuntime};
use crate::wire::ArmError;

const SNAPSHOT: &str = "state.json";
const JOURNAL_PREFIX: &str = "state.journal.";
/// Version 1 was a snapshot written every 250 ms (no journal, no operations); it loads as a
/// snapshot of generation 0.
const VERSION: u32 = 2;

/// Why the stored state cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("cannot read or write the local cloud's state: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "`{path}` {problem}; the local cloud will not start over silently: run `azdock local reset` to delete its resources and begin anew"
    )]
    Unusable { path: PathBuf, problem: String },
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    /// The journal generation to replay on top (version 1 files have none: 0).
    #[serde(default)]
    journal: u64,
    next_ip: u32,
    resources: Vec<StoredResource>,
    vms: BTreeMap<String, StoredVm>,
    #[serde(default)]
    ops: BTreeMap<String, StoredOp>,
    /// Certificates registered for principals at run time, by client id.
    #[serde(default)]
    certificates: BTreeMap<String, Vec<String>>,
    /// Federated identity credentials added at run time, by client id.
    #[serde(default)]
    federated: BTreeMap<String, Vec<crate::FederatedCredential>>,
    /// Template deployments, by key.
    #[serde(default)]
    deployments: BTreeMap<String, crate::arm::Run>,
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
    /// come back after a restart. The state directory is private (0700, files 0600).
    #[serde(default)]
    docker_certs: Option<[String; 3]>,
    extension_status: BTreeMap<String, Vec<Value>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredOp {
    /// Milliseconds since the Unix epoch.
    started_ms: u64,
    started_at: String,
    duration_ms: u64,
    effect: StoredEffect,
    error: Option<StoredError>,
    settled: bool,
    blocked: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
enum StoredEffect {
    Provision { key: String },
    Delete { keys: Vec<String> },
    Power { vm_key: String, to: String, back: String },
}

#[derive(Serialize, Deserialize)]
struct StoredError {
    status: u16,
    code: String,
    message: String,
    target: Option<String>,
}

/// One journal line: the new value of one thing, or `None` for its removal.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Record {
    Resource { key: String, value: Option<StoredResource> },
    Vm { key: String, value: Option<Box<StoredVm>> },
    Op { id: String, value: Option<StoredOp> },
    Deployment { key: String, value: Option<Box<crate::arm::Run>> },
    NextIp(u32),
    Principal { client_id: String, certificates: Vec<String>, federated: Vec<crate::FederatedCredential> },
}

/// A stored power state as the runtime's name for it.
fn power(name: &str) -> &'static str {
    match name {
        "stopped" => "stopped",
        "stopping" => "stopping",
        "deallocated" => "deallocated",
        "deallocating" => "deallocating",
        "starting" => "starting",
        _ => "running",
    }
}

/// Where a power state ends when no operation is left to take it there.
fn settled(power: &'static str) -> &'static str {
    match power {
        "stopping" => "stopped",
        "deallocating" => "deallocated",
        "starting" => "running",
        other => other,
    }
}

fn stored_vm(vm: &VmRuntime) -> StoredVm {
    StoredVm {
        power: vm.power.to_owned(),
        guest: vm.guest.clone(),
        docker_certs: vm.guest.docker.as_ref().and_then(|d| d.certs.clone()),
        extension_status: vm.extension_status.clone(),
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

fn stored_op(op: &Operation) -> StoredOp {
    StoredOp {
        started_ms: unix_ms(op.started_wall),
        started_at: op.started_at.clone(),
        duration_ms: u64::try_from(op.duration.as_millis()).unwrap_or(u64::MAX),
        effect: match &op.effect {
            Effect::Provision { key } => StoredEffect::Provision { key: key.clone() },
            Effect::Delete { keys } => StoredEffect::Delete { keys: keys.clone() },
            Effect::Power { vm_key, to, back } => {
                StoredEffect::Power { vm_key: vm_key.clone(), to: (*to).to_owned(), back: (*back).to_owned() }
            }
        },
        error: op.result.as_ref().err().map(|e| StoredError {
            status: e.status,
            code: e.code.clone(),
            message: e.message.clone(),
            target: e.target.clone(),
        }),
        settled: op.settled,
        blocked: op.blocked,
    }
}

/// An operation as it was, re-based on this process's clock: the time it already ran counts.
fn operation(op: StoredOp) -> Operation {
    let now = SystemTime::now();
    let started_wall = UNIX_EPOCH + Duration::from_millis(op.started_ms);
    let ran = now.duration_since(started_wall).unwrap_or_default();
    let started = Instant::now().checked_sub(ran).unwrap_or_else(Instant::now);
    let mut result = op.error.map_or(Ok(()), |e| {
        let mut err = ArmError::new(e.status, &e.code, e.message);
        err.target = e.target;
        Err(err)
    });
    // A handler that was running (a script, a dockerd starting) died with the old process.
    if op.blocked && result.is_ok() {
        result = Err(ArmError::new(
            200,
            "VMExtensionProvisioningError",
            "The local cloud restarted while the extension's handler ran, so its outcome is unknown; run the extension again.",
        ));
    }
    Operation {
        started,
        started_wall,
        started_at: op.started_at,
        duration: Duration::from_millis(op.duration_ms),
        effect: match op.effect {
            StoredEffect::Provision { key } => Effect::Provision { key },
            StoredEffect::Delete { keys } => Effect::Delete { keys },
            StoredEffect::Power { vm_key, to, back } => Effect::Power { vm_key, to: power(&to), back: power(&back) },
        },
        result,
        settled: op.settled,
        blocked: false,
    }
}

/// The records for everything changed since the last call (none when nothing changed).
fn changes(inner: &mut Inner, shared: &Shared) -> Vec<Record> {
    let mut records = Vec::new();
    for key in inner.resources.take_touched() {
        let value = inner.resources.get(&key).map(|r| StoredResource { id: r.id.clone(), body: r.body.clone() });
        records.push(Record::Resource { key, value });
    }
    for key in inner.vms.take_touched() {
        let value = inner.vms.get(&key).map(|vm| Box::new(stored_vm(vm)));
        records.push(Record::Vm { key, value });
    }
    for id in inner.ops.take_touched() {
        let value = inner.ops.get(&id).map(stored_op);
        records.push(Record::Op { id, value });
    }
    for key in inner.deployments.take_touched() {
        let value = inner.deployments.get(&key).map(|r| Box::new(r.clone()));
        records.push(Record::Deployment { key, value });
    }
    if inner.next_ip != inner.saved_next_ip {
        inner.saved_next_ip = inner.next_ip;
        records.push(Record::NextIp(inner.next_ip));
    }
    if std::mem::take(&mut inner.principals_changed) {
        for p in shared.principals() {
            records.push(Record::Principal {
                client_id: p.client_id,
                certificates: p.certificates,
                federated: p.federated,
            });
        }
    }
    records
}

/// Where the committer stands: everything up to `durable` is on disk; `failed` once a write or
/// sync failed (then nothing more is acknowledged).
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    pub durable: u64,
    pub failed: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    /// The sequence number of the last append.
    seq: u64,
    closing: bool,
}

/// The journal of a persistent local cloud.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    pending: Mutex<Pending>,
    wake: Condvar,
    progress: watch::Sender<Progress>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Queues what changed since the last call (under the state lock, so records keep the order of
/// the changes) and returns the sequence number a response must wait for. Without persistence
/// it only forgets the changes.
pub(crate) fn append(shared: &Shared, inner: &mut Inner) -> u64 {
    let records = changes(inner, shared);
    let Some(journal) = &shared.journal else { return 0 };
    let mut pending = lock(&journal.pending);
    if !records.is_empty() {
        for record in &records {
            // Serializing plain data into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut pending.buf, record);
            pending.buf.push(b'\n');
        }
        pending.seq += 1;
        journal.wake.notify_one();
    }
    pending.seq
}

/// Waits until everything up to `seq` is on disk.
pub(crate) async fn durable(shared: &Shared, seq: u64) -> Result<(), Arc<str>> {
    let Some(journal) = &shared.journal else { return Ok(()) };
    let mut rx = journal.progress.subscribe();
    let progress = rx.wait_for(|p| p.durable >= seq || p.failed.is_some()).await.map(|p| Progress::clone(&p));
    match progress {
        Ok(p) if p.durable >= seq => Ok(()),
        Ok(p) => Err(p.failed.unwrap_or_else(|| "the journal stopped".into())),
        Err(_) => Err("the journal stopped".into()),
    }
}

/// Loads the snapshot and replays the journals into `inner`, reconciles the guests with it,
/// then writes a new snapshot and opens a new journal. Returns the journal and the jobs that
/// bring running Docker hosts back and remove the guests of VMs that are gone.
pub(crate) fn open(
    dir: &Path,
    inner: &mut Inner,
    principals: &mut [crate::ServicePrincipal],
) -> Result<(Journal, u64, Vec<Job>), LoadError> {
    let mut generation = load(dir, inner, principals)?;
    let jobs = reconcile(dir, inner);
    // Everything loaded is the new snapshot's; nothing of it is a change to journal.
    let _ = inner.resources.take_touched();
    let _ = inner.vms.take_touched();
    let _ = inner.ops.take_touched();
    inner.saved_next_ip = inner.next_ip;
    inner.principals_changed = false;
    generation += 1;
    write_snapshot(dir, &snapshot(inner, principals, generation))?;
    remove_journals_before(dir, generation)?;
    let (progress, _) = watch::channel(Progress::default());
    let journal = Journal {
        dir: dir.to_owned(),
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        progress,
        committer: Mutex::new(None),
    };
    Ok((journal, generation, jobs))
}

/// Starts the committer thread of the shared state's journal.
pub(crate) fn start_committer(shared: &Arc<Shared>, generation: u64, checkpoint_bytes: u64) -> std::io::Result<()> {
    let Some(journal) = shared.journal.clone() else { return Ok(()) };
    let file = open_journal(&journal.dir, generation)?;
    let weak = Arc::downgrade(shared);
    let theirs = journal.clone();
    let handle = std::thread::Builder::new()
        .name("azdock-journal".into())
        .spawn(move || commit_loop(&theirs, &weak, file, generation, checkpoint_bytes))?;
    *lock(&journal.committer) = Some(handle);
    Ok(())
}

/// Writes what is queued, then stops the committer (on the emulator's stop).
pub(crate) fn close(shared: &Shared) {
    let Some(journal) = &shared.journal else { return };
    lock(&journal.pending).closing = true;
    journal.wake.notify_one();
    if let Some(handle) = lock(&journal.committer).take() {
        let _ = handle.join();
    }
}

fn open_journal(dir: &Path, generation: u64) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.join(format!("{JOURNAL_PREFIX}{generation}")))?;
    sync_dir(dir)?;
    Ok(file)
}

fn commit_loop(
    journal: &Journal,
    shared: &std::sync::Weak<Shared>,
    mut file: std::fs::File,
    mut generation: u64,
    checkpoint_bytes: u64,
) {
    loop {
        let (buf, seq, closing) = {
            let mut pending = lock(&journal.pending);
            while pending.buf.is_empty() && !pending.closing {
                let (next, waited) = journal
                    .wake
                    .wait_timeout(pending, Duration::from_secs(1))
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                pending = next;
                // An emulator dropped without `stop`: nothing will ever be queued again.
                if waited.timed_out() && shared.strong_count() == 0 {
                    return;
                }
            }
            (std::mem::take(&mut pending.buf), pending.seq, pending.closing)
        };
        if !buf.is_empty() {
            let written = file.write_all(&buf).and_then(|()| file.sync_data());
            match written {
                Ok(()) => journal.progress.send_modify(|p| p.durable = seq),
                Err(e) => {
                    tracing::error!("cannot write the local cloud's journal: {e}");
                    journal.progress.send_modify(|p| p.failed = Some(format!("cannot write the journal: {e}").into()));
                    return;
                }
            }
        }
        if closing {
            return;
        }
        if file.metadata().is_ok_and(|m| m.len() > checkpoint_bytes)
            && let Some(shared) = shared.upgrade()
            && let Err(e) = checkpoint(&shared, journal, &mut file, &mut generation)
        {
            tracing::warn!("cannot fold the local cloud's journal into a snapshot: {e}");
        }
    }
}

/// Folds the journal into a new snapshot: under the state lock (so no change slips between),
/// flush what is queued to the current journal, take the snapshot, switch to the next
/// generation; then, outside the lock, write the snapshot and delete the old journal.
fn checkpoint(
    shared: &Shared,
    journal: &Journal,
    file: &mut std::fs::File,
    generation: &mut u64,
) -> Result<(), LoadError> {
    let data = {
        let mut inner = lock(&shared.inner);
        // Everything changed so far goes to the current journal first, so that the switch to
        // the next generation loses nothing even if the snapshot is never written.
        let seq = append(shared, &mut inner);
        let buf = std::mem::take(&mut lock(&journal.pending).buf);
        file.write_all(&buf)?;
        file.sync_data()?;
        journal.progress.send_modify(|p| p.durable = seq);
        *generation += 1;
        let data = serialize(&snapshot(&inner, &shared.principals(), *generation))?;
        *file = open_journal(&journal.dir, *generation)?;
        data
    };
    write_atomic(&journal.dir.join(SNAPSHOT), &data)?;
    remove_journals_before(&journal.dir, *generation)?;
    Ok(())
}

fn snapshot(inner: &Inner, principals: &[crate::ServicePrincipal], generation: u64) -> Snapshot {
    Snapshot {
        version: VERSION,
        journal: generation,
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
        next_ip: inner.next_ip,
        resources: inner
            .resources
            .values()
            .map(|r| StoredResource { id: r.id.clone(), body: r.body.clone() })
            .collect(),
        vms: inner.vms.iter().map(|(k, vm)| (k.clone(), stored_vm(vm))).collect(),
        ops: inner.ops.iter().map(|(id, op)| (id.clone(), stored_op(op))).collect(),
        deployments: inner.deployments.iter().map(|(k, r)| (k.clone(), r.clone())).collect(),
    }
}

fn serialize(snapshot: &Snapshot) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec(snapshot).map_err(std::io::Error::other)
}

fn write_snapshot(dir: &Path, snapshot: &Snapshot) -> Result<(), LoadError> {
    write_atomic(&dir.join(SNAPSHOT), &serialize(snapshot)?)?;
    Ok(())
}

/// Reads the snapshot and replays the journals; the generation of the last journal replayed.
fn load(dir: &Path, inner: &mut Inner, principals: &mut [crate::ServicePrincipal]) -> Result<u64, LoadError> {
    let path = dir.join(SNAPSHOT);
    let unusable = |problem: String| LoadError::Unusable { path: path.clone(), problem };
    let snapshot = match std::fs::read(&path) {
        Ok(data) => {
            let value: Value =
                serde_json::from_slice(&data).map_err(|e| unusable(format!("is not valid JSON ({e})")))?;
            let version = value["version"].as_u64().unwrap_or(0);
            if version == 0 || version > u64::from(VERSION) {
                return Err(unusable(format!(
                    "was written by another version of azdock (state version {version}; this one reads 1 and {VERSION})"
                )));
            }
            Some(serde_json::from_value::<Snapshot>(value).map_err(|e| unusable(format!("cannot be read ({e})")))?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let mut first = 0;
    if let Some(snapshot) = snapshot {
        first = snapshot.journal;
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
            inner.resources.load(r.id.to_ascii_lowercase(), Resource { id: r.id, body: r.body });
        }
        for (key, vm) in snapshot.vms {
            inner.vms.load(key, runtime(vm));
        }
        for (id, op) in snapshot.ops {
            inner.ops.load(id, operation(op));
        }
        for (key, run) in snapshot.deployments {
            inner.deployments.load(key, run);
        }
    }
    let mut last = first;
    for generation in journal_generations(dir)?.into_iter().filter(|g| *g >= first) {
        replay(&dir.join(format!("{JOURNAL_PREFIX}{generation}")), inner, principals)?;
        last = generation;
    }
    Ok(last)
}

fn runtime(vm: StoredVm) -> VmRuntime {
    let mut guest = vm.guest;
    if let Some(docker) = guest.docker.as_mut() {
        docker.certs = vm.docker_certs;
    }
    VmRuntime { power: power(&vm.power), guest, extension_status: vm.extension_status }
}

/// Applies a journal's records in order, up to the first line that is not a whole record (a
/// write cut short by the crash, never acknowledged).
fn replay(path: &Path, inner: &mut Inner, principals: &mut [crate::ServicePrincipal]) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        let Ok(record) = serde_json::from_slice::<Record>(&line) else {
            tracing::warn!("`{}` ends in a record cut short; what follows it was never acknowledged", path.display());
            return Ok(());
        };
        match record {
            Record::Resource { key, value: Some(r) } => inner.resources.load(key, Resource { id: r.id, body: r.body }),
            Record::Resource { key, value: None } => inner.resources.unload(&key),
            Record::Vm { key, value: Some(vm) } => inner.vms.load(key, runtime(*vm)),
            Record::Vm { key, value: None } => inner.vms.unload(&key),
            Record::Op { id, value: Some(op) } => inner.ops.load(id, operation(op)),
            Record::Op { id, value: None } => inner.ops.unload(&id),
            Record::Deployment { key, value: Some(run) } => inner.deployments.load(key, *run),
            Record::Deployment { key, value: None } => inner.deployments.unload(&key),
            Record::NextIp(n) => inner.next_ip = n,
            Record::Principal { client_id, certificates, federated } => {
                if let Some(p) = principals.iter_mut().find(|p| p.client_id == client_id) {
                    p.certificates = certificates;
                    p.federated = federated;
                }
            }
        }
    }
}

/// Brings what was loaded in line with a fresh process: resources in a transitional state with
/// no operation to finish them settle as the old process would have left them, VMs whose
/// resource is gone are dropped, running Docker hosts get their dockerd back, and the guest
/// directories of VMs that no longer exist are removed.
fn reconcile(dir: &Path, inner: &mut Inner) -> Vec<Job> {
    let pending: std::collections::BTreeSet<String> = inner
        .ops
        .values()
        .filter(|op| !op.settled)
        .flat_map(|op| match &op.effect {
            Effect::Provision { key } => vec![key.clone()],
            Effect::Delete { keys } => keys.clone(),
            Effect::Power { vm_key, .. } => vec![vm_key.clone()],
        })
        .collect();
    let keys: Vec<String> = inner.resources.keys().filter(|k| !pending.contains(*k)).cloned().collect();
    for key in keys {
        let state = inner.resources[&key].body["properties"]["provisioningState"].as_str().map(str::to_owned);
        match state.as_deref() {
            Some("Deleting") => {
                inner.resources.remove(&key);
            }
            Some("Creating" | "Updating") => {
                if let Some(r) = inner.resources.get_mut(&key) {
                    r.body["properties"]["provisioningState"] = json!("Succeeded");
                }
            }
            _ => {}
        }
    }
    let gone: Vec<String> = inner.vms.keys().filter(|k| !inner.resources.contains_key(*k)).cloned().collect();
    for key in gone {
        inner.vms.remove(&key);
    }
    let mut jobs = Vec::new();
    let mut kept = std::collections::BTreeSet::new();
    let vm_keys: Vec<String> = inner.vms.keys().cloned().collect();
    for key in vm_keys {
        kept.insert(crate::docker::hex_id(&key));
        let Some(vm) = inner.vms.get_mut(&key) else { continue };
        if !pending.contains(&key) {
            vm.power = settled(vm.power);
        }
        let running = vm.power == "running";
        if vm.guest.os == crate::OsKind::Linux {
            if running {
                jobs.push(Job::StartSsh { vm_key: key.clone() });
            } else {
                vm.guest.ssh_endpoint = Some(crate::guest::SshEndpoint::Stopped);
            }
        }
        if let Some(docker) = vm.guest.docker.as_mut()
            && docker.runs_daemon()
        {
            if running {
                docker.daemon = crate::guest::Daemon::Starting;
                jobs.push(Job::StartDocker { vm_key: key.clone(), op: None });
            } else {
                docker.daemon = crate::guest::Daemon::Stopped;
            }
        }
    }
    for entry in std::fs::read_dir(dir.join("vms")).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !kept.contains(&name) {
            jobs.push(Job::RemoveGuest { dir: entry.path() });
        }
    }
    jobs
}

fn journal_generations(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut generations: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_prefix(JOURNAL_PREFIX)?.parse().ok())
        .collect();
    generations.sort_unstable();
    Ok(generations)
}

fn remove_journals_before(dir: &Path, generation: u64) -> std::io::Result<()> {
    for old in journal_generations(dir)?.into_iter().filter(|g| *g < generation) {
        std::fs::remove_file(dir.join(format!("{JOURNAL_PREFIX}{old}")))?;
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    azdock_files::write_atomic(path, data, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> Inner {
        Inner::new(
            crate::throttle::Throttle::new(crate::ThrottleConfig::unlimited()),
            crate::Faults::new(1),
            crate::Durations::instant(),
        )
    }

    fn line(record: &Record) -> String {
        serde_json::to_string(record).unwrap() + "\n"
    }

    fn group(name: &str) -> Record {
        let id = format!("/subscriptions/s/resourceGroups/{name}");
        Record::Resource {
            key: id.to_ascii_lowercase(),
            value: Some(StoredResource { id: id.clone(), body: json!({"id": id, "name": name}) }),
        }
    }

    #[test]
    fn replay_applies_whole_records_in_order_and_stops_at_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.journal.1");
        let gone = Record::Resource { key: "/subscriptions/s/resourcegroups/b".into(), value: None };
        let torn = line(&group("d"));
        let text = [line(&group("a")), line(&group("b")), line(&gone), line(&Record::NextIp(42)), line(&group("c"))]
            .concat()
            + &torn[..torn.len() / 2];
        std::fs::write(&path, text).unwrap();
        let mut state = inner();
        replay(&path, &mut state, &mut []).unwrap();
        let keys: Vec<&String> = state.resources.keys().collect();
        assert_eq!(keys, ["/subscriptions/s/resourcegroups/a", "/subscriptions/s/resourcegroups/c"]);
        assert_eq!(state.next_ip, 42);
        assert!(state.resources.take_touched().is_empty(), "replayed state is not a new change");

        // A damaged line ends the replay too: nothing after it was acknowledged.
        std::fs::write(&path, [line(&group("e")), "{\"resource\":\n".into(), line(&group("f"))].concat()).unwrap();
        let mut state = inner();
        replay(&path, &mut state, &mut []).unwrap();
        assert_eq!(state.resources.len(), 1);
    }

    #[test]
    fn operations_resume_on_the_new_clock_and_running_handlers_fail() {
        let started = SystemTime::now() - Duration::from_secs(5);
        let stored = |blocked: bool| StoredOp {
            started_ms: unix_ms(started),
            started_at: "then".into(),
            duration_ms: 20_000,
            effect: StoredEffect::Power { vm_key: "vm".into(), to: "deallocated".into(), back: "running".into() },
            error: None,
            settled: false,
            blocked,
        };
        let op = operation(stored(false));
        let now = Instant::now();
        let left = op.remaining(now);
        assert!(left > Duration::from_secs(14) && left <= Duration::from_secs(15), "{left:?}");
        assert!(op.result.is_ok() && !op.settled);
        assert!(matches!(op.effect, Effect::Power { to: "deallocated", back: "running", .. }));
        let back = stored_op(&op);
        assert_eq!((back.started_ms, back.duration_ms), (unix_ms(started), 20_000));

        let interrupted = operation(stored(true));
        assert!(!interrupted.blocked);
        let err = interrupted.result.unwrap_err();
        assert_eq!(err.code, "VMExtensionProvisioningError");
        assert!(err.message.contains("run the extension again"), "{}", err.message);
    }

    #[test]
    fn a_vm_caught_mid_action_settles_unless_its_operation_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = inner();
        for (name, power) in [("a", "starting"), ("b", "stopping"), ("c", "deallocating"), ("d", "starting")] {
            let key = format!("/subscriptions/s/resourcegroups/g/providers/microsoft.compute/virtualmachines/{name}");
            state.resources.load(key.clone(), Resource { id: key.clone(), body: json!({"properties": {}}) });
            let guest = Guest::new(crate::OsKind::Linux, name);
            state.vms.load(key, VmRuntime { power, guest, extension_status: BTreeMap::new() });
        }
        let d = "/subscriptions/s/resourcegroups/g/providers/microsoft.compute/virtualmachines/d".to_owned();
        let op = state.start_op(
            Duration::from_secs(30),
            Effect::Power { vm_key: d, to: "running", back: "stopped" },
            Ok(()),
        );
        // A guest directory whose VM is gone is removed; the others are kept.
        std::fs::create_dir_all(dir.path().join("vms/orphan")).unwrap();
        let jobs = reconcile(dir.path(), &mut state);
        let powers: Vec<&str> = state.vms.values().map(|v| v.power).collect();
        assert_eq!(powers, ["running", "stopped", "deallocated", "starting"]);
        assert!(state.ops.contains_key(&op));
        // The running VM's SSH endpoint opens again; the stopped ones' stay closed.
        let running = state.vms.iter().find(|(_, v)| v.power == "running").map(|(k, _)| k.clone()).unwrap();
        assert!(
            matches!(jobs.as_slice(), [Job::StartSsh { vm_key }, Job::RemoveGuest { dir: gone }] if *vm_key == running && gone.ends_with("vms/orphan")),
            "{jobs:?}"
        );
        let closed = state.vms.values().filter(|v| v.guest.ssh_endpoint == Some(crate::guest::SshEndpoint::Stopped));
        assert_eq!(closed.count(), 3);
    }

    #[test]
    fn power_states_come_back_as_they_were_stored() {
        for state in ["running", "stopped", "stopping", "deallocated", "deallocating", "starting"] {
            assert_eq!(power(state), state);
        }
        assert_eq!(power("something new"), "running");
        let settled: Vec<&str> = ["starting", "stopping", "deallocating", "running", "stopped", "deallocated"]
            .into_iter()
            .map(settled)
            .collect();
        assert_eq!(settled, ["running", "stopped", "deallocated", "running", "stopped", "deallocated"]);
    }
}
