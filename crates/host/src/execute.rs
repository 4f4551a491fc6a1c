//! Carrying out a plan on a VM: prerequisites, the operation (extension PUT with the handler's
//! verdict, DELETE, or nothing), follow-ups. This is where extensions' data becomes Azure calls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use azdock_azure_sm::api::COMPUTE;
use azdock_azure_sm::extensions;
use azdock_azure_sm::requests::{ExtensionBody, ExtensionPropertiesBody};
use azdock_core::{Operation, Plan, Probe, Step};
use serde_json::Value;

use crate::diagnose::{explain, explain_known, local_daemon_trouble};
use crate::dispatch::Host;
use crate::error::{Error, Result};
use crate::events::{Step as Progress, StepOutcome};
use crate::network::{close_port, open_port, port_admitted};
use crate::probe::{self, DaemonInfo};
use crate::vm::Vm;

/// The tag on every extension instance the host puts: which azdock extension holds the
/// handler's slot on the VM.
pub const OWNER_TAG: &str = "azdock-extension";

/// How much of a plan's outcome to wait for.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// The operation's result (false: `--no-wait`, return once Azure accepted it).
    pub operation: bool,
    /// Endpoints the follow-ups wait for (false also when they cannot answer, as a local
    /// cloud's daemon on a machine without dockerd).
    pub endpoints: bool,
    /// Whether an endpoint that does not answer fails the plan (install, verify) or is only
    /// reported in the outcome (status).
    pub endpoint_required: bool,
}

impl Waits {
    /// Wait for everything; an endpoint that does not answer is an error.
    pub const ALL: Self = Self { operation: true, endpoints: true, endpoint_required: true };
}

/// What an endpoint wait found.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The NSG rule (`nsg/rule`) that admits the port, when the VM's network was read.
    pub admitted_by: Option<String>,
    /// The daemon's answers (mutual TLS probes), or why it did not answer, explained.
    pub answer: std::result::Result<Option<DaemonInfo>, String>,
}

/// What running a plan did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The extension as ARM returned it after the operation (instance view included).
    pub extension: Option<Value>,
    /// The last endpoint a follow-up waited for.
    pub endpoint: Option<Endpoint>,
    /// Inbound rules this plan opened, by port, with the NSG they are in.
    pub opened: Vec<(u16, String)>,
}

/// Carries out a plan on the VM. `extension` is the id of the extension that made the plan:
/// its local files go to its own directory below the data directory. What the user should
/// know on the way (where the VM is reached, which file was written) goes to the host's events
/// as it happens; the plan's own notes were told before it ran.
pub async fn execute(host: &Host<'_>, vm: &Vm, plan: &Plan, waits: Waits, extension: &str) -> Result<Outcome> {
    let arm = host.arm;
    let mut outcome = Outcome::default();
    let running = Running { host, vm, waits, extension, files: host.data_dir.join("extensions").join(extension) };
    for step in &plan.prerequisites {
        running.step(step, &mut outcome).await?;
    }
    match &plan.operation {
        Operation::Put(instance) => {
            let step = Progress::start(
                host.events,
                format!("extension {} ({}.{})", instance.name, instance.publisher, instance.kind),
            );
            let path = format!("{}/extensions/{}", vm.addr.path(), instance.name);
            let tags = std::collections::BTreeMap::from([(OWNER_TAG, extension)]);
            let body = ExtensionBody {
                location: &vm.facts.location,
                tags: Some(tags),
                properties: ExtensionPropertiesBody {
                    publisher: &instance.publisher,
                    kind: &instance.kind,
                    type_handler_version: &instance.type_handler_version,
                    auto_upgrade_minor_version: instance.auto_upgrade_minor_version,
                    force_update_tag: instance.force_update_tag.as_deref(),
                    settings: Some(&instance.settings),
                    protected_settings: instance.protected_settings.as_ref().map(azdock_core::secret::Exposing),
                },
            }
            .body()?;
            if waits.operation {
                let put = extensions::put(arm, &path, COMPUTE, &body).await;
                outcome.extension = Some(step.ended(put, StepOutcome::Done)?.1);
            } else {
                let sent = arm.send(reqwest::Method::PUT, &format!("{path}?api-version={COMPUTE}"), Some(&body)).await;
                outcome.extension = Some(step.ended(sent, StepOutcome::Accepted)?.body);
                return Ok(outcome);
            }
        }
        Operation::Delete { name } => {
            let step = Progress::start(host.events, format!("removing extension {name}"));
            let path = format!("{}/extensions/{name}?api-version={COMPUTE}", vm.addr.path());
            if waits.operation {
                step.ended(arm.delete(&path).await, StepOutcome::Done)?;
            } else {
                step.ended(arm.send(reqwest::Method::DELETE, &path, None).await, StepOutcome::Accepted)?;
            }
        }
        Operation::Inspect => {}
    }
    for step in &plan.follow_ups {
        running.step(step, &mut outcome).await?;
    }
    Ok(outcome)
}

