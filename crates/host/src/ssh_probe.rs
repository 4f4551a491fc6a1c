//! Reaching a Docker daemon the way the docker CLI does for `ssh://user@host`: OpenSSH's own
//! `ssh` logs in with the user's key, checking the host key against the pinned known_hosts
//! (never accepting a new one), and runs `docker version` on the VM, which talks to dockerd's
//! unix socket as that user. A failure is told in words: host key changed, key refused, sshd
//! not answering, docker group missing.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::probe::DaemonInfo;

/// Where and as whom to log in.
#[derive(Debug, Clone, Copy)]
pub struct SshTarget<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub known_hosts: &'a Path,
    /// The private key to use; `None`: what ssh picks (agent, `~/.ssh/id_*`, ssh config).
    pub identity: Option<&'a Path>,
}

/// Why the daemon could not be reached over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshFailure {
    /// The VM presented another host key than the pinned one (the fingerprint it presented).
    HostKeyChanged(Option<String>),
    /// No key is pinned for the host.
    HostKeyUnknown,
    /// sshd refused the user's key (or password-less login).
    KeyRefused(String),
    /// Nothing answered, or sshd closed the connection: the VM is booting or off, or the NSG
    /// drops SSH. Worth a retry.
    NotAnswering(String),
    /// The user is not in the VM's `docker` group.
    DockerGroupMissing,
    /// dockerd's socket does not answer (not started yet): worth a retry.
    DaemonDown(String),
    /// The VM has no docker CLI.
    DockerMissing,
    /// `ssh` is not installed here.
    NoSshClient(String),
    Other(String),
}

impl SshFailure {
    /// Failures that waiting will not fix.
    pub fn permanent(&self) -> bool {
        !matches!(self, Self::NotAnswering(_) | Self::DaemonDown(_))
    }

    /// What the user is told, naming the host and the files involved.
    pub fn explain(&self, target: &SshTarget<'_>) -> String {
        let at = format!("{}@{}", target.user, crate::known_hosts::pattern(target.host, target.port));
        let known = target.known_hosts.display();
        match self {
            Self::HostKeyChanged(presented) => format!(
                "the SSH host key of {} changed: it presented {} instead of the key pinned in {known}. If the VM was re-created, `azdock ext docker install --transport ssh` pins its new keys; otherwise do not connect: someone may be between you and the VM",
                target.host,
                presented.as_deref().unwrap_or("another key")
            ),
            Self::HostKeyUnknown => format!(
                "no SSH host key of {} is pinned in {known}: azdock pins the keys the VM reports when Docker is installed with --transport ssh (run that again); it never trusts a key on first use",
                target.host
            ),
            Self::KeyRefused(detail) => format!(
                "the VM's sshd refused {at}'s key ({detail}): the VM must have your public key for {} (`azdock ext vmaccess set-ssh-key`), and ssh must offer its private key",
                target.user
            ),
            Self::NotAnswering(detail) => format!(
                "sshd on {}:{} is not answering ({detail}): the VM may be stopped or still booting, or its NSG may not admit SSH from here",
                target.host, target.port
            ),
            Self::DockerGroupMissing => format!(
                "{} logged in, but is not in the VM's docker group, so dockerd's socket refused it: run `azdock ext docker install --transport ssh` again to add it",
                target.user
            ),
            Self::DaemonDown(detail) => format!("dockerd on the VM is not answering on its socket: {detail}"),
            Self::DockerMissing => "the VM has no docker command: Docker is not installed there".into(),
            Self::NoSshClient(e) => format!("cannot run ssh ({e}): install OpenSSH's client"),
            Self::Other(detail) => format!("ssh {at} failed: {detail}"),
        }
    }
}

/// What ssh and docker said on stderr, read as a failure.
pub fn classify(code: Option<i32>, stderr: &str) -> SshFailure {
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        let presented =
            stderr.split_whitespace().find(|w| w.starts_with("SHA256:")).map(|w| w.trim_end_matches('.').to_owned());
        return SshFailure::HostKeyChanged(presented);
    }
    if stderr.contains("Host key verification failed") {
        return SshFailure::HostKeyUnknown;
    }
    if stderr.contains("Permission denied (") {
        return SshFailure::KeyRefused(last);
    }
    if stderr.contains("permission denied while trying to connect to the Docker daemon socket") {
        return SshFailure::DockerGroupMissing;
    }
    if stderr.contains("Cannot connect to the Docker daemon") {
        return SshFailure::DaemonDown(last);
    }
    if code == Some(127) || stderr.contains("docker: command not found") || stderr.contains("docker: not found") {
        return SshFailure::DockerMissing;
    }
    let unreachable = [
        "Connection refused",
        "Connection timed out",
        "No route to host",
        "Connection closed by",
        "Connection reset",
        "kex_exchange_identification",
        "Network is unreachable",
    ];
    if code == Some(255) && unreachable.iter().any(|m| stderr.contains(m)) {
        return SshFailure::NotAnswering(last);
    }
    SshFailure::Other(if last.is_empty() { format!("exit status {code:?}") } else { last })
}

