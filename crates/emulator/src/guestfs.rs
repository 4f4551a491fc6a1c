//! A guest's files as the local cloud (the host's root) reads and writes them. The guest owns its
//! directories and may have made any path component a symbolic link — to `/etc/shadow` of the
//! host, say — so every path is resolved inside the VM's root (`openat2` with
//! `RESOLVE_IN_ROOT`): links, absolute or with `..`, stay inside the VM as they would on the VM
//! itself, and a host file is never read, written or removed through them.

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

use crate::sandbox::IdMap;

fn io(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

fn resolve() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// The path inside the guest (`/etc/docker/ca.pem`) as plain components, or an error.
fn components(path: &str) -> std::io::Result<Vec<&str>> {
    let p = Path::new(path);
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("not a guest path: {path}"));
    if !p.is_absolute() {
        return Err(invalid());
    }
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(part) => parts.push(part.to_str().ok_or_else(invalid)?),
            _ => return Err(invalid()),
        }
    }
    if parts.is_empty() { Err(invalid()) } else { Ok(parts) }
}

fn root(vm: &Path) -> std::io::Result<OwnedFd> {
    rustix::fs::open(vm, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(io)
}

fn open_in(root: &OwnedFd, path: &str, flags: OFlags) -> std::io::Result<OwnedFd> {
    let path = if path.is_empty() { "." } else { path };
    rustix::fs::openat2(root, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve()).map_err(io)
}

/// Reads a guest file.
pub(crate) fn read(vm: &Path, path: &str) -> std::io::Result<Vec<u8>> {
    let rel = components(path)?.join("/");
    let fd = open_in(&root(vm)?, &rel, OFlags::RDONLY)?;
    let mut data = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut data)?;
    Ok(data)
}

