//! `--generate-ssh-keys`: an Ed25519 key pair in OpenSSH's own format at `~/.ssh/id_ed25519`,
//! encoded by the `ssh-key` crate, reused when it is there. Nothing the user has is overwritten.

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

/// The public key line from `~/.ssh/id_ed25519.pub`, making the pair first when neither file
/// exists; a lone private or public file is an error naming the missing one. Runs started
/// together make one pair: the private key is published with `link()`, which fails if a key
/// appeared meanwhile, and then that key is used, as az uses an existing one.
pub fn generate_or_reuse(ssh_dir: &Path) -> Result<(String, PathBuf, bool)> {
    let private = ssh_dir.join("id_ed25519");
    let public = ssh_dir.join("id_ed25519.pub");
    if let Some(found) = existing(&private, &public)? {
        return Ok(found);
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "azdock".into());
    let (private_key, line) = new_pair(&format!("{user}@azdock"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(ssh_dir).map_err(Error::io("create", ssh_dir))?;
    // Both halves are written under names of this process's own, then published.
    let unique = format!(".azdock-{}-{}", std::process::id(), nonce());
    let (private_tmp, public_tmp) = (ssh_dir.join(&unique), ssh_dir.join(format!("{unique}.pub")));
    let written = write_new(&private_tmp, private_key.as_bytes(), 0o600)
        .and_then(|()| write_new(&public_tmp, format!("{line}\n").as_bytes(), 0o644));
    let published =
        written.and_then(|()| std::fs::hard_link(&private_tmp, &private).map_err(Error::io("write", &private)));
    let _ = std::fs::remove_file(&private_tmp);
    match published {
        Ok(()) => {
            std::fs::rename(&public_tmp, &public).map_err(Error::io("write", &public))?;
            Ok((line, public, true))
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

/// A fresh random token for temporary names.
fn nonce() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!("{:016x}", u64::from_le_bytes(b))
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
fn existing(private: &Path, public: &Path) -> Result<Option<(String, PathBuf, bool)>> {
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
                return Ok(Some((line.trim().to_owned(), public.to_owned(), false)));
            }
            // Another run may be between publishing the two halves: give it a moment.
            (true, false) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            (true, false) => {
                return Err(Error::Failed(format!(
                    "`{}` exists without `{}`; recreate the public key with `ssh-keygen -y -f {0}`",
                    private.display(),
                    public.display()
                )));
            }
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
    fn a_new_pair_is_made_once_then_reused_and_lone_halves_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join(".ssh");
        let (line, _, made) = generate_or_reuse(&ssh).unwrap();
        assert!(made && line.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"));
        azdock_azure_sm::rules::ssh_public_key(&line).unwrap();
        let perms =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(ssh.join("id_ed25519")).unwrap().permissions());
        assert_eq!(perms & 0o777, 0o600);
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
        let (again, _, made) = generate_or_reuse(&ssh).unwrap();
        assert!(!made);
        assert_eq!(again, line);
        std::fs::remove_file(ssh.join("id_ed25519.pub")).unwrap();
        assert!(generate_or_reuse(&ssh).unwrap_err().to_string().contains("id_ed25519.pub"));
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
        let (line, _, made) = generate_or_reuse(&ssh).unwrap();
        late.join().unwrap();
        assert_eq!((line.as_str(), made), ("ssh-ed25519 AAAA late", false));
    }

    #[test]
    fn runs_started_together_share_one_new_pair() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let ssh = dir.path().join(".ssh");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let runs: Vec<_> = (0..8)
                .map(|_| {
                    let (ssh, barrier) = (ssh.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        generate_or_reuse(&ssh)
                    })
                })
                .collect();
            let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap().unwrap()).collect();
            assert_eq!(results.iter().filter(|(_, _, made)| *made).count(), 1, "exactly one run made the pair");
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
