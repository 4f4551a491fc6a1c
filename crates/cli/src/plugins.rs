//! The plugin host: extension crates built as shared libraries by anyone, found in the plugin
//! directory (`<config dir>/plugins`, managed by `azdock ext plugin add|list|remove`) and in
//! `AZDOCK_PLUGIN_PATH`, checked, loaded once and never unloaded, and registered beside the
//! built-ins. A plugin that cannot be used is reported by file name and reason and skipped; every
//! other command keeps working. Plugins run in a helper process (`plugin_process`); this module
//! finds, checks and loads them there.

// Loading a shared library and calling through its C table needs `unsafe`; each block says why
// it is sound.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use azdock_core::plugin::{ABI_VERSION, Functions, PlanResponse, PluginTable, SCHEMA_VERSION, SYMBOL, take_string};
use azdock_core::{ExtensionError, Manifest, Plan, PlanRequest, Registry, Source, VmExtension};
use serde::{Deserialize, Serialize};

/// A plugin loaded into this process (the plugin process, `plugin_process`): its manifest and
/// the table it exported, which lives as long as the process.
pub(crate) struct LoadedPlugin {
    pub manifest: Manifest,
    functions: Functions,
    path: PathBuf,
    /// The SHA-256 of the bytes loaded, when they were read.
    pub sha256: Option<String>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("id", &self.manifest.id).field("path", &self.path).finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Calls the plugin's `plan` with the request as JSON.
    pub(crate) fn plan(&self, request: &PlanRequest) -> Result<Plan, ExtensionError> {
        let failed = |why: String| ExtensionError::Failed(format!("plugin `{}`: {why}", self.path.display()));
        let json = serde_json::to_string(request).map_err(|e| failed(e.to_string()))?;
        let request = CString::new(json).map_err(|e| failed(e.to_string()))?;
        // SAFETY: the table is a static of a library that is never unloaded; `plan` takes a
        // NUL-terminated string that stays valid for the call.
        let answer = unsafe { (self.functions.plan)(request.as_ptr()) };
        // SAFETY: `answer` came from this plugin's `plan` and is freed once, by the plugin.
        let text =
            unsafe { take_string(&self.functions, answer) }.ok_or_else(|| failed("plan() returned nothing".into()))?;
        let response: PlanResponse =
            serde_json::from_str(&text).map_err(|e| failed(format!("plan() answered with invalid JSON: {e}")))?;
        if response.schema != SCHEMA_VERSION {
            return Err(failed(format!(
                "plan() answered in schema {}, this azdock reads {SCHEMA_VERSION}",
                response.schema
            )));
        }
        match (response.plan, response.error) {
            (Some(plan), None) => Ok(plan),
            // A failure inside the plugin (a panic, its own error) names the plugin.
            (None, Some(ExtensionError::Failed(why))) => Err(failed(why)),
            (None, Some(error)) => Err(error),
            _ => Err(failed("plan() answered with neither a plan nor an error".into())),
        }
    }
}

/// The plugin directory.
pub(crate) fn dir() -> anyhow::Result<PathBuf> {
    Ok(crate::config::config_dir()?.join("plugins"))
}

/// What `ext plugin add` recorded for one file of the plugin directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    pub sha256: String,
    /// Where it was added from.
    pub source: PathBuf,
}

fn records_path() -> anyhow::Result<PathBuf> {
    Ok(dir()?.join("plugins.json"))
}

/// The recorded plugins, by file name.
pub(crate) fn records() -> anyhow::Result<BTreeMap<String, Record>> {
    let path = records_path()?;
    match std::fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data).with_context(|| format!("`{}` is damaged", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    }
}

pub(crate) fn save_records(records: &BTreeMap<String, Record>) -> anyhow::Result<()> {
    crate::config::write_atomic(&records_path()?, &serde_json::to_vec_pretty(records)?)
}

/// The SHA-256 of some bytes, hex.
pub(crate) fn sha256_of(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The SHA-256 of a file, hex.
pub(crate) fn sha256(path: &Path) -> anyhow::Result<String> {
    let data = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(sha256_of(&data))
}

fn is_library(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "so")
}

