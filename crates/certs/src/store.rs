//! The on-disk certificate store: layout, reuse, minting, rotation and verification.
//!
//! Layout (the names Docker's `DOCKER_CERT_PATH` and the classic Azure CLI use, so material they
//! left is found and reused):
//!
//! ```text
//! <dir>/ca.pem, ca-key.pem                       the CA
//! <dir>/cert.pem, key.pem                        the client identity the Docker CLI presents
//! <dir>/<host>-server-cert.pem, -server-key.pem  one server certificate per Docker host
//! <dir>/azdock-backup/<UTC time>/                what `rotate` replaced
//! ```

use std::fs::{self, File};
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{Issuer, KeyPair};
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::CertError;
use crate::inspect::{CertFile, CertInfo, Check, CheckStatus, EXPIRY_WARNING_DAYS, Role, name_text, rfc3339};
use crate::keys::{Passphrases, load_key};
use crate::mint::{self, Minted};

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const CLIENT_CERT: &str = "cert.pem";
const CLIENT_KEY: &str = "key.pem";
const SERVER_CERT_SUFFIX: &str = "-server-cert.pem";
/// Beside a server certificate: who it is for (see [`CertStore::server_name`]).
const SERVER_OWNER_SUFFIX: &str = "-server.owner";
const SERVER_KEY_SUFFIX: &str = "-server-key.pem";
const BACKUP_DIR: &str = "azdock-backup";

/// Whether a certificate was made by this call or found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Reused,
    Rotated,
}

/// One certificate in a report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportEntry {
    pub status: Outcome,
    #[serde(flatten)]
    pub info: CertInfo,
}

/// What `init`, `server` and `rotate` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub cert_dir: PathBuf,
    pub certificates: Vec<ReportEntry>,
    /// Where replaced files were moved (rotation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<PathBuf>,
    /// Hosts whose server certificates must be redeployed (CA rotation only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redeploy: Vec<String>,
    /// Things the user should know, such as certificates close to expiry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A validated request for a host's server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRequest {
    host: String,
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
    /// No names were given: the host name stands in as the only SAN.
    defaulted: bool,
    /// The machine the certificate is for, in words that tell two hosts of one name apart (a
    /// cloud and a resource id, say): a directory keeps one server certificate per owner.
    owner: Option<String>,
}

impl ServerRequest {
    /// Validates the host name and every SAN before anything touches the disk. With no names
    /// and no addresses the host name itself becomes the SAN.
    pub fn new(host: &str, dns_names: &[String], ips: &[String]) -> Result<Self, CertError> {
        validate_host(host)?;
        for name in dns_names {
            validate_dns_name(name)?;
        }
        let ips = ips
            .iter()
            .map(|ip| ip.trim().parse::<IpAddr>().map_err(|_| CertError::InvalidIp { value: ip.clone() }))
            .collect::<Result<Vec<_>, _>>()?;
        let mut request = Self {
            host: host.to_owned(),
            dns_names: dedup(dns_names),
            ips: dedup(&ips),
            defaulted: false,
            owner: None,
        };
        if request.dns_names.is_empty() && request.ips.is_empty() {
            validate_dns_name(host)?;
            request.dns_names.push(host.to_owned());
            request.defaulted = true;
        }
        Ok(request)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The request for the machine `owner` (see [`CertStore::server_name`]).
    #[must_use]
    pub fn owned_by(mut self, owner: &str) -> Self {
        self.owner = Some(owner.to_owned());
        self
    }

    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Every name and address, as text.
    pub fn names(&self) -> Vec<String> {
        self.dns_names.iter().cloned().chain(self.ips.iter().map(ToString::to_string)).collect()
    }
}

fn dedup<T: Clone + PartialEq>(items: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    out
}

/// Host names become file names: Azure VM name characters, no path separators, no leading dot.
fn validate_host(host: &str) -> Result<(), CertError> {
    let ok = (1..=64).contains(&host.len())
        && !host.starts_with(['.', '-'])
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(CertError::InvalidHost { value: host.to_owned() }) }
}

fn validate_dns_name(name: &str) -> Result<(), CertError> {
    let invalid = |reason| Err(CertError::InvalidDnsName { value: name.to_owned(), reason });
    if name.is_empty() || name.len() > 253 {
        return invalid("a DNS name has 1 to 253 characters");
    }
    if name.parse::<IpAddr>().is_ok() {
        return invalid("this is an IP address; pass it with `--ip`");
    }
    let body = name.strip_prefix("*.").unwrap_or(name);
    for label in body.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return invalid("each dot-separated label has 1 to 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return invalid("labels use letters, digits and `-` only (a `*.` prefix is allowed)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return invalid("a label cannot start or end with `-`");
        }
    }
    Ok(())
}

/// A certificate with its private key, read from disk or just minted.
struct Pair {
    cert: CertFile,
    key: KeyPair,
    key_path: PathBuf,
}

/// What to rotate.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// A new server certificate for one host. Without names, the old certificate's SANs are kept.
    Server(ServerRequest),
    /// A new client certificate from the same CA; hosts are unaffected.
    Client,
    /// A new CA and client; every host's server certificate is moved to the backup.
    Ca,
}

/// The certificate directory.
#[derive(Debug, Clone)]
pub struct CertStore {
    dir: PathBuf,
}

