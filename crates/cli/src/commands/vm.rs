//! `azdock vm …`: virtual machines.

use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{GlobalArgs, ImageCommand, VmCommand, VmTarget};
use crate::config::Config;
use crate::error::Usage;
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

const ALIAS_COLUMNS: Columns =
    &[("Alias", "/alias"), ("Publisher", "/publisher"), ("Offer", "/offer"), ("Sku", "/sku"), ("Urn", "/urn")];
const IMAGE_COLUMNS: Columns =
    &[("Publisher", "/publisher"), ("Offer", "/offer"), ("Sku", "/sku"), ("Version", "/version"), ("Urn", "/urn")];

/// The image aliases az accepts, as `publisher:offer:sku:version`.
pub(crate) const ALIASES: &[(&str, &str)] = &[
    ("Ubuntu2404", "Canonical:ubuntu-24_04-lts:server:latest"),
    ("Ubuntu2204", "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest"),
    ("Debian11", "Debian:debian-11:11-backports-gen2:latest"),
    ("FlatcarLinuxFreeGen2", "kinvolk:flatcar-container-linux-free:stable-gen2:latest"),
    ("Win2022Datacenter", "MicrosoftWindowsServer:WindowsServer:2022-datacenter-g2:latest"),
    ("Win2019Datacenter", "MicrosoftWindowsServer:WindowsServer:2019-datacenter-gensecond:latest"),
];

fn alias_rows() -> Value {
    ALIASES
        .iter()
        .map(|(alias, urn)| {
            let parts: Vec<&str> = urn.split(':').collect();
            json!({"alias": alias, "publisher": parts[0], "offer": parts[1], "sku": parts[2], "version": parts[3], "urn": urn})
        })
        .collect()
}

/// Asks before deleting, unless `--yes`; without a terminal, `--yes` is required.
fn confirm_delete(target: &VmTarget, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !super::interactive() {
        return Err(
            Usage::new(format!("deleting VM `{}` cannot be undone; pass `--yes` to confirm", target.name)).into()
        );
    }
    eprint!("Delete VM `{}` in resource group `{}`? [y/N] ", target.name, target.resource_group);
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") { Ok(()) } else { Err(Usage::new("deletion cancelled").into()) }
}

pub(crate) fn run(ctx: &Ctx, global: &GlobalArgs, config: &Config, command: &VmCommand) -> anyhow::Result<()> {
    match command {
        VmCommand::Image(ImageCommand::Aliases | ImageCommand::List { all: false, .. }) => {
            return ctx.print(&alias_rows(), ALIAS_COLUMNS);
        }
        VmCommand::Image(ImageCommand::List { all: true, publisher: None, .. }) => {
            return Err(Usage::new(
                "`vm image list --all` needs `--publisher` (scanning every publisher of a location takes minutes)",
            )
            .into());
        }
        VmCommand::Delete { target, yes } => confirm_delete(target, *yes)?,
        _ => {}
    }
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
            VmCommand::Start(t) => action(&s, t, "start").await,
            VmCommand::Stop(t) => action(&s, t, "powerOff").await,
            VmCommand::Deallocate(t) => action(&s, t, "deallocate").await,
            VmCommand::Restart(t) => action(&s, t, "restart").await,
            VmCommand::Delete { target, .. } => {
                let path = format!("{}?api-version={COMPUTE_API}", vm_path(&s, target));
                if target.no_wait {
                    s.arm.send(reqwest::Method::DELETE, &path, None).await?;
                } else {
                    s.arm.delete(&path).await?;
                }
                Ok((Value::Null, LIST_COLUMNS))
            }
            VmCommand::Image(ImageCommand::List { publisher, offer, sku, location, .. }) => {
                let publisher = publisher.as_deref().unwrap_or_default();
                Ok((catalogue(&s, location, publisher, offer.as_deref(), sku.as_deref()).await?, IMAGE_COLUMNS))
            }
            VmCommand::Image(ImageCommand::Aliases) => Ok((alias_rows(), ALIAS_COLUMNS)),
        }
    })?;
    if value.is_null() {
        // Like az, actions print nothing on success.
        return Ok(());
    }
    ctx.print(&value, columns)
}

fn vm_path(s: &session::Session, t: &VmTarget) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
        s.subscription, t.resource_group, t.name
    )
}

/// A power action: POST, then (unless `--no-wait`) wait for its operation.
async fn action(s: &session::Session, t: &VmTarget, verb: &str) -> anyhow::Result<(Value, Columns)> {
    let path = format!("{}/{verb}?api-version={COMPUTE_API}", vm_path(s, t));
    if t.no_wait {
        s.arm.send(reqwest::Method::POST, &path, None).await?;
    } else {
        s.arm.post(&path, None).await?;
    }
    Ok((Value::Null, LIST_COLUMNS))
}

/// Every version of the publisher's images in a location, filtered by offer and sku.
async fn catalogue(
    s: &session::Session,
    location: &str,
    publisher: &str,
    offer: Option<&str>,
    sku: Option<&str>,
) -> anyhow::Result<Value> {
    let base = format!(
        "/subscriptions/{}/providers/Microsoft.Compute/locations/{location}/publishers/{publisher}/artifacttypes/vmimage/offers",
        s.subscription
    );
    let names = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|e| e["name"].as_str().map(str::to_owned)).collect()
    };
    let matches = |name: &str, filter: Option<&str>| {
        filter.is_none_or(|f| name.to_ascii_lowercase().contains(&f.to_ascii_lowercase()))
    };
    let mut rows = Vec::new();
    for o in
        names(&s.arm.get(&format!("{base}?api-version={COMPUTE_API}")).await?).into_iter().filter(|o| matches(o, offer))
    {
        for k in names(&s.arm.get(&format!("{base}/{o}/skus?api-version={COMPUTE_API}")).await?)
            .into_iter()
            .filter(|k| matches(k, sku))
        {
            for v in names(&s.arm.get(&format!("{base}/{o}/skus/{k}/versions?api-version={COMPUTE_API}")).await?) {
                rows.push(json!({"publisher": publisher, "offer": o, "sku": k, "version": v, "urn": format!("{publisher}:{o}:{k}:{v}")}));
            }
        }
    }
    Ok(Value::Array(rows))
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
