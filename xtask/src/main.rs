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

/// Variables that let tests skip what this machine lacks: for a developer's machine, never for
/// CI, where a skipped test would hide that CI lost what it must have.
fn refuse_skips_in_ci(env: impl Iterator<Item = (String, String)>, ci: bool) -> anyhow::Result<()> {
    let skips: Vec<String> = env.filter(|(k, _)| k.starts_with("AZDOCK_TESTS_WITHOUT_")).map(|(k, _)| k).collect();
    if ci && !skips.is_empty() {
        bail!("CI is set, and so is {}: CI runs every test; unset them", skips.join(", "));
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    refuse_skips_in_ci(std::env::vars(), std::env::var_os("CI").is_some())?;
    cmd("cargo", &["fmt", "--all", "--check"])?;
    cmd("cargo", &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])?;
    tidy::run(&root())?;
    // The end-to-end tests run the built binary; build it before they start.
    cmd("cargo", &["build", "--locked", "-p", "azdock"])?;
    let sdk_python = interop_venv(&root());
    let az = az_venv(&root());
    cargo_test(sdk_python.as_deref(), az.as_deref())
}

/// A venv with Microsoft's Azure SDK for Python at the pinned versions, for the interop test;
/// rebuilt when `tests/interop/requirements.txt` changes. `None` (with the reason printed)
/// when it cannot be made; the test then says what is missing.
fn interop_venv(root: &std::path::Path) -> Option<PathBuf> {
    venv(root, "requirements.txt", "interop-venv").map(|v| v.join("bin/python"))
}

/// A venv with the Azure CLI at the pinned version (`tests/interop/az-requirements.txt`), for
/// the az interop test: the path of its `az`.
fn az_venv(root: &std::path::Path) -> Option<PathBuf> {
    venv(root, "az-requirements.txt", "az-venv").map(|v| v.join("bin/az"))
}

/// `target/<name>` with `tests/interop/<requirements>` installed, rebuilt when that file
/// changes; `None` (with the reason printed) when it cannot be made.
fn venv(root: &std::path::Path, requirements: &str, name: &str) -> Option<PathBuf> {
    let file = root.join("tests/interop").join(requirements);
    let venv = root.join("target").join(name);
    let stamp = venv.join(requirements);
    let wanted = std::fs::read(&file).ok()?;
    if venv.join("bin/python").exists() && std::fs::read(&stamp).ok().as_deref() == Some(wanted.as_slice()) {
        return Some(venv);
    }
    eprintln!("$ python3 -m venv target/{name} && pip install -r tests/interop/{requirements}");
    let made = Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv).status().is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&file)
            .status()
            .is_ok_and(|s| s.success());
    if !made {
        eprintln!("warning: cannot set up target/{name}; the interop test that needs it will say so");
        return None;
    }
    std::fs::write(&stamp, &wanted).ok()?;
    Some(venv)
}

/// The closing line: a skipped test ran but did not test, so it is not counted as passed.
fn totals(passed: u64, failed: u64, skipped: u64) -> String {
    let passed = passed.saturating_sub(skipped);
    if skipped == 0 {
        format!("tests: {passed} passed, {failed} failed")
    } else {
        format!("tests: {passed} passed, {failed} failed, {skipped} skipped")
    }
}

/// The test that checks the recorded traffic against Azure's specifications (`tests/spec.rs`).
const SPEC_CHECK: &str = "recorded_traffic_keeps_the_specifications";

/// `cargo test --workspace` with every local cloud recording its ARM traffic, then the check
/// of that traffic against Azure's specifications; echoing the output and ending with one total
/// line, because cargo's own last line is that of whichever test binary ran last.
fn cargo_test(sdk_python: Option<&std::path::Path>, az: Option<&std::path::Path>) -> anyhow::Result<()> {
    let records = root().join("target/spec-records");
    let _ = std::fs::remove_dir_all(&records);
    // Tests that skip say so in this file; they are counted as skipped, not passed.
    let skip_log = root().join("target/skipped-tests.txt");
    let _ = std::fs::remove_file(&skip_log);
    let mut env: Vec<(&str, &std::ffi::OsStr)> =
        vec![("AZDOCK_SKIP_LOG", skip_log.as_os_str()), ("AZDOCK_LOCAL_RECORD", records.as_os_str())];
    if let Some(python) = sdk_python {
        env.push(("AZDOCK_SDK_PYTHON", python.as_os_str()));
    }
    if let Some(az) = az {
        env.push(("AZDOCK_AZ_CLI", az.as_os_str()));
    }
    // The check runs once everything it reads was recorded: after the suite, on its own.
    let (p1, f1, ok1) = run_tests(&["test", "--workspace", "--locked", "--", "--skip", SPEC_CHECK], &env)?;
    let check = [("AZDOCK_SKIP_LOG", skip_log.as_os_str()), ("AZDOCK_SPEC_RECORDS", records.as_os_str())];
    let (p2, f2, ok2) =
        run_tests(&["test", "--locked", "-p", "azdock-tests", "--test", "spec", "--", SPEC_CHECK], &check)?;
    let (passed, failed) = (p1 + p2, f1 + f2);
    let skips = std::fs::read_to_string(&skip_log).unwrap_or_default();
    let skipped = skips.lines().count() as u64;
    for line in skips.lines() {
        println!("skipped: {line}");
    }
    println!("{}", totals(passed, failed, skipped));
    if !(ok1 && ok2) || passed == 0 {
        bail!("the tests failed");
    }
    Ok(())
}

/// One `cargo` test run with `env`, echoed: how many passed and failed, and whether it ended well.
fn run_tests(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> anyhow::Result<(u64, u64, bool)> {
    use std::io::{BufRead as _, BufReader};
    eprintln!("$ cargo {}", args.join(" "));
    let mut command = Command::new("cargo");
    command.envs(env.iter().copied());
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
    Ok((passed, failed, status.success()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_counted_apart_and_refused_in_ci() {
        assert_eq!(totals(10, 0, 0), "tests: 10 passed, 0 failed");
        assert_eq!(totals(10, 1, 3), "tests: 7 passed, 1 failed, 3 skipped");
        let vars = |v: &[(&str, &str)]| v.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        let skipping =
            vars(&[("PATH", "/bin"), ("AZDOCK_TESTS_WITHOUT_DOCKERD", "1"), ("AZDOCK_TESTS_WITHOUT_SDK", "1")]);
        let e = refuse_skips_in_ci(skipping.clone().into_iter(), true).unwrap_err().to_string();
        assert!(
            e.contains("AZDOCK_TESTS_WITHOUT_DOCKERD, AZDOCK_TESTS_WITHOUT_SDK") && e.contains("unset them"),
            "{e}"
        );
        assert!(refuse_skips_in_ci(skipping.into_iter(), false).is_ok(), "a developer's machine may skip");
        assert!(refuse_skips_in_ci(vars(&[("PATH", "/bin")]).into_iter(), true).is_ok());
    }
}