impl CertStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    pub fn client_cert_path(&self) -> PathBuf {
        self.dir.join(CLIENT_CERT)
    }

    pub fn client_key_path(&self) -> PathBuf {
        self.dir.join(CLIENT_KEY)
    }

    /// The name a host's server certificate has in this directory: the host's own, unless
    /// another owner holds it (two VMs of one name in different groups, subscriptions or
    /// clouds); then the name and a short digest of the owner. A certificate without an owner
    /// (made before azdock kept them, or by `certs server`) is the first asker's.
    pub fn server_name(&self, host: &str, owner: Option<&str>) -> String {
        let Some(owner) = owner else { return host.to_owned() };
        match fs::read_to_string(self.owner_path(host)) {
            Ok(holder) if holder.trim() != owner => {
                let digest = ring::digest::digest(&ring::digest::SHA256, owner.as_bytes());
                let short = digest.as_ref()[..4].iter().fold(0u32, |n, b| n << 8 | u32::from(*b));
                format!("{host}-{short:08x}")
            }
            _ => host.to_owned(),
        }
    }

    /// Whether the directory holds `owner`'s server certificate for `host`.
    pub fn has_server(&self, host: &str, owner: &str) -> bool {
        self.server_paths(&self.server_name(host, Some(owner))).0.exists()
    }

    /// Deletes the server certificate, key and owner record `owner` holds for `host` (what a
    /// failed create made); one another owner holds, or one without an owner, stays. Returns
    /// whether there was one.
    pub fn remove_server(&self, host: &str, owner: &str) -> Result<bool, CertError> {
        let _lock = self.lock()?;
        let name = self.server_name(host, Some(owner));
        if !fs::read_to_string(self.owner_path(&name)).is_ok_and(|o| o.trim() == owner) {
            return Ok(false);
        }
        let (cert, key) = self.server_paths(&name);
        for path in [cert, key, self.owner_path(&name)] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(CertError::Write { path, source: e }),
                _ => {}
            }
        }
        Ok(true)
    }

    /// The server certificate and key paths for a request, by [`CertStore::server_name`].
    pub fn server_paths_of(&self, request: &ServerRequest) -> (PathBuf, PathBuf) {
        self.server_paths(&self.server_name(&request.host, request.owner()))
    }

    fn owner_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{SERVER_OWNER_SUFFIX}"))
    }

    /// Records who holds a server certificate's name, when the request says.
    fn claim(&self, name: &str, request: &ServerRequest) -> Result<(), CertError> {
        let Some(owner) = request.owner() else { return Ok(()) };
        let path = self.owner_path(name);
        if fs::read_to_string(&path).is_ok_and(|o| o.trim() == owner) {
            return Ok(());
        }
        write_atomic(&path, format!("{owner}\n").as_bytes(), 0o644)
    }

    /// The server certificate and key paths for a host.
    pub fn server_paths(&self, host: &str) -> (PathBuf, PathBuf) {
        (self.dir.join(format!("{host}{SERVER_CERT_SUFFIX}")), self.dir.join(format!("{host}{SERVER_KEY_SUFFIX}")))
    }

    /// Creates the CA and client certificate, or reuses them.
    pub fn init(&self, passphrases: &Passphrases<'_>) -> Result<Report, CertError> {
        let _lock = self.lock()?;
        let mut report = self.report();
        let mut batch = Batch::default();
        self.ensure_ca_and_client(passphrases, &mut report, &mut batch)?;
        batch.commit()?;
        Ok(report)
    }

    /// Creates or reuses the CA and client, then the server certificate for a host. An existing
    /// server certificate is reused only when it covers every requested name; otherwise this
    /// fails and says to rotate it, because replacing it silently would break the host.
    pub fn server(&self, request: &ServerRequest, passphrases: &Passphrases<'_>) -> Result<Report, CertError> {
        let _lock = self.lock()?;
        let mut report = self.report();
        // What is minted here is written at the end, all at once: a failure on the way (a
        // server certificate that cannot be reused) leaves nothing new behind.
        let mut batch = Batch::default();
        let ca = self.ensure_ca_and_client(passphrases, &mut report, &mut batch)?;
        let name = self.server_name(&request.host, request.owner());
        let (cert_path, key_path) = self.server_paths(&name);
        let (pair, status) = match self.read_pair(&cert_path, &key_path, &Passphrases::NONE)? {
            Some(pair) => {
                check_leaf(&pair, &ca, "server", &format!("run `azdock certs rotate --server {name}`"))?;
                let missing: Vec<String> = request.names().into_iter().filter(|n| !pair.cert.covers(n)).collect();
                if !missing.is_empty() {
                    return Err(CertError::SanMismatch {
                        path: cert_path,
                        host: name.clone(),
                        missing: missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
                    });
                }
                (pair, Outcome::Reused)
            }
            None => {
                let minted = mint::server(&request.host, &request.dns_names, &request.ips, &issuer(&ca)?)?;
                (batch.add(&cert_path, &key_path, minted)?, Outcome::Created)
            }
        };
        batch.commit()?;
        self.claim(&name, request)?;
        report.push(Role::Server, Some(&name), &pair, status);
        Ok(report)
    }

    /// Replaces certificates, moving the old ones to a backup directory.
    pub fn rotate(&self, rotation: &Rotation, passphrases: &Passphrases<'_>) -> Result<Report, CertError> {
        let _lock = self.lock()?;
        let mut report = self.report();
        match rotation {
            Rotation::Ca => {
                let hosts = self.server_hosts()?;
                let mut files = vec![
                    self.dir.join(CA_CERT),
                    self.dir.join(CA_KEY),
                    self.client_cert_path(),
                    self.client_key_path(),
                ];
                for host in &hosts {
                    let (cert, key) = self.server_paths(host);
                    files.extend([cert, key]);
                }
                report.backup_dir = self.backup(&files)?;
                let mut batch = Batch::default();
                self.ensure_ca_and_client(passphrases, &mut report, &mut batch)?;
                batch.commit()?;
                for entry in &mut report.certificates {
                    entry.status = Outcome::Rotated;
                }
                report.redeploy = hosts;
            }
            Rotation::Client => {
                let ca = self.load_ca(passphrases)?.ok_or_else(|| CertError::NoCa { dir: self.dir.clone() })?;
                report.backup_dir = self.backup(&[self.client_cert_path(), self.client_key_path()])?;
                let minted = mint::client(&issuer(&ca)?)?;
                let pair = Self::store_pair(&self.client_cert_path(), &self.client_key_path(), minted)?;
                report.push(Role::Client, None, &pair, Outcome::Rotated);
            }
            Rotation::Server(request) => {
                let ca = self.load_ca(passphrases)?.ok_or_else(|| CertError::NoCa { dir: self.dir.clone() })?;
                let name = self.server_name(&request.host, request.owner());
                let (cert_path, key_path) = self.server_paths(&name);
                let mut request = request.clone();
                // Renewal without new names keeps the names the host already has.
                if request.defaulted
                    && let Ok(Some(old)) = self.read_pair(&cert_path, &key_path, &Passphrases::NONE)
                    && let Ok(old_request) = ServerRequest::from_sans(&request.host, &old.cert.sans())
                {
                    request = ServerRequest { owner: request.owner.clone(), ..old_request };
                }
                report.backup_dir = self.backup(&[cert_path.clone(), key_path.clone()])?;
                let minted = mint::server(&request.host, &request.dns_names, &request.ips, &issuer(&ca)?)?;
                let pair = Self::store_pair(&cert_path, &key_path, minted)?;
                self.claim(&name, &request)?;
                report.push(Role::Server, Some(&name), &pair, Outcome::Rotated);
            }
        }
        Ok(report)
    }

    /// Every certificate in the store, for `certs show`.
    pub fn show(&self) -> Result<Vec<CertInfo>, CertError> {
        let mut out = Vec::new();
        let mut files = vec![
            (Role::Ca, None, self.dir.join(CA_CERT), self.dir.join(CA_KEY)),
            (Role::Client, None, self.client_cert_path(), self.client_key_path()),
        ];
        for host in self.server_hosts()? {
            let (cert, key) = self.server_paths(&host);
            files.push((Role::Server, Some(host), cert, key));
        }
        for (role, host, cert_path, key_path) in files {
            if let Some(text) = read_optional(&cert_path)? {
                let cert = CertFile::parse(&cert_path, text)?;
                out.push(cert.info(role, host.as_deref(), &key_path));
            }
        }
        Ok(out)
    }

    /// Checks the CA, the client and the named hosts' server certificates (all hosts when none
    /// is named). `names` are DNS names or IPs every checked server certificate must cover.
    pub fn verify(
        &self,
        hosts: &[String],
        names: &[String],
        passphrases: &Passphrases<'_>,
    ) -> Result<Vec<Check>, CertError> {
        for host in hosts {
            validate_host(host)?;
        }
        let mut checks = Checks(Vec::new());
        let (ca_cert, ca_key) = (self.dir.join(CA_CERT), self.dir.join(CA_KEY));
        let spec = PairSpec { subject: "ca", role: Role::Ca, cert_path: &ca_cert, key_path: &ca_key };
        let ca = checks.pair(&spec, None, passphrases);
        let (client_cert, client_key) = (self.client_cert_path(), self.client_key_path());
        let spec = PairSpec { subject: "client", role: Role::Client, cert_path: &client_cert, key_path: &client_key };
        checks.pair(&spec, ca.as_ref(), passphrases);
        let hosts = if hosts.is_empty() { self.server_hosts()? } else { hosts.to_vec() };
        for host in &hosts {
            let (cert_path, key_path) = self.server_paths(host);
            let subject = format!("server {host}");
            let spec = PairSpec { subject: &subject, role: Role::Server, cert_path: &cert_path, key_path: &key_path };
            if let Some(server) = checks.pair(&spec, ca.as_ref(), passphrases) {
                for name in names {
                    if server.covers(name) {
                        checks.push(&subject, "san", CheckStatus::Ok, format!("covers `{name}`"));
                    } else {
                        checks.push(
                            &subject,
                            "san",
                            CheckStatus::Failed,
                            format!(
                                "does not cover `{name}` (has {}); Docker clients will fail with an x509 error",
                                server.sans().join(", ")
                            ),
                        );
                    }
                }
            }
        }
        Ok(checks.0)
    }

    /// Hosts that have a server certificate in the store, sorted.
    pub fn server_hosts(&self) -> Result<Vec<String>, CertError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(CertError::Read { path: self.dir.clone(), source }),
        };
        let mut hosts: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(SERVER_CERT_SUFFIX).map(str::to_owned))
            .filter(|h| validate_host(h).is_ok())
            .collect();
        hosts.sort();
        Ok(hosts)
    }

    fn report(&self) -> Report {
        Report {
            cert_dir: self.dir.clone(),
            certificates: Vec::new(),
            backup_dir: None,
            redeploy: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Loads or creates the CA, then loads or creates the client, recording both.
    fn ensure_ca_and_client(
        &self,
        passphrases: &Passphrases<'_>,
        report: &mut Report,
        batch: &mut Batch,
    ) -> Result<Pair, CertError> {
        let (client_cert, client_key) = (self.client_cert_path(), self.client_key_path());
        let (ca, ca_status) = match self.load_ca(passphrases)? {
            Some(ca) => (ca, Outcome::Reused),
            None => {
                // A client without its CA cannot be verified by any host we set up; refuse
                // rather than orphan (or overwrite) it.
                if let Some(present) = [&client_cert, &client_key].into_iter().find(|p| p.exists()) {
                    return Err(CertError::ClientWithoutCa { dir: self.dir.clone(), client: file_name(present) });
                }
                let minted = mint::ca()?;
                (batch.add(&self.dir.join(CA_CERT), &self.dir.join(CA_KEY), minted)?, Outcome::Created)
            }
        };
        let (client, client_status) = match self.read_pair(&client_cert, &client_key, &Passphrases::NONE)? {
            Some(pair) => {
                check_leaf(&pair, &ca, "client", "run `azdock certs rotate --client`")?;
                (pair, Outcome::Reused)
            }
            None => {
                let minted = mint::client(&issuer(&ca)?)?;
                (batch.add(&client_cert, &client_key, minted)?, Outcome::Created)
            }
        };
        report.push(Role::Ca, None, &ca, ca_status);
        report.push(Role::Client, None, &client, client_status);
        Ok(ca)
    }

    fn load_ca(&self, passphrases: &Passphrases<'_>) -> Result<Option<Pair>, CertError> {
        let Some(ca) = self.read_pair(&self.dir.join(CA_CERT), &self.dir.join(CA_KEY), passphrases)? else {
            return Ok(None);
        };
        if !ca.cert.x509().is_ca() {
            return Err(CertError::NotCa { path: ca.cert.path.clone() });
        }
        let now = OffsetDateTime::now_utc();
        if ca.cert.not_after() < now {
            return Err(CertError::CaExpired { path: ca.cert.path.clone(), not_after: rfc3339(ca.cert.not_after()) });
        }
        if ca.cert.not_before() > now {
            return Err(CertError::CaNotYetValid {
                path: ca.cert.path.clone(),
                not_before: rfc3339(ca.cert.not_before()),
            });
        }
        Ok(Some(ca))
    }

    /// Reads a certificate and its key: both absent is `None`, one absent is a partial set.
    fn read_pair(
        &self,
        cert_path: &Path,
        key_path: &Path,
        passphrases: &Passphrases<'_>,
    ) -> Result<Option<Pair>, CertError> {
        let cert_text = read_optional(cert_path)?;
        let key_text = read_optional(key_path)?;
        let (cert_text, key_text) = match (cert_text, key_text) {
            (None, None) => return Ok(None),
            (Some(c), Some(k)) => (c, zeroize::Zeroizing::new(k)),
            (Some(_), None) => return Err(self.partial(cert_path, key_path)),
            // A key azdock wrote and was stopped before its certificate (killed between the
            // two): nothing can have used it, so it goes and a new pair is made.
            (None, Some(k)) if interrupted(cert_path, key_path, &k)? => {
                drop(zeroize::Zeroizing::new(k)); // wiped, not just freed
                remove_file(key_path)?;
                return Ok(None);
            }
            (None, Some(_)) => return Err(self.partial(key_path, cert_path)),
        };
        let cert = CertFile::parse(cert_path, cert_text)?;
        let key = load_key(key_path, &key_text, passphrases)?;
        if !cert.matches_key(key.public_key_raw()) {
            return Err(CertError::KeyMismatch { cert: cert_path.to_owned(), key: key_path.to_owned() });
        }
        Ok(Some(Pair { cert, key, key_path: key_path.to_owned() }))
    }

    fn partial(&self, present: &Path, missing: &Path) -> CertError {
        CertError::PartialSet { dir: self.dir.clone(), present: file_name(present), missing: file_name(missing) }
    }

    /// Writes a minted pair (key first, 0600; certificate 0644) and returns it as loaded.
    fn store_pair(cert_path: &Path, key_path: &Path, minted: Minted) -> Result<Pair, CertError> {
        let mut batch = Batch::default();
        let pair = batch.add(cert_path, key_path, minted)?;
        batch.commit()?;
        Ok(pair)
    }

    /// Moves the existing files among `files` to a new backup directory.
    fn backup(&self, files: &[PathBuf]) -> Result<Option<PathBuf>, CertError> {
        let existing: Vec<&PathBuf> = files.iter().filter(|p| p.exists()).collect();
        if existing.is_empty() {
            return Ok(None);
        }
        let now = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let root = self.dir.join(BACKUP_DIR);
        create_private_dir(&root)?;
        let mut dir = root.join(&stamp);
        let mut n = 1;
        while dir.exists() {
            n += 1;
            dir = root.join(format!("{stamp}-{n}"));
        }
        create_private_dir(&dir)?;
        for file in existing {
            let to = dir.join(file.file_name().unwrap_or_default());
            fs::rename(file, &to).map_err(|source| CertError::Write { path: to.clone(), source })?;
        }
        Ok(Some(dir))
    }

    /// Takes the cross-process lock on the directory (creating it 0700 when missing), so two
    /// azdock processes started together end with one CA. The lock is released when the
    /// returned descriptor is closed.
    fn lock(&self) -> Result<File, CertError> {
        create_private_dir(&self.dir)?;
        let err = |source| CertError::Lock { path: self.dir.clone(), source };
        let dir = File::open(&self.dir).map_err(err)?;
        dir.lock().map_err(err)?;
        Ok(dir)
    }
}

/// One certificate and key to verify.
struct PairSpec<'a> {
    subject: &'a str,
    role: Role,
    cert_path: &'a Path,
    key_path: &'a Path,
}

