//! Facts: what the host learned about the target VM before asking an extension for a plan.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::manifest::OsType;

/// The power state from the VM's instanceView (`PowerState/<state>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PowerState {
    Starting,
    Running,
    Stopping,
    Stopped,
    Deallocating,
    Deallocated,
    Unknown,
}

impl PowerState {
    /// Parses the tail of a `PowerState/<state>` status code; anything else is `Unknown`.
    pub fn from_status_code(code: &str) -> Self {
        match code.strip_prefix("PowerState/").unwrap_or(code).to_ascii_lowercase().as_str() {
            "starting" => Self::Starting,
            "running" => Self::Running,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "deallocating" => Self::Deallocating,
            "deallocated" => Self::Deallocated,
            _ => Self::Unknown,
        }
    }
}

/// A status entry from an instanceView (`code`, `level`, `displayStatus`, `message`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An extension instance already on the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledExtension {
    pub name: String,
    pub publisher: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub type_handler_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// Public settings as ARM returns them (protected settings never come back).
    #[serde(default)]
    pub settings: serde_json::Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<Status>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substatuses: Vec<Status>,
    /// The azdock extension that put this instance (the host tags what it puts), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What the host knows about the target VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmFacts {
    pub name: String,
    pub resource_group: String,
    pub subscription_id: String,
    pub resource_id: String,
    pub location: String,
    pub os_type: OsType,
    pub power_state: PowerState,
    /// The name of the cloud (`AzureCloud`, `AzureChinaCloud`, `local`, …).
    pub cloud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    #[serde(default)]
    pub public_ips: Vec<IpAddr>,
    #[serde(default)]
    pub private_ips: Vec<IpAddr>,
    #[serde(default)]
    pub extensions: Vec<InstalledExtension>,
}

/// Which machine a VM is across clouds: its cloud and resource id, as one lower-case string
/// (ARM's names are case-insensitive). What a certificate directory records as a server
/// certificate's owner, so two VMs of one name in different groups do not share one.
pub fn vm_identity(cloud: &str, resource_id: &str) -> String {
    format!("{cloud}:{resource_id}").to_ascii_lowercase()
}

impl VmFacts {
    /// This VM's [`vm_identity`].
    pub fn identity(&self) -> String {
        vm_identity(&self.cloud, &self.resource_id)
    }

    /// The installed instance of a handler, matched as ARM matches them (case-insensitively).
    /// There is at most one per VM.
    pub fn extension_of(&self, publisher: &str, kind: &str) -> Option<&InstalledExtension> {
        self.extensions
            .iter()
            .find(|e| e.publisher.eq_ignore_ascii_case(publisher) && e.kind.eq_ignore_ascii_case(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_state_parses_instance_view_codes() {
        assert_eq!(PowerState::from_status_code("PowerState/running"), PowerState::Running);
        assert_eq!(PowerState::from_status_code("PowerState/Deallocated"), PowerState::Deallocated);
        assert_eq!(PowerState::from_status_code("ProvisioningState/succeeded"), PowerState::Unknown);
    }

    #[test]
    fn extension_lookup_ignores_case() {
        let facts: VmFacts = serde_json::from_value(serde_json::json!({
            "name": "vm1", "resourceGroup": "rg", "subscriptionId": "s", "resourceId": "/x",
            "location": "westus", "osType": "Linux", "powerState": "running", "cloud": "local",
            "extensions": [{"name": "enablevmaccess", "publisher": "Microsoft.OSTCExtensions",
                            "type": "VMAccessForLinux", "typeHandlerVersion": "1.5"}]
        }))
        .unwrap();
        let found = facts.extension_of("microsoft.ostcextensions", "vmaccessforlinux").unwrap();
        assert_eq!(found.name, "enablevmaccess");
        assert!(facts.extension_of("Microsoft.Azure.Extensions", "CustomScript").is_none());
    }
}
