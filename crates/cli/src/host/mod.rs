//! The extension host: learns a VM's facts, carries out an extension's plan — NSG rules, the
//! extension PUT or DELETE with the handler's verdict, waits for endpoints — and reports. This is
//! where extensions' data becomes Azure calls; extensions themselves never talk to Azure.

pub(crate) mod probe;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use azdock_azure_sm::models::{
    NetworkInterface, NetworkSecurityGroup, PublicIpAddress, ResourceId, Subnet, VirtualMachine,
};
use azdock_azure_sm::{Arm, extensions};
use azdock_core::{InstalledExtension, Operation, OsType, Plan, PowerState, Probe, Status, Step, VmFacts};
use serde_json::{Value, json};

use crate::session::{COMPUTE_API, NETWORK_API};
use crate::targets::VmAddr;

/// A VM as the host sees it: the resources facts come from, and the facts.
#[derive(Debug, Clone)]
pub(crate) struct Vm {
    pub addr: VmAddr,
    pub nic: Option<NetworkInterface>,
    pub facts: VmFacts,
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, body: Value) -> anyhow::Result<T> {
    serde_json::from_value(body).with_context(|| format!("unexpected {what} from Azure"))
}

fn status(s: &azdock_azure_sm::models::InstanceViewStatus) -> Status {
    Status {
        code: s.code.clone(),
        level: s.level.as_ref().map(ToString::to_string),
        display_status: s.display_status.clone(),
        message: s.message.clone(),
    }
}

/// Reads the VM (with its instance view), its primary NIC and that NIC's public IP.
pub(crate) async fn inspect(arm: &Arm, addr: &VmAddr) -> anyhow::Result<Vm> {
    let vm: VirtualMachine =
        parse("VM", arm.get(&format!("{}?api-version={COMPUTE_API}&$expand=instanceView", addr.path())).await?)?;
    let nic: Option<NetworkInterface> = match vm.primary_nic() {
        Some(id) => Some(parse("NIC", arm.get(&format!("{id}?api-version={NETWORK_API}")).await?)?),
        None => None,
    };
    let pip_id = nic.as_ref().and_then(|n| {
        n.properties
            .ip_configurations
            .iter()
            .find_map(|c| c.properties.public_ip_address.as_ref().map(|p| p.id.clone()))
    });
    let public_ip: Option<PublicIpAddress> = match pip_id {
        Some(id) => Some(parse("public IP", arm.get(&format!("{id}?api-version={NETWORK_API}")).await?)?),
        None => None,
    };
    let facts = facts_of(&vm, addr, nic.as_ref(), public_ip.as_ref(), "")?;
    Ok(Vm { addr: addr.clone(), nic, facts })
}

/// Facts from a VM and, when read, its primary NIC and public IP.
pub(crate) fn facts_of(
    vm: &VirtualMachine,
    addr: &VmAddr,
    nic: Option<&NetworkInterface>,
    public_ip: Option<&PublicIpAddress>,
    cloud: &str,
) -> anyhow::Result<VmFacts> {
    let view = vm.properties.instance_view.clone().unwrap_or_default();
    let os_type = match vm.os_type() {
        Some(azdock_azure_sm::models::OsType::Windows) => OsType::Windows,
        Some(azdock_azure_sm::models::OsType::Linux) => OsType::Linux,
        other => bail!("cannot tell the OS of VM `{}` ({other:?}); azdock supports Linux and Windows VMs", addr.name),
    };
    let extensions = vm
        .resources
        .iter()
        .map(|e| {
            let iv =
                view.extensions.iter().find(|v| v.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&e.name)));
            InstalledExtension {
                name: e.name.clone(),
                publisher: e.properties.publisher.clone(),
                kind: e.properties.kind.clone(),
                type_handler_version: e.properties.type_handler_version.clone(),
                provisioning_state: e.properties.provisioning_state.as_ref().map(ToString::to_string),
                settings: e.properties.settings.clone().unwrap_or(Value::Null),
                statuses: iv.map(|v| v.statuses.iter().map(status).collect()).unwrap_or_default(),
                substatuses: iv.map(|v| v.substatuses.iter().map(status).collect()).unwrap_or_default(),
            }
        })
        .collect();
    let ips =
        |v: Vec<Option<String>>| v.into_iter().flatten().filter_map(|ip| ip.parse::<IpAddr>().ok()).collect::<Vec<_>>();
    let facts = VmFacts {
        name: vm.name.clone(),
        resource_group: addr.resource_group.clone(),
        subscription_id: addr.subscription.clone(),
        resource_id: vm.id.clone(),
        location: vm.location.clone(),
        os_type,
        power_state: view.power_state().map_or(PowerState::Unknown, |p| PowerState::from_status_code(p.as_str())),
        cloud: cloud.to_owned(),
        admin_username: vm.properties.os_profile.as_ref().and_then(|o| o.admin_username.clone()),
        fqdn: public_ip.and_then(|p| p.fqdn().map(str::to_owned)),
        public_ips: ips(vec![public_ip.and_then(|p| p.properties.ip_address.clone())]),
        private_ips: ips(nic
            .map(|n| n.properties.ip_configurations.iter().map(|c| c.properties.private_ip_address.clone()).collect())
            .unwrap_or_default()),
        extensions,
    };
    Ok(facts)
}

