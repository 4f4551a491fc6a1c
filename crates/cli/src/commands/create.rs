//! `azdock vm create` and `azdock vm docker create`: every argument is checked first, then the
//! host creates the VM with its network (reusing what exists under the same names) and applies
//! the extensions' plans; a failure deletes what the run created (never what was there before)
//! unless `--keep-on-failure`. `vm docker create` is that flow with the Docker extension: the
//! classic `azure vm docker create` on today's ARM.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use azdock_azure_sm::images::ImageSpec;
use azdock_azure_sm::models::OsType;
use azdock_azure_sm::requests::AdminLogin;
use azdock_azure_sm::rules;
use azdock_certs::{CertStore, ServerRequest};
use azdock_core::{ArgValue, Args, PlanRequest, Protocol, Secret, Transport, VmFacts};
use azdock_ext_docker::{Delivery, Handler};
use azdock_host::contract::Step;
use azdock_host::create::{CreatedVm, Inbound, Ledger, NewVm};
use azdock_host::docker::{self as hosts, DockerHost, Extras};
use azdock_host::sshkey::KeyOrigin;
use azdock_host::{Host, Invocation, VmAddr, Waits};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{Ctx, docker, interactive};
use crate::cli::{DockerCreateArgs, GlobalArgs, NewVmArgs, VmCreateArgs};
use crate::config::Config;
use crate::error::Usage;
use crate::session;

/// The NSG rule for `--ssh`.
const SSH_RULE: &str = "azdock-ssh";

fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage::new(message).into()
}

/// A VM create's own arguments, checked.
struct Checked {
    name: String,
    group: String,
    location: Option<String>,
    size: String,
    image: ImageSpec,
    user: String,
    ssh_port: Option<u16>,
    allow_from: Vec<String>,
    keep_on_failure: bool,
    no_wait: bool,
    /// The private key of the admin's SSH key, when azdock knows where it is.
    identity: Option<PathBuf>,
}

impl Checked {
    /// The VM to create in `subscription`, born with these inbound rules.
    /// The sign-in moves into the VM's spec (a password is not copied).
    fn new_vm(
        &self,
        login: AdminLogin,
        subscription: &str,
        mut inbound: Vec<Inbound>,
        dns_label: Option<String>,
    ) -> NewVm {
        inbound.extend(self.ssh_port.map(|port| Inbound { rule: SSH_RULE.into(), port, protocol: Protocol::Tcp }));
        NewVm {
            addr: VmAddr::new(subscription, &self.group, &self.name),
            location: self.location.clone(),
            size: self.size.clone(),
            image: self.image.clone(),
            admin_user: self.user.clone(),
            login,
            dns_label,
            inbound,
            sources: self.allow_from.clone(),
        }
    }
}

fn read_password_stdin() -> anyhow::Result<Secret<String>> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(usage("`--password-stdin` read an empty password"));
    }
    Ok(Secret::new(password))
}

/// The private key beside a public key file (`id_ed25519` for `id_ed25519.pub`), if there.
fn private_beside(public: &Path) -> Option<PathBuf> {
    let private = public.with_extension("");
    (public.extension().is_some_and(|e| e == "pub") && private.is_file()).then_some(private)
}

/// The SSH key: `--ssh-key-value`, `--generate-ssh-keys`, else `~/.ssh/id_ed25519.pub` or
/// `~/.ssh/id_rsa.pub` as az does; with its private key's path when that is known.
fn ssh_key(ctx: &Ctx, args: &NewVmArgs) -> anyhow::Result<Option<(String, Option<PathBuf>)>> {
    let home = std::env::home_dir().filter(|h| !h.as_os_str().is_empty());
    if let Some(value) = &args.ssh_key_value {
        let (text, private) = if Path::new(value).is_file() {
            let text = std::fs::read_to_string(value).map_err(|e| usage(format!("cannot read `{value}`: {e}")))?;
            (text, private_beside(Path::new(value)))
        } else {
            (value.clone(), None)
        };
        let line = rules::ssh_public_key(&text).map_err(|e| usage(format!("--ssh-key-value: {e}")))?;
        return Ok(Some((line, private)));
    }
    let ssh_dir = home.map(|h| h.join(".ssh"));
    if args.generate_ssh_keys {
        let dir = ssh_dir.context("cannot find the home directory for ~/.ssh; pass --ssh-key-value")?;
        let (line, path, origin) = azdock_host::sshkey::generate_or_reuse(&dir)?;
        match origin {
            KeyOrigin::Made => ctx.info(&format!("made a new SSH key pair: {}", path.display())),
            KeyOrigin::Reused => ctx.info(&format!("using the SSH key {}", path.display())),
            // az says so too when it writes the public half of a lone private key.
            KeyOrigin::PublicRestored => ctx.warn(&format!(
                "the private key beside `{}` had no public key; wrote it from the private key",
                path.display()
            )),
        }
        return Ok(Some((line, private_beside(&path))));
    }
    for name in ["id_ed25519.pub", "id_rsa.pub"] {
        if let Some(path) = ssh_dir.as_ref().map(|d| d.join(name)).filter(|p| p.is_file()) {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
            let line = rules::ssh_public_key(&text).map_err(|e| usage(format!("`{}`: {e}", path.display())))?;
            return Ok(Some((line, private_beside(&path))));
        }
    }
    Ok(None)
}

