//! `azdock ext …`: the extension registry.

use std::collections::HashMap;

use anyhow::Context as _;
use azdock_azure_sm::models::{CatalogueEntry, Page, VirtualMachine, VirtualMachineExtension, newest_version};
use azdock_azure_sm::{Arm, extensions};
use azdock_core::Registry;
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{ExtCommand, ExtSetArgs, ExtShowArgs, GlobalArgs};
use crate::config::Config;
use crate::error::Usage;
use crate::output::Columns;
use crate::session::{self, COMPUTE_API};
use crate::targets::{self, Selection, VmAddr};

const INSTALLED_COLUMNS: Columns = &[
    ("Name", "/name"),
    ("Publisher", "/properties/publisher"),
    ("Type", "/properties/type"),
    ("Version", "/properties/typeHandlerVersion"),
    ("ProvisioningState", "/properties/provisioningState"),
];

const LIST_COLUMNS: Columns = &[
    ("Id", "/id"),
    ("Version", "/version"),
    ("Source", "/source/kind"),
    ("Handlers", "/handlerNames"),
    ("Actions", "/actionNames"),
    ("Summary", "/summary"),
];

pub(crate) fn run(ctx: &Ctx, global: &GlobalArgs, config: &Config, command: &ExtCommand) -> anyhow::Result<()> {
    match command {
        ExtCommand::Docker(docker) => super::docker::run_ext(ctx, global, config, docker),
        ExtCommand::Vmaccess(vmaccess) => super::vmaccess::run(ctx, global, config, vmaccess),
        ExtCommand::Plugin(plugin) => super::plugin::run(ctx, plugin),
        ExtCommand::External(words) => super::plugin::run_external(ctx, global, config, words),
        ExtCommand::List { vm: None, .. } => {
            let registry = crate::plugins::registry(|path, why| {
                ctx.warn(&format!("plugin `{}` skipped: {why}", path.display()));
            })?;
            ctx.print(&list(&registry), LIST_COLUMNS)
        }
        ExtCommand::Show(ExtShowArgs { id: Some(id), .. }) => show_manifest(ctx, id),
        _ => run_generic(ctx, global, config, command),
    }
}

/// The registry list, and any extension by publisher and type (as `az vm extension`).
fn run_generic(ctx: &Ctx, global: &GlobalArgs, config: &Config, command: &ExtCommand) -> anyhow::Result<()> {
    let show_on = match command {
        ExtCommand::Show(args) => Some(args.on()),
        _ => None,
    };
    // Settings and targets are read and checked before anything is sent.
    let settings = match command {
        ExtCommand::Set(args) => Some((
            json_arg("--settings", args.settings.as_deref())?,
            json_arg("--protected-settings", args.protected_settings.as_deref())?,
        )),
        _ => None,
    };
    let (on, name) = match command {
        ExtCommand::Show(args) => (show_on.as_ref(), args.name.as_deref()),
        ExtCommand::Remove { on, name, .. } => (Some(on), name.as_deref()),
        ExtCommand::Set(args) => (Some(&args.on), None),
        ExtCommand::List { .. }
        | ExtCommand::Docker(_)
        | ExtCommand::Vmaccess(_)
        | ExtCommand::Plugin(_)
        | ExtCommand::External(_) => (None, None),
    };
    let chosen = match on {
        Some(on) => {
            let named = matches!(command, ExtCommand::Show(_) | ExtCommand::Remove { .. });
            let chosen = Selection::new(on.resource_group.as_deref(), on.vm.as_deref(), &on.ids, named)?;
            if named && name.is_none() {
                let all_named = matches!(&chosen, Selection::Ids(a) if a.iter().all(|a| a.extension.is_some()));
                if !all_named {
                    return Err(
                        Usage::new("name the extension with `-n NAME`, or give extension ids with `--ids`").into()
                    );
                }
            }
            Some((chosen, usize::from(on.max_parallel)))
        }
        None => None,
    };
    let value = session::block_on(async {
        let Some((chosen, limit)) = chosen else {
            let ExtCommand::List { vm: Some(vm), resource_group } = command else { return Ok(Value::Null) };
            let s = session::session(global, config).await?;
            let path = format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{vm}/extensions?api-version={COMPUTE_API}",
                s.subscription,
                resource_group.as_deref().unwrap_or_default()
            );
            return Ok(s.arm.get(&path).await?["value"].clone());
        };
        let several = matches!(&chosen, Selection::Ids(ids) if ids.len() > 1);
        let (arm, addrs) = chosen.resolve(global, config).await?;
        let arm = &arm;
        let ext_path = move |a: &VmAddr| {
            let name = a.extension.as_deref().or(name).unwrap_or_default();
            format!("{}/extensions/{name}", a.path())
        };
        let results = match command {
            ExtCommand::Show(_) => {
                targets::for_each(addrs, limit, |a| async move {
                    Ok(arm.get(&format!("{}?api-version={COMPUTE_API}&$expand=instanceView", ext_path(&a))).await?)
                })
                .await?
            }
            ExtCommand::Remove { no_wait, .. } => {
                targets::for_each(addrs, limit, |a| async move {
                    let path = format!("{}?api-version={COMPUTE_API}", ext_path(&a));
                    if *no_wait {
                        arm.send(reqwest::Method::DELETE, &path, None).await?;
                    } else {
                        arm.delete(&path).await?;
                    }
                    Ok(Value::Null)
                })
                .await?
            }
            ExtCommand::Set(args) => {
                let (public, protected) = settings.clone().unwrap_or_default();
                let versions = VersionCache::default();
                let (public, protected, versions) = (&public, &protected, &versions);
                targets::for_each(addrs, limit, |a| async move {
                    set(arm, &a, args, public.as_ref(), protected.as_ref(), versions).await
                })
                .await?
            }
            ExtCommand::List { .. }
            | ExtCommand::Docker(_)
            | ExtCommand::Vmaccess(_)
            | ExtCommand::Plugin(_)
            | ExtCommand::External(_) => Vec::new(),
        };
        Ok(match results.as_slice() {
            [one] if !several => one.clone(),
            many if many.iter().all(Value::is_null) => Value::Null,
            many => Value::Array(many.to_vec()),
        })
    })?;
    if value.is_null() {
        return Ok(());
    }
    ctx.print(&value, INSTALLED_COLUMNS)
}

