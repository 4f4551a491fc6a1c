//! The client against azdock's local cloud over HTTPS: operations, errors, faults, throttling.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use azdock_azure_sm::{Arm, Body, ClientSecretCredential, Cloud, RetryPolicy};
use azdock_core::Secret;
use azdock_emulator::{Config, Emulator, FaultKind, FaultRule, LOCAL_SUBSCRIPTION, ThrottleConfig};
use serde_json::{Value, json};

const R: &str = "api-version=2021-04-01";
const N: &str = "api-version=2024-05-01";

/// Fast retries, so fault tests take seconds.
fn quick() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        deadline: Duration::from_secs(20),
        ..RetryPolicy::default()
    }
}

async fn cloud(tweak: impl FnOnce(&mut Config), policy: RetryPolicy) -> (Emulator, Arm, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    tweak(&mut config);
    let emulator = Emulator::start(config).await.unwrap();
    let p = emulator.principals()[0].clone();
    let cloud = Cloud::local(emulator.base_url(), emulator.ca_pem());
    let credential = ClientSecretCredential::new(
        &cloud.authority_host,
        &p.tenant_id,
        &p.client_id,
        Secret::new(p.client_secret.clone()),
    );
    let arm = Arm::new(cloud, Arc::new(credential), policy).unwrap();
    (emulator, arm, dir)
}

fn rg(name: &str) -> String {
    format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups/{name}?{R}")
}

fn vnet(group: &str) -> String {
    format!(
        "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Network/virtualNetworks/vnet?{N}"
    )
}

fn vnet_body() -> Value {
    json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}})
}

async fn requests(emulator: &Emulator, http: &reqwest::Client) -> Vec<Value> {
    let log: Value = http
        .get(format!("{}/_emulator/requests", emulator.base_url()))
        .header(azdock_emulator::ADMIN_KEY_HEADER, emulator.admin_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    log["requests"].as_array().unwrap().clone()
}

fn admin_client(emulator: &Emulator) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(emulator.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder().add_root_certificate(ca).tls_built_in_root_certs(false).build().unwrap()
}

#[tokio::test]
async fn puts_follow_operations_and_errors_keep_arms_code() {
    let (_emulator, arm, _dir) = cloud(|c| c.durations.network = Duration::from_millis(300), quick()).await;
    let group = arm.put(&rg("g"), &Body::json(&json!({"location": "westeurope"})).unwrap()).await.unwrap();
    assert_eq!(group["properties"]["provisioningState"], "Succeeded");
    let start = Instant::now();
    let created = arm.put(&vnet("g"), &Body::json(&vnet_body()).unwrap()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300), "returned before the operation ended");
    assert_eq!(created["properties"]["provisioningState"], "Succeeded", "the final GET shows the finished resource");

    let err = arm.get(&rg("missing")).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("ResourceGroupNotFound")));
    assert_eq!(err.to_string(), "(ResourceGroupNotFound) Resource group 'missing' could not be found.");

    arm.delete(&rg("g")).await.unwrap();
    assert_eq!(arm.get(&rg("g")).await.unwrap_err().code(), Some("ResourceGroupNotFound"));
}

#[tokio::test]
async fn a_failed_operation_surfaces_its_error() {
    let (emulator, arm, _dir) = cloud(|_| {}, quick()).await;
    arm.put(&rg("g"), &Body::json(&json!({"location": "westeurope"})).unwrap()).await.unwrap();
    let rule = FaultRule {
        method: Some("PUT".into()),
        path_contains: Some("/virtualNetworks/".into()),
        rate: None,
        sequence: vec![FaultKind::LroFail {
            code: "InternalOperationError".into(),
            message: "the region is on fire".into(),
        }],
        fault: None,
        used: 0,
    };
    emulator.set_faults(1, vec![rule]);
    let err = arm.put(&vnet("g"), &Body::json(&vnet_body()).unwrap()).await.unwrap_err();
    assert_eq!(err.code(), Some("InternalOperationError"));
    assert!(err.to_string().contains("the region is on fire"));
}

#[tokio::test]
async fn an_operation_that_says_retry_after_0_is_not_polled_back_to_back() {
    let (emulator, arm, _dir) = cloud(|c| c.durations.network = Duration::from_millis(3500), quick()).await;
    arm.put(&rg("g"), &Body::json(&json!({"location": "westeurope"})).unwrap()).await.unwrap();
    // As ARM and its test proxies do: `Retry-After: 0` on every answer while the operation runs.
    let zero = |method: &str| FaultRule {
        method: Some(method.into()),
        path_contains: Some("/virtualNetworks/".into()),
        rate: Some(1.0),
        sequence: vec![],
        fault: Some(FaultKind::RetryAfter { seconds: 0 }),
        used: 0,
    };
    let op_zero = FaultRule { path_contains: Some("/operations/".into()), ..zero("GET") };
    emulator.set_faults(1, vec![zero("PUT"), op_zero]);
    arm.put(&vnet("g"), &Body::json(&vnet_body()).unwrap()).await.unwrap();
    let http = admin_client(&emulator);
    let polls = requests(&emulator, &http)
        .await
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"].as_str().unwrap().contains("/operations/"))
        .count();
    // A poll at once, then one a second at most: about four in 3.5 s, where back-to-back polling
    // makes dozens.
    assert!((2..=6).contains(&polls), "{polls} polls");
}

