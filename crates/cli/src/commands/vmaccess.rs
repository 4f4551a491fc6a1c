//! `azdock ext vmaccess <action>`: VMAccess on one VM, many (`--ids`), or every VM of a group
//! (`-g RG --all`), each with its own OS, through the shared rate-limited fan-out: a progress
//! line per VM on a terminal, a result table, and exit 1 naming every VM that failed.

use std::io::{BufRead as _, IsTerminal as _};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use azdock_core::{ArgValue, Args, Secret};
use azdock_host::{Events as _, Host, Invocation, Waits};

use super::{Ctx, interactive};
use crate::cli::{ExtVmAccessCommand, GlobalArgs};
use crate::config::Config;
use crate::error::Usage;
use crate::output::Columns;
use crate::session;
use crate::targets::Selection;

const COLUMNS: Columns = &[
    ("Name", "/name"),
    ("ResourceGroup", "/resourceGroup"),
    ("OsType", "/osType"),
    ("Action", "/action"),
    ("Status", "/status"),
    ("Message", "/message"),
];

/// The new password: `--password` (with a warning), `--password-stdin`, `AZDOCK_VM_PASSWORD`,
/// or a prompt on a terminal.
fn password(ctx: &Ctx, given: Option<&String>, stdin: bool) -> anyhow::Result<Secret<String>> {
    if let Some(p) = given {
        ctx.warn("a password on the command line is visible to other users of this machine and stays in shell history; prefer --password-stdin or AZDOCK_VM_PASSWORD");
        return Ok(Secret::new(p.clone()));
    }
    if stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        if p.is_empty() {
            return Err(Usage::new("`--password-stdin` read an empty password").into());
        }
        return Ok(Secret::new(p));
    }
    if let Some(p) = std::env::var("AZDOCK_VM_PASSWORD").ok().filter(|p| !p.is_empty()) {
        return Ok(Secret::new(p));
    }
    if interactive() {
        let first = rpassword::prompt_password("New password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        if first != again {
            return Err(Usage::new("the two passwords differ").into());
        }
        return Ok(Secret::new(first));
    }
    Err(Usage::new("no password: pass --password-stdin, set AZDOCK_VM_PASSWORD, or run on a terminal to be asked")
        .into())
}

/// The action's name and arguments, as the extension's manifest names them.
fn action_args(ctx: &Ctx, command: &ExtVmAccessCommand) -> anyhow::Result<(&'static str, Args)> {
    let mut args = Args::new();
    let mut text = |k: &str, v: &str| {
        args.insert(k.into(), ArgValue::Text(v.into()));
    };
    let name = match command {
        ExtVmAccessCommand::ResetPassword { username, password: p, password_stdin, expiration, .. } => {
            text("username", username);
            if let Some(e) = expiration {
                text("expiration", e);
            }
            args.insert("password".into(), ArgValue::Secret(Arc::new(password(ctx, p.as_ref(), *password_stdin)?)));
            "reset-password"
        }
        ExtVmAccessCommand::SetSshKey { username, ssh_key_value, replace, .. } => {
            text("username", username);
            let key = if std::path::Path::new(ssh_key_value).is_file() {
                std::fs::read_to_string(ssh_key_value)
                    .map_err(|e| Usage::new(format!("cannot read `{ssh_key_value}`: {e}")))?
            } else {
                ssh_key_value.clone()
            };
            text("ssh-key-value", &key);
            args.insert("replace".into(), ArgValue::Flag(*replace));
            "set-ssh-key"
        }
        ExtVmAccessCommand::RemoveUser { username, .. } => {
            text("username", username);
            "remove-user"
        }
        ExtVmAccessCommand::RepairDisk { disk_name, .. } => {
            text("disk-name", disk_name);
            "repair-disk"
        }
        ExtVmAccessCommand::ResetSsh { .. } => "reset-ssh",
        ExtVmAccessCommand::RestoreSshBackup { .. } => "restore-ssh-backup",
        ExtVmAccessCommand::ResetRdp { .. } => "reset-rdp",
        ExtVmAccessCommand::CheckDisk { .. } => "check-disk",
    };
    Ok((name, args))
}

pub(crate) fn run(ctx: &Ctx, global: &GlobalArgs, config: &Config, command: &ExtVmAccessCommand) -> anyhow::Result<()> {
    let on = command.on();
    let (action, args) = action_args(ctx, command)?;
    // The rules that need no VM, before any request.
    azdock_ext_vmaccess::check_anywhere(&args)?;
    let chosen = if on.all {
        None
    } else {
        Some(
            Selection::new(on.resource_group.as_deref(), on.vm.as_deref(), &on.ids, false)
                .map_err(|_| Usage::new("name the VMs: --vm NAME -g RG, --ids ID…, or -g RG --all"))?,
        )
    };
    let limit = usize::from(on.max_parallel);
    let rows = session::block_on(async {
        let (arm, addrs) = match chosen {
            Some(chosen) => chosen.resolve(global, config).await?,
            None => {
                let s = session::session(global, config).await?;
                let group = on.resource_group.clone().unwrap_or_default();
                let addrs = azdock_host::manage::addrs_in(&s.arm, &s.subscription, &group).await?;
                if addrs.is_empty() {
                    bail!("resource group `{group}` has no VMs");
                }
                (s.arm, addrs)
            }
        };
        let total = addrs.len();
        let progress = total > 1 && std::io::stderr().is_terminal() && !ctx.only_show_errors;
        let vmaccess = crate::plugins::builtin("vmaccess")?;
        let data_dir = crate::config::data_dir()?;
        // One VM's notes are told; a fleet's would repeat once per VM, so only its progress is.
        let events: &dyn azdock_host::Events = if total == 1 { ctx } else { &azdock_host::Silent };
        let host = Host { arm: &arm, data_dir: &data_dir, events };
        let invocation = Invocation {
            extension: &*vmaccess,
            action,
            args: &args,
            waits: Waits::ALL,
            prepare: None,
            take_over: false,
        };
        let (host, invocation) = (&host, &invocation);
        ctx.progress.fleet_start(action, total);
        let results = azdock_host::target::each(addrs, limit, |addr| async move {
            let result = match host.run(invocation, &addr).await {
                Ok(ran) => ran.verdict().map_err(anyhow::Error::from),
                Err(e) => Err(e.into()),
            };
            if progress {
                let error = result.as_ref().err().map(|e| format!("{e:#}"));
                ctx.emit(azdock_host::Event::VmDone { vm: addr.name.clone(), action: action.into(), error });
            }
            result
        })
        .await;
        ctx.progress.fleet_end();
        anyhow::Ok(results)
    })?;
    crate::targets::print_fleet(ctx, rows, action, COLUMNS)
}
