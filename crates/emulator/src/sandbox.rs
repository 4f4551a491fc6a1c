//! The guest sandbox: code from a VM (CustomScript scripts, cloud-init `runcmd` and `#!` user
//! data) runs as root of a user namespace whose ids map to an unprivileged range of host ids, in
//! its own mount, pid, ipc and uts namespaces, over the VM's own directories, with every host
//! mount read-only and locked.
//!
//! Two stages, because the read-only host must be set up by a process the guest cannot undo:
//! stage 1 runs as the host's root in new mount and pid namespaces (`unshare --mount --pid`),
//! binds the VM's directories, makes every other mount read-only, then starts stage 2 in a new
//! user namespace (`unshare --user --mount --ipc --uts`) and writes its id maps itself — as root
//! of the parent namespace it may map any range, so no `newuidmap` or `/etc/subuid` entry is
//! needed. Mounts copied into a mount namespace owned by a less privileged user namespace are
//! locked by the kernel: the guest can neither remount them read-write nor unmount the VM's
//! directories to see what lies below. Stage 2 becomes the guest's root (`setpriv`) and runs the
//! command. The guest's root is host uid `base`; it holds capabilities only inside its own
//! namespaces, sees only its own processes, and can write only the VM's directories and its own
//! tmpfs `/run` and `/dev/shm`. The network is shared: guest services listen on the VM's
//! 127.1.x.y address.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// How many guest ids each VM has (0 to 65535, as on a real Linux VM).
pub(crate) const GUEST_IDS: u32 = 65536;
/// The first host id of the first slot: far above any account a machine has, below 2^31 so that
/// no tool mistakes an id for a negative number.
const FIRST_BASE: u32 = 1_000_000_000;
/// Slots of [`GUEST_IDS`] ids between `FIRST_BASE` and 2^31.
const SLOTS: u32 = 16_384;

/// The VM's directories that are bound over the host's, with their modes when created.
const VM_DIRS: [(&str, u32); 7] = [
    ("etc", 0o755),
    ("var/lib", 0o755),
    ("var/log", 0o755),
    ("var/tmp", 0o1777),
    ("home", 0o755),
    ("root", 0o700),
    ("tmp", 0o1777),
];

/// The real handler keeps the last 4 KiB of each stream in its status.
const OUTPUT_LIMIT: usize = 4096;

/// Which host ids a VM's guest ids are: guest id `n` is host id `base + n`. Each VM has its own
/// range, chosen from its resource id, so that two VMs' guests are different host users too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdMap {
    base: u32,
}

impl IdMap {
    pub(crate) fn for_vm(vm_key: &str) -> Self {
        let digest = Sha256::digest(vm_key.as_bytes());
        let slot = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % SLOTS;
        Self { base: FIRST_BASE + slot * GUEST_IDS }
    }

    /// The host id of the guest's root.
    pub(crate) fn base(self) -> u32 {
        self.base
    }

    /// The host id of a guest id; ids past the range become the guest's `nobody` (65534).
    pub(crate) fn host(self, guest: u32) -> u32 {
        self.base + if guest < GUEST_IDS { guest } else { 65_534 }
    }

    /// Whether a host id belongs to this guest.
    pub(crate) fn owns(self, host: u32) -> bool {
        host >= self.base && host - self.base < GUEST_IDS
    }
}

/// What a sandboxed command printed and how it ended.
pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Where the local cloud's agent directory appears inside the sandbox, read-only: its `bin/`
/// tools (the recording shims) shadow the host's of the same name and come first on `PATH`.
pub(crate) const AGENT: &str = "/run/azdock-agent";

/// One command to run in a VM's sandbox.
pub(crate) struct Run<'a> {
    /// The VM's root (holding `etc`, `var/lib`, `home`, …), prepared by [`prepare`].
    pub vm: &'a Path,
    pub ids: IdMap,
    /// The local cloud's own files for this VM (never the guest's, so no link of the guest's
    /// can steer a bind), shown read-only at [`AGENT`].
    pub agent: &'a Path,
    /// The VM's dockerd socket on the host, shown at `/run/docker.sock`.
    pub docker_socket: Option<&'a Path>,
    /// The directory the command starts in, inside the VM.
    pub workdir: &'a str,
    /// More environment for the guest (what it needs to reach the local cloud).
    pub env: Vec<(&'static str, String)>,
    /// The shell command; it travels in the environment, never in argv (it may hold secrets,
    /// and every user of the machine can read argv).
    pub command: &'a str,
}

