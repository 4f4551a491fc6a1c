//! The typed models read real ARM bodies: recorded by Azure's SDK and CLI test suites over
//! several api-versions, and azdock's own fixtures written after today's REST examples.

#![allow(clippy::unwrap_used)]

use azdock_azure_sm::models::{
    CatalogueEntry, ExtensionImage, NetworkInterface, NetworkSecurityGroup, OsType, Page, PowerState,
    ProvisioningState, PublicIpAddress, ResourceGroup, VirtualMachine, VirtualMachineExtension, VirtualMachineImage,
    VirtualNetwork, newest_version,
};
use serde::de::DeserializeOwned;

fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_vm_with_its_instance_view_from_2017() {
    let vm: VirtualMachine = fixture("xplat-vm-instance-view.json");
    assert_eq!(vm.name, "xplatvm");
    assert_eq!(vm.resource_group(), Some("xplatTestGVMCreate4763"));
    assert_eq!(vm.os_type(), Some(OsType::Linux));
    assert_eq!(vm.properties.hardware_profile.vm_size.as_deref(), Some("Standard_D1"));
    assert_eq!(vm.properties.provisioning_state, Some(ProvisioningState::Succeeded));
    let view = vm.properties.instance_view.as_ref().unwrap();
    assert_eq!(view.power_state(), Some(PowerState::Running));
    assert_eq!(view.power_state_display(), Some("VM running"));
    assert_eq!(view.vm_agent.as_ref().unwrap().vm_agent_version.as_deref(), Some("2.1.3"));
    assert!(vm.primary_nic().unwrap().ends_with("/networkInterfaces/xplattestnic"));
    assert_eq!(vm.tags.len(), 3);
}

#[test]
fn a_vm_from_the_java_sdk_and_a_subscription_wide_list() {
    let vm: VirtualMachine = fixture("java-vm-instance-view.json");
    assert!(vm.properties.instance_view.is_some());
    assert!(vm.os_type().is_some());
    let page: Page<VirtualMachine> = fixture("java-vm-list-all.json");
    assert!(!page.value.is_empty());
    for vm in &page.value {
        assert!(vm.resource_group().is_some(), "{}", vm.id);
        assert!(vm.primary_nic().is_some());
    }
}

#[test]
fn a_vm_of_today_with_lowercase_enums_null_tags_and_extensions() {
    let vm: VirtualMachine = fixture("azdock-vm-2024.json");
    assert_eq!(vm.os_type(), Some(OsType::Linux), "osType sent as `linux`");
    assert_eq!(vm.properties.provisioning_state, Some(ProvisioningState::Succeeded), "sent as `succeeded`");
    assert!(vm.tags.is_empty(), "tags: null");
    assert_eq!(vm.zones, ["1"]);
    assert!(vm.primary_nic().unwrap().ends_with("/web1VMNic"), "the NIC marked primary, not the first");
    let image = vm.properties.storage_profile.image_reference.as_ref().unwrap();
    assert_eq!(image.exact_version.as_deref(), Some("24.04.202411030"));
    let view = vm.properties.instance_view.as_ref().unwrap();
    assert_eq!(view.os_name.as_deref(), Some("ubuntu"));
    let docker = &view.extensions[0];
    assert!(docker.succeeded() && docker.failure().is_none());
    assert_eq!(vm.resources.len(), 1);
    assert!(vm.resources[0].is_handler("microsoft.azure.extensions", "customscript"));
}

#[test]
fn a_windows_vm_lists_its_extensions_in_resources() {
    let vm: VirtualMachine = fixture("xplat-vm-with-extensions.json");
    assert_eq!(vm.os_type(), Some(OsType::Windows));
    assert!(!vm.resources.is_empty());
    assert!(vm.resources.iter().all(|e| !e.properties.publisher.is_empty()));
}

#[test]
fn extensions_succeeded_and_failed() {
    let ext: VirtualMachineExtension = fixture("java-extension.json");
    assert!(!ext.properties.publisher.is_empty() && !ext.properties.type_handler_version.is_empty());
    let failed: VirtualMachineExtension = fixture("azdock-extension-failed.json");
    assert_eq!(failed.properties.provisioning_state, Some(ProvisioningState::Failed));
    let view = failed.properties.instance_view.as_ref().unwrap();
    assert!(!view.succeeded());
    let why = view.failure().unwrap();
    assert!(why.contains("exit status=100") && why.contains("Unable to locate package docker.io"), "{why}");
}

#[test]
fn networks_public_ips_nics_and_security_groups() {
    let vnet: VirtualNetwork = fixture("java-vnet.json");
    assert!(!vnet.properties.address_space.address_prefixes.is_empty());
    assert!(vnet.properties.subnets.iter().all(|s| !s.properties.prefixes().is_empty()));
    let pip: PublicIpAddress = fixture("java-public-ip.json");
    assert!(pip.properties.allocation_method.is_some());
    assert!(pip.fqdn().is_some_and(|f| f.ends_with(".cloudapp.azure.com")), "{:?}", pip.fqdn());
    let nic: NetworkInterface = fixture("java-nic.json");
    let config = &nic.properties.ip_configurations[0];
    assert!(config.properties.private_ip_address.is_some());
    assert!(config.properties.subnet.is_some());
    let nsg: NetworkSecurityGroup = fixture("java-nsg.json");
    assert!(!nsg.properties.default_security_rules.is_empty());
    assert!(
        nsg.properties
            .security_rules
            .iter()
            .chain(&nsg.properties.default_security_rules)
            .all(|r| r.properties.priority > 0)
    );
}

#[test]
fn resource_groups_and_catalogues() {
    let groups: Page<ResourceGroup> = fixture("xplat-resource-groups.json");
    assert!(groups.value.len() > 5);
    assert!(groups.value.iter().all(|g| g.properties.provisioning_state.is_some()));
    let versions: Vec<CatalogueEntry> = fixture("xplat-extension-image-versions.json");
    assert!(newest_version(versions.iter().map(|v| v.name.as_str())).is_some());
    let image: ExtensionImage = fixture("xplat-extension-image.json");
    assert!(!image.name.is_empty());
    let versions: Vec<CatalogueEntry> = fixture("xplat-image-versions.json");
    assert!(versions.len() > 1);
    let image: VirtualMachineImage = fixture("xplat-image-version.json");
    assert_eq!(image.properties.os_disk_image.as_ref().unwrap().operating_system, Some(OsType::Linux));
}
