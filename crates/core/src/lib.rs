//! azdock-core: the contracts between azdock's host and its extensions.
//!
//! An extension is data plus a pure function: a [`Manifest`] (its id, the Azure handlers it
//! drives per OS type, its actions and their arguments) and [`VmExtension::plan`], which turns an
//! action, its arguments and the [`VmFacts`] about a VM into a [`Plan`] the host executes. This
//! crate knows nothing of HTTP, Azure or an async runtime; it is the only crate a third-party
//! extension depends on.

pub mod extension;
pub mod facts;
pub mod manifest;
pub mod plan;
pub mod plugin;
pub mod registry;
pub mod secret;

pub use extension::{ExtensionError, VmExtension};
pub use facts::{InstalledExtension, PowerState, Status, VmFacts, vm_identity};
pub use manifest::{ActionSpec, ArgKind, ArgSpec, HandlerSpec, Manifest, ManifestError, OsType};
pub use plan::{
    ArgValue, Args, ExtensionInstance, HOST_KEY_PREFIX, Operation, Plan, PlanRequest, Probe, Protocol, Step, Transport,
};
pub use registry::{Registry, RegistryError, Source};
pub use secret::{Secret, Wipe};

// Re-exported so that `register_builtin!` works without the caller depending on inventory.
#[doc(hidden)]
pub use async_trait::async_trait;
#[doc(hidden)]
pub use inventory;
/// serde_json, for plugins that depend on azdock-core alone.
pub use serde_json;
