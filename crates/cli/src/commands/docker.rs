//! `azdock ext docker …` and `azdock docker env|context`: Docker hosts on existing VMs, through
//! the Docker extension's plans, and the client side (environment, docker contexts).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use azdock_azure_sm::Arm;
use azdock_certs::{CertStore, Rotation, ServerRequest};
use azdock_core::{ArgValue, Args, Plan, PlanRequest, VmExtension as _};
use azdock_ext_docker::{DockerExtension, Handler};
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{DockerCommand, ExtDockerCommand, ExtDockerTarget, GlobalArgs, Shell};
use crate::config::Config;
use crate::docker_hosts::{self, DockerHost};
use crate::error::Usage;
use crate::host::{self, Vm, probe};
use crate::output::Columns;
use crate::session;
use crate::targets::{Selection, VmAddr};

const HOST_COLUMNS: Columns = &[
    ("Name", "/name"),
    ("DockerHost", "/dockerHost"),
    ("Handler", "/handler"),
    ("Daemon", "/daemon/status"),
    ("ServerVersion", "/daemon/version"),
    ("CertExpires", "/certificate/notAfter"),
];

/// A unique id per invocation: the extension's `forceUpdateTag`.
pub(crate) fn run_id() -> String {
    format!("azdock-{}", time::OffsetDateTime::now_utc().unix_timestamp_nanos())
}

/// The plan request for a Docker action on a VM.
pub(crate) fn request(action: &str, vm: &Vm, args: Args) -> PlanRequest {
    PlanRequest { action: action.into(), args, facts: vm.facts.clone(), run_id: run_id() }
}

/// The arguments every Docker action takes from the command line.
fn base_args(t: &ExtDockerTarget, cert_dir: &Path) -> Args {
    let mut args = Args::new();
    if let Some(port) = t.port {
        args.insert("port".into(), ArgValue::Integer(i64::from(port)));
    }
    args.insert("docker-cert-dir".into(), ArgValue::Text(cert_dir.to_string_lossy().into_owned()));
    args
}

/// Plans with the Docker extension; its refusals are usage errors (exit 2).
pub(crate) async fn plan(request: &PlanRequest) -> anyhow::Result<Plan> {
    Ok(DockerExtension::default().plan(request).await?)
}

/// The host's entry as the registry keeps it, from what was just set up.
pub(crate) fn host_entry(
    vm: &Vm,
    address: &str,
    port: u16,
    handler: Handler,
    cert_dir: &Path,
    extra: (&[String], &[String], &[String]),
) -> DockerHost {
    DockerHost {
        name: vm.facts.name.clone(),
        cloud: vm.facts.cloud.clone(),
        subscription: vm.addr.subscription.clone(),
        resource_group: vm.addr.resource_group.clone(),
        address: address.to_owned(),
        fqdn: vm.facts.fqdn.clone(),
        public_ip: vm.facts.public_ips.first().map(ToString::to_string),
        port,
        handler: handler.name().into(),
        cert_dir: cert_dir.to_owned(),
        options: extra.0.to_vec(),
        allow_from: extra.1.to_vec(),
        cert_sans: extra.2.to_vec(),
    }
}

/// What the commands print about a host.
pub(crate) fn host_report(host: &DockerHost, daemon: &Value, certificate: &Value, context: Option<&str>) -> Value {
    json!({
        "name": host.name,
        "resourceGroup": host.resource_group,
        "dockerHost": host.docker_host(),
        "fqdn": host.fqdn,
        "publicIp": host.public_ip,
        "port": host.port,
        "handler": host.handler,
        "certDir": host.cert_dir,
        "daemon": daemon,
        "certificate": certificate,
        "context": context,
        "connect": format!("docker --tlsverify -H {} info", host.docker_host()),
    })
}