/// One plan's execution on one VM: what each step needs.
struct Running<'a> {
    host: &'a Host<'a>,
    vm: &'a Vm,
    waits: Waits,
    extension: &'a str,
    files: PathBuf,
}

impl Running<'_> {
    async fn step(&self, step: &Step, outcome: &mut Outcome) -> Result<()> {
        let (arm, vm) = (self.host.arm, self.vm);
        match step {
            Step::OpenInboundPort { rule_name, port, protocol, sources } => {
                let step = Progress::start(self.host.events, format!("inbound rule {rule_name} (port {port})"));
                let nsg =
                    step.ended(open_port(arm, vm, rule_name, *port, *protocol, sources).await, StepOutcome::Done)?;
                outcome.opened.push((*port, format!("{nsg}/{rule_name}")));
            }
            Step::CloseInboundPort { rule_name } => {
                let step = Progress::start(self.host.events, format!("closing inbound rule {rule_name}"));
                step.ended(close_port(arm, vm, rule_name).await, StepOutcome::Done)?;
            }
            Step::WaitForEndpoint { port, probe, timeout_secs } if self.waits.endpoints => {
                let step = Progress::start(
                    self.host.events,
                    format!(
                        "waiting for {} on port {port}",
                        match probe {
                            Probe::Tcp => "a TCP answer",
                            Probe::MutualTls { .. } => "a mutual-TLS answer",
                            Probe::Ssh { .. } => "docker over SSH",
                        }
                    ),
                );
                let endpoint = self.wait(*port, probe, *timeout_secs, outcome).await;
                let endpoint = step.ended(endpoint, StepOutcome::Done)?;
                if let (Err(why), true) = (&endpoint.answer, self.waits.endpoint_required) {
                    return Err(Error::Failed(why.clone()));
                }
                outcome.endpoint = Some(endpoint);
            }
            Step::WaitForEndpoint { .. } => {}
            Step::PinHostKeys { known_hosts, port } => {
                let step = Progress::start(self.host.events, "pinning the VM's SSH host keys".to_owned());
                let pinned = self.pin_host_keys(Path::new(known_hosts), *port, outcome);
                step.ended(pinned, StepOutcome::Done)?;
            }
            Step::WriteLocalFile { path, contents, mode } => {
                let written = write_local_file(&self.files, self.extension, path, contents.expose(), *mode)?;
                self.host.events.warn(&format!("wrote {}", written.display()));
            }
        }
        Ok(())
    }

    /// Waits for the VM's endpoint on `port` and says what answered, or why nothing did.
    async fn wait(&self, port: u16, probe: &Probe, timeout_secs: u32, outcome: &Outcome) -> Result<Endpoint> {
        let (arm, vm) = (self.host.arm, self.vm);
        let (host, note) = vm.endpoint()?;
        if let Some(note) = note {
            self.host.events.warn(&note);
        }
        let timeout = Duration::from_secs(u64::from(timeout_secs).max(1));
        // Waiting on a port the NSG closes cannot succeed: say so at once. A rule this plan just
        // opened is known without reading the NSG again (a VM that had none has one now, which
        // the facts read before do not show). Without its network read, the VM's NSG is unknown.
        let admitted_by = match outcome.opened.iter().find(|(p, _)| *p == port) {
            Some((_, rule)) => Some(rule.clone()),
            None if vm.nic.is_some() => port_admitted(arm, vm, port).await?,
            None => None,
        };
        let answer = match probe {
            _ if admitted_by.is_none() && vm.nic.is_some() => {
                Err(explain_known(vm, &host, port, &probe::Failure::NoAnswer, Some(false)))
            }
            Probe::MutualTls { ca, cert, key } => match local_daemon_trouble(arm, vm).await {
                Some(why) => Err(why),
                None => {
                    let identity = probe::Identity { ca: ca.into(), cert: cert.into(), key: key.into() };
                    match probe::wait(&host, port, &identity, timeout).await {
                        Ok(info) => Ok(Some(info)),
                        Err(failure) => Err(explain(arm, vm, &host, port, &failure).await),
                    }
                }
            },
            Probe::Ssh { user, known_hosts, identity } => match local_daemon_trouble(arm, vm).await {
                Some(why) => Err(why),
                None => {
                    let target = crate::ssh_probe::SshTarget {
                        host: &host,
                        port,
                        user,
                        known_hosts: Path::new(known_hosts),
                        identity: identity.as_deref().map(Path::new),
                    };
                    crate::ssh_probe::wait(&target, timeout).await.map(Some).map_err(|f| f.explain(&target))
                }
            },
            Probe::Tcp => wait_tcp(&host, port, timeout).await.map(|()| None),
        };
        Ok(Endpoint { host, port, admitted_by, answer })
    }
}

