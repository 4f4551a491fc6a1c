//! CustomScript, run for real: the script runs as the guest's root in the VM's sandbox
//! (`sandbox`: a user namespace mapped to unprivileged host ids, over the VM's own `/etc`,
//! `/var/lib`, `/home`, `/root` and `/tmp`, the host read-only), with `systemctl` and the
//! package managers replaced by the local cloud's recording shims. Exit code and output become
//! the extension's instanceView status and StdOut/StdErr substatuses, as the real handler
//! reports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Shared;
use crate::guest::{Daemon, Docker};
use crate::guestfs;
pub(crate) use crate::sandbox::Output;
use crate::sandbox::{IdMap, guest_file};
use crate::state::Job;
use crate::wire::ArmError;

/// Scripts that run longer are killed, as the real handler gives up after 90 minutes.
const TIMEOUT: Duration = Duration::from_secs(600);

/// What to run, taken from the settings; held in memory only (it may carry secrets).
#[derive(Clone)]
pub(crate) struct Script {
    pub command: Option<String>,
    pub script: Option<Vec<u8>>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Script([redacted])")
    }
}

/// Reads CustomScript 2.x settings (public and protected); an error says what is wrong.
pub(crate) fn parse(settings: &Value, protected: &Value) -> Result<Script, String> {
    use base64::Engine as _;
    let field = |name: &str| protected.get(name).or_else(|| settings.get(name));
    if field("fileUris").and_then(Value::as_array).is_some_and(|u| !u.is_empty()) {
        return Err("fileUris cannot be downloaded in azdock's local cloud (it has no network); put the script in `script` instead".into());
    }
    let command = field("commandToExecute").and_then(Value::as_str).map(str::to_owned);
    let script = match field("script").and_then(Value::as_str) {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| "`script` is not base64".to_owned())?;
            // The handler accepts gzip-then-base64 too; gzip starts with 1f 8b.
            if bytes.starts_with(&[0x1f, 0x8b]) {
                return Err(
                    "gzip-compressed scripts are not supported by azdock's local cloud; send the script uncompressed"
                        .into(),
                );
            }
            Some(bytes)
        }
        None => None,
    };
    if command.is_none() && script.is_none() {
        return Err("CustomScript needs commandToExecute or script".into());
    }
    Ok(Script { command, script })
}

const SYSTEMCTL_SHIM: &str = r#"#!/bin/sh
# azdock local cloud: systemctl records what it was asked and succeeds.
mkdir -p /var/lib/azdock-guest
echo "$*" >> /var/lib/azdock-guest/systemctl.log
case "$1" in
  is-active|is-enabled) case " $* " in *" --quiet "*|*" -q "*) ;; *) echo active ;; esac ;;
esac
exit 0
"#;

/// Packages the shim accepts when the host lacks them.
const SIMULATED_PACKAGES: &str = "docker.io\ndocker-ce\ndocker\nmoby-engine\ncontainerd\nrunc\n";

const PACKAGE_SHIM: &str = r#"#!/bin/sh
# azdock local cloud: installs succeed only for packages present on the host. In first-boot mode
# the package lock is held (as cloud-init and unattended-upgrades hold it on Azure's Ubuntu
# images) until the time in first-boot-until, and the first update cannot reach the mirror.
state=/var/lib/azdock-guest
mkdir -p "$state"
echo "$(basename "$0") $*" >> "$state/packages.log"
agent=/run/azdock-agent
verb=""
timeout=0
prev=""
for a in "$@"; do
  case "$prev" in -o) case "$a" in [Dd][Pp]kg::Lock::Timeout=*) timeout=${a#*=} ;; esac ;; esac
  case "$a" in -o) ;; -*) ;; *) [ "$prev" = -o ] || { [ -n "$verb" ] || verb="$a"; } ;; esac
  prev="$a"
done
until=$(cat "$state/first-boot-until" 2>/dev/null || echo 0)
if [ "$(date +%s)" -lt "$until" ]; then
  case "$verb" in
    update)
      # apt-get update takes the lists lock, which DPkg::Lock::Timeout does not wait for.
      echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1042 (apt-get)" >&2
      echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
      exit 100 ;;
    install)
      waited=0
      while [ "$(date +%s)" -lt "$until" ] && [ "$waited" -lt "$timeout" ]; do
        [ "$waited" -gt 0 ] || echo "Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1187 (unattended-upgr)" >&2
        sleep 1
        waited=$((waited + 1))
      done
      if [ "$(date +%s)" -lt "$until" ]; then
        echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1187 (unattended-upgr)" >&2
        echo "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?" >&2
        exit 100
      fi ;;
  esac
