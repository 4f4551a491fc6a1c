//! Installing Docker with TLS through the Docker extension's plan (a rotation's push of new
//! certificates is one too), and what `status` and `verify` report from its plans.

use std::path::Path;

use azdock_core::{Args, InstalledExtension, Transport, VmExtension};
use serde_json::{Value, json};

use super::{DockerHost, Extras, HostRecord, ca_fingerprint, certificate_info, daemon_json, report};
use crate::dispatch::{Host, Invocation, Prepare, Ran};
use crate::error::{Error, Result};
use crate::execute::Waits;
use crate::probe::DaemonInfo;
use crate::vm::Vm;

/// The port a Docker action's request names (the manifest's default when absent).
pub(super) fn port_of(ran: &Ran) -> Result<u16> {
    let port = ran.request.integer("port").unwrap_or(2376);
    u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| Error::Usage(format!("port {port} is not a TCP port")))
}

/// An install of the Docker extension (or a rotation's push of new certificates).
#[derive(Clone, Copy)]
pub struct Install<'a> {
    /// `install` or `rotate-certs`.
    pub action: &'a str,
    /// The handler's name as the record keeps it (`customscript`, `legacy`).
    pub handler: &'a str,
    pub cert_dir: &'a Path,
    pub extras: Extras<'a>,
    /// Wait for the extension and the daemon (false: `--no-wait`).
    pub wait: bool,
    pub take_over: bool,
    /// The caller's work before the plan: minting the server certificate with its prompt.
    pub prepare: Option<Prepare<'a>>,
    /// Why this machine cannot run the VM's daemon (a local cloud without dockerd), if so: the
    /// daemon is then not waited for.
    pub cannot_run: Option<&'a str>,
}

impl std::fmt::Debug for Install<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Install").field("action", &self.action).field("handler", &self.handler).finish_non_exhaustive()
    }
}

/// What an install waits for: the extension unless `--no-wait`, and the daemon too unless this
/// machine cannot run it.
pub(super) fn install_waits(wait: bool, possible: bool) -> Waits {
    Waits { operation: wait, endpoints: wait && possible, endpoint_required: true }
}

/// What an install says of the daemon.
pub(super) fn install_daemon(
    answer: Option<&std::result::Result<Option<DaemonInfo>, String>>,
    wait: bool,
    cannot_run: Option<&str>,
) -> Value {
    match answer {
        Some(Ok(Some(info))) => daemon_json(info),
        _ if !wait => json!({"status": "not checked (--no-wait)"}),
        _ if cannot_run.is_some() => json!({"status": "cannot run locally", "reason": cannot_run}),
        _ => json!({"status": "unreachable"}),
    }
}

impl Host<'_> {
    /// Installs Docker with TLS on a VM through the Docker extension's plan, records the host,
    /// and says what its daemon answered.
    pub async fn install_docker(
        &self,
        docker: &dyn VmExtension,
        vm: Vm,
        args: &Args,
        how: Install<'_>,
    ) -> Result<(DockerHost, Value)> {
        let invocation = Invocation {
            extension: docker,
            action: how.action,
            args,
            waits: install_waits(how.wait, how.cannot_run.is_none()),
            prepare: how.prepare,
            take_over: how.take_over,
        };
        let ran = self.run_on(&invocation, vm).await?;
        let entry = self.record_docker(&ran, how.handler, how.cert_dir, how.extras)?;
        let answer = ran.outcome.endpoint.as_ref().map(|e| &e.answer);
        let daemon = install_daemon(answer, how.wait, how.cannot_run);
        Ok((entry, daemon))
    }

    /// Records the Docker host a run of the extension set up.
    pub fn record_docker(&self, ran: &Ran, handler: &str, cert_dir: &Path, extras: Extras<'_>) -> Result<DockerHost> {
        let (address, _) = ran.vm.endpoint()?;
        self.remember(host_of(ran, &address, handler, cert_dir, extras)?)
    }

    /// Records a host as carrying the CA now in its certificate directory.
    pub fn remember(&self, mut entry: DockerHost) -> Result<DockerHost> {
        entry.ca = ca_fingerprint(&entry.cert_dir);
        HostRecord::new(self.data_dir).record(entry.clone())?;
        Ok(entry)
    }
}

/// The transport a Docker action's request names (TLS when absent).
pub(super) fn transport_of(ran: &Ran) -> Result<Transport> {
    ran.request.text("transport").map_or(Ok(Transport::Tls), |t| Transport::parse(t).map_err(Error::Usage))
}

/// The host a run of the extension is about, as the record keeps it: over SSH, with sshd's
/// port and the user it logs in as.
fn host_of(ran: &Ran, address: &str, handler: &str, cert_dir: &Path, extras: Extras<'_>) -> Result<DockerHost> {
    let vm = &ran.vm;
    Ok(match transport_of(ran)? {
        Transport::Tls => DockerHost::of(vm, address, port_of(ran)?, handler, cert_dir, extras),
        Transport::Ssh => {
            let port = ran.request.integer("ssh-port").and_then(|p| u16::try_from(p).ok()).unwrap_or(22);
            let user = ran.request.text("ssh-user").map(str::to_owned).or_else(|| vm.facts.admin_username.clone());
            let user = user.ok_or_else(|| Error::Failed("the VM's admin user is unknown".into()))?;
            let identity = ran.request.text("ssh-identity").map(Path::new);
            DockerHost::of(vm, address, port, handler, cert_dir, extras).over_ssh(&user, port, identity)
        }
    })
}

/// What `ext docker status` and `verify` report from a run of the extension's own plan:
/// `installed` is the handler instance that set Docker up (its name as the record keeps it).
pub fn probe_report(
    ran: &Ran,
    cert_dir: &Path,
    installed: Option<(&str, &InstalledExtension)>,
    verify: bool,
) -> Result<Value> {
    let vm = &ran.vm;
    let (address, _) = vm.endpoint()?;
    let endpoint = ran.outcome.endpoint.as_ref();
    let daemon = match endpoint.map(|e| &e.answer) {
        Some(Ok(Some(info))) => daemon_json(info),
        Some(Err(why)) => json!({"status": "unreachable", "reason": why}),
        _ => json!({"status": "unreachable"}),
    };
    let handler = installed.map_or("none", |(h, _)| h);
    let entry = host_of(ran, &address, handler, cert_dir, Extras::default())?;
    let certificate = match entry.transport {
        Transport::Tls => certificate_info(cert_dir, &vm.facts.name, &vm.facts.identity()),
        Transport::Ssh => Value::Null,
    };
    let mut out = report(&entry, &daemon, &certificate, None);
    let rule = endpoint.and_then(|e| e.admitted_by.clone());
    if verify {
        let Some(Ok(Some(info))) = endpoint.map(|e| &e.answer) else {
            return Err(Error::Failed("the daemon did not answer".into()));
        };
        out["handler"] = Value::Null;
        out["checks"] = match entry.transport {
            Transport::Tls => {
                json!({"nsgRule": rule, "tlsHandshake": "ok", "ping": info.ping, "version": info.version["Version"]})
            }
            Transport::Ssh => {
                json!({"nsgRule": rule, "hostKey": "pinned", "sshLogin": "ok", "version": info.version["Version"]})
            }
        };
    } else {
        out["extension"] = installed.map_or(Value::Null, |(_, e)| {
            let message = e.statuses.first().and_then(|s| s.message.clone());
            json!({"name": e.name, "type": e.kind, "provisioningState": e.provisioning_state, "message": message})
        });
        out["nsgRule"] = json!(rule);
        out["powerState"] = json!(vm.facts.power_state);
    }
    Ok(out)
}
