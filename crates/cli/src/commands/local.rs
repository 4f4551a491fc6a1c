//! `azdock local …`: the embedded local cloud, run as a background process whose state lives
//! in azdock's data directory, so that several azdock invocations see one cloud.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use azdock_emulator::{Config, Durations, Emulator, LOCAL_SUBSCRIPTION, ThrottleConfig};
use serde_json::{Value, json};

use super::{Ctx, interactive};
use crate::cli::{LocalCommand, LocalRunArgs};
use crate::error::Usage;
use crate::output::Columns;

const STATUS_COLUMNS: Columns =
    &[("Status", "/status"), ("Endpoint", "/endpoint"), ("Pid", "/pid"), ("Resources", "/resources"), ("VMs", "/vms")];

/// Where the local cloud keeps its state, its log and its runtime file.
struct Paths {
    dir: PathBuf,
}

impl Paths {
    fn new() -> anyhow::Result<Self> {
        Ok(Self { dir: crate::config::data_dir()?.join("local") })
    }
    fn server(&self) -> PathBuf {
        self.dir.join("server.json")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("emulator.log")
    }
    fn ca(&self) -> PathBuf {
        self.dir.join("tls").join("ca.pem")
    }
}

/// The runtime file `serve` writes once it listens, while the process it names is that `serve`:
/// alive, and started when the file says (after a crash or a reboot the pid may be anyone's).
fn running(paths: &Paths) -> Option<Value> {
    let server: Value = serde_json::from_slice(&std::fs::read(paths.server()).ok()?).ok()?;
    let pid = server["pid"].as_u64()?;
    let ours = match server["startTime"].as_u64() {
        Some(t) => started(pid) == Some(t),
        // Written by an earlier azdock, which recorded no start time: its command line says.
        None => {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.windows(12).any(|w| w == b"local\0serve\0"))
        }
    };
    (ours && alive(pid)).then_some(server)
}

/// A process's `/proc/<pid>/stat` fields after the command name (which is in parentheses and
/// may hold spaces): the state is the first.
fn stat_fields(pid: u64) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit_once(')')?.1.split_whitespace().map(str::to_owned).collect())
}

/// Whether a process runs: it exists and is not a zombie (a killed `serve` stays one until its
/// new parent reaps it).
fn alive(pid: u64) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"))
}

/// When a process started, in clock ticks since boot (`stat` field 22): with the pid, what
/// names one process for as long as the machine runs.
fn started(pid: u64) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

pub(crate) fn run(ctx: &Ctx, command: &LocalCommand) -> anyhow::Result<()> {
    let paths = Paths::new()?;
    match command {
        LocalCommand::Up(args) => {
            let status = up(&paths, args)?;
            ctx.print(
                &status,
                &[
                    ("Status", "/status"),
                    ("Endpoint", "/endpoint"),
                    ("Tenant", "/tenantId"),
                    ("Subscription", "/subscriptionId"),
                    ("Client Id", "/clientId"),
                ],
            )
        }
        LocalCommand::Down => {
            let status = down(&paths)?;
            ctx.print(&json!({"status": status}), &[("Status", "/status")])
        }
        LocalCommand::Status => ctx.print(&status(&paths)?, STATUS_COLUMNS),
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
            let was_running = running(&paths).is_some();
            down(&paths)?;
            for stale in ["state.json", "vms"] {
                let path = paths.dir.join(stale);
                let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                if let Err(e) = removed
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(e).with_context(|| format!("cannot remove `{}`", path.display()));
                }
            }
            let defaults = LocalRunArgs::default();
            let status = if was_running { up(&paths, &defaults)? } else { json!({"status": "reset"}) };
            ctx.print(&status, STATUS_COLUMNS)
        }
        &LocalCommand::Logs { tail } => {
            let text = std::fs::read_to_string(paths.log()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(tail);
            for line in &lines[start..] {
                println!("{line}");
            }
            Ok(())
        }
        LocalCommand::Serve(args) => serve(&paths, args),
    }
}

