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
