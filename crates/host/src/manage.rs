//! VMs and their extension instances as `az vm` manages them: show (with az's `--show-details`
//! fields), list, power actions and delete, the image catalogue, and an extension instance's
//! show, list and remove — each one ARM call or a short walk, in az's flattened shapes.

use azdock_azure_sm::Arm;
use azdock_azure_sm::api::{COMPUTE, NETWORK};
use azdock_azure_sm::images::{self, ResolvedImage};
use azdock_azure_sm::models::{NetworkInterface, Page, PublicIpAddress, VirtualMachine};
use reqwest::Method;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::target::VmAddr;

/// az's VM shape: the properties lifted next to everything else ARM sent at the top level
/// (`resources`, `identity`, `plan`, `zones`, `etag`, …, kept as they came), and the resource
/// group az adds.
pub fn flatten(vm: &Value) -> Value {
    let mut out = vm["properties"].as_object().cloned().unwrap_or_default();
    for (key, value) in vm.as_object().into_iter().flatten().filter(|(k, _)| *k != "properties") {
        out.insert(key.clone(), value.clone());
    }
    let group = vm["id"]
        .as_str()
        .and_then(|id| id.split('/').skip_while(|s| !s.eq_ignore_ascii_case("resourceGroups")).nth(1))
        .unwrap_or_default();
    out.insert("resourceGroup".into(), json!(group));
    Value::Object(out)
}

fn shape(what: &'static str) -> impl FnOnce(serde_json::Error) -> Error {
    move |source| Error::Shape { what, source }
}

/// A VM as `az vm show` prints it; with `details`, az's `--show-details` fields too.
pub async fn show(arm: &Arm, addr: &VmAddr, details: bool) -> Result<Value> {
    let expand = if details { "&$expand=instanceView" } else { "" };
    let body = arm.get(&format!("{}?api-version={COMPUTE}{expand}", addr.path())).await?;
    let mut out = flatten(&body);
    if details {
        let vm: VirtualMachine = serde_json::from_value(body).map_err(shape("VM shape"))?;
        show_details(arm, &vm, &mut out).await?;
    }
    Ok(out)
}

/// az's `--show-details` fields: powerState, publicIps, fqdns, privateIps.
async fn show_details(arm: &Arm, vm: &VirtualMachine, out: &mut Value) -> Result<()> {
    let power = vm.properties.instance_view.as_ref().and_then(|v| v.power_state_display()).unwrap_or("unknown");
    let (mut public, mut fqdns, mut private) = (Vec::new(), Vec::new(), Vec::new());
    for nic in &vm.properties.network_profile.network_interfaces {
        let nic: NetworkInterface =
            serde_json::from_value(arm.get(&format!("{}?api-version={NETWORK}", nic.id)).await?)
                .map_err(shape("NIC shape"))?;
        for config in &nic.properties.ip_configurations {
            private.extend(config.properties.private_ip_address.clone());
            if let Some(pip) = &config.properties.public_ip_address {
                let pip: PublicIpAddress =
                    serde_json::from_value(arm.get(&format!("{}?api-version={NETWORK}", pip.id)).await?)
                        .map_err(shape("public IP shape"))?;
                public.extend(pip.properties.ip_address.clone());
                fqdns.extend(pip.fqdn().map(str::to_owned));
            }
        }
    }
    out["powerState"] = json!(power);
    out["publicIps"] = json!(public.join(","));
    out["fqdns"] = json!(fqdns.join(","));
    out["privateIps"] = json!(private.join(","));
    Ok(())
}

/// A power action of `az vm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Start,
    Stop,
    Deallocate,
    Restart,
}

impl Power {
    /// The action's name in ARM's path.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "powerOff",
            Self::Deallocate => "deallocate",
            Self::Restart => "restart",
        }
    }
}

/// A power action: POST, then (unless `wait` is false) its operation. Power actions are safe to
/// repeat after a lost answer: the VM ends in the state asked for either way.
pub async fn power(arm: &Arm, addr: &VmAddr, action: Power, wait: bool) -> Result<()> {
    let path = format!("{}/{}?api-version={COMPUTE}", addr.path(), action.verb());
    if wait {
        arm.post_idempotent(&path, None).await?;
    } else {
        arm.send_idempotent(Method::POST, &path, None).await?;
    }
    Ok(())
}

/// Deletes a resource (a VM, an extension instance) by its ARM path, waiting for its operation
/// unless `wait` is false.
pub async fn delete(arm: &Arm, path: &str, wait: bool) -> Result<()> {
    let path = format!("{path}?api-version={COMPUTE}");
    if wait {
        arm.delete(&path).await?;
    } else {
        arm.send(Method::DELETE, &path, None).await?;
    }
    Ok(())
}