/// Checks what every VM create takes, before any request.
fn check_vm(
    ctx: &Ctx,
    name: &str,
    image_text: &str,
    user: &str,
    password: Option<&String>,
    args: &NewVmArgs,
) -> anyhow::Result<(Checked, AdminLogin)> {
    let image = azdock_host::create::check_names(
        name,
        user,
        image_text,
        args.resource_group.as_deref(),
        args.location.as_deref(),
        &args.size,
    )?;
    if let Some(Ok(classic)) = azdock_azure_sm::images::classic(image_text) {
        ctx.warn(&classic.note());
    }
    for s in &args.allow_from {
        azdock_ext_docker::check_source(s).map_err(usage)?;
    }
    if args.ssh == Some(0) {
        return Err(usage("--ssh needs a port from 1 to 65535"));
    }
    let mut identity = None;
    let login = match (password, args.password_stdin) {
        (Some(p), _) => {
            ctx.warn("a password on the command line is visible to other users of this machine and stays in shell history; prefer --password-stdin or an SSH key");
            AdminLogin::Password(Secret::new(p.clone()))
        }
        (None, true) => AdminLogin::Password(read_password_stdin()?),
        (None, false) => match ssh_key(ctx, args)? {
            Some((key, private)) => {
                identity = private;
                AdminLogin::Key(key)
            }
            None => {
                return Err(usage(
                    "no way to sign in to the VM: give --ssh-key-value, --generate-ssh-keys, a password (or --password-stdin), or have ~/.ssh/id_ed25519.pub",
                ));
            }
        },
    };
    if let AdminLogin::Password(p) = &login {
        rules::check_password(p.expose(), &OsType::Linux, 12).map_err(|e| usage(format!("admin password: {e}")))?;
    }
    let checked = Checked {
        name: name.to_owned(),
        group: args.resource_group.clone().unwrap_or_else(|| name.to_owned()),
        location: args.location.clone(),
        size: args.size.clone(),
        image,
        user: user.to_owned(),
        ssh_port: args.ssh,
        allow_from: args.allow_from.clone(),
        keep_on_failure: args.keep_on_failure,
        no_wait: args.no_wait,
        identity,
    };
    Ok((checked, login))
}

/// The result every create reports beside its own: what it created, what it reused, and the
/// image version `latest` stood for.
fn ledger_report(report: &mut Value, checked: &Checked, created: &CreatedVm, ledger: &Ledger) {
    let names = |list: Vec<azdock_host::create::Touched>| list.iter().map(ToString::to_string).collect::<Vec<_>>();
    report["created"] = json!(names(ledger.made()));
    report["reused"] = json!(names(ledger.found()));
    report["image"] = json!(created.image.exact_version.as_ref().map(|v| format!("{}:{v}", image_name(checked))));
}

/// The image as the user would write it, for messages.
fn image_name(checked: &Checked) -> String {
    match &checked.image {
        ImageSpec::Urn { publisher, offer, sku, .. } => format!("{publisher}:{offer}:{sku}"),
        ImageSpec::Id(id) => azdock_host::short(id),
    }
}

/// The `--ext` words, found in the registry (plugins loaded only when there are some).
fn ext_steps(ctx: &Ctx, words: &[String]) -> anyhow::Result<Vec<Step>> {
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let registry =
        crate::plugins::registry(|path, why| ctx.warn(&format!("plugin `{}` skipped: {why}", path.display())))?;
    Ok(azdock_host::contract::steps(&registry, words, azdock_core::OsType::Linux)?)
}

