//! The plugin ABI: how an extension compiled as a separate `cdylib` talks to the azdock binary.
//!
//! Rust has no stable ABI, so the boundary is C. A plugin exports one symbol, [`SYMBOL`]
//! (`azdock_plugin_v1`: the name carries the ABI major version), a function returning a pointer
//! to a static [`PluginTable`]. The table may only grow at its end; `struct_size` tells the host
//! how much of it the plugin has. Everything else crosses as UTF-8 JSON in NUL-terminated strings
//! the plugin allocates and frees (`free_string`); the host never frees them itself.
//!
//! # JSON schema, version 1
//!
//! - `manifest()` returns a [`Manifest`](crate::Manifest) as JSON (`id`, `version`, `summary`, `handlers`,
//!   `actions`), exactly as `azdock ext list` shows it.
//! - `plan(request)` takes a [`PlanRequest`] (`action`, `args`, `facts`, `runId`; secret
//!   arguments as plain strings, which only the host and the plugin see) and returns
//!   `{"schema": 1, "plan": Plan}` or `{"schema": 1, "error": ExtensionError}`.
//!
//! The schema does not depend on the transport: an out-of-process plugin could carry the same
//! JSON over a pipe. The function pointers are `Option`s: C may leave one NULL, and the host
//! refuses such a table. Write a plugin by implementing [`VmExtension`](crate::VmExtension) for a type
//! with `Default` and calling [`export_plugin!`](crate::export_plugin) once; a plugin never talks
//! to Azure, the host carries out its plan.

// The C boundary needs `unsafe`; it is confined to this module and the macro's shims, and every
// block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char};

use serde::{Deserialize, Serialize};

use crate::extension::{ExtensionError, VmExtension};
use crate::plan::{Plan, PlanRequest};

/// The ABI's major version. A host loads only plugins of its own major version.
pub const ABI_VERSION: u32 = 1;
/// The exported symbol, NUL-terminated for `dlsym`.
pub const SYMBOL: &[u8] = b"azdock_plugin_v1\0";
/// The version of the JSON carried over the ABI.
pub const SCHEMA_VERSION: u32 = 1;

/// What a plugin's exported function returns a pointer to (a `static`, never freed).
#[repr(C)]
#[derive(Debug)]
pub struct PluginTable {
    /// [`ABI_VERSION`] of the `azdock-core` the plugin was built with.
    pub abi_version: u32,
    /// `size_of::<PluginTable>()` as the plugin knows it; the table only grows at its end.
    pub struct_size: u32,
    /// The manifest as JSON; free with `free_string`.
    ///
    /// Function pointers may be NULL in C, so each is an `Option` (the same layout as a nullable
    /// pointer): the host refuses a table with a missing one instead of calling address zero.
    pub manifest: Option<ManifestFn>,
    /// A plan response for a JSON [`PlanRequest`]; free with `free_string`.
    pub plan: Option<PlanFn>,
    /// Frees a string this plugin returned.
    pub free_string: Option<FreeFn>,
}

/// `manifest()`: the manifest as JSON.
pub type ManifestFn = unsafe extern "C" fn() -> *mut c_char;
/// `plan(request)`: a plan response for a JSON [`PlanRequest`].
pub type PlanFn = unsafe extern "C" fn(request: *const c_char) -> *mut c_char;
/// `free_string(text)`: frees a string the plugin returned.
pub type FreeFn = unsafe extern "C" fn(text: *mut c_char);

/// A table whose functions are all present, as the host checked it: what the host calls.
#[derive(Debug, Clone, Copy)]
pub struct Functions {
    pub manifest: ManifestFn,
    pub plan: PlanFn,
    pub free_string: FreeFn,
}

impl PluginTable {
    /// The table's functions, or the name of the first one that is missing (NULL).
    pub fn functions(&self) -> Result<Functions, &'static str> {
        Ok(Functions {
            manifest: self.manifest.ok_or("manifest")?,
            plan: self.plan.ok_or("plan")?,
            free_string: self.free_string.ok_or("free_string")?,
        })
    }
}

