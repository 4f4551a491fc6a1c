//! The simulated guest of each VM: its users, password hashes, authorized_keys, sshd and RDP
//! settings, changed by extension handlers the way the real handlers change them, and read by
//! tests through the admin route to assert effects rather than HTTP statuses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::OsKind;

/// One account on the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Member of sudo (Linux) or Administrators (Windows).
    pub admin: bool,
    /// `sha256$<salt>$<digest>`; never the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorized_keys: Vec<String>,
    /// Account expiry (`yyyy-mm-dd`), as `useradd -e` sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
}

/// The sshd configuration, as far as VMAccess changes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sshd {
    pub password_authentication: bool,
    pub port: u16,
    /// `default` (the distro's file) or `provisioned` (as the platform wrote it at creation).
    pub config: String,
    /// What `reset_ssh` saved, for `restore_backup_ssh`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<Box<Sshd>>,
}

impl Default for Sshd {
    fn default() -> Self {
        Self { password_authentication: true, port: 22, config: "default".into(), backup: None }
    }
}

/// Remote Desktop state on Windows guests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rdp {
    pub enabled: bool,
    pub resets: u32,
}

/// Whether a real dockerd runs for this VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Daemon {
    /// Configured; the emulator is starting it.
    Starting,
    /// Listening on this address (`ip:port` with TLS, or `unix:///run/docker.sock`).
    Running { address: String },
    /// It cannot run here (no dockerd, not root, no TCP listener configured); says why.
    Unavailable { reason: String },
    /// It was started and failed; says why.
    Failed { reason: String },
    /// The VM is stopped or deallocated.
    Stopped,
}

/// Where the VM's sshd can be reached (see [`crate::ssh`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum SshEndpoint {
    /// Connections to this address reach the VM's sshd.
    Listening { address: String },
    /// It cannot run here (no sshd, no sandbox, no public IP); says why.
    Unavailable { reason: String },
    /// The VM is stopped or deallocated.
    Stopped,
}

/// Docker as configured on the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Docker {
    /// The TCP port dockerd listens on; none when it listens on its unix socket only (a host
    /// reached over SSH).
    pub port: Option<u16>,
    /// dockerd runs with `--tlsverify` (all three certificates were given).
    pub tls: bool,
    pub options: Vec<String>,
    pub daemon: Daemon,
    /// The CA, server certificate and key (PEM) written to `/etc/docker`; never shown.
    #[serde(skip)]
    pub certs: Option<[String; 3]>,
}

impl Docker {
    /// Whether the local cloud runs a dockerd for this configuration: one with TLS on a port,
    /// or one on its unix socket only.
    pub(crate) fn runs_daemon(&self) -> bool {
        self.certs.is_some() || self.port.is_none()
    }
}

/// The guest state of one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Guest {
    pub os: OsKind,
    pub computer_name: String,
    pub users: BTreeMap<String, User>,
    pub sshd: Sshd,
    pub rdp: Rdp,
    /// Disk checks run by VMAccess (`check` or `repair <disk>`).
    #[serde(default)]
    pub disk_checks: Vec<String>,
    /// How often each extension instance's handler actually ran.
    #[serde(default)]
    pub handler_runs: BTreeMap<String, u32>,
    /// Fingerprints of each instance's last settings and forceUpdateTag: a handler does nothing
    /// when they are unchanged, as the real agent does.
    #[serde(default)]
    pub last_settings: BTreeMap<String, String>,
    /// Bytes of custom data delivered at creation (the data itself is not shown).
    #[serde(default)]
    pub custom_data_bytes: usize,
    /// Docker, once an extension configured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// What cloud-init did with the custom data at first boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<crate::cloudinit::CloudInit>,
    /// The VM's SSH endpoint, once the local cloud opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_endpoint: Option<SshEndpoint>,
}

/// The result of running a handler.
#[derive(Debug, Clone)]
pub(crate) enum HandlerResult {
    /// Settings and tag unchanged: the handler did not run.
    Unchanged,
    Succeeded(String),
    Failed(String),
    /// The handler runs outside the state lock (a script); the operation waits for it.
    Deferred(crate::customscript::Script),
}

