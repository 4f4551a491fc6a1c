//! The command line as users see it: help, output formats, exit codes, snapshots, concurrency.

use azdock_tests::{Env, run};

#[test]
fn help_text() {
    let env = Env::new();
    let out = env.run(&["--help"]).success();
    insta::assert_snapshot!("help", out.stdout);
    let out = env.run(&["certs", "--help"]).success();
    insta::assert_snapshot!("certs_help", out.stdout);
}

#[test]
fn certs_path_as_table_json_tsv_and_yaml() {
    let env = Env::new();
    let dir = env.path().join("c");
    let c = dir.to_str().unwrap();
    let json = env.run(&["certs", "path", "-C", c]).success();
    insta::assert_snapshot!("certs_path_json", env.redact(&json.stdout));
    let yaml = env.run(&["certs", "path", "-C", c, "-o", "yaml"]).success();
    assert_eq!(
        env.redact(&yaml.stdout),
        "certDir: [HOME]/c\nca: [HOME]/c/ca.pem\ncert: [HOME]/c/cert.pem\nkey: [HOME]/c/key.pem\n"
    );
    let tsv = env.run(&["certs", "path", "-C", c, "-o", "tsv", "--query", "certDir"]).success();
    assert_eq!(tsv.stdout, format!("{c}\n"));
    let none = env.run(&["certs", "path", "-C", c, "-o", "none"]).success();
    assert_eq!(none.stdout, "");
    // `certs path` only says where things are; it creates nothing.
    assert!(!dir.exists());
}

#[test]
fn certs_show_as_a_table_through_a_query() {
    let env = Env::new();
    let c = env.path().join("c");
    let c = c.to_str().unwrap();
    env.run(&["certs", "server", "vm1", "--dns", "vm1.example.com", "--ip", "127.0.0.7", "-C", c]).success();
    let query = "[].{role: role, host: host, key: keyAlgorithm, sans: join(', ', sans), issuer: issuer}";
    let table = env.run(&["certs", "show", "-C", c, "-o", "table", "--query", query]).success();
    insta::assert_snapshot!("certs_show_table", table.stdout);
}

#[test]
fn relative_cert_dirs_are_reported_absolute() {
    let env = Env::new();
    let out = azdock_tests::run(
        env.azdock().current_dir(env.path()).args(["certs", "path", "-C", "rel", "--query", "ca", "-o", "tsv"]),
    );
    assert_eq!(env.redact(&out.stdout), "[HOME]/rel/ca.pem\n");
}

