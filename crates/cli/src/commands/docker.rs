//! `azdock ext docker …` and `azdock docker env|context`: Docker hosts on existing VMs, through
//! the Docker extension's plans, and the client side (environment, docker contexts).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use azdock_azure_sm::CloudKind;
use azdock_certs::{CertStore, Rotation};
use azdock_core::{ArgValue, Args, PlanRequest, Transport, VmExtension};
use azdock_ext_docker::{Delivery, Handler};
use azdock_host::docker::{self as hosts, DockerHost, Extras, HostRecord, Target};
use azdock_host::{Host, Vm};
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{DockerCommand, ExtDockerCommand, ExtDockerInstallArgs, ExtDockerRotateArgs, GlobalArgs, Shell};
use crate::config::Config;
use crate::error::Usage;
use crate::output::Columns;
use crate::session;
use crate::targets::Selection;

const ROTATE_COLUMNS: Columns = &[
    ("Name", "/name"),
    ("ResourceGroup", "/resourceGroup"),
    ("Status", "/status"),
    ("DockerHost", "/dockerHost"),
    ("Daemon", "/daemon/status"),
    ("Message", "/message"),
];

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

/// The certificate directory for Docker commands, as for `certs`.
pub(crate) fn cert_dir(flag: Option<&Path>, config: &Config) -> anyhow::Result<PathBuf> {
    crate::config::docker_cert_dir(flag, config.defaults.docker_cert_dir.as_deref())
}

/// Every argument of an install is checked before any request.
fn check_install(i: &ExtDockerInstallArgs) -> anyhow::Result<Handler> {
    let delivery = Delivery::parse(&i.handler).map_err(Usage::new)?;
    let Some(handler) = delivery.handler() else {
        return Err(Usage::new(azdock_ext_docker::CLOUD_INIT_ON_EXISTING).into());
    };
    if let Some(t) = &i.transport {
        check_transport(Transport::parse(t).map_err(Usage::new)?, delivery, i.no_wait)?;
    }
    for o in &i.docker_options {
        azdock_ext_docker::check_option(o).map_err(Usage::new)?;
    }
    for s in &i.allow_from {
        azdock_ext_docker::check_source(s).map_err(Usage::new)?;
    }
    Ok(handler)
}

/// What the SSH transport needs: the customscript handler, which prints the VM's host keys,
/// and a wait for that output, from which the keys are pinned.
pub(crate) fn check_transport(transport: Transport, delivery: Delivery, no_wait: bool) -> anyhow::Result<()> {
    if transport != Transport::Ssh {
        return Ok(());
    }
    if delivery != Delivery::Handler(Handler::CustomScript) {
        return Err(Usage::new(format!(
            "--transport ssh is installed by the customscript handler (it reports the VM's SSH host keys for azdock to pin), not {}",
            delivery.name()
        ))
        .into());
    }
    if no_wait {
        return Err(Usage::new(
            "--transport ssh cannot be used with --no-wait: the VM's SSH host keys are pinned from the install's output, which --no-wait does not wait for",
        )
        .into());
    }
    Ok(())
}

