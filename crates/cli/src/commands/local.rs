//! `azdock local …`: the embedded local cloud, run as a background service whose state lives in
//! azdock's data directory (`azdock_emulator::service`), so that several azdock invocations see
//! one cloud.

use std::time::Duration;

use anyhow::Context as _;
use azdock_emulator::Emulator;
use azdock_emulator::service::{RunOptions, Service, Tool, shell_quote};
use serde_json::{Value, json};

use super::{Ctx, interactive};
use crate::cli::{LocalCommand, LocalRunArgs, LocalTool};
use crate::error::Usage;
use crate::output::Columns;

const STATUS_COLUMNS: Columns =
    &[("Status", "/status"), ("Endpoint", "/endpoint"), ("Pid", "/pid"), ("Resources", "/resources"), ("VMs", "/vms")];

fn service() -> anyhow::Result<Service> {
    Ok(Service::new(crate::config::data_dir()?.join("local")))
}

fn options(args: &LocalRunArgs) -> RunOptions {
    RunOptions {
        port: args.port,
        instant: args.instant,
        no_throttle: args.no_throttle,
        durations: args.durations.clone(),
        faults: args.faults.clone(),
        first_boot_lock: args.first_boot_lock,
        // The test suite records the traffic of every local cloud it starts, implicit ones too.
        record: args.record.clone().or_else(|| std::env::var_os("AZDOCK_LOCAL_RECORD").map(Into::into)),
    }
}

/// Starts the cloud (when it is not running) as `azdock local serve …` in the background.
fn up(service: &Service, args: &LocalRunArgs) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("cannot find the azdock binary")?;
    let mut serve = std::process::Command::new(exe);
    serve.args(["local", "serve"]);
    Ok(service.up(&options(args), serve)?)
}

pub(crate) fn run(ctx: &Ctx, command: &LocalCommand) -> anyhow::Result<()> {
    let service = service()?;
    match command {
        LocalCommand::Up(args) => ctx.print(
            &up(&service, args)?,
            &[
                ("Status", "/status"),
                ("Endpoint", "/endpoint"),
                ("Tenant", "/tenantId"),
                ("Subscription", "/subscriptionId"),
                ("Client Id", "/clientId"),
            ],
        ),
        LocalCommand::Down => ctx.print(&json!({"status": service.down()?}), &[("Status", "/status")]),
        LocalCommand::Status => ctx.print(&status(&service)?, STATUS_COLUMNS),
        &LocalCommand::Reset { yes } => {
            if !yes {
                if !interactive() {
                    return Err(Usage::new(
                        "`azdock local reset` deletes every resource in the local cloud; pass `--yes` to confirm",
                    )
                    .into());
                }
                eprint!("Delete every resource in the local cloud? [y/N] ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer).context("cannot read the answer")?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err(Usage::new("reset cancelled").into());
                }
            }
            let was_running = service.running().is_some();
            service.down()?;
            service.forget_resources()?;
            let status = if was_running { up(&service, &LocalRunArgs::default())? } else { json!({"status": "reset"}) };
            ctx.print(&status, STATUS_COLUMNS)
        }
        &LocalCommand::Env { tool } => {
            let up = up(&service, &LocalRunArgs::default())?;
            let tool = match tool {
                LocalTool::Sdk => Tool::Sdk,
                LocalTool::Az => Tool::Az,
            };
            let (vars, commands) = azdock_emulator::service::tool_env(&up, tool);
            for (name, value) in vars {
                println!("export {name}={}", shell_quote(&value));
            }
            for command in commands {
                println!("{command}");
            }
            let what = if tool == Tool::Az { " --for az" } else { "" };
            println!("# Run this command to configure your shell:\n# eval \"$(azdock local env{what})\"");
            Ok(())
        }
        LocalCommand::Approve { code, decline } => {
            let verb = if *decline { "decline" } else { "approve" };
            if !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || code.is_empty() {
                return Err(Usage::new(format!("`{code}` is not a sign-in code: it looks like BCDF-GHJK")).into());
            }
            let (status, body) = admin(&service, reqwest::Method::POST, &format!("/device-codes/{code}/{verb}"))?;
            if status == reqwest::StatusCode::NOT_FOUND {
                anyhow::bail!("no sign-in waits for the code {code} (it may have expired: run `azdock login` again)");
            }
            if !status.is_success() {
                anyhow::bail!("the local cloud refused: {status} {body}");
            }
            let done = if *decline { "declined" } else { "approved" };
            ctx.print(&json!({"code": code, "status": done}), &[("Code", "/code"), ("Status", "/status")])
        }
        &LocalCommand::Logs { tail } => {
            let text = std::fs::read_to_string(service.log()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(tail)..] {
                println!("{line}");
            }
            Ok(())
        }
        LocalCommand::Serve(args) => runtime()?.block_on(service.serve(&options(args))).map_err(Into::into),
    }
}

/// The running local cloud's endpoint and credentials, starting it when it is not running
/// (what `--cloud local` does before the first request).
pub(crate) fn ensure_running() -> anyhow::Result<Value> {
    up(&service()?, &LocalRunArgs::default())
}

/// Whether it runs, and what it holds (from its own health route, with its admin key).
fn status(service: &Service) -> anyhow::Result<Value> {
    let docker = Emulator::docker_unavailable_reason().unwrap_or_else(|| "available".into());
    let scripts = Emulator::script_unavailable_reason().unwrap_or_else(|| "available".into());
    let ssh = Emulator::ssh_unavailable_reason().unwrap_or_else(|| "available".into());
    let dir = service.dir();
    let Some(server) = service.running() else {
        return Ok(
            json!({"status": "stopped", "stateDir": dir, "dockerDaemons": docker, "scripts": scripts, "ssh": ssh}),
        );
    };
    let base = server["baseUrl"].as_str().unwrap_or_default().to_owned();
    let (status, health) = admin(service, reqwest::Method::GET, "/health")?;
    if !status.is_success() {
        anyhow::bail!("the local cloud's health route answered {status}");
    }
    Ok(json!({
        "status": "running", "endpoint": base, "pid": server["pid"], "resources": health["resources"], "vms": health["vms"],
        "operations": health["operations"], "stateDir": dir, "dockerDaemons": docker, "scripts": scripts,
        "ssh": ssh, "sshEndpoints": health["sshEndpoints"], "clients": service.who_may_connect(),
    }))
}

/// A request to the running local cloud's admin routes (`/_emulator/…`), with the admin key only
/// its owner can read.
fn admin(service: &Service, method: reqwest::Method, path: &str) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let Some(server) = service.running() else {
        anyhow::bail!("the local cloud is not running (`azdock local up`)");
    };
    let base = server["baseUrl"].as_str().unwrap_or_default().to_owned();
    runtime()?.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(service.ca())?)?;
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(5))
            .build()?;
        let key = azdock_emulator::read_admin_key(service.dir()).context("cannot read the local cloud's admin key")?;
        let resp = client
            .request(method, format!("{base}/_emulator{path}"))
            .header(azdock_emulator::ADMIN_KEY_HEADER, key)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
