//! azdock-files: the one way azdock writes a file that someone else may be reading — certificates,
//! the config, stored sign-ins, the record of Docker hosts, extensions' local files, the local
//! cloud's snapshot — and the one lock for read-modify-write of such a file.
//!
//! A write goes to a temporary file with a name no other writer uses, created with its final
//! mode (a key is never readable by others, not even for a moment), synced, renamed over the
//! target, and the directory synced, so a reader sees the old file or the new one and a crash
//! leaves one of them. Only std and rustix: every crate may depend on this one.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left as they are).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    // One `mkdir` when the directory exists or only it is missing (the usual cases); the
    // recursive builder's walk (which says what else went wrong) only when a parent is missing
    // too. An existing non-directory is left to fail the first file opened in it.
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) => DirBuilder::new().recursive(true).mode(0o700).create(dir),
    }
}

/// A temporary name beside `path` that no other writer (process or thread) picks: what a
/// writer here writes `path` to before renaming it into place.
pub fn temp_name(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    path.with_file_name(format!("{}{}-{n}-{nanos}", temp_prefix(path), std::process::id()))
}

/// What follows a file's name in the names of its temporaries: `.<name>.tmp-<pid>-<n>-<nanos>`.
const TEMP_MARK: &str = ".tmp-";

/// What every temporary name of `path` starts with.
fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    format!(".{name}{TEMP_MARK}")
}

/// The temporary files in `dir` that writers left behind, of the files whose names `of`
/// accepts: a writer killed before its rename leaves its temporary (complete and synced when it
/// was stopped between the syncs and the renames of a batch). Only meaningful under the lock
/// every writer of those files holds, so that none of them is a live writer's.
pub fn leftover_temporaries(dir: &Path, of: impl Fn(&str) -> bool) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some((target, _)) = name.strip_prefix('.').and_then(|n| n.rsplit_once(TEMP_MARK))
            && of(target)
        {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// The directory a file is in: its parent, or `.` for a bare name.
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes `data` to `path` atomically with permission bits `mode`, creating the parent
/// directory (0700) when missing. The temporary file is removed when anything fails.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = dir_of(path);
    create_private_dir(dir)?;
    let tmp = temp_name(path);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode & 0o7777).open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable once the directory is; a failure here does not undo the write.
    let _ = File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

/// A batch that did not land whole: how many of its files were renamed into place (in the
/// order given) before `source` stopped it. Those stay; the others are as they were, and no
/// temporary of the batch is left.
#[derive(Debug)]
pub struct BatchError {
    pub landed: usize,
    pub source: io::Error,
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

// Displayed as the I/O error itself, so the chain does not say it twice.
impl std::error::Error for BatchError {}

/// Writes several files as [`write_atomic`] writes one, with their syncs together: every
/// temporary file is written, the writeback of all of them started at once (so the disk takes
/// them as one batch) and each then synced, then renamed into place in the order given, and
/// each directory is synced once. A file's data is on disk before its name points at it, as with
/// [`write_atomic`]; a failure removes the temporaries not yet renamed and says how many files
/// landed. A process killed between the syncs and the last rename leaves the temporaries of the
/// files not yet renamed, complete ([`leftover_temporaries`]).
pub fn write_atomic_all(files: &[(&Path, &[u8], u32)]) -> Result<(), BatchError> {
    let mut landed = 0;
    let mut dirs: Vec<&Path> = Vec::new();
    let tmps: Vec<PathBuf> = files.iter().map(|(path, _, _)| temp_name(path)).collect();
    let result = (|| {
        for (path, _, _) in files {
            let dir = dir_of(path);
            if !dirs.contains(&dir) {
                create_private_dir(dir)?;
                dirs.push(dir);
            }
        }
        let mut opened = Vec::with_capacity(files.len());
        for ((_, data, mode), tmp) in files.iter().zip(&tmps) {
            let mut file = OpenOptions::new().write(true).create_new(true).mode(mode & 0o7777).open(tmp)?;
            file.write_all(data)?;
            opened.push(file);
        }
        for file in &opened {
            start_writeback(file);
        }
        for file in &opened {
            file.sync_all()?;
        }
        for ((path, _, _), tmp) in files.iter().zip(&tmps) {
            fs::rename(tmp, path)?;
            landed += 1;
        }
        Ok(())
    })();
    if let Err(source) = result {
        for tmp in &tmps[landed..] {
            let _ = fs::remove_file(tmp);
        }
        return Err(BatchError { landed, source });
    }
    for dir in dirs {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Asks the kernel to start writing `file`'s data now without waiting: the writes of a batch
/// are then in flight together and the `fsync`s that follow mostly wait for them — what one
/// thread per sync achieved, without starting threads (a measured 0.4 ms of `certs server`).
/// A hint only: durability still comes from each file's `fsync`.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File) {
    // Linux's POSIX_FADV_DONTNEED starts writeback of the dirty pages (WB_SYNC_NONE) and then
    // drops only pages already clean; a later read of these small files costs at most a read.
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File) {}

/// An exclusive advisory lock on `<path>.lock`, held until dropped: the lock for a
/// read-modify-write of `path` by several azdock processes at once.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Waits for and takes the lock of `path`.
    pub fn acquire(path: &Path) -> io::Result<Self> {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = PathBuf::from(name);
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&lock_path)?;
        file.lock()?;
        Ok(Self { _file: file })
    }
}