impl Guest {
    pub(crate) fn new(os: OsKind, computer_name: &str) -> Self {
        Self {
            os,
            computer_name: computer_name.to_owned(),
            users: BTreeMap::new(),
            sshd: Sshd { config: "provisioned".into(), ..Sshd::default() },
            rdp: Rdp { enabled: os == OsKind::Windows, resets: 0 },
            disk_checks: Vec::new(),
            handler_runs: BTreeMap::new(),
            last_settings: BTreeMap::new(),
            custom_data_bytes: 0,
            docker: None,
            cloud_init: None,
            ssh_endpoint: None,
        }
    }

    /// Whether `password` is the user's password.
    pub fn verify_password(&self, username: &str, password: &str) -> bool {
        self.users.get(username).and_then(|u| u.password_hash.as_deref()).is_some_and(|hash| check_hash(hash, password))
    }

    /// Runs an extension handler with its settings, unless nothing changed since its last run.
    pub(crate) fn run_handler(
        &mut self,
        instance: &str,
        publisher: &str,
        kind: &str,
        settings: &Value,
        protected: &Value,
        force_update_tag: &str,
    ) -> HandlerResult {
        let fingerprint = {
            let mut h = Sha256::new();
            h.update(format!("{publisher}/{kind}").to_ascii_lowercase());
            h.update(settings.to_string());
            h.update(protected.to_string());
            h.update(force_update_tag);
            hex(&h.finalize())
        };
        if self.last_settings.get(instance) == Some(&fingerprint) {
            return HandlerResult::Unchanged;
        }
        self.last_settings.insert(instance.to_owned(), fingerprint);
        *self.handler_runs.entry(instance.to_owned()).or_default() += 1;
        if publisher.eq_ignore_ascii_case("Microsoft.Azure.Extensions") && kind.eq_ignore_ascii_case("CustomScript") {
            return match crate::customscript::parse(settings, protected) {
                Ok(script) => HandlerResult::Deferred(script),
                Err(message) => HandlerResult::Failed(message),
            };
        }
        let merged = merge(settings, protected);
        let outcome = match (publisher.to_ascii_lowercase().as_str(), kind.to_ascii_lowercase().as_str()) {
            ("microsoft.ostcextensions", "vmaccessforlinux") => self.vmaccess_linux(&merged),
            ("microsoft.compute", "vmaccessagent") => self.vmaccess_windows(&merged),
            ("microsoft.azure.extensions", "dockerextension") => self.docker_extension(settings, protected),
            _ => Err(format!(
                "azdock's local cloud cannot run the {publisher}.{kind} handler yet; its settings were accepted but nothing ran on the guest"
            )),
        };
        match outcome {
            Ok(message) => HandlerResult::Succeeded(message),
            Err(message) => HandlerResult::Failed(message),
        }
    }

