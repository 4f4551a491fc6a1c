//! `azdock ext plugin add|list|remove`, and `azdock ext <id> <action> …` for plugins: their
//! subcommands are built at run time from each plugin's manifest, and their plans carried out by
//! the same host as the built-ins'.

use std::io::BufRead as _;
use std::sync::Arc;

use anyhow::Context as _;
use azdock_core::{ArgKind, ArgValue, Args, Manifest, Secret};
use azdock_host::{Host, Invocation, Waits};
use clap::{Arg, ArgAction, Command};
use serde_json::{Value, json};

use super::{Ctx, interactive};
use crate::cli::{GlobalArgs, PluginCommand};
use crate::config::Config;
use crate::error::Usage;
use crate::output::{Columns, Format};
use crate::plugins;
use crate::targets::Selection;

const LIST_COLUMNS: Columns =
    &[("Id", "/id"), ("Version", "/version"), ("Abi", "/abi"), ("Status", "/status"), ("Path", "/path")];

pub(crate) fn run(ctx: &Ctx, command: &PluginCommand) -> anyhow::Result<()> {
    let dir = plugins::plugin_dir()?;
    match command {
        PluginCommand::List => {
            let mut rows = Vec::new();
            let recorded = dir.records()?;
            for path in dir.discover() {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let sha = azdock_host::plugins::sha256(&path).unwrap_or_default();
                let mut row = json!({"path": path, "sha256": sha, "abi": azdock_core::plugin::ABI_VERSION,
                                     "added": recorded.get(&name).map(|r| &r.source)});
                match azdock_host::plugins::load(&path, false) {
                    Ok(p) => {
                        let m = azdock_core::VmExtension::manifest(&p);
                        row["id"] = json!(m.id);
                        row["version"] = json!(m.version);
                        row["status"] = json!("loaded");
                    }
                    Err(why) => row["status"] = json!(format!("refused: {why}")),
                }
                rows.push(row);
            }
            ctx.print(&Value::Array(rows), LIST_COLUMNS)
        }
        PluginCommand::Add { path, link, force } => {
            let source = std::path::absolute(path).with_context(|| format!("invalid path `{}`", path.display()))?;
            let added = dir.add(&source, *link, *force)?;
            let m = &added.manifest;
            ctx.print(&json!({"id": m.id, "version": m.version, "path": added.path, "sha256": added.sha256, "status": "loaded", "abi": azdock_core::plugin::ABI_VERSION}), LIST_COLUMNS)
        }
        PluginCommand::Remove { id } => Ok(dir.remove(id)?),
    }
}

/// Leaks a string for clap, which wants `'static` names: a handful per run.
fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

/// A plugin's command tree, from its manifest.
fn command_for(manifest: &Manifest) -> Command {
    let mut cmd = Command::new(leak(&manifest.id))
        .bin_name(leak(&format!("azdock ext {}", manifest.id)))
        .about(leak(&manifest.summary))
        .subcommand_required(true)
        .arg_required_else_help(true);
    for action in &manifest.actions {
        let mut sub = Command::new(leak(&action.name))
            .about(leak(&action.summary))
            .arg(Arg::new("vm").long("vm").value_name("NAME").help("VM name").conflicts_with("ids"))
            .arg(
                Arg::new("resource-group")
                    .short('g')
                    .long("resource-group")
                    .help("Resource group")
                    .conflicts_with("ids"),
            )
            .arg(Arg::new("ids").long("ids").num_args(1..).value_name("ID").help("VM resource ids"))
            .arg(
                Arg::new("no-wait")
                    .long("no-wait")
                    .action(ArgAction::SetTrue)
                    .help("Return once Azure accepted the extension"),
            )
            .arg(
                Arg::new("take-over")
                    .long("take-over")
                    .action(ArgAction::SetTrue)
                    .help("Take the handler over when another extension holds it on the VM"),
            );
        sub = with_global_args(sub);
        for a in &action.args {
            let mut arg = Arg::new(leak(&a.name)).long(leak(&a.name)).help(leak(&a.help));
            arg = match a.kind {
                ArgKind::Flag => arg.action(ArgAction::SetTrue),
                ArgKind::Integer => arg.value_parser(clap::value_parser!(i64)),
                ArgKind::List => arg.action(ArgAction::Append),
                ArgKind::File => arg.value_name("FILE"),
                ArgKind::Text => arg.value_name("VALUE"),
            };
            // A secret text may come from stdin or a prompt instead; a secret file is a path.
            let prompted = a.secret && a.kind != ArgKind::File;
            if a.required && !prompted {
                arg = arg.required(true);
            }
            if let Some(d) = &a.default {
                arg = arg.default_value(leak(d));
            }
            if prompted {
                arg = arg.allow_hyphen_values(true);
                sub = sub.arg(
                    Arg::new(leak(&format!("{}-stdin", a.name)))
                        .long(leak(&format!("{}-stdin", a.name)))
                        .action(ArgAction::SetTrue)
                        .conflicts_with(leak(&a.name))
                        .help(leak(&format!("Read --{} from standard input", a.name))),
                );
            }
            sub = sub.arg(arg);
        }
        cmd = cmd.subcommand(sub);
    }
    cmd
}

