//! VM extensions: install or update one, wait for it, and take the handler's verdict from its
//! instance view — ARM's operation can succeed while the handler reports an error, and a failed
//! operation's message does not always carry what the handler said.

use serde_json::Value;

use crate::error::{ArmErrorBody, AzureError};
use crate::models::{ExtensionInstanceView, VirtualMachineExtension};
use crate::pipeline::Arm;

/// The error code ARM uses for a handler that failed.
pub const PROVISIONING_ERROR: &str = "VMExtensionProvisioningError";

/// PUTs the extension at `path` (without query), waits for the operation, and returns the
/// extension with its instance view (typed, and as ARM sent it). A handler failure is an
/// [`AzureError::Arm`] whose message includes the handler's own status message.
pub async fn put(
    arm: &Arm,
    path: &str,
    api_version: &str,
    body: &Value,
) -> Result<(VirtualMachineExtension, Value), AzureError> {
    let put = format!("{path}?api-version={api_version}");
    let outcome = match arm.send(reqwest::Method::PUT, &put, Some(body)).await {
        Ok(resp) => arm.follow(&resp).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let view = || async {
        let raw = arm.get(&format!("{put}&$expand=instanceView")).await?;
        let ext = serde_json::from_value::<VirtualMachineExtension>(raw.clone())
            .map_err(|e| AzureError::Protocol { url: path.to_owned(), detail: e.to_string() })?;
        Ok::<_, AzureError>((ext, raw))
    };
    match outcome {
        Ok(()) => {
            let (ext, raw) = view().await?;
            if let Some(why) = ext.properties.instance_view.as_ref().and_then(ExtensionInstanceView::failure) {
                return Err(failed(&ext.name, &why));
            }
            Ok((ext, raw))
        }
        Err(AzureError::Arm { status, mut error }) => {
            // Add the handler's words when ARM's message lacks them; a failure to read them
            // must not hide the original error.
            if let Ok((ext, _)) = view().await
                && let Some(why) = ext.properties.instance_view.as_ref().and_then(ExtensionInstanceView::failure)
                && !error.message.contains(why.trim())
            {
                error.message = format!("{} The handler reported: {}", error.message, why.trim());
            }
            Err(AzureError::Arm { status, error })
        }
        Err(other) => Err(other),
    }
}

fn failed(name: &str, why: &str) -> AzureError {
    AzureError::Arm {
        status: 200,
        error: ArmErrorBody {
            code: PROVISIONING_ERROR.into(),
            message: format!(
                "VM has reported a failure when processing extension '{name}'. Error message: \"{}\"",
                why.trim()
            ),
            target: None,
            details: Vec::new(),
        },
    }
}
