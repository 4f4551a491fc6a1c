//! azdock's directories and its one config file (TOML) of defaults.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use etcetera::BaseStrategy as _;
use serde::Deserialize;

use crate::error::Usage;
use crate::output::Format;

/// `config.toml` in the config directory; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub defaults: Defaults,
}

/// `[defaults]`: what flags fall back to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Defaults {
    pub output: Option<Format>,
    pub docker_cert_dir: Option<PathBuf>,
    pub cloud: Option<String>,
    pub subscription: Option<String>,
}

/// The config directory: `AZDOCK_CONFIG_DIR`, else the platform's (XDG on Linux:
/// `$XDG_CONFIG_HOME/azdock`, `~/.config/azdock`).
pub(crate) fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("AZDOCK_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let base = etcetera::choose_base_strategy().context("cannot find the home directory; set `AZDOCK_CONFIG_DIR`")?;
    Ok(base.config_dir().join("azdock"))
}

/// The data directory: `AZDOCK_DATA_DIR`, else the platform's (XDG on Linux:
/// `$XDG_DATA_HOME/azdock`, `~/.local/share/azdock`). The local cloud keeps its state here.
pub(crate) fn data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("AZDOCK_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let base = etcetera::choose_base_strategy().context("cannot find the home directory; set `AZDOCK_DATA_DIR`")?;
    Ok(base.data_dir().join("azdock"))
}

/// Loads `config.toml`; a missing file is an empty config, a broken one an error naming it.
pub(crate) fn load() -> anyhow::Result<Config> {
    let path = config_dir()?.join("config.toml");
    load_from(&path)
}

fn load_from(path: &Path) -> anyhow::Result<Config> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| Usage::new(format!("invalid config file `{}`: {}", path.display(), e.message())).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read the config file `{}`", path.display())),
    }
}

/// Sets `defaults.<key>` in `config.toml`, keeping everything else in the file.
pub(crate) fn set_default(key: &str, value: &str) -> anyhow::Result<()> {
    let path = config_dir()?.join("config.toml");
    // Two `set` commands at once must both land: read, change and write under the file's lock.
    let _lock = azdock_files::Lock::acquire(&path).with_context(|| format!("cannot lock `{}`", path.display()))?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    };
    let mut table: toml::Table = toml::from_str(&text)
        .map_err(|e| Usage::new(format!("invalid config file `{}`: {}", path.display(), e.message())))?;
    let defaults = table.entry("defaults").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(defaults) = defaults.as_table_mut() else {
        return Err(Usage::new(format!("invalid config file `{}`: `defaults` is not a table", path.display())).into());
    };
    defaults.insert(key.to_owned(), toml::Value::String(value.to_owned()));
    write_atomic(&path, toml::to_string(&table)?.as_bytes())
}

/// Writes `data` to `path` atomically (azdock's one way: a unique temporary file with the mode
/// from the start, synced, renamed), creating the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    azdock_files::write_atomic(path, data, 0o600).with_context(|| format!("cannot write `{}`", path.display()))
}

/// The certificate directory: `-C` (or `AZDOCK_DOCKER_CERT_DIR`, which clap reads into it),
/// else `defaults.docker-cert-dir`, else `~/.docker` — absolute, because it ends up in
/// `DOCKER_CERT_PATH`, docker contexts and reports.
pub(crate) fn docker_cert_dir(flag: Option<&Path>, default: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match flag.or(default) {
        Some(d) => d.to_owned(),
        None => default_docker_cert_dir()?,
    };
    std::path::absolute(&dir).with_context(|| format!("invalid certificate directory `{}`", dir.display()))
}

/// Docker's own default certificate directory, `~/.docker`.
fn default_docker_cert_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::home_dir()
        .filter(|h| !h.as_os_str().is_empty())
        .context("cannot find the home directory; pass `--docker-cert-dir`")?;
    Ok(home.join(".docker"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert!(load_from(&path).unwrap().defaults.output.is_none());
        std::fs::write(&path, "[defaults]\noutput = \"table\"\ndocker-cert-dir = \"/c\"\n").unwrap();
        let config = load_from(&path).unwrap();
        assert_eq!(config.defaults.output, Some(Format::Table));
        assert_eq!(config.defaults.docker_cert_dir, Some(PathBuf::from("/c")));
        std::fs::write(&path, "[defaults]\noutptu = \"table\"\n").unwrap();
        let err = load_from(&path).unwrap_err().to_string();
        assert!(err.contains("invalid config file") && err.contains("outptu"), "{err}");
    }
}