impl ServerRequest {
    /// Rebuilds a request from an existing certificate's SANs (for renewal).
    fn from_sans(host: &str, sans: &[String]) -> Result<Self, CertError> {
        let (ips, dns): (Vec<String>, Vec<String>) = sans.iter().cloned().partition(|s| s.parse::<IpAddr>().is_ok());
        Self::new(host, &dns, &ips)
    }
}

struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, subject: &str, check: &'static str, status: CheckStatus, detail: String) {
        self.0.push(Check { subject: subject.to_owned(), check, status, detail });
    }

    /// Runs every check on one pair, recording failures instead of stopping at the first;
    /// returns the certificate when it could be read, for further checks.
    fn pair(&mut self, spec: &PairSpec<'_>, ca: Option<&CertFile>, passphrases: &Passphrases<'_>) -> Option<CertFile> {
        let subject = spec.subject;
        let cert = match read_optional(spec.cert_path)
            .and_then(|text| text.map(|t| CertFile::parse(spec.cert_path, t)).transpose())
        {
            Ok(Some(cert)) => cert,
            Ok(None) => {
                let hint = match spec.role {
                    Role::Server => "run `azdock certs server HOST`",
                    Role::Ca | Role::Client => "run `azdock certs init`",
                };
                self.push(
                    subject,
                    "exists",
                    CheckStatus::Failed,
                    format!("`{}` is missing; {hint}", spec.cert_path.display()),
                );
                return None;
            }
            Err(e) => {
                self.push(subject, "parse", CheckStatus::Failed, e.to_string());
                return None;
            }
        };
        self.key(subject, &cert, spec.key_path, passphrases);
        self.chain(subject, spec.role, &cert, ca);
        self.expiry(subject, &cert);
        let x509 = cert.x509();
        if spec.role != Role::Ca {
            let eku = x509.extended_key_usage().ok().flatten().map(|e| e.value.clone());
            let (has, name) = match spec.role {
                Role::Server => (eku.as_ref().is_some_and(|e| e.server_auth), "serverAuth"),
                _ => (eku.as_ref().is_some_and(|e| e.client_auth), "clientAuth"),
            };
            let (status, detail) = if has {
                (CheckStatus::Ok, format!("extended key usage {name}"))
            } else {
                (CheckStatus::Failed, format!("extended key usage lacks {name}"))
            };
            self.push(subject, "usage", status, detail);
        }
        if spec.role == Role::Server {
            let sans = cert.sans();
            if sans.is_empty() {
                self.push(
                    subject,
                    "san",
                    CheckStatus::Failed,
                    "no subject alternative names (CN-only); Go clients such as docker reject it".into(),
                );
            } else {
                self.push(subject, "san", CheckStatus::Ok, sans.join(", "));
            }
        }
        Some(cert)
    }

    /// The key is present, loadable, matches the certificate and is private.
    fn key(&mut self, subject: &str, cert: &CertFile, key_path: &Path, passphrases: &Passphrases<'_>) {
        let text = match read_optional(key_path) {
            Ok(Some(text)) => zeroize::Zeroizing::new(text),
            Ok(None) => {
                self.push(subject, "key", CheckStatus::Failed, format!("`{}` is missing", key_path.display()));
                return;
            }
            Err(e) => {
                self.push(subject, "key", CheckStatus::Failed, e.to_string());
                return;
            }
        };
        let (status, detail) = match load_key(key_path, &text, passphrases) {
            Ok(key) if cert.matches_key(key.public_key_raw()) => {
                (CheckStatus::Ok, format!("`{}` matches the certificate", key_path.display()))
            }
            Ok(_) => (CheckStatus::Failed, format!("`{}` does not belong to the certificate", key_path.display())),
            Err(e @ CertError::Passphrase { .. }) => (CheckStatus::Warning, format!("not checked: {e}")),
            Err(e) => (CheckStatus::Failed, e.to_string()),
        };
        self.push(subject, "key", status, detail);
        self.permissions(subject, key_path);
    }

    /// The CA is a self-signed CA; a leaf is signed by it.
    fn chain(&mut self, subject: &str, role: Role, cert: &CertFile, ca: Option<&CertFile>) {
        let x509 = cert.x509();
        let (status, detail) = match (role, ca) {
            (Role::Ca, _) if !x509.is_ca() => {
                (CheckStatus::Failed, "not a CA certificate (basicConstraints CA:TRUE missing)".into())
            }
            (Role::Ca, _) if !cert.issued_by(cert) => {
                (CheckStatus::Failed, "the CA certificate is not self-signed".into())
            }
            (Role::Ca, _) => (CheckStatus::Ok, format!("self-signed CA `{}`", name_text(x509.subject()))),
            (_, None) => (CheckStatus::Failed, "cannot check: no usable CA".into()),
            (_, Some(ca)) if cert.issued_by(ca) => {
                (CheckStatus::Ok, format!("issued by `{}`", name_text(ca.x509().subject())))
            }
            (_, Some(ca)) => (CheckStatus::Failed, format!("not issued by the CA in `{}`", ca.path.display())),
        };
        self.push(subject, "chain", status, detail);
    }

    fn expiry(&mut self, subject: &str, cert: &CertFile) {
        let now = OffsetDateTime::now_utc();
        let days = cert.days_left();
        let (status, detail) = if cert.not_after() < now {
            (CheckStatus::Failed, format!("expired on {}", rfc3339(cert.not_after())))
        } else if cert.not_before() > now {
            (CheckStatus::Failed, format!("not valid before {}", rfc3339(cert.not_before())))
        } else if days < EXPIRY_WARNING_DAYS {
            (CheckStatus::Warning, format!("expires in {days} days, on {}", rfc3339(cert.not_after())))
        } else {
            (CheckStatus::Ok, format!("valid until {} ({days} days)", rfc3339(cert.not_after())))
        };
        self.push(subject, "expiry", status, detail);
    }

    fn permissions(&mut self, subject: &str, key_path: &Path) {
        match fs::metadata(key_path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => self.push(
                subject,
                "permissions",
                CheckStatus::Failed,
                format!(
                    "`{}` is mode {:o}, readable by others; run `chmod 600 {}`",
                    key_path.display(),
                    meta.permissions().mode() & 0o777,
                    key_path.display()
                ),
            ),
            Ok(_) => self.push(subject, "permissions", CheckStatus::Ok, format!("`{}` is private", key_path.display())),
            Err(e) => self.push(subject, "permissions", CheckStatus::Failed, e.to_string()),
        }
    }
}

