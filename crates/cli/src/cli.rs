//! The clap definition of azdock's static command tree.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

pub use crate::lazy::Lazy;

use crate::output::Format;

/// Turn Azure Linux VMs into TLS-secured Docker hosts and manage VM extensions.
#[derive(Debug, Parser)]
#[command(name = "azdock", version, propagate_version = true, max_term_width = 100)]
#[command(
    after_help = "Start with `azdock vm docker create NAME --generate-ssh-keys`: a Docker host with mutual TLS (in the local cloud until you sign in), then `docker --context NAME info`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, as az spells them.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format [default: json, or `defaults.output` in the config file]
    #[arg(short, long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// JMESPath query applied to the result before it is printed
    #[arg(long, global = true, value_name = "JMESPATH")]
    pub query: Option<String>,
    /// Print progress details to stderr
    #[arg(long, global = true)]
    pub verbose: bool,
    /// Print debug logs to stderr (secrets are never logged)
    #[arg(long, global = true)]
    pub debug: bool,
    /// Print errors only, no warnings
    #[arg(long, global = true)]
    pub only_show_errors: bool,
    /// Cloud: AzureCloud, AzureChinaCloud, AzureUSGovernment or local [default: AzureCloud, or
    /// `defaults.cloud` in the config file]
    #[arg(long, global = true, env = "AZDOCK_CLOUD", value_name = "NAME")]
    pub cloud: Option<String>,
    /// Subscription id [default: `defaults.subscription`, or the only one the login can see]
    #[arg(long, global = true, env = "AZDOCK_SUBSCRIPTION", value_name = "ID")]
    pub subscription: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the Docker TLS certificates: CA, client and per-host server certificates
    Certs(Lazy<CertsArgs>),
    /// Manage VM extensions
    #[command(subcommand)]
    Ext(Lazy<ExtCommand>),
    /// Choose the cloud: Azure's public clouds, the local cloud, or one you register
    #[command(subcommand)]
    Cloud(Lazy<CloudCommand>),
    /// Sign in: service principal, Azure CLI or managed identity
    Login(Lazy<LoginArgs>),
    /// Forget the stored sign-in for the cloud
    Logout,
    /// Show the subscriptions the login can use
    #[command(subcommand)]
    Account(Lazy<AccountCommand>),
    /// Manage virtual machines
    #[command(subcommand)]
    Vm(Lazy<VmCommand>),
    /// The client side of Docker hosts: shell environment and docker contexts
    #[command(subcommand)]
    Docker(Lazy<DockerCommand>),
    /// Run the local cloud: Azure's token endpoint and ARM on loopback, with simulated VMs
    #[command(subcommand)]
    Local(Lazy<LocalCommand>),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Certificate directory [default: ~/.docker]
    #[arg(short = 'C', long, global = true, env = "AZDOCK_DOCKER_CERT_DIR", value_name = "DIR")]
    pub docker_cert_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create the CA and client certificate, or reuse the ones in the directory
    Init,
    /// Create or reuse the server certificate for a Docker host
    Server {
        /// Host name (the VM name); names the certificate files
        host: String,
        /// DNS name the certificate must carry, such as the VM's FQDN (repeatable)
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// IP address the certificate must carry, such as the VM's public IP (repeatable)
        #[arg(long = "ip", value_name = "ADDR")]
        ips: Vec<String>,
    },
    /// Show subjects, SANs, expiry and fingerprints of every certificate
    Show,
    /// Check chains, expiry, key matches, SANs and key file permissions
    Verify {
        /// Hosts whose server certificates to check [default: all]
        hosts: Vec<String>,
        /// Name or IP every checked server certificate must cover (repeatable)
        #[arg(long = "san", value_name = "NAME|IP")]
        sans: Vec<String>,
    },
    /// Replace certificates; the old files move to `azdock-backup/` in the directory
    #[command(group(ArgGroup::new("what").required(true).args(["server", "client", "ca"])))]
    Rotate {
        /// A new server certificate for this host (keeps its names unless --dns/--ip are given)
        #[arg(long, value_name = "HOST")]
        server: Option<String>,
        /// A new client certificate from the same CA
        #[arg(long)]
        client: bool,
        /// A new CA and client; every host then needs its certificates redeployed
        #[arg(long)]
        ca: bool,
        /// DNS name for the new server certificate (repeatable)
        #[arg(long = "dns", value_name = "NAME", requires = "server")]
        dns: Vec<String>,
        /// IP address for the new server certificate (repeatable)
        #[arg(long = "ip", value_name = "ADDR", requires = "server")]
        ips: Vec<String>,
        /// Do not ask for confirmation
        #[arg(short, long)]
        yes: bool,
    },
    /// Print the certificate directory and the files Docker reads from it
    Path,
}

