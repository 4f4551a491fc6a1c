//! Docker hosts: the record of the hosts azdock set up (what `docker env`, docker contexts,
//! `verify` and a CA rotation need to find each again), installs and the Docker extension's other
//! actions, what a report about one says, and the docker context that points the `docker` CLI
//! at it.

mod actions;
mod install;
mod record;

pub use actions::{Pushed, Rotate, Target, base_args, install_args};
pub use install::{Install, probe_report};
pub use record::{HostRecord, Hosts};

use std::path::{Path, PathBuf};

use azdock_certs::CertStore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use azdock_core::{InstalledExtension, Transport};

use crate::probe::{DaemonInfo, Identity};
use crate::vm::Vm;

/// One Docker host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerHost {
    pub name: String,
    pub cloud: String,
    pub subscription: String,
    pub resource_group: String,
    /// What clients connect to: the FQDN, or the public IP in the local cloud.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    pub port: u16,
    pub handler: String,
    pub cert_dir: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cert_sans: Vec<String>,
    /// The SHA-256 fingerprint of the CA whose server certificate the host was last given:
    /// after a CA rotation that did not reach it, not the CA in its certificate directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// How clients reach the daemon; with [`Transport::Ssh`], `port` is sshd's.
    #[serde(default, skip_serializing_if = "is_tls")]
    pub transport: Transport,
    /// The user an SSH-transport host is logged in to as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_user: Option<String>,
    /// The private key azdock gave the VM's admin the public half of, when it knows it: the
    /// key its own checks log in with (without it, ssh picks, as the docker CLI's ssh does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_identity: Option<PathBuf>,
}

// serde's `skip_serializing_if` hands a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_tls(t: &Transport) -> bool {
    *t == Transport::Tls
}

/// What a Docker host was set up with beside its port, kept so a rotation can push the same.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    pub options: &'a [String],
    pub allow_from: &'a [String],
    pub cert_sans: &'a [String],
}

impl DockerHost {
    /// The host as the record keeps it, from the VM it was just set up on.
    pub fn of(vm: &Vm, address: &str, port: u16, handler: &str, cert_dir: &Path, extras: Extras<'_>) -> Self {
        Self {
            name: vm.facts.name.clone(),
            cloud: vm.facts.cloud.clone(),
            subscription: vm.addr.subscription.clone(),
            resource_group: vm.addr.resource_group.clone(),
            address: address.to_owned(),
            fqdn: vm.facts.fqdn.clone(),
            public_ip: vm.facts.public_ips.first().map(ToString::to_string),
            port,
            handler: handler.to_owned(),
            cert_dir: cert_dir.to_owned(),
            options: extras.options.to_vec(),
            allow_from: extras.allow_from.to_vec(),
            cert_sans: extras.cert_sans.to_vec(),
            ca: None,
            transport: Transport::Tls,
            ssh_user: None,
            ssh_identity: None,
        }
    }

    /// The host reached over SSH as `user` on sshd's `port` instead, with `identity` (a
    /// private key's path) when known.
    #[must_use]
    pub fn over_ssh(self, user: &str, port: u16, identity: Option<&Path>) -> Self {
        Self {
            transport: Transport::Ssh,
            ssh_user: Some(user.to_owned()),
            ssh_identity: identity.map(Path::to_owned),
            port,
            ..self
        }
    }

    /// Whether a new CA for `cert_dir` is pushed to this host: a TLS host of that directory (a
    /// host reached over SSH has no certificates).
    pub fn rotates_with(&self, cert_dir: &Path) -> bool {
        self.transport == Transport::Tls && actions::same_dir(&self.cert_dir, cert_dir)
    }

    /// Whether a CA rotation has not reached this TLS host yet.
    pub fn awaits_ca(&self) -> bool {
        self.transport == Transport::Tls && self.ca_state() == CaState::Old
    }

    /// Whether the host carries the CA now in its certificate directory.
    pub fn ca_state(&self) -> CaState {
        match (&self.ca, ca_fingerprint(&self.cert_dir)) {
            (Some(given), Some(now)) if *given == now => CaState::Current,
            (Some(_), Some(_)) => CaState::Old,
            _ => CaState::Unknown,
        }
    }

