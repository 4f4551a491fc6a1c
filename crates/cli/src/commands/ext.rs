//! `azdock ext …`: the extension registry.

use azdock_azure_sm::extensions;
use azdock_core::ArgKind;
use azdock_core::Registry;
use azdock_core::Secret;
use azdock_host::manage;
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{ExtCommand, ExtSetArgs, ExtShowArgs, GlobalArgs};
use crate::config::Config;
use crate::error::Usage;
use crate::output::Columns;
use crate::session;
use crate::targets::{self, Selection, VmAddr};

const INSTALLED_COLUMNS: Columns = &[
    ("Name", "/name"),
    ("Publisher", "/properties/publisher"),
    ("Type", "/properties/type"),
    ("Version", "/properties/typeHandlerVersion"),
    ("ProvisioningState", "/properties/provisioningState"),
    ("Status", "/properties/instanceView/statuses/0/displayStatus"),
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
        ExtCommand::List { vm: None, ids, .. } if ids.is_empty() => {
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
            secret_json_arg("--protected-settings", args.protected_settings.as_deref())?,
        )),
        _ => None,
    };
    // `ext list --vm`/`--ids`: the extensions on each VM, with their status.
    if let ExtCommand::List { vm, resource_group, ids, max_parallel } = command {
        let chosen = Selection::new(resource_group.as_deref(), vm.as_deref(), ids, false)?;
        let several = matches!(&chosen, Selection::Ids(a) if a.len() > 1);
        let value = session::block_on(async {
            let (arm, addrs) = chosen.resolve(global, config).await?;
            let arm = &arm;
            let lists = targets::for_each(ctx, "list", addrs, usize::from(*max_parallel), |a| async move {
                Ok(manage::extensions(arm, &a).await?)
            })
            .await?;
            anyhow::Ok(if several { Value::Array(lists) } else { lists.into_iter().next().unwrap_or_default() })
        })?;
        return ctx.print(&value, INSTALLED_COLUMNS);
    }
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
        let Some((chosen, limit)) = chosen else { return Ok(Value::Null) };
        let several = matches!(&chosen, Selection::Ids(ids) if ids.len() > 1);
        let (arm, addrs) = chosen.resolve(global, config).await?;
        let arm = &arm;
        // An extension id names its instance; else `-n`.
        let instance = move |a: &VmAddr| a.extension.clone().or(name.map(str::to_owned)).unwrap_or_default();
        let results = match command {
            ExtCommand::Show(_) => {
                targets::for_each(ctx, "show", addrs, limit, |a| async move {
                    Ok(manage::extension(arm, &a, &instance(&a)).await?)
                })
                .await?
            }
            ExtCommand::Remove { no_wait, .. } => {
                targets::for_each(ctx, "remove", addrs, limit, |a| async move {
                    manage::delete(arm, &format!("{}/extensions/{}", a.path(), instance(&a)), !*no_wait).await?;
                    Ok(Value::Null)
                })
                .await?
            }
            ExtCommand::Set(args) => {
                let (public, protected) = settings.as_ref().map_or((None, None), |(p, s)| (p.as_ref(), s.as_ref()));
                let versions = extensions::VersionCache::default();
                let versions = &versions;
                targets::for_each(ctx, "set", addrs, limit, |a| async move {
                    let request = set_request(args, public, protected);
                    Ok(extensions::set(arm, &a.path(), &request, versions).await?)
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

/// The text of a flag given inline or as `@file`, held as a secret (it may be protected
/// settings); `None` when the flag is absent.
fn arg_text(flag: &str, value: Option<&str>) -> anyhow::Result<Option<Secret<String>>> {
    let Some(value) = value else { return Ok(None) };
    let text = match value.strip_prefix('@') {
        Some(file) => {
            std::fs::read_to_string(file).map_err(|e| Usage::new(format!("cannot read `{file}` for `{flag}`: {e}")))?
        }
        None => value.to_owned(),
    };
    Ok(Some(Secret::new(text)))
}

/// A JSON object given inline or as `@file`; `None` when absent.
fn json_arg(flag: &str, value: Option<&str>) -> anyhow::Result<Option<Value>> {
    let Some(text) = arg_text(flag, value)? else { return Ok(None) };
    let parsed: Value = serde_json::from_str(text.expose())
        .map_err(|e| Usage::new(format!("invalid JSON for `{flag}`: {e}; give a JSON object or @FILE")))?;
    if !parsed.is_object() {
        return Err(Usage::new(format!("`{flag}` must be a JSON object, not {parsed}")).into());
    }
    Ok(Some(parsed))
}

/// `--protected-settings`: like [`json_arg`], but the settings are a secret from the moment they
/// are read, and no error repeats them.
fn secret_json_arg(flag: &str, value: Option<&str>) -> anyhow::Result<Option<Secret<Value>>> {
    let Some(text) = arg_text(flag, value)? else { return Ok(None) };
    let parsed: Secret<Value> = serde_json::from_str(text.expose()).map_err(|e| {
        // serde's message names a line and column, never the text.
        Usage::new(format!("invalid JSON for `{flag}`: {e}; give a JSON object or @FILE"))
    })?;
    if !parsed.expose().is_object() {
        return Err(Usage::new(format!("`{flag}` must be a JSON object (its value is not shown: it is secret)")).into());
    }
    Ok(Some(parsed))
}

/// `ext set`'s flags as the request `az vm extension set` makes.
fn set_request<'a>(
    args: &'a ExtSetArgs,
    public: Option<&'a Value>,
    protected: Option<&'a Secret<Value>>,
) -> extensions::SetRequest<'a> {
    extensions::SetRequest {
        publisher: &args.publisher,
        kind: &args.kind,
        name: args.name.as_deref(),
        version: args.version.as_deref(),
        settings: public,
        protected_settings: protected,
        force_update: args.force_update.then(|| time::OffsetDateTime::now_utc().unix_timestamp_nanos().to_string()),
        auto_upgrade: !args.no_auto_upgrade,
        wait: !args.no_wait,
    }
}

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
                    let word = match arg.kind {
                        ArgKind::Flag => format!("--{}", arg.name),
                        _ if arg.secret => format!("--{} secret", arg.name),
                        kind => format!("--{} {kind}", arg.name),
                    };
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
