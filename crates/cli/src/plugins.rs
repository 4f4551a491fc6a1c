//! Where the CLI finds extensions: the registry of built-ins and plugins (the plugin host is
//! `azdock_host::plugins`; this module gives it azdock's plugin directory and search path).

use std::path::Path;
use std::sync::Arc;

use azdock_core::{Registry, VmExtension};
use azdock_host::plugins::PluginDir;

/// The plugin directory (`<config dir>/plugins`) and `AZDOCK_PLUGIN_PATH`.
pub(crate) fn plugin_dir() -> anyhow::Result<PluginDir> {
    Ok(PluginDir::new(crate::config::config_dir()?.join("plugins"), std::env::var_os("AZDOCK_PLUGIN_PATH").as_deref()))
}

/// The built-in extension `id`, found the one way the CLI finds extensions: the registry (of
/// built-ins only: a plugin cannot take a built-in's id, so loading plugins would change nothing).
pub(crate) fn builtin(id: &str) -> anyhow::Result<Arc<dyn VmExtension>> {
    let registry = Registry::with_builtins()?;
    let entry = registry.get(id).ok_or_else(|| anyhow::anyhow!("the built-in extension `{id}` is not linked in"))?;
    Ok(entry.extension.clone())
}

/// The built-ins and every plugin that loads; each one that does not is passed to `refused`
/// with its file and reason.
pub(crate) fn registry(refused: impl FnMut(&Path, &str)) -> anyhow::Result<Registry> {
    Ok(plugin_dir()?.registry(refused)?)
}

/// `ext`'s command with every plugin that loads as a subcommand, for its help: plugins are
/// first-class there, listed with the built-ins.
pub(crate) fn with_plugin_commands(ext: clap::Command) -> clap::Command {
    let mut ext = ext;
    let Ok(plugins) = plugin_dir() else { return ext };
    for path in plugins.discover() {
        if let Ok(plugin) = azdock_host::plugins::load(&path, false) {
            let m = VmExtension::manifest(&plugin);
            if ext.find_subcommand(&m.id).is_none() {
                // clap wants `'static` names: a few, once, for a help page.
                let name: &'static str = Box::leak(m.id.clone().into_boxed_str());
                let about = format!("{} (plugin: `azdock ext {} --help`)", m.summary, m.id);
                ext = ext.subcommand(clap::Command::new(name).about(about));
            }
        }
    }
    ext
}
