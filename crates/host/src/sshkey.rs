//! `--generate-ssh-keys`: an Ed25519 key pair in OpenSSH's own format at `~/.ssh/id_ed25519`,
//! encoded by the `ssh-key` crate, reused when it is there. Nothing the user has is overwritten.
//! A private key without its public half (a run killed between publishing the two, or a public
//! key deleted) gets it back from the private key, as `ssh-keygen -y` and az do.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A new Ed25519 pair as OpenSSH writes it: the private key (`openssh-key-v1`, unencrypted)
/// and the public key line. The `ssh-key` crate does the encoding; the seed comes from the
/// system's random source through ring.
fn new_pair(comment: &str) -> Result<(zeroize::Zeroizing<String>, String)> {
    use ring::rand::SecureRandom as _;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    ring::rand::SystemRandom::new()
        .fill(seed.as_mut())
        .map_err(|_| Error::Failed("cannot generate an SSH key: no system randomness".into()))?;
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let key = ssh_key::PrivateKey::new(ssh_key::private::KeypairData::Ed25519(pair), comment)
        .map_err(|e| Error::Failed(format!("cannot make the SSH key: {e}")))?;
    let private =
        key.to_openssh(ssh_key::LineEnding::LF).map_err(|e| Error::Failed(format!("cannot write the SSH key: {e}")))?;
    let public =
        key.public_key().to_openssh().map_err(|e| Error::Failed(format!("cannot write the SSH public key: {e}")))?;
    Ok((zeroize::Zeroizing::new(private.to_string()), public))
}

/// How long a run that finds a private key without its public half waits for it: another run
/// may be between writing the two.
const PAIR_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Where the pair [`generate_or_reuse`] answers with came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// This run made it.
    Made,
    /// Both halves were there.
    Reused,
    /// The private key was there alone; its public half was written from it.
    PublicRestored,
}

/// The public key line from `~/.ssh/id_ed25519.pub`, making the pair first when neither file
/// exists. A private key alone gets its public half back from it (one azdock cannot read is an
/// error saying how to make it); a public key alone is an error naming the missing private key.
/// Runs started together make one pair: the private key is published with `link()`, which
/// fails if a key appeared meanwhile, and then that key is used, as az uses an existing one.
/// Temporaries of runs that were killed before publishing are removed.
pub fn generate_or_reuse(ssh_dir: &Path) -> Result<(String, PathBuf, KeyOrigin)> {
    let private = ssh_dir.join("id_ed25519");
    let public = ssh_dir.join("id_ed25519.pub");
    sweep_leftovers(ssh_dir);
    if let Some(found) = existing(&private, &public)? {
        return Ok(found);
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "azdock".into());
    let (private_key, line) = new_pair(&format!("{user}@azdock"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(ssh_dir).map_err(Error::io("create", ssh_dir))?;
    // Both halves are written under names of this process's own, then published.
    let unique = temporary_name();
    let (private_tmp, public_tmp) = (ssh_dir.join(&unique), ssh_dir.join(format!("{unique}.pub")));
    let written = write_new(&private_tmp, private_key.as_bytes(), 0o600)
        .and_then(|()| write_new(&public_tmp, format!("{line}\n").as_bytes(), 0o644));
    let published =
        written.and_then(|()| std::fs::hard_link(&private_tmp, &private).map_err(Error::io("write", &private)));
    let _ = std::fs::remove_file(&private_tmp);
    match published {
        Ok(()) => {
            std::fs::rename(&public_tmp, &public).map_err(Error::io("write", &public))?;
            Ok((line, public, KeyOrigin::Made))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&public_tmp);
            // Another run made the pair first: use it.
            if private.exists() {
                return existing(&private, &public)?
                    .ok_or_else(|| Error::Failed("the key another run made has no public half".into()));
            }
            Err(e)
        }
    }
}

/// A name of this process's own for a temporary in `~/.ssh`: `.azdock-<pid>-<16 hex digits>`
/// (its public half adds `.pub`).
fn temporary_name() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!(".azdock-{}-{:016x}", std::process::id(), u64::from_le_bytes(b))
}

/// The process that made a temporary named by [`temporary_name`], or `None` for any other name.
fn temporary_owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(".azdock-")?;
    let rest = rest.strip_suffix(".pub").unwrap_or(rest);
    let (pid, token) = rest.split_once('-')?;
    let hex = token.len() == 16 && token.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then(|| pid.parse().ok()).flatten()
}

/// Whether process `pid` may still run (one of another user counts): its temporaries are its own.
fn running(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid)
        .is_none_or(|pid| rustix::process::test_kill_process(pid) != Err(rustix::io::Errno::SRCH))
}