fn issuer(ca: &Pair) -> Result<Issuer<'static, &KeyPair>, CertError> {
    Ok(Issuer::from_ca_cert_pem(&ca.cert.pem, &ca.key)?)
}

/// A reused leaf must come from the current CA and still be valid.
fn check_leaf(pair: &Pair, ca: &Pair, role: &'static str, hint: &str) -> Result<(), CertError> {
    if !pair.cert.issued_by(&ca.cert) {
        return Err(CertError::WrongIssuer {
            cert: pair.cert.path.clone(),
            ca: ca.cert.path.clone(),
            hint: format!("{hint} to issue a new one from this CA"),
        });
    }
    if pair.cert.not_after() < OffsetDateTime::now_utc() {
        return Err(CertError::Expired {
            role,
            path: pair.cert.path.clone(),
            not_after: rfc3339(pair.cert.not_after()),
            hint: hint.to_owned(),
        });
    }
    Ok(())
}

impl Report {
    fn push(&mut self, role: Role, host: Option<&str>, pair: &Pair, status: Outcome) {
        let info = pair.cert.info(role, host, &pair.key_path);
        if info.days_left < EXPIRY_WARNING_DAYS {
            self.warnings.push(format!(
                "`{}` expires in {} days, on {}",
                info.file.display(),
                info.days_left,
                info.not_after
            ));
        }
        self.certificates.push(ReportEntry { status, info });
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn read_optional(path: &Path) -> Result<Option<String>, CertError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            Err(CertError::Corrupt { path: path.to_owned(), what: "PEM file", detail: "it is not UTF-8 text".into() })
        }
        Err(source) => Err(CertError::Read { path: path.to_owned(), source }),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), CertError> {
    azdock_files::create_private_dir(dir).map_err(|source| CertError::CreateDir { path: dir.to_owned(), source })
}

