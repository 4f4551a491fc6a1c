//! What the local region offers: api-versions per provider, locations, VM images (with the
//! aliases az uses) and extension handlers with their versions.

use serde_json::{Value, json};

use crate::OsKind;

/// api-versions `Microsoft.Compute` accepts (old ones included: clients in the field send them).
pub(crate) const COMPUTE_API_VERSIONS: &[&str] = &[
    "2015-06-15",
    "2016-03-30",
    "2016-04-30-preview",
    "2017-03-30",
    "2017-12-01",
    "2018-04-01",
    "2018-06-01",
    "2018-10-01",
    "2019-03-01",
    "2019-07-01",
    "2019-12-01",
    "2020-06-01",
    "2020-12-01",
    "2021-03-01",
    "2021-04-01",
    "2021-07-01",
    "2021-11-01",
    "2022-03-01",
    "2022-08-01",
    "2022-11-01",
    "2023-03-01",
    "2023-07-01",
    "2023-09-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-04-01",
    // Sent by the current Azure SDKs (azure-mgmt-compute 39): VMs and extensions, disks, galleries.
    "2026-03-02",
    "2026-03-03",
    "2026-04-01",
];

/// api-versions `Microsoft.Network` accepts.
pub(crate) const NETWORK_API_VERSIONS: &[&str] = &[
    "2015-06-15",
    "2016-03-30",
    "2016-09-01",
    "2016-12-01",
    "2017-03-01",
    "2017-06-01",
    "2017-09-01",
    "2017-10-01",
    "2017-11-01",
    "2018-01-01",
    "2018-02-01",
    "2018-04-01",
    "2018-06-01",
    "2018-08-01",
    "2018-10-01",
    "2018-12-01",
    "2019-02-01",
    "2019-04-01",
    "2019-06-01",
    "2019-08-01",
    "2019-09-01",
    "2019-11-01",
    "2019-12-01",
    "2020-03-01",
    "2020-05-01",
    "2020-06-01",
    "2020-07-01",
    "2020-08-01",
    "2020-11-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-08-01",
    "2022-01-01",
    "2022-05-01",
    "2022-07-01",
    "2022-09-01",
    "2022-11-01",
    "2023-02-01",
    "2023-04-01",
    "2023-05-01",
    "2023-06-01",
    "2023-09-01",
    "2023-11-01",
    "2024-01-01",
    "2024-03-01",
    "2024-05-01",
    "2024-07-01",
    "2024-10-01",
    "2025-01-01",
    "2025-03-01",
    "2025-05-01",
    // Sent by az 2.91 (`network vnet list`, `network public-ip list`).
    "2025-07-01",
    "2025-09-01",
    // Sent by the current Azure SDKs (azure-mgmt-network 33).
    "2026-03-01",
];

/// api-versions `Microsoft.Resources` (subscriptions, resource groups, providers) accepts.
pub(crate) const RESOURCES_API_VERSIONS: &[&str] = &[
    "2014-04-01",
    "2014-04-01-preview",
    "2015-01-01",
    "2015-11-01",
    "2016-02-01",
    "2016-06-01",
    "2016-07-01",
    "2016-09-01",
    "2017-05-10",
    "2017-06-01",
    "2017-08-01",
    "2018-02-01",
    "2018-05-01",
    "2019-03-01",
    "2019-05-01",
    "2019-05-10",
    "2019-06-01",
    "2019-07-01",
    "2019-08-01",
    "2019-10-01",
    "2019-11-01",
    "2020-01-01",
    "2020-06-01",
    "2020-08-01",
    "2020-10-01",
    "2021-01-01",
    "2021-04-01",
    "2022-01-01",
    "2022-09-01",
    "2022-12-01",
    "2023-07-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-04-01",
];

/// Versions of `Microsoft.Compute` that belong to its disk (`2026-03-02`) and gallery
/// (`2026-03-03`) services: ARM takes them for those types only, never for a VM or its parts.
const DISK_AND_GALLERY_API_VERSIONS: &[&str] = &["2026-03-02", "2026-03-03"];