    /// The VM's [`azdock_core::vm_identity`], which its server certificate is recorded for.
    pub fn identity(&self) -> String {
        azdock_core::vm_identity(
            &self.cloud,
            &crate::VmAddr::new(&self.subscription, &self.resource_group, &self.name).path(),
        )
    }

    /// Docker's `DOCKER_HOST`: `tcp://<address>:<port>`, or `ssh://<user>@<address>` (with
    /// `:<port>` off port 22).
    pub fn docker_host(&self) -> String {
        let address = if self.address.contains(':') { format!("[{}]", self.address) } else { self.address.clone() };
        match self.transport {
            Transport::Tls => format!("tcp://{address}:{}", self.port),
            Transport::Ssh => {
                let user = self.ssh_user.as_deref().unwrap_or("azureuser");
                if self.port == 22 {
                    format!("ssh://{user}@{address}")
                } else {
                    format!("ssh://{user}@{address}:{}", self.port)
                }
            }
        }
    }

    /// The docker command line that reaches the host without a context.
    pub fn connect_line(&self) -> String {
        match self.transport {
            Transport::Tls => format!("docker --tlsverify -H {} info", self.docker_host()),
            Transport::Ssh => format!("docker -H {} info", self.docker_host()),
        }
    }
}

/// Whether a host's server certificate comes from the CA in its certificate directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CaState {
    Current,
    /// A CA rotation has not reached the host yet: clients with the new client certificate
    /// cannot connect until `rotate-certs --finish` gives it a certificate from the new CA.
    Old,
    /// Recorded before azdock kept track, or the directory has no readable CA.
    Unknown,
}

/// The SHA-256 fingerprint of the CA in a certificate directory, if it holds a readable one.
pub fn ca_fingerprint(cert_dir: &Path) -> Option<String> {
    let path = CertStore::new(cert_dir).ca_path();
    let text = std::fs::read_to_string(&path).ok()?;
    azdock_certs::inspect::CertFile::parse(&path, text).ok().map(|c| c.fingerprint())
}

/// The client identity in a certificate directory, for probes.
pub fn identity(cert_dir: &Path) -> Identity {
    let store = CertStore::new(cert_dir);
    Identity { ca: store.ca_path(), cert: store.client_cert_path(), key: store.client_key_path() }
}

/// The server certificate's names and expiry, from the cert directory: the certificate of the
/// VM `owner` (its [`azdock_core::vm_identity`]) named `name`.
pub fn certificate_info(cert_dir: &Path, name: &str, owner: &str) -> Value {
    let store = CertStore::new(cert_dir);
    let (cert, _) = store.server_paths(&store.server_name(name, Some(owner)));
    match std::fs::read_to_string(&cert).map(|t| azdock_certs::inspect::CertFile::parse(&cert, t)) {
        Ok(Ok(c)) => {
            json!({"file": cert, "sans": c.sans(), "notAfter": azdock_certs::inspect::rfc3339(c.not_after()), "daysLeft": c.days_left()})
        }
        _ => json!({"file": cert, "missing": true}),
    }
}

/// What a daemon said about itself, for reports.
pub fn daemon_json(info: &DaemonInfo) -> Value {
    json!({"status": "running", "version": info.version["Version"], "apiVersion": info.version["ApiVersion"], "os": info.version["Os"]})
}

/// What the commands print about a host.
pub fn report(host: &DockerHost, daemon: &Value, certificate: &Value, context: Option<&str>) -> Value {
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
        "transport": host.transport,
        "connect": host.connect_line(),
    })
}