/// The server certificate's names and expiry, from the cert directory.
fn certificate_info(cert_dir: &Path, name: &str) -> Value {
    let (cert, _) = CertStore::new(cert_dir).server_paths(name);
    match std::fs::read_to_string(&cert).map(|t| azdock_certs::inspect::CertFile::parse(&cert, t)) {
        Ok(Ok(c)) => {
            json!({"file": cert, "sans": c.sans(), "notAfter": azdock_certs::inspect::rfc3339(c.not_after()), "daysLeft": c.days_left()})
        }
        _ => json!({"file": cert, "missing": true}),
    }
}

fn daemon_json(info: &probe::DaemonInfo) -> Value {
    json!({"status": "running", "version": info.version["Version"], "apiVersion": info.version["ApiVersion"], "os": info.version["Os"]})
}

/// Creates or updates the docker context `name` with the host and the client certificates, when
/// the `docker` CLI is installed. Returns the context name, or why there is none.
pub(crate) fn docker_context(host: &DockerHost) -> Result<String, String> {
    let store = CertStore::new(&host.cert_dir);
    let endpoint = format!(
        "host={},ca={},cert={},key={}",
        host.docker_host(),
        store.ca_path().display(),
        store.client_cert_path().display(),
        store.client_key_path().display()
    );
    let exists = std::process::Command::new("docker")
        .args(["context", "inspect", &host.name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let exists = match exists {
        Ok(status) => status.success(),
        Err(_) => return Err("the docker CLI is not installed, so no docker context was made".into()),
    };
    let verb = if exists { "update" } else { "create" };
    let out = std::process::Command::new("docker")
        .args([
            "context",
            verb,
            &host.name,
            "--description",
            &format!("azdock: {} in {}", host.name, host.resource_group),
            "--docker",
            &endpoint,
        ])
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if out.status.success() {
        Ok(host.name.clone())
    } else {
        Err(format!("`docker context {verb}` failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The certificate directory for Docker commands, as for `certs`.
pub(crate) fn cert_dir(flag: Option<&Path>, config: &Config) -> anyhow::Result<PathBuf> {
    crate::config::docker_cert_dir(flag, config.defaults.docker_cert_dir.as_deref())
}

pub(crate) fn run_ext(
    ctx: &Ctx,
    global: &GlobalArgs,
    config: &Config,
    command: &ExtDockerCommand,
) -> anyhow::Result<()> {
    let t = command.target();
    let chosen = Selection::new(t.on.resource_group.as_deref(), t.on.vm.as_deref(), &t.on.ids, false)?;
    let dir = cert_dir(t.docker_cert_dir.as_deref(), config)?;
    // Every argument is checked before any request.
    if let ExtDockerCommand::Install(i) = command {
        let handler = Handler::parse(&i.handler).map_err(Usage::new)?;
        if handler == Handler::CloudInit {
            return Err(Usage::new("cloud-init runs only when a VM is created: use `azdock vm docker create --handler cloud-init`, or customscript here").into());
        }
        for o in &i.docker_options {
            azdock_ext_docker::check_option(o).map_err(Usage::new)?;
        }
        for s in &i.allow_from {
            azdock_ext_docker::check_source(s).map_err(Usage::new)?;
        }
    }
    if let ExtDockerCommand::RotateCerts(r) = command
        && r.ca
        && !r.yes
        && !super::interactive()
    {
        return Err(Usage::new(
            "a new CA invalidates every host's certificates until each is redeployed; pass `--yes` to confirm",
        )
        .into());
    }
    let results = session::block_on(async {
        let (arm, addrs) = chosen.resolve(global, config).await?;
        let cloud = arm.cloud().name.clone();
        let mut out = Vec::new();
        for addr in addrs {
            let mut vm = host::inspect(&arm, &addr).await?;
            vm.facts.cloud.clone_from(&cloud);
            let value = match command {
                ExtDockerCommand::Install(i) => install(ctx, &arm, &vm, i, &dir).await?,
                ExtDockerCommand::Status(t) => status(&arm, &vm, t, &dir).await?,
                ExtDockerCommand::Verify(t) => verify(&arm, &vm, t, &dir).await?,
                ExtDockerCommand::Uninstall(t) => uninstall(ctx, &arm, &vm, t, &dir).await?,
                ExtDockerCommand::RotateCerts(r) => rotate(ctx, &arm, &vm, r, &dir).await?,
            };
            out.push(value);
        }
        anyhow::Ok(out)
    })?;
    let value = if results.len() == 1 { results.into_iter().next().unwrap_or_default() } else { Value::Array(results) };
    ctx.print(&value, HOST_COLUMNS)
}

/// Mints (or reuses) the host's server certificate with the CLI's passphrase prompt, so the
/// extension's plan finds it in place.
fn mint(dir: &Path, request: &PlanRequest) -> anyhow::Result<()> {
    let server = azdock_ext_docker::server_request(request)?;
    super::certs::with_passphrases(|p| CertStore::new(dir).server(&server, p))?;
    Ok(())
}

/// Installs Docker with TLS on an existing VM and waits until it answers.
// The arguments are the install's inputs as the callers hold them; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn install_on(
    ctx: &Ctx,
    arm: &Arm,
    vm: &Vm,
    args: Args,
    handler: Handler,
    dir: &Path,
    extra: (&[String], &[String], &[String]),
    wait: bool,
) -> anyhow::Result<(DockerHost, Value)> {
    let request = request("install", vm, args);
    let port = azdock_ext_docker::port_of(&request)?;
    mint(dir, &request)?;
    let plan = plan(&request).await?;
    for note in &plan.notes {
        ctx.warn(note);
    }
    let possible = local_daemon_possible(vm, ctx);
    let waits = host::Waits { operation: wait, endpoints: wait && possible };
    let outcome = host::execute(arm, vm, &plan, waits, "docker").await?;
    for note in &outcome.notes {
        if !plan.notes.contains(note) {
            ctx.warn(note);
        }
    }
    let (address, _) = vm.endpoint()?;
    let entry = host_entry(vm, &address, port, handler, dir, extra);
    docker_hosts::record(entry.clone())?;
    let daemon = match &outcome.endpoint {
        Some((_, _, info)) => daemon_json(info),
        None if !wait => json!({"status": "not checked (--no-wait)"}),
        None if !possible => {
            json!({"status": "cannot run locally", "reason": azdock_emulator::Emulator::docker_unavailable_reason()})
        }
        None => json!({"status": "unreachable"}),
    };
    Ok((entry, daemon))
}

/// In the local cloud, whether this machine can run the VM's dockerd; when it cannot, say so
/// at once rather than waiting for a daemon that will never answer.
pub(crate) fn local_daemon_possible(vm: &Vm, ctx: &Ctx) -> bool {
    if !vm.facts.cloud.eq_ignore_ascii_case("local") {
        return true;
    }
    // The local cloud runs on this machine: what it can run is what this machine can.
    match azdock_emulator::Emulator::docker_unavailable_reason() {
        Some(reason) => {
            ctx.warn(&format!(
                "the Docker host is set up, but its daemon cannot run in the local cloud on this machine: {reason}"
            ));
            false
        }
        None => true,
    }
}

async fn install(
    ctx: &Ctx,
    arm: &Arm,
    vm: &Vm,
    i: &crate::cli::ExtDockerInstallArgs,
    dir: &Path,
) -> anyhow::Result<Value> {
    let handler = Handler::parse(&i.handler).map_err(Usage::new)?;
    let mut args = base_args(&i.target, dir);
    args.insert("handler".into(), ArgValue::Text(handler.name().into()));
    args.insert("docker-option".into(), ArgValue::List(i.docker_options.clone()));
    args.insert("allow-from".into(), ArgValue::List(i.allow_from.clone()));
    args.insert("cert-san".into(), ArgValue::List(i.cert_sans.clone()));
    let (entry, daemon) =
        install_on(ctx, arm, vm, args, handler, dir, (&i.docker_options, &i.allow_from, &i.cert_sans), !i.no_wait)
            .await?;
    let context = finish_client(ctx, &entry);
    Ok(host_report(&entry, &daemon, &certificate_info(dir, &entry.name), context.as_deref()))
}

/// The docker context and the line to connect with, on stderr.
pub(crate) fn finish_client(ctx: &Ctx, host: &DockerHost) -> Option<String> {
    let context = match docker_context(host) {
        Ok(name) => Some(name),
        Err(why) => {
            ctx.warn(&why);
            None
        }
    };
    ctx.info(&format!("connect with: docker --tlsverify -H {} info", host.docker_host()));
    if let Some(c) = &context {
        ctx.info(&format!("or: docker --context {c} info"));
    }
    context
}

/// The handler instance on the VM that set Docker up, if any.
fn docker_extension(vm: &Vm) -> Option<&azdock_core::InstalledExtension> {
    [Handler::CustomScript, Handler::Legacy]
        .into_iter()
        .filter_map(Handler::spec)
        .find_map(|s| vm.facts.extension_of(&s.publisher, &s.kind))
}

fn port_of(t: &ExtDockerTarget, vm: &Vm) -> u16 {
    t.port
        .or_else(|| docker_hosts::load().ok()?.get(&vm.facts.name).map(|h| h.port))
        .unwrap_or(azdock_ext_docker::DEFAULT_PORT)
}

async fn status(arm: &Arm, vm: &Vm, t: &ExtDockerTarget, dir: &Path) -> anyhow::Result<Value> {
    let port = port_of(t, vm);
    let (address, _) = vm.endpoint()?;
    let identity = identity(dir);
    let daemon = match probe::docker(&address, port, &identity, Duration::from_secs(5)).await {
        Ok(info) => daemon_json(&info),
        Err(f) => json!({"status": "unreachable", "reason": host::explain(arm, vm, &address, port, &f).await}),
    };
    let handler = docker_extension(vm).map(|e| {
        let message = e.statuses.first().and_then(|s| s.message.clone());
        json!({"name": e.name, "type": e.kind, "provisioningState": e.provisioning_state, "message": message})
    });
    let entry = DockerHost {
        handler: docker_extension(vm)
            .map_or("none", |e| if e.kind.eq_ignore_ascii_case("DockerExtension") { "legacy" } else { "customscript" })
            .into(),
        ..host_entry(vm, &address, port, Handler::CustomScript, dir, (&[], &[], &[]))
    };
    let mut report = host_report(&entry, &daemon, &certificate_info(dir, &vm.facts.name), None);
    report["extension"] = handler.unwrap_or(Value::Null);
    report["nsgRule"] = json!(host::port_admitted(arm, vm, port).await?);
    report["powerState"] = json!(vm.facts.power_state);
    Ok(report)
}

fn identity(dir: &Path) -> probe::Identity {
    let store = CertStore::new(dir);
    probe::Identity { ca: store.ca_path(), cert: store.client_cert_path(), key: store.client_key_path() }
}

/// The TLS handshake, `/_ping` and `/version`; any failure is explained and exits 1.
async fn verify(arm: &Arm, vm: &Vm, t: &ExtDockerTarget, dir: &Path) -> anyhow::Result<Value> {
    let port = port_of(t, vm);
    let (address, _) = vm.endpoint()?;
    let Some(rule) = host::port_admitted(arm, vm, port).await? else {
        bail!(host::explain(arm, vm, &address, port, &probe::Failure::NoAnswer).await);
    };
    let info = match probe::wait(&address, port, &identity(dir), Duration::from_secs(15)).await {
        Ok(info) => info,
        Err(f) => bail!(host::explain(arm, vm, &address, port, &f).await),
    };
    let entry = host_entry(vm, &address, port, Handler::CustomScript, dir, (&[], &[], &[]));
    let mut report = host_report(&entry, &daemon_json(&info), &certificate_info(dir, &vm.facts.name), None);
    report["handler"] = Value::Null;
    report["checks"] =
        json!({"nsgRule": rule, "tlsHandshake": "ok", "ping": info.ping, "version": info.version["Version"]});
    Ok(report)
}

async fn uninstall(ctx: &Ctx, arm: &Arm, vm: &Vm, t: &ExtDockerTarget, dir: &Path) -> anyhow::Result<Value> {
    let mut args = base_args(t, dir);
    args.insert("port".into(), ArgValue::Integer(i64::from(port_of(t, vm))));
    let plan = plan(&request("uninstall", vm, args)).await?;
    host::execute(arm, vm, &plan, host::Waits { operation: true, endpoints: true }, "docker").await?;
    docker_hosts::forget(&vm.facts.name)?;
    ctx.info(&format!(
        "Docker on {} no longer listens on TCP; its server certificate stays in {} (`azdock certs show`)",
        vm.facts.name,
        dir.display()
    ));
    Ok(json!({"name": vm.facts.name, "resourceGroup": vm.addr.resource_group, "uninstalled": true}))
}

/// A new server certificate for the host (`--ca`: a new CA and client first, and every host
/// azdock knows in this cloud gets its new certificate), pushed with the install again.
async fn rotate(
    ctx: &Ctx,
    arm: &Arm,
    vm: &Vm,
    r: &crate::cli::ExtDockerRotateArgs,
    dir: &Path,
) -> anyhow::Result<Value> {
    let known = docker_hosts::load()?;
    let entry = known.get(&vm.facts.name).cloned();
    let port = r.target.port.or(entry.as_ref().map(|e| e.port)).unwrap_or(azdock_ext_docker::DEFAULT_PORT);
    let handler = entry
        .as_ref()
        .and_then(|e| Handler::parse(&e.handler).ok())
        .filter(|h| *h != Handler::CloudInit)
        .unwrap_or(Handler::CustomScript);
    let store = CertStore::new(dir);
    let rotation = if r.ca {
        Rotation::Ca
    } else {
        let mut args = Args::new();
        if let Some(e) = &entry {
            args.insert("cert-san".into(), ArgValue::List(e.cert_sans.clone()));
        }
        let server = azdock_ext_docker::server_request(&request("install", vm, args))?;
        let names = server.names();
        let (dns, ips): (Vec<String>, Vec<String>) =
            names.into_iter().partition(|n| n.parse::<std::net::IpAddr>().is_err());
        Rotation::Server(ServerRequest::new(&vm.facts.name, &dns, &ips)?)
    };
    let report = super::certs::with_passphrases(|p| store.rotate(&rotation, p))?;
    if let Some(backup) = &report.backup_dir {
        ctx.info(&format!("the old certificates are in {}", backup.display()));
    }
    let mut hosts = vec![vm.clone()];
    if r.ca {
        // Every other host azdock set up in this cloud needs the new CA and its own new certificate.
        for other in known.values().filter(|h| h.name != vm.facts.name) {
            if !other.cloud.eq_ignore_ascii_case(&vm.facts.cloud) {
                ctx.warn(&format!("host {} is in cloud {}: run `azdock --cloud {} ext docker install --vm {} -g {}` to give it the new CA", other.name, other.cloud, other.cloud, other.name, other.resource_group));
                continue;
            }
            let addr = VmAddr {
                subscription: other.subscription.clone(),
                resource_group: other.resource_group.clone(),
                name: other.name.clone(),
                extension: None,
            };
            match host::inspect(arm, &addr).await {
                Ok(mut v) => {
                    v.facts.cloud.clone_from(&vm.facts.cloud);
                    hosts.push(v);
                }
                Err(e) => ctx.warn(&format!("cannot reach host {}: {e:#}; install it again later", other.name)),
            }
        }
    }
    let mut out = Vec::new();
    for h in &hosts {
        let e = known.get(&h.facts.name).cloned();
        let mut args = Args::new();
        let port = if h.facts.name == vm.facts.name {
            port
        } else {
            e.as_ref().map_or(azdock_ext_docker::DEFAULT_PORT, |e| e.port)
        };
        args.insert("port".into(), ArgValue::Integer(i64::from(port)));
        args.insert("docker-cert-dir".into(), ArgValue::Text(dir.to_string_lossy().into_owned()));
        let handler = if h.facts.name == vm.facts.name {
            handler
        } else {
            e.as_ref()
                .and_then(|e| Handler::parse(&e.handler).ok())
                .filter(|h| *h != Handler::CloudInit)
                .unwrap_or(Handler::CustomScript)
        };
        args.insert("handler".into(), ArgValue::Text(handler.name().into()));
        let (opts, allow, sans) =
            e.as_ref().map(|e| (e.options.clone(), e.allow_from.clone(), e.cert_sans.clone())).unwrap_or_default();
        args.insert("docker-option".into(), ArgValue::List(opts.clone()));
        args.insert("allow-from".into(), ArgValue::List(allow.clone()));
        args.insert("cert-san".into(), ArgValue::List(sans.clone()));
        let (entry, daemon) = install_on(ctx, arm, h, args, handler, dir, (&opts, &allow, &sans), true).await?;
        out.push(host_report(&entry, &daemon, &certificate_info(dir, &entry.name), None));
    }
    Ok(if out.len() == 1 { out.remove(0) } else { Value::Array(out) })
}

pub(crate) fn run_client(ctx: &Ctx, command: &DockerCommand) -> anyhow::Result<()> {
    match command {
        DockerCommand::Env { name, shell, unset } => {
            let host = docker_hosts::get(name)?;
            print!("{}", env_script(&host, *shell, *unset));
            Ok(())
        }
        DockerCommand::Context { name } => {
            let host = docker_hosts::get(name)?;
            let context = docker_context(&host).map_err(|why| anyhow::anyhow!(why))?;
            ctx.print(
                &json!({"name": context, "dockerHost": host.docker_host(), "certDir": host.cert_dir}),
                &[("Name", "/name"), ("DockerHost", "/dockerHost"), ("CertDir", "/certDir")],
            )
        }
    }
}

/// docker-machine's `env` output for a shell: the variables, then how to apply them.
pub(crate) fn env_script(host: &DockerHost, shell: Shell, unset: bool) -> String {
    let vars = [
        ("DOCKER_TLS_VERIFY", "1".to_owned()),
        ("DOCKER_HOST", host.docker_host()),
        ("DOCKER_CERT_PATH", host.cert_dir.to_string_lossy().into_owned()),
        ("DOCKER_MACHINE_NAME", host.name.clone()),
    ];
    let mut out = String::new();
    for (k, v) in &vars {
        let line = match (shell, unset) {
            (Shell::Bash | Shell::Zsh, false) => format!("export {k}=\"{v}\""),
            (Shell::Bash | Shell::Zsh, true) => format!("unset {k}"),
            (Shell::Fish, false) => format!("set -gx {k} \"{v}\";"),
            (Shell::Fish, true) => format!("set -e {k};"),
            (Shell::Powershell, false) => format!("$Env:{k} = \"{v}\""),
            (Shell::Powershell, true) => format!("Remove-Item Env:\\\\{k}"),
            (Shell::Cmd, false) => format!("SET {k}={v}"),
            (Shell::Cmd, true) => format!("SET {k}="),
        };
        out.push_str(&line);
        out.push('\n');
    }
    let flag = if unset { " --unset" } else { "" };
    let shell_flag = match shell {
        Shell::Bash => String::new(),
        other => format!(" --shell {}", other.name()),
    };
    let command = format!("azdock docker env {}{shell_flag}{flag}", host.name);
    let how = match shell {
        Shell::Bash | Shell::Zsh => format!("# Run this command to configure your shell:\n# eval $({command})\n"),
        Shell::Fish => format!("# Run this command to configure your shell:\n# eval ({command})\n"),
        Shell::Powershell => {
            format!("# Run this command to configure your shell:\n# & {command} | Invoke-Expression\n")
        }
        Shell::Cmd => format!(
            "REM Run this command to configure your shell:\nREM \t@FOR /f \"tokens=*\" %i IN ('{command}') DO @%i\n"
        ),
    };
    out.push_str(&how);
    if host.cloud.eq_ignore_ascii_case("local") && !unset {
        let comment = if shell == Shell::Cmd { "REM" } else { "#" };
        let _ = writeln!(
            out,
            "{comment} The local cloud's FQDNs do not resolve: DOCKER_HOST uses the public IP, which the server certificate carries."
        );
    }
    out
}