#[tokio::test]
async fn transient_faults_are_retried_and_nothing_is_created_twice() {
    let (emulator, arm, _dir) = cloud(|_| {}, quick()).await;
    let fault = |kind: FaultKind| FaultRule {
        method: None,
        path_contains: Some("/subscriptions/".into()),
        rate: Some(0.2),
        sequence: vec![],
        fault: Some(kind),
        used: 0,
    };
    // A fifth of requests fail, each with one of three transient faults (rules are tried in
    // order, so each takes a share of what the previous one let through).
    emulator.set_faults(
        42,
        vec![
            fault(FaultKind::Status { status: 429 }),
            FaultRule { rate: Some(0.1), ..fault(FaultKind::Status { status: 503 }) },
            FaultRule { rate: Some(0.05), ..fault(FaultKind::Drop) },
        ],
    );
    for i in 0..10 {
        let group = format!("g{i}");
        arm.put(&rg(&group), &Body::json(&json!({"location": "westeurope"})).unwrap()).await.unwrap();
        arm.put(&vnet(&group), &Body::json(&vnet_body()).unwrap()).await.unwrap();
    }
    emulator.set_faults(42, vec![]);
    let groups = arm.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups?{R}")).await.unwrap();
    assert_eq!(groups["value"].as_array().unwrap().len(), 10);
    let vnets = arm
        .get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.Network/virtualNetworks?{N}"))
        .await
        .unwrap();
    assert_eq!(vnets["value"].as_array().unwrap().len(), 10, "each VNet exactly once");
    let log = requests(&emulator, &admin_client(&emulator)).await;
    let faulted = log.iter().filter(|r| matches!(r["status"].as_u64(), Some(0 | 429 | 503))).count();
    assert!(faulted >= 5, "the faults did happen ({faulted})");
}

#[tokio::test]
async fn a_permanent_failure_ends_in_bounded_time_with_the_reason() {
    let policy = RetryPolicy { attempts: 4, ..quick() };
    let (emulator, arm, _dir) = cloud(|_| {}, policy).await;
    emulator.set_faults(
        1,
        vec![FaultRule {
            method: Some("GET".into()),
            path_contains: None,
            rate: Some(1.0),
            sequence: vec![],
            fault: Some(FaultKind::Status { status: 500 }),
            used: 0,
        }],
    );
    let start = Instant::now();
    let err = arm.get(&rg("g")).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, azdock_azure_sm::AzureError::Exhausted { attempts: 4, .. }), "{err}");
    assert_eq!(err.code(), Some("InternalServerError"));
}

#[tokio::test]
async fn a_post_whose_connection_dropped_is_not_sent_again() {
    let (emulator, arm, _dir) = cloud(|_| {}, quick()).await;
    let http = admin_client(&emulator);
    emulator.set_faults(
        1,
        vec![FaultRule {
            method: Some("POST".into()),
            // ARM's POST, not the token request (which is safe to repeat, and is repeated).
            path_contains: Some("/providers/Microsoft.Compute/register".into()),
            rate: None,
            sequence: vec![FaultKind::Drop],
            fault: None,
            used: 0,
        }],
    );
    let url = format!("/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.Compute/register?{R}");
    let err = arm.post(&url, None).await.unwrap_err();
    assert!(matches!(err, azdock_azure_sm::AzureError::Transport { .. }), "{err}");
    let posts = requests(&emulator, &http)
        .await
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"].as_str().is_some_and(|p| p.ends_with("/register")))
        .count();
    assert_eq!(posts, 1, "a POST that may have reached ARM is never repeated blindly");
}