/// The running local cloud's endpoint and credentials, starting it when it is not running
/// (what `--cloud local` does before the first request).
pub(crate) fn ensure_running() -> anyhow::Result<Value> {
    let defaults = LocalRunArgs::default();
    up(&Paths::new()?, &defaults)
}

fn up(paths: &Paths, args: &LocalRunArgs) -> anyhow::Result<Value> {
    // Read the fault file and durations now, so a bad one is a usage error here rather than a
    // dead server.
    let faults = args.faults.as_deref().map(read_faults).transpose()?;
    durations(args)?;
    if running(paths).is_none() {
        // It will hold the local cloud's keys and credentials: private from the start.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&paths.dir)
            .with_context(|| format!("cannot create `{}`", paths.dir.display()))?;
        let _ = std::fs::remove_file(paths.server());
        let log = private_file(&paths.log()).with_context(|| format!("cannot create `{}`", paths.log().display()))?;
        let exe = std::env::current_exe().context("cannot find the azdock binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(["local", "serve"]);
        if let Some(port) = args.port {
            cmd.args(["--port", &port.to_string()]);
        }
        if args.instant {
            cmd.arg("--instant");
        }
        if args.no_throttle {
            cmd.arg("--no-throttle");
        }
        if let Some(spec) = &args.durations {
            cmd.args(["--durations", spec]);
        }
        if let (Some(path), Some(_)) = (&args.faults, &faults) {
            cmd.arg("--faults").arg(std::path::absolute(path)?);
        }
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // Its own process group: the cloud outlives this command and its terminal.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().context("cannot start the local cloud")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while running(paths).is_none() {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(paths.log()).unwrap_or_default();
                bail!("the local cloud exited with {status}: {}", log.trim());
            }
            if Instant::now() > deadline {
                bail!("the local cloud did not start within 30 s; see `azdock local logs`");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let server = running(paths).context("the local cloud stopped right after starting; see `azdock local logs`")?;
    let principal: Value = serde_json::from_slice(&std::fs::read(paths.dir.join("principal.json"))?)?;
    Ok(json!({
        "status": "running",
        "endpoint": server["baseUrl"],
        "pid": server["pid"],
        "tenantId": principal["tenantId"],
        "subscriptionId": LOCAL_SUBSCRIPTION,
        "clientId": principal["clientId"],
        // The local cloud's own throwaway credential: it signs in to nothing else.
        "clientSecret": principal["clientSecret"],
        "caCertificate": paths.ca(),
        "stateDir": paths.dir,
    }))
}

fn down(paths: &Paths) -> anyhow::Result<&'static str> {
    let Some(server) = running(paths) else { return Ok("not running") };
    let pid = server["pid"].as_u64().context("invalid runtime file")?;
    let target =
        i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw).context("invalid pid in the runtime file")?;
    rustix::process::kill_process(target, rustix::process::Signal::TERM)
        .with_context(|| format!("cannot stop the local cloud (pid {pid})"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        if Instant::now() > deadline {
            bail!("the local cloud (pid {pid}) did not stop within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(paths.server());
    Ok("stopped")
}

fn status(paths: &Paths) -> anyhow::Result<Value> {
    let docker = Emulator::docker_unavailable_reason().unwrap_or_else(|| "available".into());
    let scripts = Emulator::script_unavailable_reason().unwrap_or_else(|| "available".into());
    let Some(server) = running(paths) else {
        return Ok(json!({"status": "stopped", "stateDir": paths.dir, "dockerDaemons": docker, "scripts": scripts}));
    };
    let base = server["baseUrl"].as_str().unwrap_or_default().to_owned();
    let health = runtime()?.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(paths.ca())?)?;
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(5))
            .build()?;
        let key = azdock_emulator::read_admin_key(&paths.dir).context("cannot read the local cloud's admin key")?;
        let health: Value = client
            .get(format!("{base}/_emulator/health"))
            .header(azdock_emulator::ADMIN_KEY_HEADER, key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::Ok(health)
    })?;
    Ok(json!({
        "status": "running", "endpoint": base, "pid": server["pid"], "resources": health["resources"], "vms": health["vms"],
        "operations": health["operations"], "stateDir": paths.dir, "dockerDaemons": docker, "scripts": scripts,
        "clients": who_may_connect(paths),
    }))
}

/// Who can use the running cloud: any local user can open its port, but only holders of its
/// keys — the owner of the state directory — get anything from it.
fn who_may_connect(paths: &Paths) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let owner = std::fs::metadata(&paths.dir).map_or_else(|_| "its owner".to_owned(), |m| format!("uid {}", m.uid()));
    format!(
        "ARM with a token for the printed service principal; the admin routes (`/_emulator`), IMDS and App Service identity only with the keys in `{}`, readable by {owner} alone; guest code runs as unprivileged host ids",
        paths.dir.display()
    )
}