#[derive(Debug, Subcommand)]
pub enum ExtCommand {
    /// List the extensions azdock knows (built-ins and plugins), or with --vm those on a VM
    List {
        /// List the extensions installed on this VM instead
        #[arg(long, requires = "resource_group")]
        vm: Option<String>,
        /// Resource group of the VM
        #[arg(short = 'g', long)]
        resource_group: Option<String>,
        /// VM resource ids, instead of --vm and -g: the extensions on each
        #[arg(long, num_args = 1.., value_name = "ID", conflicts_with_all = ["vm", "resource_group"])]
        ids: Vec<String>,
        /// How many VMs to read at once with --ids
        #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        max_parallel: u16,
    },
    /// Show an extension azdock knows (`ext show docker`: its actions, arguments and handlers
    /// per OS), or with --vm one installed on a VM, with its status
    Show(ExtShowArgs),
    /// Install or update an extension on a VM (any publisher and type)
    // `--version` is the handler's version here, as in `az vm extension set`.
    #[command(disable_version_flag = true)]
    Set(ExtSetArgs),
    /// The Docker host extension: install, status, verify, uninstall, rotate-certs
    #[command(subcommand)]
    Docker(ExtDockerCommand),
    /// VMAccess: passwords, SSH keys and configuration, RDP, disks — on one VM or a fleet
    #[command(subcommand)]
    Vmaccess(ExtVmAccessCommand),
    /// Plugins: extension crates loaded at run time (add, list, remove)
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// A plugin's actions: `azdock ext <id> <action> --vm NAME -g RG …` (see `azdock ext list`)
    #[command(external_subcommand)]
    External(Vec<String>),
    /// Remove an extension from a VM
    Remove {
        #[command(flatten)]
        on: ExtOn,
        /// Extension instance name (or give extension ids with --ids)
        #[arg(short = 'n', long)]
        name: Option<String>,
        /// Return once Azure accepted the request
        #[arg(long)]
        no_wait: bool,
    },
}

/// The VMs an extension command works on: `--vm` and `-g`, or `--ids`.
#[derive(Debug, Args)]
pub struct ExtShowArgs {
    /// An extension id from `azdock ext list`, to show its manifest
    #[arg(conflicts_with_all = ["vm", "resource_group", "ids", "name"])]
    pub id: Option<String>,
    /// VM name
    #[arg(long, required_unless_present_any = ["ids", "id"])]
    pub vm: Option<String>,
    /// Resource group
    #[arg(short = 'g', long, required_unless_present_any = ["ids", "id"])]
    pub resource_group: Option<String>,
    /// One or more extension (or VM) resource ids, instead of --vm and -g
    #[arg(long, num_args = 1.., value_name = "ID", conflicts_with_all = ["vm", "resource_group"])]
    pub ids: Vec<String>,
    /// How many VMs to work on at once with --ids
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_parallel: u16,
    /// Extension instance name (or give extension ids with --ids)
    #[arg(short = 'n', long)]
    pub name: Option<String>,
}