/// The api-versions of one resource type, as its provider's registration lists them (oldest
/// first): the namespace's versions from the one the type first appeared in, less those of
/// other services in the namespace. `None` for a type the local cloud does not know.
pub(crate) fn type_api_versions(type_name: &str) -> Option<Vec<&'static str>> {
    let (list, since, except): (&[&str], &str, &[&str]) = match type_name.to_ascii_lowercase().as_str() {
        "microsoft.compute/virtualmachines"
        | "microsoft.compute/virtualmachines/extensions"
        | "microsoft.compute/availabilitysets"
        | "microsoft.compute/locations/vmsizes" => (COMPUTE_API_VERSIONS, "2015-06-15", DISK_AND_GALLERY_API_VERSIONS),
        // Managed images came with the 2016 managed-disk release.
        "microsoft.compute/images" => (COMPUTE_API_VERSIONS, "2016-04-30-preview", DISK_AND_GALLERY_API_VERSIONS),
        "microsoft.network/virtualnetworks"
        | "microsoft.network/virtualnetworks/subnets"
        | "microsoft.network/networksecuritygroups"
        | "microsoft.network/networksecuritygroups/securityrules"
        | "microsoft.network/publicipaddresses"
        | "microsoft.network/networkinterfaces" => (NETWORK_API_VERSIONS, "2015-06-15", &[]),
        // Template deployments are as old as ARM's public preview.
        "microsoft.resources/deployments" => (RESOURCES_API_VERSIONS, "2014-04-01", &[]),
        _ => return None,
    };
    Some(list.iter().copied().filter(|v| *v >= since && !except.contains(v)).collect())
}

/// A public Azure region as `GET /subscriptions/{id}/locations` describes it.
pub(crate) struct Region {
    pub name: &'static str,
    pub display: &'static str,
    /// `Recommended` or `Other`, as ARM's `metadata.regionCategory` says.
    pub recommended: bool,
    /// `metadata.geographyGroup`.
    pub geography: &'static str,
}

const fn region(name: &'static str, display: &'static str, recommended: bool, geography: &'static str) -> Region {
    Region { name, display, recommended, geography }
}

/// Azure's public regions (every one the local cloud answers for), by ARM name and display name.
pub(crate) const LOCATIONS: &[Region] = &[
    region("eastus", "East US", true, "US"),
    region("westus2", "West US 2", true, "US"),
    region("australiaeast", "Australia East", true, "Asia Pacific"),
    region("southeastasia", "Southeast Asia", true, "Asia Pacific"),
    region("northeurope", "North Europe", true, "Europe"),
    region("swedencentral", "Sweden Central", true, "Europe"),
    region("uksouth", "UK South", true, "Europe"),
    region("westeurope", "West Europe", true, "Europe"),
    region("centralus", "Central US", true, "US"),
    region("southafricanorth", "South Africa North", true, "Africa"),
    region("centralindia", "Central India", true, "Asia Pacific"),
    region("eastasia", "East Asia", true, "Asia Pacific"),
    region("indonesiacentral", "Indonesia Central", true, "Asia Pacific"),
    region("japaneast", "Japan East", true, "Asia Pacific"),
    region("japanwest", "Japan West", true, "Asia Pacific"),
    region("koreacentral", "Korea Central", true, "Asia Pacific"),
    region("malaysiawest", "Malaysia West", true, "Asia Pacific"),
    region("newzealandnorth", "New Zealand North", true, "Asia Pacific"),
    region("canadacentral", "Canada Central", true, "Canada"),
    region("francecentral", "France Central", true, "Europe"),
    region("germanywestcentral", "Germany West Central", true, "Europe"),
    region("italynorth", "Italy North", true, "Europe"),
    region("norwayeast", "Norway East", true, "Europe"),
    region("polandcentral", "Poland Central", true, "Europe"),
    region("spaincentral", "Spain Central", true, "Europe"),
    region("switzerlandnorth", "Switzerland North", true, "Europe"),
    region("mexicocentral", "Mexico Central", true, "Mexico"),
    region("uaenorth", "UAE North", true, "Middle East"),
    region("brazilsouth", "Brazil South", true, "South America"),
    region("chilecentral", "Chile Central", true, "South America"),
    region("israelcentral", "Israel Central", true, "Middle East"),
    region("qatarcentral", "Qatar Central", true, "Middle East"),
    region("eastus2", "East US 2", true, "US"),
    region("southcentralus", "South Central US", true, "US"),
    region("westus3", "West US 3", true, "US"),
    region("northcentralus", "North Central US", false, "US"),
    region("westus", "West US", false, "US"),
    region("westcentralus", "West Central US", false, "US"),
    region("southafricawest", "South Africa West", false, "Africa"),
    region("australiacentral", "Australia Central", false, "Asia Pacific"),
    region("australiacentral2", "Australia Central 2", false, "Asia Pacific"),
    region("australiasoutheast", "Australia Southeast", false, "Asia Pacific"),
    region("koreasouth", "Korea South", false, "Asia Pacific"),
    region("southindia", "South India", false, "Asia Pacific"),
    region("westindia", "West India", false, "Asia Pacific"),
    region("canadaeast", "Canada East", false, "Canada"),
    region("francesouth", "France South", false, "Europe"),
    region("germanynorth", "Germany North", false, "Europe"),
    region("norwaywest", "Norway West", false, "Europe"),
    region("switzerlandwest", "Switzerland West", false, "Europe"),
    region("ukwest", "UK West", false, "Europe"),
    region("uaecentral", "UAE Central", false, "Middle East"),
    region("brazilsoutheast", "Brazil Southeast", false, "South America"),
];

