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

    let first = up["endpoint"].clone();
    let up = env.run(&["local", "up", "--instant"]).success().json();
    let (status, body) = arm(&up, reqwest::Method::GET, &rg, None).await;
    assert_eq!(status, 200, "the resource group survived down/up: {body}");
    assert_eq!(up["endpoint"], first, "the port is kept, so a cloud registered in az stays valid");
    let status = env.run(&["local", "status"]).success().json();
    assert_eq!((status["status"].as_str(), status["resources"].as_u64()), (Some("running"), Some(1)));

    let out = env.run(&["local", "reset"]);
    assert_eq!(out.code, 2, "reset without a terminal needs --yes: {out:?}");
    let up = env.run(&["local", "reset", "--yes"]).success().json();
    let (status, _) = arm(&up, reqwest::Method::GET, &rg, None).await;
    assert_eq!(status, 404, "reset deleted the resource group");
    assert_eq!(up["endpoint"], first, "reset keeps the port too");
    assert!(env.run(&["local", "logs"]).success().stdout.contains("listening on"));
    env.run(&["local", "down"]).success();

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.path().join("xdg-data/azdock/local")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);

    // Its port taken by someone else: a clear refusal naming the way out, not a new port.
    let port: u16 = first.as_str().unwrap().rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = env.run(&["local", "up"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(&format!("127.0.0.1:{port}")) && out.stderr.contains("--port"), "{}", out.stderr);
    drop(squatter);
    // `--port` moves it, and the new port is the one kept.
    let other = azdock_tests::free_port();
    let moved = env.run(&["local", "up", "--port", &other.to_string()]).success().json();
    assert!(moved["endpoint"].as_str().unwrap().ends_with(&format!(":{other}")), "{moved}");
    env.run(&["local", "down"]).success();
    let again = env.run(&["local", "up"]).success().json();
    assert_eq!(again["endpoint"], moved["endpoint"]);
    env.run(&["local", "down"]).success();
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
    let clients = status["clients"].as_str().unwrap();
    assert!(clients.contains(up["stateDir"].as_str().unwrap()) && clients.contains("uid 0"), "{status}");

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

/// A burst of resource-group PUTs, 16 at a time, until the cloud stops answering; the names
/// whose PUT was acknowledged (200/201).
async fn burst(arm: &Arm, sub: &str, trial: usize, count: usize) -> Vec<String> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (arm, next, sub) = (arm.clone(), next.clone(), sub.to_owned());
        workers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return acked;
                }
                let name = format!("t{trial}-g{i}");
                let url = arm.url(&format!("/subscriptions/{sub}/resourcegroups/{name}?api-version=2021-04-01"));
                let sent = arm.http.put(url).bearer_auth(&arm.token).json(&json!({"location": "westeurope"})).send();
                match tokio::time::timeout(std::time::Duration::from_secs(10), sent).await {
                    Ok(Ok(resp)) if resp.status() == 200 || resp.status() == 201 => acked.push(name),
                    Ok(Ok(_)) => {}
                    // The cloud is gone: nothing more will be acknowledged.
                    Ok(Err(_)) | Err(_) => return acked,
                }
            }
        }));
    }
    let mut acked = Vec::new();
    for w in workers {
        acked.extend(w.await.unwrap());
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_crash() {
    let env = Env::new();
    let mut total = 0;
    // A fixed sequence of kill points between 20 ms and 800 ms, so a failure can be replayed.
    let mut seed: u64 = 0x5eed_cafe;
    for trial in 0..20 {
        let up = env.run(&["local", "up", "--instant", "--no-throttle"]).success().json();
        let (pid, sub) = (up["pid"].as_u64().unwrap(), up["subscriptionId"].as_str().unwrap().to_owned());
        let arm = Arm::for_local_cloud(&up).await;
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let kill_after = std::time::Duration::from_millis(20 + (seed >> 33) % 780);
        let writes = tokio::spawn({
            let (arm, sub) = (arm.clone(), sub.clone());
            async move { burst(&arm, &sub, trial, 400).await }
        });
        tokio::time::sleep(kill_after).await;
        azdock_tests::kill_and_wait(pid);
        let acked = writes.await.unwrap();
        total += acked.len();

        let up = env.run(&["local", "up", "--instant", "--no-throttle"]).success().json();
        assert_ne!(up["pid"].as_u64(), Some(pid), "trial {trial}: a new local cloud");
        let arm = Arm::for_local_cloud(&up).await;
        for name in &acked {
            let (status, body) =
                arm.get(&format!("/subscriptions/{sub}/resourcegroups/{name}?api-version=2021-04-01")).await;
            assert_eq!(status, 200, "trial {trial} (killed after {kill_after:?}): acknowledged group {name} is gone");
            assert_eq!(body["name"], name.as_str(), "{body}");
            assert_eq!(body["properties"]["provisioningState"], "Succeeded", "{body}");
        }
        // Nothing half-written: every group there is whole.
        let (status, list) = arm.get(&format!("/subscriptions/{sub}/resourcegroups?api-version=2021-04-01")).await;
        assert_eq!(status, 200);
        for group in list["value"].as_array().unwrap() {
            assert!(group["name"].is_string() && group["location"] == "westeurope", "{group}");
        }
        env.run(&["local", "down"]).success();
    }
    assert!(total > 200, "the bursts were acknowledged {total} writes in all; the test proves little");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_from_an_earlier_version_is_migrated_and_a_bad_one_refused() {
    let env = Env::new();
    let dir = env.path().join("xdg-data/azdock/local");
    std::fs::create_dir_all(&dir).unwrap();
    // What version 1 wrote: one snapshot, no journal, no operations.
    let sub = "00000000-0000-4000-8000-00000000d0c1";
    let id = format!("/subscriptions/{sub}/resourceGroups/Old");
    let v1 = json!({"version": 1, "next_ip": 7, "resources": [{"id": id, "body": {"id": id, "name": "Old", "type": "Microsoft.Resources/resourceGroups", "location": "westeurope", "properties": {"provisioningState": "Succeeded"}}}], "vms": {}});
    std::fs::write(dir.join("state.json"), v1.to_string()).unwrap();
    let up = env.run(&["local", "up", "--instant"]).success().json();
    let (status, body) = arm(&up, reqwest::Method::GET, &format!("{id}?api-version=2021-04-01"), None).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("Old")), "{body}");
    env.run(&["local", "down"]).success();
    let stored: Value = serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(stored["version"], 2, "migrated on first start");

    // A state this version cannot read is refused, with the way forward, and left as it was.
    let future = json!({"version": 99, "whatever": true}).to_string();
    std::fs::write(dir.join("state.json"), &future).unwrap();
    let out = env.run(&["local", "up"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("azdock local reset") && out.stderr.contains("state version 99"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(dir.join("state.json")).unwrap(), future);
    std::fs::write(dir.join("state.json"), "{ not json").unwrap();
    let out = env.run(&["local", "up"]);
    assert!(out.stderr.contains("azdock local reset") && out.stderr.contains("not valid JSON"), "{}", out.stderr);
    // `local reset` starts over.
    env.run(&["local", "reset", "--yes"]).success();
    env.run(&["local", "up", "--instant"]).success();
    env.run(&["local", "down"]).success();
}

#[test]
fn a_stale_runtime_file_never_gets_another_process_signalled() {
    let env = Env::new();
    let dir = env.path().join("xdg-data/azdock/local");
    std::fs::create_dir_all(&dir).unwrap();
    // After a crash or a reboot, the pid in server.json can belong to anything.
    let mut bystander = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let stale = json!({"pid": bystander.id(), "startTime": 1, "baseUrl": "https://127.0.0.1:9"});
    std::fs::write(dir.join("server.json"), stale.to_string()).unwrap();
    assert_eq!(env.run(&["local", "down"]).success().json()["status"], "not running");
    assert_eq!(env.run(&["local", "status"]).success().json()["status"], "stopped");
    // An earlier azdock's file, without a start time: the command line decides.
    let legacy = json!({"pid": bystander.id(), "baseUrl": "https://127.0.0.1:9"});
    std::fs::write(dir.join("server.json"), legacy.to_string()).unwrap();
    assert_eq!(env.run(&["local", "down"]).success().json()["status"], "not running");
    assert!(bystander.try_wait().unwrap().is_none(), "the bystander was signalled");
    // And a real one is still found and stopped.
    let up = env.run(&["local", "up", "--instant"]).success().json();
    assert_ne!(up["pid"].as_u64(), Some(u64::from(bystander.id())));
    assert_eq!(env.run(&["local", "down"]).success().json()["status"], "stopped");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}
