//! Plugins built with cargo the way a third party builds theirs, loaded by the real binary:
//! the CustomScript plugin runs a script in the local cloud's guest; misbehaving plugins (wrong
//! ABI, small table, no symbol, bad JSON, a panic, a duplicate id, a writable file, a changed
//! hash) are each refused with their reason while everything else keeps working.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use azdock_tests::{Env, Output};

/// Builds a plugin package (same toolchain, same profile as these tests) and copies its library
/// to `dest`; builds are one at a time, as they share the artifact's path.
fn build(package: &str, features: &[&str], dest: &Path) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // target/debug/deps/it-<hash> → target
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().and_then(Path::parent).and_then(Path::parent).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(root).args(["build", "-q", "-p", package]).arg("--target-dir").arg(target);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    azdock_tests::run(&mut cmd).success();
    let lib = format!("lib{}.so", package.replace('-', "_"));
    std::fs::copy(target.join("debug").join(lib), dest).unwrap();
    std::fs::set_permissions(dest, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn with_plugins(env: &Env, paths: &[&Path], args: &[&str]) -> Output {
    let joined = std::env::join_paths(paths).unwrap();
    azdock_tests::run(env.azdock().env("AZDOCK_PLUGIN_PATH", joined).args(args))
}

fn ids(out: &Output) -> Vec<String> {
    out.json().as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customscript_plugin_runs_a_script_in_the_guest() {
    let env = Env::new();
    let plugin = env.path().join("libazdock_plugin_customscript.so");
    build("azdock-plugin-customscript", &[], &plugin);
    let list = with_plugins(&env, &[&plugin], &["ext", "list"]).success();
    assert_eq!(ids(&list), ["customscript", "docker", "vmaccess"]);
    assert_eq!(list.json()[0]["source"]["kind"], "plugin");

    let (up, arm) = azdock_tests::local_cloud(&env, &["--instant"]).await;
    let text = |k: &str| up[k].as_str().unwrap().to_owned();
    let sub = text("subscriptionId");
    arm.linux_vm(&sub, "cs", "csvm").await;

    let script = env.path().join("hello.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran > /root/proof\necho hello from the guest\necho careful >&2\n")
        .unwrap();
    let run = with_plugins(
        &env,
        &[&plugin],
        &[
            "--cloud",
            "local",
            "ext",
            "customscript",
            "run",
            "--vm",
            "csvm",
            "-g",
            "cs",
            "--script",
            script.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let result = run.json();
    assert_eq!(
        (result["stdout"].as_str(), result["stderr"].as_str()),
        (Some("hello from the guest\n"), Some("careful\n")),
        "{result}"
    );
    let (_, file) =
        arm.admin(reqwest::Method::GET, &format!("/guests/{sub}/cs/csvm/files?path=/root/proof"), None).await;
    assert_eq!(file["content"], "ran\n");
    let cmd = with_plugins(
        &env,
        &[&plugin],
        &["--cloud", "local", "ext", "customscript", "run", "--vm", "csvm", "-g", "cs", "--command", "echo by command"],
    );
    assert_eq!(cmd.json()["stdout"], "by command\n", "{}", cmd.stderr);
    // Global options after a plugin's action work as after a built-in's.
    let tsv = with_plugins(
        &env,
        &[&plugin],
        &[
            "ext",
            "customscript",
            "run",
            "--vm",
            "csvm",
            "-g",
            "cs",
            "--command",
            "true",
            "--cloud",
            "local",
            "-o",
            "tsv",
            "--query",
            "name",
        ],
    );
    assert_eq!((tsv.code, tsv.stdout.trim()), (0, "csvm"), "{}", tsv.stderr);
    let neither =
        with_plugins(&env, &[&plugin], &["--cloud", "local", "ext", "customscript", "run", "--vm", "csvm", "-g", "cs"]);
    assert_eq!(neither.code, 2);
    assert!(neither.stderr.contains("exactly one of --script FILE and --command CMD"), "{}", neither.stderr);
    let help = with_plugins(&env, &[&plugin], &["ext", "customscript", "run", "--help"]).success();
    assert!(
        help.stdout.contains("Usage: azdock ext customscript run") && help.stdout.contains("--script <FILE>"),
        "{}",
        help.stdout
    );

    // Added to the plugin directory: it loads without the variable, until its file changes.
    let added = env.run(&["ext", "plugin", "add", plugin.to_str().unwrap()]).success().json();
    assert_eq!(added["id"], "customscript");
    let listed = env.run(&["ext", "plugin", "list"]).success().json();
    assert_eq!(listed[0]["status"], "loaded");
    assert_eq!(listed[0]["sha256"], added["sha256"]);
    let installed = PathBuf::from(added["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&installed).unwrap();
    bytes.push(0);
    std::fs::write(&installed, bytes).unwrap();
    let changed = env.run(&["ext", "list"]).success();
    assert_eq!(ids(&changed), ["docker", "vmaccess"]);
    assert!(changed.stderr.contains("changed since it was added"), "{}", changed.stderr);
    env.run(&["ext", "plugin", "add", plugin.to_str().unwrap()]).success();
    assert_eq!(ids(&env.run(&["ext", "list"]).success()), ["customscript", "docker", "vmaccess"]);
    env.run(&["ext", "plugin", "remove", "customscript"]).success();
    assert_eq!(ids(&env.run(&["ext", "list"]).success()), ["docker", "vmaccess"]);
    env.run(&["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_plugins_are_refused_with_their_reason_and_the_rest_works() {
    let env = Env::new();
    let dir = env.path();
    let mut paths = Vec::new();
    for feature in
        ["wrong-abi", "small-table", "missing-plan", "bad-json", "panic-plan", "dup-id", "abort-plan", "segv-plan"]
    {
        let dest = dir.join(format!("{feature}.so"));
        build("azdock-test-plugin-misbehave", &[feature], &dest);
        paths.push(dest);
    }
    // A shared library that is no plugin at all.
    let libm = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("libm");
    let nosymbol = dir.join("nosymbol.so");
    std::fs::copy(libm, &nosymbol).unwrap();
    paths.push(nosymbol);
    // A good plugin others could change.
    let writable = dir.join("writable.so");
    build("azdock-plugin-customscript", &[], &writable);
    std::fs::set_permissions(&writable, std::os::unix::fs::PermissionsExt::from_mode(0o775)).unwrap();
    paths.push(writable);

    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let list = with_plugins(&env, &refs, &["ext", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert_eq!(
        ids(&list),
        ["docker", "misbehave", "misbehave-abort", "misbehave-segv", "vmaccess"],
        "the panicking, aborting and crashing ones load; their plans fail later"
    );
    for (file, reason) in [
        ("wrong-abi.so", "speaks plugin ABI 99"),
        ("small-table.so", "its table has 8 bytes"),
        ("missing-plan.so", "its table has no `plan` function (NULL)"),
        ("bad-json.so", "its manifest is not valid"),
        ("dup-id.so", "docker"),
        ("nosymbol.so", "exports no `azdock_plugin_v1`"),
        ("writable.so", "writable by its group"),
    ] {
        let line = list
            .stderr
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("no word about {file}: {}", list.stderr));
        assert!(line.contains(reason), "{file}: {line}");
    }

    // The panic inside `plan` is caught in the plugin and reported with its file.
    let (up, arm) = azdock_tests::local_cloud(&env, &["--instant"]).await;
    let text = |k: &str| up[k].as_str().unwrap().to_owned();
    arm.linux_vm(&text("subscriptionId"), "mb", "mbvm").await;
    let poke = with_plugins(&env, &refs, &["--cloud", "local", "ext", "misbehave", "poke", "--vm", "mbvm", "-g", "mb"]);
    assert_eq!(poke.code, 1, "{}", poke.stderr);
    assert!(
        poke.stderr.contains("panic-plan.so") && poke.stderr.contains("panicked while planning"),
        "{}",
        poke.stderr
    );
    // A plugin that aborts or crashes takes down only the plugin process: azdock itself ends
    // with an error line (exit 1, not 134) naming the plugin's file and how it ended.
    for (id, file, how) in [
        ("misbehave-abort", "abort-plan.so", "it aborted (SIGABRT)"),
        ("misbehave-segv", "segv-plan.so", "it crashed (SIGSEGV)"),
    ] {
        let out = with_plugins(&env, &refs, &["--cloud", "local", "ext", id, "poke", "--vm", "mbvm", "-g", "mb"]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        let error = out.stderr.lines().find(|l| l.starts_with("ERROR:")).unwrap_or_default();
        assert!(error.contains(file) && error.contains(how), "{}", out.stderr);
    }
    let ids_again =
        with_plugins(&env, &refs, &["--cloud", "local", "ext", "misbehave", "poke", "--vm", "mbvm", "-g", "mb"]);
    assert!(ids_again.stderr.contains("panicked while planning"), "{}", ids_again.stderr);
    // Built-in commands still work beside them.
    with_plugins(&env, &refs, &["--cloud", "local", "vm", "list"]).success();
    let unknown = with_plugins(&env, &refs, &["ext", "nosuch", "run"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("no extension `nosuch`"), "{}", unknown.stderr);
    env.run(&["local", "down"]).success();
}

/// ARM requests after `since`, as `METHOD path` with operation ids and the query left out, and
/// repeated polls of one operation counted once.
async fn arm_requests(arm: &azdock_tests::arm::Arm, since: u64) -> Vec<String> {
    let (_, log) = arm.admin(reqwest::Method::GET, &format!("/requests?since={since}"), None).await;
    let mut out: Vec<String> = Vec::new();
    for r in log["requests"].as_array().unwrap() {
        let path = r["path"].as_str().unwrap().split('?').next().unwrap();
        if !path.contains("/subscriptions/") {
            continue;
        }
        let path = match path.find("/operations/") {
            Some(at) => format!("{}/operations/ID", &path[..at]),
            None => path.to_owned(),
        };
        let line = format!("{} {path}", r["method"].as_str().unwrap());
        if out.last() != Some(&line) {
            out.push(line);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmaccess_built_as_a_plugin_does_what_the_built_in_does() {
    let env = Env::new();
    let twin = env.path().join("twin.so");
    build("azdock-test-plugin-vmaccess-twin", &[], &twin);
    let (up, arm) = azdock_tests::local_cloud(&env, &["--instant"]).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    arm.linux_vm(&sub, "pa", "pa1").await;
    let last = || async { arm.admin(reqwest::Method::GET, "/requests", None).await.1["last"].as_u64().unwrap() };
    let password_ok = |password: &'static str| {
        let (arm, sub) = (&arm, &sub);
        async move {
            let body = serde_json::json!({"username": "ops", "password": password});
            let path = format!("/guests/{sub}/pa/pa1/verify-password");
            arm.admin(reqwest::Method::POST, &path, Some(body)).await.1["valid"] == true
        }
    };
    let run = |args: &[&str], password: &str| {
        let mut cmd = env.azdock();
        cmd.env("AZDOCK_PLUGIN_PATH", &twin).args(["--cloud", "local", "ext"]).args(args);
        azdock_tests::run_with_stdin(cmd.args(["--vm", "pa1", "-g", "pa", "--password-stdin"]), password)
    };

    let mark = last().await;
    let builtin = run(&["vmaccess", "reset-password", "-u", "ops"], "Bu1lt-in-Passw0rd");
    assert_eq!(builtin.code, 0, "{}", builtin.stderr);
    assert_eq!(builtin.json()["status"], "succeeded");
    assert!(password_ok("Bu1lt-in-Passw0rd").await);
    let through_builtin = arm_requests(&arm, mark).await;

    let mark = last().await;
    // The twin is another extension: the VMAccess instance the built-in put is the built-in's,
    // so the twin takes it over on request (under the same name: the same requests).
    let plugin = run(&["vmaccess-twin", "reset-password", "--username", "ops", "--take-over"], "Plug-1n-Passw0rd");
    assert_eq!(plugin.code, 0, "{}", plugin.stderr);
    assert_eq!(plugin.json()["status"], "Provisioning succeeded", "{}", plugin.stdout);
    assert!(password_ok("Plug-1n-Passw0rd").await);
    assert!(!password_ok("Bu1lt-in-Passw0rd").await);
    let through_plugin = arm_requests(&arm, mark).await;

    // One path: the same reads and writes reach Azure, in the same order.
    assert_eq!(through_plugin, through_builtin);
    assert!(through_builtin.iter().any(|r| r.starts_with("PUT ") && r.ends_with("/extensions/enablevmaccess")));
    // The host holds the plugin to the built-in's contract: the OS is checked before its plan.
    arm.windows_vm(&sub, "pw", "pw1").await;
    let mut cmd = env.azdock();
    cmd.env("AZDOCK_PLUGIN_PATH", &twin).args([
        "--cloud",
        "local",
        "ext",
        "vmaccess-twin",
        "reset-ssh",
        "--vm",
        "pw1",
        "-g",
        "pw",
    ]);
    let windows = azdock_tests::run(&mut cmd);
    assert_eq!(windows.code, 2, "{}", windows.stderr);
    assert!(
        windows.stderr.contains("VM `pw1` runs Windows, and `reset-ssh` is for Linux VMs only"),
        "{}",
        windows.stderr
    );
    env.run(&["local", "down"]).success();
}

#[test]
fn plugin_add_replaces_a_rebuild_from_the_same_file_and_another_file_only_with_force() {
    let env = Env::new();
    let plugin = env.path().join("libazdock_plugin_customscript.so");
    build("azdock-plugin-customscript", &[], &plugin);
    env.run(&["ext", "plugin", "add", plugin.to_str().unwrap()]).success();
    env.run(&["ext", "plugin", "add", plugin.to_str().unwrap()]).success();
    let elsewhere = env.path().join("elsewhere.so");
    std::fs::copy(&plugin, &elsewhere).unwrap();
    let taken = env.run(&["ext", "plugin", "add", elsewhere.to_str().unwrap()]);
    assert_eq!(taken.code, 2);
    assert!(
        taken.stderr.contains("extension id `customscript` is taken") && taken.stderr.contains("--force"),
        "{}",
        taken.stderr
    );
    env.run(&["ext", "plugin", "add", "--force", elsewhere.to_str().unwrap()]).success();
    let listed = env.run(&["ext", "plugin", "list"]).success().json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["added"], elsewhere.to_str().unwrap());
}

// The dockerd lock is held for the whole test on purpose: one guest dockerd at a time.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_create_applies_extensions_and_a_handler_slot_has_one_owner() {
    let env = Env::new();
    let plugin = env.path().join("libazdock_plugin_customscript.so");
    build("azdock-plugin-customscript", &[], &plugin);
    let run = |args: &[&str]| with_plugins(&env, &[&plugin], &[&["--cloud", "local"][..], args].concat());

    // Plugins are listed with the built-ins in `ext --help`; `ext show` prints a manifest.
    let help = run(&["ext", "--help"]).success();
    assert!(help.stdout.contains("customscript") && help.stdout.contains("(plugin"), "{}", help.stdout);
    let shown = run(&["ext", "show", "customscript"]).success().json();
    assert_eq!(shown["source"]["kind"], "plugin");
    assert_eq!(shown["actions"][0]["name"], "run");
    assert!(shown["actions"][0]["handlers"][0].as_str().unwrap().contains("CustomScript"), "{shown}");
    let table = run(&["ext", "show", "docker", "-o", "table"]).success();
    for action in ["install", "rotate-certs", "uninstall", "status", "verify"] {
        assert!(table.stdout.lines().any(|l| l.starts_with(action)), "{action}: {}", table.stdout);
    }
    let unknown = run(&["ext", "show", "nope"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no extension `nope`: known are customscript, docker, vmaccess"),
        "{}",
        unknown.stderr
    );

    // A bad --ext is refused before anything is made, the SSH key included.
    let (up, arm) = azdock_tests::local_cloud(&env, &["--instant"]).await;
    for (ext, says) in [("nope", "no extension `nope`"), ("docker:frobnicate", "has no such action")] {
        let out = run(&["vm", "create", "refused", "--ext", ext, "--generate-ssh-keys"]);
        assert_eq!(out.code, 2, "{ext}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{ext}: {}", out.stderr);
    }
    assert!(!env.path().join(".ssh").exists());
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    let (status, _) = arm.get(&format!("/subscriptions/{sub}/resourcegroups/refused?api-version=2021-04-01")).await;
    assert_eq!(status.as_u16(), 404);

    // A VM with the Docker extension applied, recorded as a Docker host.
    let _dockerd = azdock_tests::dockerd_lock();
    let made = run(&[
        "vm",
        "create",
        "slotvm",
        "--ext",
        "docker",
        "--public-ip-address-dns-name",
        "slotvm",
        "--generate-ssh-keys",
    ])
    .success();
    let report = made.json();
    assert_eq!(report["extensions"][0]["extension"], "docker", "{}", made.stdout);
    assert_eq!(report["extensions"][0]["status"], "Provisioning succeeded", "{}", made.stdout);
    assert!(report["created"].as_array().unwrap().iter().any(|c| c == "VM slotvm"), "{report}");
    assert!(report["fqdn"].as_str().is_some_and(|f| f.starts_with("slotvm.")), "{report}");
    let env_script = run(&["docker", "env", "slotvm"]).success();
    assert!(env_script.stdout.contains("DOCKER_MACHINE_NAME=\"slotvm\""), "{}", env_script.stdout);
    let instance = format!(
        "/subscriptions/{sub}/resourceGroups/slotvm/providers/Microsoft.Compute/virtualMachines/slotvm/extensions/docker?api-version=2024-11-01"
    );
    assert_eq!(arm.get(&instance).await.1["tags"]["azdock-extension"], "docker");

    // The CustomScript slot is Docker's: another extension is refused, naming the owner.
    let script = ["ext", "customscript", "run", "--vm", "slotvm", "-g", "slotvm", "--command", "echo taken"];
    let refused = run(&script);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("held by extension `docker`") && refused.stderr.contains("--take-over"),
        "{}",
        refused.stderr
    );
    assert_eq!(arm.get(&instance).await.1["tags"]["azdock-extension"], "docker", "nothing was put");
    // Taken over on request: the instance is the plugin's now, and Docker no longer claims it.
    let taken = run(&[&script[..], &["--take-over"]].concat());
    assert_eq!(taken.code, 0, "{}", taken.stderr);
    assert!(taken.stderr.contains("taking over handler Microsoft.Azure.Extensions.CustomScript"), "{}", taken.stderr);
    assert_eq!(arm.get(&instance).await.1["tags"]["azdock-extension"], "customscript");
    let status = run(&["ext", "docker", "status", "--vm", "slotvm", "-g", "slotvm"]);
    assert_eq!(status.json()["extension"], serde_json::Value::Null, "{}", status.stdout);
    env.run(&["local", "down"]).success();
}
