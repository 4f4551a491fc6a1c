//! Secrets stay where they belong: a VM admin password, a VMAccess password and a protected
//! setting, given the way scripts give them (stdin, a file), never appear in azdock's stdout or
//! stderr (with `--debug`), in any file it writes, or in the command line or environment of any
//! process it starts (traced with `strace -f`, which prints every `execve` with its argv and
//! environment). They reach the local cloud, which is where they are for.

use std::path::{Path, PathBuf};
use std::process::Command;

use azdock_tests::{Env, Output};

const VM_PASSWORD: &str = "Zx7-Leak-Probe-4411";
const NEW_PASSWORD: &str = "Nw3-Leak-Probe-5150";
const PROTECTED: &str = "Ps9-Leak-Probe-9902";
const SECRETS: [&str; 3] = [VM_PASSWORD, NEW_PASSWORD, PROTECTED];

/// `azdock ARGS…` under `strace -f`, writing every exec (argv and environment) to `trace`.
fn traced(env: &Env, trace: &Path, args: &[&str]) -> Command {
    let mut cmd = env.command("strace");
    cmd.args(["-f", "-qq", "-v", "-s", "65536", "-e", "trace=execve", "-o"])
        .arg(trace)
        .arg(azdock_tests::azdock_bin())
        .args(args);
    cmd
}

fn strace_works() -> bool {
    Command::new("strace").args(["-qq", "-e", "trace=execve", "true"]).output().is_ok_and(|o| o.status.success())
}

/// Every file below `dir`, except those skipped.
fn files(dir: &Path, skip: &[PathBuf], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if skip.iter().any(|s| path.starts_with(s)) {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files(&path, skip, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} holds a secret ({secret}):\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_output_files_or_the_processes_azdock_starts() {
    if !strace_works() {
        azdock_tests::skipped("strace is not installed or cannot trace here");
        return;
    }
    let env = Env::new();
    let (_up, _arm) = azdock_tests::local_cloud(&env, &["--instant"]).await;
    let traces = env.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    let trace = |name: &str| traces.join(name);
    let mut runs: Vec<(&str, Output)> = Vec::new();

    // The main job, with a password for the VM's admin on stdin.
    let mut create = traced(
        &env,
        &trace("create"),
        &["--debug", "--cloud", "local", "vm", "docker", "create", "sec1", "--password-stdin", "-o", "json"],
    );
    let created = azdock_tests::run_with_stdin(&mut create, VM_PASSWORD);
    assert_eq!(created.code, 0, "{}", created.stderr);
    runs.push(("vm docker create", created));

    // A VMAccess password reset, the password on stdin.
    let on = ["--vm", "sec1", "-g", "sec1"];
    let mut reset = traced(
        &env,
        &trace("reset"),
        &[
            &["--debug", "--cloud", "local", "ext", "vmaccess", "reset-password", "-u", "ops", "--password-stdin"][..],
            &on,
        ]
        .concat(),
    );
    let reset = azdock_tests::run_with_stdin(&mut reset, NEW_PASSWORD);
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    runs.push(("ext vmaccess reset-password", reset));

    // Protected settings from a file, as `az vm extension set` takes them.
    let settings = env.path().join("protected.json");
    std::fs::write(&settings, format!(r#"{{"username": "ops2", "password": "{PROTECTED}"}}"#)).unwrap();
    let file_arg = format!("@{}", settings.display());
    let set_args = [
        &["--debug", "--cloud", "local", "ext", "set", "--publisher", "Microsoft.OSTCExtensions"][..],
        &["--type", "VMAccessForLinux", "--protected-settings", &file_arg],
        &on,
    ]
    .concat();
    let set = azdock_tests::run(&mut traced(&env, &trace("set"), &set_args));
    assert_eq!(set.code, 0, "{}", set.stderr);
    runs.push(("ext set", set));

    // Protected settings that are not an object: refused without repeating what was given.
    let quoted = format!("\"{PROTECTED}\"");
    let bad = env.run(
        &[
            &["--cloud", "local", "ext", "set", "--publisher", "P", "--type", "T"][..],
            &on,
            &["--protected-settings", &quoted],
        ]
        .concat(),
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--protected-settings"), "{}", bad.stderr);
    runs.push(("ext set (refused)", bad));

    for (what, out) in &runs {
        assert_clean(&format!("stdout of `{what}`"), &out.stdout);
        assert_clean(&format!("stderr of `{what}`"), &out.stderr);
    }
    // The debug log did run (the check above looked at something).
    assert!(runs[0].1.stderr.contains("azdock_azure_sm::pipeline: request"), "{}", runs[0].1.stderr);

    // Every process the traced runs started, with its argv and environment. The first exec of
    // each trace is azdock itself; every other one is a process azdock started (docker, the
    // plugin process, …).
    let mut started = 0;
    for name in ["create", "reset", "set"] {
        let text = std::fs::read_to_string(trace(name)).unwrap();
        let execs: Vec<&str> = text.lines().filter(|l| l.contains("execve(")).collect();
        assert!(!execs.is_empty(), "strace recorded no exec in {name}: {text}");
        started += execs.len() - 1;
        assert_clean(&format!("the processes `{name}` started"), &execs.join("\n"));
    }
    // `vm docker create` makes a docker context with the docker CLI: the trace saw it.
    assert!(started >= 1, "no process was started: the trace looked at nothing");

    // Every file azdock wrote (the certificates, the host record, the docker context, SSH
    // keys), but not the local cloud's own state (it is Azure here: it keeps what it was sent),
    // the user's own settings file, or the traces.
    let skip = [env.path().join("xdg-data/azdock/local"), traces.clone(), settings.clone()];
    let mut written = Vec::new();
    files(env.path(), &skip, &mut written);
    assert!(written.iter().any(|p| p.ends_with("ca.pem")), "no certificates were written: {written:?}");
    for path in written {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert_clean(&format!("file {}", path.display()), &text);
    }
    env.run(&["local", "down"]).success();
}
