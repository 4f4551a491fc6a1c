//! `azdock local`: the local cloud as a background process, through the real binary, checked
//! with a plain HTTPS client against the endpoint and credentials it prints.

use serde_json::{Value, json};

use azdock_tests::Env;
use azdock_tests::arm::Arm;

/// Signs in with the printed credentials and sends one ARM request.
async fn arm(up: &Value, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = Arm::for_local_cloud(up).await;
    let (status, _, body) = client.call(method, path, body).await;
    (status.as_u16(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_up_down_keeps_state_and_reset_clears_it() {
    let env = Env::new();
    let up = env.run(&["local", "up", "--instant"]).success().json();
    assert_eq!(up["status"], "running");
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    let rg = format!("/subscriptions/{sub}/resourcegroups/kept?api-version=2021-04-01");
    let (status, _) = arm(&up, reqwest::Method::PUT, &rg, Some(json!({"location": "westeurope"}))).await;
    assert_eq!(status, 201);
    // `up` again reports the running cloud rather than starting a second one.
    let again = env.run(&["local", "up"]).success().json();
    assert_eq!(again["pid"], up["pid"]);

    assert_eq!(env.run(&["local", "down"]).success().json()["status"], "stopped");
    assert_eq!(env.run(&["local", "status"]).success().json()["status"], "stopped");
    assert_eq!(env.run(&["local", "down"]).success().json()["status"], "not running");

    let up = env.run(&["local", "up", "--instant"]).success().json();
    let (status, body) = arm(&up, reqwest::Method::GET, &rg, None).await;
    assert_eq!(status, 200, "the resource group survived down/up: {body}");
    let status = env.run(&["local", "status"]).success().json();
    assert_eq!((status["status"].as_str(), status["resources"].as_u64()), (Some("running"), Some(1)));

    let out = env.run(&["local", "reset"]);
    assert_eq!(out.code, 2, "reset without a terminal needs --yes: {out:?}");
    let up = env.run(&["local", "reset", "--yes"]).success().json();
    let (status, _) = arm(&up, reqwest::Method::GET, &rg, None).await;
    assert_eq!(status, 404, "reset deleted the resource group");
    assert!(env.run(&["local", "logs"]).success().stdout.contains("listening on"));
    env.run(&["local", "down"]).success();

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.path().join("xdg-data/azdock/local")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rules_can_be_given_at_start() {
    let env = Env::new();
    let bad = env.path().join("bad.json");
    std::fs::write(&bad, r#"{"rules": [{"fault": {"kind": "explode"}}]}"#).unwrap();
    let out = env.run(&["local", "up", "--faults", bad.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("invalid fault rules") && out.stderr.contains("bad.json"), "{}", out.stderr);
    assert_eq!(env.run(&["local", "status"]).success().json()["status"], "stopped", "nothing was started");

    let faults = env.path().join("faults.json");
    std::fs::write(&faults, r#"{"seed": 7, "rules": [{"method": "GET", "pathContains": "/resourcegroups/", "sequence": [{"kind": "status", "status": 503}]}]}"#).unwrap();
    let up = env.run(&["local", "up", "--instant", "--faults", faults.to_str().unwrap()]).success().json();
    let rg =
        format!("/subscriptions/{}/resourcegroups/any?api-version=2021-04-01", up["subscriptionId"].as_str().unwrap());
    assert_eq!(arm(&up, reqwest::Method::GET, &rg, None).await.0, 503, "the first GET meets the injected fault");
    assert_eq!(arm(&up, reqwest::Method::GET, &rg, None).await.0, 404, "then the sequence is spent");
    env.run(&["local", "down"]).success();
}

/// `curl -k` as `nobody` (what any other user of the machine can do): the HTTP status.
fn curl_as_nobody(url: &str, headers: &[&str]) -> String {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "curl", "-sk", "-o", "/dev/null"]);
    cmd.args(["-w", "%{http_code}", "--max-time", "10"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("setpriv and curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a file as `nobody`: whether it worked.
fn readable_by_nobody(path: &std::path::Path) -> bool {
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "cat"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("setpriv")
        .success()
}

/// Every file below `dir` with its mode, without entering the VMs' roots (their guests own them).
fn modes(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, u32, bool)>) {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        out.push((entry.path(), meta.permissions().mode() & 0o7777, meta.is_dir()));
        if meta.is_dir() && entry.file_name() != "vms" {
            modes(&entry.path(), out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_can_use_the_local_cloud() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::new();
    // Let other users walk up to the state directory, so that its own modes are what stop them.
    for dir in [env.path().to_owned(), env.path().join("xdg-data"), env.path().join("xdg-data/azdock")] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let up = env.run(&["local", "up", "--instant"]).success().json();
    let base = up["endpoint"].as_str().unwrap().to_owned();
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    let owner = Arm::for_local_cloud(&up).await;
    owner.linux_vm(&sub, "g", "vm1").await;

    let token = format!("resource={base}/&api-version=2018-02-01");
    let refused = [
        (format!("{base}/metadata/identity/oauth2/token?{token}"), vec!["Metadata: true"]),
        (format!("{base}/_imds/guess/metadata/identity/oauth2/token?{token}"), vec!["Metadata: true"]),
        (format!("{base}/msi/token?{token}"), vec!["X-IDENTITY-HEADER: guess"]),
        (format!("{base}/_emulator/identity"), vec![]),
        (format!("{base}/_emulator/faults"), vec![]),
        (format!("{base}/_emulator/requests"), vec![]),
        (format!("{base}/_emulator/health"), vec![]),
        (format!("{base}/_emulator/guests/{sub}/g/vm1"), vec![]),
        (format!("{base}/_emulator/guests/{sub}/g/vm1/files?path=/etc/hostname"), vec![]),
        (format!("{base}/_emulator/identity"), vec!["x-azdock-admin-key: guess"]),
    ];
    for (url, headers) in &refused {
        let status = curl_as_nobody(url, headers);
        assert!(status == "401" || status == "403", "{url} answered {status} to nobody");
    }

    // The owner, with the keys from the state directory, still gets all of it.
    let (status, identity) = owner.admin(reqwest::Method::GET, "/identity", None).await;
    assert_eq!(status, 200, "{identity}");
    let imds = identity["imdsEndpoint"].as_str().unwrap();
    assert!(imds.starts_with(&format!("{base}/_imds/")), "{imds}");
    let http = &owner.http;
    let got = http.get(format!("{imds}/metadata/identity/oauth2/token?{token}")).header("Metadata", "true");
    assert_eq!(got.send().await.unwrap().status(), 200);
    let (endpoint, header) =
        (identity["identityEndpoint"].as_str().unwrap(), identity["identityHeader"].as_str().unwrap());
    let got = http.get(format!("{endpoint}?{token}")).header("X-IDENTITY-HEADER", header);
    assert_eq!(got.send().await.unwrap().status(), 200);
    assert_eq!(owner.admin(reqwest::Method::GET, "/health", None).await.0, 200);
    // The IMDS key never shows in the request log.
    let (_, log) = owner.admin(reqwest::Method::GET, "/requests", None).await;
    let secret = imds.rsplit('/').next().unwrap();
    assert!(!log.to_string().contains(secret), "the request log shows the IMDS key");
    let status = env.run(&["local", "status"]).success().json();
    assert!(
        status["clients"].as_str().unwrap().contains("admin.key")
            || status["clients"].as_str().unwrap().contains("keys in"),
        "{status}"
    );

    // Every file of the state directory is 0600 and every directory 0700, and nobody reads any.
    let dir = std::path::PathBuf::from(up["stateDir"].as_str().unwrap());
    let mut found = Vec::new();
    modes(&dir, &mut found);
    for name in ["server.json", "emulator.log", "principal.json", "admin.key", "imds.key", "signing.key"] {
        assert!(found.iter().any(|(p, _, _)| p.ends_with(name)), "no {name} in {found:?}");
    }
    for (path, mode, is_dir) in &found {
        assert_eq!(*mode, if *is_dir { 0o700 } else { 0o600 }, "{}", path.display());
        if !is_dir {
            assert!(!readable_by_nobody(path), "nobody reads {}", path.display());
        }
    }
    env.run(&["local", "down"]).success();
}
