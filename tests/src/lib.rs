//! Support for azdock's end-to-end tests: the built binary in an isolated home, the openssl and
//! docker CLIs, and a real `dockerd` with TLS on a loopback port.

// Test support reports what it skips and panics with context; that is its job.
#![allow(clippy::print_stderr, clippy::missing_panics_doc)]

pub mod arm;
pub mod spec;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The `azdock` binary under test: `AZDOCK_BIN`, else the one cargo built next to this test.
pub fn azdock_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("AZDOCK_BIN") {
        return bin.into();
    }
    // target/<profile>/deps/it-<hash> → target/<profile>/azdock
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("azdock");
    assert!(
        bin.exists(),
        "`{}` is missing; build it first with `cargo build -p azdock` (cargo xtask ci does)",
        bin.display()
    );
    bin
}

/// The result of a finished command.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with the whole output unless the command exited 0.
    #[track_caller]
    // Called for its assertion; callers often drop the output.
    #[allow(clippy::return_self_not_must_use)]
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "command failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs a command to completion, capturing its output. stdin is closed, as in CI.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command with `input` and a newline on its standard input (a secret for a
/// `--…-stdin` flag), collecting its output like [`run`].
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, format!("{input}\n").as_bytes()).expect("write stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An isolated user: a temp HOME and config dir, and no azdock variables from the caller.
#[derive(Debug)]
pub struct Env {
    pub home: TempDir,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

/// Where tests point IMDS: a loopback port nothing listens on (9, discard).
pub const CLOSED_IMDS: &str = "http://127.0.0.1:9";

impl Env {
    pub fn new() -> Self {
        Self { home: tempfile::tempdir().expect("temp home") }
    }

    pub fn path(&self) -> &Path {
        self.home.path()
    }

    /// `azdock` with this environment.
    pub fn azdock(&self) -> Command {
        let mut cmd = Command::new(azdock_bin());
        // Nothing of the machine's own Azure sign-in may leak in: the AZURE_* environment and
        // managed identity are cleared, and IMDS points at a closed loopback port, so that no test
        // reaches 169.254.169.254.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            let azure = k.starts_with("AZURE_") || k.starts_with("IDENTITY_") || k.starts_with("MSI_");
            // The binary under test and the traffic recording (`cargo xtask ci`) are kept.
            let kept = key == "AZDOCK_BIN" || key == "AZDOCK_LOCAL_RECORD";
            if azure || k.starts_with("AZDOCK_") && !kept {
                cmd.env_remove(key);
            }
        }
        cmd.env("AZURE_POD_IDENTITY_AUTHORITY_HOST", CLOSED_IMDS);
        cmd.env("HOME", self.path())
            .env("AZDOCK_CONFIG_DIR", self.path().join("config"))
            .env("XDG_CONFIG_HOME", self.path().join("xdg"))
            .env("XDG_DATA_HOME", self.path().join("xdg-data"))
            .env("NO_COLOR", "1");
        cmd
    }

    /// `program` with this environment's variables (what [`Env::azdock`] sets and clears), and
    /// `AZDOCK` naming the binary: for a shell that runs azdock and other tools together.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let plain = self.azdock();
        let mut cmd = Command::new(program);
        for (key, value) in plain.get_envs() {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd.env("AZDOCK", plain.get_program());
        cmd
    }

    /// Runs `azdock ARGS…`.
    pub fn run(&self, args: &[&str]) -> Output {
        run(self.azdock().args(args))
    }

    /// Replaces this environment's temp path in text with `[HOME]`, for snapshots.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.path().display().to_string(), "[HOME]")
    }
}

/// `azdock local up ARGS…` in `env`, and a plain client signed in with the principal it printed.
pub async fn local_cloud(env: &Env, args: &[&str]) -> (serde_json::Value, arm::Arm) {
    let up = env.run(&[&["local", "up"][..], args].concat()).success().json();
    let arm = arm::Arm::for_local_cloud(&up).await;
    (up, arm)
}