pub(crate) fn run_ext(
    ctx: &Ctx,
    global: &GlobalArgs,
    config: &Config,
    command: &ExtDockerCommand,
) -> anyhow::Result<()> {
    let t = match command {
        ExtDockerCommand::RotateCerts(r) => return rotate(ctx, global, config, r),
        ExtDockerCommand::Install(i) => &i.target,
        ExtDockerCommand::Status(t) | ExtDockerCommand::Verify(t) | ExtDockerCommand::Uninstall(t) => t,
    };
    let chosen = Selection::new(t.on.resource_group.as_deref(), t.on.vm.as_deref(), &t.on.ids, false)?;
    let handler = match command {
        ExtDockerCommand::Install(i) => Some(check_install(i)?),
        _ => None,
    };
    let default_dir = cert_dir(None, config)?;
    let docker = crate::plugins::builtin("docker")?;
    let data_dir = crate::config::data_dir()?;
    let action = match command {
        ExtDockerCommand::Install(_) => "install",
        ExtDockerCommand::Verify(_) => "verify",
        ExtDockerCommand::Uninstall(_) => "uninstall",
        ExtDockerCommand::Status(_) => "status",
        ExtDockerCommand::RotateCerts(_) => unreachable!("rotate-certs returned above"),
    };
    let results = session::block_on(async {
        let (arm, addrs) = chosen.resolve(global, config).await?;
        // One VM's notes are told; a fleet's would repeat once per VM.
        let events: &dyn azdock_host::Events = if addrs.len() == 1 { ctx } else { &azdock_host::Silent };
        let host = Host { arm: &arm, data_dir: &data_dir, events };
        let targets = host.docker_targets(addrs, t.port, t.docker_cert_dir.as_deref(), &default_dir)?;
        let (host, docker) = (&host, &*docker);
        let one = |target: Target| async move {
            let installed =
                |facts: &azdock_core::VmFacts| azdock_ext_docker::installed(facts).map(|(h, e)| (h.name(), e.clone()));
            anyhow::Ok(match (command, handler) {
                (ExtDockerCommand::Install(i), Some(handler)) => {
                    install_existing(ctx, host, docker, &target, i, handler).await?
                }
                (ExtDockerCommand::Verify(_), _) => host.docker_probe(docker, &target, true, installed).await?,
                (ExtDockerCommand::Uninstall(_), _) => host.uninstall_docker(docker, &target).await?,
                _ => host.docker_probe(docker, &target, false, installed).await?,
            })
        };
        let run = |target: Target| async move {
            let result = one(target.clone()).await;
            ctx.progress.fleet_tick(result.is_err());
            (target.addr, result)
        };
        ctx.progress.fleet_start(action, targets.len());
        let results = azdock_azure_sm::fan_out(targets, usize::from(t.on.max_parallel), run).await;
        ctx.progress.fleet_end();
        anyhow::Ok(results)
    })?;
    crate::targets::print_fleet(ctx, results, action, HOST_COLUMNS)
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
    // A host reached over SSH has no server certificate to mint.
    let prepare = |request: &PlanRequest| {
        if azdock_ext_docker::transport_of(request).is_ok_and(|t| t == Transport::Ssh) {
            Ok(())
        } else {
            mint(cert_dir, request)
        }
    };
    let how = hosts::Install { prepare: Some(&prepare), cannot_run: cannot_run.as_deref(), ..how };
    Ok(host.install_docker(docker, vm, args, how).await?)
}

/// An install of `handler` with what it sets up, before the CLI adds its prompt.
pub(crate) fn install<'a>(
    handler: Handler,
    cert_dir: &'a Path,
    extras: Extras<'a>,
    wait: bool,
    take_over: bool,
) -> hosts::Install<'a> {
    hosts::Install {
        action: "install",
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
    target: &Target,
    i: &ExtDockerInstallArgs,
    handler: Handler,
) -> anyhow::Result<Value> {
    let extras = Extras { options: &i.docker_options, allow_from: &i.allow_from, cert_sans: &i.cert_sans };
    // The transport given, else the one the host has: a reinstall keeps it.
    let transport = i.transport.as_deref().map_or(Ok(target.transport()), Transport::parse).map_err(Usage::new)?;
    check_transport(transport, Delivery::Handler(handler), i.no_wait)?;
    // A host recorded over SSH holds sshd's port, not Docker's.
    let docker_port = match (i.target.port, target.transport()) {
        (Some(port), _) => port,
        (None, Transport::Ssh) => azdock_ext_docker::DEFAULT_PORT,
        (None, Transport::Tls) => target.port,
    };
    let mut args = hosts::install_args(docker_port, &target.cert_dir, handler.name(), extras);
    if transport == Transport::Ssh {
        args.insert("transport".into(), ArgValue::Text(transport.name().into()));
        args.extend(target.transport_args());
        if let Some(port) = i.ssh_port {
            args.insert("ssh-port".into(), ArgValue::Integer(i64::from(port)));
        }
    }
    let vm = azdock_host::vm::inspect(host.arm, &target.addr).await?;
    let how = install(handler, &target.cert_dir, extras, !i.no_wait, i.take_over);
    let (entry, daemon) = install_on(ctx, host, docker, vm, &args, how).await?;
    let context = finish_client(ctx, &entry);
    let certificate = match entry.transport {
        Transport::Tls => hosts::certificate_info(&target.cert_dir, &entry.name, &entry.identity()),
        Transport::Ssh => Value::Null,
    };
    Ok(hosts::report(&entry, &daemon, &certificate, context.as_deref()))
}

