//! The local cloud as a background service: one process per state directory, started by the
//! binary's `local up` (itself run again as `local serve`), found again through its runtime file
//! (`server.json`: its pid, that process's start time, its endpoint), stopped with SIGTERM. Every
//! azdock invocation on the machine sees the same cloud; a runtime file whose pid is gone or now
//! names another process (after a crash or a reboot) means the cloud is stopped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Config, Durations, Emulator, FaultRule, LOCAL_SUBSCRIPTION, ThrottleConfig};

/// What can go wrong running the service; `Usage` is a bad option the user can fix.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
}

impl ServiceError {
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Usage(_))
    }

    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io { action, path, source }
    }
}

type Result<T> = std::result::Result<T, ServiceError>;

/// How the cloud runs: what `local up` passes on to `local serve`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Port on 127.0.0.1; any free one when absent.
    pub port: Option<u16>,
    /// Every long-running operation finishes at once.
    pub instant: bool,
    pub no_throttle: bool,
    /// `KEY=MS,…` operation times.
    pub durations: Option<String>,
    /// A fault file, `{"seed": N, "rules": [...]}`.
    pub faults: Option<PathBuf>,
    /// First-boot mode: each guest's package manager holds its lock this many seconds after
    /// its first run, and its first `apt-get update` cannot reach the mirror.
    pub first_boot_lock: Option<u64>,
    /// Record every ARM exchange in this directory (see [`Config::record`]).
    pub record: Option<PathBuf>,
}

impl RunOptions {
    /// The options as `local serve` takes them on its command line.
    pub fn to_args(&self) -> Result<Vec<OsString>> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(port) = self.port {
            args.extend(["--port".into(), port.to_string().into()]);
        }
        if self.instant {
            args.push("--instant".into());
        }
        if self.no_throttle {
            args.push("--no-throttle".into());
        }
        if let Some(spec) = &self.durations {
            args.extend(["--durations".into(), spec.into()]);
        }
        if let Some(path) = &self.faults {
            let absolute = std::path::absolute(path).map_err(ServiceError::io("find", path))?;
            args.extend(["--faults".into(), absolute.into()]);
        }
        if let Some(secs) = self.first_boot_lock {
            args.extend(["--first-boot-lock".into(), secs.to_string().into()]);
        }
        if let Some(dir) = &self.record {
            let absolute = std::path::absolute(dir).map_err(ServiceError::io("find", dir))?;
            args.extend(["--record".into(), absolute.into()]);
        }
        Ok(args)
    }

    /// Operation times: Azure's, or none with `instant`, then each `durations` key.
    pub fn durations(&self) -> Result<Durations> {
        let mut d = if self.instant { Durations::instant() } else { Durations::default() };
        for item in self.durations.iter().flat_map(|s| s.split(',')).filter(|s| !s.trim().is_empty()) {
            let bad = || {
                ServiceError::Usage(format!(
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
                _ => return Err(bad()),
            }
        }
        Ok(d)
    }

    /// The fault file's seed and rules, when there is one.
    pub fn faults(&self) -> Result<Option<(u64, Vec<FaultRule>)>> {
        let Some(path) = &self.faults else { return Ok(None) };
        let text = std::fs::read_to_string(path).map_err(ServiceError::io("read the fault file", path))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| ServiceError::Usage(format!("invalid fault file `{}`: {e}", path.display())))?;
        let rules = serde_json::from_value(value.get("rules").cloned().unwrap_or_else(|| json!([])))
            .map_err(|e| ServiceError::Usage(format!("invalid fault rules in `{}`: {e}", path.display())))?;
        Ok(Some((value.get("seed").and_then(Value::as_u64).unwrap_or(0x00c0_ffee), rules)))
    }
}

/// A process's `/proc/<pid>/stat` fields after the command name (which is in parentheses and
/// may hold spaces): the state is the first.
pub(crate) fn stat_fields(pid: u64) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit_once(')')?.1.split_whitespace().map(str::to_owned).collect())
}

/// Whether a process runs: it exists and is not a zombie (a killed `serve` stays one until its
/// new parent reaps it).
pub fn alive(pid: u64) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"))
}

