//! azdock-ext-docker: the Docker host extension — dockerd on a Linux VM listening on a TCP port
//! with `--tlsverify`, holding a server certificate from the user's CA (minted here through
//! `azdock-certs`), delivered by CustomScript (default), cloud-init (new VMs) or the retired
//! DockerExtension. Like every extension it only plans; the host talks to Azure.

pub mod payload;

use std::net::IpAddr;
use std::path::PathBuf;

use azdock_certs::{CertStore, Passphrases, ServerRequest};
use azdock_core::{
    ActionSpec, ArgKind, ArgSpec, ExtensionError, ExtensionInstance, HandlerSpec, Manifest, Operation, OsType, Plan,
    PlanRequest, Probe, Protocol, Secret, Step, Transport, VmExtension,
};
pub use payload::{DockerSetup, SocketSetup, check_option, uninstall_script};

azdock_core::register_builtin!(DockerExtension);

/// Docker's registered port for TLS.
pub const DEFAULT_PORT: u16 = 2376;
/// The NSG rule the extension opens for the Docker port.
pub const RULE_NAME: &str = "azdock-docker";
/// The NSG rule the SSH transport opens for sshd.
pub const SSH_RULE_NAME: &str = "azdock-ssh";
/// sshd's port.
pub const SSH_PORT: u16 = 22;
/// How long the host waits for the daemon to answer a TLS handshake after an install.
pub const READY_TIMEOUT_SECS: u32 = 600;

/// An Azure extension handler that installs Docker on an existing VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// CustomScript 2.1 running the install script from protected settings.
    CustomScript,
    /// The DockerExtension Azure retired in 2018.
    Legacy,
}

impl Handler {
    /// Every handler, the default first.
    pub const ALL: [Handler; 2] = [Handler::CustomScript, Handler::Legacy];

    pub fn name(self) -> &'static str {
        match self {
            Self::CustomScript => "customscript",
            Self::Legacy => "legacy",
        }
    }

    /// The Azure handler.
    pub fn spec(self) -> HandlerSpec {
        let spec = |kind: &str, version: &str| HandlerSpec {
            name: self.name().into(),
            os: OsType::Linux,
            publisher: "Microsoft.Azure.Extensions".into(),
            kind: kind.into(),
            type_handler_version: version.into(),
        };
        match self {
            Self::CustomScript => spec("CustomScript", "2.1"),
            Self::Legacy => spec("DockerExtension", "1.2"),
        }
    }
}

/// How Docker gets onto the VM: an extension handler, or cloud-init at the VM's first boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Handler(Handler),
    /// cloud-config in `customData`, for new VMs only.
    CloudInit,
}

impl Delivery {
    /// Parses `--handler`; the message names what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "customscript" | "custom-script" => Ok(Self::Handler(Handler::CustomScript)),
            "cloud-init" | "cloudinit" => Ok(Self::CloudInit),
            "legacy" => Ok(Self::Handler(Handler::Legacy)),
            _ => Err(format!("unknown handler `{text}`: use customscript, cloud-init or legacy")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Handler(h) => h.name(),
            Self::CloudInit => "cloud-init",
        }
    }

    /// The extension handler, for deliveries that are one.
    pub fn handler(self) -> Option<Handler> {
        match self {
            Self::Handler(h) => Some(h),
            Self::CloudInit => None,
        }
    }
}

/// Why `--handler cloud-init` is refused on an existing VM.
pub const CLOUD_INIT_ON_EXISTING: &str = "cloud-init runs only when a VM is created: use `azdock vm docker create --handler cloud-init`, or customscript here";

/// The handler instance on the VM that set Docker up, if any: one another extension took over
/// (the host tags instances with their owner) is not Docker's any more.
pub fn installed(facts: &azdock_core::VmFacts) -> Option<(Handler, &azdock_core::InstalledExtension)> {
    Handler::ALL.into_iter().find_map(|h| {
        let spec = h.spec();
        facts
            .extension_of(&spec.publisher, &spec.kind)
            .filter(|e| e.owner.as_deref().is_none_or(|o| o == "docker"))
            .map(|e| (h, e))
    })
}