fi
if [ "$verb" = update ]; then
  if [ -f "$state/first-update-fails" ]; then
    rm -f "$state/first-update-fails"
    # As apt does: a mirror it cannot reach is a warning, and the exit status is still 0.
    echo "Err:1 http://azure.archive.ubuntu.com/ubuntu noble InRelease"
    echo "  Temporary failure resolving 'azure.archive.ubuntu.com'"
    echo "W: Failed to fetch http://azure.archive.ubuntu.com/ubuntu/dists/noble/InRelease  Temporary failure resolving 'azure.archive.ubuntu.com'" >&2
    echo "W: Some index files failed to download. They have been ignored, or old ones used instead." >&2
    exit 0
  fi
  : > "$state/lists-updated"
  exit 0
fi
if [ "$verb" = install ] && [ -f "$state/first-boot-until" ] && [ ! -f "$state/lists-updated" ]; then
  # A first boot's package lists are empty until an update reaches the mirror.
  prev=""
  for a in "$@"; do
    skip="$prev"
    prev="$a"
    [ "$skip" != -o ] || continue
    case "$a" in -*|install) ;; *) echo "E: Unable to locate package $a" >&2; exit 100 ;; esac
  done
fi
verb=""
prev=""
for a in "$@"; do
  skip="$prev"
  prev="$a"
  [ "$skip" != -o ] || continue
  case "$a" in
    -*) ;;
    *) if [ -z "$verb" ]; then verb="$a"; elif [ "$verb" = install ]; then
         if grep -qx "$a" "$agent/host-packages" 2>/dev/null; then
           case "$a" in docker.io|docker-ce|docker|moby-engine) getent group docker >/dev/null || groupadd --system docker ;; esac
           echo "$a is already the newest version."
           if [ -f "$state/first-boot-until" ]; then mkdir -p "$state/installed" && : > "$state/installed/$a"; fi
         elif grep -qx "$a" "$agent/simulated-packages" 2>/dev/null; then
           # As the real packages do: their socket's group.
           case "$a" in docker.io|docker-ce|docker|moby-engine) getent group docker >/dev/null || groupadd --system docker ;; esac
           echo "Setting up $a (simulated: the host has no $a; azdock's local cloud reports its daemon as unavailable)"
           if [ -f "$state/first-boot-until" ]; then mkdir -p "$state/installed" && : > "$state/installed/$a"; fi
         else
           echo "E: Unable to locate package $a (azdock's local cloud installs only packages present on its host)" >&2
           exit 100
         fi
       fi ;;
  esac
done
exit 0
"#;

/// Runs a script job and records its outcome; queues a dockerd when the script configured one.
pub(crate) fn run(shared: &Arc<Shared>, vm_key: &str, extension: &str, op: &str, script: &Script) {
    let outcome = execute(shared, vm_key, script);
    let (status, result) = match &outcome {
        Ok(out) => instance_view(extension, out),
        Err(reason) => (
            json!({"name": extension, "type": "Microsoft.Azure.Extensions.CustomScript", "typeHandlerVersion": "2.1.10",
                   "statuses": [{"code": "ProvisioningState/failed/-1", "level": "Error", "displayStatus": "Provisioning failed", "message": format!("Enable failed: {reason}"), "time": crate::now_rfc3339()}]}),
            Err(format!("Enable failed: {reason}")),
        ),
    };
    let failure = result.as_ref().err().map(|message| {
        ArmError::new(
            200,
            "VMExtensionProvisioningError",
            format!("VM has reported a failure when processing extension '{extension}' (publisher 'Microsoft.Azure.Extensions' and type 'CustomScript'). Error message: \"{message}\". More information on troubleshooting is available at https://aka.ms/VMExtensionCSELinuxTroubleshoot."),
        )
    });
    let ok = failure.is_none();
    let extension_key = extension.to_ascii_lowercase();
    finish(shared, vm_key, op, ok, |inner| {
        if let Some(vm) = inner.vms.get_mut(vm_key) {
            vm.extension_status.insert(extension_key, vec![status]);
        }
        if let Some(failure) = failure
            && let Some(o) = inner.ops.get_mut(op)
        {
            o.result = Err(failure);
        }
    });
}

