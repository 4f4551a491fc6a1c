//! azdock-emulator: a local Azure for tests and `--cloud local`.
//!
//! A real HTTPS server on loopback with its own CA that speaks the Entra token endpoint and the
//! ARM routes azdock uses — with Azure's status codes, headers, error envelope, long-running
//! operations, token-bucket throttling and scripted fault injection — and a simulated guest per
//! VM whose state extension handlers change. It shares no request or response types with
//! azdock's client: it is an independent reading of the wire format.
//!
//! ```no_run
//! # async fn demo() -> Result<(), azdock_emulator::EmulatorError> {
//! let dir = std::path::Path::new("/tmp/azdock-local");
//! let emulator = azdock_emulator::Emulator::start(azdock_emulator::Config::for_tests(dir)).await?;
//! println!("{} trusts {}", emulator.base_url(), emulator.ca_pem().len());
//! emulator.stop().await;
//! # Ok(()) }
//! ```

mod accounts;
mod admin;
mod arm;
mod auth;
mod catalog;
mod cloudinit;
mod customscript;
mod docker;
mod faults;
mod guest;
mod guestfs;
mod http;
mod people;
mod persist;
mod sandbox;
pub mod service;
mod ssh;
mod state;
mod template;
mod throttle;
mod tls;
mod tracked;
mod wire;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

pub use auth::{FederatedCredential, ServicePrincipal};
pub use faults::{FaultKind, FaultRule, Faults};
pub use guest::{Guest, Rdp, Sshd, User};
pub use people::{LOCAL_USER, PUBLIC_CLIENT_ID};
pub use state::Durations;
pub use throttle::ThrottleConfig;

/// The default tenant of the local cloud.
pub const LOCAL_TENANT: &str = "72f988bf-0000-4000-8000-00000000a2d0";
/// The default subscription of the local cloud.
pub const LOCAL_SUBSCRIPTION: &str = "00000000-0000-4000-8000-00000000d0c1";

/// Operating system family of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OsKind {
    Linux,
    Windows,
}

impl fmt::Display for OsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OsKind::Linux => "Linux",
            OsKind::Windows => "Windows",
        })
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot prepare the state directory `{path}`: {source}")]
    State { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen { port: u16, source: std::io::Error },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// The stored state cannot be loaded; the message says how to start over.
    #[error("{0}")]
    Load(String),
}

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the CA, signing key and default principal live (created 0700).
    pub state_dir: PathBuf,
    /// 0 for an ephemeral port.
    pub port: u16,
    pub durations: Durations,
    pub throttle: ThrottleConfig,
    pub fault_seed: u64,
    /// Service principals; empty means the default one, created at first start and kept in
    /// `principal.json`.
    pub principals: Vec<ServicePrincipal>,
    /// Subscriptions that exist (principals see those they have a role on).
    pub subscriptions: Vec<String>,
    pub token_lifetime_secs: i64,
    /// How long a device code waits for its person (Entra: 15 minutes).
    pub device_code_lifetime_secs: u64,
    /// Keep resources, operations and guests across restarts (and crashes): every change is
    /// journaled before it is acknowledged.
    pub persist: bool,
    /// A journal this large is folded into a new snapshot (64 MiB).
    pub checkpoint_bytes: u64,
    /// First-boot mode (zero: off): a guest's package manager holds its lock this long after the
    /// guest's first run, as cloud-init and unattended-upgrades do on Azure's Ubuntu images, and
    /// its first `apt-get update` cannot reach the mirror.
    pub first_boot_lock: std::time::Duration,
    /// A directory to append every ARM request and response body to (JSON lines, one file per
    /// process), for checking the traffic against Azure's published specifications.
    pub record: Option<PathBuf>,
}

impl Config {
    /// Realistic operation durations.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            state_dir: state_dir.to_owned(),
            port: 0,
            durations: Durations::default(),
            throttle: ThrottleConfig::default(),
            fault_seed: 0x00c0_ffee,
            principals: Vec::new(),
            subscriptions: vec![LOCAL_SUBSCRIPTION.to_owned()],
            token_lifetime_secs: 3600,
            device_code_lifetime_secs: 900,
            persist: true,
            checkpoint_bytes: 64 * 1024 * 1024,
            first_boot_lock: std::time::Duration::ZERO,
            record: None,
        }
    }

    /// Operations that finish at once, for tests.
    pub fn for_tests(state_dir: &Path) -> Self {
        Self { durations: Durations::instant(), persist: false, ..Self::new(state_dir) }
    }
}