/// A JSON object given inline or as `@file`; `None` when absent.
fn json_arg(flag: &str, value: Option<&str>) -> anyhow::Result<Option<Value>> {
    let Some(value) = value else { return Ok(None) };
    let text = match value.strip_prefix('@') {
        Some(file) => {
            std::fs::read_to_string(file).map_err(|e| Usage::new(format!("cannot read `{file}` for `{flag}`: {e}")))?
        }
        None => value.to_owned(),
    };
    let parsed: Value = serde_json::from_str(&text)
        .map_err(|e| Usage::new(format!("invalid JSON for `{flag}`: {e}; give a JSON object or @FILE")))?;
    if !parsed.is_object() {
        return Err(Usage::new(format!("`{flag}` must be a JSON object, not {parsed}")).into());
    }
    Ok(Some(parsed))
}

/// `major.minor` of a handler version, as ARM's `typeHandlerVersion` takes it.
fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The latest handler version per location, looked up once for a whole fleet.
#[derive(Debug, Default)]
struct VersionCache(tokio::sync::Mutex<HashMap<String, String>>);

/// What `az vm extension set` does: reuse the handler's instance, resolve the version, PUT,
/// wait, and show the result (or the handler's failure message).
async fn set(
    arm: &Arm,
    a: &VmAddr,
    args: &ExtSetArgs,
    public: Option<&Value>,
    protected: Option<&Value>,
    versions: &VersionCache,
) -> anyhow::Result<Value> {
    let vm_path = a.path();
    let vm: VirtualMachine = serde_json::from_value(arm.get(&format!("{vm_path}?api-version={COMPUTE_API}")).await?)
        .context("unexpected VM shape from Azure")?;
    let location = vm.location.clone();
    // ARM lists a VM's extensions in its `resources`; older answers carry only their ids, and
    // then the extension list is read.
    let installed = if vm.resources.iter().all(|e| !e.properties.publisher.is_empty()) {
        vm.resources.clone()
    } else {
        let page: Page<VirtualMachineExtension> =
            serde_json::from_value(arm.get(&format!("{vm_path}/extensions?api-version={COMPUTE_API}")).await?)
                .context("unexpected extension list from Azure")?;
        page.value
    };
    let existing = installed.iter().find(|e| e.is_handler(&args.publisher, &args.kind));
    let name = args.name.clone().or_else(|| existing.map(|e| e.name.clone())).unwrap_or_else(|| args.kind.clone());
    let version = match &args.version {
        Some(v) => major_minor(v),
        None => {
            let mut cache = versions.0.lock().await;
            if let Some(v) = cache.get(&location) {
                v.clone()
            } else {
                let url = format!(
                    "/subscriptions/{}/providers/Microsoft.Compute/locations/{location}/publishers/{}/artifacttypes/vmextension/types/{}/versions?api-version={COMPUTE_API}",
                    a.subscription, args.publisher, args.kind
                );
                let list: Vec<CatalogueEntry> =
                    serde_json::from_value(arm.get(&url).await?).context("unexpected version list from Azure")?;
                let latest = newest_version(list.iter().map(|v| v.name.as_str()))
                    .context("Azure lists no version of this extension")?;
                let v = major_minor(latest);
                cache.insert(location.clone(), v.clone());
                v
            }
        }
    };
    let mut properties = json!({"publisher": args.publisher, "type": args.kind, "typeHandlerVersion": version, "autoUpgradeMinorVersion": !args.no_auto_upgrade});
    if let Some(p) = public {
        properties["settings"] = p.clone();
    }
    if let Some(p) = protected {
        properties["protectedSettings"] = p.clone();
    }
    if args.force_update {
        properties["forceUpdateTag"] = json!(time::OffsetDateTime::now_utc().unix_timestamp_nanos().to_string());
    }
    let path = format!("{vm_path}/extensions/{name}");
    let body = json!({"location": location, "properties": properties});
    if args.no_wait {
        return Ok(arm
            .send(reqwest::Method::PUT, &format!("{path}?api-version={COMPUTE_API}"), Some(&body))
            .await?
            .body);
    }
    Ok(extensions::put(arm, &path, COMPUTE_API, &body).await?.1)
}