/// Creates or updates the docker context `name` with the host and the client certificates, when
/// the `docker` CLI is installed. Returns the context name, or why there is none.
pub fn docker_context(host: &DockerHost, name: &str) -> std::result::Result<String, String> {
    let store = CertStore::new(&host.cert_dir);
    let endpoint = match host.transport {
        Transport::Tls => format!(
            "host={},ca={},cert={},key={}",
            host.docker_host(),
            store.ca_path().display(),
            store.client_cert_path().display(),
            store.client_key_path().display()
        ),
        // The docker CLI runs ssh itself, with the user's keys and the pinned known_hosts.
        Transport::Ssh => format!("host={}", host.docker_host()),
    };
    let exists = std::process::Command::new("docker")
        .args(["context", "inspect", name])
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
            name,
            "--description",
            &format!("azdock: {} in {}", host.name, host.resource_group),
            "--docker",
            &endpoint,
        ])
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if out.status.success() {
        Ok(name.to_owned())
    } else {
        Err(format!("`docker context {verb}` failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Docker hosts set up before the host tagged instances with their owner are known from the
/// record: the handler instance of a recorded host (same VM name and group, the recorded
/// handler's type) is Docker's.
pub fn recorded_owner(hosts: &Hosts, cloud: &str, vm: &crate::VmAddr, instance: &InstalledExtension) -> Option<String> {
    let host = hosts.at(cloud, vm)?;
    let kind = match host.handler.as_str() {
        "customscript" => "CustomScript",
        "legacy" => "DockerExtension",
        _ => return None,
    };
    instance.kind.eq_ignore_ascii_case(kind).then(|| "docker".to_owned())
}

#[cfg(test)]
mod tests {
    use super::install::{install_daemon, install_waits};
    use super::*;
    use crate::dispatch::Ran;
    use azdock_core::Args;

    pub(super) fn host(name: &str, group: &str) -> DockerHost {
        DockerHost {
            name: name.into(),
            cloud: "local".into(),
            subscription: "s".into(),
            resource_group: group.into(),
            address: "127.1.0.4".into(),
            fqdn: None,
            public_ip: Some("127.1.0.4".into()),
            port: 2376,
            handler: "customscript".into(),
            cert_dir: "/c".into(),
            options: vec![],
            allow_from: vec![],
            cert_sans: vec![],
            ca: None,
            transport: Transport::Tls,
            ssh_user: None,
            ssh_identity: None,
        }
    }

    #[test]
    fn a_recorded_host_s_untagged_handler_instance_is_docker_s() {
        let instance = |kind: &str| InstalledExtension {
            name: "x".into(),
            publisher: "p".into(),
            kind: kind.into(),
            type_handler_version: "1".into(),
            provisioning_state: None,
            settings: Value::Null,
            statuses: vec![],
            substatuses: vec![],
            owner: None,
        };
        let mut legacy = host("old", "g2");
        legacy.handler = "legacy".into();
        let mut cloud_init = host("ci", "g3");
        cloud_init.handler = "cloud-init".into();
        let dir = tempfile::tempdir().unwrap();
        let record = HostRecord::new(dir.path());
        for h in [host("web", "G1"), legacy, cloud_init] {
            record.record(h).unwrap();
        }
        let hosts = record.load().unwrap();
        let owner = |vm: &str, group: &str, kind: &str| {
            recorded_owner(&hosts, "local", &crate::VmAddr::new("s", group, vm), &instance(kind))
        };
        assert_eq!(owner("web", "g1", "customscript").as_deref(), Some("docker"));
        assert_eq!(owner("old", "g2", "DockerExtension").as_deref(), Some("docker"));
        // Another handler's instance, another group's VM, an unrecorded VM, a cloud-init host.
        assert_eq!(owner("web", "g1", "DockerExtension"), None);
        assert_eq!(owner("old", "g2", "CustomScript"), None);
        assert_eq!(owner("web", "other", "CustomScript"), None);
        assert_eq!(owner("new", "g1", "CustomScript"), None);
        assert_eq!(owner("ci", "g3", "CustomScript"), None);
        let other_cloud =
            recorded_owner(&hosts, "AzureCloud", &crate::VmAddr::new("s", "g1", "web"), &instance("CustomScript"));
        assert_eq!(other_cloud, None);
    }

    #[test]
    fn an_install_waits_and_reports_the_daemon_as_it_can() {
        let all = install_waits(true, true);
        assert!(all.operation && all.endpoints && all.endpoint_required);
        let no_daemon = install_waits(true, false);
        assert!(no_daemon.operation && !no_daemon.endpoints);
        let no_wait = install_waits(false, true);
        assert!(!no_wait.operation && !no_wait.endpoints);
        let info =
            DaemonInfo { ping: "OK".into(), version: json!({"Version": "27.0", "ApiVersion": "1.46", "Os": "linux"}) };
        let answered = Ok(Some(info));
        assert_eq!(install_daemon(Some(&answered), true, None)["version"], "27.0");
        assert_eq!(install_daemon(None, false, None), json!({"status": "not checked (--no-wait)"}));
        assert_eq!(
            install_daemon(None, true, Some("no dockerd")),
            json!({"status": "cannot run locally", "reason": "no dockerd"})
        );
        assert_eq!(install_daemon(Some(&Err("refused".into())), true, None), json!({"status": "unreachable"}));
        assert_eq!(install_daemon(None, true, None), json!({"status": "unreachable"}));
    }

    fn ran(action: &str, port: Option<i64>, endpoint: Option<crate::execute::Endpoint>) -> Ran {
        let mut args = Args::new();
        if let Some(p) = port {
            args.insert("port".into(), azdock_core::ArgValue::Integer(p));
        }
        let mut ran = crate::dispatch::tests::ran(action, args, azdock_core::Operation::Inspect);
        ran.outcome.endpoint = endpoint;
        ran
    }

    #[test]
    fn status_and_verify_report_what_the_plan_found() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = |answer| crate::execute::Endpoint {
            host: "127.1.0.9".into(),
            port: 2300,
            admitted_by: Some("webNSG/azdock-docker".into()),
            answer,
        };
        let info = DaemonInfo { ping: "OK".into(), version: json!({"Version": "27.0", "ApiVersion": "1.46"}) };
        let instance = InstalledExtension {
            name: "docker".into(),
            publisher: "Microsoft.Azure.Extensions".into(),
            kind: "CustomScript".into(),
            type_handler_version: "2.1".into(),
            provisioning_state: Some("Succeeded".into()),
            settings: Value::Null,
            statuses: vec![azdock_core::Status {
                code: "ProvisioningState/succeeded".into(),
                level: None,
                display_status: None,
                message: Some("installed".into()),
            }],
            substatuses: vec![],
            owner: None,
        };
        let up = ran("status", Some(2300), Some(endpoint(Ok(Some(info.clone())))));
        let status = probe_report(&up, dir.path(), Some(("customscript", &instance)), false).unwrap();
        assert_eq!(status["dockerHost"], "tcp://127.1.0.9:2300");
        assert_eq!(
            (status["handler"].as_str(), status["daemon"]["status"].as_str()),
            (Some("customscript"), Some("running"))
        );
        assert_eq!(status["extension"]["message"], "installed");
        assert_eq!(status["nsgRule"], "webNSG/azdock-docker");
        assert_eq!(status["powerState"], "running");
        let verified = probe_report(&up, dir.path(), None, true).unwrap();
        assert_eq!(verified["checks"]["version"], "27.0");
        assert_eq!(verified["checks"]["tlsHandshake"], "ok");
        assert_eq!(verified["handler"], Value::Null);
        // Not answering: a status says why, a verify fails.
        let down = ran("status", None, Some(endpoint(Err("connection refused".into()))));
        let status = probe_report(&down, dir.path(), None, false).unwrap();
        assert_eq!(status["daemon"], json!({"status": "unreachable", "reason": "connection refused"}));
        assert_eq!((status["port"].as_u64(), status["extension"].clone()), (Some(2376), Value::Null));
        assert_eq!(status["handler"], "none");
        assert!(probe_report(&down, dir.path(), None, true).unwrap_err().to_string().contains("did not answer"));
        let unseen = probe_report(&ran("status", Some(1), None), dir.path(), None, false).unwrap();
        assert_eq!(unseen["daemon"], json!({"status": "unreachable"}));
        assert_eq!(unseen["port"], 1);
        for bad in [0, 70_000, -1] {
            let e = probe_report(&ran("status", Some(bad), None), dir.path(), None, false).unwrap_err();
            assert!(e.is_usage() && e.to_string().contains(&format!("port {bad} is not a TCP port")), "{e}");
        }
        let how = Install {
            action: "install",
            handler: "customscript",
            cert_dir: dir.path(),
            extras: Extras::default(),
            wait: true,
            take_over: false,
            prepare: None,
            cannot_run: None,
        };
        assert!(format!("{how:?}").contains("install") && format!("{how:?}").contains("customscript"));
    }

    #[test]
    fn an_unreadable_record_is_an_error_not_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("docker-hosts.json")).unwrap();
        let e = HostRecord::new(dir.path()).load().unwrap_err().to_string();
        assert!(e.starts_with("cannot read `") && e.contains("docker-hosts.json"), "{e}");
    }

    #[test]
    fn reports_carry_the_host_the_daemon_and_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let owner = host("web", "g1").identity();
        assert_eq!(owner, "local:/subscriptions/s/resourcegroups/g1/providers/microsoft.compute/virtualmachines/web");
        let missing = certificate_info(dir.path(), "web", &owner);
        assert_eq!(missing, json!({"file": store.server_paths("web").0, "missing": true}));
        store.init(&azdock_certs::Passphrases::NONE).unwrap();
        let request = azdock_certs::ServerRequest::new("web", &["web.example".into()], &["192.0.2.7".into()]).unwrap();
        store.server(&request.clone().owned_by(&owner), &azdock_certs::Passphrases::NONE).unwrap();
        let info = certificate_info(dir.path(), "web", &owner);
        assert_eq!(info["sans"], json!(["web.example", "192.0.2.7"]));
        assert!(info["daysLeft"].as_i64().unwrap() > 300);
        assert!(info["notAfter"].as_str().unwrap().ends_with('Z'));
        // Another VM named web has its own certificate, which this one's report is not.
        let other = host("web", "g2").identity();
        assert_eq!(certificate_info(dir.path(), "web", &other)["missing"], true);
        store.server(&request.owned_by(&other), &azdock_certs::Passphrases::NONE).unwrap();
        assert_ne!(certificate_info(dir.path(), "web", &other)["file"], info["file"]);

        let daemon = daemon_json(&DaemonInfo {
            ping: "OK".into(),
            version: json!({"Version": "26.1.5", "ApiVersion": "1.45", "Os": "linux"}),
        });
        assert_eq!(daemon, json!({"status": "running", "version": "26.1.5", "apiVersion": "1.45", "os": "linux"}));
        let h = host("web", "g1");
        let r = report(&h, &daemon, &info, Some("web"));
        assert_eq!(r["name"], "web");
        assert_eq!(r["resourceGroup"], "g1");
        assert_eq!(r["dockerHost"], "tcp://127.1.0.4:2376");
        assert_eq!(r["publicIp"], "127.1.0.4");
        assert_eq!(r["port"], 2376);
        assert_eq!(r["handler"], "customscript");
        assert_eq!(r["certDir"], "/c");
        assert_eq!(r["daemon"], daemon);
        assert_eq!(r["certificate"], info);
        assert_eq!(r["context"], "web");
        assert_eq!(r["connect"], "docker --tlsverify -H tcp://127.1.0.4:2376 info");
        let id = identity(dir.path());
        assert_eq!(id.ca, store.ca_path());
        assert_eq!(id.cert, store.client_cert_path());
        assert_eq!(id.key, store.client_key_path());
    }

    #[test]
    fn a_host_over_ssh_is_reached_at_sshd_as_its_user_and_says_so() {
        let tls = host("web", "g");
        let ssh = tls.clone().over_ssh("ops", 22, Some(Path::new("/k/id")));
        assert_eq!(
            (ssh.transport, ssh.ssh_user.as_deref(), ssh.ssh_identity.as_deref(), ssh.port),
            (Transport::Ssh, Some("ops"), Some(Path::new("/k/id")), 22)
        );
        assert_eq!(ssh.docker_host(), "ssh://ops@127.1.0.4");
        assert_eq!(ssh.connect_line(), "docker -H ssh://ops@127.1.0.4 info");
        let off_22 = tls.clone().over_ssh("ops", 2222, None);
        assert_eq!(off_22.docker_host(), "ssh://ops@127.1.0.4:2222");
        assert_eq!(report(&off_22, &Value::Null, &Value::Null, None)["transport"], "ssh");
        assert_eq!(report(&tls, &Value::Null, &Value::Null, None)["transport"], "tls");
        // The record names the transport only when it is not TLS, and reads both back.
        let saved = serde_json::to_value(&tls).unwrap();
        assert!(saved.get("transport").is_none() && saved.get("sshUser").is_none(), "{saved}");
        let saved = serde_json::to_value(&ssh).unwrap();
        assert_eq!((saved["transport"].as_str(), saved["sshUser"].as_str()), (Some("ssh"), Some("ops")));
        assert_eq!(serde_json::from_value::<DockerHost>(saved).unwrap(), ssh);
        // Only TLS hosts of a directory take its new CA.
        assert!(tls.rotates_with(Path::new("/c")) && !tls.rotates_with(Path::new("/d")));
        assert!(!ssh.rotates_with(Path::new("/c")));
        let mut behind = tls.clone();
        behind.ca = Some("an older CA".into());
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        store.init(&azdock_certs::Passphrases::NONE).unwrap();
        behind.cert_dir = dir.path().to_owned();
        assert!(behind.awaits_ca());
        assert!(!behind.clone().over_ssh("ops", 22, None).awaits_ca());
        behind.ca = ca_fingerprint(dir.path());
        assert!(!behind.awaits_ca());
    }

    #[test]
    fn the_admins_ssh_key_outlives_a_switch_to_tls() {
        let dir = tempfile::tempdir().unwrap();
        let record = HostRecord::new(dir.path());
        record.record(host("web", "g").over_ssh("ops", 22, Some(Path::new("/k/id")))).unwrap();
        record.record(host("web", "g")).unwrap();
        let kept = record.load().unwrap().at("local", &crate::VmAddr::new("s", "g", "web")).cloned().unwrap();
        assert_eq!((kept.transport, kept.ssh_identity.as_deref()), (Transport::Tls, Some(Path::new("/k/id"))));
        let target = Target {
            addr: crate::VmAddr::new("s", "g", "web"),
            port: 2376,
            cert_dir: "/c".into(),
            recorded: Some(kept),
        };
        assert_eq!(target.transport(), Transport::Tls);
        let args = target.transport_args();
        assert_eq!(args.keys().collect::<Vec<_>>(), ["ssh-identity"]);
        let over_ssh = Target { recorded: Some(host("web", "g").over_ssh("ops", 2222, None)), ..target.clone() };
        assert_eq!(over_ssh.transport(), Transport::Ssh);
        let args = serde_json::to_value(over_ssh.transport_args()).unwrap();
        assert_eq!(
            args,
            json!({"transport": {"text": "ssh"}, "ssh-port": {"integer": 2222}, "ssh-user": {"text": "ops"}})
        );
        let unrecorded = Target { recorded: None, ..target };
        assert_eq!((unrecorded.transport(), unrecorded.transport_args().len()), (Transport::Tls, 0));
    }

    #[test]
    fn status_and_verify_over_ssh_report_the_login_not_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let info = DaemonInfo { ping: "OK".into(), version: json!({"Version": "20.10.24"}) };
        let mut up = ran("verify", None, None);
        up.outcome.endpoint = Some(crate::execute::Endpoint {
            host: "127.1.0.9".into(),
            port: 2222,
            admitted_by: Some("webNSG/azdock-ssh".into()),
            answer: Ok(Some(info)),
        });
        for (k, v) in [
            ("transport", azdock_core::ArgValue::Text("ssh".into())),
            ("ssh-port", azdock_core::ArgValue::Integer(2222)),
            ("ssh-user", azdock_core::ArgValue::Text("ops".into())),
        ] {
            up.request.args.insert(k.into(), v);
        }
        let verified = probe_report(&up, dir.path(), None, true).unwrap();
        assert_eq!(verified["dockerHost"], "ssh://ops@127.1.0.9:2222", "{verified}");
        assert_eq!(verified["certificate"], Value::Null);
        assert_eq!(
            verified["checks"],
            json!({"nsgRule": "webNSG/azdock-ssh", "hostKey": "pinned", "sshLogin": "ok", "version": "20.10.24"})
        );
        // The VM's admin when no user is named; a transport no one knows is refused.
        up.request.args.remove("ssh-user");
        up.vm.facts.admin_username = Some("azureuser".into());
        assert_eq!(probe_report(&up, dir.path(), None, false).unwrap()["dockerHost"], "ssh://azureuser@127.1.0.9:2222");
        up.request.args.insert("transport".into(), azdock_core::ArgValue::Text("telnet".into()));
        let e = probe_report(&up, dir.path(), None, false).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("telnet"), "{e}");
    }

    #[test]
    fn docker_host_brackets_ipv6() {
        let mut h = host("web", "g");
        assert_eq!(h.docker_host(), "tcp://127.1.0.4:2376");
        h.address = "::1".into();
        assert_eq!(h.docker_host(), "tcp://[::1]:2376");
    }
}
