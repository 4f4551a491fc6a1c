//! Real SSH into the local cloud's VMs: each running Linux VM with a public IP has an SSH
//! endpoint on that address, and each connection is handed to OpenSSH's own `sshd -i` (inetd
//! mode) started in the VM's sandbox — so sshd reads the VM's `/etc/ssh/sshd_config`, host keys,
//! `/etc/passwd` and `/etc/shadow`, `~/.ssh/authorized_keys` and PAM settings, the files that
//! provisioning, VMAccess, cloud-init and CustomScript wrote, and a session runs as that
//! guest user with the VM's dockerd at `/run/docker.sock`.
//!
//! The local cloud (the host's root) owns the listening socket, so the VM's sshd never needs a
//! privilege of the host's network: it gets one accepted connection as its stdin and stdout.
//! A new sshd per connection also means a changed sshd_config counts from the next login, as
//! after the `systemctl restart ssh` VMAccess runs. Port 22 is used when the VM's address can
//! take it; when it cannot (the machine's own sshd listens on every address), the endpoint is
//! on [`FALLBACK_PORT`] of the same address, shown in the guest state and `azdock local status`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::Shared;
use crate::guest::SshEndpoint;
use crate::sandbox::{IdMap, guest_file};

/// SSH's port on the VM's address.
pub(crate) const PORT: u16 = 22;
/// The port on the VM's address when port 22 cannot be bound there.
pub(crate) const FALLBACK_PORT: u16 = 2222;
/// OpenSSH's daemon (Debian's openssh-server).
const SSHD: &str = "/usr/sbin/sshd";
/// Written once the platform has provisioned the VM (accounts, host keys).
const PROVISIONED: &str = "/var/lib/azdock-guest/provisioned";
/// sshd's privilege-separation directory lives in the sandbox's own `/run`.
const SSHD_COMMAND: &str = "mkdir -p /run/sshd && chmod 0755 /run/sshd && exec /usr/sbin/sshd -i -e";

/// A listening endpoint; sending `true` (or dropping it) closes it and ends its sessions.
#[derive(Debug)]
pub(crate) struct Endpoint {
    stop: watch::Sender<bool>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The endpoints by VM key.
pub(crate) type Endpoints = Mutex<HashMap<String, Endpoint>>;

fn endpoints(shared: &Shared) -> std::sync::MutexGuard<'_, HashMap<String, Endpoint>> {
    shared.ssh.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why VMs cannot be logged in to on this machine, if they cannot.
pub(crate) fn unavailable_reason() -> Option<String> {
    if let Some(reason) = crate::sandbox::unavailable_reason() {
        return Some(reason);
    }
    if !Path::new(SSHD).is_file() {
        return Some("OpenSSH's sshd is not installed on the machine running the local cloud; install Debian's openssh-server (`apt-get install openssh-server`) to log in to VMs".into());
    }
    None
}

/// The platform's provisioning of a Linux VM, once: its root, its SSH host keys (made per VM,
/// as at an Azure VM's first boot) and the accounts the VM was created with. Later runs return
/// at once. Scripts and logins both come after it.
pub(crate) fn boot(shared: &Shared, vm_key: &str) -> Result<(), String> {
    let _one = shared.boots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (vm, ids) = (crate::customscript::vm_dir(shared, vm_key), IdMap::for_vm(vm_key));
    if guest_file(&vm, PROVISIONED).is_some() {
        return Ok(());
    }
    crate::sandbox::prepare(&vm, ids)?;
    if Path::new(SSHD).is_file() {
        host_keys(shared, vm_key, &vm, ids)?;
    }
    let inner = shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(guest) = inner.vms.get(vm_key).map(|v| v.guest.clone()) else {
        return Err("the VM no longer exists".into());
    };
    let err = |e: std::io::Error| format!("cannot provision the VM's accounts: {e}");
    crate::accounts::sync(&vm, ids, None, &guest).map_err(err)?;
    crate::guestfs::write(&vm, PROVISIONED, b"", 0o644, ids).map_err(err)
}

/// New host keys of each type for the VM (`ssh-keygen -A` into a private directory of the
/// local cloud, then into the VM's `/etc/ssh`); the copies of the host's public keys that came
/// with `/etc` go first.
fn host_keys(shared: &Shared, vm_key: &str, vm: &Path, ids: IdMap) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot make the VM's SSH host keys: {e}");
    let work = shared.vm_dir(vm_key).join("keygen");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("etc/ssh")).map_err(err)?;
    let out = std::process::Command::new("ssh-keygen")
        .arg("-A")
        .arg("-f")
        .arg(&work)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!("ssh-keygen -A failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    for name in crate::guestfs::list(vm, "/etc/ssh").unwrap_or_default() {
        if name.starts_with("ssh_host_") {
            crate::guestfs::remove(vm, &format!("/etc/ssh/{name}")).map_err(err)?;
        }
    }
    for entry in std::fs::read_dir(work.join("etc/ssh")).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let data = std::fs::read(entry.path()).map_err(err)?;
        // ssh-keygen names them `ssh_host_<type>_key` and `….pub`, in that case.
        let public = Path::new(&name).extension().is_some_and(|e| e == "pub");
        let mode = if public { 0o644 } else { 0o600 };
        crate::guestfs::write(vm, &format!("/etc/ssh/{name}"), &data, mode, ids).map_err(err)?;
    }
    std::fs::remove_dir_all(&work).map_err(err)
}

