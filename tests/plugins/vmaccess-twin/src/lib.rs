//! VMAccess as a plugin: the built-in extension's own code, exported through the plugin ABI
//! under the id `vmaccess-twin`, so a test can run the same action through both paths and
//! compare what reaches Azure.

use azdock_core::{ExtensionError, Manifest, Plan, PlanRequest, VmExtension};
use azdock_ext_vmaccess::VmAccessExtension;

/// The built-in, renamed.
#[derive(Debug)]
pub struct Twin {
    inner: VmAccessExtension,
    manifest: Manifest,
}

impl Default for Twin {
    fn default() -> Self {
        let inner = VmAccessExtension::default();
        let manifest = Manifest { id: "vmaccess-twin".into(), ..inner.manifest().clone() };
        Self { inner, manifest }
    }
}

#[azdock_core::async_trait]
impl VmExtension for Twin {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn plan(&self, request: &PlanRequest) -> Result<Plan, ExtensionError> {
        self.inner.plan(request).await
    }
}

azdock_core::export_plugin!(Twin);
