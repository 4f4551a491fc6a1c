//! A plugin that misbehaves in one way chosen by a cargo feature — wrong ABI version, a table
//! too small, a NULL `plan`, a manifest that is not JSON, a `plan` that panics, aborts or
//! crashes, the id of a built-in — so the tests can check that the host refuses each with its reason and keeps working. Without a
//! feature it is a well-behaved plugin with the id `misbehave`.

// The table is built by hand here (the features bend it), so this crate needs `unsafe` like the
// export macro's shims do.
#![allow(unsafe_code)]

use std::ffi::c_char;

use azdock_core::plugin::{ABI_VERSION, PluginTable, export};
use azdock_core::{ActionSpec, ExtensionError, Manifest, Plan, PlanRequest, VmExtension};

#[derive(Debug)]
struct Misbehave {
    manifest: Manifest,
}

impl Default for Misbehave {
    fn default() -> Self {
        // The bench builds ten of these with ids from the environment.
        let id = if cfg!(feature = "dup-id") {
            "docker"
        } else if cfg!(feature = "abort-plan") {
            "misbehave-abort"
        } else if cfg!(feature = "segv-plan") {
            "misbehave-segv"
        } else {
            option_env!("AZDOCK_TEST_PLUGIN_ID").unwrap_or("misbehave")
        };
        Self {
            manifest: Manifest {
                id: id.into(),
                version: "0.0.1".into(),
                summary: "A plugin for tests".into(),
                handlers: vec![],
                actions: vec![ActionSpec {
                    name: "poke".into(),
                    summary: "Do nothing".into(),
                    os: vec![],
                    args: vec![],
                    network: true,
                }],
            },
        }
    }
}

#[azdock_core::async_trait]
impl VmExtension for Misbehave {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn plan(&self, _request: &PlanRequest) -> Result<Plan, ExtensionError> {
        // What `catch_unwind` cannot catch: an abort (as from `panic = "abort"`) and a crash.
        if cfg!(feature = "abort-plan") {
            std::process::abort();
        }
        if cfg!(feature = "segv-plan") {
            // SAFETY: not sound on purpose: a write through a null pointer, to crash the process
            // that loaded this plugin. `black_box` keeps the compiler from seeing it.
            unsafe { (std::hint::black_box(0usize) as *mut u8).write_volatile(1) };
        }
        #[cfg(feature = "panic-plan")]
        panic!("the misbehave plugin panics on purpose");
        #[cfg(not(feature = "panic-plan"))]
        Ok(Plan::new(azdock_core::Operation::Inspect))
    }
}

fn instance() -> &'static Misbehave {
    static INSTANCE: std::sync::OnceLock<Misbehave> = std::sync::OnceLock::new();
    INSTANCE.get_or_init(Misbehave::default)
}

unsafe extern "C" fn manifest() -> *mut c_char {
    if cfg!(feature = "bad-json") {
        return std::ffi::CString::from(c"{\"id\": not json").into_raw();
    }
    export::manifest(instance)
}

unsafe extern "C" fn plan(request: *const c_char) -> *mut c_char {
    // SAFETY: the host passes a valid NUL-terminated request for the call's duration.
    unsafe { export::plan(instance, request) }
}

unsafe extern "C" fn free(text: *mut c_char) {
    // SAFETY: the host frees only strings this library returned, once.
    unsafe { export::free(text) }
}

static TABLE: PluginTable = PluginTable {
    abi_version: if cfg!(feature = "wrong-abi") { ABI_VERSION + 98 } else { ABI_VERSION },
    #[allow(clippy::cast_possible_truncation)]
    struct_size: if cfg!(feature = "small-table") { 8 } else { std::mem::size_of::<PluginTable>() as u32 },
    manifest: Some(manifest),
    // C may leave a function NULL; the host must refuse the table rather than call it.
    plan: if cfg!(feature = "missing-plan") { None } else { Some(plan) },
    free_string: Some(free),
};

/// The entry point the host looks for.
#[unsafe(no_mangle)]
pub extern "C" fn azdock_plugin_v1() -> *const PluginTable {
    &raw const TABLE
}