    /// VMAccessForLinux: users, passwords, SSH keys, sshd configuration, disk checks.
    fn vmaccess_linux(&mut self, s: &Value) -> Result<String, String> {
        let text = |k: &str| s.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
        let flag = |k: &str| {
            s.get(k).is_some_and(|v| {
                v.as_bool() == Some(true) || v.as_str().is_some_and(|t| t.eq_ignore_ascii_case("true"))
            })
        };
        let mut done = Vec::new();
        if flag("check_disk") && flag("repair_disk") {
            return Err("check_disk and repair_disk cannot be used together".into());
        }
        if let Some(user) = text("remove_user") {
            if flag("reset_ssh") || flag("restore_backup_ssh") || text("password").is_some() {
                return Err("remove_user cannot be combined with reset_ssh, restore_backup_ssh or password".into());
            }
            if self.users.remove(user).is_none() {
                return Err(format!("user '{user}' does not exist"));
            }
            done.push(format!("removed user '{user}'"));
        }
        if flag("reset_ssh") {
            let backup = Box::new(Sshd { backup: None, ..self.sshd.clone() });
            self.sshd = Sshd { backup: Some(backup), ..Sshd::default() };
            done.push("reset sshd_config to the distribution default and opened port 22".into());
        }
        if flag("restore_backup_ssh") {
            let Some(backup) = self.sshd.backup.take() else {
                return Err("there is no sshd_config backup to restore".into());
            };
            self.sshd = *backup;
            done.push("restored sshd_config from its backup".into());
        }
        if let Some(name) = text("username") {
            let password = text("password");
            let key = text("ssh_key");
            if password.is_none() && key.is_none() {
                return Err(format!("neither password nor ssh_key was given for user '{name}'"));
            }
            if let Some(expiration) = text("expiration")
                && !is_date(expiration)
            {
                return Err(format!("invalid expiration '{expiration}': use yyyy-mm-dd"));
            }
            let created = !self.users.contains_key(name);
            let user = self.users.entry(name.to_owned()).or_insert_with(|| User { admin: true, ..User::default() });
            if let Some(password) = password {
                user.password_hash = Some(hash_password(password));
                // Setting a password also turns on SSH password login.
                self.sshd.password_authentication = true;
            }
            if let Some(key) = key {
                if flag("remove_prior_keys") {
                    user.authorized_keys.clear();
                }
                let key = key.trim().to_owned();
                if !user.authorized_keys.contains(&key) {
                    user.authorized_keys.push(key);
                }
            }
            if let Some(expiration) = text("expiration") {
                user.expiration = Some(expiration.to_owned());
            }
            done.push(format!("{} user '{name}'", if created { "created" } else { "updated" }));
        }
        if flag("check_disk") {
            self.disk_checks.push("check".into());
            done.push("checked the disks".into());
        }
        if flag("repair_disk") {
            let Some(name) = text("disk_name") else {
                return Err("repair_disk needs disk_name".into());
            };
            self.disk_checks.push(format!("repair {name}"));
            done.push(format!("repaired disk '{name}'"));
        }
        Ok(if done.is_empty() { "Succeeded (no change requested)".into() } else { done.join("; ") })
    }

    /// The retired DockerExtension: `docker.port` (a string), `docker.options`, and
    /// `certs.{ca,cert,key}` (base64 PEM, used only when all three are present).
    fn docker_extension(&mut self, settings: &Value, protected: &Value) -> Result<String, String> {
        use base64::Engine as _;
        let port = match &settings["docker"]["port"] {
            Value::String(p) => p.parse::<u16>().map_err(|_| format!("invalid docker.port '{p}'"))?,
            Value::Number(n) => {
                n.as_u64().and_then(|n| u16::try_from(n).ok()).ok_or_else(|| format!("invalid docker.port {n}"))?
            }
            Value::Null => 2376,
            other => return Err(format!("invalid docker.port {other}")),
        };
        let options: Vec<String> = settings["docker"]["options"]
            .as_array()
            .map(|o| o.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        crate::docker::check_options(&options)?;
        let decode = |name: &str| -> Result<Option<String>, String> {
            match protected["certs"][name].as_str() {
                None => Ok(None),
                Some(b64) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|_| format!("certs.{name} is not base64"))?;
                    String::from_utf8(bytes).map(Some).map_err(|_| format!("certs.{name} is not PEM text"))
                }
            }
        };
        let certs = match (decode("ca")?, decode("cert")?, decode("key")?) {
            (Some(ca), Some(cert), Some(key)) => Some([ca, cert, key]),
            _ => None,
        };
        let tls = certs.is_some();
        let daemon = if tls {
            Daemon::Starting
        } else {
            Daemon::Unavailable {
                reason:
                    "no TCP listener: the extension listens on the network only with certs.ca, certs.cert and certs.key"
                        .into(),
            }
        };
        self.docker = Some(Docker { port: Some(port), tls, options, daemon, certs });
        Ok(if tls {
            format!("Docker configured to listen with TLS on port {port}")
        } else {
            "Docker configured without a TCP listener (no certificates given)".into()
        })
    }

    /// VMAccessAgent: the administrator account and password; empty settings reset RDP.
    fn vmaccess_windows(&mut self, s: &Value) -> Result<String, String> {
        let get = |k: &str| {
            s.as_object()
                .and_then(|m| m.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)))
                .and_then(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        match get("UserName") {
            Some(name) => {
                let Some(password) = get("Password") else {
                    return Err(format!("no password was given for user '{name}'"));
                };
                let created = !self.users.contains_key(name);
                let user = self.users.entry(name.to_owned()).or_default();
                user.admin = true;
                user.password_hash = Some(hash_password(password));
                self.rdp.enabled = true;
                Ok(format!(
                    "{} administrator '{name}' and enabled Remote Desktop",
                    if created { "created" } else { "updated" }
                ))
            }
            None => {
                self.rdp.enabled = true;
                self.rdp.resets += 1;
                Ok("reset the Remote Desktop configuration".into())
            }
        }
    }
}