impl Vm {
    /// Where clients reach the VM: its FQDN, else its public IP. The local cloud's FQDNs do not
    /// resolve, so there it is the public IP (which the server certificate also carries), and
    /// the note says so.
    pub(crate) fn endpoint(&self) -> anyhow::Result<(String, Option<String>)> {
        let ip = self.facts.public_ips.first().map(ToString::to_string);
        if self.facts.cloud.eq_ignore_ascii_case("local") {
            let ip = ip.with_context(|| format!("VM `{}` has no public IP", self.facts.name))?;
            let note = self.facts.fqdn.as_ref().map(|fqdn| {
                format!("the local cloud's FQDNs do not resolve: reaching {fqdn} by its public IP {ip}, which its server certificate also carries")
            });
            return Ok((ip, note));
        }
        match (&self.facts.fqdn, ip) {
            (Some(fqdn), _) => Ok((fqdn.clone(), None)),
            (None, Some(ip)) => Ok((ip, None)),
            (None, None) => bail!("VM `{}` has no public IP or FQDN; Docker clients cannot reach it", self.facts.name),
        }
    }

    /// The network security group that filters the VM's traffic: its NIC's, else its subnet's.
    pub(crate) async fn nsg(&self, arm: &Arm) -> anyhow::Result<Option<NetworkSecurityGroup>> {
        let Some(nic) = &self.nic else { return Ok(None) };
        let id = match &nic.properties.network_security_group {
            Some(nsg) => Some(nsg.id.clone()),
            None => match nic.properties.ip_configurations.iter().find_map(|c| c.properties.subnet.clone()) {
                Some(subnet) => {
                    let subnet: Subnet =
                        parse("subnet", arm.get(&format!("{}?api-version={NETWORK_API}", subnet.id)).await?)?;
                    subnet.properties.network_security_group.map(|n| n.id)
                }
                None => None,
            },
        };
        match id {
            Some(id) => Ok(Some(parse("NSG", arm.get(&format!("{id}?api-version={NETWORK_API}")).await?)?)),
            None => Ok(None),
        }
    }
}

/// The lowest free priority from 1000 up in steps of 10, as az picks them.
pub(crate) fn free_priority(nsg: &NetworkSecurityGroup, rule_name: &str) -> u32 {
    if let Some(rule) = nsg.properties.security_rules.iter().find(|r| r.name.eq_ignore_ascii_case(rule_name)) {
        return rule.properties.priority;
    }
    let used: Vec<u32> = nsg.properties.security_rules.iter().map(|r| r.properties.priority).collect();
    (100..=409).map(|p| p * 10).find(|p| !used.contains(p)).unwrap_or(4096)
}

/// The body of an inbound TCP rule for `port` from `sources`.
pub(crate) fn inbound_rule(port: u16, sources: &[String], priority: u32) -> Value {
    let mut props = json!({"protocol": "Tcp", "sourcePortRange": "*", "destinationAddressPrefix": "*",
        "destinationPortRange": port.to_string(), "access": "Allow", "direction": "Inbound", "priority": priority});
    match sources {
        [one] => props["sourceAddressPrefix"] = json!(one),
        many => props["sourceAddressPrefixes"] = json!(many),
    }
    json!({"properties": props})
}