#[tokio::test]
async fn a_fan_out_paces_itself_instead_of_meeting_429() {
    let throttle = ThrottleConfig { write_burst: 30.0, write_per_sec: 20.0, ..ThrottleConfig::default() };
    let (emulator, arm, _dir) = cloud(|c| c.throttle = throttle, quick()).await;
    let mut tasks = Vec::new();
    for i in 0..80 {
        let arm = arm.clone();
        tasks.push(tokio::spawn(async move {
            arm.put(&rg(&format!("fan{i}")), &Body::json(&json!({"location": "westeurope"})).unwrap()).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let log = requests(&emulator, &admin_client(&emulator)).await;
    let throttled = log.iter().filter(|r| r["status"] == 429).count();
    assert_eq!(throttled, 0, "{throttled} of 80 writes met a 429");
}

/// Token requests: a 503 from Entra is tried again (four attempts in all), and a token is
/// fetched once and then reused for every call until it is due.
#[tokio::test]
async fn token_requests_ride_out_503s_and_a_token_serves_many_calls() {
    let (emulator, arm, _dir) = cloud(|_| {}, quick()).await;
    let token_fault = |sequence: Vec<FaultKind>, rate: Option<f64>, fault: Option<FaultKind>| FaultRule {
        method: Some("POST".into()),
        path_contains: Some("/oauth2/v2.0/token".into()),
        rate,
        sequence,
        fault,
        used: 0,
    };
    let unavailable = || FaultKind::Status { status: 503 };
    emulator.set_faults(1, vec![token_fault(vec![unavailable(), unavailable(), unavailable()], None, None)]);
    arm.get(&format!("/subscriptions?{R}")).await.unwrap();
    arm.get(&format!("/subscriptions?{R}")).await.unwrap();
    let log = requests(&emulator, &admin_client(&emulator)).await;
    let tokens: Vec<u64> = log
        .iter()
        .filter(|r| r["path"].as_str().unwrap_or_default().ends_with("/oauth2/v2.0/token"))
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(tokens, [503, 503, 503, 200], "three 503s, then the token, and that token is reused");

    // Entra down for good: four attempts, then its status.
    let (emulator, arm, _dir) = cloud(|_| {}, quick()).await;
    emulator.set_faults(1, vec![token_fault(vec![], Some(1.0), Some(unavailable()))]);
    let err = arm.get(&format!("/subscriptions?{R}")).await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    let log = requests(&emulator, &admin_client(&emulator)).await;
    let attempts =
        log.iter().filter(|r| r["path"].as_str().unwrap_or_default().ends_with("/oauth2/v2.0/token")).count();
    assert_eq!(attempts, 4);
}

/// `az vm extension set`'s request: the handler's latest version, protected settings sent, and
/// either the finished extension or, without waiting, ARM's first answer.
#[tokio::test]
async fn an_extension_is_set_with_its_latest_version_and_waited_for_unless_asked_not_to() {
    use azdock_azure_sm::extensions::{SetRequest, VersionCache, set};

    let (emulator, arm, _dir) = cloud(|c| c.durations.extension = Duration::from_millis(1500), quick()).await;
    let plain = azdock_tests::arm::Arm::sign_in(
        emulator.base_url(),
        emulator.ca_pem().as_bytes(),
        &emulator.principals()[0].tenant_id,
        &emulator.principals()[0].client_id,
        &emulator.principals()[0].client_secret,
    )
    .await;
    plain.linux_vm(LOCAL_SUBSCRIPTION, "g", "vm1").await;
    let vm =
        format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1");
    let protected = Secret::new(json!({"username": "ops", "password": "N3w-Passw0rd!"}));
    let request = |wait: bool| SetRequest {
        publisher: "Microsoft.OSTCExtensions",
        kind: "VMAccessForLinux",
        protected_settings: Some(&protected),
        wait,
        ..SetRequest::default()
    };
    let versions = VersionCache::default();
    let done = set(&arm, &vm, &request(true), &versions).await.unwrap();
    assert_eq!(done["properties"]["provisioningState"], "Succeeded", "{done}");
    assert_eq!(done["properties"]["typeHandlerVersion"], "1.5", "major.minor of the latest version");
    assert_eq!(done["name"], "VMAccessForLinux");
    let started =
        set(&arm, &vm, &SetRequest { force_update: Some("2".into()), ..request(false) }, &versions).await.unwrap();
    assert_eq!(started["properties"]["provisioningState"], "Updating", "without waiting: ARM's first answer");
}

/// A cloud's endpoints as `cloud register` discovers them, and its locations.
#[tokio::test]
async fn a_cloud_is_discovered_from_its_metadata_and_lists_its_locations() {
    let (emulator, arm, _dir) = cloud(|_| {}, quick()).await;
    let (login, audience) =
        azdock_azure_sm::clouds::discover(emulator.base_url(), Some(emulator.ca_pem())).await.unwrap();
    assert_eq!((login.as_str(), audience), (emulator.base_url(), format!("{}/", emulator.base_url())));
    let regions = azdock_azure_sm::locations::list(&arm, LOCAL_SUBSCRIPTION).await.unwrap();
    assert!(regions.iter().any(|r| r.name == "westus" && r.display_name == "West US"), "{regions:?}");
    assert_eq!(azdock_azure_sm::locations::resolve(&regions, "West Europe").unwrap(), "westeurope");
}
