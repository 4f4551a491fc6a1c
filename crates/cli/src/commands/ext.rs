//! `azdock ext …`: the extension registry.

use azdock_core::Registry;
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::ExtCommand;
use crate::output::Columns;

const LIST_COLUMNS: Columns = &[
    ("Id", "/id"),
    ("Version", "/version"),
    ("Source", "/source/kind"),
    ("Handlers", "/handlerNames"),
    ("Actions", "/actionNames"),
    ("Summary", "/summary"),
];

pub(crate) fn run(ctx: &Ctx, command: &ExtCommand, registry: &Registry) -> anyhow::Result<()> {
    match command {
        ExtCommand::List => ctx.print(&list(registry), LIST_COLUMNS),
    }
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