/// Opens `port` in the VM's NSG with rule `rule_name` (updated when it exists). A VM without
/// an NSG gets one, `<vm>NSG`, on its NIC: a Standard public IP admits nothing without one.
pub(crate) async fn open_port(
    arm: &Arm,
    vm: &Vm,
    rule_name: &str,
    port: u16,
    sources: &[String],
) -> anyhow::Result<String> {
    let nsg = match vm.nsg(arm).await? {
        Some(nsg) => nsg,
        None => {
            let nic = vm.nic.as_ref().with_context(|| format!("VM `{}` has no NIC to filter", vm.facts.name))?;
            let id = format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkSecurityGroups/{}NSG",
                vm.addr.subscription, vm.addr.resource_group, vm.facts.name
            );
            let nsg: NetworkSecurityGroup = parse(
                "NSG",
                arm.put(&format!("{id}?api-version={NETWORK_API}"), &json!({"location": vm.facts.location})).await?,
            )?;
            let mut body = arm.get(&format!("{}?api-version={NETWORK_API}", nic.id)).await?;
            body["properties"]["networkSecurityGroup"] = json!({"id": id});
            arm.put(&format!("{}?api-version={NETWORK_API}", nic.id), &body).await?;
            nsg
        }
    };
    // A rule that already says the same is left alone: rewriting it costs a network operation.
    if let Some(rule) = nsg.properties.security_rules.iter().find(|r| r.name.eq_ignore_ascii_case(rule_name)) {
        let p = &rule.properties;
        let mut have: Vec<&str> =
            p.source_address_prefix.iter().chain(&p.source_address_prefixes).map(String::as_str).collect();
        let mut want: Vec<&str> = sources.iter().map(String::as_str).collect();
        have.sort_unstable();
        want.sort_unstable();
        let same_port = p.destination_port_range.as_deref() == Some(port.to_string().as_str());
        if same_port && have == want && p.access == Some(azdock_azure_sm::models::Access::Allow) {
            return Ok(nsg.name);
        }
    }
    let priority = free_priority(&nsg, rule_name);
    let path = format!("{}/securityRules/{rule_name}?api-version={NETWORK_API}", nsg.id);
    arm.put(&path, &inbound_rule(port, sources, priority)).await?;
    Ok(nsg.name)
}

/// Removes rule `rule_name` from the VM's NSG, if it is there.
pub(crate) async fn close_port(arm: &Arm, vm: &Vm, rule_name: &str) -> anyhow::Result<()> {
    if let Some(nsg) = vm.nsg(arm).await?
        && nsg.properties.security_rules.iter().any(|r| r.name.eq_ignore_ascii_case(rule_name))
    {
        arm.delete(&format!("{}/securityRules/{rule_name}?api-version={NETWORK_API}", nsg.id)).await?;
    }
    Ok(())
}

/// Whether the VM's NSG admits TCP `port` (a missing NSG admits nothing to a Standard IP).
pub(crate) async fn port_admitted(arm: &Arm, vm: &Vm, port: u16) -> anyhow::Result<Option<String>> {
    let Some(nsg) = vm.nsg(arm).await? else { return Ok(None) };
    let mut rules: Vec<_> = nsg
        .properties
        .security_rules
        .iter()
        .filter(|r| {
            r.properties.direction == Some(azdock_azure_sm::models::Direction::Inbound)
                && r.properties.covers_port(port)
                && (r.properties.protocol.eq_ignore_ascii_case("tcp") || r.properties.protocol == "*")
        })
        .collect();
    rules.sort_by_key(|r| r.properties.priority);
    Ok(rules
        .first()
        .filter(|r| r.properties.access == Some(azdock_azure_sm::models::Access::Allow))
        .map(|r| format!("{}/{}", nsg.name, r.name)))
}

/// What running a plan did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The extension as ARM returned it after the operation (instance view included).
    pub extension: Option<Value>,
    /// The daemon's answers, when a follow-up waited for it.
    pub endpoint: Option<(String, u16, probe::DaemonInfo)>,
    pub notes: Vec<String>,
}

/// How much of a plan's outcome to wait for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waits {
    /// The operation's result (false: `--no-wait`, return once Azure accepted it).
    pub operation: bool,
    /// Endpoints the follow-ups wait for (false also when they cannot answer, as a local
    /// cloud's daemon on a machine without dockerd).
    pub endpoints: bool,
}

