//! The Docker extension's actions on VMs that exist — status and verify (its own plans),
//! uninstall (the record forgets the host) — and pushing new certificates: to one host, or after
//! a CA rotation to every host of that certificate directory, in parallel and each to its end,
//! with the record saying which still carry the old CA until a `--finish` run reaches them.

use std::path::{Path, PathBuf};

use azdock_core::{ArgValue, Args, PlanRequest, Transport, VmExtension};
use serde_json::{Value, json};

use super::install::Install;
use super::{CaState, DockerHost, Extras, HostRecord, ca_fingerprint, certificate_info, probe_report, report};
use crate::dispatch::{Host, Invocation};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::execute::Waits;
use crate::target::VmAddr;

/// Docker's TLS port, which the extension's manifest defaults to.
const DOCKER_TLS_PORT: u16 = 2376;

/// The arguments every Docker action takes: its port and certificate directory.
pub fn base_args(port: Option<u16>, cert_dir: &Path) -> Args {
    let mut args = Args::new();
    if let Some(port) = port {
        args.insert("port".into(), ArgValue::Integer(i64::from(port)));
    }
    args.insert("docker-cert-dir".into(), ArgValue::Text(cert_dir.to_string_lossy().into_owned()));
    args
}

/// An install's arguments (a rotation's push is one): the handler and what the host is set up
/// with beside its port.
pub fn install_args(port: u16, cert_dir: &Path, handler: &str, extras: Extras<'_>) -> Args {
    let mut args = base_args(Some(port), cert_dir);
    args.insert("handler".into(), ArgValue::Text(handler.into()));
    args.insert("docker-option".into(), ArgValue::List(extras.options.to_vec()));
    args.insert("allow-from".into(), ArgValue::List(extras.allow_from.to_vec()));
    args.insert("cert-san".into(), ArgValue::List(extras.cert_sans.to_vec()));
    args
}

/// A Docker host's VM with what a command gave and what the record knows: a port or directory
/// given wins, then the recorded one, then Docker's TLS port and the default directory.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: VmAddr,
    pub port: u16,
    pub cert_dir: PathBuf,
    pub recorded: Option<DockerHost>,
}

impl Target {
    /// The target of a recorded host, as it was set up.
    fn of(host: DockerHost) -> Self {
        Self {
            addr: VmAddr::new(&host.subscription, &host.resource_group, &host.name),
            port: host.port,
            cert_dir: host.cert_dir.clone(),
            recorded: Some(host),
        }
    }

    /// How the recorded host is reached, as the Docker extension's arguments: the transport,
    /// sshd's port and the user for SSH, and the admin's SSH key when azdock knows it (a TLS
    /// host keeps it for a switch back).
    pub fn transport_args(&self) -> Args {
        let mut args = Args::new();
        let Some(host) = &self.recorded else { return args };
        if host.transport == Transport::Ssh {
            args.insert("transport".into(), ArgValue::Text(Transport::Ssh.name().into()));
            args.insert("ssh-port".into(), ArgValue::Integer(i64::from(host.port)));
            if let Some(user) = &host.ssh_user {
                args.insert("ssh-user".into(), ArgValue::Text(user.clone()));
            }
        }
        if let Some(identity) = &host.ssh_identity {
            args.insert("ssh-identity".into(), ArgValue::Text(identity.to_string_lossy().into_owned()));
        }
        args
    }

    /// How the recorded host is reached (TLS when not recorded).
    pub fn transport(&self) -> Transport {
        self.recorded.as_ref().map_or(Transport::Tls, |h| h.transport)
    }

    /// The handler the host was set up with, for a push: a cloud-init host is updated through
    /// CustomScript, as any host set up without a handler instance.
    fn handler(&self) -> &str {
        match self.recorded.as_ref().map(|h| h.handler.as_str()) {
            Some("legacy") => "legacy",
            _ => "customscript",
        }
    }
}

/// A push of certificates: the Docker extension, how the caller mints a server certificate in a
/// directory (with its passphrase prompt), and how many hosts at a time.
pub struct Rotate<'a> {
    pub docker: &'a dyn VmExtension,
    pub mint: &'a dyn Fn(&Path, &PlanRequest) -> Result<()>,
    pub limit: usize,
    /// Why this machine cannot run the VMs' daemons (a local cloud without dockerd), if so.
    pub cannot_run: Option<&'a str>,
}

impl std::fmt::Debug for Rotate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotate").field("limit", &self.limit).finish_non_exhaustive()
    }
}

