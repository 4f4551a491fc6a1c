//! The host's errors: what failed, with the Azure, extension or certificate error inside, and
//! whether the user can fix it by changing the command line (exit code 2) or not (1).

use azdock_azure_sm::AzureError;
use azdock_certs::CertError;
use azdock_core::ExtensionError;

/// A failure of the extension host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Azure refused or failed a request; its code and message are kept.
    #[error(transparent)]
    Azure(#[from] AzureError),
    /// An extension refused to plan, or broke the host's contract.
    #[error(transparent)]
    Extension(#[from] ExtensionError),
    /// The certificate directory could not be used.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// A bad value the user gave; the message says what is accepted.
    #[error("{0}")]
    Usage(String),
    /// Azure answered with a shape the host cannot read.
    #[error("unexpected {what} from Azure: {source}")]
    Shape { what: &'static str, source: serde_json::Error },
    /// A local file could not be read or written.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io { action: &'static str, path: std::path::PathBuf, source: std::io::Error },
    /// A local file operation failed; [`Error::io`] names the file.
    #[error(transparent)]
    File(#[from] std::io::Error),
    /// What went wrong, in words (the diagnosis of an unreachable daemon, say).
    #[error("{0}")]
    Failed(String),
    /// A failure with what the host was doing when it happened.
    #[error("{message}")]
    Context {
        message: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Whether the user can fix this by changing the command line (exit code 2).
    pub fn is_usage(&self) -> bool {
        match self {
            Self::Usage(_) => true,
            Self::Extension(e) => e.is_usage(),
            Self::Cert(e) => e.is_usage(),
            Self::Azure(e) => e.is_usage(),
            Self::Context { source, .. } => source.is_usage(),
            Self::Shape { .. } | Self::Io { .. } | Self::File(_) | Self::Failed(_) => false,
        }
    }

    /// ARM's error code, when Azure gave one.
    pub fn azure_code(&self) -> Option<&str> {
        match self {
            Self::Azure(e) => e.code(),
            Self::Context { source, .. } => source.azure_code(),
            _ => None,
        }
    }

    /// This error with what the host was doing.
    #[must_use]
    pub fn context(self, message: impl Into<String>) -> Self {
        Self::Context { message: message.into(), source: Box::new(self) }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io { action, path, source }
    }
}

/// The host's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads an ARM answer into a model.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(what: &'static str, body: serde_json::Value) -> Result<T> {
    serde_json::from_value(body).map_err(|source| Error::Shape { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_azure_codes_are_found_through_context() {
        let e = Error::Usage("bad".into()).context("while planning");
        assert!(e.is_usage());
        assert_eq!(e.to_string(), "while planning");
        let azure = AzureError::Arm {
            status: 409,
            error: azdock_azure_sm::ArmErrorBody {
                code: "Conflict".into(),
                message: "busy".into(),
                target: None,
                details: vec![],
            },
        };
        let e = Error::from(azure).context("cannot create NIC `n`");
        assert!(!e.is_usage());
        assert_eq!(e.azure_code(), Some("Conflict"));
        assert!(Error::Extension(ExtensionError::UnknownAction("x".into())).is_usage());
        assert!(!Error::Extension(ExtensionError::Failed("x".into())).is_usage());
        assert!(!Error::Failed("x".into()).is_usage());
        assert_eq!(Error::Failed("x".into()).azure_code(), None);
    }
}