/// A test that fails before `azdock local down` must not leave its local cloud running.
impl Drop for Env {
    fn drop(&mut self) {
        if self.path().join("xdg-data/azdock/local/server.json").exists() {
            let _ = self
                .azdock()
                .args(["local", "down"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs openssl in `dir`, panicking with its output on failure.
#[track_caller]
pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    run(Command::new("openssl").args(args).current_dir(dir)).success()
}

/// The classic Azure CLI's openssl sequence for `azure vm docker create` (nine processes): an RSA
/// CA whose key is encrypted under `passphrase`, a server certificate for `CN=host` (the classic
/// CLI put the host only in the CN) and a clientAuth client certificate, in `dir` as `ca.pem`,
/// `ca-key.pem`, `server-cert.pem`, `server-key.pem`, `cert.pem`, `key.pem`. With `traditional`
/// the keys are written as OpenSSL 1.x did (PKCS#1; the CA key as `Proc-Type: 4,ENCRYPTED`
/// DES-EDE3-CBC); without it, as OpenSSL 3 does (PKCS#8; the CA key PBES2-encrypted).
pub fn classic_cli_pki(dir: &Path, passphrase: &str, traditional: bool) {
    std::fs::create_dir_all(dir).expect("create dir");
    std::fs::write(dir.join("extfile.cnf"), "extendedKeyUsage = clientAuth\n").expect("write extfile");
    let pass = format!("pass:{passphrase}");
    let genrsa = |out: &str, encrypt: bool| {
        let mut args = vec!["genrsa"];
        if encrypt {
            args.extend(["-des3", "-passout", &pass]);
        }
        if traditional {
            args.push("-traditional");
        }
        args.extend(["-out", out, "2048"]);
        openssl(dir, &args);
    };
    let sign = |csr: &str, out: &str, extfile: Option<&str>| {
        let mut args = vec!["x509", "-req", "-days", "365", "-sha256", "-in", csr, "-passin", &pass];
        args.extend(["-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", out]);
        if let Some(ext) = extfile {
            args.extend(["-extfile", ext]);
        }
        openssl(dir, &args);
    };
    genrsa("ca-key.pem", true);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-days",
            "365",
            "-sha256",
            "-key",
            "ca-key.pem",
            "-passin",
            &pass,
            "-subj",
            "/CN=classic-ca",
            "-out",
            "ca.pem",
        ],
    );
    genrsa("server-key.pem", false);
    openssl(
        dir,
        &["req", "-new", "-sha256", "-key", "server-key.pem", "-subj", "/CN=classic-host", "-out", "server.csr"],
    );
    sign("server.csr", "server-cert.pem", None);
    genrsa("key.pem", false);
    openssl(dir, &["req", "-new", "-key", "key.pem", "-subj", "/CN=client", "-out", "client.csr"]);
    sign("client.csr", "cert.pem", Some("extfile.cnf"));
    // The classic CLI's last step: rewrite the server key without a passphrase.
    openssl(dir, &["rsa", "-in", "server-key.pem", "-out", "server-key.pem"]);
}

/// A self-signed RSA 2048 certificate and its unencrypted PKCS#8 key, made by openssl in `dir`
/// as `<name>-cert.pem` and `<name>-key.pem` (what service-principal certificates look like).
pub fn self_signed_rsa(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (format!("{name}-cert.pem"), format!("{name}-key.pem"));
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &cert, "-subj", &subject,
            "-days", "2",
        ],
    );
    (dir.join(cert), dir.join(key))
}

/// Every file below `dir` with its contents and mode, to prove a failed command changed nothing.
pub fn snapshot_dir(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(path.clone());
                out.insert(path, (Vec::new(), meta.permissions().mode()));
            } else {
                out.insert(path.clone(), (std::fs::read(&path).expect("read"), meta.permissions().mode()));
            }
        }
    }
    out
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind").local_addr().expect("addr").port()
}

/// Only one dockerd at a time: each starts its own containerd, and two starting together on
/// two cores make the tests slow and flaky for no gain.
pub fn dockerd_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records that the running test skips its work, and why: in the file `AZDOCK_SKIP_LOG` names
/// (set by `cargo xtask ci`, which reports skipped tests as skipped, not passed), and on stderr.
pub fn skipped(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    eprintln!("skipping {test}: {why}");
    if let Some(log) = std::env::var_os("AZDOCK_SKIP_LOG") {
        use std::io::Write as _;
        // One short line per skip, appended: lines of concurrent tests do not interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{test}: {why}");
        }
    }
}

