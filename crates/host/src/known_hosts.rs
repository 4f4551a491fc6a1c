//! Pinning a VM's SSH host keys in OpenSSH's `known_hosts`: the keys come from the VM itself
//! through Azure (the install's output in the extension's instance view, read over ARM's
//! authenticated TLS), never from a first connection. Entries are hashed as `ssh-keygen -H`
//! writes them (`|1|salt|HMAC-SHA1(salt, name)`), one per name and address, so the file does not
//! list the user's hosts; the entries an earlier pin wrote for the same names are replaced, and
//! the file changes atomically under its lock.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

pub use azdock_core::HOST_KEY_PREFIX as REPORT_PREFIX;

/// One public host key: its type (`ssh-ed25519`) and base64 blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub kind: String,
    pub blob: String,
}

impl HostKey {
    /// A `TYPE BASE64` pair whose blob is valid base64 and names the same type inside, as
    /// OpenSSH's wire format does (so a stray line is not taken for a key).
    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let (kind, blob) = (words.next()?, words.next()?);
        let bytes = B64.decode(blob).ok()?;
        let len = usize::try_from(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?)).ok()?;
        (bytes.get(4..4 + len)? == kind.as_bytes()).then(|| Self { kind: kind.to_owned(), blob: blob.to_owned() })
    }

    /// OpenSSH's SHA256 fingerprint (`SHA256:…`, unpadded base64), as `ssh-keygen -l` shows it.
    pub fn fingerprint(&self) -> String {
        let bytes = B64.decode(&self.blob).unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref()))
    }
}

/// The host keys a handler reported in its output.
pub fn reported(output: &str) -> Vec<HostKey> {
    let mut keys: Vec<HostKey> = Vec::new();
    for key in output.lines().filter_map(|l| l.trim().strip_prefix(REPORT_PREFIX)).filter_map(HostKey::parse) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// How known_hosts names a host on a port: `name`, or `[name]:port` off port 22.
pub fn pattern(name: &str, port: u16) -> String {
    if port == 22 { name.to_owned() } else { format!("[{name}]:{port}") }
}

fn hmac(salt: &[u8], name: &str) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
    ring::hmac::sign(&key, name.as_bytes()).as_ref().to_vec()
}

/// `|1|salt|hash` for a host pattern with a given 20-byte salt.
fn hashed(pattern: &str, salt: &[u8]) -> String {
    format!("|1|{}|{}", B64.encode(salt), B64.encode(hmac(salt, pattern)))
}

/// Whether a known_hosts line's host field names `pattern` (hashed, or a plain list).
fn line_names(line: &str, pattern: &str) -> bool {
    let Some(hosts) = line.split_whitespace().next() else { return false };
    if let Some(rest) = hosts.strip_prefix("|1|") {
        let Some((salt, hash)) = rest.split_once('|') else { return false };
        return match (B64.decode(salt), B64.decode(hash)) {
            (Ok(salt), Ok(hash)) => hmac(&salt, pattern) == hash,
            _ => false,
        };
    }
    hosts.split(',').any(|h| h == pattern)
}

/// What a pin changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// Entries written (names × keys).
    pub written: usize,
    /// Whether the file held other keys for these names, now replaced.
    pub replaced_other_keys: bool,
}