/// The ARM names of every region, comma-separated as ARM's errors list them.
pub(crate) fn location_names(separator: &str) -> String {
    LOCATIONS.iter().map(|r| r.name).collect::<Vec<_>>().join(separator)
}

/// The region as `GET /subscriptions/{id}/locations` lists it.
pub(crate) fn location_body(sub: &str, r: &Region) -> Value {
    json!({
        "id": format!("/subscriptions/{sub}/locations/{}", r.name),
        "name": r.name,
        "type": "Region",
        "displayName": r.display,
        "regionalDisplayName": format!("({}) {}", r.geography, r.display),
        "metadata": {
            "regionType": "Physical",
            "regionCategory": if r.recommended { "Recommended" } else { "Other" },
            "geographyGroup": r.geography,
        }
    })
}

/// VM sizes offered in every region: name, cores, memory (MiB), data disks, resource disk (MiB).
pub(crate) const VM_SIZES: &[(&str, u32, u32, u32, u32)] = &[
    ("Standard_B1ls", 1, 512, 2, 4096),
    ("Standard_B1s", 1, 1024, 2, 4096),
    ("Standard_B1ms", 1, 2048, 2, 4096),
    ("Standard_B2s", 2, 4096, 4, 8192),
    ("Standard_B2ms", 2, 8192, 4, 16384),
    ("Standard_B4ms", 4, 16384, 8, 32768),
    ("Standard_D2s_v3", 2, 8192, 4, 16384),
    ("Standard_D4s_v3", 4, 16384, 8, 32768),
    ("Standard_D2s_v5", 2, 8192, 4, 0),
    ("Standard_D4s_v5", 4, 16384, 8, 0),
    ("Standard_DS1_v2", 1, 3584, 4, 7168),
    ("Standard_DS2_v2", 2, 7168, 8, 14336),
    ("Standard_F2s_v2", 2, 4096, 4, 16384),
];

/// `VirtualMachineSize` bodies, as `…/locations/{location}/vmSizes` lists them.
pub(crate) fn vm_sizes() -> Value {
    let value: Vec<Value> = VM_SIZES
        .iter()
        .map(|(name, cores, memory, disks, resource)| {
            json!({"name": name, "numberOfCores": cores, "osDiskSizeInMB": 1_047_552,
                   "resourceDiskSizeInMB": resource, "memoryInMB": memory, "maxDataDiskCount": disks})
        })
        .collect();
    json!({"value": value})
}

pub(crate) fn is_location(name: &str) -> bool {
    LOCATIONS.iter().any(|r| r.name.eq_ignore_ascii_case(&normalize_location(name)))
}

/// ARM accepts `West Europe` and `westeurope` alike.
pub(crate) fn normalize_location(name: &str) -> String {
    name.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase()
}