/// OpenSSH's client, found on `PATH` as the docker CLI finds it.
const SSH: &str = "ssh";
/// How much longer than ssh's own connect timeout a login may take before it is abandoned.
const GRACE: Duration = Duration::from_secs(2);

/// The ssh command line (no secret on it: a key is named by its path).
fn command(program: &str, target: &SshTarget<'_>, timeout: Duration) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", target.known_hosts.display()))
        .arg("-o")
        .arg(format!("ConnectTimeout={}", timeout.as_secs().max(1)))
        .arg("-p")
        .arg(target.port.to_string())
        .arg("-l")
        .arg(target.user);
    if let Some(identity) = target.identity {
        cmd.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(identity);
    }
    cmd.arg("--").arg(target.host).arg("docker version --format '{{json .}}'");
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    cmd
}

/// `docker version` on the VM through one SSH login.
pub async fn docker(target: &SshTarget<'_>, timeout: Duration) -> Result<DaemonInfo, SshFailure> {
    docker_with(SSH, target, timeout).await
}

async fn docker_with(program: &str, target: &SshTarget<'_>, timeout: Duration) -> Result<DaemonInfo, SshFailure> {
    let run = command(program, target, timeout).output();
    let out = match tokio::time::timeout(timeout + GRACE, run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(SshFailure::NoSshClient(e.to_string())),
        Err(_) => return Err(SshFailure::NotAnswering(format!("no answer within {} s", timeout.as_secs()))),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(classify(out.status.code(), &stderr));
    }
    let version: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    match &version["Server"] {
        Value::Object(_) => Ok(DaemonInfo { ping: "OK".into(), version: version["Server"].clone() }),
        _ => Err(classify(out.status.code(), &stderr)),
    }
}

