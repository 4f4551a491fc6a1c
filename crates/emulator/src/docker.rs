//! Real Docker daemons for emulated VMs: when a guest is configured to run dockerd with TLS on a
//! port, a real dockerd listens on the VM's emulated public IP (in 127.0.0.0/8) with the
//! certificates that travelled through ARM, so the Docker client's TLS handshake is the test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::Shared;
use crate::guest::Daemon;
use crate::wire::ArmError;

/// One running dockerd, stopped (with its process group) when dropped.
#[derive(Debug)]
pub(crate) struct DaemonProcess {
    child: Child,
    /// The VM's docker directory (its data root is below it).
    dir: PathBuf,
    exec_root: PathBuf,
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        // dockerd leads its own process group (its containerd and shims are in it); the group
        // is ours as long as the child is not reaped, which happens only below.
        let group = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
        wait_until(|| matches!(self.child.try_wait(), Ok(Some(_))));
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.child.wait();
        // A daemon that stopped on its own terms unmounted what it mounted; one killed outright
        // (before or after the TERM above) did not.
        release_mounts(&[&self.dir, &self.exec_root]);
        let _ = std::fs::remove_dir_all(&self.exec_root);
    }
}

/// Asks `done` every 50 ms until it holds, for at most 10 s: how long a daemon gets to go.
fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Unmounts whatever is mounted at or below any of `dirs`, deepest first. dockerd bind-mounts its data
/// root onto itself in the host's mount namespace and undoes it when it stops; a daemon killed
/// outright (SIGKILL, the OOM killer, the cloud killed with it) leaves the mount, under which
/// the VM's next daemon would stack its own, and which keeps the VM's directory from being
/// removed. Detached (`MNT_DETACH`): nothing still uses a dead daemon's files.
fn release_mounts(dirs: &[&Path]) {
    let dirs: Vec<PathBuf> = dirs.iter().filter_map(|dir| std::fs::canonicalize(dir).ok()).collect();
    if dirs.is_empty() {
        return;
    }
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let mut points: Vec<PathBuf> =
        table.lines().filter_map(mount_point).filter(|p| dirs.iter().any(|dir| p.starts_with(dir))).collect();
    // A path mounted twice (stacked) is listed twice and unmounted twice.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        let _ = rustix::mount::unmount(&point, rustix::mount::UnmountFlags::DETACH);
    }
}

/// The mount point of a line of /proc/self/mountinfo: its fifth field, where the kernel writes
/// space, tab, newline and backslash as `\ooo` octal escapes.
fn mount_point(line: &str) -> Option<PathBuf> {
    let field = line.split(' ').nth(4)?.as_bytes();
    let mut bytes = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (field[i], octal) {
            (b'\\', Some(byte)) => {
                bytes.push(byte);
                i += 4;
            }
            (byte, _) => {
                bytes.push(byte);
                i += 1;
            }
        }
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

/// Whether any process, a zombie too, is still in the process group `group`.
fn group_exists(group: rustix::process::Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    let group = group.as_raw_nonzero().get().to_string();
    entries.filter_map(Result::ok).filter_map(|entry| entry.file_name().to_str()?.parse::<u64>().ok()).any(|pid| {
        // After the state and the parent comes the process group.
        crate::service::stat_fields(pid).is_some_and(|fields| fields.get(2) == Some(&group))
    })
}

/// Ends the VM's daemon that an earlier run of this cloud left running when it was killed (its
/// pidfile names a live dockerd with this exec root, which only this cloud's state gives), with
/// its process group, and releases its mounts: the VM's new daemon takes its place, as after a
/// clean stop. A pidfile of a process that is gone or is something else is only stale, and goes.
fn end_orphan(dir: &Path, exec_root: &Path) {
    let ours = std::fs::read_to_string(exec_root.join("dockerd.pid"))
        .ok()
        .and_then(|pid| pid.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
        .filter(|pid| {
            let flag = format!("--exec-root={}", exec_root.display());
            std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero()))
                .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == flag.as_bytes()))
        });
    if let Some(pid) = ours {
        // It leads its own group (its containerd and shims are in it), as every daemon here does.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        // Until the whole group is reaped (their parent is not this process): dockerd and its
        // containerd take a pidfile naming a process that is still there, a zombie too, for a
        // daemon already running, and the new one would fail beside it.
        wait_until(|| !group_exists(pid));
    }
    // What is left of the pidfile names no daemon of this VM (ended above, or a pid since
    // reused by another process, which dockerd would take for itself still running).
    let _ = std::fs::remove_file(exec_root.join("dockerd.pid"));
    release_mounts(&[dir, exec_root]);
}

/// The running daemons by VM key.
pub(crate) type Daemons = std::sync::Mutex<HashMap<String, DaemonProcess>>;