/// Whether this machine can run the real-dockerd tests. They need root and Debian's docker.io;
/// `.ci/run` installs it. Without it the tests fail, unless `AZDOCK_TESTS_WITHOUT_DOCKERD=1`
/// says on purpose that they are to be skipped here.
pub fn dockerd_available() -> bool {
    let present = Command::new("dockerd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let root = run(Command::new("id").arg("-u")).stdout.trim() == "0";
    if present && root {
        return true;
    }
    assert!(
        std::env::var_os("AZDOCK_TESTS_WITHOUT_DOCKERD").is_some(),
        "these tests need `dockerd` (Debian's docker.io) and root; install it as `.ci/run` does, or set AZDOCK_TESTS_WITHOUT_DOCKERD=1 to skip them"
    );
    skipped("no dockerd or not root, and AZDOCK_TESTS_WITHOUT_DOCKERD is set");
    false
}

/// Whether this machine can run the real-SSH tests: root, OpenSSH's sshd and ssh, and sshpass
/// (`.ci/run` installs them). Without them the tests fail, unless `AZDOCK_TESTS_WITHOUT_SSHD=1`
/// says on purpose that they are to be skipped here.
pub fn sshd_available() -> bool {
    let on_path = |tool: &str| {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    let root = run(Command::new("id").arg("-u")).stdout.trim() == "0";
    if root && Path::new("/usr/sbin/sshd").is_file() && on_path("ssh") && on_path("sshpass") {
        return true;
    }
    assert!(
        std::env::var_os("AZDOCK_TESTS_WITHOUT_SSHD").is_some(),
        "these tests need root, `sshd` (Debian's openssh-server), `ssh` and `sshpass`; install them as `.ci/run` does, or set AZDOCK_TESTS_WITHOUT_SSHD=1 to skip them"
    );
    skipped("no sshd, ssh or sshpass, or not root, and AZDOCK_TESTS_WITHOUT_SSHD is set");
    false
}

/// `ssh` to `user@host:port` running `command`, trusting no known_hosts file and no agent:
/// with `password` (given to sshpass in its environment, never in argv) or with `key`.
pub fn ssh_to(host: &str, port: u16, user: &str, password: Option<&str>, key: Option<&Path>, command: &str) -> Output {
    let mut cmd = if password.is_some() { Command::new("sshpass") } else { Command::new("ssh") };
    if let Some(p) = password {
        cmd.arg("-e").arg("ssh").env("SSHPASS", p);
    }
    cmd.args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "-o", "NumberOfPasswordPrompts=1"])
        .arg("-p")
        .arg(port.to_string())
        .env_remove("SSH_AUTH_SOCK");
    match (password, key) {
        (Some(_), _) => cmd.args(["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"]),
        (None, Some(k)) => cmd
            .args(["-o", "PreferredAuthentications=publickey", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-i"])
            .arg(k),
        (None, None) => cmd.args(["-o", "BatchMode=yes"]),
    };
    run(cmd.arg(format!("{user}@{host}")).arg(command))
}

/// A real dockerd listening with `--tlsverify` on a loopback address.
#[derive(Debug)]
pub struct Dockerd {
    child: Child,
    pub addr: SocketAddr,
    dir: TempDir,
    /// The CA, server certificate and key it was started with.
    tls: [PathBuf; 3],
}

impl Dockerd {
    /// Starts dockerd with this CA, server certificate and key on `127.0.0.1:<free port>`, and
    /// waits (at most 30 s) until it accepts connections.
    pub fn start(ca: &Path, cert: &Path, key: &Path) -> Self {
        let dir = tempfile::tempdir().expect("dockerd dir");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let tls = [ca, cert, key].map(Path::to_owned);
        let child = Self::spawn(dir.path(), addr, &tls);
        let mut daemon = Self { child, addr, dir, tls };
        daemon.await_listening();
        daemon
    }

    fn spawn(dir: &Path, addr: SocketAddr, [ca, cert, key]: &[PathBuf; 3]) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("dockerd.log")).expect("log");
        let mut cmd = Command::new("dockerd");
        cmd.args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs", "--tlsverify"])
            .arg(format!("--data-root={}", dir.join("data").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", dir.join("dockerd.pid").display()))
            .arg(format!("--tlscacert={}", ca.display()))
            .arg(format!("--tlscert={}", cert.display()))
            .arg(format!("--tlskey={}", key.display()))
            .arg(format!("-H=tcp://{addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            // Its own process group, so stopping it also stops the containerd it starts.
            .process_group(0);
        cmd.spawn().expect("start dockerd")
    }

    /// Waits (at most 30 s) until dockerd accepts connections.
    fn await_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dockerd exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "dockerd did not listen on {} within 30 s:\n{}", self.addr, self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops dockerd (SIGTERM to its group, SIGKILL after 10 s) and waits until it is gone.
    pub fn stop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }

    /// Starts a stopped dockerd again on the same address, as `systemctl restart docker` does,
    /// and waits until it listens.
    pub fn start_again(&mut self) {
        self.child = Self::spawn(self.dir.path(), self.addr, &self.tls);
        self.await_listening();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// Waits (at most 5 s) for dockerd to log `needle`; its log is written asynchronously.
    pub fn log_contains(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs the real docker CLI against this daemon with a client identity.
    pub fn docker(&self, ca: &Path, cert: &Path, key: &Path, args: &[&str]) -> Output {
        self.docker_at(&self.addr.to_string(), ca, cert, key, args)
    }

    /// Like [`Dockerd::docker`], dialling `host:port` (a name or address that reaches it).
    pub fn docker_at(&self, host: &str, ca: &Path, cert: &Path, key: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_CONFIG", self.dir.path().join("client-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .arg("--tlsverify")
            .arg(format!("--tlscacert={}", ca.display()))
            .arg(format!("--tlscert={}", cert.display()))
            .arg(format!("--tlskey={}", key.display()))
            .arg(format!("--host=tcp://{host}"))
            .args(args);
        run(&mut cmd)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGKILLs a process and waits (at most 10 s) until it is dead — gone or a zombie: a process in
/// uninterruptible I/O (an fsync) finishes it before the signal takes it.
pub fn kill_and_wait(pid: u64) {
    let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill");
    assert!(killed.success(), "pid {pid} was not running");
    for _ in 0..200 {
        let dead = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
        });
        if dead {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("pid {pid} did not die within 10 s of SIGKILL");
}