/// Pairs minted by one store operation, written together when the operation has succeeded:
/// keys 0600 from creation, certificates 0644, every file synced at once and renamed in order
/// (each key before its certificate), the directory synced once. A run stopped between a key's
/// rename and its certificate's leaves the key alone with its certificate's complete temporary
/// beside it, which is how the next run knows the key for its own ([`interrupted`]); a run that
/// fails there removes the key itself.
#[derive(Default)]
struct Batch {
    pairs: Vec<Pending>,
}

/// A minted pair's files, to be written.
struct Pending {
    cert_path: PathBuf,
    key_path: PathBuf,
    cert_pem: String,
    key_pem: zeroize::Zeroizing<String>,
}

impl Batch {
    /// Keeps a minted pair for [`Batch::commit`]; returns it as it will load.
    fn add(&mut self, cert_path: &Path, key_path: &Path, minted: Minted) -> Result<Pair, CertError> {
        let Minted { cert_pem, cert_der, key_pem, key } = minted;
        let cert = CertFile::from_der(cert_path, cert_pem.clone(), cert_der)?;
        self.pairs.push(Pending { cert_path: cert_path.to_owned(), key_path: key_path.to_owned(), cert_pem, key_pem });
        Ok(Pair { cert, key, key_path: key_path.to_owned() })
    }