/// Stage 1, as the host's root in private mount and pid namespaces (it is pid 1 there, so when
/// it ends every guest process ends with it). First every mount of the host is made read-only
/// — one that cannot be stops the run: failing open is not an option — then the fresh tmpfs
/// mounts, the agent directory, the dockerd socket (bound before the VM's `/tmp` hides the
/// host's) and the VM's directories, which alone are writable again.
const STAGE1: &str = r#"set -eu
while read -r _ _ _ _ mp opts _; do
  mp=$(printf '%b' "$mp")
  case "$mp" in /proc|/proc/*) continue ;; esac
  case ",$opts," in *,ro,*) continue ;; esac
  if ! mount -o remount,bind,ro "$mp"; then
    # A mount that went away since the list was read (another process unmounted it) is fine.
    if [ -e "$mp" ]; then echo "sandbox: cannot make $mp read-only" >&2; exit 125; fi
  fi
done < /proc/self/mountinfo
mount -t tmpfs -o "mode=0755,nosuid,nodev,size=64m,uid=$AZDOCK_BASE,gid=$AZDOCK_BASE" tmpfs /run
mkdir /run/azdock-agent
mount --bind -o ro "$AZDOCK_AGENT" /run/azdock-agent
if [ -n "${AZDOCK_DOCKER_SOCK:-}" ] && [ -S "$AZDOCK_DOCKER_SOCK" ]; then
  : > /run/docker.sock
  mount --bind "$AZDOCK_DOCKER_SOCK" /run/docker.sock
fi
for tool in /run/azdock-agent/bin/* /run/azdock-agent/masked/*; do
  [ -e "$tool" ] || continue
  for dir in /usr/bin /bin /usr/sbin /sbin; do
    target="$dir/${tool##*/}"
    if [ -f "$target" ] && [ ! -L "$target" ]; then mount --bind -o ro "$tool" "$target"; fi
  done
done
if [ -d /dev/shm ]; then mount -t tmpfs -o "mode=1777,nosuid,nodev,size=64m,uid=$AZDOCK_BASE,gid=$AZDOCK_BASE" tmpfs /dev/shm; fi
for d in $AZDOCK_VM_DIRS; do
  mount --bind "$AZDOCK_VM/$d" "/$d"
  mount -o remount,bind,rw "/$d"
done
# A background command's stdin is /dev/null unless redirected: the guest keeps the sandbox's own
# (an SSH connection, for `sshd -i`).
exec 3<&0
unshare --user --keep-caps --mount --ipc --uts -- /bin/sh -c "$AZDOCK_STAGE2" <&3 3<&- &
exec 3<&-
child=$!
n=0
while [ "$(readlink "/proc/$child/ns/user" || true)" = "$(readlink /proc/self/ns/user)" ]; do
  n=$((n + 1))
  if [ "$n" -gt 2000 ]; then echo "sandbox: the guest's user namespace did not appear" >&2; kill -9 "$child"; exit 125; fi
  sleep 0.005
done
echo "0 $AZDOCK_BASE 65536" > "/proc/$child/uid_map"
echo "0 $AZDOCK_BASE 65536" > "/proc/$child/gid_map"
set +e
wait "$child"
exit $?
"#;

/// Stage 2, in the new user namespace: waits for its id map, becomes the guest's root, forgets
/// the sandbox's own variables and runs the command.
const STAGE2: &str = r#"n=0
until [ -n "$(cat /proc/self/uid_map 2>/dev/null)" ]; do
  n=$((n + 1)); [ "$n" -le 2000 ] || exit 125; sleep 0.005
done
cd "$AZDOCK_WORKDIR" || exit 125
unset AZDOCK_VM AZDOCK_VM_DIRS AZDOCK_BASE AZDOCK_STAGE2 AZDOCK_WORKDIR AZDOCK_AGENT AZDOCK_DOCKER_SOCK
exec setpriv --reuid=0 --regid=0 --clear-groups --inh-caps=-all --ambient-caps=-all -- /bin/sh -c "$AZDOCK_COMMAND"
"#;

