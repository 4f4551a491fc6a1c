//! The plugin host: extension crates built as shared libraries by anyone, found in the plugin
//! directory (managed by `add` and `remove`, which record each file's origin and SHA-256) and in
//! a search path (`AZDOCK_PLUGIN_PATH`), checked, and registered beside the built-ins. A plugin
//! that cannot be used is reported by file name and reason and skipped; everything else keeps
//! working. Plugins are loaded and called in a helper process ([`process`]), never in azdock's
//! own, so one that aborts or crashes cannot take azdock down.

pub mod load;
pub mod process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use azdock_core::{Manifest, Registry, Source, VmExtension};
use serde::{Deserialize, Serialize};

pub use process::{ARG, PluginExtension, load, serve};

use crate::error::{Error, Result};

/// What `add` recorded for one file of the plugin directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub sha256: String,
    /// Where it was added from.
    pub source: PathBuf,
}

/// The plugin directory and the extra search path.
#[derive(Debug, Clone)]
pub struct PluginDir {
    dir: PathBuf,
    search: Vec<PathBuf>,
}

/// The file a plugin with this id has in the plugin directory.
pub fn file_name(id: &str) -> String {
    format!("lib{}.so", id.replace('-', "_"))
}

/// The SHA-256 of some bytes, hex.
pub fn sha256_of(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The SHA-256 of a file, hex.
pub fn sha256(path: &Path) -> Result<String> {
    let data = std::fs::read(path).map_err(Error::io("read", path))?;
    Ok(sha256_of(&data))
}

fn is_library(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "so")
}

/// What `add` installed.
#[derive(Debug, Clone)]
pub struct Added {
    pub manifest: Manifest,
    pub path: PathBuf,
    pub sha256: String,
}

impl PluginDir {
    /// The plugin directory `dir`, and `search` (files, or directories of `.so` files, as
    /// `AZDOCK_PLUGIN_PATH` gives them, `:`-separated).
    pub fn new(dir: PathBuf, search: Option<&std::ffi::OsStr>) -> Self {
        let search = search
            .map(|paths| std::env::split_paths(paths).filter(|p| !p.as_os_str().is_empty()).collect())
            .unwrap_or_default();
        Self { dir, search }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn records_path(&self) -> PathBuf {
        self.dir.join("plugins.json")
    }

    /// The recorded plugins, by file name.
    pub fn records(&self) -> Result<BTreeMap<String, Record>> {
        let path = self.records_path();
        match std::fs::read(&path) {
            Ok(data) => parse_records(&path, &data),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("read", &path)(e)),
        }
    }

    /// Changes the records under their lock (two `add`s at once both land).
    fn change_records(&self, change: impl FnOnce(&mut BTreeMap<String, Record>)) -> Result<()> {
        let path = self.records_path();
        azdock_files::update(&path, 0o600, |old| {
            let mut records = match old {
                Some(data) => parse_records(&path, &data)?,
                None => BTreeMap::new(),
            };
            change(&mut records);
            serde_json::to_vec_pretty(&records).map(Some).map_err(|e| Error::Failed(e.to_string()))
        })
    }

    /// Every plugin file: the plugin directory's, then the search path's.
    pub fn discover(&self) -> Vec<PathBuf> {
        let scan = |d: &Path| -> Vec<PathBuf> {
            let mut found: Vec<PathBuf> = std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| is_library(p))
                .collect();
            found.sort();
            found
        };
        let mut out = scan(&self.dir);
        for p in &self.search {
            if p.is_dir() {
                out.extend(scan(p));
            } else {
                out.push(p.clone());
            }
        }
        out
    }

    /// The built-ins and every plugin that loads; each one that does not is passed to `refused`
    /// with its file and reason.
    pub fn registry(&self, mut refused: impl FnMut(&Path, &str)) -> Result<Registry> {
        let mut registry = Registry::with_builtins().map_err(|e| Error::Failed(e.to_string()))?;
        for path in self.discover() {
            match load(&path, false) {
                Ok(plugin) => {
                    if let Err(e) = registry.add(Source::Plugin { path: path.clone() }, Arc::new(plugin)) {
                        refused(&path, &e.to_string());
                    }
                }
                Err(why) => refused(&path, &why),
            }
        }
        Ok(registry)
    }

    /// Adds the plugin at `source` (an absolute path): checked and loaded from where it is
    /// before anything is copied or recorded; then the very bytes checked are installed (or, with
    /// `link`, a link to the file) as `lib<id>.so` with their origin and SHA-256. An id that is
    /// taken is refused, except by a plugin of this directory under the same id rebuilt from the
    /// same file, or any file with `force`.
    pub fn add(&self, source: &Path, link: bool, force: bool) -> Result<Added> {
        let refuse = |why: String| Error::Usage(format!("cannot add `{}`: {why}", source.display()));
        let (_, read) = load::open_checked(self, source, true).map_err(refuse)?;
        let (bytes, sha) = read.unwrap_or_default();
        let plugin = load(source, true).map_err(refuse)?;
        // What the plugin process checked and loaded is what gets installed.
        if plugin.sha256.as_ref() != Some(&sha) {
            return Err(refuse("it changed while it was being added; add it again".into()));
        }
        let manifest = plugin.manifest().clone();
        let file = file_name(&manifest.id);
        let target = self.dir.join(&file);
        let records = self.records()?;
        let existing = self.registry(|_, _| {})?;
        if let Some(other) = existing.get(&manifest.id) {
            let ours = matches!(&other.source, Source::Plugin { path } if *path == target);
            let same_origin = records.get(&file).is_some_and(|r| r.source == source);
            if !ours || !(same_origin || force) {
                let hint = if ours { "; pass --force to replace it" } else { "" };
                return Err(refuse(format!("extension id `{}` is taken by {}{hint}", manifest.id, other.source)));
            }
        }
        if link {
            let _ = std::fs::remove_file(&target);
            std::fs::create_dir_all(&self.dir).map_err(Error::io("create", &self.dir))?;
            std::os::unix::fs::symlink(source, &target).map_err(Error::io("link", &target))?;
        } else {
            // The bytes that were checked are the bytes installed, whole or not at all.
            azdock_files::write_atomic(&target, &bytes, 0o755).map_err(Error::io("write", &target))?;
        }
        let sha256 = if link { sha256(&target)? } else { sha };
        let record = Record { sha256: sha256.clone(), source: source.to_owned() };
        self.change_records(|records| {
            records.insert(file, record);
        })?;
        Ok(Added { manifest, path: target, sha256 })
    }

    /// Removes the plugin `id` from the plugin directory and its record.
    pub fn remove(&self, id: &str) -> Result<()> {
        let file = file_name(id);
        let known = self.records()?.contains_key(&file);
        let path = self.dir.join(&file);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && known => {}
            Err(_) if !known => {
                return Err(Error::Usage(format!(
                    "no plugin `{id}` in `{}` (see `azdock ext plugin list`)",
                    self.dir.display()
                )));
            }
            Err(e) => return Err(Error::io("remove", &path)(e)),
        }
        self.change_records(|records| {
            records.remove(&file);
        })
    }
}