/// Carries out a plan on the VM: prerequisites, the operation, follow-ups.
/// `extension` is the id of the extension that made the plan: its local files go to its own
/// directory.
pub(crate) async fn execute(arm: &Arm, vm: &Vm, plan: &Plan, waits: Waits, extension: &str) -> anyhow::Result<Outcome> {
    let wait = waits.operation;
    let mut outcome = Outcome { notes: plan.notes.clone(), ..Outcome::default() };
    for step in &plan.prerequisites {
        run_step(arm, vm, step, waits.endpoints, extension, &mut outcome).await?;
    }
    match &plan.operation {
        Operation::Put(instance) => {
            let path = format!("{}/extensions/{}", vm.addr.path(), instance.name);
            let mut properties = json!({
                "publisher": instance.publisher, "type": instance.kind,
                "typeHandlerVersion": instance.type_handler_version,
                "autoUpgradeMinorVersion": instance.auto_upgrade_minor_version,
                "settings": instance.settings,
            });
            if let Some(tag) = &instance.force_update_tag {
                properties["forceUpdateTag"] = json!(tag);
            }
            if let Some(protected) = &instance.protected_settings {
                properties["protectedSettings"] = protected.expose().clone();
            }
            let body = json!({"location": vm.facts.location, "properties": properties});
            if wait {
                outcome.extension = Some(extensions::put(arm, &path, COMPUTE_API, &body).await?.1);
            } else {
                let resp =
                    arm.send(reqwest::Method::PUT, &format!("{path}?api-version={COMPUTE_API}"), Some(&body)).await?;
                outcome.extension = Some(resp.body);
                return Ok(outcome);
            }
        }
        Operation::Delete { name } => {
            let path = format!("{}/extensions/{name}?api-version={COMPUTE_API}", vm.addr.path());
            if wait {
                arm.delete(&path).await?;
            } else {
                arm.send(reqwest::Method::DELETE, &path, None).await?;
            }
        }
        Operation::Inspect => {}
    }
    for step in &plan.follow_ups {
        run_step(arm, vm, step, waits.endpoints, extension, &mut outcome).await?;
    }
    Ok(outcome)
}