impl Running<'_> {
    /// Pins the host keys the operation's handler reported for each of the VM's names and
    /// addresses; without a reported key nothing is trusted and the plan fails.
    fn pin_host_keys(&self, known_hosts: &Path, port: u16, outcome: &Outcome) -> Result<()> {
        let keys = reported_keys(outcome)?;
        let facts = &self.vm.facts;
        let mut names: Vec<String> = facts.fqdn.iter().cloned().collect();
        names.extend(facts.public_ips.iter().map(ToString::to_string));
        let pinned = crate::known_hosts::pin(known_hosts, &names, port, &keys)
            .map_err(|e| Error::Failed(format!("cannot write `{}`: {e}", known_hosts.display())))?;
        if pinned.replaced_other_keys {
            self.host.events.warn(&format!(
                "{} had other SSH host keys pinned in {}: replaced by the keys the VM reported through Azure",
                names.join(", "),
                known_hosts.display()
            ));
        }
        let prints: Vec<String> = keys.iter().map(|k| format!("{} {}", k.kind, k.fingerprint())).collect();
        self.host.events.warn(&format!("pinned {} in {}", prints.join(", "), known_hosts.display()));
        Ok(())
    }
}

/// The SSH host keys the operation's handler reported; none is an error, since azdock never
/// trusts a host key on first use.
fn reported_keys(outcome: &Outcome) -> Result<Vec<crate::known_hosts::HostKey>> {
    let output = outcome.extension.as_ref().map(handler_output).unwrap_or_default();
    let keys = crate::known_hosts::reported(&output);
    if keys.is_empty() {
        return Err(Error::Failed(format!(
            "the install did not report the VM's SSH host keys (`{}` lines in its output), and azdock does not trust a host key on first use",
            crate::known_hosts::REPORT_PREFIX.trim_end()
        )));
    }
    Ok(keys)
}

