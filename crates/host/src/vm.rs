//! A VM as the host sees it: the ARM resources its facts come from, and the facts.

use std::net::IpAddr;

use azdock_azure_sm::api::{COMPUTE, NETWORK};
use azdock_azure_sm::models::{NetworkInterface, NetworkSecurityGroup, PublicIpAddress, Subnet, VirtualMachine};
use azdock_azure_sm::{Arm, CloudKind};
use azdock_core::{InstalledExtension, PowerState, Status, VmFacts};
use serde_json::Value;

use crate::error::{Error, Result, parse};
use crate::target::VmAddr;

/// A VM, its primary NIC when it was read, its cloud, and the facts extensions plan with.
#[derive(Debug, Clone)]
pub struct Vm {
    pub addr: VmAddr,
    pub nic: Option<NetworkInterface>,
    pub cloud: CloudKind,
    pub facts: VmFacts,
}

fn status(s: &azdock_azure_sm::models::InstanceViewStatus) -> Status {
    Status {
        code: s.code.clone(),
        level: s.level.as_ref().map(ToString::to_string),
        display_status: s.display_status.clone(),
        message: s.message.clone(),
    }
}

/// The VM with its instance view (one request).
async fn read_vm(arm: &Arm, addr: &VmAddr) -> Result<VirtualMachine> {
    parse("VM", arm.get(&format!("{}?api-version={COMPUTE}&$expand=instanceView", addr.path())).await?)
}

/// Reads the VM (with its instance view), its primary NIC and that NIC's public IP.
pub async fn inspect(arm: &Arm, addr: &VmAddr) -> Result<Vm> {
    let vm = read_vm(arm, addr).await?;
    let nic: Option<NetworkInterface> = match vm.primary_nic() {
        Some(id) => Some(parse("NIC", arm.get(&format!("{id}?api-version={NETWORK}")).await?)?),
        None => None,
    };
    let pip_id = nic.as_ref().and_then(|n| {
        n.properties
            .ip_configurations
            .iter()
            .find_map(|c| c.properties.public_ip_address.as_ref().map(|p| p.id.clone()))
    });
    let public_ip: Option<PublicIpAddress> = match pip_id {
        Some(id) => Some(parse("public IP", arm.get(&format!("{id}?api-version={NETWORK}")).await?)?),
        None => None,
    };
    let facts = facts_of(&vm, addr, nic.as_ref(), public_ip.as_ref(), &arm.cloud().name)?;
    Ok(Vm { addr: addr.clone(), nic, cloud: arm.cloud().kind(), facts })
}

/// Facts from the VM alone (one request): its OS, power state and extensions, no addresses.
/// Enough for extensions whose actions declare they need no network facts (VMAccess), so a
/// fleet costs one read per VM.
pub async fn inspect_vm(arm: &Arm, addr: &VmAddr) -> Result<Vm> {
    let vm = read_vm(arm, addr).await?;
    let facts = facts_of(&vm, addr, None, None, &arm.cloud().name)?;
    Ok(Vm { addr: addr.clone(), nic: None, cloud: arm.cloud().kind(), facts })
}

/// Facts from a VM and, when read, its primary NIC and public IP.
pub fn facts_of(
    vm: &VirtualMachine,
    addr: &VmAddr,
    nic: Option<&NetworkInterface>,
    public_ip: Option<&PublicIpAddress>,
    cloud: &str,
) -> Result<VmFacts> {
    let view = vm.properties.instance_view.clone().unwrap_or_default();
    let os_type = vm.os_type().ok_or_else(|| {
        Error::Failed(format!("cannot tell the OS of VM `{}`; azdock supports Linux and Windows VMs", addr.name))
    })?;
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
                owner: e.tags.get(crate::execute::OWNER_TAG).and_then(Value::as_str).map(str::to_owned),
            }
        })
        .collect();
    let ips =
        |v: Vec<Option<String>>| v.into_iter().flatten().filter_map(|ip| ip.parse::<IpAddr>().ok()).collect::<Vec<_>>();
    Ok(VmFacts {
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
    })
}

impl Vm {
    /// Where clients reach the VM: its FQDN, else its public IP. The local cloud's FQDNs do not
    /// resolve, so there it is the public IP (which the server certificate also carries), and
    /// the note says so.
    pub fn endpoint(&self) -> Result<(String, Option<String>)> {
        let ip = self.facts.public_ips.first().map(ToString::to_string);
        if self.cloud == CloudKind::Local {
            let ip = ip.ok_or_else(|| Error::Failed(format!("VM `{}` has no public IP", self.facts.name)))?;
            let note = self.facts.fqdn.as_ref().map(|fqdn| {
                format!("the local cloud's FQDNs do not resolve: reaching {fqdn} by its public IP {ip} (a TLS host's server certificate carries it too)")
            });
            return Ok((ip, note));
        }
        match (&self.facts.fqdn, ip) {
            (Some(fqdn), _) => Ok((fqdn.clone(), None)),
            (None, Some(ip)) => Ok((ip, None)),
            (None, None) => Err(Error::Failed(format!(
                "VM `{}` has no public IP or FQDN; Docker clients cannot reach it",
                self.facts.name
            ))),
        }
    }

    /// The network security group that filters the VM's traffic: its NIC's, else its subnet's.
    pub async fn nsg(&self, arm: &Arm) -> Result<Option<NetworkSecurityGroup>> {
        let Some(nic) = &self.nic else { return Ok(None) };
        let id = match &nic.properties.network_security_group {
            Some(nsg) => Some(nsg.id.clone()),
            None => match nic.properties.ip_configurations.iter().find_map(|c| c.properties.subnet.clone()) {
                Some(subnet) => {
                    let subnet: Subnet =
                        parse("subnet", arm.get(&format!("{}?api-version={NETWORK}", subnet.id)).await?)?;
                    subnet.properties.network_security_group.map(|n| n.id)
                }
                None => None,
            },
        };
        match id {
            Some(id) => Ok(Some(parse("NSG", arm.get(&format!("{id}?api-version={NETWORK}")).await?)?)),
            None => Ok(None),
        }
    }
}