/// One platform image: publisher, offer, sku, its versions (oldest first) and OS.
pub(crate) struct Image {
    pub publisher: &'static str,
    pub offer: &'static str,
    pub sku: &'static str,
    pub versions: &'static [&'static str],
    pub os: OsKind,
    /// The name az's image alias document gives it (`az vm create --image Ubuntu2404`).
    pub alias: Option<&'static str>,
}

pub(crate) const IMAGES: &[Image] = &[
    Image {
        publisher: "Canonical",
        offer: "ubuntu-24_04-lts",
        sku: "server",
        versions: &["24.04.202409120", "24.04.202411030"],
        os: OsKind::Linux,
        alias: Some("Ubuntu2404"),
    },
    Image {
        publisher: "Canonical",
        offer: "0001-com-ubuntu-server-jammy",
        sku: "22_04-lts-gen2",
        versions: &["22.04.202409110", "22.04.202411010"],
        os: OsKind::Linux,
        alias: Some("Ubuntu2204"),
    },
    Image {
        publisher: "Canonical",
        offer: "0001-com-ubuntu-server-jammy",
        sku: "22_04-lts",
        versions: &["22.04.202411010"],
        os: OsKind::Linux,
        alias: None,
    },
    Image {
        publisher: "Canonical",
        offer: "UbuntuServer",
        sku: "18.04-LTS",
        versions: &["18.04.202401161"],
        os: OsKind::Linux,
        alias: None,
    },
    Image {
        publisher: "Debian",
        offer: "debian-11",
        sku: "11-backports-gen2",
        versions: &["0.20240703.1797", "0.20241004.1890"],
        os: OsKind::Linux,
        alias: Some("Debian11"),
    },
    Image {
        publisher: "Debian",
        offer: "debian-12",
        sku: "12-gen2",
        versions: &["0.20241004.1890"],
        os: OsKind::Linux,
        alias: None,
    },
    Image {
        publisher: "kinvolk",
        offer: "flatcar-container-linux-free",
        sku: "stable-gen2",
        versions: &["3975.2.2", "4081.2.0"],
        os: OsKind::Linux,
        alias: Some("FlatcarLinuxFreeGen2"),
    },
    Image {
        publisher: "RedHat",
        offer: "RHEL",
        sku: "8-lvm-gen2",
        versions: &["8.10.2024090513", "8.10.2024110615"],
        os: OsKind::Linux,
        alias: Some("RHELRaw8LVMGen2"),
    },
    Image {
        publisher: "SUSE",
        offer: "openSUSE-leap-15-4",
        sku: "gen2",
        versions: &["2023.05.24"],
        os: OsKind::Linux,
        alias: Some("OpenSuseLeap154Gen2"),
    },
    Image {
        publisher: "SUSE",
        offer: "sles-15-sp3",
        sku: "gen2",
        versions: &["2024.06.12"],
        os: OsKind::Linux,
        alias: Some("SuseSles15SP3"),
    },
    Image {
        publisher: "MicrosoftWindowsServer",
        offer: "WindowsServer",
        sku: "2022-datacenter-g2",
        versions: &["20348.2700.240911", "20348.2849.241106"],
        os: OsKind::Windows,
        alias: Some("Win2022Datacenter"),
    },
    Image {
        publisher: "MicrosoftWindowsServer",
        offer: "WindowsServer",
        sku: "2019-datacenter-gensecond",
        versions: &["17763.6293.240905", "17763.6532.241101"],
        os: OsKind::Windows,
        alias: Some("Win2019Datacenter"),
    },
];

/// The image alias document az reads at `vmImageAliasDoc` (Azure publishes it as
/// `arm-compute/quickstart-templates/aliases.json`): a template whose `aliases` output maps each
/// OS's aliases to their publisher, offer, sku and version.
pub(crate) fn alias_doc() -> serde_json::Value {
    let mut by_os = serde_json::Map::new();
    for os in [OsKind::Linux, OsKind::Windows] {
        let aliases: serde_json::Map<String, serde_json::Value> = IMAGES
            .iter()
            .filter(|i| i.os == os)
            .filter_map(|i| {
                let alias = i.alias?;
                Some((
                    alias.to_owned(),
                    serde_json::json!({"publisher": i.publisher, "offer": i.offer, "sku": i.sku, "version": "latest", "architecture": "x64"}),
                ))
            })
            .collect();
        by_os.insert(os.to_string(), serde_json::Value::Object(aliases));
    }
    serde_json::json!({
        "$schema": "http://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json",
        "contentVersion": "1.0.0.0", "parameters": {}, "variables": {}, "resources": [],
        "outputs": {"aliases": {"type": "object", "value": by_os}}
    })
}