/// Every plugin file: the plugin directory's, then `AZDOCK_PLUGIN_PATH`'s (files, or directories
/// of `.so` files, separated by `:`).
pub(crate) fn discover() -> Vec<PathBuf> {
    let scan = |d: &Path| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> =
            std::fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| is_library(p)).collect();
        found.sort();
        found
    };
    let mut out = dir().map(|d| scan(&d)).unwrap_or_default();
    if let Some(paths) = std::env::var_os("AZDOCK_PLUGIN_PATH") {
        for p in std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()) {
            if p.is_dir() {
                out.extend(scan(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Only files owned by this user (or root) and writable by nobody else load: anyone who can
/// change the file could run code as this user. Checked on the open file, so the file checked
/// is the file read.
fn check_ownership(meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_file() {
        return Err("it is not a file".into());
    }
    // This process's user: the owner of /proc/self.
    let me =
        std::fs::metadata("/proc/self").map(|m| m.uid()).map_err(|e| format!("cannot tell who runs azdock: {e}"))?;
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!("it belongs to user {}, not to you ({me}) or root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "it is writable by {} (mode {:o}); `chmod go-w` it",
            if meta.mode() & 0o002 != 0 { "anyone" } else { "its group" },
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// A plugin file's bytes and their SHA-256 (hex).
pub(crate) type Read = (Vec<u8>, String);

/// A plugin file opened once, its owner and mode checked on that open file; with its bytes and
/// their SHA-256 when `read` is asked or the file is in the plugin directory, whose files must
/// hash to what `plugin add` recorded.
pub(crate) fn open_checked(path: &Path, read: bool) -> Result<(std::fs::File, Option<Read>), String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    check_ownership(&file.metadata().map_err(|e| format!("cannot read it: {e}"))?)?;
    let recorded = match dir() {
        Ok(plugin_dir) if path.parent() == Some(plugin_dir.as_path()) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let record = records()
                .map_err(|e| e.to_string())?
                .remove(&name)
                .ok_or("it is in the plugin directory but was not added with `azdock ext plugin add`")?;
            Some(record.sha256)
        }
        _ => None,
    };
    if !read && recorded.is_none() {
        return Ok((file, None));
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(|e| format!("cannot read it: {e}"))?;
    let now = sha256_of(&data);
    if let Some(recorded) = recorded
        && now != recorded
    {
        return Err(format!(
            "it changed since it was added (SHA-256 {now}, recorded {recorded}); add it again with `azdock ext plugin add` if you trust it"
        ));
    }
    Ok((file, Some((data, now))))
}

/// What the loader maps: the checked file itself, or — when its bytes were read and hashed —
/// exactly those bytes, through an anonymous memory file, so nothing written to the file after
/// the hash reaches what is loaded. Either stays open as long as the library: the loader knows
/// libraries by path, and a closed descriptor's number (`/proc/self/fd/N`) would name the next.
fn image(file: std::fs::File, bytes: Option<&[u8]>) -> Result<std::fs::File, String> {
    use std::io::Write as _;
    let Some(bytes) = bytes else { return Ok(file) };
    let fd = rustix::fs::memfd_create("azdock-plugin", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| format!("cannot load it: no memory file ({e})"))?;
    let mut image = std::fs::File::from(fd);
    image.write_all(bytes).map_err(|e| format!("cannot load it: {e}"))?;
    Ok(image)
}

/// Loads the library behind an open descriptor (the same file that was checked, never a path
/// that could have been swapped since).
fn load_image(image: &std::fs::File) -> Result<libloading::Library, String> {
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(image));
    // SAFETY: loading runs the library's initialisers. Only files that passed the ownership and
    // permission checks (and, in the plugin directory, the recorded hash) get here: the user chose
    // to trust them, as they would a program they run.
    unsafe { libloading::Library::new(&path) }.map_err(|e| format!("cannot load it: {e}"))
}

/// Loads one plugin file into this process and checks everything it says about itself. Only
/// the plugin process does this; azdock itself asks it (`plugin_process::load`).
/// With `hash`, the bytes are read and hashed even outside the plugin directory (for `add`).
pub(crate) fn load_here(path: &Path, hash: bool) -> Result<LoadedPlugin, String> {
    let (file, read) = open_checked(path, hash)?;
    let image = image(file, read.as_ref().map(|(bytes, _)| bytes.as_slice()))?;
    let library = load_image(&image)?;
    // Plugins stay loaded for the life of the process: their tables and strings point into it.
    let (library, _image) = Box::leak(Box::new((library, image)));
    // SAFETY: `SYMBOL` is declared by the ABI as `extern "C" fn() -> *const PluginTable`.
    let entry = unsafe { library.get::<unsafe extern "C" fn() -> *const PluginTable>(SYMBOL) }.map_err(|_| {
        format!("it exports no `azdock_plugin_v{ABI_VERSION}`: not an azdock plugin, or built for another ABI version")
    })?;
    // SAFETY: the entry point takes nothing and returns a pointer to the plugin's static table.
    let table = unsafe { entry() };
    if table.is_null() {
        return Err("its entry point returned no table".into());
    }
    // SAFETY: non-null, and every ABI version starts the table with these two `u32`s, so reading
    // them is sound before the size is known.
    let (abi, size) = unsafe { ((*table).abi_version, (*table).struct_size) };
    if abi != ABI_VERSION {
        return Err(format!(
            "it speaks plugin ABI {abi}; this azdock loads ABI {ABI_VERSION}: rebuild it against this azdock-core"
        ));
    }
    if usize::try_from(size).unwrap_or(0) < std::mem::size_of::<PluginTable>() {
        return Err(format!(
            "its table has {size} bytes, fewer than the {} of ABI {ABI_VERSION}",
            std::mem::size_of::<PluginTable>()
        ));
    }
    // SAFETY: the table is at least as large as this ABI's and lives in a library never unloaded;
    // its function pointers are `Option`s, so a NULL one reads as `None`.
    let table: &'static PluginTable = unsafe { &*table };
    let functions = table.functions().map_err(|missing| format!("its table has no `{missing}` function (NULL)"))?;
    // SAFETY: `manifest` returns a string this plugin owns until `take_string` frees it, once.
    let text = unsafe { take_string(&functions, (functions.manifest)()) }.ok_or("its manifest() returned nothing")?;
    if let Ok(response) = serde_json::from_str::<PlanResponse>(&text)
        && let Some(error) = response.error
    {
        return Err(format!("its manifest() failed: {error}"));
    }
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| format!("its manifest is not valid (schema {SCHEMA_VERSION}): {e}"))?;
    manifest.validate().map_err(|e| format!("its manifest breaks the rules: {e}"))?;
    Ok(LoadedPlugin { manifest, functions, path: path.to_owned(), sha256: read.map(|(_, sha)| sha) })
}

/// Loads one plugin file through the plugin process: a plugin that crashes there is an error
/// naming it, not the end of azdock.
pub(crate) fn load(path: &Path) -> Result<crate::plugin_process::PluginExtension, String> {
    crate::plugin_process::load(path, false)
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
pub(crate) fn registry(mut refused: impl FnMut(&Path, &str)) -> anyhow::Result<Registry> {
    let mut registry = Registry::with_builtins()?;
    for path in discover() {
        match load(&path) {
            Ok(plugin) => {
                if let Err(e) = registry.add(Source::Plugin { path: path.clone() }, Arc::new(plugin)) {
                    refused(&path, &e.to_string());
                }
            }
            Err(why) => refused(&path, &why),
        }
    }
    Ok(registry)
}

/// `ext`'s command with every plugin that loads as a subcommand, for its help: plugins are
/// first-class there, listed with the built-ins.
pub(crate) fn with_plugin_commands(ext: clap::Command) -> clap::Command {
    let mut ext = ext;
    for path in discover() {
        if let Ok(plugin) = load(&path) {
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