fn parse_records(path: &Path, data: &[u8]) -> Result<BTreeMap<String, Record>> {
    serde_json::from_slice(data).map_err(|e| Error::Failed(format!("`{}` is damaged: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_hashes_are_named_as_the_directory_keeps_them() {
        assert_eq!(file_name("vmaccess-twin"), "libvmaccess_twin.so");
        assert_eq!(sha256_of(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(sha256(&f).unwrap(), sha256_of(b"abc"));
        assert!(sha256(&dir.path().join("missing")).unwrap_err().to_string().contains("cannot read"));
    }

    #[test]
    fn discovery_takes_the_directory_then_the_search_path_libraries_only() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        let extra = dir.path().join("extra");
        for d in [&plugins, &extra] {
            std::fs::create_dir_all(d).unwrap();
        }
        for f in [plugins.join("libb.so"), plugins.join("liba.so"), plugins.join("notes.txt"), extra.join("libc.so")] {
            std::fs::write(f, b"").unwrap();
        }
        let single = dir.path().join("libsingle.so");
        let search = std::env::join_paths([extra.as_path(), Path::new(""), single.as_path()]).unwrap();
        let found = PluginDir::new(plugins.clone(), Some(&search)).discover();
        assert_eq!(found, [plugins.join("liba.so"), plugins.join("libb.so"), extra.join("libc.so"), single]);
        assert!(PluginDir::new(dir.path().join("none"), None).discover().is_empty());
    }

    #[test]
    fn records_change_under_their_lock_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = PluginDir::new(dir.path().to_owned(), None);
        assert!(plugins.records().unwrap().is_empty());
        let record = Record { sha256: "ab".into(), source: "/src/liba.so".into() };
        plugins.change_records(|r| drop(r.insert("liba.so".into(), record.clone()))).unwrap();
        assert_eq!(plugins.records().unwrap()["liba.so"], record);
        assert!(dir.path().join("plugins.json.lock").exists());
        let e = plugins.remove("nothing").unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("no plugin `nothing`"), "{e}");
        // Recorded but gone from disk: removing forgets it.
        plugins.remove("a").unwrap();
        assert!(plugins.records().unwrap().is_empty());
        // Recorded and there but not removable: the failure, not "no plugin".
        let record = Record { sha256: "cd".into(), source: "/src/libb.so".into() };
        plugins.change_records(|r| drop(r.insert("libb.so".into(), record.clone()))).unwrap();
        std::fs::create_dir(dir.path().join("libb.so")).unwrap();
        let e = plugins.remove("b").unwrap_err();
        assert!(!e.is_usage() && e.to_string().contains("cannot remove"), "{e}");
        assert_eq!(plugins.records().unwrap()["libb.so"], record, "still recorded");
        std::fs::remove_dir(dir.path().join("libb.so")).unwrap();
        std::fs::write(dir.path().join("plugins.json"), b"{not json").unwrap();
        assert!(plugins.records().unwrap_err().to_string().contains("is damaged"));
        // Unreadable is not empty: a later `add` must not replace what cannot be read.
        std::fs::remove_file(dir.path().join("plugins.json")).unwrap();
        std::fs::create_dir(dir.path().join("plugins.json")).unwrap();
        assert!(plugins.records().unwrap_err().to_string().contains("cannot read"));
    }
}