/// `azdock vm create NAME [IMAGE] … --ext ID[:ACTION]`.
pub(crate) fn run_vm(ctx: &Ctx, global: &GlobalArgs, config: &Config, args: &VmCreateArgs) -> anyhow::Result<()> {
    if let Some(label) = &args.public_ip_address_dns_name {
        rules::check_dns_label(label).map_err(|e| usage(format!("--public-ip-address-dns-name: {e}")))?;
    }
    let steps = ext_steps(ctx, &args.ext)?;
    // Last: it may make an SSH key, which a refused command line must not leave behind.
    let (checked, login) =
        check_vm(ctx, &args.name, &args.image, &args.admin_username, args.admin_password.as_ref(), &args.vm)?;
    let data_dir = crate::config::data_dir()?;
    let dir = docker::cert_dir(None, config)?;
    let value = session::block_on(async {
        let s = session::session(global, config).await?;
        let host = Host { arm: &s.arm, data_dir: &data_dir, events: ctx };
        let spec = checked.new_vm(login, &s.subscription, Vec::new(), args.public_ip_address_dns_name.clone());
        let mint = |request: &PlanRequest| docker::mint(&dir, request);
        let wait = !checked.no_wait;
        let (report, ledger) = host
            .create_then(&spec, None, checked.keep_on_failure, async |created: CreatedVm| {
                let mut applied = Vec::new();
                for step in &steps {
                    let is_docker = step.extension.manifest().id == "docker";
                    let possible = !is_docker || docker::daemon_cannot_run(&created.vm, ctx).is_none();
                    let invocation = Invocation {
                        extension: &*step.extension,
                        action: &step.action,
                        args: &step.args,
                        waits: Waits { operation: wait, endpoints: wait && possible, endpoint_required: true },
                        prepare: is_docker.then_some(&mint as azdock_host::Prepare<'_>),
                        take_over: args.take_over,
                    };
                    let ran = host.run_on(&invocation, created.vm.clone()).await?;
                    if is_docker && step.action == "install" {
                        docker::record_install(ctx, &host, &ran, &dir)?;
                    }
                    let row = ran.row();
                    applied.push(json!({"extension": step.extension.manifest().id, "action": step.action, "status": row["status"]}));
                }
                let facts = &created.vm.facts;
                let report = json!({"name": facts.name, "resourceGroup": facts.resource_group, "location": facts.location,
                    "fqdn": facts.fqdn, "publicIpAddress": facts.public_ips.first().map(ToString::to_string),
                    "powerState": facts.power_state, "extensions": applied});
                anyhow::Ok((report, created))
            })
            .await?;
        let (mut report, created) = report;
        ledger_report(&mut report, &checked, &created, &ledger);
        anyhow::Ok(report)
    })?;
    ctx.print(
        &value,
        &[("Name", "/name"), ("ResourceGroup", "/resourceGroup"), ("PublicIp", "/publicIpAddress"), ("Fqdn", "/fqdn")],
    )
}

/// The Docker create's own arguments, checked.
fn check_docker(args: &DockerCreateArgs) -> anyhow::Result<(Delivery, Transport)> {
    // The classic command used the VM name as the DNS label too.
    rules::check_dns_label(&args.name).map_err(|e| usage(format!("the VM name is also its DNS label: {e}")))?;
    let handler = Delivery::parse(&args.handler).map_err(usage)?;
    let transport = Transport::parse(&args.transport).map_err(usage)?;
    docker::check_transport(transport, handler, args.vm.no_wait)?;
    if transport == Transport::Ssh && (args.password.is_some() || args.vm.password_stdin) {
        return Err(usage(
            "--transport ssh logs in with an SSH key, not a password: give --ssh-key-value or --generate-ssh-keys (or have ~/.ssh/id_ed25519.pub)",
        ));
    }
    for o in &args.docker_options {
        azdock_ext_docker::check_option(o).map_err(usage)?;
    }
    if args.vm.ssh == Some(args.docker_port) {
        return Err(usage(format!(
            "the docker port {} is also the SSH port: choose another --docker-port (2376 is Docker's TLS port)",
            args.docker_port
        )));
    }
    for san in &args.cert_sans {
        let (dns, ips): (Vec<String>, Vec<String>) =
            std::iter::once(san.clone()).partition(|s| s.parse::<std::net::IpAddr>().is_err());
        ServerRequest::new(&args.name, &dns, &ips).map_err(|e| usage(format!("--cert-san: {e}")))?;
    }
    Ok((handler, transport))
}

/// The install arguments of a Docker create.
fn install_args(args: &DockerCreateArgs, delivery: Delivery, cert_dir: &Path, over_ssh: Option<&Path>) -> Args {
    let mut out = Args::new();
    if let Some(identity) = over_ssh {
        out.insert("transport".into(), ArgValue::Text(Transport::Ssh.name().into()));
        out.insert("allow-from".into(), ArgValue::List(args.vm.allow_from.clone()));
        if !identity.as_os_str().is_empty() {
            out.insert("ssh-identity".into(), ArgValue::Text(identity.to_string_lossy().into_owned()));
        }
        // `-e/--ssh PORT` is sshd's port, as in the classic command.
        out.insert("ssh-port".into(), ArgValue::Integer(i64::from(args.vm.ssh.unwrap_or(azdock_ext_docker::SSH_PORT))));
    }
    out.insert("port".into(), ArgValue::Integer(i64::from(args.docker_port)));
    out.insert("handler".into(), ArgValue::Text(delivery.name().into()));
    out.insert("docker-option".into(), ArgValue::List(args.docker_options.clone()));
    // Announced already when open to any address; `*` keeps the plan from saying it again.
    let sources = if args.vm.allow_from.is_empty() { vec!["*".to_owned()] } else { args.vm.allow_from.clone() };
    out.entry("allow-from".into()).or_insert(ArgValue::List(sources));
    out.insert("cert-san".into(), ArgValue::List(args.cert_sans.clone()));
    out.insert("docker-cert-dir".into(), ArgValue::Text(cert_dir.to_string_lossy().into_owned()));
    out
}

/// A Docker port open to any address is asked about on a terminal, and warned of elsewhere.
fn confirm_open_port(ctx: &Ctx, args: &DockerCreateArgs) -> anyhow::Result<()> {
    if args.vm.allow_from.is_empty() {
        if interactive() && !args.yes {
            eprint!(
                "The Docker port {} will admit connections from any address (only holders of your client certificate get in). Continue? [Y/n] ",
                args.docker_port
            );
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if matches!(answer.trim(), "n" | "N" | "no") {
                return Err(usage("cancelled; narrow the port with --allow-from CIDR"));
            }
        } else {
            ctx.warn(azdock_ext_docker::OPEN_TO_ANY_NOTE);
        }
    }
    Ok(())
}

/// The VM is born with the port its Docker clients use open: Docker's, or over SSH sshd's
/// (unless `--ssh` opens that already).
fn born_open(transport: Transport, docker_port: u16, ssh_port: Option<u16>) -> Vec<Inbound> {
    match transport {
        Transport::Tls => {
            vec![Inbound { rule: azdock_ext_docker::RULE_NAME.into(), port: docker_port, protocol: Protocol::Tcp }]
        }
        Transport::Ssh if ssh_port.is_some() => Vec::new(),
        Transport::Ssh => vec![Inbound {
            rule: azdock_ext_docker::SSH_RULE_NAME.into(),
            port: azdock_ext_docker::SSH_PORT,
            protocol: Protocol::Tcp,
        }],
    }
}

/// `azdock vm docker create`: a VM create with the Docker extension.
pub(crate) fn run_docker(
    ctx: &Ctx,
    global: &GlobalArgs,
    config: &Config,
    args: &DockerCreateArgs,
) -> anyhow::Result<()> {
    // Docker's own arguments first: checking the VM's may make an SSH key, which a refused
    // command line must not leave behind.
    let (delivery, transport) = check_docker(args)?;
    let (checked, login) = check_vm(ctx, &args.name, &args.image, &args.user, args.password.as_ref(), &args.vm)?;
    let cert_dir = docker::cert_dir(args.docker_cert_dir.as_deref(), config)?;
    let over_ssh = transport == Transport::Ssh;
    if !over_ssh {
        confirm_open_port(ctx, args)?;
    }
    if delivery == Delivery::Handler(Handler::Legacy) {
        ctx.warn(azdock_ext_docker::LEGACY_WARNING);
    }
    // The CA and client first: a passphrase problem stops the run before Azure is touched. A
    // host reached over SSH has no certificates.
    let store = CertStore::new(&cert_dir);
    if !over_ssh {
        super::certs::with_passphrases(|p| store.init(p))?;
    }
    let identity = checked.identity.clone().unwrap_or_default();
    let install = install_args(args, delivery, &cert_dir, over_ssh.then_some(identity.as_path()));
    let data_dir = crate::config::data_dir()?;
    let extras = Extras { options: &args.docker_options, allow_from: &args.vm.allow_from, cert_sans: &args.cert_sans };
    let docker_ext = crate::plugins::builtin("docker")?;
    let result = session::block_on(async {
        let s = session::session(global, config).await?;
        let host = Host { arm: &s.arm, data_dir: &data_dir, events: ctx };
        let rules = born_open(transport, args.docker_port, checked.ssh_port);
        let spec = checked.new_vm(login, &s.subscription, rules, Some(args.name.clone()));
        // The certificate directory keeps a server certificate per VM, by its identity.
        let owner = azdock_core::vm_identity(&s.arm.cloud().name, &spec.addr.path());
        let server_cert_existed = store.has_server(&args.name, &owner);
        // With the VM's addresses known: its server certificate, and for cloud-init the
        // cloud-config that sets Docker up at first boot.
        let before_vm = |facts: &VmFacts| -> azdock_host::Result<Option<Secret<String>>> {
            let request = PlanRequest {
                action: "install".into(),
                args: install.clone(),
                facts: facts.clone(),
                run_id: azdock_host::run_id(),
            };
            if over_ssh {
                return Ok(None);
            }
            let step = azdock_host::Step::start(ctx, format!("server certificate {}", args.name));
            step.ended(docker::mint(&cert_dir, &request), azdock_host::StepOutcome::Done)?;
            if delivery != Delivery::CloudInit {
                return Ok(None);
            }
            let setup = azdock_ext_docker::docker_setup(&request, args.docker_port, args.docker_options.clone())?;
            let encoded = base64::engine::general_purpose::STANDARD.encode(setup.cloud_config().expose());
            Ok(Some(Secret::new(encoded)))
        };
        ctx.info(&format!("creating VM {} ({})…", args.name, image_name(&checked)));
        let (report, ledger) = host
            .create_then(&spec, Some(&before_vm), checked.keep_on_failure, async |created: CreatedVm| {
                let vm = created.vm.clone();
                let (entry, daemon) = match delivery.handler() {
                    Some(handler) => {
                        let how = docker::install(handler, &cert_dir, extras, !checked.no_wait, false);
                        docker::install_on(ctx, &host, &*docker_ext, vm, &install, how).await?
                    }
                    // cloud-init set Docker up at first boot: the Docker extension's verify
                    // waits for its daemon, as long as a first boot takes.
                    None => {
                        let (address, _) = vm.endpoint()?;
                        let entry = DockerHost::of(&vm, &address, args.docker_port, delivery.name(), &cert_dir, extras);
                        let entry = host.remember(entry)?;
                        let daemon = if checked.no_wait {
                            json!({"status": "not checked (--no-wait)"})
                        } else if docker::daemon_cannot_run(&vm, ctx).is_some() {
                            json!({"status": "cannot run locally"})
                        } else {
                            let timeout = azdock_ext_docker::READY_TIMEOUT_SECS;
                            host.first_boot_daemon(&*docker_ext, vm, args.docker_port, &cert_dir, timeout).await?
                        };
                        (entry, daemon)
                    }
                };
                anyhow::Ok((entry, daemon, created))
            })
            .await
            .inspect_err(|_| {
                if !over_ssh && !server_cert_existed && !checked.keep_on_failure {
                    // Best effort beside the failure being reported: a re-run reuses it anyway.
                    let _ = store.remove_server(&args.name, &owner);
                }
            })?;
        let (entry, daemon, created) = report;
        let step = azdock_host::Step::start(ctx, format!("docker context {}", entry.name));
        let context = docker::finish_client(ctx, &entry);
        step.end(if context.is_some() {
            azdock_host::StepOutcome::Done
        } else {
            azdock_host::StepOutcome::Failed("not made".into())
        });
        let mut report = hosts::report(&entry, &daemon, &Value::Null, context.as_deref());
        ledger_report(&mut report, &checked, &created, &ledger);
        report.as_object_mut().map(|o| o.remove("certificate"));
        anyhow::Ok(report)
    })?;
    ctx.print(
        &result,
        &[
            ("Name", "/name"),
            ("DockerHost", "/dockerHost"),
            ("Handler", "/handler"),
            ("Daemon", "/daemon/status"),
            ("Context", "/context"),
        ],
    )
}