/// What every request handler shares.
pub(crate) struct Shared {
    pub base_url: String,
    pub state_dir: PathBuf,
    pub daemons: docker::Daemons,
    /// The VMs' SSH endpoints.
    pub ssh: ssh::Endpoints,
    /// Held while a VM is provisioned, so that a login and a script arriving together
    /// provision it once.
    pub boots: Mutex<()>,
    pub key: Vec<u8>,
    /// Mutable so that certificates can be registered at run time.
    pub principals: Mutex<Vec<ServicePrincipal>>,
    pub subscriptions: Vec<String>,
    pub token_lifetime_secs: i64,
    pub device_code_lifetime_secs: u64,
    /// The secret a managed-identity caller sends as `X-IDENTITY-HEADER` (App Service style).
    pub identity_header: String,
    /// The secret every `/_emulator/…` request carries as [`ADMIN_KEY_HEADER`]; it lives in the
    /// 0600 file [`ADMIN_KEY_FILE`] of the state directory, so only the cloud's owner has it.
    pub admin_key: String,
    /// The path segment that opens IMDS (`/_imds/<key>/metadata/identity/oauth2/token`): only
    /// the owner and the VMs' sandboxes, where the local cloud puts it, know it.
    pub imds_key: String,
    /// The CA certificate (PEM) of the local cloud, for guests that call it.
    pub ca_pem: String,
    /// Where changes go before they are acknowledged (`None`: nothing is kept).
    pub journal: Option<Arc<persist::Journal>>,
    /// See [`Config::first_boot_lock`].
    pub first_boot_lock: std::time::Duration,
    /// See [`Config::record`]: the open file.
    pub record: Option<Mutex<std::fs::File>>,
    pub inner: Mutex<state::Inner>,
}

impl Shared {
    /// The local cloud's directory for one VM (`vms/<hash of its key>`): the VM's root, its
    /// sandbox agent, its dockerd's files and sshd's log live below it.
    pub(crate) fn vm_dir(&self, vm_key: &str) -> PathBuf {
        self.state_dir.join("vms").join(docker::hex_id(vm_key))
    }