/// The warning every use of the legacy handler prints.
pub const LEGACY_WARNING: &str = "the DockerExtension was retired by Azure in November 2018: regions may refuse it and it gets no fixes; the default customscript handler does the same with the distribution's Docker";

/// The note for the default `--allow-from` of the SSH transport.
pub const SSH_OPEN_TO_ANY_NOTE: &str = "SSH admits connections from any address (only holders of a key the VM trusts get in; Docker's own port stays closed); narrow it with --allow-from CIDR";

/// Why `rotate-certs` does nothing on a host reached over SSH.
pub const NO_CERTS_OVER_SSH: &str = "the host is reached over SSH (--transport ssh): it has no certificates to rotate; its SSH host keys are pinned in ~/.ssh/known_hosts";

/// The note for the default `--allow-from`.
pub const OPEN_TO_ANY_NOTE: &str = "the Docker port admits connections from any address (only holders of a client certificate from your CA get in), as Azure's own tools did; narrow it with --allow-from CIDR";

/// Checks `--allow-from`: `*`, an IPv4/IPv6 address, or a CIDR prefix.
pub fn check_source(source: &str) -> Result<(), String> {
    if source == "*" || source.eq_ignore_ascii_case("Internet") {
        return Ok(());
    }
    let (addr, prefix) = source.split_once('/').map_or((source, None), |(a, p)| (a, Some(p)));
    let ip: IpAddr =
        addr.parse().map_err(|_| format!("`{source}` is not an address or CIDR prefix (e.g. 203.0.113.0/24, or *)"))?;
    if let Some(p) = prefix {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if !p.parse::<u8>().is_ok_and(|p| p <= max) {
            return Err(format!("`{source}`: the prefix length must be 0 to {max}"));
        }
    }
    Ok(())
}

/// The Docker host extension.
#[derive(Debug)]
pub struct DockerExtension {
    manifest: Manifest,
}

impl Default for DockerExtension {
    fn default() -> Self {
        let port = || {
            ArgSpec::text("port", "TCP port dockerd listens on with TLS").kind(ArgKind::Integer).default_value("2376")
        };
        let cert_dir = || ArgSpec::text("docker-cert-dir", "Certificate directory [default: ~/.docker]");
        let ssh = ssh_args;
        let linux = vec![OsType::Linux];
        let install_args = || {
            vec![
                port(),
                ArgSpec::text("handler", "customscript or legacy").default_value("customscript"),
                ArgSpec::text("docker-option", "Extra dockerd flag (repeatable)").kind(ArgKind::List),
                ArgSpec::text("allow-from", "Source CIDR admitted to the port (repeatable) [default: any]")
                    .kind(ArgKind::List),
                ArgSpec::text("cert-san", "Extra name or IP for the server certificate (repeatable)")
                    .kind(ArgKind::List),
                cert_dir(),
            ]
            .into_iter()
            .chain(ssh())
            .collect::<Vec<_>>()
        };
        let manifest = Manifest {
            id: "docker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Docker with mutual TLS: dockerd on the VM, certificates from your CA in ~/.docker".into(),
            handlers: Handler::ALL.into_iter().map(Handler::spec).collect(),
            actions: vec![
                ActionSpec {
                    name: "install".into(),
                    summary: "Install Docker with TLS on the port, open it in the NSG, and wait until it answers"
                        .into(),
                    os: linux.clone(),
                    args: install_args(),
                    network: true,
                },
                ActionSpec {
                    name: "rotate-certs".into(),
                    summary:
                        "A new server certificate pushed to the VM (--ca: a new CA and client, pushed to every host)"
                            .into(),
                    os: linux.clone(),
                    args: {
                        let mut args = install_args();
                        args.push(
                            ArgSpec::text(
                                "ca",
                                "A new CA and client certificate too, for every Docker host azdock knows",
                            )
                            .kind(ArgKind::Flag),
                        );
                        args.push(
                            ArgSpec::text(
                                "finish",
                                "Give the current CA to every host a CA rotation has not reached yet",
                            )
                            .kind(ArgKind::Flag),
                        );
                        args
                    },
                    network: true,
                },
                ActionSpec {
                    name: "uninstall".into(),
                    summary: "Stop dockerd listening on TCP and remove its certificates from the VM".into(),
                    os: linux.clone(),
                    args: vec![port()],
                    network: true,
                },
                ActionSpec {
                    name: "status".into(),
                    summary: "Handler state, daemon reachability and certificate expiry".into(),
                    os: linux.clone(),
                    args: [port(), cert_dir()].into_iter().chain(ssh()).collect(),
                    network: true,
                },
                ActionSpec {
                    name: "verify".into(),
                    summary: "TLS handshake and Docker's /_ping and /version with your client certificate".into(),
                    os: linux,
                    args: [
                        port(),
                        cert_dir(),
                        ArgSpec::text("timeout", "Seconds to wait for the daemon (a first boot takes minutes)")
                            .kind(ArgKind::Integer)
                            .default_value("15"),
                    ]
                    .into_iter()
                    .chain(ssh())
                    .collect(),
                    network: true,
                },
            ],
        };
        Self { manifest }
    }
}

