//! VM extensions: install or update one, wait for it, and take the handler's verdict from its
//! instance view — ARM's operation can succeed while the handler reports an error, and a failed
//! operation's message does not always carry what the handler said.

use std::collections::HashMap;

use azdock_core::Secret;
use azdock_core::secret::Exposing;
use serde_json::Value;

use crate::api::COMPUTE;
use crate::body::Body;
use crate::error::{ArmErrorBody, AzureError};
use crate::models::{
    CatalogueEntry, ExtensionInstanceView, Page, VirtualMachine, VirtualMachineExtension, newest_version,
};
use crate::pipeline::Arm;
use crate::requests::{ExtensionBody, ExtensionPropertiesBody};

/// The error code ARM uses for a handler that failed.
pub const PROVISIONING_ERROR: &str = "VMExtensionProvisioningError";

/// Any extension by publisher and type, as `az vm extension set` puts it.
#[derive(Debug, Default)]
pub struct SetRequest<'a> {
    pub publisher: &'a str,
    pub kind: &'a str,
    /// The instance name; else the existing instance of this handler, else the type.
    pub name: Option<&'a str>,
    /// The handler version (trimmed to major.minor); else the latest in the VM's location.
    pub version: Option<&'a str>,
    pub settings: Option<&'a Value>,
    pub protected_settings: Option<&'a Secret<Value>>,
    /// A new `forceUpdateTag`, so the handler runs again with unchanged settings.
    pub force_update: Option<String>,
    pub auto_upgrade: bool,
    pub wait: bool,
}

/// `major.minor` of a handler version, as ARM's `typeHandlerVersion` takes it.
pub fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The latest handler version per location, looked up once for a whole fleet.
#[derive(Debug, Default)]
pub struct VersionCache(tokio::sync::Mutex<HashMap<String, String>>);

fn shape(url: &str, e: &serde_json::Error) -> AzureError {
    AzureError::Protocol { url: url.to_owned(), detail: e.to_string() }
}

/// What `az vm extension set` does on the VM at `vm_path`: reuse the handler's instance, resolve
/// the version, PUT, wait (unless not asked to), and return the extension as ARM sends it (or
/// the handler's failure).
pub async fn set(
    arm: &Arm,
    vm_path: &str,
    request: &SetRequest<'_>,
    versions: &VersionCache,
) -> Result<Value, AzureError> {
    let url = format!("{vm_path}?api-version={COMPUTE}");
    let vm: VirtualMachine = serde_json::from_value(arm.get(&url).await?).map_err(|e| shape(&url, &e))?;
    let location = vm.location.clone();
    // ARM lists a VM's extensions in its `resources`; older answers carry only their ids, and
    // then the extension list is read.
    let installed = if vm.resources.iter().all(|e| !e.properties.publisher.is_empty()) {
        vm.resources.clone()
    } else {
        let url = format!("{vm_path}/extensions?api-version={COMPUTE}");
        let page: Page<VirtualMachineExtension> =
            serde_json::from_value(arm.get(&url).await?).map_err(|e| shape(&url, &e))?;
        page.value
    };
    let existing = installed.iter().find(|e| e.is_handler(request.publisher, request.kind));
    let name = request
        .name
        .map(str::to_owned)
        .or_else(|| existing.map(|e| e.name.clone()))
        .unwrap_or_else(|| request.kind.to_owned());
    let version = match request.version {
        Some(v) => major_minor(v),
        None => {
            let mut cache = versions.0.lock().await;
            if let Some(v) = cache.get(&location) {
                v.clone()
            } else {
                let sub = crate::models::ResourceId::parse(vm_path).map(|r| r.subscription).unwrap_or_default();
                let url = format!(
                    "/subscriptions/{sub}/providers/Microsoft.Compute/locations/{location}/publishers/{}/artifacttypes/vmextension/types/{}/versions?api-version={COMPUTE}",
                    request.publisher, request.kind
                );
                let list: Vec<CatalogueEntry> =
                    serde_json::from_value(arm.get(&url).await?).map_err(|e| shape(&url, &e))?;
                let latest = newest_version(list.iter().map(|v| v.name.as_str())).ok_or_else(|| {
                    AzureError::Protocol { url: url.clone(), detail: "Azure lists no version of this extension".into() }
                })?;
                let v = major_minor(latest);
                cache.insert(location.clone(), v.clone());
                v
            }
        }
    };
    let body = ExtensionBody {
        location: &location,
        tags: None,
        properties: ExtensionPropertiesBody {
            publisher: request.publisher,
            kind: request.kind,
            type_handler_version: &version,
            auto_upgrade_minor_version: request.auto_upgrade,
            force_update_tag: request.force_update.as_deref(),
            settings: request.settings,
            protected_settings: request.protected_settings.map(Exposing),
        },
    }
    .body()?;
    let path = format!("{vm_path}/extensions/{name}");
    if !request.wait {
        return Ok(arm.send(reqwest::Method::PUT, &format!("{path}?api-version={COMPUTE}"), Some(&body)).await?.body);
    }
    Ok(put(arm, &path, COMPUTE, &body).await?.1)
}

/// PUTs the extension at `path` (without query), waits for the operation, and returns the
/// extension with its instance view (typed, and as ARM sent it). A handler failure is an
/// [`AzureError::Arm`] whose message includes the handler's own status message.
pub async fn put(
    arm: &Arm,
    path: &str,
    api_version: &str,
    body: &Body,
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

#[cfg(test)]
mod tests {
    #[test]
    fn handler_versions_are_trimmed_to_major_minor() {
        assert_eq!(super::major_minor("2.1.7"), "2.1");
        assert_eq!(super::major_minor("1.5"), "1.5");
        assert_eq!(super::major_minor("3"), "3");
    }
}
