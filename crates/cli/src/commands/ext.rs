//! `azdock ext …`: the extension registry.

use anyhow::Context as _;
use azdock_core::Registry;
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{ExtCommand, ExtSetArgs, GlobalArgs};
use crate::config::Config;
use crate::error::Usage;
use crate::output::Columns;
use crate::session::{self, COMPUTE_API, Session};

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
    if let ExtCommand::List { vm: None, .. } = command {
        let registry = Registry::with_builtins()?;
        return ctx.print(&list(&registry), LIST_COLUMNS);
    }
    // Settings are read and checked before anything is sent.
    let settings = match command {
        ExtCommand::Set(args) => Some((
            json_arg("--settings", args.settings.as_deref())?,
            json_arg("--protected-settings", args.protected_settings.as_deref())?,
        )),
        _ => None,
    };
    let value = session::block_on(async {
        let s = session::session(global, config).await?;
        match command {
            ExtCommand::List { vm: Some(vm), resource_group } => {
                let group = resource_group.as_deref().unwrap_or_default();
                let body =
                    s.arm.get(&format!("{}/extensions?api-version={COMPUTE_API}", vm_path(&s, group, vm))).await?;
                Ok(body["value"].clone())
            }
            ExtCommand::Show { on, name } => Ok(s
                .arm
                .get(&format!(
                    "{}/extensions/{name}?api-version={COMPUTE_API}&$expand=instanceView",
                    vm_path(&s, &on.resource_group, &on.vm)
                ))
                .await?),
            ExtCommand::Set(args) => {
                let (public, protected) = settings.clone().unwrap_or_default();
                set(&s, args, public, protected).await
            }
            ExtCommand::Remove { on, name, no_wait } => {
                let path =
                    format!("{}/extensions/{name}?api-version={COMPUTE_API}", vm_path(&s, &on.resource_group, &on.vm));
                if *no_wait {
                    s.arm.send(reqwest::Method::DELETE, &path, None).await?;
                } else {
                    s.arm.delete(&path).await?;
                }
                Ok(Value::Null)
            }
            ExtCommand::List { vm: None, .. } => Ok(Value::Null),
        }
    })?;
    if value.is_null() {
        return Ok(());
    }
    ctx.print(&value, INSTALLED_COLUMNS)
}

fn vm_path(s: &Session, group: &str, vm: &str) -> String {
    format!("/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{vm}", s.subscription)
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

/// What `az vm extension set` does: reuse the handler's instance, resolve the version, PUT,
/// wait, and show the result (or the handler's failure message).
async fn set(s: &Session, args: &ExtSetArgs, public: Option<Value>, protected: Option<Value>) -> anyhow::Result<Value> {
    let vm_path = vm_path(s, &args.on.resource_group, &args.on.vm);
    let vm = s.arm.get(&format!("{vm_path}?api-version={COMPUTE_API}")).await?;
    let location = vm["location"].as_str().context("the VM has no location")?.to_owned();
    let installed = s.arm.get(&format!("{vm_path}/extensions?api-version={COMPUTE_API}")).await?;
    let existing = installed["value"].as_array().into_iter().flatten().find(|e| {
        e["properties"]["publisher"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(&args.publisher))
            && e["properties"]["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(&args.kind))
    });
    let name = args
        .name
        .clone()
        .or_else(|| existing.and_then(|e| e["name"].as_str().map(str::to_owned)))
        .unwrap_or_else(|| args.kind.clone());
    let version = match &args.version {
        Some(v) => major_minor(v),
        None => {
            let url = format!(
                "/subscriptions/{}/providers/Microsoft.Compute/locations/{location}/publishers/{}/artifacttypes/vmextension/types/{}/versions?api-version={COMPUTE_API}",
                s.subscription, args.publisher, args.kind
            );
            let versions = s.arm.get(&url).await?;
            let latest = versions
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["name"].as_str())
                .max_by_key(|v| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>());
            major_minor(latest.context("Azure lists no version of this extension")?)
        }
    };
    let mut properties = json!({"publisher": args.publisher, "type": args.kind, "typeHandlerVersion": version, "autoUpgradeMinorVersion": !args.no_auto_upgrade});
    if let Some(p) = public {
        properties["settings"] = p;
    }
    if let Some(p) = protected {
        properties["protectedSettings"] = p;
    }
    if args.force_update {
        properties["forceUpdateTag"] = json!(time::OffsetDateTime::now_utc().unix_timestamp_nanos().to_string());
    }
    let path = format!("{vm_path}/extensions/{name}?api-version={COMPUTE_API}");
    let body = json!({"location": location, "properties": properties});
    if args.no_wait {
        return Ok(s.arm.send(reqwest::Method::PUT, &path, Some(&body)).await?.body);
    }
    s.arm.put(&path, &body).await?;
    Ok(s.arm.get(&format!("{path}&$expand=instanceView")).await?)
}

/// One object per extension: its manifest plus where it came from. `handlerNames` and
/// `actionNames` are flat lists for table and tsv output.
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
