//! Exit codes: 0 ok, 1 runtime failure, 2 usage or validation — decided from the error's type.

use std::fmt;

/// A usage or validation error: the user can fix it by changing the command line (exit 2).
#[derive(Debug)]
pub(crate) struct Usage(String);

impl Usage {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Exit code for an error: 2 when any error in the chain is a usage or validation error.
pub(crate) fn exit_code(err: &anyhow::Error) -> u8 {
    let usage = err.chain().any(|e| {
        e.is::<Usage>()
            || e.downcast_ref::<azdock_certs::CertError>().is_some_and(azdock_certs::CertError::is_usage)
            || e.downcast_ref::<azdock_core::ExtensionError>().is_some_and(azdock_core::ExtensionError::is_usage)
            || e.downcast_ref::<azdock_host::Error>().is_some_and(azdock_host::Error::is_usage)
            || e.downcast_ref::<azdock_azure_sm::AzureError>().is_some_and(azdock_azure_sm::AzureError::is_usage)
            || e.downcast_ref::<azdock_azure_sm::credential::stored::StoreError>()
                .is_some_and(azdock_azure_sm::credential::stored::StoreError::is_usage)
            || e.downcast_ref::<azdock_azure_sm::clouds::CloudError>()
                .is_some_and(azdock_azure_sm::clouds::CloudError::is_usage)
            || e.downcast_ref::<azdock_emulator::service::ServiceError>()
                .is_some_and(azdock_emulator::service::ServiceError::is_usage)
    });
    if usage { 2 } else { 1 }
}