/// Tries until the daemon answers or `timeout` passes (at least once); permanent failures end
/// the wait at once.
pub async fn wait(target: &SshTarget<'_>, timeout: Duration) -> Result<DaemonInfo, SshFailure> {
    crate::probe::retry(timeout, || docker(target, Duration::from_secs(10)), SshFailure::permanent).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_and_docker_errors_are_told_in_words() {
        let changed = "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nThe fingerprint for the ED25519 key sent by the remote host is\nSHA256:abcDEF.\nHost key verification failed.\n";
        assert_eq!(classify(Some(255), changed), SshFailure::HostKeyChanged(Some("SHA256:abcDEF".into())));
        assert_eq!(
            classify(
                Some(255),
                "No ED25519 host key is known for x and you have requested strict checking.\nHost key verification failed.\n"
            ),
            SshFailure::HostKeyUnknown
        );
        assert!(matches!(
            classify(Some(255), "u@h: Permission denied (publickey,password).\n"),
            SshFailure::KeyRefused(_)
        ));
        assert_eq!(
            classify(
                Some(1),
                "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: …"
            ),
            SshFailure::DockerGroupMissing
        );
        let down = classify(
            Some(1),
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
        );
        assert!(matches!(down, SshFailure::DaemonDown(_)) && !down.permanent());
        assert_eq!(classify(Some(127), "bash: line 1: docker: command not found"), SshFailure::DockerMissing);
        let refused = classify(Some(255), "ssh: connect to host 127.1.0.5 port 22: Connection refused\n");
        assert!(matches!(refused, SshFailure::NotAnswering(_)) && !refused.permanent());
        assert!(matches!(classify(Some(255), "something else"), SshFailure::Other(_)));
        assert!(matches!(classify(Some(1), "Connection refused"), SshFailure::Other(_)));
        let target = SshTarget { host: "h", port: 2222, user: "u", known_hosts: Path::new("/k"), identity: None };
        assert!(SshFailure::HostKeyChanged(None).explain(&target).contains("changed"));
        assert!(SshFailure::KeyRefused("x".into()).explain(&target).contains("u@[h]:2222"));
        assert!(SshFailure::DockerGroupMissing.explain(&target).contains("docker group"));
        assert!(SshFailure::NotAnswering("x".into()).explain(&target).contains("not answering"));
        // What waiting cannot fix ends a wait; a daemon or sshd still starting does not.
        for permanent in [
            SshFailure::HostKeyChanged(None),
            SshFailure::HostKeyUnknown,
            SshFailure::KeyRefused(String::new()),
            SshFailure::DockerGroupMissing,
            SshFailure::DockerMissing,
        ] {
            assert!(permanent.permanent(), "{permanent:?}");
        }
        // The detail is the last line said, blank lines after it aside.
        assert_eq!(
            classify(Some(255), "first\nu@h: Permission denied (publickey).\n\n  \n"),
            SshFailure::KeyRefused("u@h: Permission denied (publickey).".into())
        );
        assert_eq!(classify(Some(1), "sh: 1: docker: not found"), SshFailure::DockerMissing);
        assert_eq!(classify(Some(1), "bash: docker: command not found"), SshFailure::DockerMissing);
        assert_eq!(classify(Some(127), "anything"), SshFailure::DockerMissing);
        assert_eq!(classify(Some(2), ""), SshFailure::Other("exit status Some(2)".into()));
    }

    /// A stand-in for ssh that records its arguments and answers as told.
    fn fake_ssh(dir: &Path, body: &str) -> String {
        let path = dir.join("ssh");
        std::fs::write(&path, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}/args\n{body}\n", dir.display())).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[tokio::test]
    async fn one_login_runs_docker_version_with_the_pinned_keys_and_reads_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let known = dir.path().join("known_hosts");
        let key = dir.path().join("id");
        let target =
            SshTarget { host: "127.1.0.5", port: 2222, user: "ops", known_hosts: &known, identity: Some(&key) };
        let answers = fake_ssh(dir.path(), r#"echo '{"Client":{},"Server":{"Version":"20.10.24"}}'"#);
        let info = docker_with(&answers, &target, Duration::from_secs(3)).await.unwrap();
        assert_eq!((info.ping.as_str(), info.version["Version"].as_str()), ("OK", Some("20.10.24")));
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        let args: Vec<&str> = args.lines().collect();
        let known_opt = format!("UserKnownHostsFile={}", known.display());
        for expected in [
            &["-o", "BatchMode=yes"][..],
            &["-o", "StrictHostKeyChecking=yes"],
            &["-o", &known_opt],
            &["-o", "ConnectTimeout=3"],
            &["-p", "2222"],
            &["-l", "ops"],
            &["-o", "IdentitiesOnly=yes", "-i", key.to_str().unwrap()],
            &["--", "127.1.0.5", "docker version --format '{{json .}}'"],
        ] {
            assert!(args.windows(expected.len()).any(|w| w == expected), "{expected:?} in {args:?}");
        }
        // Without a key, ssh picks one.
        let any_key = SshTarget { identity: None, ..target };
        docker_with(&answers, &any_key, Duration::from_secs(3)).await.unwrap();
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert!(!args.contains("IdentitiesOnly") && !args.lines().any(|l| l == "-i"), "{args}");

        // A failed login is read from what ssh said; no server in the answer is a daemon down.
        let refused = fake_ssh(dir.path(), "echo 'Host key verification failed.' >&2; exit 255");
        assert_eq!(
            docker_with(&refused, &target, Duration::from_secs(3)).await.unwrap_err(),
            SshFailure::HostKeyUnknown
        );
        let no_server = fake_ssh(
            dir.path(),
            r#"echo '{"Client":{},"Server":null}'; echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2"#,
        );
        let down = docker_with(&no_server, &target, Duration::from_secs(3)).await.unwrap_err();
        assert!(matches!(down, SshFailure::DaemonDown(_)), "{down:?}");
        // A login that hangs is given up, as not answering, soon after ssh's own timeout.
        let hangs = fake_ssh(dir.path(), "exec sleep 30");
        let started = std::time::Instant::now();
        let slow = docker_with(&hangs, &target, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(slow, SshFailure::NotAnswering(_)), "{slow:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        let missing = docker_with("/nonexistent/ssh", &target, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(missing, SshFailure::NoSshClient(_)), "{missing:?}");
    }
}