impl ExtShowArgs {
    /// The VM selection, as the other commands on installed extensions take it.
    pub fn on(&self) -> ExtOn {
        ExtOn {
            vm: self.vm.clone(),
            resource_group: self.resource_group.clone(),
            ids: self.ids.clone(),
            max_parallel: self.max_parallel,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExtOn {
    /// VM name
    #[arg(long, required_unless_present = "ids")]
    pub vm: Option<String>,
    /// Resource group
    #[arg(short = 'g', long, required_unless_present = "ids")]
    pub resource_group: Option<String>,
    /// One or more VM resource ids (or extension ids for show and remove), instead of --vm and -g
    #[arg(long, num_args = 1.., value_name = "ID", conflicts_with_all = ["vm", "resource_group"])]
    pub ids: Vec<String>,
    /// How many VMs to work on at once with --ids
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_parallel: u16,
}

#[derive(Debug, Args)]
pub struct ExtSetArgs {
    #[command(flatten)]
    pub on: ExtOn,
    /// Handler publisher, e.g. Microsoft.OSTCExtensions
    #[arg(long)]
    pub publisher: String,
    /// Handler type, e.g. VMAccessForLinux
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: String,
    /// Instance name [default: the existing instance of this handler, else the type]
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Handler version (trimmed to major.minor) [default: the latest]
    #[arg(long)]
    pub version: Option<String>,
    /// Public settings: JSON, or @FILE
    #[arg(long, value_name = "JSON|@FILE")]
    pub settings: Option<String>,
    /// Protected settings (encrypted by Azure, never shown): JSON, or @FILE
    #[arg(long, value_name = "JSON|@FILE")]
    pub protected_settings: Option<String>,
    /// Run the handler again even when the settings did not change
    #[arg(long)]
    pub force_update: bool,
    /// Do not let Azure move to newer minor versions
    #[arg(long)]
    pub no_auto_upgrade: bool,
    /// Return once Azure accepted the request
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Start the local cloud in the background (or report the running one)
    Up(LocalRunArgs),
    /// Stop the local cloud, keeping its state
    Down,
    /// Show whether the local cloud runs, its endpoint, and what it can run here
    Status,
    /// Delete every resource in the local cloud (keeps its CA and credentials)
    Reset {
        /// Do not ask for confirmation
        #[arg(short, long)]
        yes: bool,
    },
    /// Print what points another tool at the local cloud (starting it): `eval "$(azdock local env)"`
    Env {
        /// Which tool: Azure's SDKs (environment variables) or az (its own config dir, the cloud
        /// registered and signed in)
        #[arg(long = "for", value_enum, default_value_t = LocalTool::Sdk)]
        tool: LocalTool,
    },
    /// Approve a person's sign-in code (what `azdock login` against the local cloud prints), as
    /// the local cloud's owner: the local cloud's stand-in for Entra's sign-in page
    Approve {
        /// The code, e.g. BCDF-GHJK
        code: String,
        /// Decline the sign-in instead
        #[arg(long)]
        decline: bool,
    },
    /// Print the local cloud's log
    Logs {
        /// How many lines from the end
        #[arg(long, default_value_t = 200)]
        tail: usize,
    },
    /// Run the local cloud in the foreground (what `up` starts)
    #[command(hide = true)]
    Serve(LocalRunArgs),
}

/// A tool `azdock local env` points at the local cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LocalTool {
    Sdk,
    Az,
}

impl Command {
    /// The command's words when it deletes, resets, removes, rotates, uninstalls or stops
    /// something: what azdock refuses to run on a local cloud nobody chose.
    pub(crate) fn destructive(&self) -> Option<&'static str> {
        match self {
            Self::Vm(Lazy(VmCommand::Delete { .. })) => Some("vm delete"),
            Self::Vm(Lazy(VmCommand::Stop(_))) => Some("vm stop"),
            Self::Vm(Lazy(VmCommand::Deallocate(_))) => Some("vm deallocate"),
            Self::Ext(Lazy(ExtCommand::Remove { .. })) => Some("ext remove"),
            Self::Ext(Lazy(ExtCommand::Docker(ExtDockerCommand::Uninstall(_)))) => Some("ext docker uninstall"),
            Self::Ext(Lazy(ExtCommand::Docker(ExtDockerCommand::RotateCerts(_)))) => Some("ext docker rotate-certs"),
            Self::Ext(Lazy(ExtCommand::Vmaccess(
                ExtVmAccessCommand::ResetPassword { .. }
                | ExtVmAccessCommand::ResetSsh { .. }
                | ExtVmAccessCommand::ResetRdp { .. }
                | ExtVmAccessCommand::RemoveUser { .. }
                | ExtVmAccessCommand::SetSshKey { .. }
                | ExtVmAccessCommand::RestoreSshBackup { .. }
                | ExtVmAccessCommand::RepairDisk { .. },
            ))) => Some("ext vmaccess"),
            _ => None,
        }
    }
}

/// How the local cloud runs; `up` passes the same flags to `serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct LocalRunArgs {
    /// Port on 127.0.0.1 [default: any free port]
    #[arg(long)]
    pub port: Option<u16>,
    /// Finish every long-running operation at once instead of taking Azure's time
    #[arg(long)]
    pub instant: bool,
    /// Turn off ARM's request throttling (for load tests of your own)
    #[arg(long)]
    pub no_throttle: bool,
    /// Fixed operation times in milliseconds, e.g. network=2000,vm-create=8000 (keys: network,
    /// vm-create, vm-action, extension, delete, group-delete)
    #[arg(long, value_name = "KEY=MS,…")]
    pub durations: Option<String>,
    /// Fault rules to inject from the start: JSON `{"seed": N, "rules": [...]}`, the body of
    /// `PUT /_emulator/faults`
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
    /// First-boot mode, as on Azure's Ubuntu images: each VM's package manager holds its lock for
    /// SECS (cloud-init and unattended-upgrades) and its first `apt-get update` cannot reach the
    /// mirror
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub first_boot_lock: Option<u64>,
    /// Append every ARM request and response body to a file in DIR (for checking traffic
    /// against Azure's specifications) [default: $AZDOCK_LOCAL_RECORD]
    #[arg(long, value_name = "DIR", hide = true)]
    pub record: Option<PathBuf>,
}

