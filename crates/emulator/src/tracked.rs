//! A map that remembers which keys changed since the journal last took them, so that saving a
//! change costs what changed — not the size of the cloud.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

/// A `BTreeMap` by string key whose every mutable access marks the key as changed. Reads go
/// through `Deref`; writes only through the methods here, so no change can miss the journal.
#[derive(Debug)]
pub(crate) struct Tracked<V> {
    map: BTreeMap<String, V>,
    touched: BTreeSet<String>,
}

impl<V> Default for Tracked<V> {
    fn default() -> Self {
        Self { map: BTreeMap::new(), touched: BTreeSet::new() }
    }
}

impl<V> Deref for Tracked<V> {
    type Target = BTreeMap<String, V>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<V> Tracked<V> {
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let value = self.map.get_mut(key)?;
        if !self.touched.contains(key) {
            self.touched.insert(key.to_owned());
        }
        Some(value)
    }

    pub(crate) fn insert(&mut self, key: String, value: V) -> Option<V> {
        self.touched.insert(key.clone());
        self.map.insert(key, value)
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        let removed = self.map.remove(key)?;
        self.touched.insert(key.to_owned());
        Some(removed)
    }

    /// Keeps the entries `keep` says to keep; the others count as changed (removed).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&String, &V) -> bool) {
        let touched = &mut self.touched;
        self.map.retain(|k, v| {
            let kept = keep(k, v);
            if !kept {
                touched.insert(k.clone());
            }
            kept
        });
    }

    /// The keys changed since the last call (each now either present or removed).
    pub(crate) fn take_touched(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.touched)
    }

    /// Replaces an entry without marking it: for loading what is already stored.
    pub(crate) fn load(&mut self, key: String, value: V) {
        self.map.insert(key, value);
    }

    /// Removes an entry without marking it: for loading what is already stored.
    pub(crate) fn unload(&mut self, key: &str) {
        self.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_is_remembered_and_reads_are_not() {
        let mut m = Tracked::default();
        m.load("quiet".into(), 0);
        assert!(m.take_touched().is_empty());
        m.insert("a".into(), 1);
        m.insert("b".into(), 2);
        assert_eq!(m.get("quiet"), Some(&0));
        assert_eq!(m.take_touched().into_iter().collect::<Vec<_>>(), ["a", "b"]);
        *m.get_mut("a").unwrap() += 1;
        assert!(m.get_mut("missing").is_none());
        assert_eq!(m.remove("b"), Some(2));
        assert_eq!(m.remove("b"), None);
        m.retain(|k, _| k != "quiet");
        assert_eq!(m.take_touched().into_iter().collect::<Vec<_>>(), ["a", "b", "quiet"]);
        assert_eq!(m.len(), 1);
        m.unload("a");
        assert!(m.is_empty() && m.take_touched().is_empty());
    }
}