    fn commit(self) -> Result<(), CertError> {
        let Some(first) = self.pairs.first() else { return Ok(()) };
        let dir = azdock_files::dir_of(&first.key_path);
        // A run stopped before its renames left its temporaries; this write is the re-run
        // that finishes its job, so it clears them.
        sweep_leftovers(dir)?;
        let files: Vec<(&Path, &[u8], u32)> = self
            .pairs
            .iter()
            .flat_map(|p| {
                [
                    (p.key_path.as_path(), p.key_pem.as_bytes(), 0o600),
                    (p.cert_path.as_path(), p.cert_pem.as_bytes(), 0o644),
                ]
            })
            .collect();
        azdock_files::write_atomic_all(&files).map_err(|e| {
            // Files land key, certificate, key, …: an odd count means a key landed without its
            // certificate. It is this run's and nothing has used it.
            if e.landed % 2 == 1
                && let Some(pending) = self.pairs.get(e.landed / 2)
            {
                let _ = fs::remove_file(&pending.key_path);
            }
            CertError::Write { path: dir.to_owned(), source: e.source }
        })
    }
}

/// Through azdock's one atomic write: a reader never sees a half-written file and a crash
/// leaves no truncated key behind.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    azdock_files::write_atomic(path, contents, mode)
        .map_err(|source| CertError::Write { path: path.to_owned(), source })
}

/// Whether `key`, alone at `key_path`, is one a stopped run of azdock wrote: the complete
/// temporary of its certificate is beside it and certifies exactly this key (only azdock writes
/// such temporaries, and only under the directory's lock, which the caller holds). A lone key
/// without one is the user's. The temporaries go with the next write ([`Batch::commit`]).
fn interrupted(cert_path: &Path, key_path: &Path, key: &str) -> Result<bool, CertError> {
    let dir = azdock_files::dir_of(key_path);
    let cert_name = file_name(cert_path);
    let evidence = azdock_files::leftover_temporaries(dir, |name| name == cert_name)
        .map_err(|source| CertError::Read { path: dir.to_owned(), source })?;
    if evidence.is_empty() {
        return Ok(false);
    }
    let Ok(key) = load_key(key_path, key, &Passphrases::NONE) else { return Ok(false) };
    Ok(evidence.iter().any(|tmp| {
        fs::read_to_string(tmp)
            .ok()
            .and_then(|text| CertFile::parse(tmp, text).ok())
            .is_some_and(|cert| cert.matches_key(key.public_key_raw()))
    }))
}

/// Removes the temporaries that stopped runs left in `dir`. The store's files are all `.pem`
/// and written only under the directory's lock, which the caller holds: none is a live
/// writer's, and no other writer's temporaries are touched.
fn sweep_leftovers(dir: &Path) -> Result<(), CertError> {
    let leftovers =
        azdock_files::leftover_temporaries(dir, |name| Path::new(name).extension().is_some_and(|e| e == "pem"))
            .map_err(|source| CertError::Read { path: dir.to_owned(), source })?;
    for tmp in leftovers {
        remove_file(&tmp)?;
    }
    Ok(())
}