/// Why guest code cannot be sandboxed on this machine, if it cannot (checked once per process:
/// it runs a throwaway sandbox).
pub(crate) fn unavailable_reason() -> Option<String> {
    static REASON: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    REASON.get_or_init(probe).clone()
}

fn probe() -> Option<String> {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return Some("guest code runs in a user-namespace sandbox that only root can set up, and the local cloud is not running as root".into());
    }
    for tool in ["unshare", "setpriv", "mount"] {
        if !on_path(tool) {
            return Some(format!("`{tool}` (util-linux) is not installed, so guest code cannot be sandboxed"));
        }
    }
    let nested = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc", "--"])
        .args(["unshare", "--user", "--keep-caps", "--mount", "--ipc", "--uts", "--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !nested.is_ok_and(|s| s.success()) {
        return Some(
            "user, mount and pid namespaces cannot be created here (`unshare --user --mount --pid` failed), so guest code cannot be sandboxed"
                .into(),
        );
    }
    None
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
}

/// The sandbox for a command, its standard streams left to the caller: [`run`] collects them,
/// the SSH service hands a connection to `sshd -i` as both.
pub(crate) fn command(r: &Run<'_>) -> Command {
    let dirs: Vec<&str> = VM_DIRS.iter().map(|(d, _)| *d).collect();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc", "--"])
        .args(["/bin/sh", "-c", STAGE1]);
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    cmd.env_clear()
        .env("PATH", format!("{AGENT}/bin:{path}"))
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .env("AZDOCK_VM", r.vm)
        .env("AZDOCK_AGENT", r.agent)
        .env("AZDOCK_VM_DIRS", dirs.join(" "))
        .env("AZDOCK_BASE", r.ids.base().to_string())
        .env("AZDOCK_STAGE2", STAGE2)
        .env("AZDOCK_WORKDIR", r.workdir)
        .env("AZDOCK_COMMAND", r.command);
    cmd.envs(r.env.iter().map(|(k, v)| (k, v)));
    if let Some(socket) = r.docker_socket {
        cmd.env("AZDOCK_DOCKER_SOCK", socket);
    }
    cmd
}

/// Runs a command in the VM's sandbox and collects its output (the last 4 KiB of each stream).
pub(crate) fn run(r: &Run<'_>, timeout: Duration) -> Result<Output, String> {
    if let Some(reason) = unavailable_reason() {
        return Err(reason);
    }
    let mut cmd = command(r);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start the sandbox: {e}"))?;
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let out_thread = std::thread::spawn(move || read_all(stdout_pipe.as_mut()));
    let err_thread = std::thread::spawn(move || read_all(stderr_pipe.as_mut()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            // `--kill-child` takes pid 1 of the sandbox, and with it every guest process.
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the script did not finish within {} minutes and was stopped", timeout.as_secs() / 60));
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

/// Makes the VM's directories, owned by its guest's root: `/etc` starts as what an unprivileged
/// user of the host may read of the host's (an image would bring its own; the host's private
/// files — password hashes, SSH host keys, TLS keys — never reach a guest). A VM root from an
/// earlier version, owned by the host's root, is handed to its guest ids and scrubbed first.
pub(crate) fn prepare(vm: &Path, ids: IdMap) -> Result<(), String> {
    let err = |path: &Path, e: std::io::Error| format!("cannot prepare `{}`: {e}", path.display());
    std::fs::create_dir_all(vm).map_err(|e| err(vm, e))?;
    let etc = vm.join("etc");
    match std::fs::symlink_metadata(&etc) {
        Ok(meta) if !ids.owns(meta.uid()) => migrate(vm, ids)?,
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Copied aside and renamed into place, so an interrupted copy is never taken for a
            // finished one.
            let partial = vm.join(".etc.partial");
            let _ = std::fs::remove_dir_all(&partial);
            copy_public(Path::new("/etc"), &partial, ids).map_err(|e| err(&partial, e))?;
            std::fs::rename(&partial, &etc).map_err(|e| err(&etc, e))?;
        }
        Err(e) => return Err(err(&etc, e)),
    }
    for (dir, mode) in VM_DIRS {
        let path = vm.join(dir);
        if !path.exists() {
            std::fs::create_dir_all(&path).map_err(|e| err(&path, e))?;
            give(&path, ids, 0, 0).map_err(|e| err(&path, e))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(|e| err(&path, e))?;
        }
    }
    Ok(())
}

/// Hands a path to guest ids (`uid`, `gid` inside the guest), without following a symlink.
pub(crate) fn give(path: &Path, ids: IdMap, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(ids.host(uid)), Some(ids.host(gid)))
}

/// Files of /etc that hold password hashes: copied with every hash replaced by `*`.
const HASH_FILES: [&str; 4] = ["shadow", "shadow-", "gshadow", "gshadow-"];

/// Copies the part of `src` an unprivileged host user could read: directories keep their shape
/// (an unreadable one arrives empty), files that others may not read are left out, except the
/// password files, which arrive without their hashes. Owners and groups become the guest's.
fn copy_public(src: &Path, dst: &Path, ids: IdMap) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    std::fs::create_dir(dst)?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    give_as(dst, ids, &meta)?;
    if meta.mode() & 0o005 != 0o005 {
        return Ok(());
    }
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&from)?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if kind.is_dir() {
            copy_public(&from, &to, ids)?;
            continue;
        } else if kind.is_file() && is_hash_file(&from) {
            std::fs::write(&to, without_hashes(&std::fs::read_to_string(&from).unwrap_or_default()))?;
        } else if kind.is_file() && meta.mode() & 0o004 != 0 {
            std::fs::copy(&from, &to)?;
        } else {
            continue;
        }
        give_as(&to, ids, &meta)?;
        if !kind.is_symlink() {
            // After the chown, which clears set-id bits.
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    Ok(())
}