async fn run_step(
    arm: &Arm,
    vm: &Vm,
    step: &Step,
    wait: bool,
    extension: &str,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    match step {
        Step::OpenInboundPort { rule_name, port, sources, .. } => {
            open_port(arm, vm, rule_name, *port, sources).await?;
        }
        Step::CloseInboundPort { rule_name } => close_port(arm, vm, rule_name).await?,
        Step::WaitForEndpoint { port, probe: Probe::MutualTls { ca, cert, key }, timeout_secs } if wait => {
            let (host, note) = vm.endpoint()?;
            outcome.notes.extend(note);
            if let Some(why) = local_daemon_trouble(arm, vm).await {
                bail!(why);
            }
            let identity = probe::Identity { ca: ca.into(), cert: cert.into(), key: key.into() };
            let timeout = Duration::from_secs(u64::from(*timeout_secs).max(1));
            match probe::wait(&host, *port, &identity, timeout).await {
                Ok(info) => outcome.endpoint = Some((host, *port, info)),
                Err(failure) => bail!(explain(arm, vm, &host, *port, &failure).await),
            }
        }
        Step::WaitForEndpoint { port, probe: Probe::Tcp, timeout_secs } if wait => {
            let (host, note) = vm.endpoint()?;
            outcome.notes.extend(note);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(*timeout_secs).max(1));
            while tokio::net::TcpStream::connect((host.as_str(), *port)).await.is_err() {
                if tokio::time::Instant::now() >= deadline {
                    bail!("nothing answered on {host}:{port} within {timeout_secs} s");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Step::WaitForEndpoint { .. } => {}
        Step::WriteLocalFile { path, contents, mode } => {
            let base = crate::config::data_dir()?.join("extensions").join(extension);
            let written = write_local_file(&base, extension, path, contents.expose(), *mode)?;
            outcome.notes.push(format!("wrote {}", written.display()));
        }
    }
    Ok(())
}

/// An extension's local files live below `<data dir>/extensions/<id>/`; a path that is absolute
/// or climbs out with `..` is refused. Written through a temporary file created with `mode`
/// from the start (the contents may be a key), then renamed.
fn write_local_file(
    base: &std::path::Path,
    extension: &str,
    path: &str,
    contents: &str,
    mode: u32,
) -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let relative = std::path::Path::new(path);
    let plain = relative.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if path.is_empty() || !plain {
        bail!("extension `{extension}` asked to write `{path}`: only paths inside its own directory are allowed");
    }
    let target = base.join(relative);
    let dir = target.parent().context("no directory")?;
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    let tmp = target.with_extension("azdock-tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .open(&tmp)
        .with_context(|| format!("cannot write `{}`", tmp.display()))?;
    file.write_all(contents.as_bytes())?;
    std::fs::rename(&tmp, &target).with_context(|| format!("cannot write `{}`", target.display()))?;
    Ok(target)
}

/// In the local cloud, what the guest says about its dockerd when it will not answer (not set
/// up, failed to start, cannot run here), so that nobody waits ten minutes for it. The local
/// cloud reports it in the VM's instance view as `LocalCloud/DockerDaemon/<state>`; real clouds
/// have no such status.
pub(crate) async fn local_daemon_trouble(arm: &Arm, vm: &Vm) -> Option<String> {
    if !vm.facts.cloud.eq_ignore_ascii_case("local") {
        return None;
    }
    let path = format!("{}?api-version={COMPUTE_API}&$expand=instanceView", vm.addr.path());
    let body = arm.get(&path).await.ok()?;
    let statuses = body["properties"]["instanceView"]["statuses"].as_array()?;
    let Some(status) = statuses.iter().find(|s| s["code"].as_str().is_some_and(|c| c.starts_with(DAEMON_STATUS)))
    else {
        return Some("Docker is not set up on the VM: nothing configured dockerd with a TCP listener".into());
    };
    let message = status["message"].as_str().unwrap_or("no reason given");
    match status["code"].as_str()?.trim_start_matches(DAEMON_STATUS) {
        "failed" | "unavailable" => Some(format!("the VM's dockerd does not run: {message}")),
        "notConfigured" => Some(format!("Docker is not set up on the VM: {message}")),
        _ => None,
    }
}

/// The instance-view status in which the local cloud reports a guest's dockerd.
const DAEMON_STATUS: &str = "LocalCloud/DockerDaemon/";

/// Why a Docker daemon cannot be reached, in words a user can act on.
pub(crate) async fn explain(arm: &Arm, vm: &Vm, host: &str, port: u16, failure: &probe::Failure) -> String {
    use probe::Failure;
    let name = &vm.facts.name;
    let group = &vm.addr.resource_group;
    let rotate = format!("run `azdock ext docker rotate-certs --vm {name} -g {group}`");
    match failure {
        Failure::WrongName(d) => format!(
            "the daemon's server certificate does not name {host} ({d}); the VM's address may have changed since it was made: {rotate} for a certificate with its current names"
        ),
        Failure::Expired(d) => format!("the daemon's server certificate is expired or not yet valid ({d}): {rotate}"),
        Failure::UnknownCa(d) => format!(
            "the daemon's certificate is not from your CA ({d}); it was made with another cert directory or before a CA rotation: {rotate}"
        ),
        Failure::ClientRefused(d) => {
            format!("the daemon refused your client certificate ({d}): it trusts another CA; {rotate} to give it yours")
        }
        Failure::Local(d) => d.clone(),
        Failure::Refused | Failure::NoAnswer | Failure::Other(_) => {
            let power = vm.facts.power_state;
            if power != PowerState::Running {
                return format!(
                    "VM `{name}` is not running ({power:?}): start it with `azdock vm start -g {group} -n {name}`"
                );
            }
            match port_admitted(arm, vm, port).await {
                Ok(None) => format!(
                    "port {port} is closed in the VM's network security group, so nothing reaches the daemon: run `azdock ext docker install --vm {name} -g {group} --port {port}` to open it"
                ),
                _ if *failure == Failure::Refused => format!(
                    "nothing listens on {host}:{port}: the daemon is down or not set up for TLS on that port; see `azdock ext docker status --vm {name} -g {group}`, or install it again"
                ),
                _ => format!("no answer from {host}:{port} ({failure}): the daemon may still be starting, or down"),
            }
        }
    }
}

/// An ARM resource id's last name, for messages (a resource group's too).
pub(crate) fn short(id: &str) -> String {
    ResourceId::parse(id).map_or_else(|| id.rsplit('/').next().unwrap_or(id).to_owned(), |r| r.name().to_owned())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn local_files_stay_in_the_extensions_directory_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_local_file(dir.path(), "x", "keys/id", "secret", 0o600).unwrap();
        assert_eq!(written, dir.path().join("keys/id"));
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "secret");
        assert_eq!(std::fs::metadata(&written).unwrap().permissions().mode() & 0o777, 0o600);
        for bad in ["/etc/passwd", "../out", "a/../../b", ""] {
            let e = write_local_file(dir.path(), "x", bad, "s", 0o600).unwrap_err().to_string();
            assert!(e.contains("only paths inside its own directory"), "{bad}: {e}");
        }
    }
}