/// Removes a file that may already be gone.
fn remove_file(path: &Path) -> Result<(), CertError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CertError::Write { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_missing_file_is_no_error_and_a_directory_is_not_removed_as_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(remove_file(&dir.path().join("gone")).is_ok());
        // A directory is not removed as a file: that is an error, not silence.
        fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(matches!(remove_file(&dir.path().join("sub")), Err(CertError::Write { .. })));
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_pair_whose_certificate_could_not_be_written_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join(CA_KEY);
        // A non-empty directory where the certificate goes: the key is renamed into place, the
        // certificate cannot be; the key goes again.
        let cert_path = dir.path().join(CA_CERT);
        fs::create_dir(&cert_path).unwrap();
        fs::write(cert_path.join("inside"), "").unwrap();
        assert!(CertStore::store_pair(&cert_path, &key_path, mint::ca().unwrap()).is_err());
        assert_eq!(names_in(dir.path()), [CA_CERT], "no key, no temporary");
        // A pair that landed before the failure stays whole.
        let (client_cert, client_key) = (dir.path().join(CLIENT_CERT), dir.path().join(CLIENT_KEY));
        let mut batch = Batch::default();
        batch.add(&client_cert, &client_key, mint::ca().unwrap()).unwrap();
        batch.add(&cert_path, &key_path, mint::ca().unwrap()).unwrap();
        assert!(batch.commit().is_err());
        assert_eq!(names_in(dir.path()), [CA_CERT, CLIENT_CERT, CLIENT_KEY]);
    }

    /// What a run killed between the CA key's rename and its certificate's leaves: the key, the
    /// certificate's complete temporary and the temporaries of the pairs after it.
    fn killed_after_the_ca_key(dir: &Path) -> Minted {
        let minted = mint::ca().unwrap();
        azdock_files::write_atomic(&dir.join(CA_KEY), minted.key_pem.as_bytes(), 0o600).unwrap();
        fs::write(azdock_files::temp_name(&dir.join(CA_CERT)), &minted.cert_pem).unwrap();
        fs::write(azdock_files::temp_name(&dir.join(CLIENT_KEY)), "a key not yet renamed").unwrap();
        minted
    }

    #[test]
    fn a_key_left_alone_by_a_killed_run_is_replaced_and_one_the_user_put_there_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let minted = killed_after_the_ca_key(dir.path());
        // Another writer's temporary in the same directory is not the store's to remove.
        fs::write(azdock_files::temp_name(&dir.path().join("config.json")), "{}").unwrap();
        let report = CertStore::new(dir.path()).init(&Passphrases::NONE).unwrap();
        assert!(report.certificates.iter().all(|c| c.status == Outcome::Created), "{report:?}");
        assert_ne!(fs::read_to_string(dir.path().join(CA_KEY)).unwrap(), *minted.key_pem, "a new pair was made");
        let left = names_in(dir.path());
        assert_eq!(left.iter().filter(|n| n.contains(".tmp-")).count(), 1, "{left:?}");
        assert!(left.iter().any(|n| n.starts_with(".config.json.tmp-")), "{left:?}");

        // A lone key without a temporary of its certificate is the user's: refused, untouched.
        let other = tempfile::tempdir().unwrap();
        let key_path = other.path().join(CA_KEY);
        azdock_files::write_atomic(&key_path, minted.key_pem.as_bytes(), 0o600).unwrap();
        let e = CertStore::new(other.path()).init(&Passphrases::NONE).unwrap_err();
        assert!(matches!(e, CertError::PartialSet { .. }), "{e}");
        // Nor is one beside a temporary that certifies another key, or that is no certificate.
        let another = mint::ca().unwrap();
        fs::write(azdock_files::temp_name(&other.path().join(CA_CERT)), &another.cert_pem).unwrap();
        fs::write(azdock_files::temp_name(&other.path().join(CA_CERT)), "torn").unwrap();
        let e = CertStore::new(other.path()).init(&Passphrases::NONE).unwrap_err();
        assert!(matches!(e, CertError::PartialSet { .. }), "{e}");
        assert_eq!(fs::read_to_string(&key_path).unwrap(), *minted.key_pem, "the user's key is untouched");
        assert_eq!(names_in(other.path()).len(), 3, "and the temporaries beside it too");
        // The temporary of another file certifying this key is no evidence either.
        let third = tempfile::tempdir().unwrap();
        azdock_files::write_atomic(&third.path().join(CA_KEY), minted.key_pem.as_bytes(), 0o600).unwrap();
        fs::write(azdock_files::temp_name(&third.path().join(CLIENT_CERT)), &minted.cert_pem).unwrap();
        let e = CertStore::new(third.path()).init(&Passphrases::NONE).unwrap_err();
        assert!(matches!(e, CertError::PartialSet { .. }), "{e}");
        // A run stopped before its renames left only temporaries: the next write clears them,
        // and leaves none of its own.
        let fresh = tempfile::tempdir().unwrap();
        fs::write(azdock_files::temp_name(&fresh.path().join("vm1-server-key.pem")), "torn").unwrap();
        CertStore::new(fresh.path()).server(&ServerRequest::new("vm1", &[], &[]).unwrap(), &Passphrases::NONE).unwrap();
        assert!(names_in(fresh.path()).iter().all(|n| !n.starts_with('.')), "{:?}", names_in(fresh.path()));
    }

    #[test]
    fn names_are_validated() {
        assert!(ServerRequest::new("vm-1", &[], &[]).is_ok());
        assert!(matches!(ServerRequest::new("../x", &[], &[]), Err(CertError::InvalidHost { .. })));
        assert!(matches!(ServerRequest::new("", &[], &[]), Err(CertError::InvalidHost { .. })));
        assert!(matches!(
            ServerRequest::new("vm", &["bad_name.example".into()], &[]),
            Err(CertError::InvalidDnsName { .. })
        ));
        assert!(matches!(ServerRequest::new("vm", &["-a.example".into()], &[]), Err(CertError::InvalidDnsName { .. })));
        assert!(matches!(ServerRequest::new("vm", &[], &["300.1.1.1".into()]), Err(CertError::InvalidIp { .. })));
        assert!(matches!(ServerRequest::new("vm", &["10.0.0.1".into()], &[]), Err(CertError::InvalidDnsName { .. })));
        let r = ServerRequest::new("vm", &["*.example.com".into(), "*.example.com".into()], &["::1".into()]).unwrap();
        assert_eq!(r.names(), ["*.example.com", "::1"]);
    }

    #[test]
    fn init_then_server_then_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path().join("certs"));
        let first = store.init(&Passphrases::NONE).unwrap();
        assert!(first.certificates.iter().all(|c| c.status == Outcome::Created));
        let again = store.init(&Passphrases::NONE).unwrap();
        assert!(again.certificates.iter().all(|c| c.status == Outcome::Reused));
        assert_eq!(first.certificates[0].info.fingerprint_sha256, again.certificates[0].info.fingerprint_sha256);

        let req = ServerRequest::new("vm1", &["vm1.example.com".into()], &["127.0.0.5".into()]).unwrap();
        let server = store.server(&req, &Passphrases::NONE).unwrap();
        assert_eq!(server.certificates[2].status, Outcome::Created);
        let server_again = store.server(&req, &Passphrases::NONE).unwrap();
        assert_eq!(server_again.certificates[2].status, Outcome::Reused);

        let wider = ServerRequest::new("vm1", &["other.example.com".into()], &[]).unwrap();
        let err = store.server(&wider, &Passphrases::NONE).unwrap_err();
        assert!(err.to_string().contains("does not cover `other.example.com`"), "{err}");

        let mode = fs::metadata(store.server_paths("vm1").1).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = fs::metadata(store.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);

        let checks = store.verify(&[], &["127.0.0.5".into()], &Passphrases::NONE).unwrap();
        assert!(checks.iter().all(|c| c.status == CheckStatus::Ok), "{checks:#?}");
        let chain = |checks: &[Check]| -> Vec<(String, CheckStatus, String)> {
            let chains = checks.iter().filter(|c| c.check == "chain");
            chains.map(|c| (c.subject.clone(), c.status, c.detail.clone())).collect()
        };
        let issued =
            |subject: &str| (subject.to_owned(), CheckStatus::Ok, "issued by `O=azdock, CN=azdock CA`".to_owned());
        assert_eq!(
            chain(&checks),
            [
                ("ca".to_owned(), CheckStatus::Ok, "self-signed CA `O=azdock, CN=azdock CA`".to_owned()),
                issued("client"),
                issued("server vm1"),
            ]
        );
        // A client certificate from another CA fails the chain check, and only it.
        let other = CertStore::new(dir.path().join("other"));
        other.init(&Passphrases::NONE).unwrap();
        for file in ["cert.pem", "key.pem"] {
            fs::copy(other.dir().join(file), store.dir().join(file)).unwrap();
        }
        let checks = store.verify(&[], &[], &Passphrases::NONE).unwrap();
        let failed: Vec<_> = chain(&checks).into_iter().filter(|c| c.1 == CheckStatus::Failed).collect();
        assert_eq!(failed.len(), 1, "{checks:#?}");
        assert_eq!(failed[0].0, "client");
        assert!(failed[0].2.starts_with("not issued by the CA in"), "{failed:?}");
    }

    #[test]
    fn two_owners_of_one_host_name_get_a_certificate_each() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let (a, b) =
            ("local:/subscriptions/s/resourcegroups/ga/x/twin", "local:/subscriptions/s/resourcegroups/gb/x/twin");
        let req = |ip: &str, owner: &str| {
            ServerRequest::new("twin", &["twin.example".into()], &[ip.into()]).unwrap().owned_by(owner)
        };
        assert_eq!(req("10.0.0.1", a).owner(), Some(a));
        assert!(!store.has_server("twin", a));
        assert_eq!(store.server_name("twin", Some(a)), "twin", "an unclaimed name is the asker's");
        let first = store.server(&req("10.0.0.1", a), &Passphrases::NONE).unwrap();
        assert_eq!(first.certificates[2].info.host.as_deref(), Some("twin"));
        assert_eq!(fs::read_to_string(dir.path().join("twin-server.owner")).unwrap(), format!("{a}\n"));
        // Another owner of the name: its own file, not a refusal for names it does not cover.
        let second = store.server(&req("10.0.0.2", b), &Passphrases::NONE).unwrap();
        let other = store.server_name("twin", Some(b));
        // The first four bytes of the owner's SHA-256, as every version has named the file.
        assert_eq!(other, "twin-643e6919");
        assert_eq!(second.certificates[2].info.host.as_deref(), Some(other.as_str()));
        assert_eq!(store.server_name("twin", Some(a)), "twin");
        assert_eq!(store.server_name("twin", None), "twin", "`certs` commands name files as they are");
        assert_eq!(store.server_paths_of(&req("10.0.0.2", b)), store.server_paths(&other));
        let sans = |name: &str| {
            let path = store.server_paths(name).0;
            CertFile::parse(&path, fs::read_to_string(&path).unwrap()).unwrap().sans()
        };
        assert!(sans("twin").contains(&"10.0.0.1".to_owned()) && sans(&other).contains(&"10.0.0.2".to_owned()));
        // Both reused as they are; a renewal keeps to each owner's file.
        assert_eq!(
            store.server(&req("10.0.0.2", b), &Passphrases::NONE).unwrap().certificates[2].status,
            Outcome::Reused
        );
        let renewed = store.rotate(&Rotation::Server(req("10.0.0.2", b)), &Passphrases::NONE).unwrap();
        assert_eq!(renewed.certificates[0].info.host.as_deref(), Some(other.as_str()));
        assert!(sans("twin").contains(&"10.0.0.1".to_owned()), "the other owner's is untouched");
        // A failed create removes its owner's certificate only.
        assert!(store.has_server("twin", b));
        assert!(store.remove_server("twin", b).unwrap());
        assert!(!store.has_server("twin", b) && store.has_server("twin", a));
        assert!(!dir.path().join(format!("{other}-server.owner")).exists());
        assert!(!store.remove_server("twin", b).unwrap(), "nothing left to remove");
        // A certificate without an owner (from `certs server`) is never a create's to remove.
        store.server(&ServerRequest::new("plain", &[], &["10.0.0.3".into()]).unwrap(), &Passphrases::NONE).unwrap();
        assert!(!store.remove_server("plain", a).unwrap());
        assert!(store.server_paths("plain").0.exists());
        assert_eq!(store.server_name("plain", Some(a)), "plain");
        // Renewing that unowned certificate for an owner records the owner.
        let renew = ServerRequest::new("plain", &[], &[]).unwrap().owned_by(a);
        store.rotate(&Rotation::Server(renew), &Passphrases::NONE).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("plain-server.owner")).unwrap().trim(), a);
        // An owner record whose certificate went (a CA rotation's backup) is removed alone.
        let (cert, key) = store.server_paths("plain");
        fs::remove_file(cert).unwrap();
        fs::remove_file(key).unwrap();
        assert!(store.remove_server("plain", a).unwrap());
        assert!(!dir.path().join("plain-server.owner").exists());
    }

    #[test]
    fn rotation_keeps_sans_and_backs_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let req = ServerRequest::new("vm1", &["vm1.example.com".into()], &["127.0.0.5".into()]).unwrap();
        let before = store.server(&req, &Passphrases::NONE).unwrap();
        let renew =
            store.rotate(&Rotation::Server(ServerRequest::new("vm1", &[], &[]).unwrap()), &Passphrases::NONE).unwrap();
        let new = &renew.certificates[0].info;
        assert_eq!(new.sans, ["vm1.example.com", "127.0.0.5"]);
        assert_ne!(new.fingerprint_sha256, before.certificates[2].info.fingerprint_sha256);
        assert!(renew.backup_dir.as_ref().unwrap().join("vm1-server-cert.pem").exists());
        // Names given explicitly replace the old ones, even when the only name is the host's.
        let explicit = ServerRequest::new("vm1", &["vm1".into()], &[]).unwrap();
        let renamed = store.rotate(&Rotation::Server(explicit), &Passphrases::NONE).unwrap();
        assert_eq!(renamed.certificates[0].info.sans, ["vm1"]);

        let ca = store.rotate(&Rotation::Ca, &Passphrases::NONE).unwrap();
        assert_eq!(ca.redeploy, ["vm1"]);
        assert!(!store.server_paths("vm1").0.exists());
        assert_ne!(ca.certificates[0].info.fingerprint_sha256, before.certificates[0].info.fingerprint_sha256);
    }

    #[test]
    fn partial_sets_name_the_missing_file_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        store.init(&Passphrases::NONE).unwrap();
        fs::remove_file(dir.path().join("ca-key.pem")).unwrap();
        let before: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        let err = store.init(&Passphrases::NONE).unwrap_err();
        assert!(err.to_string().contains("`ca.pem` exists but `ca-key.pem` is missing"), "{err}");
        assert!(err.is_usage());
        let after: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(before.len(), after.len());
    }
}