/// Opens the VM's SSH endpoint (a job: the VM started or was created) and records where it
/// listens, or why it does not.
pub(crate) fn start(shared: &Arc<Shared>, vm_key: &str) {
    let state = match listen(shared, vm_key) {
        Ok(address) => SshEndpoint::Listening { address: address.to_string() },
        Err(reason) => SshEndpoint::Unavailable { reason },
    };
    let mut inner = shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let running = inner.vms.get(vm_key).is_some_and(|vm| vm.power == "running");
    if let Some(vm) = inner.vms.get_mut(vm_key) {
        vm.guest.ssh_endpoint = Some(if running { state } else { SshEndpoint::Stopped });
    }
    if !running {
        // Stopped (or deleted) while the endpoint opened.
        drop(endpoints(shared).remove(vm_key));
    }
    crate::persist::append(shared, &mut inner);
}

/// Closes the VM's endpoint and ends its sessions (the VM stopped, was deallocated or deleted).
pub(crate) fn stop(shared: &Shared, vm_key: &str) {
    drop(endpoints(shared).remove(vm_key));
}

/// Closes every endpoint (the local cloud stops).
pub(crate) fn stop_all(shared: &Shared) {
    endpoints(shared).clear();
}

fn listen(shared: &Arc<Shared>, vm_key: &str) -> Result<SocketAddr, String> {
    if let Some(reason) = unavailable_reason() {
        return Err(reason);
    }
    let ip = {
        let inner = shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::arm::vm_public_ip(&inner, vm_key).ok_or("the VM has no public IP address to listen on")?
    };
    let ip: std::net::IpAddr = ip.parse().map_err(|_| format!("the VM's address `{ip}` is not an IP address"))?;
    stop(shared, vm_key);
    let listener = bind(ip)?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?
    };
    let (tx, rx) = watch::channel(false);
    runtime.spawn(serve(shared.clone(), vm_key.to_owned(), listener, rx));
    endpoints(shared).insert(vm_key.to_owned(), Endpoint { stop: tx });
    Ok(address)
}

/// The VM's SSH socket: port 22 of its address, else (taken, as by a machine's sshd on every
/// address) [`FALLBACK_PORT`].
fn bind(ip: std::net::IpAddr) -> Result<std::net::TcpListener, String> {
    match std::net::TcpListener::bind((ip, PORT)) {
        Ok(l) => Ok(l),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied) => {
            std::net::TcpListener::bind((ip, FALLBACK_PORT))
                .map_err(|e| format!("cannot listen on {ip}:{PORT} or {ip}:{FALLBACK_PORT}: {e}"))
        }
        Err(e) => Err(format!("cannot listen on {ip}:{PORT}: {e}")),
    }
}

/// Accepts connections until the endpoint is closed.
async fn serve(
    shared: Arc<Shared>,
    vm_key: String,
    listener: tokio::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(session(shared.clone(), vm_key.clone(), stream, stop.clone()));
                }
                // Out of descriptors, say: the next accept may work.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            },
        }
    }
}

/// One connection: the VM is provisioned if it was not, then `sshd -i` in its sandbox gets the
/// connection; it ends when the client leaves or the endpoint closes.
async fn session(shared: Arc<Shared>, vm_key: String, stream: tokio::net::TcpStream, mut stop: watch::Receiver<bool>) {
    let log_path = shared.vm_dir(&vm_key).join("sshd.log");
    let spawned = {
        let (shared, vm_key, log_path) = (shared.clone(), vm_key.clone(), log_path.clone());
        tokio::task::spawn_blocking(move || sshd(&shared, &vm_key, stream, &log_path)).await
    };
    let mut child = match spawned {
        Ok(Ok(child)) => child,
        Ok(Err(reason)) => {
            append_log(&log_path, &format!("azdock: cannot start sshd: {reason}\n"));
            return;
        }
        Err(_) => return,
    };
    tokio::select! {
        _ = child.wait() => {}
        _ = stop.changed() => {
            let _ = child.kill().await;
        }
    }
}

