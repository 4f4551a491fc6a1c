//! `cargo xtask tidy`: the conventions clippy cannot check.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::bail;

pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "tests", "plugins"] {
        collect(&root.join(dir), &mut files);
    }
    for file in &files {
        let text = fs::read_to_string(file)?;
        let rel = file.strip_prefix(root).unwrap_or(file).display().to_string();
        if !text.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with("//!")) {
            problems.push(format!("{rel}:1: starts without a `//!` line saying what the file is for"));
        }
        if is_library(&rel) {
            for (n, line) in text.lines().enumerate() {
                // Unit tests sit at the end of a file, after `#[cfg(test)]`.
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break;
                }
                let code = line.split("//").next().unwrap_or("");
                if code.contains(".unwrap()") {
                    problems.push(format!(
                        "{rel}:{}: `.unwrap()` in library code; return an error or prove the invariant with `expect`",
                        n + 1
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        eprintln!("tidy: {} files ok", files.len());
        Ok(())
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
        bail!("tidy found {} problem(s)", problems.len())
    }
}

/// Library code: `src/` of the crates, not tests, benches, xtask or the test-support crate.
/// Library code: under a crate's `src/`, except a `tests.rs` (declared `#[cfg(test)] mod tests;`).
fn is_library(rel: &str) -> bool {
    rel.starts_with("crates/") && rel.contains("/src/") && !rel.ends_with("/tests.rs")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