/// Every page of a list, following ARM's `nextLink`.
async fn pages(arm: &Arm, first: String) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut next = Some(first);
    while let Some(url) = next {
        let page: Page<Value> = serde_json::from_value(arm.get(&url).await?).map_err(shape("list"))?;
        out.extend(page.value);
        next = page.next_link;
    }
    Ok(out)
}

fn vms_path(subscription: &str, group: Option<&str>) -> String {
    let scope = match group {
        Some(g) => format!("/subscriptions/{subscription}/resourceGroups/{g}"),
        None => format!("/subscriptions/{subscription}"),
    };
    format!("{scope}/providers/Microsoft.Compute/virtualMachines?api-version={COMPUTE}")
}

/// The VMs of a subscription or of one resource group, as `az vm list` prints them.
pub async fn list(arm: &Arm, subscription: &str, group: Option<&str>) -> Result<Vec<Value>> {
    Ok(pages(arm, vms_path(subscription, group)).await?.iter().map(flatten).collect())
}

/// Every VM of a resource group, to work on.
pub async fn addrs_in(arm: &Arm, subscription: &str, group: &str) -> Result<Vec<VmAddr>> {
    let mut out = Vec::new();
    for vm in pages(arm, vms_path(subscription, Some(group))).await? {
        let vm: VirtualMachine = serde_json::from_value(vm).map_err(shape("VM list"))?;
        out.push(VmAddr::new(subscription, vm.resource_group().unwrap_or(group), &vm.name));
    }
    Ok(out)
}

/// The extension instances of a VM with their status (their instance views), as `az vm
/// extension list` prints them.
pub async fn extensions(arm: &Arm, addr: &VmAddr) -> Result<Value> {
    let path = format!("{}/extensions?api-version={COMPUTE}&$expand=instanceView", addr.path());
    Ok(arm.get(&path).await?["value"].clone())
}

/// One extension instance with its instance view, as `az vm extension show` prints it.
pub async fn extension(arm: &Arm, addr: &VmAddr, name: &str) -> Result<Value> {
    Ok(arm.get(&format!("{}/extensions/{name}?api-version={COMPUTE}&$expand=instanceView", addr.path())).await?)
}

/// Whether `name` holds `filter`, as az matches image parts (case-insensitively; no filter
/// matches all).
fn matches(name: &str, filter: Option<&str>) -> bool {
    filter.is_none_or(|f| name.to_ascii_lowercase().contains(&f.to_ascii_lowercase()))
}

/// The image aliases az knows (`Ubuntu2404`, …), one row each, filtered by publisher, offer and
/// sku as `az vm image list` filters its offline list.
pub fn alias_rows(publisher: Option<&str>, offer: Option<&str>, sku: Option<&str>) -> Value {
    images::ALIASES
        .iter()
        .filter_map(|(alias, urn)| {
            let parts: Vec<&str> = urn.split(':').collect();
            (matches(parts[0], publisher) && matches(parts[1], offer) && matches(parts[2], sku)).then(|| {
                json!({"alias": alias, "publisher": parts[0], "offer": parts[1], "sku": parts[2], "version": parts[3], "urn": urn})
            })
        })
        .collect()
}

/// An image as `vm image show` prints it.
pub fn image_row(found: &ResolvedImage) -> Value {
    let image = &found.reference;
    let os = found.os_type.as_ref().map(ToString::to_string);
    if let Some(id) = &image.id {
        return json!({"id": id, "osType": os});
    }
    let part = |v: &Option<String>| v.clone().unwrap_or_default();
    let (publisher, offer, sku) = (part(&image.publisher), part(&image.offer), part(&image.sku));
    let version = found.exact_version.clone().or_else(|| image.version.clone()).unwrap_or_default();
    let urn = format!("{publisher}:{offer}:{sku}:{version}");
    json!({"publisher": publisher, "offer": offer, "sku": sku, "version": version, "osType": os, "urn": urn})
}

