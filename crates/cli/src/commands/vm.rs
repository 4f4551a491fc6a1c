//! `azdock vm …`: virtual machines.

use anyhow::Context as _;
use azdock_azure_sm::Arm;
use azdock_azure_sm::images::{self, ImageSpec};
use azdock_azure_sm::models::{NetworkInterface, PublicIpAddress, VirtualMachine};
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{GlobalArgs, ImageCommand, VmCommand, VmRef};
use crate::config::Config;
use crate::error::Usage;
use crate::output::Columns;
use crate::session::{self, COMPUTE_API, NETWORK_API};
use crate::targets::{self, Selection, VmAddr};

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

fn alias_rows() -> Value {
    azdock_azure_sm::images::ALIASES
        .iter()
        .map(|(alias, urn)| {
            let parts: Vec<&str> = urn.split(':').collect();
            json!({"alias": alias, "publisher": parts[0], "offer": parts[1], "sku": parts[2], "version": parts[3], "urn": urn})
        })
        .collect()
}

/// Asks before deleting, unless `--yes`; without a terminal, `--yes` is required.
fn confirm_delete(what: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !super::interactive() {
        return Err(Usage::new(format!("deleting {what} cannot be undone; pass `--yes` to confirm")).into());
    }
    eprint!("Delete {what}? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") { Ok(()) } else { Err(Usage::new("deletion cancelled").into()) }
}

/// How a delete prompt names the VMs.
fn describe(vm: &VmRef) -> String {
    match (&vm.resource_group, &vm.name) {
        (Some(g), Some(n)) if vm.ids.is_empty() => format!("VM `{n}` in resource group `{g}`"),
        _ => format!("{} VM(s) given by --ids", vm.ids.iter().flat_map(|i| i.split_whitespace()).count()),
    }
}

fn selection(vm: &VmRef) -> Result<Selection, Usage> {
    Selection::new(vm.resource_group.as_deref(), vm.name.as_deref(), &vm.ids, false)
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
        _ => {}
    }
    // Every argument is checked before anything is sent.
    let image = match command {
        VmCommand::Image(ImageCommand::Show { image, .. }) => {
            Some(ImageSpec::parse(image).map_err(|e| Usage::new(e.to_string()))?)
        }
        _ => None,
    };
    let chosen = match command {
        VmCommand::Show { vm, .. } => Some((selection(vm)?, usize::from(vm.max_parallel))),
        VmCommand::Start(t) | VmCommand::Stop(t) | VmCommand::Deallocate(t) | VmCommand::Restart(t) => {
            Some((selection(&t.vm)?, usize::from(t.vm.max_parallel)))
        }
        VmCommand::Delete { target, yes } => {
            let chosen = selection(&target.vm)?;
            confirm_delete(&describe(&target.vm), *yes)?;
            Some((chosen, usize::from(target.vm.max_parallel)))
        }
        _ => None,
    };
    let (value, columns) = session::block_on(async {
        if let Some((chosen, limit)) = chosen {
            let several = matches!(&chosen, Selection::Ids(ids) if ids.len() > 1);
            let (arm, addrs) = chosen.resolve(global, config).await?;
            let arm = &arm;
            let (results, columns) = match command {
                VmCommand::Show { show_details, .. } => {
                    let columns = if *show_details { DETAIL_COLUMNS } else { LIST_COLUMNS };
                    (targets::for_each(addrs, limit, |a| show(arm, a, *show_details)).await?, columns)
                }
                VmCommand::Start(t) => {
                    (targets::for_each(addrs, limit, |a| action(arm, a, "start", t.no_wait)).await?, LIST_COLUMNS)
                }
                VmCommand::Stop(t) => {
                    (targets::for_each(addrs, limit, |a| action(arm, a, "powerOff", t.no_wait)).await?, LIST_COLUMNS)
                }
                VmCommand::Deallocate(t) => {
                    (targets::for_each(addrs, limit, |a| action(arm, a, "deallocate", t.no_wait)).await?, LIST_COLUMNS)
                }
                VmCommand::Restart(t) => {
                    (targets::for_each(addrs, limit, |a| action(arm, a, "restart", t.no_wait)).await?, LIST_COLUMNS)
                }
                VmCommand::Delete { target, .. } => {
                    (targets::for_each(addrs, limit, |a| delete(arm, a, target.no_wait)).await?, LIST_COLUMNS)
                }
                _ => unreachable!("only VM commands select VMs"),
            };
            // Actions print nothing on success, like az; several shows print a list.
            let value = match results.as_slice() {
                [] => Value::Null,
                [one] if !several => one.clone(),
                many if many.iter().all(Value::is_null) => Value::Null,
                many => Value::Array(many.to_vec()),
            };
            return Ok((value, columns));
        }
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
            VmCommand::Image(ImageCommand::List { publisher, offer, sku, location, .. }) => {
                let publisher = publisher.as_deref().unwrap_or_default();
                Ok((catalogue(&s, location, publisher, offer.as_deref(), sku.as_deref()).await?, IMAGE_COLUMNS))
            }
            VmCommand::Image(ImageCommand::Show { location, .. }) => {
                let spec = image.clone().unwrap_or_else(|| unreachable!("parsed above"));
                let found = images::resolve(&s.arm, &s.subscription, location, &spec).await?;
                Ok((image_row(&found), IMAGE_COLUMNS))
            }
            _ => Ok((alias_rows(), ALIAS_COLUMNS)),
        }
    })?;
    if value.is_null() {
        return Ok(());
    }
    ctx.print(&value, columns)
}

