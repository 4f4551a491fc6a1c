//! `--generate-ssh-keys`: an Ed25519 key pair in OpenSSH's own format at `~/.ssh/id_ed25519`,
//! made with `ring`, reused when it is there. Nothing the user has is overwritten.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use ring::signature::KeyPair as _;

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The public key line for `~/.ssh/id_ed25519.pub`.
fn public_line(public: &[u8], comment: &str) -> String {
    let mut blob = Vec::new();
    put_string(&mut blob, b"ssh-ed25519");
    put_string(&mut blob, public);
    format!("ssh-ed25519 {} {comment}", base64::engine::general_purpose::STANDARD.encode(blob))
}

/// An unencrypted OpenSSH private key (`openssh-key-v1`) for an Ed25519 seed.
fn private_pem(seed: &[u8], public: &[u8], comment: &str) -> zeroize::Zeroizing<String> {
    use ring::rand::SecureRandom as _;
    let mut check = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut check);
    let mut pub_blob = Vec::new();
    put_string(&mut pub_blob, b"ssh-ed25519");
    put_string(&mut pub_blob, public);
    let mut private = zeroize::Zeroizing::new(Vec::new());
    private.extend_from_slice(&check);
    private.extend_from_slice(&check);
    put_string(&mut private, b"ssh-ed25519");
    put_string(&mut private, public);
    let mut secret = zeroize::Zeroizing::new(seed.to_vec());
    secret.extend_from_slice(public);
    put_string(&mut private, &secret);
    put_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut body = zeroize::Zeroizing::new(b"openssh-key-v1\0".to_vec());
    put_string(&mut body, b"none");
    put_string(&mut body, b"none");
    put_string(&mut body, b"");
    body.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut body, &pub_blob);
    put_string(&mut body, &private);
    let b64 = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*body));
    let mut pem = zeroize::Zeroizing::new(String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    for chunk in b64.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    pem
}

/// The public key line from `~/.ssh/id_ed25519.pub`, making the pair first when neither file
/// exists; a lone private or public file is an error naming the missing one.
pub(crate) fn generate_or_reuse(ssh_dir: &Path) -> anyhow::Result<(String, PathBuf, bool)> {
    let private = ssh_dir.join("id_ed25519");
    let public = ssh_dir.join("id_ed25519.pub");
    match (private.exists(), public.exists()) {
        (true, true) => {
            let line =
                std::fs::read_to_string(&public).with_context(|| format!("cannot read `{}`", public.display()))?;
            return Ok((line.trim().to_owned(), public, false));
        }
        (true, false) => bail!(
            "`{}` exists without `{}`; recreate the public key with `ssh-keygen -y -f {0}`",
            private.display(),
            public.display()
        ),
        (false, true) => bail!(
            "`{}` exists without its private key `{}`; pass it with --ssh-key-value instead",
            public.display(),
            private.display()
        ),
        (false, false) => {}
    }
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow::anyhow!("cannot generate a key"))?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("cannot read the new key"))?;
    // ring's PKCS#8 v2 document holds the 32-byte seed right after its 16-byte header.
    let seed = &pkcs8.as_ref()[16..48];
    let user = std::env::var("USER").unwrap_or_else(|_| "azdock".into());
    let comment = format!("{user}@azdock");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(ssh_dir)
        .with_context(|| format!("cannot create `{}`", ssh_dir.display()))?;
    let pem = private_pem(seed, pair.public_key().as_ref(), &comment);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .with_context(|| format!("cannot write `{}`", private.display()))?;
    file.write_all(pem.as_bytes())?;
    let line = public_line(pair.public_key().as_ref(), &comment);
    std::fs::write(&public, format!("{line}\n")).with_context(|| format!("cannot write `{}`", public.display()))?;
    Ok((line, public, true))
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
        let (again, _, made) = generate_or_reuse(&ssh).unwrap();
        assert!(!made);
        assert_eq!(again, line);
        std::fs::remove_file(ssh.join("id_ed25519.pub")).unwrap();
        assert!(generate_or_reuse(&ssh).unwrap_err().to_string().contains("id_ed25519.pub"));
    }
}