/// Removes the temporaries of runs that no longer run (killed between writing and publishing):
/// copies of keys nothing uses. Only names [`temporary_name`] makes are touched; what cannot be
/// read or removed is left, as the run goes on without it.
fn sweep_leftovers(ssh_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(ssh_dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_str().and_then(temporary_owner).is_some_and(|pid| !running(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes the public half of the private key at `private`, which is there without it: what
/// `ssh-keygen -y` prints, with the key's comment. OpenSSH keeps the public key in the clear in
/// its private key files, encrypted ones too, so no passphrase is asked.
fn restore_public(private: &Path, public: &Path) -> Result<String> {
    let cannot = |why: String| {
        Error::Failed(format!(
            "`{}` exists without `{}`, and {why}; recreate the public key with `ssh-keygen -y -f {0}`",
            private.display(),
            public.display()
        ))
    };
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(private).map_err(Error::io("read", private))?);
    let key = ssh_key::PrivateKey::from_openssh(text.as_str())
        .map_err(|e| cannot(format!("azdock cannot read it as an OpenSSH private key ({e})")))?;
    let line = key.public_key().to_openssh().map_err(|e| cannot(format!("its public key cannot be written ({e})")))?;
    let tmp = private.with_file_name(format!("{}.pub", temporary_name()));
    // Published with `link()`: a public key that appeared meanwhile is never replaced.
    let published = write_new(&tmp, format!("{line}\n").as_bytes(), 0o644)
        .and_then(|()| std::fs::hard_link(&tmp, public).map_err(Error::io("write", public)));
    let _ = std::fs::remove_file(&tmp);
    published?;
    Ok(line)
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(Error::io("write", path))?;
    file.write_all(data).and_then(|()| file.sync_all()).map_err(Error::io("write", path))?;
    Ok(())
}

/// The existing pair's public line, or `None` when neither half exists.
fn existing(private: &Path, public: &Path) -> Result<Option<(String, PathBuf, KeyOrigin)>> {
    let deadline = std::time::Instant::now() + PAIR_WAIT;
    loop {
        // The public half first: a run publishes the private half before it, so a public key
        // seen here means its private key is there when looked at next. Looked at the other way
        // round, a pair another run published in between would seem to be a lone public key.
        let has_public = public.exists();
        let has_private = private.exists();
        match (has_private, has_public) {
            (true, true) => {
                let line = std::fs::read_to_string(public).map_err(Error::io("read", public))?;
                return Ok(Some((line.trim().to_owned(), public.to_owned(), KeyOrigin::Reused)));
            }
            // Another run may be between publishing the two halves: give it a moment.
            (true, false) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            (true, false) => match restore_public(private, public) {
                Ok(line) => return Ok(Some((line, public.to_owned(), KeyOrigin::PublicRestored))),
                // Another run wrote it first: read the pair again.
                Err(_) if public.exists() => {}
                Err(e) => return Err(e),
            },
            (false, true) => {
                return Err(Error::Failed(format!(
                    "`{}` exists without its private key `{}`; pass it with --ssh-key-value instead",
                    public.display(),
                    private.display()
                )));
            }
            (false, false) => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_pair_is_made_once_then_reused_and_a_lone_private_key_gets_its_public_half_back() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join(".ssh");
        let (line, _, origin) = generate_or_reuse(&ssh).unwrap();
        assert!(origin == KeyOrigin::Made && line.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"));
        azdock_azure_sm::rules::ssh_public_key(&line).unwrap();
        let mode = |name: &str| {
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(ssh.join(name)).unwrap().permissions()) & 0o777
        };
        assert_eq!(mode("id_ed25519"), 0o600);
        assert!(
            std::fs::read_to_string(ssh.join("id_ed25519")).unwrap().starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        );
        // OpenSSH reads the private key and derives the very public key written beside it.
        match std::process::Command::new("ssh-keygen").arg("-y").arg("-f").arg(ssh.join("id_ed25519")).output() {
            Ok(out) => {
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                let derived = String::from_utf8(out.stdout).unwrap();
                let written: Vec<&str> = line.split_whitespace().take(2).collect();
                assert_eq!(derived.split_whitespace().take(2).collect::<Vec<_>>(), written);
            }
            Err(e) => assert!(
                std::env::var_os("AZDOCK_TESTS_WITHOUT_SSH").is_some(),
                "this test needs ssh-keygen (Debian's openssh-client), or AZDOCK_TESTS_WITHOUT_SSH=1: {e}"
            ),
        }
        let (again, _, origin) = generate_or_reuse(&ssh).unwrap();
        assert_eq!((again.as_str(), origin), (line.as_str(), KeyOrigin::Reused));
        // A run killed between publishing the halves (or a deleted public key): the same line
        // again, comment and all, written from the private key.
        std::fs::remove_file(ssh.join("id_ed25519.pub")).unwrap();
        let (restored, path, origin) = generate_or_reuse(&ssh).unwrap();
        assert_eq!((restored.as_str(), origin), (line.as_str(), KeyOrigin::PublicRestored));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{line}\n"));
        assert_eq!(mode("id_ed25519.pub"), 0o644);
        assert_eq!(std::fs::read_dir(&ssh).unwrap().count(), 2, "no temporary left");
        // A public key alone names its missing private key.
        std::fs::remove_file(ssh.join("id_ed25519")).unwrap();
        let err = generate_or_reuse(&ssh).unwrap_err().to_string();
        assert!(err.contains("without its private key") && err.contains("id_ed25519`"), "{err}");
    }

    /// `runs` calls of [`generate_or_reuse`] on `ssh`, started together on threads; each succeeds.
    fn together(ssh: &Path, runs: usize) -> Vec<(String, PathBuf, KeyOrigin)> {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(runs));
        let runs: Vec<_> = (0..runs)
            .map(|_| {
                let (ssh, barrier) = (ssh.to_owned(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    generate_or_reuse(&ssh)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap().unwrap()).collect()
    }

    #[test]
    fn runs_started_together_restore_one_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join(".ssh");
        let (line, _, _) = generate_or_reuse(&ssh).unwrap();
        // Each round waits out `PAIR_WAIT` first (the public half might be on its way).
        for _ in 0..3 {
            std::fs::remove_file(ssh.join("id_ed25519.pub")).unwrap();
            // The runs whose `link()` lost to another's read the public key that one wrote.
            for (restored, _, _) in together(&ssh, 6) {
                assert_eq!(restored, line);
            }
            assert_eq!(std::fs::read_dir(&ssh).unwrap().count(), 2, "nothing left behind");
        }
    }

    #[test]
    fn a_private_key_azdock_cannot_read_alone_is_an_error_saying_how_to_recreate_its_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("id_ed25519"), "-----BEGIN RSA PRIVATE KEY-----\nnot this\n").unwrap();
        let err = generate_or_reuse(&ssh).unwrap_err().to_string();
        assert!(err.contains("cannot read it as an OpenSSH private key") && err.contains("ssh-keygen -y -f"), "{err}");
        assert!(!ssh.join("id_ed25519.pub").exists());
        assert_eq!(std::fs::read_dir(&ssh).unwrap().count(), 1, "nothing written");
    }

    #[test]
    fn temporaries_of_runs_that_ended_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        let mut ended = std::process::Command::new("true").spawn().unwrap();
        ended.wait().unwrap();
        let (gone, mine) = (format!(".azdock-{}-0123456789abcdef", ended.id()), temporary_name());
        let kept =
            [mine.clone(), format!("{mine}.pub"), ".azdock-notes".into(), format!("{gone}.bak"), "id_rsa".into()];
        for name in [gone.clone(), format!("{gone}.pub")].iter().chain(&kept) {
            std::fs::write(ssh.join(name), "x").unwrap();
        }
        generate_or_reuse(&ssh).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(&ssh).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        let mut expected: Vec<String> =
            kept.into_iter().chain(["id_ed25519".into(), "id_ed25519.pub".into()]).collect();
        expected.sort();
        assert_eq!(names, expected);
        assert_eq!(temporary_owner(&gone), Some(i32::try_from(ended.id()).unwrap()));
        for name in [".azdock-12-0123456789abcde", ".azdock--0123456789abcdef", ".azdock-1x-0123456789abcdef"] {
            assert_eq!(temporary_owner(name), None, "{name}");
        }
    }

    #[test]
    fn a_private_half_waits_for_its_public_half_a_moment() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("id_ed25519"), "private").unwrap();
        // Another run is between publishing the two halves: its public half comes 300 ms later.
        let public = ssh.join("id_ed25519.pub");
        let late = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            std::fs::write(public, "ssh-ed25519 AAAA late\n").unwrap();
        });
        let (line, _, origin) = generate_or_reuse(&ssh).unwrap();
        late.join().unwrap();
        assert_eq!((line.as_str(), origin), ("ssh-ed25519 AAAA late", KeyOrigin::Reused));
    }

    #[test]
    fn runs_started_together_share_one_new_pair() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let ssh = dir.path().join(".ssh");
            let results = together(&ssh, 8);
            let made = results.iter().filter(|(_, _, origin)| *origin == KeyOrigin::Made).count();
            assert_eq!(made, 1, "exactly one run made the pair");
            assert!(results.iter().all(|(line, _, _)| *line == results[0].0), "every run uses the one pair");
            let on_disk = std::fs::read_to_string(ssh.join("id_ed25519.pub")).unwrap();
            assert_eq!(on_disk.trim(), results[0].0);
            let names: Vec<String> = std::fs::read_dir(&ssh)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names.len(), 2, "nothing left behind: {names:?}");
        }
    }
}