/// The global options, which a user puts after the action as after a built-in's (`… run
/// --vm x -g y -o table`): the plugin's words reach the host unparsed, so they are parsed here.
fn with_global_args(sub: Command) -> Command {
    sub.arg(
        Arg::new("output")
            .short('o')
            .long("output")
            .value_name("FORMAT")
            .value_parser(clap::builder::EnumValueParser::<Format>::new())
            .help("Output format"),
    )
    .arg(Arg::new("query").long("query").value_name("JMESPATH").help("JMESPath query applied to the result"))
    .arg(Arg::new("cloud").long("cloud").value_name("NAME").help("Cloud"))
    .arg(Arg::new("subscription").long("subscription").value_name("ID").help("Subscription id"))
    .arg(Arg::new("only-show-errors").long("only-show-errors").action(ArgAction::SetTrue).help("Print errors only"))
}

/// The context and global flags with what was given after the action taking precedence.
fn after_action(ctx: &Ctx, global: &GlobalArgs, m: &clap::ArgMatches) -> (Ctx, GlobalArgs) {
    let text = |k: &str| m.get_one::<String>(k).cloned();
    let only = global.only_show_errors || m.get_flag("only-show-errors");
    let ctx = Ctx {
        format: m.get_one::<Format>("output").copied().unwrap_or(ctx.format),
        query: text("query").or_else(|| ctx.query.clone()),
        only_show_errors: ctx.only_show_errors || only,
        progress: crate::progress::Progress::new(ctx.only_show_errors || only),
    };
    let global = GlobalArgs {
        output: Some(ctx.format),
        query: ctx.query.clone(),
        verbose: global.verbose,
        debug: global.debug,
        only_show_errors: only,
        cloud: text("cloud").or_else(|| global.cloud.clone()),
        subscription: text("subscription").or_else(|| global.subscription.clone()),
    };
    (ctx, global)
}

/// A secret argument: given (with a warning), from stdin, or from a prompt.
fn secret(
    ctx: &Ctx,
    name: &str,
    given: Option<&String>,
    stdin: bool,
    required: bool,
) -> anyhow::Result<Option<Secret<String>>> {
    if let Some(v) = given {
        ctx.warn(&format!(
            "--{name} on the command line is visible to other users of this machine; prefer --{name}-stdin"
        ));
        return Ok(Some(Secret::new(v.clone())));
    }
    if stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .with_context(|| format!("cannot read --{name} from standard input"))?;
        return Ok(Some(Secret::new(line.trim_end_matches(['\r', '\n']).to_owned())));
    }
    if required {
        if interactive() {
            return Ok(Some(Secret::new(rpassword::prompt_password(format!("{name}: "))?)));
        }
        return Err(
            Usage::new(format!("--{name} is required: pass --{name}-stdin, or run on a terminal to be asked")).into()
        );
    }
    Ok(None)
}