/// Records a guest-side run under the state lock: applies `update` (statuses, results), then
/// starts a dockerd the run configured (keeping `op` blocked until it listens) or unblocks `op`
/// — in that order, so no poller sees the operation end before its outcome is recorded.
pub(crate) fn finish(
    shared: &Arc<Shared>,
    vm_key: &str,
    op: &str,
    ok: bool,
    update: impl FnOnce(&mut crate::state::Inner),
) {
    let mut inner = shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    update(&mut inner);
    let mut start_docker = false;
    let root = vm_dir(shared, vm_key);
    if ok && let Some(vm) = inner.vms.get_mut(vm_key) {
        match configured_docker(&root) {
            Some(docker) => {
                start_docker = docker.daemon == Daemon::Starting;
                vm.guest.docker = Some(docker);
            }
            // Docker restarted without a TCP listener: the script took TLS away (an uninstall).
            None if docker_restarted(&root) && vm.guest.docker.is_some() => {
                vm.guest.docker = None;
                inner.jobs.push(Job::StopDocker { vm_key: vm_key.to_owned() });
            }
            None => {}
        }
    }
    if start_docker {
        // Still blocked: the dockerd job unblocks it once the daemon listens.
        inner.jobs.push(Job::StartDocker { vm_key: vm_key.to_owned(), op: Some(op.to_owned()) });
    } else if let Some(o) = inner.ops.get_mut(op) {
        o.blocked = false;
    }
    let jobs = std::mem::take(&mut inner.jobs);
    // Journaled now; the next response that shows it waits for it to be on disk.
    crate::persist::append(shared, &mut inner);
    drop(inner);
    crate::run_jobs(shared, jobs);
}

/// The per-VM root holding `etc`, `var/lib`, `home`, `root` and `tmp`.
pub(crate) fn vm_dir(shared: &Shared, vm_key: &str) -> PathBuf {
    shared.vm_dir(vm_key).join("root")
}

/// The local cloud's own files for a VM's sandbox (shims, package lists), outside the VM's root.
pub(crate) fn agent_dir(shared: &Shared, vm_key: &str) -> PathBuf {
    shared.vm_dir(vm_key).join("agent")
}

/// Where the shims log what they were asked, inside the VM.
const SYSTEMCTL_LOG: &str = "/var/lib/azdock-guest/systemctl.log";

pub(crate) fn execute(shared: &Shared, vm_key: &str, script: &Script) -> Result<Output, String> {
    // The sandbox's own reason, before any of the VM's directories are made.
    if let Some(reason) = crate::sandbox::unavailable_reason() {
        return Err(reason);
    }
    let (vm, ids) = (vm_dir(shared, vm_key), IdMap::for_vm(vm_key));
    crate::sandbox::prepare(&vm, ids)?;
    let guest_err = |path: &str, e: std::io::Error| format!("cannot write `{path}` in the VM: {e}");
    first_boot(&vm, ids, shared.first_boot_lock).map_err(|e| guest_err(FIRST_BOOT_UNTIL, e))?;
    // The platform provisions the VM (its admin account, sshd's host keys) before any extension.
    crate::ssh::boot(shared, vm_key)?;
    let agent = agent_dir(shared, vm_key);
    write_agent(&agent, &shared.ca_pem, &masked(&vm))
        .map_err(|e| format!("cannot write `{}`: {e}", agent.display()))?;
    // What systemctl was asked is read per run: an old run's restart must not count again.
    guestfs::remove(&vm, SYSTEMCTL_LOG).map_err(|e| guest_err(SYSTEMCTL_LOG, e))?;
    let workdir = "/var/lib/waagent/custom-script/download/0";
    let command = match (&script.script, &script.command) {
        (Some(body), _) => {
            let path = format!("{workdir}/script.sh");
            guestfs::write(&vm, &path, body, 0o700, ids).map_err(|e| guest_err(&path, e))?;
            "/bin/sh ./script.sh".to_owned()
        }
        (None, Some(command)) => {
            let keep = format!("{workdir}/.keep");
            guestfs::write(&vm, &keep, b"", 0o600, ids).map_err(|e| guest_err(&keep, e))?;
            command.clone()
        }
        (None, None) => return Err("nothing to run".into()),
    };
    let socket = crate::docker::socket_path(shared, vm_key);
    crate::sandbox::run(
        &crate::sandbox::Run {
            vm: &vm,
            ids,
            agent: &agent,
            docker_socket: Some(&socket),
            workdir,
            env: vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", crate::imds_base(shared))],
            command: &command,
        },
        TIMEOUT,
    )
}