/// The arguments that say how clients reach the daemon, and how the SSH transport logs in.
fn ssh_args() -> Vec<ArgSpec> {
    vec![
        ArgSpec::text("transport", "tls (a TCP port with mutual TLS) or ssh (the daemon's socket through SSH)")
            .default_value("tls"),
        ArgSpec::text("ssh-port", "sshd's port on the VM (--transport ssh)").kind(ArgKind::Integer).default_value("22"),
        ArgSpec::text("ssh-user", "The user to log in as (--transport ssh) [default: the VM's admin user]"),
        ArgSpec::text("ssh-identity", "Private key to log in with (--transport ssh) [default: what ssh picks]"),
    ]
}

fn invalid(arg: &str, message: impl Into<String>) -> ExtensionError {
    ExtensionError::InvalidArgument { arg: arg.into(), message: message.into() }
}

/// The port argument, checked.
pub fn port_of(request: &PlanRequest) -> Result<u16, ExtensionError> {
    let port = request.integer("port").unwrap_or(i64::from(DEFAULT_PORT));
    u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid("port", format!("{port} is not a TCP port (1 to 65535)")))
}

/// How long `verify` waits: 15 s for a daemon that just restarted, longer for a first boot.
fn verify_timeout(request: &PlanRequest) -> Result<u32, ExtensionError> {
    let secs = request.integer("timeout").unwrap_or(15);
    u32::try_from(secs)
        .ok()
        .filter(|s| (1..=3600).contains(s))
        .ok_or_else(|| invalid("timeout", format!("{secs} is not a number of seconds from 1 to 3600")))
}

/// The certificate directory: the argument, else `~/.docker`.
pub fn cert_dir_of(request: &PlanRequest) -> Result<PathBuf, ExtensionError> {
    if let Some(dir) = request.text("docker-cert-dir") {
        return Ok(PathBuf::from(dir));
    }
    std::env::home_dir()
        .filter(|h| !h.as_os_str().is_empty())
        .map(|h| h.join(".docker"))
        .ok_or_else(|| ExtensionError::Failed("cannot find the home directory; pass --docker-cert-dir".into()))
}

/// A CustomScript run of `script`, in the VM's CustomScript instance (else one named `docker`),
/// run again each time (a fresh `forceUpdateTag`).
fn customscript_put(request: &PlanRequest, script: &str) -> Operation {
    let spec = Handler::CustomScript.spec();
    let name =
        request.facts.extension_of(&spec.publisher, &spec.kind).map_or_else(|| "docker".to_owned(), |e| e.name.clone());
    Operation::Put(Box::new(ExtensionInstance {
        name,
        publisher: spec.publisher,
        kind: spec.kind,
        type_handler_version: spec.type_handler_version,
        auto_upgrade_minor_version: true,
        force_update_tag: Some(request.run_id.clone()),
        settings: serde_json::json!({}),
        protected_settings: Some(payload::customscript_protected(script)),
    }))
}