/// `azdock ext <id> <action> …` for a plugin.
pub(crate) fn run_external(ctx: &Ctx, global: &GlobalArgs, config: &Config, words: &[String]) -> anyhow::Result<()> {
    let Some(id) = words.first() else { return Err(Usage::new("name an extension: see `azdock ext list`").into()) };
    let registry = plugins::registry(|path, why| ctx.warn(&format!("plugin `{}` skipped: {why}", path.display())))?;
    let Some(entry) = registry.get(id) else {
        let ids: Vec<String> = registry.entries().iter().map(|e| e.extension.manifest().id.clone()).collect();
        return Err(Usage::new(format!("no extension `{id}`: known are {} (`azdock ext list`)", ids.join(", "))).into());
    };
    let manifest = entry.extension.manifest().clone();
    let matches = match command_for(&manifest).try_get_matches_from(words) {
        Ok(m) => m,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            print!("{e}");
            return Ok(());
        }
        Err(e) => return Err(Usage::new(e.render().to_string().trim_start_matches("error: ").trim().to_owned()).into()),
    };
    let (action_name, m) = matches.subcommand().context("an action is required")?;
    let (ctx, global) = after_action(ctx, global, m);
    let (ctx, global) = (&ctx, &global);
    let action = manifest.action(action_name).context("unknown action")?.clone();
    let mut args = Args::new();
    for a in &action.args {
        let value = match a.kind {
            // A secret file is read by the host, never passed as its path.
            ArgKind::File if a.secret => match m.get_one::<String>(&a.name) {
                Some(file) => Some(azdock_host::contract::file_argument(a, std::path::Path::new(file))?),
                None if a.required => {
                    return Err(Usage::new(format!("--{} is required: give the file that holds it", a.name)).into());
                }
                None => None,
            },
            _ if a.secret => secret(
                ctx,
                &a.name,
                m.get_one::<String>(&a.name),
                m.get_flag(&format!("{}-stdin", a.name)),
                a.required,
            )?
            .map(|s| ArgValue::Secret(Arc::new(s))),
            ArgKind::Flag => Some(ArgValue::Flag(m.get_flag(&a.name))),
            ArgKind::Integer => m.get_one::<i64>(&a.name).map(|n| ArgValue::Integer(*n)),
            ArgKind::List => {
                Some(ArgValue::List(m.get_many::<String>(&a.name).into_iter().flatten().cloned().collect()))
            }
            ArgKind::File => match m.get_one::<String>(&a.name) {
                Some(file) => Some(azdock_host::contract::file_argument(a, std::path::Path::new(file))?),
                None => None,
            },
            ArgKind::Text => m.get_one::<String>(&a.name).map(|v| ArgValue::Text(v.clone())),
        };
        if let Some(v) = value {
            args.insert(a.name.clone(), v);
        }
    }
    let ids: Vec<String> = m.get_many::<String>("ids").into_iter().flatten().cloned().collect();
    let chosen = Selection::new(
        m.get_one::<String>("resource-group").map(String::as_str),
        m.get_one::<String>("vm").map(String::as_str),
        &ids,
        false,
    )
    .map_err(|_| {
        Usage::new(format!("name the VM: --vm NAME -g RG, or --ids ID (see `azdock ext {id} {action_name} --help`)"))
    })?;
    let wait = !m.get_flag("no-wait");
    let extension = entry.extension.clone();
    let data_dir = crate::config::data_dir()?;
    let rows = crate::session::block_on(async {
        let (arm, addrs) = chosen.resolve(global, config).await?;
        let host = Host { arm: &arm, data_dir: &data_dir, events: ctx };
        let invocation = Invocation {
            extension: &*extension,
            action: action_name,
            args: &args,
            waits: Waits { operation: wait, endpoints: wait, endpoint_required: true },
            prepare: None,
            take_over: m.get_flag("take-over"),
        };
        let mut rows = Vec::new();
        for addr in addrs {
            rows.push(host.run(&invocation, &addr).await?.row());
        }
        anyhow::Ok(rows)
    })?;
    let value = if rows.len() == 1 { rows.into_iter().next().unwrap_or_default() } else { Value::Array(rows) };
    ctx.print(
        &value,
        &[
            ("Name", "/name"),
            ("Action", "/action"),
            ("Status", "/status"),
            ("Stdout", "/stdout"),
            ("Stderr", "/stderr"),
        ],
    )
}