/// The names in a guest directory.
pub(crate) fn list(vm: &Path, path: &str) -> std::io::Result<Vec<String>> {
    let rel = components(path)?.join("/");
    let fd = open_in(&root(vm)?, &rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd).map_err(io)? {
        let name = entry.map_err(io)?.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes a guest file; a missing one is not an error.
pub(crate) fn remove(vm: &Path, path: &str) -> std::io::Result<()> {
    let parts = components(path)?;
    let (name, parent) = parts.split_last().unwrap_or((&"", &[]));
    let dir = match open_in(&root(vm)?, &parent.join("/"), OFlags::PATH | OFlags::DIRECTORY) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    match rustix::fs::unlinkat(&dir, *name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Writes a guest file with `mode`, owned by the guest's root, making missing directories
/// (0755, the guest root's) on the way. A symbolic link in the last place is refused.
pub(crate) fn write(vm: &Path, path: &str, data: &[u8], mode: u32, ids: IdMap) -> std::io::Result<()> {
    write_owned(vm, path, data, mode, ids, (0, 0))
}

/// Makes a guest directory (and its missing parents, the guest root's) owned by `owner` (guest
/// uid and gid) with `mode`; an existing one gets that owner and mode.
pub(crate) fn make_dir(vm: &Path, path: &str, mode: u32, ids: IdMap, owner: (u32, u32)) -> std::io::Result<()> {
    let parts = components(path)?;
    let root = root(vm)?;
    make_parents(&root, &parts, ids)?;
    let fd = open_in(&root, &parts.join("/"), OFlags::RDONLY | OFlags::DIRECTORY)?;
    rustix::fs::fchown(
        &fd,
        Some(rustix::fs::Uid::from_raw(ids.host(owner.0))),
        Some(rustix::fs::Gid::from_raw(ids.host(owner.1))),
    )
    .map_err(io)?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io)
}

/// Makes each missing directory of `dirs` (0755, the guest root's), inside the VM.
fn make_parents(root: &OwnedFd, dirs: &[&str], ids: IdMap) -> std::io::Result<()> {
    let owner = (Some(rustix::fs::Uid::from_raw(ids.host(0))), Some(rustix::fs::Gid::from_raw(ids.host(0))));
    for depth in 1..=dirs.len() {
        let dir = dirs[..depth].join("/");
        match open_in(root, &dir, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let above = open_in(root, &dirs[..depth - 1].join("/"), OFlags::PATH | OFlags::DIRECTORY)?;
        match rustix::fs::mkdirat(&above, dirs[depth - 1], Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io(e)),
        }
        let created = open_in(root, &dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
        rustix::fs::fchown(&created, owner.0, owner.1).map_err(io)?;
    }
    Ok(())
}

/// [`write`], the file owned by `owner` (guest uid and gid).
pub(crate) fn write_owned(
    vm: &Path,
    path: &str,
    data: &[u8],
    mode: u32,
    ids: IdMap,
    owner: (u32, u32),
) -> std::io::Result<()> {
    let parts = components(path)?;
    let (name, parent) = parts.split_last().unwrap_or((&"", &[]));
    let root = root(vm)?;
    let file_owner =
        (Some(rustix::fs::Uid::from_raw(ids.host(owner.0))), Some(rustix::fs::Gid::from_raw(ids.host(owner.1))));
    make_parents(&root, parent, ids)?;
    let dir = open_in(&root, &parent.join("/"), OFlags::PATH | OFlags::DIRECTORY)?;
    let fd = rustix::fs::openat(
        &dir,
        *name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(io)?;
    rustix::fs::fchown(&fd, file_owner.0, file_owner.1).map_err(io)?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_made_by_the_guest_stay_inside_the_vm() {
        let dir = tempfile::tempdir().unwrap();
        let vm = dir.path().join("vm");
        std::fs::create_dir_all(vm.join("etc/docker")).unwrap();
        std::fs::create_dir_all(vm.join("var/lib")).unwrap();
        std::fs::write(vm.join("etc/docker/ca.pem"), "mine").unwrap();
        let host = dir.path().join("host-secret");
        std::fs::write(&host, "host").unwrap();
        // An absolute link resolves inside the VM, as on the VM itself.
        std::os::unix::fs::symlink("/etc/docker/ca.pem", vm.join("etc/docker/abs.pem")).unwrap();
        std::os::unix::fs::symlink(&host, vm.join("etc/docker/key.pem")).unwrap();
        std::os::unix::fs::symlink("../../..", vm.join("var/lib/up")).unwrap();
        assert_eq!(read(&vm, "/etc/docker/ca.pem").unwrap(), b"mine");
        assert_eq!(read(&vm, "/etc/docker/abs.pem").unwrap(), b"mine");
        assert!(read(&vm, "/etc/docker/key.pem").is_err());
        assert!(read(&vm, "/var/lib/up/host-secret").is_err());
        assert!(read(&vm, "/etc/../host-secret").is_err());
        assert!(read(&vm, "etc/docker/ca.pem").is_err());

        let ids = IdMap::for_vm("x");
        // Writing through a link in the last place or above it never reaches the host file.
        assert!(write(&vm, "/etc/docker/key.pem", b"evil", 0o644, ids).is_err());
        std::os::unix::fs::symlink(dir.path(), vm.join("var/lib/hostdir")).unwrap();
        let _ = write(&vm, "/var/lib/hostdir/host-secret", b"evil", 0o644, ids);
        assert_eq!(std::fs::read(&host).unwrap(), b"host");
        remove(&vm, "/var/lib/hostdir/host-secret").unwrap();
        assert!(host.exists());
        // A parent that is not a directory is an error, not "nothing to remove".
        assert_eq!(remove(&vm, "/etc/docker/ca.pem/x").unwrap_err().raw_os_error(), Some(20));

        write(&vm, "/var/lib/new/dir/file", b"data", 0o640, ids).unwrap();
        assert_eq!(read(&vm, "/var/lib/new/dir/file").unwrap(), b"data");
        assert_eq!(list(&vm, "/var/lib/new/dir").unwrap(), vec!["file".to_owned()]);
        remove(&vm, "/var/lib/new/dir/file").unwrap();
        remove(&vm, "/var/lib/new/dir/file").unwrap();
        assert!(list(&vm, "/var/lib/new/dir").unwrap().is_empty());
    }
}