/// An image as `vm image show` prints it.
fn image_row(found: &images::ResolvedImage) -> Value {
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

async fn show(arm: &Arm, a: VmAddr, details: bool) -> anyhow::Result<Value> {
    let expand = if details { "&$expand=instanceView" } else { "" };
    let body = arm.get(&format!("{}?api-version={COMPUTE_API}{expand}", a.path())).await?;
    let mut out = flatten(&body);
    if details {
        let vm: VirtualMachine = serde_json::from_value(body).context("unexpected VM shape from Azure")?;
        show_details(arm, &vm, &mut out).await?;
    }
    Ok(out)
}

/// A power action: POST, then (unless `--no-wait`) wait for its operation. Power actions are
/// safe to repeat after a lost answer: the VM ends in the state asked for either way.
async fn action(arm: &Arm, a: VmAddr, verb: &str, no_wait: bool) -> anyhow::Result<Value> {
    let path = format!("{}/{verb}?api-version={COMPUTE_API}", a.path());
    if no_wait {
        arm.send_idempotent(reqwest::Method::POST, &path, None).await?;
    } else {
        arm.post_idempotent(&path, None).await?;
    }
    Ok(Value::Null)
}

async fn delete(arm: &Arm, a: VmAddr, no_wait: bool) -> anyhow::Result<Value> {
    let path = format!("{}?api-version={COMPUTE_API}", a.path());
    if no_wait {
        arm.send(reqwest::Method::DELETE, &path, None).await?;
    } else {
        arm.delete(&path).await?;
    }
    Ok(Value::Null)
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

/// az's `--show-details` fields: powerState, publicIps, fqdns, privateIps.
async fn show_details(arm: &Arm, vm: &VirtualMachine, out: &mut Value) -> anyhow::Result<()> {
    let power = vm.properties.instance_view.as_ref().and_then(|v| v.power_state_display()).unwrap_or("unknown");
    let (mut public, mut fqdns, mut private) = (Vec::new(), Vec::new(), Vec::new());
    for nic in &vm.properties.network_profile.network_interfaces {
        let nic: NetworkInterface =
            serde_json::from_value(arm.get(&format!("{}?api-version={NETWORK_API}", nic.id)).await?)
                .context("unexpected NIC shape from Azure")?;
        for config in &nic.properties.ip_configurations {
            private.extend(config.properties.private_ip_address.clone());
            if let Some(pip) = &config.properties.public_ip_address {
                let pip: PublicIpAddress =
                    serde_json::from_value(arm.get(&format!("{}?api-version={NETWORK_API}", pip.id)).await?)
                        .context("unexpected public IP shape from Azure")?;
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