fn give_as(path: &Path, ids: IdMap, like: &std::fs::Metadata) -> std::io::Result<()> {
    give(path, ids, like.uid(), like.gid())
}

fn is_hash_file(path: &Path) -> bool {
    path.parent() == Some(Path::new("/etc"))
        && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| HASH_FILES.contains(&n))
}

/// `name:hash:rest…` lines with the hash replaced by `*` (no password can log in).
fn without_hashes(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once(':') {
            Some((name, rest)) => {
                let rest = rest.split_once(':').map_or("", |(_, r)| r);
                format!("{name}:*:{rest}\n")
            }
            None => format!("{line}\n"),
        })
        .collect()
}

/// A VM root written by an earlier version (owned by the host's root, with a full copy of the
/// host's /etc): private host files are removed or stripped of their hashes, then every entry is
/// handed to the guest's ids.
fn migrate(vm: &Path, ids: IdMap) -> Result<(), String> {
    let etc = vm.join("etc");
    scrub(Path::new("/etc"), &etc).map_err(|e| format!("cannot scrub `{}`: {e}", etc.display()))?;
    shift(vm, ids).map_err(|e| format!("cannot hand `{}` to the guest: {e}", vm.display()))
}

/// Removes from the VM's copy every file that is the host's private file of the same path with
/// the same contents, and the hashes from the password files.
fn scrub(host: &Path, copy: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(copy) else { return Ok(()) };
    for entry in entries {
        let entry = entry?;
        let (mine, theirs) = (entry.path(), host.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            scrub(&theirs, &mine)?;
        } else if kind.is_file() && is_hash_file(&theirs) {
            let text = std::fs::read_to_string(&mine).unwrap_or_default();
            std::fs::write(&mine, without_hashes(&text))?;
        } else if kind.is_file()
            && let Ok(meta) = std::fs::symlink_metadata(&theirs)
            && meta.is_file()
            && meta.mode() & 0o004 == 0
            && std::fs::read(&theirs).ok() == std::fs::read(&mine).ok()
        {
            std::fs::remove_file(&mine)?;
        }
    }
    Ok(())
}

/// Hands every entry below `dir` owned by a host id outside the guest's range to the guest id of
/// the same number.
fn shift(dir: &Path, ids: IdMap) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !ids.owns(meta.uid()) || !ids.owns(meta.gid()) {
        // An id already in the guest's range (a migration cut short) stays as it is.
        let map = |id: u32| if ids.owns(id) { id } else { ids.host(id) };
        std::os::unix::fs::lchown(dir, Some(map(meta.uid())), Some(map(meta.gid())))?;
        if !meta.file_type().is_symlink() {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            shift(&entry?.path(), ids)?;
        }
    }
    Ok(())
}