/// The docker context and the line to connect with, on stderr.
pub(crate) fn finish_client(ctx: &Ctx, host: &DockerHost) -> Option<String> {
    let name = record().and_then(|r| Ok(r.load()?)).map_or_else(|_| host.name.clone(), |h| h.context_name(host));
    let context = match hosts::docker_context(host, &name) {
        Ok(name) => Some(name),
        Err(why) => {
            ctx.warn(&why);
            None
        }
    };
    ctx.info(&format!("connect with: {}", host.connect_line()));
    if let Some(c) = &context {
        ctx.info(&format!("or: docker --context {c} info"));
    }
    context
}

/// `rotate-certs`: a new server certificate for each host named, pushed with the Docker
/// extension's plan; `--ca`: a new CA and client for the host's certificate directory, pushed to
/// every host of that directory; `--finish`: the current CA to every host a CA rotation has not
/// reached. Every host runs to its end; any failure is exit 1 after the table.
fn rotate(ctx: &Ctx, global: &GlobalArgs, config: &Config, r: &ExtDockerRotateArgs) -> anyhow::Result<()> {
    let chosen = if r.finish {
        None
    } else {
        Some(Selection::new(r.resource_group.as_deref(), r.vm.as_deref(), &r.ids, false)?)
    };
    if r.ca && !r.yes && !super::interactive() {
        return Err(Usage::new(
            "a new CA invalidates every host's certificates until each is redeployed; pass `--yes` to confirm",
        )
        .into());
    }
    let default_dir = cert_dir(None, config)?;
    let docker = crate::plugins::builtin("docker")?;
    let data_dir = crate::config::data_dir()?;
    let pushed = session::block_on(async {
        let (arm, addrs) = match chosen {
            Some(chosen) => chosen.resolve(global, config).await?,
            None => (session::arm(global, config).await?, Vec::new()),
        };
        let host = Host { arm: &arm, data_dir: &data_dir, events: ctx };
        let cannot_run = (arm.cloud().kind() == CloudKind::Local)
            .then(azdock_emulator::Emulator::docker_unavailable_reason)
            .flatten();
        let targets = host.docker_targets(addrs, r.port, r.docker_cert_dir.as_deref(), &default_dir)?;
        if let Some(ssh) = targets.iter().find(|t| t.transport() == Transport::Ssh) {
            return Err(Usage::new(format!("{}: {}", ssh.addr.name, azdock_ext_docker::NO_CERTS_OVER_SSH)).into());
        }
        let how = |mint| hosts::Rotate {
            docker: &*docker,
            mint,
            limit: usize::from(r.max_parallel),
            cannot_run: cannot_run.as_deref(),
        };
        if r.finish {
            return Ok(host.finish_ca(&how(&mint)).await?.0);
        }
        if r.ca {
            let dir = targets.first().map_or(default_dir.clone(), |t| t.cert_dir.clone());
            let new_ca = || -> azdock_host::Result<()> {
                let report = super::certs::with_passphrases(|p| CertStore::new(&dir).rotate(&Rotation::Ca, p))?;
                told_backup(ctx, &report);
                Ok(())
            };
            ctx.progress.fleet_start("rotate-certs --ca", targets.len());
            let rotated = host.rotate_ca(&dir, targets, &how(&mint), new_ca).await;
            ctx.progress.fleet_end();
            return Ok(rotated?.0);
        }
        let renew = |dir: &Path, request: &PlanRequest| -> azdock_host::Result<()> {
            let server = azdock_ext_docker::server_request(request)?;
            let report = super::certs::with_passphrases(|p| CertStore::new(dir).rotate(&Rotation::Server(server), p))?;
            told_backup(ctx, &report);
            Ok(())
        };
        ctx.progress.fleet_start("rotate-certs", targets.len());
        let pushed = host.push_certs(targets, &how(&renew)).await;
        ctx.progress.fleet_end();
        anyhow::Ok(pushed)
    })?;
    let single = pushed.len() == 1 && !r.ca && !r.finish;
    if single && let Some(Err(e)) = pushed.first().map(|p| &p.result) {
        return Err(anyhow::anyhow!(e.to_string())
            .context(format!("cannot rotate the certificates of {}", pushed[0].target.addr.name)));
    }
    let rows: Vec<Value> = pushed.iter().map(hosts::Pushed::row).collect();
    if r.finish && rows.is_empty() {
        ctx.info("every Docker host azdock knows in this cloud carries its directory's current CA");
    }
    let value = if single { rows[0].clone() } else { Value::Array(rows) };
    ctx.print(&value, ROTATE_COLUMNS)?;
    let failed: Vec<String> = pushed
        .iter()
        .filter_map(|p| {
            p.result.as_ref().err().map(|e| format!("  {}/{}: {e}", p.target.addr.resource_group, p.target.addr.name))
        })
        .collect();
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} hosts did not get their new certificates and keep the old ones:\n{}\nrun `azdock ext docker rotate-certs --finish` once they can be reached",
            failed.len(),
            pushed.len(),
            failed.join("\n")
        );
    }
    Ok(())
}