fn append_log(path: &Path, line: &str) {
    use std::io::Write as _;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Starts `sshd -i` in the VM's sandbox with the connection as its stdin and stdout and its log
/// appended to the local cloud's `sshd.log` for the VM.
fn sshd(
    shared: &Shared,
    vm_key: &str,
    stream: tokio::net::TcpStream,
    log_path: &Path,
) -> Result<tokio::process::Child, String> {
    boot(shared, vm_key)?;
    let (vm, ids) = (crate::customscript::vm_dir(shared, vm_key), IdMap::for_vm(vm_key));
    let agent = crate::customscript::agent_dir(shared, vm_key);
    if !agent.join("bin").is_dir() {
        crate::customscript::write_agent(&agent, &shared.ca_pem, &crate::customscript::masked(&vm))
            .map_err(|e| format!("cannot write `{}`: {e}", agent.display()))?;
    }
    let stream = stream.into_std().map_err(|e| e.to_string())?;
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let output = stream.try_clone().map_err(|e| e.to_string())?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path).map_err(|e| e.to_string())?;
    let socket = crate::docker::socket_path(shared, vm_key);
    let mut cmd = crate::sandbox::command(&crate::sandbox::Run {
        vm: &vm,
        ids,
        agent: &agent,
        docker_socket: Some(&socket),
        workdir: "/",
        env: Vec::new(),
        command: SSHD_COMMAND,
    });
    cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(stream)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(output)))
        .stderr(Stdio::from(log));
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    cmd.spawn().map_err(|e| format!("cannot start the sandbox: {e}"))
}

/// Writes what a VMAccess run changed (`before` → the guest now) into a provisioned VM's files,
/// then lets its operation end (failed, with the reason, when the files cannot be written). An
/// unprovisioned VM gets the whole model when it is provisioned.
pub(crate) fn sync_accounts(shared: &Arc<Shared>, vm_key: &str, op: &str, before: &crate::guest::Guest) {
    let (vm, ids) = (crate::customscript::vm_dir(shared, vm_key), IdMap::for_vm(vm_key));
    // The boot lock first, as `boot` takes it, so that a provisioning never sees half of this.
    let _one = shared.boots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut inner = shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let outcome = match inner.vms.get(vm_key) {
        Some(now) if guest_file(&vm, PROVISIONED).is_some() => {
            crate::accounts::sync(&vm, ids, Some(before), &now.guest)
        }
        _ => Ok(()),
    };
    if let Some(o) = inner.ops.get_mut(op) {
        o.blocked = false;
        if let Err(e) = outcome {
            o.result = Err(crate::wire::ArmError::new(
                200,
                "VMExtensionProvisioningError",
                format!(
                    "VM has reported a failure when processing extension: cannot write the VM's account files: {e}"
                ),
            ));
        }
    }
    crate::persist::append(shared, &mut inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_whose_port_22_is_taken_gets_the_fallback_port() {
        // Outside the VMs' 127.1.0.0/16, so no VM of a test running beside it is disturbed; binding
        // port 22 needs root (which the local cloud's sandbox needs anyway).
        let Ok(taken) = std::net::TcpListener::bind(("127.2.254.1", PORT)) else {
            assert!(std::env::var_os("AZDOCK_TESTS_WITHOUT_SSHD").is_some(), "cannot bind port 22: run as root");
            azdock_tests::skipped("cannot bind port 22 (not root), and AZDOCK_TESTS_WITHOUT_SSHD is set");
            return;
        };
        let ip: std::net::IpAddr = "127.2.254.1".parse().unwrap();
        let fallback = bind(ip).unwrap();
        assert_eq!(fallback.local_addr().unwrap().port(), FALLBACK_PORT);
        drop((taken, fallback));
        // Free again: port 22 it is.
        assert_eq!(bind(ip).unwrap().local_addr().unwrap().port(), PORT);
        // Neither free: the error names both.
        let (_a, _b) = (
            std::net::TcpListener::bind((ip, PORT)).unwrap(),
            std::net::TcpListener::bind((ip, FALLBACK_PORT)).unwrap(),
        );
        let err = bind(ip).unwrap_err();
        assert!(err.contains(":22") && err.contains(":2222"), "{err}");
    }
}
