//! CustomScript, run for real: the script executes as root inside a private mount namespace
//! (`unshare -m`) where the VM's `/etc`, `/var/lib`, `/home`, `/root` and `/tmp` are per-VM
//! directories of the emulator's state and everything else is read-only, with `systemctl` and
//! the package managers replaced by recording shims. Exit code and output become the
//! extension's instanceView status and StdOut/StdErr substatuses, as the real handler reports.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Shared;
use crate::guest::{Daemon, Docker};
use crate::state::Job;
use crate::wire::ArmError;

/// The real handler keeps the last 4 KiB of each stream in its status.
const OUTPUT_LIMIT: usize = 4096;
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

/// Why scripts cannot be sandboxed on this machine, if they cannot.
pub(crate) fn unavailable_reason() -> Option<String> {
    let root =
        Command::new("id").arg("-u").output().ok().is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Some(
            "scripts run as root in a private mount namespace, and the local cloud is not running as root".into(),
        );
    }
    let unshare =
        Command::new("unshare").args(["--mount", "--propagation", "private", "true"]).stderr(Stdio::null()).status();
    if !unshare.is_ok_and(|s| s.success()) {
        return Some("`unshare --mount` is not permitted here, so scripts cannot be sandboxed".into());
    }
    None
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
# azdock local cloud: installs succeed only for packages present on the host.
mkdir -p /var/lib/azdock-guest
echo "$(basename "$0") $*" >> /var/lib/azdock-guest/packages.log
verb=""
for a in "$@"; do
  case "$a" in
    -*) ;;
    *) if [ -z "$verb" ]; then verb="$a"; elif [ "$verb" = install ]; then
         if grep -qx "$a" /var/lib/azdock-guest/host-packages 2>/dev/null; then
           echo "$a is already the newest version."
         elif grep -qx "$a" /var/lib/azdock-guest/simulated-packages 2>/dev/null; then
           echo "Setting up $a (simulated: the host has no $a; azdock's local cloud reports its daemon as unavailable)"
         else
           echo "E: Unable to locate package $a (azdock's local cloud installs only packages present on its host)" >&2
           exit 100
         fi
       fi ;;
  esac
done
exit 0
"#;

/// Mounts the VM's directories and shims, makes the rest read-only, then runs the command.
/// The state directory may itself live under /tmp, so the VM's /tmp is mounted last, and the
/// shims are taken from the VM's own /var/lib once that is mounted.
const SETUP: &str = r#"set -e
mount --bind "$VM/etc" /etc
mount --bind "$VM/var/lib" /var/lib
mount --bind "$VM/home" /home
mount --bind "$VM/root" /root
mount --bind "$VM/tmp" /tmp
SHIMS=/var/lib/azdock-guest/bin
for tool in systemctl apt-get apt dnf yum; do
  for dir in /usr/bin /bin /usr/sbin /sbin; do
    if [ -f "$dir/$tool" ] && [ ! -L "$dir/$tool" ]; then mount --bind "$SHIMS/$tool" "$dir/$tool"; fi
  done
done
mount -o remount,bind,ro /
export PATH="$SHIMS:$PATH"
cd /var/lib/waagent/custom-script/download/0
exec /bin/sh -c "$AZDOCK_COMMAND"
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
    inner.dirty = true;
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
    drop(inner);
    crate::run_jobs(shared, jobs);
}

/// The per-VM root holding `etc`, `var/lib`, `home`, `root` and `tmp`.
pub(crate) fn vm_dir(shared: &Shared, vm_key: &str) -> PathBuf {
    shared.state_dir.join("vms").join(crate::docker::hex_id(vm_key)).join("root")
}

pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub(crate) fn execute(shared: &Shared, vm_key: &str, script: &Script) -> Result<Output, String> {
    if let Some(reason) = unavailable_reason() {
        return Err(reason);
    }
    let vm = vm_dir(shared, vm_key);
    prepare_vm_root(&vm)?;
    write_shims(&vm.join("var/lib/azdock-guest/bin"))?;
    // What systemctl was asked is read per run: an old run's restart must not count again.
    let _ = std::fs::remove_file(vm.join("var/lib/azdock-guest/systemctl.log"));
    let download = vm.join("var/lib/waagent/custom-script/download/0");
    std::fs::create_dir_all(&download).map_err(|e| format!("cannot create `{}`: {e}", download.display()))?;
    let command = match (&script.script, &script.command) {
        (Some(body), _) => {
            let path = download.join("script.sh");
            write_mode(&path, body, 0o700)?;
            "/bin/sh ./script.sh".to_owned()
        }
        (None, Some(command)) => command.clone(),
        (None, None) => return Err("nothing to run".into()),
    };
    // The command travels in the environment, not in argv: it may carry secrets, and argv is
    // visible to every user of the machine.
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c", SETUP])
        .env("VM", &vm)
        .env("AZDOCK_COMMAND", &command)
        .env("HOME", "/root")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the script: {e}"))?;
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let out_thread = std::thread::spawn(move || read_all(stdout_pipe.as_mut()));
    let err_thread = std::thread::spawn(move || read_all(stderr_pipe.as_mut()));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the script did not finish within {} minutes and was stopped", TIMEOUT.as_secs() / 60));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    Ok(Output { code: status.code().unwrap_or(-1), stdout: tail(&stdout), stderr: tail(&stderr) })
}

fn read_all(pipe: Option<&mut impl std::io::Read>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        let _ = p.read_to_end(&mut buf);
    }
    buf
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(OUTPUT_LIMIT);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
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

/// Creates the VM's directories; `/etc` starts as a copy of the host's, as an image would.
fn prepare_vm_root(vm: &Path) -> Result<(), String> {
    for d in ["var/lib/azdock-guest", "home", "root", "tmp"] {
        std::fs::create_dir_all(vm.join(d)).map_err(|e| format!("cannot create `{}`: {e}", vm.join(d).display()))?;
    }
    if !vm.join("etc").exists() {
        let status = Command::new("cp")
            .args(["-a", "/etc"])
            .arg(vm.join("etc"))
            .status()
            .map_err(|e| format!("cannot copy /etc: {e}"))?;
        if !status.success() {
            return Err("cannot copy /etc into the VM".into());
        }
    }
    let packages =
        Command::new("dpkg-query").args(["-W", "-f", "${Package}\n"]).output().map(|o| o.stdout).unwrap_or_default();
    std::fs::write(vm.join("var/lib/azdock-guest/host-packages"), packages).map_err(|e| e.to_string())?;
    // Docker's packages "install" even on a host without them, so that a Docker host can be set
    // up anywhere; whether its daemon can run is then reported on its own (Daemon::Unavailable).
    std::fs::write(vm.join("var/lib/azdock-guest/simulated-packages"), SIMULATED_PACKAGES)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn write_shims(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    write_mode(&dir.join("systemctl"), SYSTEMCTL_SHIM.as_bytes(), 0o755)?;
    for tool in ["apt-get", "apt", "dnf", "yum"] {
        write_mode(&dir.join(tool), PACKAGE_SHIM.as_bytes(), 0o755)?;
    }
    Ok(())
}

fn write_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, data).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

/// Reads a file of the guest by its path inside the VM (`/etc/…`, `/var/lib/…`, `/home/…`).
pub(crate) fn guest_file(vm: &Path, path: &str) -> Option<Vec<u8>> {
    let inside = Path::new(path);
    if !inside.is_absolute() || inside.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return None;
    }
    let rel = inside.strip_prefix("/").ok()?;
    let allowed = ["etc", "var", "home", "root", "tmp"].iter().any(|top| rel.starts_with(top));
    if !allowed {
        return None;
    }
    std::fs::read(vm.join(rel)).ok()
}

/// Whether this run (re)started docker through systemctl (the log is per run).
fn docker_restarted(vm: &Path) -> bool {
    let log = std::fs::read_to_string(vm.join("var/lib/azdock-guest/systemctl.log")).unwrap_or_default();
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
    let mut dropins: Vec<PathBuf> = std::fs::read_dir(vm.join("etc/systemd/system/docker.service.d"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    dropins.sort();
    let exec = dropins
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
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
        .and_then(|p| p.parse::<u16>().ok())?;
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