fn merge(settings: &Value, protected: &Value) -> Value {
    let mut merged = settings.as_object().cloned().unwrap_or_default();
    if let Some(p) = protected.as_object() {
        merged.extend(p.clone());
    }
    Value::Object(merged)
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The alphabet of crypt(3) salts.
const CRYPT_ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A SHA-512 crypt hash (`$6$salt$…`), as `chpasswd` writes to /etc/shadow: the guest's sshd
/// and PAM check passwords against it.
pub(crate) fn hash_password(password: &str) -> String {
    let salt: String =
        crate::random_bytes(16).iter().map(|b| char::from(CRYPT_ALPHABET[usize::from(b % 64)])).collect();
    let params = sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT).unwrap_or_default();
    let digest = sha_crypt::sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &params).unwrap_or_default();
    format!("$6${salt}${digest}")
}

/// Whether `password` matches a SHA-512 crypt hash (default rounds or `rounds=N$`), or the
/// salted SHA-256 form earlier versions kept.
fn check_hash(hash: &str, password: &str) -> bool {
    if let Some(rest) = hash.strip_prefix("$6$") {
        let (rounds, rest) = match rest.strip_prefix("rounds=").and_then(|r| r.split_once('$')) {
            Some((n, rest)) => (n.parse().unwrap_or(0), rest),
            None => (sha_crypt::ROUNDS_DEFAULT, rest),
        };
        let Some((salt, digest)) = rest.split_once('$') else { return false };
        let Ok(params) = sha_crypt::Sha512Params::new(rounds) else { return false };
        return sha_crypt::sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &params)
            .is_ok_and(|mine| same(mine.as_bytes(), digest.as_bytes()));
    }
    let mut parts = hash.split('$');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("sha256"), Some(salt), Some(digest)) => {
            same(hex(&Sha256::digest(format!("{salt}{password}"))).as_bytes(), digest.as_bytes())
        }
        _ => false,
    }
}