/// Why dockerd cannot run on this machine, if it cannot.
pub(crate) fn unavailable_reason() -> Option<String> {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("dockerd").is_file()));
    if !found {
        return Some("dockerd is not installed on the machine running the local cloud; install Debian's docker.io (`apt-get install docker.io`) to run Docker hosts locally".into());
    }
    let root =
        Command::new("id").arg("-u").output().ok().is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Some("the local cloud is not running as root, which dockerd needs; run `azdock local up` as root to run Docker hosts locally".into());
    }
    None
}

/// Stops the VM's dockerd; holds the map while it exits, so a start for the same VM waits
/// for it (dockerd refuses to start while the old one's pidfile exists).
pub(crate) fn stop(shared: &Shared, vm_key: &str) {
    let mut daemons = lock_daemons(shared);
    drop(daemons.remove(vm_key));
    drop(daemons);
}

fn lock_daemons(shared: &Shared) -> std::sync::MutexGuard<'_, HashMap<String, DaemonProcess>> {
    shared.daemons.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn start(shared: &Shared, vm_key: &str, op: Option<&str>) {
    let outcome = launch(shared, vm_key);
    let mut inner = shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (daemon, failure) = match outcome {
        Ok(Launched::Running { address, process }) => {
            lock_daemons(shared).insert(vm_key.to_owned(), process);
            (Daemon::Running { address }, None)
        }
        Ok(Launched::Unavailable(reason)) => (Daemon::Unavailable { reason }, None),
        Err(reason) => (Daemon::Failed { reason: reason.clone() }, Some(reason)),
    };
    if let Some(docker) = inner.vms.get_mut(vm_key).and_then(|vm| vm.guest.docker.as_mut()) {
        docker.daemon = daemon;
    }
    if let Some(op) = op.and_then(|id| inner.ops.get_mut(id)) {
        op.blocked = false;
        if let Some(reason) = failure {
            op.result = Err(ArmError::new(
                200,
                "VMExtensionProvisioningError",
                format!(
                    "VM has reported a failure when processing extension: the Docker daemon did not start: {reason}"
                ),
            ));
        }
    }
    crate::persist::append(shared, &mut inner);
}

enum Launched {
    Running { address: String, process: DaemonProcess },
    Unavailable(String),
}