/// A new or truncated file that only its owner can read (0600 from its creation).
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs the cloud in the foreground until SIGTERM or Ctrl-C (what `up` starts in the background).
/// Reads `{"seed": N, "rules": [...]}` for the fault injector.
fn read_faults(path: &Path) -> anyhow::Result<(u64, Vec<azdock_emulator::FaultRule>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the fault file `{}`", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| Usage::new(format!("invalid fault file `{}`: {e}", path.display())))?;
    let rules = serde_json::from_value(value.get("rules").cloned().unwrap_or_else(|| json!([])))
        .map_err(|e| Usage::new(format!("invalid fault rules in `{}`: {e}", path.display())))?;
    Ok((value.get("seed").and_then(Value::as_u64).unwrap_or(0x00c0_ffee), rules))
}

/// Operation times: Azure's, or none with `--instant`, then each `--durations` key.
fn durations(args: &LocalRunArgs) -> anyhow::Result<Durations> {
    let mut d = if args.instant { Durations::instant() } else { Durations::default() };
    for item in args.durations.iter().flat_map(|s| s.split(',')).filter(|s| !s.trim().is_empty()) {
        let bad = || {
            Usage::new(format!(
                "invalid --durations entry `{item}`: use KEY=MILLISECONDS with KEY one of network, vm-create, vm-action, extension, delete, group-delete"
            ))
        };
        let (key, ms) = item.split_once('=').ok_or_else(bad)?;
        let ms = Duration::from_millis(ms.trim().parse::<u64>().map_err(|_| bad())?);
        match key.trim() {
            "network" => d.network = ms,
            "vm-create" => d.vm_create = ms,
            "vm-action" => d.vm_action = ms,
            "extension" => d.extension = ms,
            "delete" => d.delete = ms,
            "group-delete" => d.resource_group_delete = ms,
            _ => return Err(bad().into()),
        }
    }
    Ok(d)
}

fn serve(paths: &Paths, args: &LocalRunArgs) -> anyhow::Result<()> {
    let faults = args.faults.as_deref().map(read_faults).transpose()?;
    runtime()?.block_on(async {
        let mut config = Config::new(&paths.dir);
        config.port = args.port.unwrap_or(0);
        config.durations = durations(args)?;
        if args.no_throttle {
            config.throttle = ThrottleConfig::unlimited();
        }
        let emulator = Emulator::start(config).await?;
        if let Some((seed, rules)) = faults {
            emulator.set_faults(seed, rules);
        }
        let pid = u64::from(std::process::id());
        let server = json!({"pid": pid, "startTime": started(pid), "baseUrl": emulator.base_url()});
        std::io::Write::write_all(&mut private_file(&paths.server())?, &serde_json::to_vec_pretty(&server)?)?;
        tracing::warn!("azdock local cloud listening on {}", emulator.base_url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        emulator.stop().await;
        let _ = std::fs::remove_file(paths.server());
        anyhow::Ok(())
    })
}