/// The file's new text: entries for `names` on `port` replaced by `keys`, hashed with `salt`
/// (20 random bytes per entry, from `salts`).
fn pinned_text(
    old: &str,
    names: &[String],
    port: u16,
    keys: &[HostKey],
    salts: &mut dyn FnMut() -> Vec<u8>,
) -> (String, Pinned) {
    let patterns: Vec<String> = names.iter().map(|n| pattern(n, port)).collect();
    let mut out = String::new();
    let mut replaced_other_keys = false;
    for line in old.lines() {
        // Marker lines (@cert-authority, @revoked) are the user's policy: never touched.
        let ours = !line.starts_with('@') && !line.starts_with('#') && patterns.iter().any(|p| line_names(line, p));
        if ours {
            let key = line.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
            replaced_other_keys |= !keys.iter().any(|k| HostKey::parse(&key).as_ref() == Some(k));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let mut written = 0;
    for pattern in &patterns {
        for key in keys {
            let _ = writeln!(out, "{} {} {}", hashed(pattern, &salts()), key.kind, key.blob);
            written += 1;
        }
    }
    (out, Pinned { written, replaced_other_keys })
}

/// Pins `keys` for each of `names` on `port` in the known_hosts file at `path` (made 0600, with
/// its directory 0700, when missing).
pub fn pin(path: &Path, names: &[String], port: u16, keys: &[HostKey]) -> std::io::Result<Pinned> {
    let mut result = None;
    azdock_files::update(path, 0o600, |old: Option<Vec<u8>>| -> std::io::Result<Option<Vec<u8>>> {
        let old = String::from_utf8_lossy(&old.unwrap_or_default()).into_owned();
        let mut salts = || {
            let mut salt = vec![0u8; 20];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt);
            salt
        };
        let (text, pinned) = pinned_text(&old, names, port, keys, &mut salts);
        result = Some(pinned);
        Ok(Some(text.into_bytes()))
    })?;
    Ok(result.unwrap_or(Pinned { written: 0, replaced_other_keys: false }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd3nqjmI9Y2Gm4zk1t6b0x8v5wQwCkq3pX5uS9r2k0m";
    const ED2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA0nvP3eA4sBhDUUmjCFjDYwPx0X0vZzCvD2eGsMbRdq";

    #[test]
    fn reported_keys_are_read_from_the_handlers_output_and_stray_lines_are_not() {
        let output = format!(
            "azdock: installing\n{REPORT_PREFIX}{ED}\n{REPORT_PREFIX}ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGd3\n{REPORT_PREFIX}{ED}\nnoise {ED}\n"
        );
        assert_eq!(reported(&output), vec![HostKey::parse(ED).unwrap()]);
        assert_eq!(HostKey::parse("ssh-ed25519 !!!"), None);
        assert_eq!(HostKey::parse(ED).unwrap().fingerprint().len(), "SHA256:".len() + 43);
    }

    #[test]
    fn a_hashed_entry_names_its_host_and_no_other() {
        // Real ssh reading these entries is the end-to-end test's; here, the form and matching.
        let salt = [7u8; 20];
        let line = format!("{} {ED}", hashed("127.1.0.5", &salt));
        assert!(line.starts_with("|1|BwcHBwcHBwcHBwcHBwcHBwcHBwc=|"), "{line}");
        assert!(line_names(&line, "127.1.0.5"));
        assert!(!line_names(&line, "127.1.0.6"));
        assert!(line_names(&format!("a,[b]:2222 {ED}"), "[b]:2222"));
        assert_eq!(pattern("b", 2222), "[b]:2222");
        assert_eq!(pattern("b", 22), "b");
    }

    #[test]
    fn a_pin_replaces_the_names_entries_and_keeps_every_other_line() {
        let mut n = 0u8;
        let mut salts = || {
            n += 1;
            vec![n; 20]
        };
        let keep = format!("@cert-authority *.example {ED2}\nother.example {ED2}\n");
        let old = format!("{keep}{} {ED2}\nvm.example {ED2}\n", hashed("127.1.0.5", &[9; 20]));
        let hosts = vec!["vm.example".to_owned(), "127.1.0.5".to_owned()];
        let key = HostKey::parse(ED).unwrap();
        let (text, pinned) = pinned_text(&old, &hosts, 22, std::slice::from_ref(&key), &mut salts);
        assert_eq!(pinned, Pinned { written: 2, replaced_other_keys: true });
        assert!(text.starts_with(&keep), "{text}");
        let ours: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(ours.len(), 2);
        assert!(ours.iter().all(|l| l.ends_with(ED) && l.starts_with("|1|")));
        assert!(line_names(ours[0], "vm.example") && line_names(ours[1], "127.1.0.5"));
        // The same keys again replace nothing of another key.
        let (_, again) = pinned_text(&text, &hosts, 22, &[key], &mut salts);
        assert_eq!(again, Pinned { written: 2, replaced_other_keys: false });
    }
}