/// Finds an image by publisher, offer and sku (case-insensitively, as ARM does).
pub(crate) fn image(publisher: &str, offer: &str, sku: &str) -> Option<&'static Image> {
    IMAGES.iter().find(|i| {
        i.publisher.eq_ignore_ascii_case(publisher)
            && i.offer.eq_ignore_ascii_case(offer)
            && i.sku.eq_ignore_ascii_case(sku)
    })
}

/// One extension handler: publisher, type, versions (oldest first), and the OS it runs on.
pub(crate) struct Handler {
    pub publisher: &'static str,
    pub kind: &'static str,
    pub versions: &'static [&'static str],
    pub os: OsKind,
}

pub(crate) const HANDLERS: &[Handler] = &[
    Handler {
        publisher: "Microsoft.Azure.Extensions",
        kind: "CustomScript",
        versions: &["2.0.7", "2.1.10"],
        os: OsKind::Linux,
    },
    Handler {
        publisher: "Microsoft.Azure.Extensions",
        kind: "DockerExtension",
        versions: &["1.0.0", "1.1.1606092330", "1.2.2"],
        os: OsKind::Linux,
    },
    Handler {
        publisher: "Microsoft.OSTCExtensions",
        kind: "VMAccessForLinux",
        versions: &["1.4.7.1", "1.5.18"],
        os: OsKind::Linux,
    },
    Handler {
        publisher: "Microsoft.OSTCExtensions",
        kind: "CustomScriptForLinux",
        versions: &["1.5.5"],
        os: OsKind::Linux,
    },
    Handler {
        publisher: "Microsoft.Compute",
        kind: "VMAccessAgent",
        versions: &["2.0.2", "2.4.8"],
        os: OsKind::Windows,
    },
    Handler {
        publisher: "Microsoft.Compute",
        kind: "CustomScriptExtension",
        versions: &["1.9.5", "1.10.18"],
        os: OsKind::Windows,
    },
];

pub(crate) fn handler(publisher: &str, kind: &str) -> Option<&'static Handler> {
    HANDLERS.iter().find(|h| h.publisher.eq_ignore_ascii_case(publisher) && h.kind.eq_ignore_ascii_case(kind))
}

/// Whether a `major.minor` typeHandlerVersion exists for the handler.
pub(crate) fn has_version(handler: &Handler, wanted: &str) -> bool {
    let mut parts = wanted.split('.');
    let (Some(major), minor) = (parts.next(), parts.next()) else { return false };
    handler.versions.iter().any(|v| {
        let mut vp = v.split('.');
        vp.next() == Some(major)
            && minor.is_none_or(|m| vp.next().is_some_and(|vm| vm.parse::<u32>().ok() >= m.parse::<u32>().ok()))
    })
}

/// `{name, location, id}` entries, as the image listing routes answer.
pub(crate) fn name_list(prefix: &str, location: &str, names: impl Iterator<Item = String>) -> Value {
    Value::Array(
        names.map(|name| json!({"name": name, "location": location, "id": format!("{prefix}/{name}")})).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_versions_match_major_minor() {
        let vmaccess = handler("microsoft.ostcextensions", "vmaccessforlinux").unwrap();
        assert!(has_version(vmaccess, "1.5"));
        assert!(has_version(vmaccess, "1.4"));
        assert!(!has_version(vmaccess, "2.0"));
        assert!(!has_version(vmaccess, "1.9"));
        assert!(image("canonical", "ubuntu-24_04-lts", "SERVER").is_some());
        assert!(is_location("West Europe"));
        assert!(!is_location("atlantis"));
    }
}