/// One object per extension: its manifest plus where it came from. `handlerNames` and
/// `actionNames` are flat lists for table and tsv output.
/// `ext show ID`: an extension's manifest — its actions with their arguments and the OS each is
/// for, and the Azure handler it drives on each OS — from the registry, plugins included.
fn show_manifest(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let registry =
        crate::plugins::registry(|path, why| ctx.warn(&format!("plugin `{}` skipped: {why}", path.display())))?;
    let Some(entry) = registry.get(id) else {
        let ids: Vec<String> = registry.entries().iter().map(|e| e.extension.manifest().id.clone()).collect();
        return Err(Usage::new(format!("no extension `{id}`: known are {}", ids.join(", "))).into());
    };
    let m = entry.extension.manifest();
    let actions: Vec<Value> = m
        .actions
        .iter()
        .map(|a| {
            let usage: Vec<String> = a
                .args
                .iter()
                .map(|arg| {
                    let kind = if arg.secret { "secret".to_owned() } else { arg.kind.to_string() };
                    let word = format!("--{} {kind}", arg.name).replace(" flag", "");
                    if arg.required { word } else { format!("[{word}]") }
                })
                .collect();
            let handlers: Vec<String> =
                a.os.iter()
                    .flat_map(|os| {
                        m.handlers_for(*os)
                            .map(move |h| format!("{os}: {}.{} {}", h.publisher, h.kind, h.type_handler_version))
                    })
                    .collect();
            json!({"name": a.name, "summary": a.summary, "os": a.os, "network": a.network,
                   "usage": usage.join(" "), "args": a.args, "handlers": handlers})
        })
        .collect();
    let value = json!({"id": m.id, "version": m.version, "summary": m.summary, "source": entry.source,
        "handlers": m.handlers, "actions": actions});
    // A table is a row per action: what a user runs.
    let (shown, columns): (&Value, Columns) = match ctx.format {
        crate::output::Format::Table | crate::output::Format::Tsv if ctx.query.is_none() => (
            &value["actions"],
            &[("Action", "/name"), ("Handlers", "/handlers"), ("Arguments", "/usage"), ("Summary", "/summary")],
        ),
        _ => (&value, &[("Id", "/id"), ("Version", "/version"), ("Summary", "/summary")]),
    };
    ctx.print(shown, columns)
}

fn list(registry: &Registry) -> Value {
    registry
        .entries()
        .iter()
        .map(|entry| {
            let manifest = entry.extension.manifest();
            json!({
                "id": manifest.id,
                "version": manifest.version,
                "summary": manifest.summary,
                "source": entry.source,
                "handlerNames": manifest.handlers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "actionNames": manifest.actions.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
                "handlers": manifest.handlers,
                "actions": manifest.actions,
            })
        })
        .collect()
}