    /// The principals right now (cloned: they are few and small, and this keeps locks short).
    pub(crate) fn principals(&self) -> Vec<ServicePrincipal> {
        self.principals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// A running emulator.
pub struct Emulator {
    base_url: String,
    ca_pem: String,
    principals: Vec<ServicePrincipal>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts the emulator on 127.0.0.1 and returns once it accepts connections.
    pub async fn start(config: Config) -> Result<Self, EmulatorError> {
        let state_err = |source| EmulatorError::State { path: config.state_dir.clone(), source };
        private_dir(&config.state_dir).map_err(state_err)?;
        // The VMs' directories live below `vms`, made private here before any of them.
        private_dir(&config.state_dir.join("vms")).map_err(state_err)?;
        let identity = tls::identity(&config.state_dir)?;
        let key = signing_key(&config.state_dir).map_err(state_err)?;
        let principals = if config.principals.is_empty() {
            vec![default_principal(&config.state_dir).map_err(state_err)?]
        } else {
            config.principals.clone()
        };
        let mut inner = state::Inner::new(
            throttle::Throttle::new(config.throttle),
            Faults::new(config.fault_seed),
            config.durations,
        );
        let mut principals = principals;
        let (journal, generation, restart_jobs) = if config.persist {
            let (journal, generation, jobs) = persist::open(&config.state_dir, &mut inner, &mut principals)
                .map_err(|e| EmulatorError::Load(e.to_string()))?;
            (Some(Arc::new(journal)), generation, jobs)
        } else {
            (None, 0, Vec::new())
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| EmulatorError::Listen { port: config.port, source })?;
        let port = listener.local_addr().map_err(|source| EmulatorError::Listen { port: config.port, source })?.port();
        let base_url = format!("https://127.0.0.1:{port}");
        let shared = Arc::new(Shared {
            base_url: base_url.clone(),
            state_dir: config.state_dir.clone(),
            daemons: docker::Daemons::default(),
            ssh: ssh::Endpoints::default(),
            boots: Mutex::new(()),
            key,
            principals: Mutex::new(principals.clone()),
            subscriptions: config.subscriptions.clone(),
            token_lifetime_secs: config.token_lifetime_secs,
            device_code_lifetime_secs: config.device_code_lifetime_secs,
            identity_header: secret(&config.state_dir, "identity-header.key").map_err(state_err)?,
            admin_key: secret(&config.state_dir, ADMIN_KEY_FILE).map_err(state_err)?,
            imds_key: secret(&config.state_dir, "imds.key").map_err(state_err)?,
            ca_pem: identity.ca_pem.clone(),
            journal,
            first_boot_lock: config.first_boot_lock,
            record: match &config.record {
                Some(dir) => Some(Mutex::new(record_file(dir).map_err(state_err)?)),
                None => None,
            },
            inner: Mutex::new(inner),
        });
        persist::start_committer(&shared, generation, config.checkpoint_bytes).map_err(state_err)?;
        // Last, once every file of the state directory exists (the TLS identity, the keys).
        private_state(&config.state_dir).map_err(state_err)?;
        let (shutdown, rx) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(identity.config);
        let task = tokio::spawn(http::serve(listener, acceptor, shared.clone(), rx));
        run_jobs(&shared, restart_jobs);
        Ok(Self { base_url, ca_pem: identity.ca_pem, principals, shared, shutdown, task })
    }

    /// `https://127.0.0.1:<port>`: the ARM endpoint and the authority host.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The CA certificate (PEM) to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The service principals that can sign in, with the credentials registered at run time
    /// and kept across restarts.
    pub fn principals(&self) -> &[ServicePrincipal] {
        &self.principals
    }

    /// Managed identity as App Service offers it: the `IDENTITY_ENDPOINT` URL and the
    /// `IDENTITY_HEADER` secret.
    pub fn identity_endpoint(&self) -> (String, String) {
        (format!("{}/msi/token", self.base_url), self.shared.identity_header.clone())
    }

    /// Where IMDS answers for the cloud's owner: the base to give as
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST` (it holds a secret path segment).
    pub fn imds_endpoint(&self) -> String {
        imds_base(&self.shared)
    }

    /// The secret the `/_emulator/…` admin routes require in the [`ADMIN_KEY_HEADER`] header
    /// (also in the state directory's [`ADMIN_KEY_FILE`]).
    pub fn admin_key(&self) -> &str {
        &self.shared.admin_key
    }

    /// Registers a certificate (PEM) for a principal's client-assertion sign-in, as an
    /// administrator uploads one to an app registration.
    pub fn add_certificate(&self, client_id: &str, pem: &str) -> bool {
        let added = add_certificate(&self.shared, client_id, pem);
        if added {
            let mut inner = self.shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            inner.principals_changed = true;
            persist::append(&self.shared, &mut inner);
        }
        added
    }

    /// Stops accepting connections, waits for the server task, writes what the journal holds,
    /// and stops every dockerd it started.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || persist::close(&shared)).await;
        ssh::stop_all(&self.shared);
        let daemons: Vec<_> =
            self.shared.daemons.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain().collect();
        let _ = tokio::task::spawn_blocking(move || drop(daemons)).await;
    }

    /// Replaces the fault rules (also reachable as `PUT /_emulator/faults`).
    pub fn set_faults(&self, seed: u64, rules: Vec<FaultRule>) {
        self.shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).faults.set(seed, rules);
    }

    /// Why this machine cannot run real Docker daemons for VMs, if it cannot.
    pub fn docker_unavailable_reason() -> Option<String> {
        docker::unavailable_reason()
    }

    /// Why this machine cannot give VMs a real sshd, if it cannot.
    pub fn ssh_unavailable_reason() -> Option<String> {
        ssh::unavailable_reason()
    }

    /// Why this machine cannot run CustomScript scripts in a sandbox, if it cannot.
    pub fn script_unavailable_reason() -> Option<String> {
        sandbox::unavailable_reason()
    }
}

/// The header that carries the admin key on `/_emulator/…` requests.
pub const ADMIN_KEY_HEADER: &str = "x-azdock-admin-key";
/// The file of the state directory that holds the admin key (0600).
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// Reads the admin key of the local cloud whose state lives in `state_dir`.
pub fn read_admin_key(state_dir: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(state_dir.join(ADMIN_KEY_FILE))?.trim().to_owned())
}

pub(crate) fn imds_base(shared: &Shared) -> String {
    format!("{}/_imds/{}", shared.base_url, shared.imds_key)
}

/// A random secret kept in a 0600 file of the state directory (made at first start).
fn secret(dir: &Path, name: &str) -> std::io::Result<String> {
    let data = read_or_create(&dir.join(name), || guest::hex(&random_bytes(32)).into_bytes())?;
    Ok(String::from_utf8_lossy(&data).trim().to_owned())
}

/// Every file of the state directory 0600 and every directory 0700, so that moving or copying
/// the directory cannot expose them (earlier versions wrote some files 0644). The VMs' roots are
/// the guests' own and keep the modes their guests gave them.
fn private_state(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            continue;
        }
        let mode = if kind.is_dir() { 0o700 } else { 0o600 };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
        if kind.is_dir() && entry.file_name() != "vms" {
            private_state(&entry.path())?;
        }
    }
    Ok(())
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes a new private file, or reads the existing one.
fn read_or_create(path: &Path, make: impl FnOnce() -> Vec<u8>) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut file) => {
            let data = make();
            file.write_all(&data)?;
            file.sync_all()?;
            Ok(data)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom as _;
    let mut b = vec![0u8; n];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b
}

/// The token signing key, kept so that tokens survive a restart.
fn signing_key(dir: &Path) -> std::io::Result<Vec<u8>> {
    read_or_create(&dir.join("signing.key"), || random_bytes(32))
}

/// The default service principal, with a random secret made at first start.
fn default_principal(dir: &Path) -> std::io::Result<ServicePrincipal> {
    use base64::Engine as _;
    let data = read_or_create(&dir.join("principal.json"), || {
        let principal = ServicePrincipal {
            tenant_id: LOCAL_TENANT.into(),
            client_id: "a2d0c1e5-0000-4000-8000-0000000000a1".into(),
            client_secret: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(24)),
            object_id: "0b1ec700-0000-4000-8000-0000000000a1".into(),
            subscriptions: vec![LOCAL_SUBSCRIPTION.into()],
            certificates: Vec::new(),
            federated: Vec::new(),
        };
        serde_json::to_vec_pretty(&principal).unwrap_or_default()
    })?;
    serde_json::from_slice(&data).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Adds a federated identity credential to a principal; `false` when there is no such principal.
pub(crate) fn add_federated(shared: &Shared, client_id: &str, credential: auth::FederatedCredential) -> bool {
    let mut principals = shared.principals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(p) = principals.iter_mut().find(|p| p.client_id.eq_ignore_ascii_case(client_id)) else { return false };
    p.federated.retain(|f| !(f.issuer == credential.issuer && f.subject == credential.subject));
    p.federated.push(credential);
    true
}

pub(crate) fn add_certificate(shared: &Shared, client_id: &str, pem: &str) -> bool {
    let mut principals = shared.principals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(p) = principals.iter_mut().find(|p| p.client_id.eq_ignore_ascii_case(client_id)) else { return false };
    if !p.certificates.iter().any(|c| c == pem) {
        p.certificates.push(pem.to_owned());
    }
    // The caller marks the state dirty: the admin route already holds the state lock.
    true
}

/// Runs the jobs the last request queued, outside the state lock and off the async workers
/// (starting dockerd or running a script blocks for seconds).
pub(crate) fn run_jobs(shared: &Arc<Shared>, jobs: Vec<state::Job>) {
    for job in jobs {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || match job {
            state::Job::StartDocker { vm_key, op } => docker::start(&shared, &vm_key, op.as_deref()),
            state::Job::StopDocker { vm_key } => docker::stop(&shared, &vm_key),
            state::Job::StartSsh { vm_key } => ssh::start(&shared, &vm_key),
            state::Job::StopSsh { vm_key } => ssh::stop(&shared, &vm_key),
            state::Job::SyncAccounts { vm_key, op, before } => ssh::sync_accounts(&shared, &vm_key, &op, &before),
            state::Job::ForgetVm { vm_key } => {
                ssh::stop(&shared, &vm_key);
                docker::stop(&shared, &vm_key);
                let dir = shared.vm_dir(&vm_key);
                if let Err(e) = std::fs::remove_dir_all(&dir)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!("cannot remove `{}`: {e}", dir.display());
                }
            }
            state::Job::RemoveGuest { dir } => {
                if let Err(e) = std::fs::remove_dir_all(&dir)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!("cannot remove `{}`: {e}", dir.display());
                }
            }
            state::Job::CloudInit { vm_key, op, user_data } => cloudinit::run(&shared, &vm_key, &op, &user_data),
            state::Job::RunScript { vm_key, extension, op, script } => {
                customscript::run(&shared, &vm_key, &extension, &op, &script);
            }
        });
    }
}

/// This process's file in the recording directory.
fn record_file(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{}.jsonl", std::process::id())))
}

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub(crate) fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// ARM's cloud discovery document for this one cloud. From 2022-09-01 it is the single-cloud
/// object an Azure Stack Hub (a custom cloud) serves, which `az cloud register
/// --endpoint-resource-manager` reads (public Azure's list of every cloud would break it); before,
/// the old object form.
pub(crate) fn metadata_endpoints(base: &str, api_version: Option<&str>) -> Value {
    let authentication = json!({"loginEndpoint": base, "audiences": [format!("{base}/")], "tenant": "common", "identityProvider": "AAD"});
    if api_version.is_some_and(|v| v >= "2022-09-01") {
        json!({
            "portal": base, "authentication": authentication, "media": "", "graphAudience": "", "graph": "", "name": "AzdockLocal",
            "suffixes": {"acrLoginServer": "", "keyVaultDns": "", "sqlServerHostname": "", "storage": ""},
            "batch": "", "resourceManager": base, "vmImageAliasDoc": format!("{base}/cli/vm/aliases.json"), "activeDirectoryDataLake": "", "sqlManagement": "", "gallery": ""
        })
    } else {
        json!({
            "galleryEndpoint": "", "graphEndpoint": "", "portalEndpoint": base, "authentication": authentication,
            "media": "", "suffixes": {"storage": "", "keyVaultDns": "", "sqlServerHostname": ""}, "resourceManager": base
        })
    }
}
