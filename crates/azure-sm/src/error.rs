//! Errors of the Azure client; ARM's error envelope is kept whole.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// ARM's `error` object: code, message, target, details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ArmErrorBody>,
}

/// A failure talking to Azure.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// ARM answered with an error (HTTP status, or a failed long-running operation).
    #[error("({}) {}", .error.code, .error.message)]
    Arm { status: u16, error: ArmErrorBody },
    /// Entra refused to issue a token.
    #[error("sign-in failed: {error}: {description}")]
    Auth { status: u16, error: String, description: String },
    /// A credential that cannot work on this machine (no `az`, no managed identity); a chain
    /// moves on to the next one.
    #[error("{credential} is not available: {detail}")]
    Unavailable { credential: &'static str, detail: String },
    /// The request could not be sent or its answer not read.
    #[error("cannot reach {url}: {detail}")]
    Transport { url: String, detail: String },
    /// Retries ran out; the last failure says why.
    #[error("gave up after {attempts} attempts in {:.1} s: {last}", .elapsed.as_secs_f64())]
    Exhausted { attempts: u32, elapsed: Duration, last: Box<AzureError> },
    /// The answer was not what the protocol promises.
    #[error("unexpected answer from {url}: {detail}")]
    Protocol { url: String, detail: String },
    /// A long-running operation did not finish in time.
    #[error("the operation did not finish within {} s; it may still complete in Azure", .0.as_secs())]
    Timeout(Duration),
    /// The sign-in settings the user gave are incomplete (an `AZURE_*` secret without the
    /// tenant or client it is for): the message names what is missing.
    #[error("{0}")]
    Incomplete(String),
}

impl AzureError {
    /// ARM's error code, when ARM gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AzureError::Arm { error, .. } => Some(&error.code),
            AzureError::Exhausted { last, .. } => last.code(),
            _ => None,
        }
    }

    /// Whether the user fixes this by changing what they gave (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, AzureError::Incomplete(_))
    }

    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Arm { status, .. } | AzureError::Auth { status, .. } => Some(*status),
            AzureError::Exhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}