/// Compares in time that does not depend on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn linux() -> Guest {
        let mut g = Guest::new(OsKind::Linux, "vm1");
        g.users.insert("azureuser".into(), User { admin: true, ..User::default() });
        g
    }

    fn run(g: &mut Guest, protected: &Value, tag: &str) -> HandlerResult {
        g.run_handler("enablevmaccess", "Microsoft.OSTCExtensions", "VMAccessForLinux", &json!({}), protected, tag)
    }

    #[test]
    fn reset_password_creates_the_user_and_enables_password_login() {
        let mut g = linux();
        g.sshd.password_authentication = false;
        let r = run(&mut g, &json!({"username": "ops", "password": "N3w-Passw0rd!", "expiration": "2030-01-31"}), "1");
        assert!(matches!(&r, HandlerResult::Succeeded(m) if m == "created user 'ops'"), "{r:?}");
        assert!(g.verify_password("ops", "N3w-Passw0rd!"));
        assert!(!g.verify_password("ops", "wrong"));
        assert!(g.users["ops"].admin);
        assert_eq!(g.users["ops"].expiration.as_deref(), Some("2030-01-31"));
        assert!(g.sshd.password_authentication);
        // Same settings and tag: the handler does not run again; a new tag runs it.
        assert!(matches!(
            run(&mut g, &json!({"username": "ops", "password": "N3w-Passw0rd!", "expiration": "2030-01-31"}), "1"),
            HandlerResult::Unchanged
        ));
        assert!(matches!(
            run(&mut g, &json!({"username": "ops", "password": "N3w-Passw0rd!", "expiration": "2030-01-31"}), "2"),
            HandlerResult::Succeeded(_)
        ));
        assert_eq!(g.handler_runs["enablevmaccess"], 2);
    }

    #[test]
    fn keys_append_or_replace_and_ssh_resets_and_restores() {
        let mut g = linux();
        run(&mut g, &json!({"username": "azureuser", "ssh_key": "ssh-ed25519 AAAA one"}), "1");
        run(&mut g, &json!({"username": "azureuser", "ssh_key": "ssh-ed25519 BBBB two"}), "2");
        assert_eq!(g.users["azureuser"].authorized_keys.len(), 2);
        run(
            &mut g,
            &json!({"username": "azureuser", "ssh_key": "ssh-ed25519 CCCC three", "remove_prior_keys": true}),
            "3",
        );
        assert_eq!(g.users["azureuser"].authorized_keys, ["ssh-ed25519 CCCC three"]);

        g.sshd.port = 2222;
        g.sshd.password_authentication = false;
        run(&mut g, &json!({"reset_ssh": "true"}), "4");
        assert_eq!((g.sshd.port, g.sshd.config.as_str()), (22, "default"));
        run(&mut g, &json!({"restore_backup_ssh": true}), "5");
        assert_eq!(g.sshd.port, 2222);
        assert!(matches!(run(&mut g, &json!({"restore_backup_ssh": true}), "6"), HandlerResult::Failed(_)));
    }

    #[test]
    fn forbidden_combinations_fail_like_the_handler() {
        let mut g = linux();
        let r = run(&mut g, &json!({"remove_user": "azureuser", "reset_ssh": true}), "1");
        assert!(matches!(r, HandlerResult::Failed(m) if m.contains("cannot be combined")));
        assert!(matches!(run(&mut g, &json!({"username": "x"}), "2"), HandlerResult::Failed(_)));
        assert!(matches!(run(&mut g, &json!({"remove_user": "azureuser"}), "3"), HandlerResult::Succeeded(_)));
        assert!(!g.users.contains_key("azureuser"));
        assert!(matches!(run(&mut g, &json!({"check_disk": true}), "4"), HandlerResult::Succeeded(_)));
        assert!(matches!(
            run(&mut g, &json!({"repair_disk": true, "disk_name": "sdc"}), "5"),
            HandlerResult::Succeeded(_)
        ));
        assert_eq!(g.disk_checks, ["check", "repair sdc"]);
    }

    #[test]
    fn a_daemon_runs_with_tls_certificates_or_on_its_socket_only() {
        let docker = |port: Option<u16>, certs: bool| Docker {
            port,
            tls: certs,
            options: vec![],
            daemon: Daemon::Starting,
            certs: certs.then(|| [String::new(), String::new(), String::new()]),
        };
        assert!(docker(Some(2376), true).runs_daemon());
        assert!(docker(None, false).runs_daemon());
        assert!(!docker(Some(2376), false).runs_daemon());
        // The legacy handler's message says what it configured.
        let mut g = linux();
        let with =
            |port: &str| json!({"certs": {"ca": "Q0E=", "cert": "Q0VSVA==", "key": "S0VZ"}, "docker": {"port": port}});
        let (settings, protected) = (json!({"docker": {"port": "4243"}}), with("4243"));
        match g.run_handler("d", "Microsoft.Azure.Extensions", "DockerExtension", &settings, &protected, "1") {
            HandlerResult::Succeeded(m) => assert_eq!(m, "Docker configured to listen with TLS on port 4243"),
            other => panic!("{other:?}"),
        }
        match g.run_handler("d", "Microsoft.Azure.Extensions", "DockerExtension", &settings, &json!({}), "2") {
            HandlerResult::Succeeded(m) => assert!(m.contains("without a TCP listener"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn windows_admin_password_and_rdp_reset() {
        let mut g = Guest::new(OsKind::Windows, "win");
        let r = g.run_handler(
            "enablevmaccess",
            "Microsoft.Compute",
            "VMAccessAgent",
            &json!({"UserName": "winadmin"}),
            &json!({"Password": "Str0ng!Passw0rd"}),
            "1",
        );
        assert!(matches!(r, HandlerResult::Succeeded(_)));
        assert!(g.verify_password("winadmin", "Str0ng!Passw0rd"));
        g.run_handler("enablevmaccess", "Microsoft.Compute", "VMAccessAgent", &json!({}), &json!({}), "2");
        assert_eq!(g.rdp.resets, 1);
    }
}