#[test]
fn the_cert_dir_defaults_to_docker_then_env_then_config() {
    let env = Env::new();
    let out = env.run(&["certs", "path", "--query", "certDir", "-o", "tsv"]).success();
    assert_eq!(env.redact(&out.stdout), "[HOME]/.docker\n");
    let out = run(env
        .azdock()
        .env("AZDOCK_DOCKER_CERT_DIR", "/srv/certs")
        .args(["certs", "path", "--query", "certDir", "-o", "tsv"]));
    assert_eq!(out.stdout, "/srv/certs\n");
    std::fs::create_dir_all(env.path().join("config")).unwrap();
    std::fs::write(
        env.path().join("config/config.toml"),
        "[defaults]\noutput = \"tsv\"\ndocker-cert-dir = \"/etc/dc\"\n",
    )
    .unwrap();
    let out = env.run(&["certs", "path", "--query", "certDir"]).success();
    assert_eq!(out.stdout, "/etc/dc\n");
    std::fs::write(env.path().join("config/config.toml"), "[defaults]\nouput = \"tsv\"\n").unwrap();
    let out = env.run(&["certs", "path"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("invalid config file") && out.stderr.contains("ouput"), "{}", out.stderr);
}

#[test]
fn error_messages_and_exit_codes() {
    let env = Env::new();
    let dir = env.path().join("c");
    env.run(&["certs", "init", "-C", dir.to_str().unwrap()]).success();
    std::fs::remove_file(dir.join("ca-key.pem")).unwrap();
    let out = env.run(&["certs", "init", "-C", dir.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!("partial_set_error", env.redact(&out.stderr));

    // clap's own usage errors are exit code 2 as well.
    let out = env.run(&["certs", "rotate"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--server <HOST>|--client|--ca"), "{}", out.stderr);
    let out = env.run(&["certs", "init", "-o", "xml"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("invalid value 'xml'"), "{}", out.stderr);
    let out = env.run(&["certs", "path", "--query", "[?"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("invalid `--query` expression `[?`"), "{}", out.stderr);
}

#[test]
fn ext_list_shows_the_built_in_extensions_with_their_handlers_and_actions() {
    let env = Env::new();
    let list = env.run(&["ext", "list"]).success().json();
    let docker = list.as_array().unwrap().iter().find(|e| e["id"] == "docker").expect("the docker extension");
    assert_eq!(docker["source"]["kind"], "builtin");
    // Every action a user can run is in the manifest: rotate-certs too.
    assert_eq!(docker["actionNames"], serde_json::json!(["install", "rotate-certs", "uninstall", "status", "verify"]));
    let handlers = docker["handlerNames"].as_array().unwrap();
    assert!(
        handlers.iter().any(|h| h.as_str().unwrap().starts_with("Microsoft.Azure.Extensions.CustomScript 2.1")),
        "{handlers:?}"
    );
    let table = env.run(&["ext", "list", "-o", "table"]).success().stdout;
    assert!(table.starts_with("Id ") && table.contains("\ndocker "), "{table}");
}

#[test]
fn completions_are_generated_from_the_command_tree() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = env.run(&["completions", shell]).success();
        assert!(out.stdout.contains("docker-cert-dir"), "{shell} completions lack the certs flags");
    }
}

#[test]
fn two_processes_started_together_end_with_one_ca() {
    let env = Env::new();
    let dir = env.path().join("race");
    let children: Vec<_> = (0..4)
        .map(|_| {
            env.azdock()
                .args([
                    "certs",
                    "init",
                    "-C",
                    dir.to_str().unwrap(),
                    "--query",
                    "certificates[0].fingerprintSha256",
                    "-o",
                    "tsv",
                ])
                .stdout(std::process::Stdio::piped())
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let fingerprints: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    assert!(fingerprints.iter().all(|f| f == &fingerprints[0] && f.len() > 90), "{fingerprints:?}");
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 4, "leftover files: {names:?}");
}

#[test]
fn a_certs_run_killed_at_any_moment_is_finished_by_the_next() {
    let env = Env::new();
    let server = |dir: &std::path::Path| {
        let mut cmd = env.azdock();
        cmd.args(["certs", "server", "vm1", "--ip", "127.0.0.7", "-C", dir.to_str().unwrap(), "-o", "none"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        cmd
    };
    // How long a whole run takes here; the kills are spread over it (and a little past it).
    let start = std::time::Instant::now();
    assert!(server(&env.path().join("whole")).status().unwrap().success());
    let whole = start.elapsed();
    let runs: u32 = 24;
    for i in 0..runs {
        let dir = env.path().join(format!("killed{i}"));
        let mut child = server(&dir).spawn().unwrap();
        std::thread::sleep(whole * i / (runs - 4));
        let _ = child.kill(); // SIGKILL: no clean-up of its own
        let _ = child.wait().unwrap();
        let out = env.run(&["certs", "server", "vm1", "--ip", "127.0.0.7", "-C", dir.to_str().unwrap()]);
        assert_eq!(out.code, 0, "run {i}, killed after {:?}: {}", whole * i / (runs - 4), out.stderr);
        let names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "run {i} left {names:?}");
        assert_eq!(names.len(), 6, "{names:?}");
        env.run(&["certs", "verify", "-C", dir.to_str().unwrap()]).success();
    }
}

#[test]
fn rotation_backs_up_and_reports_what_to_redeploy() {
    let env = Env::new();
    let dir = env.path().join("c");
    let c = dir.to_str().unwrap();
    let first =
        env.run(&["certs", "server", "vm1", "--dns", "vm1.example.com", "--ip", "127.0.0.7", "-C", c]).success().json();

    // Asking for a name the certificate lacks is refused, not silently reissued.
    let out = env.run(&["certs", "server", "vm1", "--ip", "127.0.0.8", "-C", c]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("does not cover `127.0.0.8`") && out.stderr.contains("azdock certs rotate --server vm1"),
        "{}",
        out.stderr
    );

    let renewed = env.run(&["certs", "rotate", "--server", "vm1", "-C", c]).success().json();
    assert_eq!(renewed["certificates"][0]["status"], "rotated");
    assert_eq!(renewed["certificates"][0]["sans"], serde_json::json!(["vm1.example.com", "127.0.0.7"]));
    let backup = std::path::PathBuf::from(renewed["backupDir"].as_str().unwrap());
    assert!(backup.join("vm1-server-key.pem").exists());

    let client = env.run(&["certs", "rotate", "--client", "-C", c]).success().json();
    assert_ne!(client["certificates"][0]["fingerprintSha256"], first["certificates"][1]["fingerprintSha256"]);

    let out = env.run(&["certs", "rotate", "--ca", "--yes", "-C", c]).success();
    let ca = out.json();
    assert_eq!(ca["redeploy"], serde_json::json!(["vm1"]));
    assert_ne!(ca["certificates"][0]["fingerprintSha256"], first["certificates"][0]["fingerprintSha256"]);
    assert!(out.stderr.contains("redeploy the certificates of vm1"), "{}", out.stderr);
    let verify = env.run(&["certs", "verify", "-C", c]).success();
    assert!(!verify.stdout.contains("vm1"), "the old host certificate should have moved to the backup");
}

#[test]
fn verify_reports_every_problem_and_exits_1() {
    let env = Env::new();
    let dir = env.path().join("c");
    let c = dir.to_str().unwrap();
    env.run(&["certs", "server", "vm1", "--ip", "127.0.0.7", "-C", c]).success();
    std::fs::set_permissions(dir.join("key.pem"), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = env.run(&["certs", "verify", "--san", "vm1.example.com", "-C", c, "-o", "json"]);
    assert_eq!(out.code, 1);
    let checks = out.json();
    let failed: Vec<(String, String)> = checks
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| (c["subject"].as_str().unwrap().to_owned(), c["check"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(failed, [("client".to_owned(), "permissions".to_owned()), ("server vm1".to_owned(), "san".to_owned())]);
    assert!(out.stderr.contains("2 of"), "{}", out.stderr);
}

/// The lines a create's progress ends with, in the order the work happens: what `tmux
/// capture-pane` shows a person, and what a log gets when stderr is not a terminal.
const CREATE_STEPS: &[&str] = &[
    "resource group ",
    "virtual network ",
    "NIC ",
    "server certificate ",
    "VM ",
    "inbound rule azdock-docker (port 2376)",
    "extension ",
    "docker context ",
];

/// The finished steps of `text` (lines ending in `(N.N s)`, or failed ones), in order.
fn finished_steps(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_start_matches(['✓', '✗', ' ']))
        .filter(|l| {
            l.contains(": created (") || l.contains(": reused (") || l.contains(": done (") || l.contains(": failed (")
        })
        .map(str::to_owned)
        .collect()
}

fn assert_in_order(steps: &[String], what: &str) {
    let mut at = 0;
    for wanted in CREATE_STEPS {
        let found = steps[at..].iter().position(|s| s.starts_with(wanted));
        let Some(i) = found else { panic!("{what}: no `{wanted}` after step {at} in {steps:#?}") };
        at += i + 1;
    }
    for s in steps {
        let secs = [": created (", ": reused (", ": done (", ": failed ("]
            .iter()
            .find_map(|w| s.split_once(w))
            .and_then(|(_, t)| t.split_once(" s)"))
            .and_then(|(t, _)| t.parse::<f64>().ok());
        assert!(secs.is_some(), "{what}: `{s}` gives no time");
    }
}

/// Progress as a person sees it and as a log keeps it: a create in tmux shows each step with
/// its time, in order, and the same create with stderr a file writes plain lines without a
/// control character; `--only-show-errors` silences it.
#[test]
fn a_create_shows_each_step_with_its_time_on_a_terminal_and_in_a_log() {
    let _one_dockerd_at_a_time = azdock_tests::dockerd_available().then(azdock_tests::dockerd_lock);
    let env = Env::new();
    env.run(&["local", "up", "--instant"]).success();

    // Not a terminal: plain lines.
    let out =
        env.run(&["--cloud", "local", "vm", "docker", "create", "logged", "--generate-ssh-keys", "-y", "-o", "none"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains('\u{1b}') && !out.stderr.contains('\r'), "no control characters: {:?}", out.stderr);
    assert_in_order(&finished_steps(&out.stderr), "log");
    let quiet = env.run(&[
        "--cloud",
        "local",
        "vm",
        "docker",
        "create",
        "logged",
        "--generate-ssh-keys",
        "-y",
        "-o",
        "none",
        "--only-show-errors",
    ]);
    assert_eq!((quiet.code, quiet.stderr.as_str()), (0, ""));
    // `--no-wait` says what it started and did not wait for.
    let started = env.run(&[
        "--cloud",
        "local",
        "vm",
        "docker",
        "create",
        "nowait",
        "--generate-ssh-keys",
        "-y",
        "-o",
        "none",
        "--no-wait",
    ]);
    assert_eq!(started.code, 0, "{}", started.stderr);
    assert!(
        started
            .stderr
            .lines()
            .any(|l| l.starts_with("extension ") && l.contains(": accepted, not waited for (--no-wait) (")),
        "{}",
        started.stderr
    );

    // A terminal: tmux runs the create as a person would type it.
    let screen = in_tmux(&env, "--cloud local vm docker create shown --generate-ssh-keys -y -o none", |_| false).0;
    assert!(screen.contains("EXIT=0"), "the create did not finish in tmux:\n{screen}");
    let steps = finished_steps(&screen);
    assert_in_order(&steps, "terminal");
    assert!(screen.lines().any(|l| l.starts_with("✓ VM shown: created (")), "{screen}");
    env.run(&["local", "down"]).success();
}

/// Runs `azdock ARGS` in a tmux session of its own (160×60) as a person would, and returns the
/// final screen and whether `watch` held for any screen captured while it ran (every 100 ms;
/// the command's time is bounded by the loop).
fn in_tmux(env: &Env, args: &str, watch: impl Fn(&str) -> bool) -> (String, bool) {
    let script = env.path().join("in-tmux.sh");
    let cmd = env.azdock();
    let mut lines = vec!["#!/bin/sh".to_owned()];
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            lines.push(format!("export {}='{}'", k.to_string_lossy(), v.to_string_lossy()));
        }
    }
    lines.push(format!("'{}' {args}; echo \"EXIT=$?\"; sleep 120", cmd.get_program().to_string_lossy()));
    std::fs::write(&script, lines.join("\n")).unwrap();
    let socket = format!("azdock-test-{}-{}", std::process::id(), args.len());
    let tmux = |args: &[&str]| azdock_tests::run(std::process::Command::new("tmux").arg("-L").arg(&socket).args(args));
    let started = tmux(&["new-session", "-d", "-x", "160", "-y", "60", "-s", "t", "sh", script.to_str().unwrap()]);
    assert_eq!(started.code, 0, "{}", started.stderr);
    let (mut screen, mut seen) = (String::new(), false);
    for _ in 0..1200 {
        screen = tmux(&["capture-pane", "-p", "-t", "t", "-S", "-200"]).stdout;
        if screen.contains("EXIT=") {
            break;
        }
        seen |= watch(&screen);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    tmux(&["kill-server"]);
    (screen, seen)
}

/// A fleet run on a terminal shows one bar (VMs done of the total, failures, rate, ETA) while
/// it works and clears it at the end; in a log there is no bar.
#[test]
fn a_fleet_run_shows_one_bar_on_a_terminal_then_its_table() {
    let env = Env::new();
    let up = env
        .run(&[
            "local",
            "up",
            "--durations",
            "network=0,vm-create=0,extension=0,vm-action=2500,delete=0,group-delete=0",
        ])
        .success()
        .json();
    let sub = up["subscriptionId"].as_str().unwrap();
    let mut ids = Vec::new();
    for vm in ["fleet1", "fleet2", "fleet3"] {
        env.run(&["--cloud", "local", "vm", "create", vm, "-g", "fleet", "--generate-ssh-keys", "-o", "none"])
            .success();
        ids.push(format!("/subscriptions/{sub}/resourceGroups/fleet/providers/Microsoft.Compute/virtualMachines/{vm}"));
    }
    let bar = |screen: &str| screen.lines().any(|l| l.contains("/3 restart: 0 failed") && l.contains("ETA"));
    let (screen, seen) = in_tmux(&env, &format!("--cloud local vm restart --ids {} -o table", ids.join(" ")), bar);
    assert!(seen, "no progress bar was shown while the fleet ran; last screen:\n{screen}");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(!bar(&screen), "the bar is gone once the run ends:\n{screen}");
    let logged = env.run(&["--cloud", "local", "vm", "restart", "--ids", &ids[0], &ids[1], "-o", "table"]);
    assert_eq!(logged.code, 0, "{}", logged.stderr);
    assert!(!logged.stderr.contains('\u{1b}') && !logged.stderr.contains("ETA"), "{}", logged.stderr);
    env.run(&["local", "down"]).success();
}

/// GCC's unwinder is linked into azdock (its build script), so no process start pays for
/// loading `libgcc_s.so` and running its `cpuid` constructor (that it still unwinds is tested
/// in the crate's own tests, which are linked the same way).
#[test]
fn azdock_links_the_unwinder_statically() {
    let archive = run(std::process::Command::new("cc").arg("-print-file-name=libgcc_eh.a")).success().stdout;
    assert!(std::path::Path::new(archive.trim()).is_absolute(), "this machine's cc knows no libgcc_eh.a: {archive}");
    let dynamic = run(std::process::Command::new("readelf").arg("-d").arg(azdock_tests::azdock_bin())).success().stdout;
    assert!(dynamic.contains("(NEEDED)") && dynamic.contains("libc.so.6"), "{dynamic}");
    assert!(!dynamic.contains("libgcc_s"), "azdock still needs libgcc_s:\n{dynamic}");
}