/// One host's part in a push.
#[derive(Debug)]
pub struct Pushed {
    pub target: Target,
    pub result: std::result::Result<Value, Error>,
}

impl Pushed {
    /// The host's row in a push's result: its report, or why it failed or was not reached.
    pub fn row(&self) -> Value {
        let (name, group) = (&self.target.addr.name, &self.target.addr.resource_group);
        match &self.result {
            Ok(report) => {
                let mut row = report.clone();
                row["status"] = json!("rotated");
                row
            }
            Err(e) => json!({"name": name, "resourceGroup": group, "status": "failed", "message": e.to_string()}),
        }
    }
}

/// Whether two paths name the same directory (a recorded one may be spelled differently).
pub(super) fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

impl Host<'_> {
    /// The name of the cloud this host works in, as the record keeps it.
    fn cloud_name(&self) -> &str {
        &self.arm.cloud().name
    }

    /// What a Docker action works on, one target per VM: the port and directory given, else
    /// the record's (read once for all of them).
    pub fn docker_targets(
        &self,
        addrs: Vec<VmAddr>,
        port: Option<u16>,
        cert_dir: Option<&Path>,
        default_dir: &Path,
    ) -> Result<Vec<Target>> {
        let hosts = HostRecord::new(self.data_dir).load()?;
        Ok(addrs
            .into_iter()
            .map(|addr| {
                let recorded = hosts.at(self.cloud_name(), &addr).cloned();
                Target {
                    port: port.or(recorded.as_ref().map(|h| h.port)).unwrap_or(DOCKER_TLS_PORT),
                    cert_dir: cert_dir
                        .map(Path::to_owned)
                        .or(recorded.as_ref().map(|h| h.cert_dir.clone()))
                        .unwrap_or_else(|| default_dir.to_owned()),
                    addr,
                    recorded,
                }
            })
            .collect())
    }

    /// `status` and `verify`: the Docker extension's own plans (an inspect, then a probe of the
    /// daemon with the client certificate). A status reports what it found, the CA its
    /// certificate comes from included; a verify fails, with the reason in words, when the
    /// daemon does not answer. `installed` finds the handler instance that set Docker up.
    pub async fn docker_probe(
        &self,
        docker: &dyn VmExtension,
        target: &Target,
        verify: bool,
        installed: impl Fn(&azdock_core::VmFacts) -> Option<(&'static str, azdock_core::InstalledExtension)>,
    ) -> Result<Value> {
        let mut args = base_args(Some(target.port), &target.cert_dir);
        args.extend(target.transport_args());
        let invocation = Invocation {
            extension: docker,
            action: if verify { "verify" } else { "status" },
            args: &args,
            waits: Waits { operation: true, endpoints: true, endpoint_required: verify },
            prepare: None,
            take_over: false,
        };
        let ran = self.run(&invocation, &target.addr).await?;
        let found = installed(&ran.vm.facts);
        let mut out = probe_report(&ran, &target.cert_dir, found.as_ref().map(|(h, e)| (*h, e)), verify)?;
        if let Some(recorded) = &target.recorded {
            out["certificate"]["ca"] = json!(recorded.ca_state());
            if recorded.ca_state() == CaState::Old {
                out["certificate"]["pending"] = json!(
                    "the host still carries the CA before the last rotation: run `azdock ext docker rotate-certs --finish`"
                );
            }
        }
        Ok(out)
    }

    /// The daemon cloud-init sets up at first boot, once it answers: the Docker extension's
    /// `verify`, given `timeout_secs` (as long as a first boot takes).
    pub async fn first_boot_daemon(
        &self,
        docker: &dyn VmExtension,
        vm: crate::Vm,
        port: u16,
        cert_dir: &Path,
        timeout_secs: u32,
    ) -> Result<Value> {
        let mut verify = base_args(Some(port), cert_dir);
        verify.insert("timeout".into(), ArgValue::Integer(i64::from(timeout_secs)));
        let invocation = Invocation {
            extension: docker,
            action: "verify",
            args: &verify,
            waits: Waits::ALL,
            prepare: None,
            take_over: false,
        };
        let ran = self.run_on(&invocation, vm).await?;
        Ok(match ran.outcome.endpoint.map(|e| e.answer) {
            Some(Ok(Some(info))) => super::daemon_json(&info),
            _ => json!({"status": "unreachable"}),
        })
    }

    /// Removes Docker's TCP listener through the extension's `uninstall` plan; the record
    /// forgets the host (its certificates stay).
    pub async fn uninstall_docker(&self, docker: &dyn VmExtension, target: &Target) -> Result<Value> {
        let mut args = Args::new();
        args.insert("port".into(), ArgValue::Integer(i64::from(target.port)));
        let invocation = Invocation {
            extension: docker,
            action: "uninstall",
            args: &args,
            waits: Waits::ALL,
            prepare: None,
            take_over: false,
        };
        self.run(&invocation, &target.addr).await?;
        HostRecord::new(self.data_dir).forget(self.cloud_name(), &target.addr)?;
        let a = &target.addr;
        self.events.info(&format!(
            "Docker on {} no longer listens on TCP; its server certificate stays in {} (`azdock certs show`)",
            a.name,
            target.cert_dir.display()
        ));
        Ok(json!({"name": a.name, "resourceGroup": a.resource_group, "uninstalled": true}))
    }

    /// Pushes each target's certificates — its server certificate from the CA in its own
    /// directory, minted there when missing — through the Docker extension's `rotate-certs` plan
    /// with what the host was set up with, `limit` at a time. Every host runs to its end; each
    /// that succeeds is recorded as carrying its directory's CA.
    pub async fn push_certs(&self, targets: Vec<Target>, how: &Rotate<'_>) -> Vec<Pushed> {
        let run = |target: Target| async move {
            let result = self.push_one(&target, how).await;
            self.events.emit(Event::VmDone {
                vm: target.addr.name.clone(),
                action: "rotate-certs".into(),
                error: result.as_ref().err().map(ToString::to_string),
            });
            Pushed { target, result }
        };
        azdock_azure_sm::fan_out(targets, how.limit, run).await
    }

    async fn push_one(&self, target: &Target, how: &Rotate<'_>) -> Result<Value> {
        let vm = crate::vm::inspect(self.arm, &target.addr).await?;
        let (options, allow_from, cert_sans) = target
            .recorded
            .as_ref()
            .map(|h| (h.options.clone(), h.allow_from.clone(), h.cert_sans.clone()))
            .unwrap_or_default();
        let extras = Extras { options: &options, allow_from: &allow_from, cert_sans: &cert_sans };
        let args = install_args(target.port, &target.cert_dir, target.handler(), extras);
        let dir = target.cert_dir.as_path();
        let prepare = |request: &PlanRequest| (how.mint)(dir, request);
        let install = Install {
            action: "rotate-certs",
            handler: target.handler(),
            cert_dir: dir,
            extras,
            wait: true,
            take_over: false,
            prepare: Some(&prepare),
            cannot_run: how.cannot_run,
        };
        let (entry, daemon) = self.install_docker(how.docker, vm, &args, install).await?;
        Ok(report(&entry, &daemon, &certificate_info(dir, &entry.name, &entry.identity()), None))
    }

    /// A new CA for `cert_dir`, made by `new_ca` (the caller's rotation with its prompt), then
    /// pushed to every recorded host whose certificates live there and to the `named` targets
    /// azdock has no record of. Hosts in other clouds are left for a `--finish` run there; every
    /// host the push does not reach keeps its record of the old CA, which `status` shows and
    /// `--finish` completes.
    pub async fn rotate_ca(
        &self,
        cert_dir: &Path,
        named: Vec<Target>,
        how: &Rotate<'_>,
        new_ca: impl FnOnce() -> Result<()>,
    ) -> Result<(Vec<Pushed>, Vec<DockerHost>)> {
        let record = HostRecord::new(self.data_dir);
        let affected: Vec<DockerHost> = record.load()?.all().filter(|h| h.rotates_with(cert_dir)).cloned().collect();
        // Hosts recorded before azdock kept each host's CA carry the one about to be replaced.
        if let Some(old) = ca_fingerprint(cert_dir) {
            let unknown: Vec<String> = affected.iter().filter(|h| h.ca.is_none()).map(DockerHost::key).collect();
            record.set_ca(&unknown, &old)?;
        }
        new_ca()?;
        let (mut pushed, elsewhere) = self.finish_ca(how).await?;
        let unrecorded: Vec<Target> = named.into_iter().filter(|t| t.recorded.is_none()).collect();
        pushed.extend(self.push_certs(unrecorded, how).await);
        Ok((pushed, elsewhere))
    }

    /// Pushes certificates from the current CA of their directory to every recorded host in
    /// this cloud that still carries an older one. Returns the pushes and the stale hosts of
    /// other clouds.
    pub async fn finish_ca(&self, how: &Rotate<'_>) -> Result<(Vec<Pushed>, Vec<DockerHost>)> {
        let hosts = HostRecord::new(self.data_dir).load()?;
        let (here, elsewhere): (Vec<DockerHost>, Vec<DockerHost>) = hosts
            .all()
            .filter(|h| h.awaits_ca())
            .cloned()
            .partition(|h| h.cloud.eq_ignore_ascii_case(self.cloud_name()));
        for h in &elsewhere {
            self.events.warn(&format!(
                "Docker host {} is in cloud {}: run `azdock --cloud {} ext docker rotate-certs --finish` to give it the new CA",
                h.qualified(),
                h.cloud,
                h.cloud
            ));
        }
        let pushed = self.push_certs(here.into_iter().map(Target::of).collect(), how).await;
        Ok((pushed, elsewhere))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::host;
    use super::*;

    #[test]
    fn arguments_carry_what_the_host_was_set_up_with() {
        let args = base_args(None, Path::new("/c"));
        assert_eq!(args.get("port"), None);
        assert_eq!(args.get("docker-cert-dir"), Some(&ArgValue::Text("/c".into())));
        let opts = ["--log-level=warn".to_owned()];
        let from = ["10.0.0.0/8".to_owned()];
        let sans = ["docker.example".to_owned()];
        let extras = Extras { options: &opts, allow_from: &from, cert_sans: &sans };
        let args = install_args(2300, Path::new("/c"), "legacy", extras);
        assert_eq!(args.get("port"), Some(&ArgValue::Integer(2300)));
        assert_eq!(args.get("handler"), Some(&ArgValue::Text("legacy".into())));
        assert_eq!(args.get("docker-option"), Some(&ArgValue::List(opts.to_vec())));
        assert_eq!(args.get("allow-from"), Some(&ArgValue::List(from.to_vec())));
        assert_eq!(args.get("cert-san"), Some(&ArgValue::List(sans.to_vec())));
    }

    #[test]
    fn a_push_keeps_the_legacy_handler_and_updates_the_rest_through_customscript() {
        let mut h = host("web", "g");
        for (recorded, pushed) in
            [("legacy", "legacy"), ("customscript", "customscript"), ("cloud-init", "customscript")]
        {
            h.handler = recorded.into();
            assert_eq!(Target::of(h.clone()).handler(), pushed);
        }
        let t = Target::of(h.clone());
        assert_eq!((t.addr, t.port, t.cert_dir), (VmAddr::new("s", "g", "web"), 2376, PathBuf::from("/c")));
        let unrecorded = Target { recorded: None, ..Target::of(h) };
        assert_eq!(unrecorded.handler(), "customscript");
    }

    #[test]
    fn a_push_row_says_rotated_or_why_not() {
        let ok = Pushed { target: Target::of(host("web", "g")), result: Ok(json!({"name": "web"})) };
        assert_eq!(ok.row(), json!({"name": "web", "status": "rotated"}));
        let failed = Pushed { target: Target::of(host("db", "g2")), result: Err(Error::Failed("boom".into())) };
        assert_eq!(failed.row(), json!({"name": "db", "resourceGroup": "g2", "status": "failed", "message": "boom"}));
    }

    #[test]
    fn directories_are_the_same_however_spelled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        assert!(same_dir(&dir.path().join("a"), &dir.path().join("a/../a")));
        assert!(!same_dir(&dir.path().join("a"), dir.path()));
        assert!(same_dir(Path::new("/no/such"), Path::new("/no/such")));
        assert!(!same_dir(Path::new("/no/such"), Path::new("/no/other")));
    }

    #[test]
    fn a_host_knows_whether_it_carries_its_directory_s_ca() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = host("web", "g");
        h.cert_dir = dir.path().to_owned();
        assert_eq!(h.ca_state(), CaState::Unknown, "no CA in the directory");
        let store = azdock_certs::CertStore::new(dir.path());
        store.init(&azdock_certs::Passphrases::NONE).unwrap();
        let first = ca_fingerprint(dir.path()).unwrap();
        assert_eq!(h.ca_state(), CaState::Unknown, "nothing recorded");
        h.ca = Some(first.clone());
        assert_eq!(h.ca_state(), CaState::Current);
        store.rotate(&azdock_certs::Rotation::Ca, &azdock_certs::Passphrases::NONE).unwrap();
        assert_ne!(ca_fingerprint(dir.path()).unwrap(), first);
        assert_eq!(h.ca_state(), CaState::Old);
    }
}
