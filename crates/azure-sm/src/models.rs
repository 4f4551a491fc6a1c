//! Typed models of the ARM resources azdock reads: resource groups, networks, public IPs, NICs,
//! VMs and extensions with their instance views, images and extension images.
//!
//! They are tolerant on purpose: unknown fields are ignored, optional blocks may be missing, and
//! enum values are matched without regard to case (ARM sends `Linux` and `linux`, `Succeeded`
//! and `succeeded`, depending on the resource provider and api-version). A value azdock does not
//! know is kept as `Other(text)` rather than failing the whole parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Declares an enum that deserialises case-insensitively, keeps unknown values, and prints
/// Azure's canonical spelling.
macro_rules! lenient_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $($variant,)+
            /// A value this version of azdock does not know, as ARM sent it.
            Other(String),
        }

        impl $name {
            /// The value ARM sent, matched without regard to case.
            pub fn from_text(text: &str) -> Self {
                $(if text.eq_ignore_ascii_case($text) { return Self::$variant; })+
                Self::Other(text.to_owned())
            }

            /// Azure's spelling of the value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(text) => text,
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::from_text(s))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::from_text(&String::deserialize(d)?))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

/// The operating system family of a VM or image: the workspace's one OS type.
pub use azdock_core::OsType;

/// An OS type as ARM sends it, where an OS azdock does not know is read as absent rather than
/// failing the whole resource.
fn lenient_os<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OsType>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.as_deref().and_then(OsType::from_text))
}

lenient_enum!(
    /// `provisioningState` of any resource.
    ProvisioningState {
        Succeeded => "Succeeded",
        Failed => "Failed",
        Canceled => "Canceled",
        Creating => "Creating",
        Updating => "Updating",
        Deleting => "Deleting",
        Accepted => "Accepted",
        Running => "Running",
    }
);

lenient_enum!(
    /// The severity of an instance-view status.
    StatusLevel { Info => "Info", Warning => "Warning", Error => "Error" }
);

lenient_enum!(
    /// Allow or deny, for a security rule.
    Access { Allow => "Allow", Deny => "Deny" }
);

lenient_enum!(
    /// The direction of a security rule.
    Direction { Inbound => "Inbound", Outbound => "Outbound" }
);

impl ProvisioningState {
    /// The operation has ended, well or badly.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }
}

/// Fields every ARM resource carries, around its `properties`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "P: Deserialize<'de> + Default"))]
pub struct Resource<P> {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub location: String,
    #[serde(default, deserialize_with = "null_default")]
    pub tags: BTreeMap<String, Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub properties: P,
}

impl<P> Resource<P> {
    /// The resource group named in the id (as ARM spells it there).
    pub fn resource_group(&self) -> Option<&str> {
        ResourceId::parse(&self.id).map(|id| id.resource_group)
    }
}