/// The answer to `plan`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanResponse {
    pub schema: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExtensionError>,
}

/// The plugin side, used by [`export_plugin!`](crate::export_plugin): each function catches
/// panics, so none crosses the C boundary.
///
/// `catch_unwind` catches only unwinding panics: a plugin built with `panic = "abort"` (or one
/// that segfaults) ends the process that called it, whatever this module does. The host must
/// contain such plugins itself (a separate process), not rely on this.
#[doc(hidden)]
pub mod export {
    use std::future::Future;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::pin::pin;
    use std::task::{Context, Poll, Wake, Waker};

    use super::{CStr, CString, ExtensionError, PlanRequest, PlanResponse, SCHEMA_VERSION, VmExtension, c_char};
    use crate::Secret;

    /// A string for the host; interior NULs (which JSON never has) become an error string.
    fn to_c(text: &str) -> *mut c_char {
        to_c_bytes(text.as_bytes())
    }

    /// JSON bytes for the host, copied once into an allocation of exactly their size (so making
    /// the C string moves nothing and leaves no copy behind); freed and wiped by [`free`].
    fn to_c_bytes(bytes: &[u8]) -> *mut c_char {
        let mut exact = Vec::with_capacity(bytes.len() + 1);
        exact.extend_from_slice(bytes);
        CString::new(exact)
            .unwrap_or_else(|_| {
                CString::from(c"{\"schema\":1,\"error\":{\"kind\":\"failed\",\"message\":\"NUL in output\"}}")
            })
            .into_raw()
    }

    fn failure(message: String) -> String {
        let response =
            PlanResponse { schema: SCHEMA_VERSION, plan: None, error: Some(ExtensionError::Failed(message)) };
        serde_json::to_string(&response).unwrap_or_default()
    }

    fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    }

    struct Thread(std::thread::Thread);

    impl Wake for Thread {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Runs a plan's future to completion on this thread: plans compute, they do not wait on I/O
    /// the host's runtime would drive.
    pub fn block_on<F: Future>(future: F) -> F::Output {
        let waker = Waker::from(std::sync::Arc::new(Thread(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    /// `manifest()`: the extension's manifest as JSON, or `{"error": …}` when it panicked.
    pub fn manifest<E: VmExtension>(instance: fn() -> &'static E) -> *mut c_char {
        let out = catch_unwind(AssertUnwindSafe(|| serde_json::to_string(instance().manifest()).unwrap_or_default()));
        to_c(
            &out.unwrap_or_else(|p| failure(format!("the plugin panicked building its manifest: {}", panic_text(&*p)))),
        )
    }

    /// `plan(request)`.
    ///
    /// # Safety
    /// `request` is a NUL-terminated string the host owns for the duration of the call.
    pub unsafe fn plan<E: VmExtension>(instance: fn() -> &'static E, request: *const c_char) -> *mut c_char {
        if request.is_null() {
            return to_c(&failure("the host passed no request".into()));
        }
        // SAFETY: the host passes a valid NUL-terminated string that outlives this call (the
        // function's contract above).
        let text = Secret::new(unsafe { CStr::from_ptr(request) }.to_string_lossy().into_owned());
        let out = catch_unwind(AssertUnwindSafe(|| {
            let response = match serde_json::from_str::<PlanRequest>(text.expose()) {
                Err(e) => PlanResponse {
                    schema: SCHEMA_VERSION,
                    plan: None,
                    error: Some(ExtensionError::Failed(format!("the plugin cannot read the request: {e}"))),
                },
                Ok(request) => match block_on(instance().plan(&request)) {
                    Ok(plan) => PlanResponse { schema: SCHEMA_VERSION, plan: Some(plan), error: None },
                    Err(error) => PlanResponse { schema: SCHEMA_VERSION, plan: None, error: Some(error) },
                },
            };
            // The plan carries protected settings: written into a wiped buffer, not a String.
            crate::secret::to_json(&response).ok()
        }));
        match out {
            Ok(Some(json)) => to_c_bytes(json.as_bytes()),
            Ok(None) => to_c(&failure("the plugin's plan could not be written as JSON".into())),
            Err(p) => to_c(&failure(format!("the plugin panicked while planning: {}", panic_text(&*p)))),
        }
    }

    /// `free_string(text)`.
    ///
    /// # Safety
    /// `text` was returned by `manifest` or `plan` of this plugin and is freed once.
    pub unsafe fn free(text: *mut c_char) {
        if !text.is_null() {
            // SAFETY: `text` came from `CString::into_raw` in this library (the contract above),
            // so retaking ownership here frees it with the allocator that made it.
            let owned = unsafe { CString::from_raw(text) };
            // A plan's text carries protected settings: wiped before it is freed.
            zeroize::Zeroize::zeroize(&mut owned.into_bytes_with_nul());
        }
    }
}

/// Exports a [`VmExtension`] (a type with `Default`) as an azdock plugin: the C table, the
/// shims, panic catching. Use it once, in a `cdylib` crate that depends on `azdock-core`.
///
/// ```ignore
/// #[derive(Default)]
/// pub struct Hello { /* … */ }
/// impl azdock_core::VmExtension for Hello { /* manifest, plan */ }
/// azdock_core::export_plugin!(Hello);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        #[doc(hidden)]
        fn __azdock_plugin_instance() -> &'static $ty {
            static INSTANCE: ::std::sync::OnceLock<$ty> = ::std::sync::OnceLock::new();
            INSTANCE.get_or_init(<$ty as ::std::default::Default>::default)
        }

        #[doc(hidden)]
        #[allow(unsafe_code)]
        unsafe extern "C" fn __azdock_plugin_manifest() -> *mut ::std::ffi::c_char {
            $crate::plugin::export::manifest(__azdock_plugin_instance)
        }

        #[doc(hidden)]
        #[allow(unsafe_code)]
        unsafe extern "C" fn __azdock_plugin_plan(request: *const ::std::ffi::c_char) -> *mut ::std::ffi::c_char {
            // SAFETY: the host calls this through the table with a valid NUL-terminated request
            // that outlives the call, which is `export::plan`'s contract.
            unsafe { $crate::plugin::export::plan(__azdock_plugin_instance, request) }
        }

        #[doc(hidden)]
        #[allow(unsafe_code)]
        unsafe extern "C" fn __azdock_plugin_free(text: *mut ::std::ffi::c_char) {
            // SAFETY: the host frees through the table only strings this plugin returned, once.
            unsafe { $crate::plugin::export::free(text) }
        }

        #[doc(hidden)]
        static __AZDOCK_PLUGIN_TABLE: $crate::plugin::PluginTable = $crate::plugin::PluginTable {
            abi_version: $crate::plugin::ABI_VERSION,
            #[allow(clippy::cast_possible_truncation)]
            struct_size: ::std::mem::size_of::<$crate::plugin::PluginTable>() as u32,
            manifest: ::std::option::Option::Some(__azdock_plugin_manifest),
            plan: ::std::option::Option::Some(__azdock_plugin_plan),
            free_string: ::std::option::Option::Some(__azdock_plugin_free),
        };

        /// The plugin's entry point, found by name: `azdock_plugin_v1`.
        #[allow(unsafe_code, unreachable_pub)]
        #[unsafe(no_mangle)]
        pub extern "C" fn azdock_plugin_v1() -> *const $crate::plugin::PluginTable {
            &raw const __AZDOCK_PLUGIN_TABLE
        }
    };
}

/// Reads a string a plugin returned and frees it through the plugin's own `free_string`. A plan
/// carries protected settings, so the copy is a [`Secret`](crate::Secret), wiped when dropped.
///
/// # Safety
/// `text` must have been returned by the `manifest` or `plan` of `functions`' plugin and not
/// freed.
pub unsafe fn take_string(functions: &Functions, text: *mut c_char) -> Option<crate::Secret<String>> {
    if text.is_null() {
        return None;
    }
    // SAFETY: the plugin returned a NUL-terminated string it owns until `free_string` (the
    // function's contract); it is copied before being handed back.
    let copy = crate::Secret::new(unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned());
    // SAFETY: freed once, by the library that allocated it.
    unsafe { (functions.free_string)(text) };
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ActionSpec, Manifest};
    use crate::plan::Operation;

    #[derive(Debug)]
    struct Probe(Manifest);

    impl Default for Probe {
        fn default() -> Self {
            Self(Manifest {
                id: "probe".into(),
                version: "1.0.0".into(),
                summary: "A test plugin".into(),
                handlers: vec![],
                actions: vec![ActionSpec {
                    name: "go".into(),
                    summary: "Go".into(),
                    os: vec![],
                    args: vec![],
                    network: true,
                }],
            })
        }
    }

    #[crate::async_trait]
    impl VmExtension for Probe {
        fn manifest(&self) -> &Manifest {
            &self.0
        }

        async fn plan(&self, request: &PlanRequest) -> Result<Plan, ExtensionError> {
            match request.action.as_str() {
                "go" => Ok(Plan::new(Operation::Inspect)),
                "boom" => panic!("boom"),
                other => Err(ExtensionError::UnknownAction(other.into())),
            }
        }
    }

    crate::export_plugin!(Probe);

    fn call_plan(table: &Functions, action: &str) -> PlanResponse {
        let request = serde_json::json!({"action": action, "args": {}, "runId": "r", "facts": {
            "name": "vm", "resourceGroup": "g", "subscriptionId": "s", "resourceId": "/x", "location": "l",
            "osType": "Linux", "powerState": "running", "cloud": "local"}});
        let request = CString::new(request.to_string()).unwrap();
        // SAFETY: the table is this test binary's own; the request outlives the call and the
        // answer is freed once by `take_string`.
        let text = unsafe { take_string(table, (table.plan)(request.as_ptr())) }.unwrap();
        serde_json::from_str(text.expose()).unwrap()
    }

    #[test]
    fn a_table_with_a_null_function_is_refused_by_name() {
        // SAFETY: the exported entry point returns a pointer to a static table.
        let exported = unsafe { &*azdock_plugin_v1() };
        let missing = |table: PluginTable| table.functions().map(|_| ()).unwrap_err();
        let copy = || PluginTable {
            manifest: exported.manifest,
            plan: exported.plan,
            free_string: exported.free_string,
            ..*exported
        };
        assert_eq!(missing(PluginTable { manifest: None, ..copy() }), "manifest");
        assert_eq!(missing(PluginTable { plan: None, ..copy() }), "plan");
        assert_eq!(missing(PluginTable { free_string: None, ..copy() }), "free_string");
        assert!(copy().functions().is_ok());
    }

    #[test]
    fn the_exported_table_answers_in_json_and_catches_panics() {
        // SAFETY: the exported entry point returns a pointer to a static table.
        let exported = unsafe { &*azdock_plugin_v1() };
        assert_eq!(exported.abi_version, ABI_VERSION);
        assert_eq!(exported.struct_size as usize, std::mem::size_of::<PluginTable>());
        let table = &exported.functions().unwrap();
        // SAFETY: the manifest string is freed once by `take_string`.
        let manifest: Manifest =
            serde_json::from_str(unsafe { take_string(table, (table.manifest)()) }.unwrap().expose()).unwrap();
        assert_eq!(manifest.id, "probe");
        assert_eq!(call_plan(table, "go").plan, Some(Plan::new(Operation::Inspect)));
        assert_eq!(call_plan(table, "nope").error, Some(ExtensionError::UnknownAction("nope".into())));
        let panicked = call_plan(table, "boom").error.unwrap().to_string();
        assert!(panicked.contains("panicked while planning: boom"), "{panicked}");
    }
}
