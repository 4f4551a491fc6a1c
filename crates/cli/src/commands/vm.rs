//! `azdock vm …`: virtual machines.

use azdock_azure_sm::images::{self, ImageSpec};
use azdock_host::manage::{self, Power};
use serde_json::Value;

use super::Ctx;
use crate::cli::{GlobalArgs, ImageCommand, VmCommand, VmRef};
use crate::config::Config;
use crate::error::Usage;
use crate::output::Columns;
use crate::session;
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

const ALIAS_COLUMNS: Columns =
    &[("Alias", "/alias"), ("Publisher", "/publisher"), ("Offer", "/offer"), ("Sku", "/sku"), ("Urn", "/urn")];
const IMAGE_COLUMNS: Columns =
    &[("Publisher", "/publisher"), ("Offer", "/offer"), ("Sku", "/sku"), ("Version", "/version"), ("Urn", "/urn")];

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
        VmCommand::Image(ImageCommand::Aliases) => {
            return ctx.print(&manage::alias_rows(None, None, None), ALIAS_COLUMNS);
        }
        VmCommand::Image(ImageCommand::List { all: false, publisher, offer, sku, .. }) => {
            let rows = manage::alias_rows(publisher.as_deref(), offer.as_deref(), sku.as_deref());
            return ctx.print(&rows, ALIAS_COLUMNS);
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
                    let show = |a: VmAddr| async move { Ok(manage::show(arm, &a, *show_details).await?) };
                    (targets::for_each(ctx, "show", addrs, limit, show).await?, columns)
                }
                VmCommand::Delete { target, .. } => {
                    let delete = |a: VmAddr| async move {
                        manage::delete(arm, &a.path(), !target.no_wait).await?;
                        Ok(Value::Null)
                    };
                    (targets::for_each(ctx, "delete", addrs, limit, delete).await?, LIST_COLUMNS)
                }
                command => {
                    let (action, t) = match command {
                        VmCommand::Start(t) => (Power::Start, t),
                        VmCommand::Stop(t) => (Power::Stop, t),
                        VmCommand::Deallocate(t) => (Power::Deallocate, t),
                        VmCommand::Restart(t) => (Power::Restart, t),
                        _ => unreachable!("only VM commands select VMs"),
                    };
                    let power = |a: VmAddr| async move {
                        manage::power(arm, &a, action, !t.no_wait).await?;
                        Ok(Value::Null)
                    };
                    (targets::for_each(ctx, action.verb(), addrs, limit, power).await?, LIST_COLUMNS)
                }
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
                let vms = manage::list(&s.arm, &s.subscription, resource_group.as_deref()).await?;
                Ok((Value::Array(vms), LIST_COLUMNS))
            }
            VmCommand::Image(ImageCommand::List { publisher, offer, sku, location, .. }) => {
                let publisher = publisher.as_deref().unwrap_or_default();
                let rows =
                    manage::catalogue(&s.arm, &s.subscription, location, publisher, offer.as_deref(), sku.as_deref())
                        .await?;
                Ok((rows, IMAGE_COLUMNS))
            }
            VmCommand::Image(ImageCommand::Show { location, .. }) => {
                let spec = image.clone().unwrap_or_else(|| unreachable!("parsed above"));
                let found = images::resolve(&s.arm, &s.subscription, location, &spec).await?;
                Ok((manage::image_row(&found), IMAGE_COLUMNS))
            }
            _ => Ok((manage::alias_rows(None, None, None), ALIAS_COLUMNS)),
        }
    })?;
    if value.is_null() {
        return Ok(());
    }
    ctx.print(&value, columns)
}