/// `null` where a default is wanted: ARM sends `"tags": null` and `"properties": null` at times.
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A reference to another resource: `{"id": "…"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubResource {
    #[serde(default)]
    pub id: String,
}

/// An ARM list page.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
pub struct Page<T> {
    #[serde(default = "Vec::new", deserialize_with = "null_default")]
    pub value: Vec<T>,
    #[serde(default)]
    pub next_link: Option<String>,
}

/// The parts of a resource id azdock routes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId<'a> {
    pub subscription: &'a str,
    pub resource_group: &'a str,
    /// `Microsoft.Compute`, …
    pub namespace: &'a str,
    /// Type/name pairs below the namespace: `[("virtualMachines", "vm1"), ("extensions", "x")]`.
    pub segments: Vec<(&'a str, &'a str)>,
}

impl<'a> ResourceId<'a> {
    /// Parses `/subscriptions/S/resourceGroups/G/providers/NS/type/name[/type/name…]`, matching
    /// the fixed words without regard to case as ARM does; `None` for anything else.
    pub fn parse(id: &'a str) -> Option<Self> {
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        let word = |i: usize, w: &str| parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(w));
        if parts.len() < 6 || !word(0, "subscriptions") || !word(2, "resourceGroups") || !word(4, "providers") {
            return None;
        }
        let rest = &parts[6..];
        if rest.is_empty() || !rest.len().is_multiple_of(2) || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(Self {
            subscription: parts[1],
            resource_group: parts[3],
            namespace: parts[5],
            segments: rest.chunks(2).map(|c| (c[0], c[1])).collect(),
        })
    }

    /// The name of the last segment.
    pub fn name(&self) -> &'a str {
        self.segments.last().map_or("", |s| s.1)
    }

    /// `namespace/type[/type…]`, e.g. `Microsoft.Compute/virtualMachines/extensions`.
    pub fn resource_type(&self) -> String {
        let mut out = self.namespace.to_owned();
        for (kind, _) in &self.segments {
            out.push('/');
            out.push_str(kind);
        }
        out
    }
}

// ---- resource groups and networks ----------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGroupProperties {
    pub provisioning_state: Option<ProvisioningState>,
}
pub type ResourceGroup = Resource<ResourceGroupProperties>;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressSpace {
    #[serde(default)]
    pub address_prefixes: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualNetworkProperties {
    #[serde(default)]
    pub address_space: AddressSpace,
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    pub provisioning_state: Option<ProvisioningState>,
}
pub type VirtualNetwork = Resource<VirtualNetworkProperties>;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubnetProperties {
    pub address_prefix: Option<String>,
    #[serde(default)]
    pub address_prefixes: Vec<String>,
    pub network_security_group: Option<SubResource>,
    pub provisioning_state: Option<ProvisioningState>,
}
pub type Subnet = Resource<SubnetProperties>;

impl SubnetProperties {
    /// The subnet's prefixes, whichever of the two fields ARM filled.
    pub fn prefixes(&self) -> Vec<&str> {
        self.address_prefix.iter().chain(&self.address_prefixes).map(String::as_str).collect()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityRuleProperties {
    #[serde(default)]
    pub protocol: String,
    pub source_address_prefix: Option<String>,
    #[serde(default)]
    pub source_address_prefixes: Vec<String>,
    pub destination_port_range: Option<String>,
    #[serde(default)]
    pub destination_port_ranges: Vec<String>,
    pub access: Option<Access>,
    pub direction: Option<Direction>,
    #[serde(default)]
    pub priority: u32,
    pub provisioning_state: Option<ProvisioningState>,
}
pub type SecurityRule = Resource<SecurityRuleProperties>;

impl SecurityRuleProperties {
    /// Whether the rule's destination ports include `port` (`*`, `22`, `8000-9000`).
    pub fn covers_port(&self, port: u16) -> bool {
        self.destination_port_range.iter().chain(&self.destination_port_ranges).any(|range| {
            let range = range.trim();
            if range == "*" {
                return true;
            }
            match range.split_once('-') {
                Some((lo, hi)) => {
                    lo.trim().parse::<u16>().is_ok_and(|lo| lo <= port)
                        && hi.trim().parse::<u16>().is_ok_and(|hi| port <= hi)
                }
                None => range.parse::<u16>() == Ok(port),
            }
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSecurityGroupProperties {
    #[serde(default)]
    pub security_rules: Vec<SecurityRule>,
    #[serde(default)]
    pub default_security_rules: Vec<SecurityRule>,
    pub provisioning_state: Option<ProvisioningState>,
}
pub type NetworkSecurityGroup = Resource<NetworkSecurityGroupProperties>;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsSettings {
    pub domain_name_label: Option<String>,
    pub fqdn: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpAddressProperties {
    pub ip_address: Option<String>,
    #[serde(rename = "publicIPAllocationMethod")]
    pub allocation_method: Option<String>,
    pub dns_settings: Option<DnsSettings>,
    pub ip_configuration: Option<SubResource>,
    pub provisioning_state: Option<ProvisioningState>,
}
pub type PublicIpAddress = Resource<PublicIpAddressProperties>;

impl PublicIpAddress {
    /// The FQDN, when a DNS label is set.
    pub fn fqdn(&self) -> Option<&str> {
        self.properties.dns_settings.as_ref()?.fqdn.as_deref()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfigurationProperties {
    #[serde(rename = "privateIPAddress")]
    pub private_ip_address: Option<String>,
    #[serde(rename = "publicIPAddress")]
    pub public_ip_address: Option<SubResource>,
    pub subnet: Option<SubResource>,
    pub primary: Option<bool>,
}
pub type IpConfiguration = Resource<IpConfigurationProperties>;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceProperties {
    #[serde(default)]
    pub ip_configurations: Vec<IpConfiguration>,
    pub network_security_group: Option<SubResource>,
    pub virtual_machine: Option<SubResource>,
    pub primary: Option<bool>,
    pub provisioning_state: Option<ProvisioningState>,
}
pub type NetworkInterface = Resource<NetworkInterfaceProperties>;

// ---- virtual machines ------------------------------------------------------------------------

/// One entry of an instance view's `statuses`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceViewStatus {
    #[serde(default)]
    pub code: String,
    pub level: Option<StatusLevel>,
    pub display_status: Option<String>,
    pub message: Option<String>,
    pub time: Option<String>,
}

impl InstanceViewStatus {
    /// An error status, by level or by a `failed` or `error` part of its code
    /// (`ProvisioningState/failed/1` is how CustomScript reports exit status 1).
    pub fn is_error(&self) -> bool {
        self.level == Some(StatusLevel::Error)
            || self.code.split('/').skip(1).any(|p| p.eq_ignore_ascii_case("failed") || p.eq_ignore_ascii_case("error"))
    }
}

lenient_enum!(
    /// A VM's power state, from its `PowerState/…` status.
    PowerState {
        Running => "running",
        Starting => "starting",
        Stopped => "stopped",
        Stopping => "stopping",
        Deallocated => "deallocated",
        Deallocating => "deallocating",
    }
);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmAgentInstanceView {
    pub vm_agent_version: Option<String>,
    #[serde(default)]
    pub statuses: Vec<InstanceViewStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmInstanceView {
    pub computer_name: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub vm_agent: Option<VmAgentInstanceView>,
    #[serde(default)]
    pub extensions: Vec<ExtensionInstanceView>,
    #[serde(default)]
    pub statuses: Vec<InstanceViewStatus>,
}

impl VmInstanceView {
    /// The power state, when the instance view reports one.
    pub fn power_state(&self) -> Option<PowerState> {
        self.statuses.iter().find_map(|s| {
            let (kind, value) = s.code.split_once('/')?;
            kind.eq_ignore_ascii_case("PowerState").then(|| PowerState::from_text(value))
        })
    }

    /// `VM running`, as the portal and az show it.
    pub fn power_state_display(&self) -> Option<&str> {
        self.statuses
            .iter()
            .find(|s| s.code.to_ascii_lowercase().starts_with("powerstate/"))
            .and_then(|s| s.display_status.as_deref())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfile {
    pub vm_size: Option<String>,
}

/// A marketplace image (`publisher:offer:sku:version`) or a custom image id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing)]
    pub exact_version: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OsDisk {
    #[serde(default, deserialize_with = "lenient_os")]
    pub os_type: Option<OsType>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageProfile {
    pub image_reference: Option<ImageReference>,
    pub os_disk: Option<OsDisk>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshPublicKey {
    pub path: Option<String>,
    pub key_data: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshConfiguration {
    #[serde(default)]
    pub public_keys: Vec<SshPublicKey>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxConfiguration {
    pub disable_password_authentication: Option<bool>,
    pub ssh: Option<SshConfiguration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OsProfile {
    pub computer_name: Option<String>,
    pub admin_username: Option<String>,
    pub linux_configuration: Option<LinuxConfiguration>,
    pub windows_configuration: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicReference {
    #[serde(default)]
    pub id: String,
    pub properties: Option<NicReferenceProperties>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NicReferenceProperties {
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    #[serde(default)]
    pub network_interfaces: Vec<NicReference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineProperties {
    pub vm_id: Option<String>,
    #[serde(default)]
    pub hardware_profile: HardwareProfile,
    #[serde(default)]
    pub storage_profile: StorageProfile,
    pub os_profile: Option<OsProfile>,
    #[serde(default)]
    pub network_profile: NetworkProfile,
    pub provisioning_state: Option<ProvisioningState>,
    pub instance_view: Option<VmInstanceView>,
}

/// A VM; `resources` lists its extensions when ARM includes them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachine {
    #[serde(flatten)]
    pub resource: Resource<VirtualMachineProperties>,
    #[serde(default)]
    pub resources: Vec<VirtualMachineExtension>,
    #[serde(default)]
    pub zones: Vec<String>,
}

impl std::ops::Deref for VirtualMachine {
    type Target = Resource<VirtualMachineProperties>;
    fn deref(&self) -> &Self::Target {
        &self.resource
    }
}

impl VirtualMachine {
    /// The OS family, from the OS disk or else from which OS configuration is present.
    pub fn os_type(&self) -> Option<OsType> {
        let p = &self.properties;
        if let Some(t) = p.storage_profile.os_disk.as_ref().and_then(|d| d.os_type) {
            return Some(t);
        }
        let os = p.os_profile.as_ref()?;
        if os.linux_configuration.is_some() {
            Some(OsType::Linux)
        } else if os.windows_configuration.is_some() {
            Some(OsType::Windows)
        } else {
            None
        }
    }

    /// The primary NIC's id (the only one, or the one marked primary).
    pub fn primary_nic(&self) -> Option<&str> {
        let nics = &self.properties.network_profile.network_interfaces;
        nics.iter()
            .find(|n| n.properties.as_ref().and_then(|p| p.primary) == Some(true))
            .or_else(|| nics.first())
            .map(|n| n.id.as_str())
    }
}

// ---- extensions ------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionInstanceView {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub type_handler_version: Option<String>,
    #[serde(default)]
    pub statuses: Vec<InstanceViewStatus>,
    #[serde(default)]
    pub substatuses: Vec<InstanceViewStatus>,
}

impl ExtensionInstanceView {
    /// The handler's own words about a failure: the first error status's message (or its
    /// display status), with error substatuses appended.
    pub fn failure(&self) -> Option<String> {
        let first = self.statuses.iter().find(|s| s.is_error())?;
        let mut text = first.message.clone().or_else(|| first.display_status.clone()).unwrap_or(first.code.clone());
        for sub in self.substatuses.iter().filter(|s| s.is_error()) {
            if let Some(m) = sub.message.as_deref().filter(|m| !m.is_empty() && !text.contains(*m)) {
                text.push_str("; ");
                text.push_str(m);
            }
        }
        Some(text)
    }

    /// The handler reported success.
    pub fn succeeded(&self) -> bool {
        !self.statuses.is_empty()
            && !self.statuses.iter().any(InstanceViewStatus::is_error)
            && self.statuses.iter().any(|s| s.code.to_ascii_lowercase().ends_with("/succeeded"))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProperties {
    #[serde(default)]
    pub publisher: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub type_handler_version: String,
    pub auto_upgrade_minor_version: Option<bool>,
    pub enable_automatic_upgrade: Option<bool>,
    pub force_update_tag: Option<String>,
    pub settings: Option<Value>,
    pub provisioning_state: Option<ProvisioningState>,
    pub instance_view: Option<ExtensionInstanceView>,
}
pub type VirtualMachineExtension = Resource<ExtensionProperties>;

impl VirtualMachineExtension {
    /// Whether this instance runs the handler `publisher`/`kind` (compared as ARM does).
    pub fn is_handler(&self, publisher: &str, kind: &str) -> bool {
        self.properties.publisher.eq_ignore_ascii_case(publisher) && self.properties.kind.eq_ignore_ascii_case(kind)
    }
}

// ---- images ----------------------------------------------------------------------------------

/// An entry of the image and extension-image catalogues: a publisher, offer, sku, version or
/// extension type, known by its name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogueEntry {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub id: String,
}

/// The newest of `versions` by numeric comparison of dotted parts (`1.10` after `1.9`).
pub fn newest_version<'a>(versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    versions.into_iter().max_by_key(|v| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionImageProperties {
    #[serde(default, deserialize_with = "lenient_os")]
    pub operating_system: Option<OsType>,
    pub compute_role: Option<String>,
    pub handler_schema: Option<String>,
    pub vm_scale_set_enabled: Option<bool>,
    pub supports_multiple_extensions: Option<bool>,
}
/// One version of a VM extension handler in the catalogue.
pub type ExtensionImage = Resource<ExtensionImageProperties>;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OsDiskImage {
    #[serde(default, deserialize_with = "lenient_os")]
    pub operating_system: Option<OsType>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineImageProperties {
    pub os_disk_image: Option<OsDiskImage>,
    pub hyper_v_generation: Option<String>,
    pub architecture: Option<String>,
}
/// One version of a marketplace image.
pub type VirtualMachineImage = Resource<VirtualMachineImageProperties>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_ignore_case_and_keep_unknown_values() {
        let disk: OsDisk = serde_json::from_str(r#"{"osType": "linux"}"#).unwrap();
        assert_eq!(disk.os_type, Some(OsType::Linux));
        let disk: OsDisk = serde_json::from_str(r#"{"osType": "Plan9"}"#).unwrap();
        assert_eq!(disk.os_type, None);
        let s: ProvisioningState = serde_json::from_str("\"Migrating\"").unwrap();
        assert_eq!(s, ProvisioningState::Other("Migrating".into()));
        assert_eq!(serde_json::to_string(&OsType::Windows).unwrap(), "\"Windows\"");
    }

    #[test]
    fn resource_ids_parse_with_any_case_and_reject_the_rest() {
        let id = ResourceId::parse(
            "/subscriptions/s/resourcegroups/g/providers/Microsoft.Compute/virtualMachines/vm/extensions/x",
        )
        .unwrap();
        assert_eq!((id.subscription, id.resource_group, id.name()), ("s", "g", "x"));
        assert_eq!(id.resource_type(), "Microsoft.Compute/virtualMachines/extensions");
        for bad in ["", "/subscriptions/s", "/subscriptions/s/resourceGroups/g/providers/NS/t", "vm1"] {
            assert!(ResourceId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn port_ranges() {
        let rule = |r: &str| SecurityRuleProperties { destination_port_range: Some(r.into()), ..Default::default() };
        assert!(rule("*").covers_port(2376));
        assert!(rule("2376").covers_port(2376));
        assert!(rule("2000-3000").covers_port(2376));
        assert!(!rule("22").covers_port(2376));
    }

    #[test]
    fn newest_version_compares_numbers() {
        assert_eq!(newest_version(["1.9", "1.10", "1.2"]), Some("1.10"));
    }
}