// Each flag is one of az's, as az spells it.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("how").args(["service_principal", "use_az_cli", "identity", "use_device_code"])))]
pub struct LoginArgs {
    /// Sign in as a service principal, with a client secret or a certificate
    #[arg(long, requires_all = ["client_id", "tenant"])]
    pub service_principal: bool,
    /// Use the Azure CLI's sign-in (`az login`) for every request
    #[arg(long, conflicts_with_all = ["service_principal", "client_id", "password", "password_stdin"])]
    pub use_az_cli: bool,
    /// Sign in as a person with Entra's device-code flow (the default without other flags):
    /// a code to enter at a URL printed on stderr, on any device
    #[arg(long, conflicts_with_all = ["service_principal", "use_az_cli", "identity", "client_id", "password", "password_stdin", "certificate"])]
    pub use_device_code: bool,
    /// Use this machine's managed identity (-u for a user-assigned identity's client id)
    #[arg(long, conflicts_with_all = ["service_principal", "use_az_cli", "password", "password_stdin", "certificate", "tenant"])]
    pub identity: bool,
    /// Application (client) id
    #[arg(short = 'u', long = "username", value_name = "CLIENT_ID")]
    pub client_id: Option<String>,
    /// Directory (tenant) id
    #[arg(short = 't', long)]
    pub tenant: Option<String>,
    /// Read the client secret (or the PFX password) from standard input
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    /// The client secret or PFX password (visible to other users of this machine; prefer
    /// --password-stdin)
    #[arg(short = 'p', long, allow_hyphen_values = true)]
    pub password: Option<String>,
    /// Sign in with a certificate instead of a secret: a PEM file with the certificate and its
    /// unencrypted PKCS#8 RSA key, or a PFX (kept where it is; azdock stores the path)
    #[arg(long, value_name = "PEM|PFX", conflicts_with = "use_az_cli")]
    pub certificate: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CloudCommand {
    /// List the clouds: built-in, local and registered
    List,
    /// Show a cloud's endpoints [default: the active cloud]
    Show {
        /// Cloud name
        #[arg(short = 'n', long)]
        name: Option<String>,
    },
    /// Make a cloud the default (`defaults.cloud` in the config file)
    Set {
        /// Cloud name
        #[arg(short = 'n', long)]
        name: String,
    },
    /// Register a cloud by its Resource Manager endpoint; the rest is read from its metadata
    Register {
        /// A name for the cloud
        #[arg(short = 'n', long)]
        name: String,
        /// The cloud's Resource Manager URL, e.g. https://management.local.azurestack.external
        #[arg(long, value_name = "URL")]
        endpoint_resource_manager: String,
        /// CA certificates (PEM) that sign the cloud's endpoints, trusted besides the system's
        #[arg(long, value_name = "FILE")]
        ca_bundle: Option<PathBuf>,
    },
    /// Forget a registered cloud
    Unregister {
        /// Cloud name
        #[arg(short = 'n', long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List the subscriptions the login can use
    List,
    /// Show the subscription commands use
    Show,
    /// List the locations (regions) of the subscription, by name and display name
    ListLocations,
    /// Make a subscription the default (`defaults.subscription` in the config file)
    Set {
        /// Subscription id
        #[arg(short = 's', long)]
        subscription: String,
    },
}

/// Which VMs: `-g` with `-n`, or `--ids`.
#[derive(Debug, Args)]
pub struct VmRef {
    /// Resource group
    #[arg(short = 'g', long, required_unless_present = "ids")]
    pub resource_group: Option<String>,
    /// VM name
    #[arg(short = 'n', long, required_unless_present = "ids")]
    pub name: Option<String>,
    /// One or more VM resource ids, instead of -g and -n
    #[arg(long, num_args = 1.., value_name = "ID", conflicts_with_all = ["resource_group", "name"])]
    pub ids: Vec<String>,
    /// How many VMs to work on at once with --ids
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_parallel: u16,
}

/// Which VMs an action applies to, and whether to wait for it.
#[derive(Debug, Args)]
pub struct VmTarget {
    #[command(flatten)]
    pub vm: VmRef,
    /// Return once Azure accepted the request, without waiting for it to finish
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// List virtual machines in the subscription, or in one resource group
    List {
        /// Resource group
        #[arg(short = 'g', long)]
        resource_group: Option<String>,
    },
    /// Show one virtual machine
    Show {
        #[command(flatten)]
        vm: VmRef,
        /// Add power state, public and private IPs and FQDNs (more requests)
        #[arg(short = 'd', long)]
        show_details: bool,
    },
    /// Start a stopped or deallocated VM
    Start(VmTarget),
    /// Power off a VM (it keeps its resources and is still billed)
    Stop(VmTarget),
    /// Stop a VM and release its compute resources
    Deallocate(VmTarget),
    /// Restart a running VM
    Restart(VmTarget),
    /// Delete a VM (its NIC, disks and IPs stay)
    Delete {
        #[command(flatten)]
        target: VmTarget,
        /// Do not ask for confirmation
        #[arg(short, long)]
        yes: bool,
    },
    /// Create a Linux VM with its network, then apply extensions (`--ext docker`)
    Create(Box<VmCreateArgs>),
    /// Find VM images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Docker hosts: VMs running Docker with mutual TLS
    #[command(subcommand)]
    Docker(VmDockerCommand),
}

#[derive(Debug, Subcommand)]
pub enum VmDockerCommand {
    /// Create a VM that is a Docker host with mutual TLS (the classic `azure vm docker create`)
    Create(Box<DockerCreateArgs>),
}

/// What every VM create takes beside its name, image and admin: where it goes, how big, how
/// the admin signs in, what the NSG admits, and what happens on failure. Each flag is one of
/// the classic CLI's or az's.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Args)]
pub struct NewVmArgs {
    /// Resource group [default: one named after the VM]
    #[arg(short = 'g', long)]
    pub resource_group: Option<String>,
    /// Location [default: the resource group's, else westeurope]
    #[arg(short = 'l', long)]
    pub location: Option<String>,
    /// VM size
    #[arg(long, default_value = "Standard_B2s")]
    pub size: String,
    /// Open SSH in the network security group, on PORT (22 when given without one)
    #[arg(short = 'e', long = "ssh", value_name = "PORT", num_args = 0..=1, default_missing_value = "22")]
    pub ssh: Option<u16>,
    /// Source address or CIDR admitted to the opened ports (repeatable) [default: any]
    #[arg(long = "allow-from", value_name = "CIDR")]
    pub allow_from: Vec<String>,
    /// SSH public key: a file, or the key itself
    #[arg(long, value_name = "FILE|KEY")]
    pub ssh_key_value: Option<String>,
    /// Make ~/.ssh/id_ed25519 when there is no key yet, and use it
    #[arg(long, conflicts_with = "ssh_key_value")]
    pub generate_ssh_keys: bool,
    /// Read the admin password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// Return once the VM and the extensions were accepted, without waiting for them
    #[arg(long)]
    pub no_wait: bool,
    /// Keep what this run created when a step fails
    #[arg(long)]
    pub keep_on_failure: bool,
}

#[derive(Debug, Args)]
pub struct VmCreateArgs {
    /// VM name
    pub name: String,
    /// Image: an alias (Ubuntu2404), a URN publisher:offer:sku:version, or an image id
    #[arg(default_value = "Ubuntu2404")]
    pub image: String,
    /// Admin user name
    #[arg(long, default_value = "azureuser")]
    pub admin_username: String,
    /// Admin password (visible to other users of this machine; prefer --password-stdin or SSH keys)
    #[arg(long, conflicts_with = "password_stdin")]
    pub admin_password: Option<String>,
    /// Public IP DNS label: <LABEL>.<location>.cloudapp.azure.com
    #[arg(long)]
    pub public_ip_address_dns_name: Option<String>,
    #[command(flatten)]
    pub vm: NewVmArgs,
    /// An extension to apply once the VM exists, with its default arguments: ID or ID:ACTION
    /// [action: install] (repeatable, applied in order; see `azdock ext list`)
    #[arg(long = "ext", value_name = "ID[:ACTION]")]
    pub ext: Vec<String>,
    /// Let an extension's plan take a handler instance another extension holds on the VM
    #[arg(long)]
    pub take_over: bool,
}

#[derive(Debug, Args)]
pub struct DockerCreateArgs {
    /// VM name; also its DNS label, <NAME>.<location>.cloudapp.azure.com
    pub name: String,
    /// Image: an alias (Ubuntu2404), a URN publisher:offer:sku:version, or an image id
    #[arg(default_value = "Ubuntu2404")]
    pub image: String,
    /// Admin user name
    #[arg(default_value = "azureuser")]
    pub user: String,
    /// Admin password (visible to other users of this machine; prefer --password-stdin or SSH keys)
    #[arg(conflicts_with = "password_stdin")]
    pub password: Option<String>,
    #[command(flatten)]
    pub vm: NewVmArgs,
    /// The port dockerd listens on with TLS (4243 reproduces the 2014 article)
    #[arg(short = 'p', long, default_value_t = 2376, value_parser = clap::value_parser!(u16).range(1..))]
    pub docker_port: u16,
    /// Certificate directory [default: the config file's, else ~/.docker]
    #[arg(short = 'C', long, env = "AZDOCK_DOCKER_CERT_DIR", value_name = "DIR")]
    pub docker_cert_dir: Option<PathBuf>,
    /// How Docker gets onto the VM: customscript, cloud-init or legacy
    #[arg(long, default_value = "customscript")]
    pub handler: String,
    /// Extra dockerd flag, e.g. --docker-option=--log-level=warn (repeatable)
    #[arg(long = "docker-option", value_name = "FLAG", allow_hyphen_values = true)]
    pub docker_options: Vec<String>,
    /// Extra name or IP the server certificate must carry, such as your own CNAME (repeatable)
    #[arg(long = "cert-san", value_name = "NAME|IP")]
    pub cert_sans: Vec<String>,
    /// tls: dockerd on a TCP port with mutual TLS; ssh: dockerd on its socket only, reached
    /// over SSH (the NSG opens only sshd's port)
    #[arg(long, value_name = "tls|ssh", default_value = "tls")]
    pub transport: String,
    /// Do not ask before opening the Docker port to any address
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// The VM a Docker action works on, and the client side it uses.
#[derive(Debug, Args)]
pub struct ExtDockerTarget {
    #[command(flatten)]
    pub on: ExtOn,
    /// The port dockerd listens on [default: what azdock set up, else 2376]
    #[arg(short = 'p', long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Certificate directory [default: the config file's, else ~/.docker]
    #[arg(short = 'C', long, env = "AZDOCK_DOCKER_CERT_DIR", value_name = "DIR")]
    pub docker_cert_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExtDockerInstallArgs {
    #[command(flatten)]
    pub target: ExtDockerTarget,
    /// customscript or legacy
    #[arg(long, default_value = "customscript")]
    pub handler: String,
    /// Extra dockerd flag, e.g. --docker-option=--log-level=warn (repeatable)
    #[arg(long = "docker-option", value_name = "FLAG", allow_hyphen_values = true)]
    pub docker_options: Vec<String>,
    /// Source address or CIDR admitted to the Docker port (repeatable) [default: any]
    #[arg(long = "allow-from", value_name = "CIDR")]
    pub allow_from: Vec<String>,
    /// Extra name or IP the server certificate must carry (repeatable)
    #[arg(long = "cert-san", value_name = "NAME|IP")]
    pub cert_sans: Vec<String>,
    /// tls: dockerd on a TCP port with mutual TLS; ssh: dockerd on its socket only, reached
    /// over SSH [default: what azdock set up on the VM, else tls]
    #[arg(long, value_name = "tls|ssh")]
    pub transport: Option<String>,
    /// sshd's port on the VM, for --transport ssh [default: what azdock set up, else 22]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ssh_port: Option<u16>,
    /// Return once Azure accepted the extension, without waiting for Docker
    #[arg(long)]
    pub no_wait: bool,
    /// Take the CustomScript handler over when another extension holds it on the VM
    #[arg(long)]
    pub take_over: bool,
}

#[derive(Debug, Args)]
pub struct ExtDockerRotateArgs {
    /// VM name
    #[arg(long, required_unless_present_any = ["ids", "finish"])]
    pub vm: Option<String>,
    /// Resource group
    #[arg(short = 'g', long, required_unless_present_any = ["ids", "finish"])]
    pub resource_group: Option<String>,
    /// One or more VM resource ids, instead of --vm and -g
    #[arg(long, num_args = 1.., value_name = "ID", conflicts_with_all = ["vm", "resource_group"])]
    pub ids: Vec<String>,
    /// How many hosts to push certificates to at once
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_parallel: u16,
    /// The port dockerd listens on [default: what azdock set up, else 2376]
    #[arg(short = 'p', long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Certificate directory [default: the host's recorded one, else the config file's, else ~/.docker]
    #[arg(short = 'C', long, env = "AZDOCK_DOCKER_CERT_DIR", value_name = "DIR")]
    pub docker_cert_dir: Option<PathBuf>,
    /// A new CA and client certificate too, pushed to every Docker host of that directory
    #[arg(long)]
    pub ca: bool,
    /// Give the current CA to every host a CA rotation has not reached yet (no VM to name)
    #[arg(long, conflicts_with_all = ["ca", "vm", "resource_group", "ids", "port"])]
    pub finish: bool,
    /// Confirm a CA rotation without a prompt
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum ExtDockerCommand {
    /// Install Docker with TLS on an existing Linux VM, open the port, wait until it answers
    Install(ExtDockerInstallArgs),
    /// The handler's state, whether the daemon answers, and the certificate's expiry
    Status(ExtDockerTarget),
    /// TLS handshake and Docker's /_ping and /version with your client certificate
    Verify(ExtDockerTarget),
    /// Stop dockerd listening on TCP, remove its certificates from the VM, close the port
    Uninstall(ExtDockerTarget),
    /// A new server certificate pushed to the VM (--ca: a new CA for every host)
    RotateCerts(ExtDockerRotateArgs),
}

/// The VMs a VMAccess action works on: one (`--vm` and `-g`), many (`--ids`), or every VM of a
/// resource group (`-g RG --all`).
#[derive(Debug, Args)]
pub struct FleetOn {
    /// VM name
    #[arg(long, conflicts_with_all = ["ids", "all"])]
    pub vm: Option<String>,
    /// Resource group
    #[arg(short = 'g', long, conflicts_with = "ids")]
    pub resource_group: Option<String>,
    /// One or more VM resource ids
    #[arg(long, num_args = 1.., value_name = "ID")]
    pub ids: Vec<String>,
    /// Every VM of the resource group, each with its own OS
    #[arg(long, requires = "resource_group")]
    pub all: bool,
    /// How many VMs at once
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_parallel: u16,
}

#[derive(Debug, Subcommand)]
pub enum ExtVmAccessCommand {
    /// Set a user's password (on Linux the user is created, with sudo, when missing)
    ResetPassword {
        #[command(flatten)]
        on: FleetOn,
        /// The user name
        #[arg(short = 'u', long)]
        username: String,
        /// The new password (visible to other users of this machine; prefer --password-stdin)
        #[arg(long, allow_hyphen_values = true)]
        password: Option<String>,
        /// Read the new password from standard input
        #[arg(long, conflicts_with = "password")]
        password_stdin: bool,
        /// Account expiry (Linux)
        #[arg(long, value_name = "YYYY-MM-DD")]
        expiration: Option<String>,
    },
    /// Add an SSH public key to a user's authorized_keys (Linux)
    SetSshKey {
        #[command(flatten)]
        on: FleetOn,
        /// The user name
        #[arg(short = 'u', long)]
        username: String,
        /// The public key, or a file holding it (OpenSSH or SSH2 format)
        #[arg(long, value_name = "FILE|KEY")]
        ssh_key_value: String,
        /// Replace the user's keys instead of adding
        #[arg(long)]
        replace: bool,
    },
    /// Restore the distribution's sshd configuration and port 22 (Linux)
    ResetSsh {
        #[command(flatten)]
        on: FleetOn,
    },
    /// Restore the sshd configuration reset-ssh saved (Linux)
    RestoreSshBackup {
        #[command(flatten)]
        on: FleetOn,
    },
    /// Delete a user (Linux)
    RemoveUser {
        #[command(flatten)]
        on: FleetOn,
        /// The user name
        #[arg(short = 'u', long)]
        username: String,
    },
    /// Reset the Remote Desktop configuration (Windows)
    ResetRdp {
        #[command(flatten)]
        on: FleetOn,
    },
    /// Check the VM's disks (Linux)
    CheckDisk {
        #[command(flatten)]
        on: FleetOn,
    },
    /// Repair a disk (Linux)
    RepairDisk {
        #[command(flatten)]
        on: FleetOn,
        /// The disk to repair
        #[arg(long)]
        disk_name: String,
    },
}

impl ExtVmAccessCommand {
    pub(crate) fn on(&self) -> &FleetOn {
        match self {
            Self::ResetPassword { on, .. }
            | Self::SetSshKey { on, .. }
            | Self::ResetSsh { on }
            | Self::RestoreSshBackup { on }
            | Self::RemoveUser { on, .. }
            | Self::ResetRdp { on }
            | Self::CheckDisk { on }
            | Self::RepairDisk { on, .. } => on,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check a plugin, copy it into the plugin directory (or link it) and record its SHA-256
    Add {
        /// The plugin's shared library (`lib<name>.so`)
        path: PathBuf,
        /// Link to the file instead of copying it (it must then stay where it is, unchanged)
        #[arg(long)]
        link: bool,
        /// Replace the plugin already added with this id, even when it came from another file
        /// (a rebuild from the same file replaces it without asking)
        #[arg(long)]
        force: bool,
    },
    /// The plugins found, with their id, version, ABI, path, hash and status
    List,
    /// Remove a plugin from the plugin directory
    Remove {
        /// The plugin's extension id
        id: String,
    },
}

/// The shells `docker env` writes for, as docker-machine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Cmd,
}

impl Shell {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Bash => "bash",
            Self::Zsh => "zsh",
            Self::Fish => "fish",
            Self::Powershell => "powershell",
            Self::Cmd => "cmd",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DockerCommand {
    /// Print the environment that points the docker CLI at a host (docker-machine style)
    Env {
        /// Docker host name (the VM name)
        name: String,
        /// The shell to write for
        #[arg(long, value_enum, default_value = "bash")]
        shell: Shell,
        /// Print the commands that undo it
        #[arg(long)]
        unset: bool,
    },
    /// Create or update a docker context for a host
    Context {
        /// Docker host name (the VM name)
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// The image aliases every command accepts (Ubuntu2404, Debian11, …)
    Aliases,
    /// Look an image up: an alias, a URN (`latest` resolved) or an image resource id
    Show {
        /// Alias, publisher:offer:sku:version, or resource id
        #[arg(value_name = "IMAGE")]
        image: String,
        /// Location whose catalogue to read
        #[arg(short = 'l', long, default_value = "westeurope")]
        location: String,
    },
    /// List images: the aliases, or with `--all` every version in the catalogue
    List {
        /// Query the location's catalogue instead of listing the aliases
        #[arg(long)]
        all: bool,
        /// Publisher (required with --all), e.g. Canonical
        #[arg(short = 'p', long)]
        publisher: Option<String>,
        /// Offer, or part of it
        #[arg(short = 'f', long)]
        offer: Option<String>,
        /// Sku, or part of it
        #[arg(short = 's', long)]
        sku: Option<String>,
        /// Location whose catalogue to read
        #[arg(short = 'l', long, default_value = "westeurope")]
        location: String,
    },
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over the whole tree (duplicate flags, bad defaults, …).
    #[test]
    fn the_command_tree_is_consistent() {
        crate::lazy::whole_tree().debug_assert();
    }

    /// The commands refused on a local cloud nobody chose are known by their words.
    #[test]
    fn destructive_commands_are_named() {
        use clap::Parser as _;
        let cases: [(&[&str], Option<&str>); 10] = [
            (&["vm", "delete", "-g", "rg", "-n", "vm1"], Some("vm delete")),
            (&["vm", "stop", "-g", "rg", "-n", "vm1"], Some("vm stop")),
            (&["vm", "deallocate", "-g", "rg", "-n", "vm1"], Some("vm deallocate")),
            (&["ext", "remove", "--vm", "vm1", "-g", "rg", "--name", "x"], Some("ext remove")),
            (&["ext", "docker", "uninstall", "--vm", "vm1", "-g", "rg"], Some("ext docker uninstall")),
            (&["ext", "docker", "rotate-certs", "--vm", "vm1", "-g", "rg"], Some("ext docker rotate-certs")),
            (&["ext", "vmaccess", "remove-user", "--vm", "vm1", "-g", "rg", "--username", "u"], Some("ext vmaccess")),
            (&["vm", "start", "-g", "rg", "-n", "vm1"], None),
            (&["vm", "list"], None),
            (&["certs", "init"], None),
        ];
        for (line, words) in cases {
            let cli = super::Cli::try_parse_from(std::iter::once("azdock").chain(line.iter().copied()))
                .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(cli.command.destructive(), words, "{line:?}");
        }
    }
}
