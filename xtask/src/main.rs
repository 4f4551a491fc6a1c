//! `cargo xtask`: azdock's automation — ci, tidy, bench, dist — in Rust, run with plain
//! `std::process::Command` so it works on any machine that builds the project.

// xtask is a developer tool whose output is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod bench_emulator;
mod dist;
mod tidy;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

const USAGE: &str = "usage: cargo xtask <ci | tidy | bench | dist | plugins>
  ci     fmt check, clippy -D warnings, tidy, build, all tests (what .ci/run runs)
  plugins  build every plugin in plugins/ (lib<name>.so in target/debug)
  tidy   every .rs file starts with `//!`; no `.unwrap()` in library code
  bench  the performance table (release build)
  dist   release binary, completions, man pages, tarball and SHA-256 sums in target/dist";

/// Builds every plugin package under `plugins/` (debug profile) and returns their libraries.
pub(crate) fn plugins(root: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut built = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("plugins"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))?;
        let name = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = ").map(|v| v.trim_matches('"').to_owned()))
            .with_context(|| format!("no package name in `{}`", dir.join("Cargo.toml").display()))?;
        cmd("cargo", &["build", "--locked", "-p", &name])?;
        let lib = root.join("target/debug").join(format!("lib{}.so", name.replace('-', "_")));
        eprintln!("built {}", lib.display());
        built.push(lib);
    }
    Ok(built)
}

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("ci") => ci(),
        Some("tidy") => tidy::run(&root()),
        Some("bench") => bench::run(&root()),
        Some("dist") => dist::run(&root()),
        Some("plugins") => plugins(&root()).map(|_| ()),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// Runs a command in the workspace root, failing with its name when it fails.
fn cmd(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot run `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    cmd("cargo", &["fmt", "--all", "--check"])?;
    cmd("cargo", &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])?;
    tidy::run(&root())?;
    // The end-to-end tests run the built binary; build it before they start.
    cmd("cargo", &["build", "--locked", "-p", "azdock"])?;
    let sdk_python = interop_venv(&root());
    cargo_test(sdk_python.as_deref())
}

/// A venv with Microsoft's Azure SDK for Python at the pinned versions, for the interop test;
/// rebuilt when `tests/interop/requirements.txt` changes. `None` (with the reason printed)
/// when it cannot be made; the test then says what is missing.
fn interop_venv(root: &std::path::Path) -> Option<PathBuf> {
    let requirements = root.join("tests/interop/requirements.txt");
    let venv = root.join("target/interop-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read(&requirements).ok()?;
    if python.exists() && std::fs::read(&stamp).ok().as_deref() == Some(wanted.as_slice()) {
        return Some(python);
    }
    eprintln!("$ python3 -m venv target/interop-venv && pip install -r tests/interop/requirements.txt");
    let made = Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv).status().is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .status()
            .is_ok_and(|s| s.success());
    if !made {
        eprintln!("warning: cannot set up the Azure SDK for Python; the interop test will say so");
        return None;
    }
    std::fs::write(&stamp, &wanted).ok()?;
    Some(python)
}

/// `cargo test --workspace`, echoing its output and ending with one total line, because
/// cargo's own last line is that of whichever test binary ran last (often doc-tests with 0).
fn cargo_test(sdk_python: Option<&std::path::Path>) -> anyhow::Result<()> {
    use std::io::{BufRead as _, BufReader};
    let args = ["test", "--workspace", "--locked"];
    eprintln!("$ cargo {}", args.join(" "));
    let mut command = Command::new("cargo");
    if let Some(python) = sdk_python {
        command.env("AZDOCK_SDK_PYTHON", python);
    }
    let mut child = command
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run `cargo test`")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            if let Some(counts) = line.strip_prefix("test result: ").and_then(|r| r.split_once(". ")).map(|(_, c)| c) {
                for part in counts.split("; ") {
                    match part.split_once(' ') {
                        Some((n, "passed")) => passed += n.parse::<u64>().unwrap_or(0),
                        Some((n, "failed")) => failed += n.parse::<u64>().unwrap_or(0),
                        _ => {}
                    }
                }
            }
        }
    }
    let status = child.wait()?;
    println!("tests: {passed} passed, {failed} failed");
    if !status.success() || passed == 0 {
        bail!("`cargo {}` failed with {status}", args.join(" "));
    }
    Ok(())
}