/// The handler's instanceView for a finished script, and whether it succeeded.
fn instance_view(extension: &str, out: &Output) -> (Value, Result<(), String>) {
    let ok = out.code == 0;
    let message = if ok {
        format!("Enable succeeded: \n[stdout]\n{}\n[stderr]\n{}", out.stdout, out.stderr)
    } else {
        format!(
            "Enable failed: failed to execute command: command terminated with exit status={}\n[stdout]\n{}\n[stderr]\n{}",
            out.code, out.stdout, out.stderr
        )
    };
    let (state, level, display) =
        if ok { ("succeeded", "Info", "Provisioning succeeded") } else { ("failed", "Error", "Provisioning failed") };
    let code =
        if ok { "ProvisioningState/succeeded".to_owned() } else { format!("ProvisioningState/failed/{}", out.code) };
    let view = json!({
        "name": extension, "type": "Microsoft.Azure.Extensions.CustomScript", "typeHandlerVersion": "2.1.10",
        "statuses": [{"code": code, "level": level, "displayStatus": display, "message": message, "time": crate::now_rfc3339()}],
        "substatuses": [
            {"code": format!("ComponentStatus/StdOut/{state}"), "level": "Info", "displayStatus": display, "message": out.stdout},
            {"code": format!("ComponentStatus/StdErr/{state}"), "level": "Info", "displayStatus": display, "message": out.stderr},
        ],
    });
    (view, if ok { Ok(()) } else { Err(message) })
}

/// Where a guest in first-boot mode keeps when its package lock frees (seconds since the epoch).
const FIRST_BOOT_UNTIL: &str = "/var/lib/azdock-guest/first-boot-until";

/// First-boot mode, at a guest's first run: its package lock is held for `lock` from now and
/// its first update fails. Later runs find the guest booted (the files are the guest's own).
fn first_boot(vm: &Path, ids: IdMap, lock: std::time::Duration) -> std::io::Result<()> {
    if lock.is_zero() || guest_file(vm, FIRST_BOOT_UNTIL).is_some() {
        return Ok(());
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    guestfs::write(vm, "/var/lib/azdock-guest/first-update-fails", b"", 0o644, ids)?;
    guestfs::write(vm, FIRST_BOOT_UNTIL, format!("{}\n", (now + lock).as_secs()).as_bytes(), 0o644, ids)
}

/// What a fresh image lacks that this machine has: in first-boot mode, Docker's binaries until
/// the guest installs `docker.io` (hidden from the guest by non-executable files bound over them).
pub(crate) fn masked(vm: &Path) -> Vec<&'static str> {
    let fresh = guest_file(vm, FIRST_BOOT_UNTIL).is_some();
    let installed = ["docker.io", "docker-ce", "moby-engine"]
        .iter()
        .any(|p| guest_file(vm, &format!("/var/lib/azdock-guest/installed/{p}")).is_some());
    if fresh && !installed { vec!["dockerd", "docker"] } else { Vec::new() }
}