/// Reads `path` (None when it does not exist), lets `change` compute the new contents from the
/// old, and writes them atomically with `mode` — all under the file's [`Lock`], so two processes
/// updating the same file both see their change land. `change` returning `Ok(None)` writes
/// nothing.
pub fn update<E: From<io::Error>>(
    path: &Path,
    mode: u32,
    change: impl FnOnce(Option<Vec<u8>>) -> Result<Option<Vec<u8>>, E>,
) -> Result<(), E> {
    let _lock = Lock::acquire(path)?;
    let old = match fs::read(path) {
        Ok(data) => Some(data),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(new) = change(old)? {
        write_atomic(path, &new, mode)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn writes_replace_whole_files_with_their_mode_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key.pem");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["key.pem"]);
        write_atomic(&dir.path().join("public"), b"x", 0o644).unwrap();
        assert_eq!(fs::metadata(dir.path().join("public")).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        // Renaming a file over a non-empty directory fails.
        assert!(write_atomic(&path, b"new", 0o600).is_err());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["target"]);
    }

    #[test]
    fn a_lock_makes_its_directory_and_a_read_failure_is_not_taken_for_absence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/sub/record.json");
        drop(Lock::acquire(&path).unwrap());
        assert!(dir.path().join("new/sub/record.json.lock").is_file());
        // A path that cannot be read (a directory) fails the update before `change` runs.
        let mut called = false;
        let e = update::<io::Error>(dir.path(), 0o600, |_| {
            called = true;
            Ok(None)
        });
        assert!(e.is_err());
        assert!(!called);
    }

    #[test]
    fn temporary_names_differ_between_writers() {
        let path = Path::new("/x/hosts.json");
        let a = temp_name(path);
        assert_ne!(a, temp_name(path));
        assert_eq!(a.parent(), Some(Path::new("/x")));
        assert!(a.file_name().unwrap().to_string_lossy().starts_with(".hosts.json.tmp-"));
    }

    #[test]
    fn concurrent_updates_under_the_lock_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        update::<io::Error>(&path, 0o600, |old| {
                            let n: u32 = old.map_or(0, |d| String::from_utf8(d).unwrap().parse().unwrap());
                            Ok(Some((n + 1).to_string().into_bytes()))
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "200");
        update::<io::Error>(&path, 0o600, |_| Ok(None)).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "200");
    }

    #[test]
    fn a_batch_lands_every_file_with_its_mode_or_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("sub/a.pem"), dir.path().join("sub/b.pem"), dir.path().join("c.pem"));
        write_atomic_all(&[(&a, b"one", 0o600), (&b, b"two", 0o644), (&c, b"three", 0o600)]).unwrap();
        assert_eq!(
            (fs::read(&a).unwrap(), fs::read(&b).unwrap(), fs::read(&c).unwrap()),
            (b"one".to_vec(), b"two".to_vec(), b"three".to_vec())
        );
        assert_eq!(fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&b).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(fs::metadata(dir.path().join("sub")).unwrap().permissions().mode() & 0o777, 0o700);
        // The second file cannot land (a non-empty directory is in its way): the first did, in
        // order; the rest stay as they were and no temporary is left.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        let e = write_atomic_all(&[(&a, b"new", 0o600), (&blocked, b"x", 0o600), (&c, b"new", 0o600)]).unwrap_err();
        assert_eq!(e.landed, 1, "{e}");
        assert_eq!(e.to_string(), e.source.to_string());
        assert_eq!(e.source.kind(), io::ErrorKind::IsADirectory);
        assert_eq!(fs::read(&a).unwrap(), b"new");
        assert_eq!(fs::read(&c).unwrap(), b"three");
        for d in [dir.path().to_owned(), dir.path().join("sub")] {
            let names: Vec<String> =
                fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
        }
        write_atomic_all(&[]).unwrap();
    }

    #[test]
    fn a_killed_writer_s_temporaries_are_found_by_the_name_they_were_for() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let left = [temp_name(&key), temp_name(&cert), temp_name(&cert)];
        for tmp in &left {
            fs::write(tmp, b"x").unwrap();
        }
        // Neither the files themselves nor other hidden names are taken for temporaries.
        fs::write(&key, b"k").unwrap();
        fs::write(dir.path().join(".cert.pem"), b"c").unwrap();
        fs::write(dir.path().join(".tmp-cert.pem"), b"c").unwrap();
        let mut certs = vec![left[1].clone(), left[2].clone()];
        certs.sort();
        assert_eq!(leftover_temporaries(dir.path(), |name| name == "cert.pem").unwrap(), certs);
        assert_eq!(
            leftover_temporaries(dir.path(), |name| Path::new(name).extension().is_some_and(|e| e == "pem"))
                .unwrap()
                .len(),
            3
        );
        assert!(leftover_temporaries(dir.path(), |name| name == "ca.pem").unwrap().is_empty());
        assert!(leftover_temporaries(&dir.path().join("missing"), |_| true).is_err());
    }

    #[test]
    fn a_private_dir_is_made_with_its_parents_and_an_existing_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_private_dir(&deep).unwrap();
        assert_eq!(fs::metadata(&deep).unwrap().permissions().mode() & 0o777, 0o700);
        fs::set_permissions(&deep, fs::Permissions::from_mode(0o750)).unwrap();
        create_private_dir(&deep).unwrap();
        assert_eq!(fs::metadata(&deep).unwrap().permissions().mode() & 0o777, 0o750);
        // A file in the way of a parent is an error.
        fs::write(dir.path().join("file"), b"x").unwrap();
        assert!(create_private_dir(&dir.path().join("file/sub")).is_err());
    }

    #[test]
    fn a_bare_name_is_in_the_current_directory() {
        assert_eq!(dir_of(Path::new("key.pem")), Path::new("."));
        assert_eq!(dir_of(Path::new("d/key.pem")), Path::new("d"));
        assert_eq!(dir_of(Path::new("/key.pem")), Path::new("/"));
    }
}