/// Reads a file of the guest by its path inside the VM (`/etc/…`, `/var/lib/…`, `/home/…`),
/// only below the VM's own directories, resolving links inside the VM.
pub(crate) fn guest_file(vm: &Path, path: &str) -> Option<Vec<u8>> {
    let rel = Path::new(path).strip_prefix("/").ok()?;
    VM_DIRS.iter().any(|(d, _)| rel.starts_with(d)).then(|| crate::guestfs::read(vm, path).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vm_has_its_own_unprivileged_range() {
        let a = IdMap::for_vm("/subscriptions/s/resourcegroups/g/providers/microsoft.compute/virtualmachines/a");
        let b = IdMap::for_vm("/subscriptions/s/resourcegroups/g/providers/microsoft.compute/virtualmachines/b");
        assert_ne!(a, b);
        for ids in [a, b] {
            assert!(ids.base() >= FIRST_BASE);
            assert!(u64::from(ids.base()) + u64::from(GUEST_IDS) <= 1 << 31);
            assert_eq!((ids.base() - FIRST_BASE) % GUEST_IDS, 0);
            assert_eq!(ids.host(0), ids.base());
            assert_eq!(ids.host(1000), ids.base() + 1000);
            assert_eq!(ids.host(70_000), ids.base() + 65_534);
            assert_eq!(ids.host(GUEST_IDS), ids.base() + 65_534);
            assert_eq!(ids.host(GUEST_IDS - 1), ids.base() + GUEST_IDS - 1);
            assert!(ids.owns(ids.base()) && ids.owns(ids.base() + GUEST_IDS - 1));
            assert!(!ids.owns(ids.base() - 1) && !ids.owns(ids.base() + GUEST_IDS) && !ids.owns(0));
        }
        assert_eq!(a, IdMap::for_vm("/subscriptions/s/resourcegroups/g/providers/microsoft.compute/virtualmachines/a"));
    }

    #[test]
    fn password_files_lose_their_hashes() {
        let text = "root:$y$j9T$abc:19000:0:99999:7:::\nops:!:19000::::::\nbroken\n";
        assert_eq!(without_hashes(text), "root:*:19000:0:99999:7:::\nops:*:19000::::::\nbroken\n");
        assert!(is_hash_file(Path::new("/etc/shadow")) && is_hash_file(Path::new("/etc/gshadow-")));
        assert!(!is_hash_file(Path::new("/etc/passwd")) && !is_hash_file(Path::new("/etc/x/shadow")));
    }

    #[test]
    fn an_old_vm_root_loses_the_hosts_private_files_and_goes_to_its_guest() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let vm = dir.path().join("root");
        // What an earlier version left: /etc copied whole (with the host's shadow), owned by root.
        std::fs::create_dir_all(vm.join("etc")).unwrap();
        std::fs::create_dir_all(vm.join("home/ops")).unwrap();
        std::fs::write(vm.join("etc/shadow"), "root:$6$secret$hash:19000:0:99999:7:::\n").unwrap();
        std::fs::write(vm.join("etc/hostname"), "vm\n").unwrap();
        std::fs::write(vm.join("home/ops/notes"), "kept").unwrap();
        // Half-handed entries (an interrupted migration) and a link that leads out to the host.
        std::fs::write(vm.join("home/ops/half"), "x").unwrap();
        std::os::unix::fs::lchown(vm.join("home/ops/half"), Some(0), Some(IdMap::for_vm("old").base())).unwrap();
        let outside = dir.path().join("host-file");
        std::fs::write(&outside, "host").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&outside, vm.join("etc/out")).unwrap();
        let private = std::fs::read_dir("/etc")
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.metadata().is_ok_and(|m| m.is_file() && m.mode() & 0o004 == 0) && !is_hash_file(&e.path()));
        if let Some(p) = &private {
            std::fs::copy(p.path(), vm.join("etc").join(p.file_name())).unwrap();
        }
        let ids = IdMap::for_vm("old");
        prepare(&vm, ids).unwrap();
        assert_eq!(std::fs::read_to_string(vm.join("etc/shadow")).unwrap(), "root:*:19000:0:99999:7:::\n");
        assert_eq!(std::fs::read_to_string(vm.join("home/ops/notes")).unwrap(), "kept");
        if let Some(p) = private {
            assert!(!vm.join("etc").join(p.file_name()).exists(), "{} was kept", p.path().display());
        }
        for path in ["etc", "etc/hostname", "etc/out", "home/ops/notes", "home/ops/half", "tmp", "var/lib"] {
            let meta = std::fs::symlink_metadata(vm.join(path)).unwrap();
            assert!(ids.owns(meta.uid()) && ids.owns(meta.gid()), "{path}");
        }
        let half = std::fs::metadata(vm.join("home/ops/half")).unwrap();
        assert_eq!((half.uid(), half.gid()), (ids.base(), ids.base()), "the group was already the guest's root");
        assert_eq!(std::fs::metadata(vm.join("etc/hostname")).unwrap().mode() & 0o7777, 0o644);
        // The host file behind the link keeps its owner and mode.
        let host = std::fs::metadata(&outside).unwrap();
        assert_eq!((host.uid(), host.mode() & 0o7777), (0, 0o600));
        // A new VM: /etc is what others may read, without hashes, owned by the guest.
        let fresh = dir.path().join("fresh");
        prepare(&fresh, ids).unwrap();
        assert_eq!(std::fs::read(fresh.join("etc/passwd")).unwrap(), std::fs::read("/etc/passwd").unwrap());
        for (path, host) in [("etc", "/etc"), ("etc/passwd", "/etc/passwd")] {
            let (mine, theirs) = (std::fs::metadata(fresh.join(path)).unwrap(), std::fs::metadata(host).unwrap());
            assert_eq!(mine.mode() & 0o7777, theirs.mode() & 0o7777, "{path}");
            assert_eq!((mine.uid(), mine.gid()), (ids.host(theirs.uid()), ids.host(theirs.gid())), "{path}");
        }
        for entry in std::fs::read_dir("/etc").unwrap().filter_map(Result::ok) {
            let meta = entry.metadata().unwrap();
            if meta.is_file() && meta.mode() & 0o004 == 0 && !is_hash_file(&entry.path()) {
                assert!(!fresh.join("etc").join(entry.file_name()).exists(), "{} was copied", entry.path().display());
            }
        }
        let shadow = std::fs::read_to_string(fresh.join("etc/shadow")).unwrap_or_default();
        assert!(shadow.lines().all(|l| l.split(':').nth(1) == Some("*")), "{shadow}");
        assert!(ids.owns(std::fs::metadata(fresh.join("etc/passwd")).unwrap().uid()));
    }

    #[test]
    fn a_script_past_its_time_is_stopped_with_every_process_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let (vm, agent) = (dir.path().join("root"), dir.path().join("agent"));
        let ids = IdMap::for_vm("timeout");
        prepare(&vm, ids).unwrap();
        std::fs::create_dir_all(agent.join("bin")).unwrap();
        // A marker in the command line, to find the guest's process from the host.
        let marker = format!("sleep {}", 20 + std::process::id() % 10);
        let run = |command: &str, timeout: Duration| {
            super::run(
                &Run { vm: &vm, ids, agent: &agent, docker_socket: None, workdir: "/", env: Vec::new(), command },
                timeout,
            )
        };
        let started = Instant::now();
        let outcome = run(&format!("{marker} & echo started; wait"), Duration::from_secs(1));
        let err = outcome.err().expect("the script was stopped");
        assert!(err.contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20), "stopped only after {:?}", started.elapsed());
        // Pid 1 of the sandbox took its background process with it.
        std::thread::sleep(Duration::from_millis(300));
        let alive = std::fs::read_dir("/proc").unwrap().filter_map(Result::ok).any(|p| {
            std::fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == marker)
        });
        assert!(!alive, "`{marker}` outlived its sandbox");
        // Within its time, a script's exit code and output come back.
        let out = run("echo out; echo err >&2; exit 3", Duration::from_secs(60)).unwrap();
        assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (3, "out\n", "err\n"));
    }
}