/// Starts dockerd for the VM and waits (at most 30 s) until it accepts connections: with TLS on
/// the VM's public IP and the guest's socket, or on the guest's socket only.
fn launch(shared: &Shared, vm_key: &str) -> Result<Launched, String> {
    if let Some(reason) = unavailable_reason() {
        return Ok(Launched::Unavailable(reason));
    }
    let (tcp, options) = {
        let inner = shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(docker) = inner.vms.get(vm_key).and_then(|vm| vm.guest.docker.clone()) else {
            return Ok(Launched::Unavailable("Docker is not configured on this VM".into()));
        };
        let tcp = match (docker.port, docker.certs) {
            (None, _) => None,
            (Some(_), None) => return Ok(Launched::Unavailable("no TLS certificates were configured".into())),
            (Some(port), Some(certs)) => {
                let Some(ip) = crate::arm::vm_public_ip(&inner, vm_key) else {
                    return Ok(Launched::Unavailable("the VM has no public IP address to listen on".into()));
                };
                Some((ip, port, certs))
            }
        };
        (tcp, docker.options)
    };
    check_options(&options)?;
    // A restart replaces the old daemon, waiting for it to exit first.
    {
        let mut daemons = lock_daemons(shared);
        drop(daemons.remove(vm_key));
    }
    let dir = shared.vm_dir(vm_key).join("docker");
    let exec_root = exec_root(shared, vm_key);
    end_orphan(&dir, &exec_root);
    let etc = dir.join("etc");
    for d in [&dir, &etc, &exec_root] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create `{}`: {e}", d.display()))?;
    }
    let log_path = dir.join("dockerd.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create `{}`: {e}", log_path.display()))?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("dockerd");
    cmd.args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs"])
        .arg(format!("--data-root={}", dir.join("data").display()))
        .arg(format!("--exec-root={}", exec_root.display()))
        .arg(format!("--pidfile={}", exec_root.join("dockerd.pid").display()));
    let address = match &tcp {
        Some((ip, port, [ca, cert, key])) => {
            for (name, pem) in [("ca.pem", ca), ("cert.pem", cert), ("key.pem", key)] {
                write_private(&etc.join(name), pem.as_bytes())?;
            }
            let address: SocketAddr =
                format!("{ip}:{port}").parse().map_err(|e| format!("invalid listen address {ip}:{port}: {e}"))?;
            cmd.arg("--tlsverify")
                .arg(format!("--tlscacert={}", etc.join("ca.pem").display()))
                .arg(format!("--tlscert={}", etc.join("cert.pem").display()))
                .arg(format!("--tlskey={}", etc.join("key.pem").display()))
                .arg(format!("-H=tcp://{address}"));
            Some(address)
        }
        None => None,
    };
    cmd.args(options).stdin(Stdio::null()).stdout(log).stderr(err_log);
    // The guest's `docker` group reaches this daemon, and no other, through the socket the
    // sandbox shows at /run/docker.sock.
    let vm_root = crate::customscript::vm_dir(shared, vm_key);
    let socket = socket_path(shared, vm_key);
    match guest_docker_gid(&vm_root) {
        Some(gid) => {
            let _ = std::fs::remove_file(&socket);
            cmd.arg(format!("-H=unix://{}", socket.display()))
                .arg(format!("--group={}", crate::sandbox::IdMap::for_vm(vm_key).host(gid)));
        }
        None if address.is_none() => {
            return Err("the guest has no `docker` group, so no one on the VM could use dockerd's socket".into());
        }
        None => {}
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().map_err(|e| format!("cannot start dockerd: {e}"))?;
    let mut process = DaemonProcess { child, dir, exec_root };
    let listening = match address {
        Some(a) => a.to_string(),
        None => format!("unix://{GUEST_SOCKET}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answers = match address {
            Some(a) => std::net::TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok(),
            None => std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        };
        if answers {
            return Ok(Launched::Running { address: listening, process });
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            return Err(format!("dockerd exited with {status}: {}", tail(&log_path)));
        }
        if Instant::now() > deadline {
            return Err(format!("dockerd did not listen on {listening} within 30 s: {}", tail(&log_path)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where the sandbox shows the VM's dockerd socket.
const GUEST_SOCKET: &str = "/run/docker.sock";

/// dockerd's exec root: its sockets live there and unix socket paths are short, so it sits in
/// /tmp, named after this emulator's state directory and the VM (two clouds may share names).
fn exec_root(shared: &Shared, vm_key: &str) -> PathBuf {
    let unique = hex_id(&format!("{}\n{vm_key}", shared.state_dir.display()));
    std::env::temp_dir().join(format!("azd-{}", &unique[..12]))
}

/// The host path of the VM's dockerd socket (there only while a daemon runs and the guest has a
/// `docker` group).
pub(crate) fn socket_path(shared: &Shared, vm_key: &str) -> PathBuf {
    exec_root(shared, vm_key).join("docker.sock")
}

/// The gid of the guest's `docker` group, from the VM's own /etc/group.
fn guest_docker_gid(vm_root: &Path) -> Option<u32> {
    let group = crate::sandbox::guest_file(vm_root, "/etc/group")?;
    String::from_utf8_lossy(&group).lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some("docker")).then(|| fields.nth(1).and_then(|gid| gid.parse().ok())).flatten()
    })
}

/// dockerd flags a VM may ask for. The local cloud runs dockerd as the host's root, so a flag
/// that names a host path or a program (`--userland-proxy-path`, `--data-root`, `--exec-opt`,
/// `--config-file`, …) would hand the host to whoever may PUT an extension; only flags that
/// change nothing outside the daemon's own behaviour pass.
const ALLOWED_OPTIONS: [&str; 9] = [
    "--debug",
    "-D",
    "--log-level",
    "-l",
    "--label",
    "--max-concurrent-downloads",
    "--max-concurrent-uploads",
    "--shutdown-timeout",
    "--experimental",
];

/// The options as dockerd flags, or why the local cloud will not pass one on.
pub(crate) fn check_options(options: &[String]) -> Result<(), String> {
    for option in options {
        let name = option.split_once('=').map_or(option.as_str(), |(name, _)| name);
        if !ALLOWED_OPTIONS.contains(&name) {
            return Err(format!(
                "dockerd option `{option}` is not accepted by azdock's local cloud, which runs dockerd on its host as root; accepted: {} (as --flag=value)",
                ALLOWED_OPTIONS.join(", ")
            ));
        }
    }
    Ok(())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ")
}

pub(crate) fn hex_id(vm_key: &str) -> String {
    crate::guest::hex(&Sha256::digest(vm_key.as_bytes()))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    file.write_all(data).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_with_their_escapes_undone() {
        let line = r"45 27 254:0 /srv/a\040b /srv/a\040b rw,relatime shared:1 - ext4 /dev/vda rw";
        assert_eq!(mount_point(line), Some(PathBuf::from("/srv/a b")));
        let odd = r"46 27 254:0 / /x\134y\011z\12 rw - ext4 /dev/vda rw";
        assert_eq!(mount_point(odd), Some(PathBuf::from("/x\\y\tz\\12")));
        assert_eq!(mount_point("46 27 254:0 /"), None);
    }

    #[test]
    fn only_flags_that_stay_inside_the_daemon_pass() {
        let ok: Vec<String> = ["--debug", "-D", "--log-level=warn", "--label=env=dev", "--max-concurrent-downloads=4"]
            .map(str::to_owned)
            .to_vec();
        assert!(check_options(&ok).is_ok());
        for bad in [
            "--userland-proxy-path=/tmp/x",
            "--data-root=/",
            "--exec-opt=x",
            "--config-file=/etc/shadow",
            "-H=tcp://0.0.0.0:1",
            "warn",
        ] {
            let err = check_options(&[bad.to_owned()]).unwrap_err();
            assert!(err.contains(bad) && err.contains("--log-level"), "{err}");
        }
    }
}
