//! `azdock ext docker …` and `azdock docker env|context`: Docker hosts on existing VMs, through
//! the Docker extension's plans, and the client side (environment, docker contexts).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use azdock_azure_sm::CloudKind;
use azdock_certs::{CertStore, Rotation, ServerRequest};
use azdock_core::{ArgValue, Args, PlanRequest, VmExtension};
use azdock_ext_docker::{Delivery, Handler};
use azdock_host::docker::{self as hosts, DockerHost, Extras, HostRecord};
use azdock_host::{Host, Invocation, Vm, Waits};
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{DockerCommand, ExtDockerCommand, ExtDockerTarget, GlobalArgs, Shell};
use crate::config::Config;
use crate::error::Usage;
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

/// The record of Docker hosts in the data directory.
pub(crate) fn record() -> anyhow::Result<HostRecord> {
    Ok(HostRecord::new(&crate::config::data_dir()?))
}

/// The arguments every Docker action takes from the command line.
fn base_args(port: Option<u16>, cert_dir: &Path) -> Args {
    let mut args = Args::new();
    if let Some(port) = port {
        args.insert("port".into(), ArgValue::Integer(i64::from(port)));
    }
    args.insert("docker-cert-dir".into(), ArgValue::Text(cert_dir.to_string_lossy().into_owned()));
    args
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
        let delivery = Delivery::parse(&i.handler).map_err(Usage::new)?;
        if delivery == Delivery::CloudInit {
            return Err(Usage::new(azdock_ext_docker::CLOUD_INIT_ON_EXISTING).into());
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
    let docker = crate::plugins::builtin("docker")?;
    let data_dir = crate::config::data_dir()?;
    let results = session::block_on(async {
        let (arm, addrs) = chosen.resolve(global, config).await?;
        let host = Host { arm: &arm, data_dir: &data_dir, events: ctx };
        let mut out = Vec::new();
        for addr in addrs {
            let value = match command {
                ExtDockerCommand::Install(i) => install_existing(ctx, &host, &*docker, &addr, i, &dir).await?,
                ExtDockerCommand::Status(t) => probe(&host, &*docker, &addr, t, &dir, false).await?,
                ExtDockerCommand::Verify(t) => probe(&host, &*docker, &addr, t, &dir, true).await?,
                ExtDockerCommand::Uninstall(t) => uninstall(ctx, &host, &*docker, &addr, t, &dir).await?,
                ExtDockerCommand::RotateCerts(r) => rotate(ctx, &host, &*docker, &addr, r, &dir).await?,
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
pub(crate) fn mint(dir: &Path, request: &PlanRequest) -> azdock_host::Result<()> {
    let server = azdock_ext_docker::server_request(request)?;
    super::certs::with_passphrases(|p| CertStore::new(dir).server(&server, p))?;
    Ok(())
}

/// Installs Docker on a VM through the Docker extension's plan (the server certificate minted
/// first with the passphrase prompt), records the host and says what its daemon answered.
pub(crate) async fn install_on(
    ctx: &Ctx,
    host: &Host<'_>,
    docker: &dyn VmExtension,
    vm: Vm,
    args: &Args,
    how: hosts::Install<'_>,
) -> anyhow::Result<(DockerHost, Value)> {
    let cannot_run = daemon_cannot_run(&vm, ctx);
    let cert_dir = how.cert_dir;
    let prepare = |request: &PlanRequest| mint(cert_dir, request);
    let how = hosts::Install { prepare: Some(&prepare), cannot_run: cannot_run.as_deref(), ..how };
    Ok(host.install_docker(docker, vm, args, how).await?)
}

/// An install of `handler` with what it sets up, before the CLI adds its prompt.
pub(crate) fn install<'a>(
    action: &'a str,
    handler: Handler,
    cert_dir: &'a Path,
    extras: Extras<'a>,
    wait: bool,
    take_over: bool,
) -> hosts::Install<'a> {
    hosts::Install {
        action,
        handler: handler.name(),
        cert_dir,
        extras,
        wait,
        take_over,
        prepare: None,
        cannot_run: None,
    }
}

/// After `vm create --ext docker`: the host is recorded and gets its docker context, as after
/// `ext docker install`.
pub(crate) fn record_install(
    ctx: &Ctx,
    host: &Host<'_>,
    ran: &azdock_host::Ran,
    cert_dir: &Path,
) -> anyhow::Result<()> {
    let handler = ran
        .request
        .text("handler")
        .and_then(|h| Delivery::parse(h).ok())
        .and_then(Delivery::handler)
        .unwrap_or(Handler::CustomScript);
    let r = &ran.request;
    let extras =
        Extras { options: r.list("docker-option"), allow_from: r.list("allow-from"), cert_sans: r.list("cert-san") };
    let entry = host.record_docker(ran, handler.name(), cert_dir, extras)?;
    finish_client(ctx, &entry);
    Ok(())
}

/// In the local cloud, why this machine cannot run the VM's dockerd, if it cannot: then the
/// daemon is not waited for, and the user is told at once.
pub(crate) fn daemon_cannot_run(vm: &Vm, ctx: &Ctx) -> Option<String> {
    if vm.cloud != CloudKind::Local {
        return None;
    }
    // The local cloud runs on this machine: what it can run is what this machine can.
    let reason = azdock_emulator::Emulator::docker_unavailable_reason()?;
    ctx.warn(&format!(
        "the Docker host is set up, but its daemon cannot run in the local cloud on this machine: {reason}"
    ));
    Some(reason)
}

async fn install_existing(
    ctx: &Ctx,
    host: &Host<'_>,
    docker: &dyn VmExtension,
    addr: &VmAddr,
    i: &crate::cli::ExtDockerInstallArgs,
    dir: &Path,
) -> anyhow::Result<Value> {
    let handler = Delivery::parse(&i.handler).ok().and_then(Delivery::handler).unwrap_or(Handler::CustomScript);
    let mut args = base_args(i.target.port, dir);
    args.insert("handler".into(), ArgValue::Text(handler.name().into()));
    args.insert("docker-option".into(), ArgValue::List(i.docker_options.clone()));
    args.insert("allow-from".into(), ArgValue::List(i.allow_from.clone()));
    args.insert("cert-san".into(), ArgValue::List(i.cert_sans.clone()));
    let vm = azdock_host::vm::inspect(host.arm, addr).await?;
    let extras = Extras { options: &i.docker_options, allow_from: &i.allow_from, cert_sans: &i.cert_sans };
    let how = install("install", handler, dir, extras, !i.no_wait, i.take_over);
    let (entry, daemon) = install_on(ctx, host, docker, vm, &args, how).await?;
    let context = finish_client(ctx, &entry);
    Ok(hosts::report(&entry, &daemon, &hosts::certificate_info(dir, &entry.name), context.as_deref()))
}

/// The docker context and the line to connect with, on stderr.
pub(crate) fn finish_client(ctx: &Ctx, host: &DockerHost) -> Option<String> {
    let context = match hosts::docker_context(host) {
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

fn port_of(t: &ExtDockerTarget, name: &str) -> u16 {
    t.port.or_else(|| record().ok()?.load().ok()?.get(name).map(|h| h.port)).unwrap_or(azdock_ext_docker::DEFAULT_PORT)
}

/// `status` and `verify`: the Docker extension's own plans (an inspect, then a probe of the
/// daemon with the client certificate). A status reports what it found; a verify fails, with
/// the reason in words, when the daemon does not answer.
async fn probe(
    host: &Host<'_>,
    docker: &dyn VmExtension,
    addr: &VmAddr,
    t: &ExtDockerTarget,
    dir: &Path,
    verify: bool,
) -> anyhow::Result<Value> {
    let port = port_of(t, &addr.name);
    let args = base_args(Some(port), dir);
    let action = if verify { "verify" } else { "status" };
    let invocation = Invocation {
        extension: docker,
        action,
        args: &args,
        waits: Waits { operation: true, endpoints: true, endpoint_required: verify },
        prepare: None,
        take_over: false,
    };
    let ran = host.run(&invocation, addr).await?;
    let installed = azdock_ext_docker::installed(&ran.vm.facts).map(|(h, e)| (h.name(), e));
    Ok(hosts::probe_report(&ran, dir, installed, verify)?)
}

async fn uninstall(
    ctx: &Ctx,
    host: &Host<'_>,
    docker: &dyn VmExtension,
    addr: &VmAddr,
    t: &ExtDockerTarget,
    dir: &Path,
) -> anyhow::Result<Value> {
    let mut args = Args::new();
    args.insert("port".into(), ArgValue::Integer(i64::from(port_of(t, &addr.name))));
    let invocation = Invocation {
        extension: docker,
        action: "uninstall",
        args: &args,
        waits: Waits::ALL,
        prepare: None,
        take_over: false,
    };
    host.run(&invocation, addr).await?;
    record()?.forget(&addr.name)?;
    ctx.info(&format!(
        "Docker on {} no longer listens on TCP; its server certificate stays in {} (`azdock certs show`)",
        addr.name,
        dir.display()
    ));
    Ok(json!({"name": addr.name, "resourceGroup": addr.resource_group, "uninstalled": true}))
}

/// The handler the record says set a host up; customscript when unknown.
fn recorded_handler(entry: Option<&DockerHost>) -> Handler {
    entry.and_then(|e| Delivery::parse(&e.handler).ok()).and_then(Delivery::handler).unwrap_or(Handler::CustomScript)
}

/// A new server certificate for the host (`--ca`: a new CA and client first, and every host
/// azdock knows in this cloud gets its new certificate), pushed with the Docker extension's
/// `rotate-certs` plan.
async fn rotate(
    ctx: &Ctx,
    host: &Host<'_>,
    docker: &dyn VmExtension,
    addr: &VmAddr,
    r: &crate::cli::ExtDockerRotateArgs,
    dir: &Path,
) -> anyhow::Result<Value> {
    let known = record()?.load()?;
    let vm = azdock_host::vm::inspect(host.arm, addr).await?;
    let entry = known.get(&vm.facts.name).cloned();
    let store = CertStore::new(dir);
    let rotation = if r.ca {
        Rotation::Ca
    } else {
        let mut args = Args::new();
        if let Some(e) = &entry {
            args.insert("cert-san".into(), ArgValue::List(e.cert_sans.clone()));
        }
        let request =
            PlanRequest { action: "rotate-certs".into(), args, facts: vm.facts.clone(), run_id: String::new() };
        let server = azdock_ext_docker::server_request(&request)?;
        let names = server.names();
        let (dns, ips): (Vec<String>, Vec<String>) =
            names.into_iter().partition(|n| n.parse::<std::net::IpAddr>().is_err());
        Rotation::Server(ServerRequest::new(&vm.facts.name, &dns, &ips)?)
    };
    let report = super::certs::with_passphrases(|p| store.rotate(&rotation, p))?;
    if let Some(backup) = &report.backup_dir {
        ctx.info(&format!("the old certificates are in {}", backup.display()));
    }
    let mut targets = vec![vm.clone()];
    if r.ca {
        // Every other host azdock set up in this cloud needs the new CA and its own new certificate.
        for other in known.values().filter(|h| h.name != vm.facts.name) {
            if !other.cloud.eq_ignore_ascii_case(&vm.facts.cloud) {
                ctx.warn(&format!("host {} is in cloud {}: run `azdock --cloud {} ext docker install --vm {} -g {}` to give it the new CA", other.name, other.cloud, other.cloud, other.name, other.resource_group));
                continue;
            }
            let addr = VmAddr::new(&other.subscription, &other.resource_group, &other.name);
            match azdock_host::vm::inspect(host.arm, &addr).await {
                Ok(v) => targets.push(v),
                Err(e) => ctx.warn(&format!("cannot reach host {}: {e}; install it again later", other.name)),
            }
        }
    }
    let mut out = Vec::new();
    for h in targets {
        let e = known.get(&h.facts.name).cloned();
        let port = if h.facts.name == vm.facts.name { r.target.port } else { None }
            .or(e.as_ref().map(|e| e.port))
            .unwrap_or(azdock_ext_docker::DEFAULT_PORT);
        let handler = recorded_handler(e.as_ref());
        let (opts, allow, sans) =
            e.as_ref().map(|e| (e.options.clone(), e.allow_from.clone(), e.cert_sans.clone())).unwrap_or_default();
        let mut args = base_args(Some(port), dir);
        args.insert("handler".into(), ArgValue::Text(handler.name().into()));
        args.insert("docker-option".into(), ArgValue::List(opts.clone()));
        args.insert("allow-from".into(), ArgValue::List(allow.clone()));
        args.insert("cert-san".into(), ArgValue::List(sans.clone()));
        let extras = Extras { options: &opts, allow_from: &allow, cert_sans: &sans };
        let how = install("rotate-certs", handler, dir, extras, true, false);
        let (entry, daemon) = install_on(ctx, host, docker, h, &args, how).await?;
        out.push(hosts::report(&entry, &daemon, &hosts::certificate_info(dir, &entry.name), None));
    }
    Ok(if out.len() == 1 { out.remove(0) } else { Value::Array(out) })
}

pub(crate) fn run_client(ctx: &Ctx, command: &DockerCommand) -> anyhow::Result<()> {
    match command {
        DockerCommand::Env { name, shell, unset } => {
            let host = record()?.get(name)?;
            print!("{}", env_script(&host, *shell, *unset));
            Ok(())
        }
        DockerCommand::Context { name } => {
            let host = record()?.get(name)?;
            let context = hosts::docker_context(&host).map_err(|why| anyhow::anyhow!(why))?;
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
    if CloudKind::of(&host.cloud) == CloudKind::Local && !unset {
        let comment = if shell == Shell::Cmd { "REM" } else { "#" };
        let _ = writeln!(
            out,
            "{comment} The local cloud's FQDNs do not resolve: DOCKER_HOST uses the public IP, which the server certificate carries."
        );
    }
    out
}
