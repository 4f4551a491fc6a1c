//! `azdock vm …`: virtual machines.

use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{GlobalArgs, VmCommand};
use crate::config::Config;
use crate::output::Columns;
use crate::session::{self, COMPUTE_API, NETWORK_API};

const LIST_COLUMNS: Columns = &[
    ("Name", "/name"),
    ("ResourceGroup", "/resourceGroup"),
    ("Location", "/location"),
    ("VmSize", "/hardwareProfile/vmSize"),
    ("OsType", "/storageProfile/osDisk/osType"),
    ("ProvisioningState", "/provisioningState"),
];
const DETAIL_COLUMNS: Columns = &[
    ("Name", "/name"),
    ("ResourceGroup", "/resourceGroup"),
    ("PowerState", "/powerState"),
    ("PublicIps", "/publicIps"),
    ("Fqdns", "/fqdns"),
    ("Location", "/location"),
];

/// az's flattened VM shape: the properties next to name, id, location and the resource group.
fn flatten(vm: &Value) -> Value {
    let mut out = vm["properties"].as_object().cloned().unwrap_or_default();
    for key in ["id", "name", "type", "location", "tags", "zones"] {
        if let Some(v) = vm.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let group = vm["id"]
        .as_str()
        .and_then(|id| id.split('/').skip_while(|s| !s.eq_ignore_ascii_case("resourceGroups")).nth(1))
        .unwrap_or_default();
    out.insert("resourceGroup".into(), json!(group));
    Value::Object(out)
}

pub(crate) fn run(ctx: &Ctx, global: &GlobalArgs, config: &Config, command: &VmCommand) -> anyhow::Result<()> {
    let (value, columns) = session::block_on(async {
        let s = session::session(global, config).await?;
        match command {
            VmCommand::List { resource_group } => {
                let scope = match resource_group {
                    Some(rg) => format!("/subscriptions/{}/resourceGroups/{rg}", s.subscription),
                    None => format!("/subscriptions/{}", s.subscription),
                };
                let mut vms = Vec::new();
                let mut next =
                    Some(format!("{scope}/providers/Microsoft.Compute/virtualMachines?api-version={COMPUTE_API}"));
                // ARM pages long lists with nextLink.
                while let Some(url) = next {
                    let page = s.arm.get(&url).await?;
                    vms.extend(page["value"].as_array().into_iter().flatten().map(flatten));
                    next = page["nextLink"].as_str().map(str::to_owned);
                }
                Ok((Value::Array(vms), LIST_COLUMNS))
            }
            VmCommand::Show { resource_group, name, show_details } => {
                let path = format!(
                    "/subscriptions/{}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachines/{name}",
                    s.subscription
                );
                let expand = if *show_details { "&$expand=instanceView" } else { "" };
                let vm = s.arm.get(&format!("{path}?api-version={COMPUTE_API}{expand}")).await?;
                let mut out = flatten(&vm);
                if *show_details {
                    details(&s, &vm, &mut out).await?;
                    return Ok((out, DETAIL_COLUMNS));
                }
                Ok((out, LIST_COLUMNS))
            }
        }
    })?;
    ctx.print(&value, columns)
}

/// az's `--show-details` fields: powerState, publicIps, fqdns, privateIps, macAddresses.
async fn details(s: &session::Session, vm: &Value, out: &mut Value) -> anyhow::Result<()> {
    let statuses = vm["properties"]["instanceView"]["statuses"].as_array().cloned().unwrap_or_default();
    let power_text = statuses
        .iter()
        .find(|st| st["code"].as_str().is_some_and(|c| c.starts_with("PowerState/")))
        .and_then(|st| st["displayStatus"].as_str())
        .unwrap_or("unknown");
    let (mut public, mut fqdns, mut private) = (Vec::new(), Vec::new(), Vec::new());
    for nic in vm["properties"]["networkProfile"]["networkInterfaces"].as_array().into_iter().flatten() {
        let Some(nic_id) = nic["id"].as_str() else { continue };
        let nic = s.arm.get(&format!("{nic_id}?api-version={NETWORK_API}")).await?;
        for config in nic["properties"]["ipConfigurations"].as_array().into_iter().flatten() {
            if let Some(ip) = config["properties"]["privateIPAddress"].as_str() {
                private.push(ip.to_owned());
            }
            if let Some(pip_id) = config["properties"]["publicIPAddress"]["id"].as_str() {
                let pip = s.arm.get(&format!("{pip_id}?api-version={NETWORK_API}")).await?;
                if let Some(ip) = pip["properties"]["ipAddress"].as_str() {
                    public.push(ip.to_owned());
                }
                if let Some(fqdn) = pip["properties"]["dnsSettings"]["fqdn"].as_str() {
                    fqdns.push(fqdn.to_owned());
                }
            }
        }
    }
    out["powerState"] = json!(power_text);
    out["publicIps"] = json!(public.join(","));
    out["fqdns"] = json!(fqdns.join(","));
    out["privateIps"] = json!(private.join(","));
    Ok(())
}
