//! The request bodies as ARM reads them: field names as the specifications spell them, secrets
//! only where they belong, nothing the caller did not choose.

use serde_json::json;

use super::*;

#[test]
fn a_linux_vm_with_a_key_disables_passwords_and_puts_the_key_where_az_does() {
    let image = ImageReference {
        publisher: Some("Canonical".into()),
        offer: Some("ubuntu-24_04-lts".into()),
        sku: Some("server".into()),
        version: Some("latest".into()),
        ..ImageReference::default()
    };
    let body = linux_vm(LinuxVm {
        location: "westeurope",
        name: "web1",
        size: "Standard_B2s",
        image,
        admin_user: "ops",
        login: &AdminLogin::Key("ssh-ed25519 AAAA k".into()),
        custom_data: None,
        nic: "/n/nic1",
    })
    .to_json();
    assert_eq!(
        body,
        json!({"location": "westeurope", "properties": {
            "hardwareProfile": {"vmSize": "Standard_B2s"},
            "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"},
                               "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"}},
            "osProfile": {"computerName": "web1", "adminUsername": "ops",
                          "linuxConfiguration": {"disablePasswordAuthentication": true,
                              "ssh": {"publicKeys": [{"path": "/home/ops/.ssh/authorized_keys", "keyData": "ssh-ed25519 AAAA k"}]}}},
            "networkProfile": {"networkInterfaces": [{"id": "/n/nic1", "properties": {"primary": true}}]}}})
    );
}

#[test]
fn a_password_and_custom_data_reach_the_wire_and_never_debug_output() {
    let login = AdminLogin::Password(Secret::new("Sup3r-secret-pw".into()));
    let vm = || LinuxVm {
        location: "l",
        name: "n",
        size: "s",
        image: ImageReference { id: Some("/img".into()), ..ImageReference::default() },
        admin_user: "u",
        login: &login,
        custom_data: Some(Secret::new("I2Nsb3VkLWNvbmZpZw==".into())),
        nic: "/nic",
    };
    let body = linux_vm(vm()).to_json();
    let os = &body["properties"]["osProfile"];
    assert_eq!(os["adminPassword"], "Sup3r-secret-pw");
    assert_eq!(os["customData"], "I2Nsb3VkLWNvbmZpZw==");
    assert_eq!(os["linuxConfiguration"], json!({"disablePasswordAuthentication": false}));
    assert_eq!(body["properties"]["storageProfile"]["imageReference"], json!({"id": "/img"}));
    let debug = format!("{:?}", linux_vm(vm()));
    assert!(!debug.contains("Sup3r-secret-pw") && !debug.contains("I2Nsb3Vk"), "{debug}");
    // What `--debug` logs of the body it sends.
    let logged = azdock_core::secret::to_redacted_json(&linux_vm(vm())).unwrap();
    assert!(!logged.contains("Sup3r-secret-pw") && !logged.contains("I2Nsb3Vk"), "{logged}");
    assert!(logged.contains(r#""adminPassword":"[redacted]""#), "{logged}");
}

#[test]
fn network_bodies_use_the_specifications_names() {
    assert_eq!(resource_group("westus").to_json(), json!({"location": "westus"}));
    assert_eq!(
        virtual_network("l", "s1").to_json(),
        json!({"location": "l", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"name": "s1", "properties": {"addressPrefix": "10.0.0.0/24"}}]}})
    );
    assert_eq!(
        public_ip("l", Some("web1")).to_json(),
        json!({"location": "l", "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static", "dnsSettings": {"domainNameLabel": "web1"}}})
    );
    assert_eq!(public_ip("l", None).to_json()["properties"], json!({"publicIPAllocationMethod": "Static"}));
    assert_eq!(
        network_interface("l", "/sub", Some("/nsg"), Some("/pip")).to_json(),
        json!({"location": "l", "properties": {"networkSecurityGroup": {"id": "/nsg"},
            "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": "/sub"}, "publicIPAddress": {"id": "/pip"}, "primary": true}}]}})
    );
    assert_eq!(
        network_interface("l", "/sub", None, None).to_json()["properties"],
        json!({"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": "/sub"}, "primary": true}}]})
    );
}

#[test]
fn an_inbound_rule_names_one_source_or_several_never_both() {
    let one = serde_json::to_value(inbound_rule(2376, azdock_core::Protocol::Tcp, &["*".into()], 1000)).unwrap();
    assert_eq!(
        one,
        json!({"protocol": "Tcp", "sourcePortRange": "*", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*",
            "destinationPortRange": "2376", "access": "Allow", "direction": "Inbound", "priority": 1000})
    );
    let many = serde_json::to_value(inbound_rule(
        53,
        azdock_core::Protocol::Udp,
        &["10.0.0.0/8".into(), "192.168.1.1".into()],
        1010,
    ))
    .unwrap();
    assert_eq!(many["protocol"], "Udp");
    assert_eq!(many["sourceAddressPrefixes"], json!(["10.0.0.0/8", "192.168.1.1"]));
    assert!(many.get("sourceAddressPrefix").is_none());
    let nsg = network_security_group(
        "l",
        vec![Named {
            name: "azdock-docker".into(),
            properties: inbound_rule(2376, azdock_core::Protocol::Tcp, &["*".into()], 1000),
        }],
    )
    .to_json();
    assert_eq!(nsg["properties"]["securityRules"][0]["name"], "azdock-docker");
    assert_eq!(nsg["properties"]["securityRules"][0]["properties"]["priority"], 1000);
    assert_eq!(
        SecurityRuleResource { properties: inbound_rule(22, azdock_core::Protocol::Tcp, &["*".into()], 1020) }
            .to_json()["properties"]["destinationPortRange"],
        "22"
    );
}

#[test]
fn a_nic_put_back_keeps_what_is_writable_and_drops_what_is_read_only() {
    let read = json!({"name": "nic", "id": "/nic", "type": "Microsoft.Network/networkInterfaces", "etag": "W/1",
        "location": "westus", "tags": {"a": "b"},
        "properties": {"provisioningState": "Succeeded", "resourceGuid": "g", "macAddress": "00-0D-3A-00-00-01",
            "primary": true, "virtualMachine": {"id": "/vm"}, "hostedWorkloads": [], "tapConfigurations": [],
            "enableAcceleratedNetworking": false, "networkSecurityGroup": {"id": "/nsg"},
            "dnsSettings": {"dnsServers": ["10.0.0.9"], "appliedDnsServers": ["10.0.0.9"], "internalDomainNameSuffix": "x"},
            "ipConfigurations": [{"name": "ipconfig1", "id": "/nic/ipConfigurations/ipconfig1", "etag": "W/1",
                "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                "properties": {"provisioningState": "Succeeded", "privateIPAddress": "10.0.0.4", "subnet": {"id": "/s"}}}]}});
    assert_eq!(
        nic_update(&read),
        json!({"id": "/nic", "location": "westus", "tags": {"a": "b"},
            "properties": {"enableAcceleratedNetworking": false, "networkSecurityGroup": {"id": "/nsg"},
                "dnsSettings": {"dnsServers": ["10.0.0.9"]},
                "ipConfigurations": [{"name": "ipconfig1", "id": "/nic/ipConfigurations/ipconfig1",
                    "properties": {"privateIPAddress": "10.0.0.4", "subnet": {"id": "/s"}}}]}})
    );
}