/// Where a rotation put the old certificates.
fn told_backup(ctx: &Ctx, report: &azdock_certs::Report) {
    if let Some(backup) = &report.backup_dir {
        ctx.info(&format!("the old certificates are in {}", backup.display()));
    }
}

pub(crate) fn run_client(ctx: &Ctx, command: &DockerCommand) -> anyhow::Result<()> {
    match command {
        DockerCommand::Env { name, shell, unset } => {
            let hosts = record()?.load()?;
            let host = hosts.find(name)?;
            print!("{}", env_script(host, &hosts.spelling(host), *shell, *unset));
            Ok(())
        }
        DockerCommand::Context { name } => {
            let hosts = record()?.load()?;
            let host = hosts.find(name)?;
            let context = hosts::docker_context(host, &hosts.context_name(host)).map_err(|why| anyhow::anyhow!(why))?;
            ctx.print(
                &json!({"name": context, "dockerHost": host.docker_host(), "certDir": host.cert_dir}),
                &[("Name", "/name"), ("DockerHost", "/dockerHost"), ("CertDir", "/certDir")],
            )
        }
    }
}

/// docker-machine's `env` output for a shell: the variables, then how to apply them.
pub(crate) fn env_script(host: &DockerHost, spelling: &str, shell: Shell, unset: bool) -> String {
    let over_ssh = host.transport == Transport::Ssh;
    let vars = [
        ("DOCKER_TLS_VERIFY", (!over_ssh).then(|| "1".to_owned())),
        ("DOCKER_HOST", Some(host.docker_host())),
        ("DOCKER_CERT_PATH", (!over_ssh).then(|| host.cert_dir.to_string_lossy().into_owned())),
        ("DOCKER_MACHINE_NAME", Some(host.name.clone())),
    ];
    let mut out = String::new();
    for (k, v) in &vars {
        // Over SSH, the TLS variables a TLS host's env set are unset: docker would use them.
        let (v, unset) = match v {
            Some(v) => (v.as_str(), unset),
            None => ("", true),
        };
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
    let command = format!("azdock docker env {spelling}{shell_flag}{flag}");
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
        let why = if over_ssh { "where the VM's sshd listens" } else { "which the server certificate carries" };
        let _ =
            writeln!(out, "{comment} The local cloud's FQDNs do not resolve: DOCKER_HOST uses the public IP, {why}.");
    }
    out
}
