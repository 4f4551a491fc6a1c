//! The extension registry: built-ins collected with `inventory`, plugins added by the host.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::extension::VmExtension;
use crate::manifest::ManifestError;

/// A built-in extension's entry in the link-time registry. Create it with
/// [`register_builtin!`](crate::register_builtin).
#[derive(Debug)]
pub struct BuiltinExtension {
    make: fn() -> Box<dyn VmExtension>,
}

impl BuiltinExtension {
    /// Used by `register_builtin!`.
    pub const fn new(make: fn() -> Box<dyn VmExtension>) -> Self {
        Self { make }
    }
}

inventory::collect!(BuiltinExtension);

/// Registers a built-in extension type (which must implement `Default` and [`VmExtension`]).
///
/// The binary must name the crate (`use azdock_ext_x as _;`) or the linker drops the
/// registration along with the crate.
#[macro_export]
macro_rules! register_builtin {
    ($ty:ty) => {
        $crate::inventory::submit! {
            $crate::registry::BuiltinExtension::new({
                fn make() -> ::std::boxed::Box<dyn $crate::VmExtension> {
                    ::std::boxed::Box::new(<$ty as ::std::default::Default>::default())
                }
                make
            })
        }
    };
}

/// Where an extension came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Source {
    Builtin,
    Plugin { path: PathBuf },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Builtin => f.write_str("built-in"),
            Source::Plugin { path } => write!(f, "plugin `{}`", path.display()),
        }
    }
}

/// A registry problem; each names the extension and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("extension id `{id}` is registered twice: by the {first} and by the {second}")]
    DuplicateId { id: String, first: Source, second: Source },
    #[error("the {source_} has an invalid manifest: {error}")]
    InvalidManifest { source_: Source, error: ManifestError },
}

/// One registered extension.
#[derive(Clone)]
pub struct Entry {
    pub source: Source,
    pub extension: Arc<dyn VmExtension>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry").field("id", &self.extension.manifest().id).field("source", &self.source).finish()
    }
}

/// The extensions this process knows, sorted by id.
#[derive(Debug, Default)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every built-in linked into this binary. Two built-ins with one id are a build mistake,
    /// reported with both names rather than letting one shadow the other.
    pub fn with_builtins() -> Result<Self, RegistryError> {
        let mut registry = Self::new();
        for builtin in inventory::iter::<BuiltinExtension> {
            registry.add(Source::Builtin, Arc::from((builtin.make)()))?;
        }
        Ok(registry)
    }

    /// Adds an extension after checking its manifest and that its id is free.
    pub fn add(&mut self, source: Source, extension: Arc<dyn VmExtension>) -> Result<(), RegistryError> {
        let manifest = extension.manifest();
        manifest.validate().map_err(|error| RegistryError::InvalidManifest { source_: source.clone(), error })?;
        match self.entries.binary_search_by(|e| e.extension.manifest().id.as_str().cmp(&manifest.id)) {
            Ok(existing) => Err(RegistryError::DuplicateId {
                id: manifest.id.clone(),
                first: self.entries[existing].source.clone(),
                second: source,
            }),
            Err(at) => {
                self.entries.insert(at, Entry { source, extension });
                Ok(())
            }
        }
    }

    /// The extension with this id.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.extension.manifest().id == id)
    }

    /// All extensions, sorted by id.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::extension::ExtensionError;
    use crate::manifest::{ActionSpec, Manifest};
    use crate::plan::{Operation, Plan, PlanRequest};

    struct Fake(Manifest);

    impl Fake {
        fn new(id: &str) -> Self {
            Self(Manifest {
                id: id.into(),
                version: "0.1.0".into(),
                summary: format!("{id} test extension"),
                handlers: vec![],
                actions: vec![ActionSpec {
                    name: "status".into(),
                    summary: "s".into(),
                    os: vec![],
                    args: vec![],
                    network: true,
                }],
            })
        }
    }

    #[async_trait]
    impl VmExtension for Fake {
        fn manifest(&self) -> &Manifest {
            &self.0
        }
        async fn plan(&self, _request: &PlanRequest) -> Result<Plan, ExtensionError> {
            Ok(Plan::new(Operation::Inspect))
        }
    }

    #[derive(Default)]
    struct LinkedIn;

    #[async_trait]
    impl VmExtension for LinkedIn {
        fn manifest(&self) -> &Manifest {
            static MANIFEST: std::sync::OnceLock<Manifest> = std::sync::OnceLock::new();
            MANIFEST.get_or_init(|| Fake::new("linked-in").0)
        }
        async fn plan(&self, _request: &PlanRequest) -> Result<Plan, ExtensionError> {
            Ok(Plan::new(Operation::Inspect))
        }
    }

    crate::register_builtin!(LinkedIn);

    #[test]
    fn builtins_registered_with_the_macro_are_found() {
        let registry = Registry::with_builtins().unwrap();
        let entry = registry.get("linked-in").expect("registered through inventory");
        assert_eq!(entry.source, Source::Builtin);
    }

    #[test]
    fn entries_are_sorted_and_duplicates_name_both_sources() {
        let mut registry = Registry::new();
        registry.add(Source::Builtin, Arc::new(Fake::new("zeta"))).unwrap();
        registry.add(Source::Builtin, Arc::new(Fake::new("alpha"))).unwrap();
        let ids: Vec<_> = registry.entries().iter().map(|e| e.extension.manifest().id.clone()).collect();
        assert_eq!(ids, ["alpha", "zeta"]);

        let err =
            registry.add(Source::Plugin { path: "/p/libzeta.so".into() }, Arc::new(Fake::new("zeta"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "extension id `zeta` is registered twice: by the built-in and by the plugin `/p/libzeta.so`"
        );
    }

    #[test]
    fn invalid_manifests_are_refused_with_their_source() {
        let mut registry = Registry::new();
        let err = registry.add(Source::Plugin { path: "/p/bad.so".into() }, Arc::new(Fake::new("Bad"))).unwrap_err();
        assert!(
            err.to_string().starts_with("the plugin `/p/bad.so` has an invalid manifest: invalid extension id `Bad`"),
            "{err}"
        );
        assert!(registry.entries().is_empty());
    }
}
