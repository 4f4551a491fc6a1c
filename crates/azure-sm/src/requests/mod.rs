//! The bodies azdock PUTs to ARM, typed after the published specifications of the api-versions
//! in [`crate::api`]: a resource group, a virtual network with its subnet, a network security
//! group with its inbound rules, a public IP, a NIC and a Linux VM. [`crate::models`] types
//! what ARM answers; these type what azdock asks for, so a body carries only fields the
//! caller chose and secrets (the admin password, custom data) stay wrapped until the wire.

use azdock_core::Secret;
use azdock_core::secret::Exposing;
use serde::Serialize;

use crate::body::Body;
use crate::error::AzureError;
use crate::models::{ImageReference, SubResource};

/// A child resource given inline by name: a subnet, a security rule, an IP configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Named<P> {
    pub name: String,
    pub properties: P,
}

/// A top-level resource to create: where it lives and what it is.
#[derive(Debug, Clone, Serialize)]
pub struct Create<P> {
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<Sku>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<P>,
}

impl<P: Serialize> Create<P> {
    /// The request body for [`crate::Arm::send`]: its secrets go straight into the wiped buffer.
    pub fn body(&self) -> Result<Body, AzureError> {
        Body::json(self)
    }

    /// The body as a `Value`, to compare in tests (secrets included: never for sending).
    #[cfg(test)]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// A pricing tier, `{"name": "Standard"}`.
#[derive(Debug, Clone, Serialize)]
pub struct Sku {
    pub name: String,
}

/// A resource group: only its location.
pub type ResourceGroupBody = Create<()>;

/// `ResourceGroup` in resources.json: `location` is its one required field.
pub fn resource_group(location: &str) -> ResourceGroupBody {
    Create { location: location.to_owned(), sku: None, properties: None }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressSpaceBody {
    pub address_prefixes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubnetBody {
    pub address_prefix: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualNetworkBody {
    pub address_space: AddressSpaceBody,
    pub subnets: Vec<Named<SubnetBody>>,
}

/// A virtual network holding one subnet, as az makes for a new VM (`10.0.0.0/16`, its first
/// `/24` for the subnet).
pub fn virtual_network(location: &str, subnet: &str) -> Create<VirtualNetworkBody> {
    Create {
        location: location.to_owned(),
        sku: None,
        properties: Some(VirtualNetworkBody {
            address_space: AddressSpaceBody { address_prefixes: vec!["10.0.0.0/16".into()] },
            subnets: vec![Named {
                name: subnet.to_owned(),
                properties: SubnetBody { address_prefix: "10.0.0.0/24".into() },
            }],
        }),
    }
}

/// ARM's protocol names for a security rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RuleProtocol {
    Tcp,
    Udp,
}

impl From<azdock_core::Protocol> for RuleProtocol {
    fn from(p: azdock_core::Protocol) -> Self {
        match p {
            azdock_core::Protocol::Tcp => Self::Tcp,
            azdock_core::Protocol::Udp => Self::Udp,
        }
    }
}

/// `SecurityRulePropertiesFormat` for an inbound Allow rule to one port. ARM takes one source
/// in `sourceAddressPrefix` and several in `sourceAddressPrefixes`, never both.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityRuleBody {
    pub protocol: RuleProtocol,
    pub source_port_range: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_address_prefix: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_address_prefixes: Vec<String>,
    pub destination_address_prefix: String,
    pub destination_port_range: String,
    pub access: &'static str,
    pub direction: &'static str,
    pub priority: u32,
}

/// An inbound rule admitting `port` over `protocol` from `sources` at `priority`.
pub fn inbound_rule(port: u16, protocol: azdock_core::Protocol, sources: &[String], priority: u32) -> SecurityRuleBody {
    let (one, many) = match sources {
        [one] => (Some(one.clone()), Vec::new()),
        many => (None, many.to_vec()),
    };
    SecurityRuleBody {
        protocol: protocol.into(),
        source_port_range: "*".into(),
        source_address_prefix: one,
        source_address_prefixes: many,
        destination_address_prefix: "*".into(),
        destination_port_range: port.to_string(),
        access: "Allow",
        direction: "Inbound",
        priority,
    }
}

/// A security rule PUT on its own (`…/securityRules/NAME`).
#[derive(Debug, Clone, Serialize)]
pub struct SecurityRuleResource {
    pub properties: SecurityRuleBody,
}

impl SecurityRuleResource {
    /// The request body for [`crate::Arm::put`].
    pub fn body(&self) -> Result<Body, AzureError> {
        Body::json(self)
    }

    #[cfg(test)]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSecurityGroupBody {
    pub security_rules: Vec<Named<SecurityRuleBody>>,
}

/// A network security group with these inbound rules.
pub fn network_security_group(location: &str, rules: Vec<Named<SecurityRuleBody>>) -> Create<NetworkSecurityGroupBody> {
    Create {
        location: location.to_owned(),
        sku: None,
        properties: Some(NetworkSecurityGroupBody { security_rules: rules }),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsLabel {
    pub domain_name_label: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpBody {
    #[serde(rename = "publicIPAllocationMethod")]
    pub allocation_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_settings: Option<DnsLabel>,
}

/// A Standard, static public IP (Basic SKU public IPs are retired), with a DNS label when
/// given.
pub fn public_ip(location: &str, dns_label: Option<&str>) -> Create<PublicIpBody> {
    Create {
        location: location.to_owned(),
        sku: Some(Sku { name: "Standard".into() }),
        properties: Some(PublicIpBody {
            allocation_method: "Static",
            dns_settings: dns_label.map(|l| DnsLabel { domain_name_label: l.to_owned() }),
        }),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfigurationBody {
    pub subnet: SubResource,
    #[serde(rename = "publicIPAddress", skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<SubResource>,
    pub primary: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_security_group: Option<SubResource>,
    pub ip_configurations: Vec<Named<IpConfigurationBody>>,
}

/// A NIC in `subnet`, filtered by `nsg`, reachable at `public_ip`.
pub fn network_interface(
    location: &str,
    subnet: &str,
    nsg: Option<&str>,
    public_ip: Option<&str>,
) -> Create<NetworkInterfaceBody> {
    let id = |id: &str| SubResource { id: id.to_owned() };
    Create {
        location: location.to_owned(),
        sku: None,
        properties: Some(NetworkInterfaceBody {
            network_security_group: nsg.map(id),
            ip_configurations: vec![Named {
                name: "ipconfig1".into(),
                properties: IpConfigurationBody {
                    subnet: id(subnet),
                    public_ip_address: public_ip.map(id),
                    primary: true,
                },
            }],
        }),
    }
}

/// How the admin signs in to a Linux VM.
#[derive(Debug)]
pub enum AdminLogin {
    Password(Secret<String>),
    /// An OpenSSH public key line.
    Key(String),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfileBody {
    pub vm_size: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OsDiskBody {
    pub create_option: &'static str,
    /// The disk goes with the VM: deleting a failed run's VM leaves no disk behind.
    pub delete_option: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageProfileBody {
    pub image_reference: ImageReference,
    pub os_disk: OsDiskBody,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SshPublicKeyBody {
    pub path: String,
    pub key_data: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SshBody {
    pub public_keys: Vec<SshPublicKeyBody>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxConfigurationBody {
    pub disable_password_authentication: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshBody>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OsProfileBody<'a> {
    pub computer_name: String,
    pub admin_username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<Exposing<'a, String>>,
    /// Base64 of what cloud-init runs at first boot.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "azdock_core::secret::expose_option")]
    pub custom_data: Option<Secret<String>>,
    pub linux_configuration: LinuxConfigurationBody,
}

#[derive(Debug, Clone, Serialize)]
pub struct NicReferenceBody {
    pub id: String,
    pub properties: NicPrimary,
}

#[derive(Debug, Clone, Serialize)]
pub struct NicPrimary {
    pub primary: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfileBody {
    pub network_interfaces: Vec<NicReferenceBody>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineBody<'a> {
    pub hardware_profile: HardwareProfileBody,
    pub storage_profile: StorageProfileBody,
    pub os_profile: OsProfileBody<'a>,
    pub network_profile: NetworkProfileBody,
}

/// What a Linux VM is made of.
#[derive(Debug)]
pub struct LinuxVm<'a> {
    pub location: &'a str,
    pub name: &'a str,
    pub size: &'a str,
    pub image: ImageReference,
    pub admin_user: &'a str,
    pub login: &'a AdminLogin,
    pub custom_data: Option<Secret<String>>,
    pub nic: &'a str,
}

/// A Linux VM on one NIC: password sign-in only when a password is given, else the key in the
/// admin's `authorized_keys` (where az puts it).
pub fn linux_vm(vm: LinuxVm<'_>) -> Create<VirtualMachineBody<'_>> {
    let (password, ssh) = match vm.login {
        AdminLogin::Password(p) => (Some(Exposing(p)), None),
        AdminLogin::Key(key) => (
            None,
            Some(SshBody {
                public_keys: vec![SshPublicKeyBody {
                    path: format!("/home/{}/.ssh/authorized_keys", vm.admin_user),
                    key_data: key.clone(),
                }],
            }),
        ),
    };
    Create {
        location: vm.location.to_owned(),
        sku: None,
        properties: Some(VirtualMachineBody {
            hardware_profile: HardwareProfileBody { vm_size: vm.size.to_owned() },
            storage_profile: StorageProfileBody {
                image_reference: vm.image,
                os_disk: OsDiskBody { create_option: "FromImage", delete_option: "Delete" },
            },
            os_profile: OsProfileBody {
                computer_name: vm.name.to_owned(),
                admin_username: vm.admin_user.to_owned(),
                linux_configuration: LinuxConfigurationBody {
                    disable_password_authentication: password.is_none(),
                    ssh,
                },
                admin_password: password,
                custom_data: vm.custom_data,
            },
            network_profile: NetworkProfileBody {
                network_interfaces: vec![NicReferenceBody {
                    id: vm.nic.to_owned(),
                    properties: NicPrimary { primary: true },
                }],
            },
        }),
    }
}

#[cfg(test)]
mod tests;

/// A VM extension instance as it is PUT (`VirtualMachineExtension` in compute.json): the
/// protected settings stay wrapped until they are written into the request buffer.
#[derive(Debug, Serialize)]
pub struct ExtensionBody<'a> {
    pub location: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<std::collections::BTreeMap<&'a str, &'a str>>,
    pub properties: ExtensionPropertiesBody<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionPropertiesBody<'a> {
    pub publisher: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub type_handler_version: &'a str,
    pub auto_upgrade_minor_version: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_update_tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protected_settings: Option<Exposing<'a, serde_json::Value>>,
}

impl ExtensionBody<'_> {
    /// The request body for [`crate::Arm::send`].
    pub fn body(&self) -> Result<Body, AzureError> {
        Body::json(self)
    }
}

/// A NIC as read, made a body to PUT back with a change: what networkInterface.json
/// (2024-05-01) marks readOnly is left out — ARM ignores it, but a request carrying it breaks
/// the operation's schema. Everything writable the NIC has (its IP configurations, DNS servers,
/// flags, tags) is kept as it was.
pub fn nic_update(current: &serde_json::Value) -> serde_json::Value {
    const RESOURCE: &[&str] = &["name", "type", "etag"];
    const PROPERTIES: &[&str] = &[
        "virtualMachine",
        "privateEndpoint",
        "tapConfigurations",
        "macAddress",
        "primary",
        "vnetEncryptionSupported",
        "defaultOutboundConnectivityEnabled",
        "hostedWorkloads",
        "dscpConfiguration",
        "resourceGuid",
        "provisioningState",
    ];
    const IP_CONFIGURATION: &[&str] = &["etag", "type"];
    const IP_PROPERTIES: &[&str] = &["provisioningState", "privateLinkConnectionProperties"];
    const DNS: &[&str] = &["appliedDnsServers", "internalFqdn", "internalDomainNameSuffix"];
    let strip = |v: &mut serde_json::Value, names: &[&str]| {
        if let Some(map) = v.as_object_mut() {
            map.retain(|k, _| !names.contains(&k.as_str()));
        }
    };
    let mut body = current.clone();
    strip(&mut body, RESOURCE);
    let properties = &mut body["properties"];
    strip(properties, PROPERTIES);
    strip(&mut properties["dnsSettings"], DNS);
    for config in properties["ipConfigurations"].as_array_mut().into_iter().flatten() {
        strip(config, IP_CONFIGURATION);
        strip(&mut config["properties"], IP_PROPERTIES);
    }
    body
}