/// What an install opens and passes on, checked.
struct Opening {
    /// `--docker-option`s.
    options: Vec<String>,
    /// `--allow-from` sources; none given is any (`*`).
    sources: Vec<String>,
    /// For the user: the port is open to any address.
    notes: Vec<String>,
}

impl Opening {
    /// Checks the request's options and sources; `open_note` is told when no source is given.
    fn of(request: &PlanRequest, open_note: &str) -> Result<Self, ExtensionError> {
        let options = request.list("docker-option").to_vec();
        for option in &options {
            check_option(option).map_err(|m| invalid("docker-option", m))?;
        }
        let mut sources = request.list("allow-from").to_vec();
        for source in &sources {
            check_source(source).map_err(|m| invalid("allow-from", m))?;
        }
        let mut notes = Vec::new();
        if sources.is_empty() {
            sources.push("*".into());
            notes.push(open_note.to_owned());
        }
        Ok(Self { options, sources, notes })
    }
}

/// The `transport` argument, checked.
pub fn transport_of(request: &PlanRequest) -> Result<Transport, ExtensionError> {
    Transport::parse(request.text("transport").unwrap_or("tls")).map_err(|m| invalid("transport", m))
}

/// `~/.ssh/known_hosts`, where the SSH transport pins host keys (ssh's own default file).
pub fn known_hosts_path() -> Result<PathBuf, ExtensionError> {
    std::env::home_dir()
        .filter(|h| !h.as_os_str().is_empty())
        .map(|h| h.join(".ssh").join("known_hosts"))
        .ok_or_else(|| ExtensionError::Failed("cannot find the home directory for ~/.ssh/known_hosts".into()))
}

/// How the SSH transport logs in: sshd's port, the user, the pinned keys and the user's key.
struct SshLogin {
    port: u16,
    user: String,
    known_hosts: String,
    identity: Option<String>,
}

impl SshLogin {
    fn of(request: &PlanRequest) -> Result<Self, ExtensionError> {
        let port = request.integer("ssh-port").unwrap_or(i64::from(SSH_PORT));
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| invalid("ssh-port", format!("{port} is not a TCP port (1 to 65535)")))?;
        let user = match request.text("ssh-user") {
            Some(user) => user.to_owned(),
            None => request.facts.admin_username.clone().ok_or_else(|| {
                ExtensionError::Failed(
                    "the VM's admin user is unknown, so azdock cannot tell whom to log in as: pass --ssh-user".into(),
                )
            })?,
        };
        let known_hosts = known_hosts_path()?.to_string_lossy().into_owned();
        Ok(Self { port, user, known_hosts, identity: request.text("ssh-identity").map(str::to_owned) })
    }

    /// `docker version` through a login, as the docker CLI connects for `ssh://`.
    fn probe(&self) -> Probe {
        Probe::Ssh { user: self.user.clone(), known_hosts: self.known_hosts.clone(), identity: self.identity.clone() }
    }
}

/// The names the host's server certificate carries: its FQDN, its public IPs, and extra SANs.
pub fn server_request(request: &PlanRequest) -> Result<ServerRequest, ExtensionError> {
    let facts = &request.facts;
    let mut dns: Vec<String> = facts.fqdn.iter().cloned().collect();
    let mut ips: Vec<String> = facts.public_ips.iter().map(ToString::to_string).collect();
    for san in request.list("cert-san") {
        if san.parse::<IpAddr>().is_ok() {
            ips.push(san.clone());
        } else {
            dns.push(san.clone());
        }
    }
    let server = ServerRequest::new(&facts.name, &dns, &ips).map_err(|e| invalid("cert-san", e.to_string()))?;
    // Two VMs of one name (in two groups, say) get a certificate each in one directory.
    Ok(server.owned_by(&facts.identity()))
}