/// The shims, the package lists they consult and the local cloud's CA (`ca.pem`, for IMDS at
/// `$AZURE_POD_IDENTITY_AUTHORITY_HOST`), rewritten before each run (root's, read-only inside).
pub(crate) fn write_agent(agent: &Path, ca_pem: &str, masked: &[&str]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let bin = agent.join("bin");
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(&bin)?;
    let hidden = agent.join("masked");
    match std::fs::remove_dir_all(&hidden) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::DirBuilder::new().mode(0o755).create(&hidden)?;
    for tool in masked {
        write_mode(&hidden.join(tool), b"", 0o644)?;
    }
    let packages =
        Command::new("dpkg-query").args(["-W", "-f", "${Package}\n"]).output().map(|o| o.stdout).unwrap_or_default();
    write_mode(&agent.join("host-packages"), &packages, 0o644)?;
    // Docker's packages "install" even on a host without them, so that a Docker host can be set
    // up anywhere; whether its daemon can run is then reported on its own (Daemon::Unavailable).
    write_mode(&agent.join("simulated-packages"), SIMULATED_PACKAGES.as_bytes(), 0o644)?;
    // What a guest needs to call the local cloud's IMDS, as a VM calls Azure's.
    write_mode(&agent.join("ca.pem"), ca_pem.as_bytes(), 0o644)?;
    write_mode(&bin.join("systemctl"), SYSTEMCTL_SHIM.as_bytes(), 0o755)?;
    for tool in ["apt-get", "apt", "dnf", "yum"] {
        write_mode(&bin.join(tool), PACKAGE_SHIM.as_bytes(), 0o755)?;
    }
    Ok(())
}

fn write_mode(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Where systemd drop-ins for docker live, inside the VM.
const DROPINS: &str = "/etc/systemd/system/docker.service.d";

/// Whether this run (re)started docker through systemctl (the log is per run).
fn docker_restarted(vm: &Path) -> bool {
    let log = guest_file(vm, SYSTEMCTL_LOG).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    log.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.contains(&"docker") || words.contains(&"docker.service")
    }) && log.lines().any(|l| l.starts_with("restart") || l.starts_with("start") || l.contains("--now"))
}

/// Docker as a script left it: a systemd drop-in whose `ExecStart=` runs dockerd with a TCP
/// listener, and a (re)start of docker through systemctl.
fn configured_docker(vm: &Path) -> Option<Docker> {
    if !docker_restarted(vm) {
        return None;
    }
    // systemd applies drop-ins in lexical order; the last ExecStart= wins.
    let mut dropins = guestfs::list(vm, DROPINS).ok()?;
    dropins.sort();
    let exec = dropins
        .iter()
        .filter_map(|name| guest_file(vm, &format!("{DROPINS}/{name}")))
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .flat_map(|text| {
            text.lines()
                .filter(|l| l.trim_start().starts_with("ExecStart=") && l.contains("dockerd"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .last()?;
    let words: Vec<&str> = exec.trim_start().trim_start_matches("ExecStart=").split_whitespace().collect();
    let value = |flag: &str| -> Option<String> {
        words.iter().enumerate().find_map(|(i, w)| {
            w.strip_prefix(&format!("{flag}="))
                .map(str::to_owned)
                .or_else(|| (*w == flag).then(|| words.get(i + 1).map(|v| (*v).to_owned())).flatten())
        })
    };
    let hosts: Vec<String> = words
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            w.strip_prefix("--host=")
                .or_else(|| w.strip_prefix("-H="))
                .map(str::to_owned)
                .or_else(|| (*w == "-H" || *w == "--host").then(|| words.get(i + 1).map(|v| (*v).to_owned())).flatten())
        })
        .collect();
    let port = hosts
        .iter()
        .find_map(|h| h.strip_prefix("tcp://"))
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok());
    if port.is_none() {
        // No TCP listener: dockerd on its socket only (systemd's, `fd://`), reached over SSH.
        let socket_only = hosts.is_empty() || hosts.iter().all(|h| h.starts_with("fd://") || h.starts_with("unix://"));
        return socket_only.then(|| Docker {
            port: None,
            tls: false,
            options: Vec::new(),
            daemon: Daemon::Starting,
            certs: None,
        });
    }
    let tls = words.contains(&"--tlsverify") || words.iter().any(|w| w.starts_with("--tlsverify=true"));
    let read = |flag: &str| value(flag).and_then(|p| guest_file(vm, &p)).and_then(|b| String::from_utf8(b).ok());
    let certs = match (read("--tlscacert"), read("--tlscert"), read("--tlskey")) {
        (Some(ca), Some(cert), Some(key)) if tls => Some([ca, cert, key]),
        _ => None,
    };
    let daemon = if certs.is_some() {
        Daemon::Starting
    } else {
        Daemon::Unavailable { reason: "dockerd is configured without --tlsverify and its certificates; the local cloud runs TCP listeners with TLS only".into() }
    };
    Some(Docker { port, tls: certs.is_some(), options: Vec::new(), daemon, certs })
}