/// Every version of a publisher's images in a location, its offers and skus filtered by a
/// case-insensitive part of their names, as `az vm image list --all` prints them.
pub async fn catalogue(
    arm: &Arm,
    subscription: &str,
    location: &str,
    publisher: &str,
    offer: Option<&str>,
    sku: Option<&str>,
) -> Result<Value> {
    let base = format!(
        "/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{location}/publishers/{publisher}/artifacttypes/vmimage/offers"
    );
    let names = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|e| e["name"].as_str().map(str::to_owned)).collect()
    };
    let mut rows = Vec::new();
    for o in names(&arm.get(&format!("{base}?api-version={COMPUTE}")).await?).into_iter().filter(|o| matches(o, offer))
    {
        for k in names(&arm.get(&format!("{base}/{o}/skus?api-version={COMPUTE}")).await?)
            .into_iter()
            .filter(|k| matches(k, sku))
        {
            for v in names(&arm.get(&format!("{base}/{o}/skus/{k}/versions?api-version={COMPUTE}")).await?) {
                rows.push(json!({"publisher": publisher, "offer": o, "sku": k, "version": v, "urn": format!("{publisher}:{o}:{k}:{v}")}));
            }
        }
    }
    Ok(Value::Array(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vm_is_flattened_as_az_prints_it() {
        let vm = json!({"id": "/subscriptions/s/resourceGroups/RG1/providers/Microsoft.Compute/virtualMachines/web",
            "name": "web", "location": "westeurope", "tags": {"a": "b"}, "zones": ["1"], "type": "Microsoft.Compute/virtualMachines",
            "properties": {"vmId": "x", "provisioningState": "Succeeded"}});
        let flat = flatten(&vm);
        assert_eq!(flat["resourceGroup"], "RG1");
        assert_eq!(flat["provisioningState"], "Succeeded");
        for key in ["id", "name", "type", "location", "tags", "zones"] {
            assert_eq!(flat[key], vm[key], "{key}");
        }
        assert!(flat.get("properties").is_none());
        assert_eq!(flatten(&json!({"name": "x"}))["resourceGroup"], "");
        // What ARM sends beyond the usual few stays: a recorded VM with its extensions, and
        // the identity, plan and etag a VM may carry.
        let recorded: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../azure-sm/tests/fixtures/xplat-vm-with-extensions.json"
        )))
        .unwrap();
        let flat = flatten(&recorded);
        assert_eq!(flat["resources"], recorded["resources"]);
        assert_eq!(flat["storageProfile"], recorded["properties"]["storageProfile"]);
        let mut more = recorded.clone();
        more["identity"] = json!({"type": "SystemAssigned", "principalId": "p"});
        more["plan"] = json!({"name": "n", "publisher": "p", "product": "x"});
        more["etag"] = json!("\"1\"");
        let flat = flatten(&more);
        for key in ["identity", "plan", "etag", "resources", "tags", "location"] {
            assert_eq!(flat[key], more[key], "{key}");
        }
    }

    #[test]
    fn power_actions_are_arm_s_verbs() {
        let verbs = [Power::Start, Power::Stop, Power::Deallocate, Power::Restart].map(Power::verb);
        assert_eq!(verbs, ["start", "powerOff", "deallocate", "restart"]);
    }

    #[test]
    fn lists_are_scoped_to_a_group_or_the_subscription() {
        assert_eq!(
            vms_path("s", Some("g")),
            format!(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines?api-version={COMPUTE}"
            )
        );
        assert_eq!(
            vms_path("s", None),
            format!("/subscriptions/s/providers/Microsoft.Compute/virtualMachines?api-version={COMPUTE}")
        );
    }

    #[test]
    fn aliases_and_images_are_rows() {
        let rows = alias_rows(None, None, None);
        let first = &rows[0];
        let urn = first["urn"].as_str().unwrap();
        assert_eq!(
            urn,
            format!(
                "{}:{}:{}:{}",
                first["publisher"].as_str().unwrap(),
                first["offer"].as_str().unwrap(),
                first["sku"].as_str().unwrap(),
                first["version"].as_str().unwrap()
            )
        );
        assert_eq!(rows.as_array().unwrap().len(), images::ALIASES.len());
        let canonical = alias_rows(Some("canonical"), None, None);
        let canonical = canonical.as_array().unwrap();
        assert!(!canonical.is_empty() && canonical.len() < images::ALIASES.len());
        assert!(canonical.iter().all(|r| r["publisher"] == "Canonical"), "{canonical:?}");
        let one = alias_rows(Some("Canonical"), Some("ubuntu-24_04"), Some("SERVER"));
        assert!(one.as_array().unwrap().iter().all(|r| r["offer"].as_str().unwrap().contains("24_04")), "{one}");
        assert!(!one.as_array().unwrap().is_empty());
        assert_eq!(alias_rows(None, None, Some("no-such-sku")), json!([]));
        let reference = |v: Value| serde_json::from_value(v).unwrap();
        let urn = ResolvedImage {
            reference: reference(json!({"publisher": "P", "offer": "O", "sku": "S", "version": "latest"})),
            exact_version: Some("1.2.3".into()),
            os_type: Some(azdock_azure_sm::models::OsType::Linux),
        };
        assert_eq!(
            image_row(&urn),
            json!({"publisher": "P", "offer": "O", "sku": "S", "version": "1.2.3", "osType": "Linux", "urn": "P:O:S:1.2.3"})
        );
        let pinned = ResolvedImage { exact_version: None, ..urn };
        assert_eq!(image_row(&pinned)["urn"], "P:O:S:latest");
        let custom = ResolvedImage {
            reference: reference(json!({"id": "/subscriptions/s/images/i"})),
            exact_version: None,
            os_type: None,
        };
        assert_eq!(image_row(&custom), json!({"id": "/subscriptions/s/images/i", "osType": null}));
    }
}