/// The CA passphrase from `AZDOCK_CA_KEY_PASSPHRASE`, the only way an extension gets one (the
/// CLI mints with a prompt before planning, so this matters only without a terminal).
fn env_passphrase() -> Option<String> {
    std::env::var("AZDOCK_CA_KEY_PASSPHRASE").ok().filter(|p| !p.is_empty())
}

/// Mints (or reuses) the host's server certificate and reads what the VM needs.
pub fn docker_setup(request: &PlanRequest, port: u16, options: Vec<String>) -> Result<DockerSetup, ExtensionError> {
    let store = CertStore::new(cert_dir_of(request)?);
    let server = server_request(request)?;
    let given = env_passphrase();
    store.server(&server, &Passphrases { given: given.as_deref(), prompt: None }).map_err(|e| {
        if e.is_usage() { invalid("docker-cert-dir", e.to_string()) } else { ExtensionError::Failed(e.to_string()) }
    })?;
    let (cert, key) = store.server_paths_of(&server);
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| ExtensionError::Failed(format!("cannot read `{}`: {e}", p.display())))
    };
    Ok(DockerSetup {
        port,
        options,
        admin_user: request.facts.admin_username.clone(),
        ca_pem: read(&store.ca_path())?,
        cert_pem: read(&cert)?,
        key_pem: Secret::new(read(&key)?),
    })
}

impl DockerExtension {
    fn install(request: &PlanRequest) -> Result<Plan, ExtensionError> {
        if transport_of(request)? == Transport::Ssh {
            return Self::install_over_ssh(request);
        }
        let port = port_of(request)?;
        let delivery =
            Delivery::parse(request.text("handler").unwrap_or("customscript")).map_err(|m| invalid("handler", m))?;
        let Delivery::Handler(handler) = delivery else {
            return Err(invalid("handler", CLOUD_INIT_ON_EXISTING));
        };
        let Opening { options, sources, mut notes } = Opening::of(request, OPEN_TO_ANY_NOTE)?;
        let setup = docker_setup(request, port, options)?;
        let spec = handler.spec();
        let existing = request.facts.extension_of(&spec.publisher, &spec.kind).map(|e| e.name.clone());
        let (settings, protected) = match handler {
            Handler::Legacy => {
                notes.push(LEGACY_WARNING.to_owned());
                setup.legacy_settings()
            }
            Handler::CustomScript => {
                (serde_json::json!({}), payload::customscript_protected(setup.install_script().expose()))
            }
        };
        let store = CertStore::new(cert_dir_of(request)?);
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        Ok(Plan {
            prerequisites: vec![Step::OpenInboundPort {
                rule_name: RULE_NAME.into(),
                port,
                protocol: Protocol::Tcp,
                sources,
            }],
            operation: Operation::Put(Box::new(ExtensionInstance {
                name: existing.unwrap_or_else(|| {
                    if handler == Handler::Legacy { "DockerExtension".into() } else { "docker".into() }
                }),
                publisher: spec.publisher,
                kind: spec.kind,
                type_handler_version: spec.type_handler_version,
                auto_upgrade_minor_version: true,
                force_update_tag: Some(request.run_id.clone()),
                settings,
                protected_settings: Some(protected),
            })),
            follow_ups: vec![Step::WaitForEndpoint {
                port,
                probe: Probe::MutualTls {
                    ca: path(store.ca_path()),
                    cert: path(store.client_cert_path()),
                    key: path(store.client_key_path()),
                },
                timeout_secs: READY_TIMEOUT_SECS,
            }],
            notes,
        })
    }

