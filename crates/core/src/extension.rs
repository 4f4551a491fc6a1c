//! The `VmExtension` trait every built-in and plugin implements, and its error type.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::manifest::{Manifest, OsType};
use crate::plan::{Plan, PlanRequest};

/// Why an extension could not produce a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
// Adjacent tagging carries `Failed(String)` too: `{"kind": "failed", "detail": "…"}`.
#[serde(rename_all = "camelCase", tag = "kind", content = "detail")]
pub enum ExtensionError {
    /// A bad argument value; the message says what is accepted.
    #[error("invalid value for `--{arg}`: {message}")]
    InvalidArgument { arg: String, message: String },
    /// The action does not apply to this VM (wrong OS, missing prerequisite).
    #[error("`{action}` is not supported on this VM: {reason}")]
    Unsupported { action: String, reason: String },
    #[error("unknown action `{0}`")]
    UnknownAction(String),
    /// Anything else, such as local files the extension needed.
    #[error("{0}")]
    Failed(String),
}

impl ExtensionError {
    /// Whether the user can fix this by changing the command line (exit code 2).
    pub fn is_usage(&self) -> bool {
        !matches!(self, ExtensionError::Failed(_))
    }

    /// The standard error for an action on a VM of the wrong OS type.
    pub fn wrong_os(action: &str, os: OsType) -> Self {
        ExtensionError::Unsupported { action: action.into(), reason: format!("it is not available for {os} VMs") }
    }
}

/// A VM extension: a manifest plus a pure function from (action, arguments, facts) to a plan.
///
/// Extensions never talk to Azure; the host gathers the facts, executes the plan and reports the
/// result. Built-ins may do local work in `plan` (ext-docker mints certificates), which is why it
/// is async; plugins across the C ABI are synchronous and wrapped by the host.
#[async_trait]
pub trait VmExtension: Send + Sync + 'static {
    /// The manifest; the same value on every call.
    fn manifest(&self) -> &Manifest;

    /// Plans one action. The host has already checked that the action exists, that it applies
    /// to the VM's OS, and that required arguments are present.
    async fn plan(&self, request: &PlanRequest) -> Result<Plan, ExtensionError>;
}