/// When a process started, in clock ticks since boot (`stat` field 22): with the pid, what
/// names one process for as long as the machine runs.
pub fn started(pid: u64) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// A new or truncated file that only its owner can read (0600 from its creation).
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

/// The service of one state directory.
#[derive(Debug, Clone)]
pub struct Service {
    dir: PathBuf,
}

impl Service {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn server(&self) -> PathBuf {
        self.dir.join("server.json")
    }

    /// The cloud's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("emulator.log")
    }

    /// The CA its TLS certificate chains to.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls").join("ca.pem")
    }

    /// The runtime file, while the process it names is the one that wrote it: alive, and started
    /// when the file says (after a crash or a reboot the pid may be anyone's).
    pub fn running(&self) -> Option<Value> {
        let server: Value = serde_json::from_slice(&std::fs::read(self.server()).ok()?).ok()?;
        let pid = server["pid"].as_u64()?;
        let ours = match server["startTime"].as_u64() {
            Some(t) => started(pid) == Some(t),
            // Written by an earlier azdock, which recorded no start time: its command line says.
            None => std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(12).any(|w| w == b"local\0serve\0")),
        };
        (ours && alive(pid)).then_some(server)
    }

    /// The running cloud's endpoint and credentials, starting it first when it is not running:
    /// `serve` is the command that runs it in the foreground (the binary's `local serve`), to
    /// which the options are added; it gets its own process group and the log as its output.
    pub fn up(&self, options: &RunOptions, mut serve: Command) -> Result<Value> {
        // A bad fault file or durations is a usage error here rather than a dead server.
        options.faults()?;
        options.durations()?;
        if self.running().is_none() {
            // It will hold the local cloud's keys and credentials: private from the start.
            azdock_files::create_private_dir(&self.dir).map_err(ServiceError::io("create", &self.dir))?;
            let _ = std::fs::remove_file(self.server());
            let log_path = self.log();
            let log = private_file(&log_path).map_err(ServiceError::io("create", &log_path))?;
            let err = log.try_clone().map_err(ServiceError::io("open", &log_path))?;
            serve.args(options.to_args()?).stdin(Stdio::null()).stdout(log).stderr(err);
            // Its own process group: the cloud outlives this command and its terminal.
            std::os::unix::process::CommandExt::process_group(&mut serve, 0);
            let mut child =
                serve.spawn().map_err(|e| ServiceError::Failed(format!("cannot start the local cloud: {e}")))?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.running().is_none() {
                if let Some(status) = child.try_wait().map_err(|e| ServiceError::Failed(e.to_string()))? {
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    return Err(ServiceError::Failed(format!("the local cloud exited with {status}: {}", log.trim())));
                }
                if Instant::now() > deadline {
                    return Err(ServiceError::Failed(
                        "the local cloud did not start within 30 s; see `azdock local logs`".into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let server = self.running().ok_or_else(|| {
            ServiceError::Failed("the local cloud stopped right after starting; see `azdock local logs`".into())
        })?;
        let principal_path = self.dir.join("principal.json");
        let principal: Value = std::fs::read(&principal_path)
            .map_err(ServiceError::io("read", &principal_path))
            .and_then(|d| serde_json::from_slice(&d).map_err(|e| ServiceError::Failed(e.to_string())))?;
        Ok(json!({
            "status": "running",
            "endpoint": server["baseUrl"],
            "pid": server["pid"],
            "tenantId": principal["tenantId"],
            "subscriptionId": LOCAL_SUBSCRIPTION,
            "clientId": principal["clientId"],
            // The local cloud's own throwaway credential: it signs in to nothing else.
            "clientSecret": principal["clientSecret"],
            "caCertificate": self.ca(),
            "stateDir": self.dir,
            // The local cloud's person: `azdock login` signs in as them with a device code that
            // the owner approves (`azdock local approve CODE`).
            "user": crate::LOCAL_USER,
        }))
    }

    /// Stops the running cloud (SIGTERM, then waits for it to end): `stopped`, or `not running`.
    pub fn down(&self) -> Result<&'static str> {
        let Some(server) = self.running() else { return Ok("not running") };
        let bad = || ServiceError::Failed("invalid pid in the runtime file".into());
        let pid = server["pid"].as_u64().ok_or_else(bad)?;
        let target = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw).ok_or_else(bad)?;
        rustix::process::kill_process(target, rustix::process::Signal::TERM)
            .map_err(|e| ServiceError::Failed(format!("cannot stop the local cloud (pid {pid}): {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) {
            if Instant::now() > deadline {
                return Err(ServiceError::Failed(format!("the local cloud (pid {pid}) did not stop within 30 s")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(self.server());
        Ok("stopped")
    }

    fn port_file(&self) -> PathBuf {
        self.dir.join("port")
    }

    /// The port the local cloud listened on before: it keeps it across `down` and `up`.
    fn kept_port(&self) -> Option<u16> {
        std::fs::read_to_string(self.port_file()).ok()?.trim().parse().ok().filter(|p| *p != 0)
    }

    /// Remembers the port the cloud listens on, for the next start.
    fn keep_port(&self, emulator: &Emulator) -> Result<()> {
        let port = emulator.base_url().rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse::<u16>().ok());
        let Some(port) = port.filter(|p| Some(*p) != self.kept_port()) else { return Ok(()) };
        let path = self.port_file();
        azdock_files::write_atomic(&path, format!("{port}\n").as_bytes(), 0o600)
            .map_err(ServiceError::io("write", &path))
    }

    /// Deletes every resource and guest (the CA, credentials and port stay); the caller stops
    /// the cloud first.
    pub fn forget_resources(&self) -> Result<()> {
        for stale in ["state.json", "vms"] {
            let path = self.dir.join(stale);
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            if let Err(e) = removed
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(ServiceError::io("remove", &path)(e));
            }
        }
        Ok(())
    }

    /// Who can use the running cloud: any local user can open its port, but only holders of its
    /// keys — the owner of the state directory — get anything from it.
    pub fn who_may_connect(&self) -> String {
        use std::os::unix::fs::MetadataExt as _;
        let owner =
            std::fs::metadata(&self.dir).map_or_else(|_| "its owner".to_owned(), |m| format!("uid {}", m.uid()));
        format!(
            "ARM with a token for the printed service principal; the admin routes (`/_emulator`), IMDS and App Service identity only with the keys in `{}`, readable by {owner} alone; guest code runs as unprivileged host ids",
            self.dir.display()
        )
    }

    /// Runs the cloud in the foreground until SIGTERM or Ctrl-C, its runtime file written once it
    /// listens and removed when it stops (what `up` starts in the background).
    pub async fn serve(&self, options: &RunOptions) -> Result<()> {
        let faults = options.faults()?;
        let mut config = Config::new(&self.dir);
        let kept = self.kept_port();
        config.port = options.port.or(kept).unwrap_or(0);
        config.durations = options.durations()?;
        config.first_boot_lock = std::time::Duration::from_secs(options.first_boot_lock.unwrap_or(0));
        config.record.clone_from(&options.record);
        if options.no_throttle {
            config.throttle = ThrottleConfig::unlimited();
        }
        let port = config.port;
        let emulator = Emulator::start(config).await.map_err(|e| match kept.filter(|_| options.port.is_none()) {
            Some(kept) => ServiceError::Failed(format!(
                "cannot listen on 127.0.0.1:{kept}, the local cloud's port (kept in `{}` so that clouds registered in az or an SDK stay valid): {e}; stop what uses it, or pass --port to move the local cloud",
                self.port_file().display()
            )),
            None => ServiceError::Failed(format!("cannot listen on 127.0.0.1:{port}: {e}")),
        })?;
        self.keep_port(&emulator)?;
        if let Some((seed, rules)) = faults {
            emulator.set_faults(seed, rules);
        }
        let pid = u64::from(std::process::id());
        let server = json!({"pid": pid, "startTime": started(pid), "baseUrl": emulator.base_url()});
        let path = self.server();
        std::io::Write::write_all(
            &mut private_file(&path).map_err(ServiceError::io("write", &path))?,
            &serde_json::to_vec_pretty(&server).unwrap_or_default(),
        )
        .map_err(ServiceError::io("write", &path))?;
        tracing::warn!("azdock local cloud listening on {}", emulator.base_url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| ServiceError::Failed(e.to_string()))?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        emulator.stop().await;
        let _ = std::fs::remove_file(path);
        Ok(())
    }
}

/// Another tool to point at the local cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// The Azure CLI, in a configuration directory of its own.
    Az,
    /// Azure's SDKs (Python, Go, .NET, Java): azure-identity's environment credential.
    Sdk,
}

/// What points `tool` at the running local cloud (`up` is what [`Service::up`] answered): the
/// environment variables to set, then the commands to run (POSIX shell).
pub fn tool_env(up: &Value, tool: Tool) -> (Vec<(&'static str, String)>, Vec<String>) {
    let text = |k: &str| up[k].as_str().unwrap_or_default().to_owned();
    let ca = up["caCertificate"].as_str().map(str::to_owned).unwrap_or_default();
    let endpoint = text("endpoint");
    match tool {
        Tool::Sdk => (
            vec![
                ("AZURE_TENANT_ID", text("tenantId")),
                ("AZURE_CLIENT_ID", text("clientId")),
                // The local cloud's own throwaway principal: it signs in to nothing else.
                ("AZURE_CLIENT_SECRET", text("clientSecret")),
                ("AZURE_AUTHORITY_HOST", endpoint.clone()),
                ("AZURE_SUBSCRIPTION_ID", text("subscriptionId")),
                // No SDK reads this by itself: it is the `base_url` (Python), `cloud.Configuration`
                // endpoint (Go) or `ArmEnvironment` (.NET) a program passes to its client.
                ("AZURE_RESOURCE_MANAGER_URL", endpoint),
                // Python's requests, and OpenSSL-based stacks (Go and .NET on Linux read it too).
                ("REQUESTS_CA_BUNDLE", ca.clone()),
                ("SSL_CERT_FILE", ca),
            ],
            Vec::new(),
        ),
        Tool::Az => {
            let config = up["stateDir"].as_str().map(|d| format!("{d}/az")).unwrap_or_default();
            let quoted = shell_quote(&endpoint);
            (
                vec![
                    // A configuration of its own: the user's az sign-ins and clouds stay as they are.
                    ("AZURE_CONFIG_DIR", config),
                    ("REQUESTS_CA_BUNDLE", ca),
                    // MSAL would ask login.microsoftonline.com about an authority it does not
                    // know (as for Azure Stack Hub); the local cloud is its own authority.
                    ("AZURE_CORE_INSTANCE_DISCOVERY", "false".into()),
                    // Nothing leaves the machine: no telemetry to Microsoft from this az.
                    ("AZURE_CORE_COLLECT_TELEMETRY", "false".into()),
                ],
                vec![
                    format!(
                        "az cloud register -n AzdockLocal --endpoint-resource-manager {quoted} >/dev/null 2>&1 || az cloud update -n AzdockLocal --endpoint-resource-manager {quoted} >/dev/null"
                    ),
                    "az cloud set -n AzdockLocal".into(),
                    // `--password=…` in one word: a generated secret may start with `-`, which
                    // az's parser would take for an option.
                    format!(
                        "az login --service-principal --username {} --password={} --tenant {} >/dev/null",
                        shell_quote(&text("clientId")),
                        shell_quote(&text("clientSecret")),
                        shell_quote(&text("tenantId"))
                    ),
                ],
            )
        }
    }
}

/// `text` as one POSIX shell word.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_pointed_at_the_cloud_up_printed() {
        let up = json!({"endpoint": "https://127.0.0.1:8443", "tenantId": "t", "clientId": "c", "clientSecret": "-s'x",
                        "subscriptionId": "sub", "caCertificate": "/state dir/tls/ca.pem", "stateDir": "/state dir"});
        let (vars, commands) = tool_env(&up, Tool::Sdk);
        let get = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AZURE_AUTHORITY_HOST"), Some("https://127.0.0.1:8443"));
        assert_eq!(get("AZURE_RESOURCE_MANAGER_URL"), Some("https://127.0.0.1:8443"));
        assert_eq!(
            (get("AZURE_TENANT_ID"), get("AZURE_CLIENT_ID"), get("AZURE_CLIENT_SECRET")),
            (Some("t"), Some("c"), Some("-s'x"))
        );
        assert_eq!(
            (get("REQUESTS_CA_BUNDLE"), get("SSL_CERT_FILE")),
            (Some("/state dir/tls/ca.pem"), Some("/state dir/tls/ca.pem"))
        );
        assert_eq!(get("AZURE_SUBSCRIPTION_ID"), Some("sub"));
        assert!(commands.is_empty());
        let (vars, commands) = tool_env(&up, Tool::Az);
        assert_eq!(vars[0], ("AZURE_CONFIG_DIR", "/state dir/az".to_owned()));
        assert!(vars.contains(&("AZURE_CORE_INSTANCE_DISCOVERY", "false".to_owned())), "{vars:?}");
        assert_eq!(commands.len(), 3);
        assert!(
            commands[0]
                .starts_with("az cloud register -n AzdockLocal --endpoint-resource-manager 'https://127.0.0.1:8443'")
        );
        assert_eq!(commands[1], "az cloud set -n AzdockLocal");
        // A secret that starts with `-` is still the password's value, not an option.
        assert!(commands[2].contains(" --password='-s'\\''x' "), "{}", commands[2]);
        assert_eq!(shell_quote("a b"), "'a b'");
    }

    #[test]
    fn durations_take_each_key_and_name_a_bad_one() {
        let o = RunOptions { durations: Some("network=2000, vm-create=8000,,".into()), ..RunOptions::default() };
        let d = o.durations().unwrap();
        assert_eq!((d.network, d.vm_create), (Duration::from_secs(2), Duration::from_secs(8)));
        let instant = RunOptions { instant: true, durations: Some("delete=5".into()), ..RunOptions::default() };
        let d = instant.durations().unwrap();
        assert_eq!((d.network, d.delete), (Duration::ZERO, Duration::from_millis(5)));
        for bad in ["network", "disk=5", "network=soon"] {
            let e = RunOptions { durations: Some(bad.into()), ..RunOptions::default() }.durations().unwrap_err();
            assert!(e.is_usage() && e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn options_become_serve_s_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let faults = dir.path().join("f.json");
        let o = RunOptions {
            port: Some(8443),
            instant: true,
            no_throttle: true,
            durations: Some("network=1".into()),
            faults: Some(faults.clone()),
            first_boot_lock: Some(30),
            record: Some(dir.path().join("records")),
        };
        let args: Vec<String> = o.to_args().unwrap().into_iter().map(|a| a.into_string().unwrap()).collect();
        let f = faults.to_string_lossy().into_owned();
        assert_eq!(
            args,
            [
                "--port",
                "8443",
                "--instant",
                "--no-throttle",
                "--durations",
                "network=1",
                "--faults",
                &f,
                "--first-boot-lock",
                "30",
                "--record",
                &dir.path().join("records").to_string_lossy()
            ]
        );
        assert!(RunOptions::default().to_args().unwrap().is_empty());
        // The fault file: missing, not JSON, bad rules, and good.
        assert!(!o.faults().unwrap_err().is_usage());
        std::fs::write(&faults, "{").unwrap();
        assert!(o.faults().unwrap_err().to_string().contains("invalid fault file"));
        std::fs::write(&faults, r#"{"rules": [{"sequence": "no"}]}"#).unwrap();
        assert!(o.faults().unwrap_err().to_string().contains("invalid fault rules"));
        std::fs::write(&faults, r#"{"seed": 7, "rules": [{"method": "PUT", "fault": {"kind": "drop"}}]}"#).unwrap();
        let (seed, rules) = o.faults().unwrap().unwrap();
        assert_eq!((seed, rules.len()), (7, 1));
        assert!(RunOptions::default().faults().unwrap().is_none());
    }

    #[test]
    fn a_runtime_file_counts_only_while_its_process_is_the_one_that_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let service = Service::new(dir.path().to_owned());
        assert!(service.running().is_none());
        let me = u64::from(std::process::id());
        std::fs::write(service.server(), json!({"pid": me, "startTime": started(me)}).to_string()).unwrap();
        assert!(service.running().is_some());
        // The same pid, started at another time: after a reboot, someone else's process.
        let other = started(me).unwrap() + 1;
        std::fs::write(service.server(), json!({"pid": me, "startTime": other}).to_string()).unwrap();
        assert!(service.running().is_none());
        assert!(alive(me) && started(me).is_some());
        assert!(!alive(u64::from(u32::MAX)));
        assert_eq!(service.down().unwrap(), "not running");
    }
}
