//! Loading one plugin file into this process (the plugin process): opened once, its owner and
//! mode checked on the open file, its bytes hashed where a hash is due, loaded through that same
//! descriptor (or a memory file of exactly the hashed bytes), and its table and manifest checked.

// Loading a shared library and calling through its C table needs `unsafe`; each block says why
// it is sound.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use azdock_core::plugin::{ABI_VERSION, Functions, PlanResponse, PluginTable, SCHEMA_VERSION, SYMBOL, take_string};
use azdock_core::{ExtensionError, Manifest, Plan, PlanRequest};

use super::{PluginDir, sha256_of};

/// A plugin loaded into this process (the plugin process, `plugin_process`): its manifest and
/// the table it exported, which lives as long as the process.
pub struct LoadedPlugin {
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
    pub fn plan(&self, request: &PlanRequest) -> Result<Plan, ExtensionError> {
        let failed = |why: String| ExtensionError::Failed(format!("plugin `{}`: {why}", self.path.display()));
        // The request carries secret arguments: written into a wiped buffer, copied once into a
        // C string of exactly its size, and that is wiped after the call.
        let json = azdock_core::secret::to_json(request).map_err(|e| failed(e.to_string()))?;
        let mut exact = Vec::with_capacity(json.as_bytes().len() + 1);
        exact.extend_from_slice(json.as_bytes());
        let request = CString::new(exact).map_err(|e| failed(e.to_string()))?;
        // SAFETY: the table is a static of a library that is never unloaded; `plan` takes a
        // NUL-terminated string that stays valid for the call.
        let answer = unsafe { (self.functions.plan)(request.as_ptr()) };
        zeroize::Zeroize::zeroize(&mut request.into_bytes_with_nul());
        // SAFETY: `answer` came from this plugin's `plan` and is freed once, by the plugin.
        let text =
            unsafe { take_string(&self.functions, answer) }.ok_or_else(|| failed("plan() returned nothing".into()))?;
        let response: PlanResponse = serde_json::from_str(text.expose())
            .map_err(|e| failed(format!("plan() answered with invalid JSON: {e}")))?;
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
pub type Read = (Vec<u8>, String);

/// A plugin file opened once, its owner and mode checked on that open file; with its bytes and
/// their SHA-256 when `read` is asked or the file is in the plugin directory, whose files must
/// hash to what `plugin add` recorded.
pub fn open_checked(plugins: &PluginDir, path: &Path, read: bool) -> Result<(std::fs::File, Option<Read>), String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    check_ownership(&file.metadata().map_err(|e| format!("cannot read it: {e}"))?)?;
    let recorded = if path.parent() == Some(plugins.path()) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let record = plugins
            .records()
            .map_err(|e| e.to_string())?
            .remove(&name)
            .ok_or("it is in the plugin directory but was not added with `azdock ext plugin add`")?;
        Some(record.sha256)
    } else {
        None
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
/// the plugin process does this; azdock itself asks it ([`super::load`]).
/// With `hash`, the bytes are read and hashed even outside the plugin directory (for `add`).
pub fn load_here(plugins: &PluginDir, path: &Path, hash: bool) -> Result<LoadedPlugin, String> {
    let (file, read) = open_checked(plugins, path, hash)?;
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
    let text = text.expose();
    if let Ok(response) = serde_json::from_str::<PlanResponse>(text)
        && let Some(error) = response.error
    {
        return Err(format!("its manifest() failed: {error}"));
    }
    let manifest: Manifest =
        serde_json::from_str(text).map_err(|e| format!("its manifest is not valid (schema {SCHEMA_VERSION}): {e}"))?;
    manifest.validate().map_err(|e| format!("its manifest breaks the rules: {e}"))?;
    Ok(LoadedPlugin { manifest, functions, path: path.to_owned(), sha256: read.map(|(_, sha)| sha) })
}