    /// Docker on its socket only, reached over SSH: the NSG opens sshd's port (not Docker's,
    /// whose rule an earlier TLS install opened goes), the VM's host keys are pinned from the
    /// install's own output, and the daemon must answer `docker version` through an SSH login.
    fn install_over_ssh(request: &PlanRequest) -> Result<Plan, ExtensionError> {
        if request.action == "rotate-certs" {
            return Err(invalid("transport", NO_CERTS_OVER_SSH));
        }
        let delivery =
            Delivery::parse(request.text("handler").unwrap_or("customscript")).map_err(|m| invalid("handler", m))?;
        match delivery {
            Delivery::Handler(Handler::CustomScript) => {}
            Delivery::CloudInit => return Err(invalid("handler", CLOUD_INIT_ON_EXISTING)),
            Delivery::Handler(Handler::Legacy) => {
                return Err(invalid(
                    "handler",
                    "the retired DockerExtension cannot report the VM's SSH host keys, which --transport ssh pins: use the customscript handler",
                ));
            }
        }
        let Opening { options, sources, notes } = Opening::of(request, SSH_OPEN_TO_ANY_NOTE)?;
        let login = SshLogin::of(request)?;
        let setup = SocketSetup { options, admin_user: login.user.clone() };
        Ok(Plan {
            prerequisites: vec![Step::OpenInboundPort {
                rule_name: SSH_RULE_NAME.into(),
                port: login.port,
                protocol: Protocol::Tcp,
                sources,
            }],
            operation: customscript_put(request, &setup.install_script()),
            follow_ups: vec![
                // A TLS listener an earlier install opened is closed on the VM; its rule goes too.
                Step::CloseInboundPort { rule_name: RULE_NAME.into() },
                Step::PinHostKeys { known_hosts: login.known_hosts.clone(), port: login.port },
                Step::WaitForEndpoint { port: login.port, probe: login.probe(), timeout_secs: READY_TIMEOUT_SECS },
            ],
            notes,
        })
    }

    fn uninstall(request: &PlanRequest) -> Result<Plan, ExtensionError> {
        let port = port_of(request)?;
        let facts = &request.facts;
        // The legacy handler is removed whole, even beside a CustomScript instance.
        let legacy = {
            let spec = Handler::Legacy.spec();
            facts.extension_of(&spec.publisher, &spec.kind).cloned()
        };
        let operation = match legacy {
            Some(ext) => Operation::Delete { name: ext.name },
            None => customscript_put(request, &uninstall_script(port)),
        };
        let mut plan = Plan::new(operation);
        plan.follow_ups.push(Step::CloseInboundPort { rule_name: RULE_NAME.into() });
        Ok(plan)
    }

    fn probe(request: &PlanRequest, timeout_secs: u32) -> Result<Plan, ExtensionError> {
        if transport_of(request)? == Transport::Ssh {
            let login = SshLogin::of(request)?;
            let mut plan = Plan::new(Operation::Inspect);
            plan.follow_ups.push(Step::WaitForEndpoint { port: login.port, probe: login.probe(), timeout_secs });
            return Ok(plan);
        }
        let port = port_of(request)?;
        let store = CertStore::new(cert_dir_of(request)?);
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut plan = Plan::new(Operation::Inspect);
        plan.follow_ups.push(Step::WaitForEndpoint {
            port,
            probe: Probe::MutualTls {
                ca: path(store.ca_path()),
                cert: path(store.client_cert_path()),
                key: path(store.client_key_path()),
            },
            timeout_secs,
        });
        Ok(plan)
    }
}

#[azdock_core::async_trait]
impl VmExtension for DockerExtension {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn plan(&self, request: &PlanRequest) -> Result<Plan, ExtensionError> {
        if request.facts.os_type != OsType::Linux {
            return Err(ExtensionError::wrong_os(&request.action, request.facts.os_type));
        }
        match request.action.as_str() {
            // The host rotated the local files first; pushing them is an install with the new ones.
            "install" | "rotate-certs" => Self::install(request),
            "uninstall" => Self::uninstall(request),
            // A status looks once; verify gives a just-restarted daemon a moment.
            "status" => Self::probe(request, 0),
            "verify" => Self::probe(request, verify_timeout(request)?),
            other => Err(ExtensionError::UnknownAction(other.into())),
        }
    }
}

#[cfg(test)]
mod tests;