/// What an extension's handler printed: every status and substatus message of its instance view.
fn handler_output(extension: &Value) -> String {
    let view = &extension["properties"]["instanceView"];
    ["statuses", "substatuses"]
        .iter()
        .filter_map(|k| view[k].as_array())
        .flatten()
        .filter_map(|s| s["message"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Until a TCP connection to `host:port` is accepted, or `timeout` passes (tried at least once).
async fn wait_tcp(host: &str, port: u16, timeout: Duration) -> std::result::Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect((host, port)).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("nothing answered on {host}:{port} within {} s", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// An extension's local files live below `<data dir>/extensions/<id>/`; a path that is absolute
/// or climbs out with `..` is refused. Written atomically, with `mode` from the start (the
/// contents may be a key).
pub fn write_local_file(base: &Path, extension: &str, path: &str, contents: &str, mode: u32) -> Result<PathBuf> {
    let relative = Path::new(path);
    let plain = relative.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if path.is_empty() || !plain {
        return Err(Error::Failed(format!(
            "extension `{extension}` asked to write `{path}`: only paths inside its own directory are allowed"
        )));
    }
    let target = base.join(relative);
    azdock_files::write_atomic(&target, contents.as_bytes(), mode & 0o777).map_err(Error::io("write", &target))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn host_keys_are_read_from_every_message_of_the_handlers_instance_view() {
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd3nqjmI9Y2Gm4zk1t6b0x8v5wQwCkq3pX5uS9r2k0m";
        let extension = serde_json::json!({"properties": {"instanceView": {
            "statuses": [{"message": "Enable succeeded: \n[stdout]\nazdock: done"}],
            "substatuses": [{"message": format!("azdock: done\nazdock-host-key {ed}")}, {"code": "no message"}],
        }}});
        assert!(handler_output(&extension).contains("Enable succeeded") && handler_output(&extension).contains(ed));
        let outcome = Outcome { extension: Some(extension), ..Outcome::default() };
        let keys = reported_keys(&outcome).unwrap();
        assert_eq!(keys, vec![crate::known_hosts::HostKey::parse(ed).unwrap()]);
        let silent = Outcome { extension: Some(serde_json::json!({"properties": {}})), ..Outcome::default() };
        let e = reported_keys(&silent).unwrap_err().to_string();
        assert!(e.contains("did not report the VM's SSH host keys") && e.contains("azdock-host-key"), "{e}");
        assert!(reported_keys(&Outcome::default()).is_err());
    }

    #[test]
    fn local_files_stay_in_the_extensions_directory_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_local_file(dir.path(), "x", "keys/id", "secret", 0o600).unwrap();
        assert_eq!(written, dir.path().join("keys/id"));
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "secret");
        assert_eq!(std::fs::metadata(&written).unwrap().permissions().mode() & 0o777, 0o600);
        // The escapes point into a directory of this test's own: were the check ever broken (a
        // mutation test breaks it on purpose), the write must not land on a real file of the
        // machine, as `/etc/passwd` once did.
        let outside = tempfile::tempdir().unwrap();
        let base = dir.path().join("a/b");
        let absolute = outside.path().join("victim").to_string_lossy().into_owned();
        for bad in [absolute.as_str(), "../out", "c/../../../out", ""] {
            let e = write_local_file(&base, "x", bad, "s", 0o600).unwrap_err().to_string();
            assert!(e.contains("only paths inside its own directory"), "{bad}: {e}");
        }
        assert!(!outside.path().join("victim").exists());
        assert!(!dir.path().join("a/out").exists() && !dir.path().join("out").exists());
    }

    #[tokio::test]
    async fn tcp_waits_end_when_a_port_answers_and_give_up_after_their_time() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(wait_tcp("127.0.0.1", port, Duration::from_secs(1)).await, Ok(()));
        drop(listener);
        let e = wait_tcp("127.0.0.1", port, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e, format!("nothing answered on 127.0.0.1:{port} within 1 s"));
        // A port that starts answering during the wait ends it: the wait keeps trying.
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            std::thread::sleep(Duration::from_secs(3));
            drop(listener);
        });
        assert_eq!(wait_tcp("127.0.0.1", port, Duration::from_secs(10)).await, Ok(()));
        late.join().unwrap();
    }
}
