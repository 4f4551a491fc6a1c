//! Docker hosts end to end against the local cloud: `vm docker create` with each handler, the
//! certificates travelling through ARM to a real dockerd the local cloud starts, and the real
//! `docker` CLI connecting with `--tlsverify` and through the docker context azdock made; then
//! `ext docker` on an existing VM, the failure paths and their clean-up, an interrupted create,
//! and every bad argument refused before any Azure call.

// The dockerd lock serialises whole tests, each on its own runtime; holding it across awaits is
// the point, and nothing inside a test takes it again.
#![allow(clippy::await_holding_lock)]

use azdock_tests::arm::Arm;
use azdock_tests::{Env, Output};
use serde_json::{Value, json};

/// `azdock local up` (instant unless `durations` says otherwise) and a plain ARM client.
async fn cloud(env: &Env, durations: Option<&str>) -> (Value, Arm) {
    let mut args = vec![];
    match durations {
        Some(d) => args.extend(["--durations", d]),
        None => args.push("--instant"),
    }
    azdock_tests::local_cloud(env, &args).await
}

fn create(env: &Env, args: &[&str]) -> Output {
    env.run(
        &[&["--cloud", "local", "vm", "docker", "create"][..], args, &["--generate-ssh-keys", "-o", "json"]].concat(),
    )
}

/// The real docker CLI as this environment's user (HOME, hence ~/.docker for certificates and
/// contexts), with nothing inherited from the caller.
fn docker(env: &Env, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new("docker");
    cmd.env("HOME", env.path())
        .env_remove("DOCKER_CONFIG")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .args(args);
    azdock_tests::run(&mut cmd)
}

/// `docker --tlsverify -H tcp://ADDR info` with the certificates in ~/.docker.
fn docker_info(env: &Env, addr: &str) -> Output {
    let certs = env.path().join(".docker");
    let flag = |name: &str, file: &str| format!("--{name}={}", certs.join(file).display());
    docker(
        env,
        &[
            "--tlsverify",
            &flag("tlscacert", "ca.pem"),
            &flag("tlscert", "cert.pem"),
            &flag("tlskey", "key.pem"),
            "-H",
            &format!("tcp://{addr}"),
            "info",
            "--format",
            "{{.ServerVersion}}",
        ],
    )
}

fn vm_path(sub: &str, group: &str, kind: &str, name: &str) -> String {
    let ns = if kind == "virtualMachines" { "Microsoft.Compute" } else { "Microsoft.Network" };
    let api = if kind == "virtualMachines" { "2024-11-01" } else { "2024-05-01" };
    format!("/subscriptions/{sub}/resourceGroups/{group}/providers/{ns}/{kind}/{name}?api-version={api}")
}

#[test]
fn bad_arguments_are_refused_before_any_azure_call() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["Web1"], "DNS label"),
        (&["ab"], "DNS label"),
        (&["web1", "Win2022Datacenter"], "Linux image"),
        (&["web1", "Ubuntu"], "invalid image `Ubuntu`"),
        (&["web1", "Ubuntu2404", "root"], "reserved by Azure"),
        (&["web1", "Ubuntu2404", "azureuser", "weak"], "admin password"),
        (&["web1", "-e", "2376"], "also the SSH port"),
        (&["web1", "--allow-from", "10.0.0.0/33"], "prefix length"),
        (&["web1", "--docker-option=--x=$(id)"], "not a dockerd flag"),
        (&["web1", "--handler", "snap"], "use customscript, cloud-init or legacy"),
        (&["web1", "--cert-san", "bad name!"], "bad name!"),
        (&["web1", "--size", "big one"], "VM size"),
        (&["web1", "-l", "west-europe"], "location"),
        (&["web1", "-g", "bad/group"], "resource group"),
        (&["web1", "-p", "0"], "0 is not in 1..=65535"),
        (&["web1", "--transport", "ftp"], "unknown transport `ftp`: use tls or ssh"),
        (&["web1", "--transport", "ssh", "--handler", "legacy"], "installed by the customscript handler"),
        (&["web1", "--transport", "ssh", "--handler", "cloud-init"], "installed by the customscript handler"),
        (&["web1", "--transport", "ssh", "--no-wait"], "cannot be used with --no-wait"),
        (&["web1", "Ubuntu2404", "azureuser", "Sup3r-Secret-Passw0rd!", "--transport", "ssh"], "with an SSH key"),
    ];
    for (args, says) in cases {
        let out = create(&env, args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    let on = ["--cloud", "local", "ext", "docker", "install", "--vm", "web1", "-g", "web1"];
    for (args, says) in [
        (&["--transport", "udp"][..], "unknown transport `udp`"),
        (&["--transport", "ssh", "--no-wait"][..], "cannot be used with --no-wait"),
        (&["--transport", "ssh", "--handler", "legacy"][..], "installed by the customscript handler"),
    ] {
        let out = env.run(&[&on[..], args].concat());
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    // A refused command line leaves nothing behind, not even the SSH key it would have made.
    assert!(!env.path().join(".ssh").exists(), "a refused command line made an SSH key");
    // No key, no password: the ways to give one are named.
    let out = env.run(&["--cloud", "local", "vm", "docker", "create", "web1"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--generate-ssh-keys"), "{}", out.stderr);
    assert_eq!(env.run(&["local", "status"]).success().json()["status"], "stopped", "no Azure call was made");
    assert!(!env.path().join(".docker").exists(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_handler_makes_a_host_the_real_docker_cli_reaches() {
    if !azdock_tests::dockerd_available() {
        return;
    }
    let _one_dockerd_at_a_time = azdock_tests::dockerd_lock();
    let env = Env::new();
    let (_, arm) = cloud(&env, None).await;
    let mut addrs = Vec::new();
    for (name, handler) in [("dockcs", "customscript"), ("dockci", "cloud-init"), ("docklegacy", "legacy")] {
        let out = create(&env, &[name, "--handler", handler, "--docker-option=--log-level=warn"]);
        assert_eq!(out.code, 0, "{handler}: {}", out.stderr);
        let host = out.json();
        assert_eq!(host["daemon"]["status"], "running", "{host}");
        let ip = host["publicIp"].as_str().unwrap();
        assert_eq!(host["dockerHost"], format!("tcp://{ip}:2376"));
        assert!(out.stderr.contains(&format!("docker --tlsverify -H tcp://{ip}:2376 info")), "{}", out.stderr);
        addrs.push(format!("{ip}:2376"));
        let info = docker_info(&env, &format!("{ip}:2376"));
        assert_eq!(info.code, 0, "{handler}: {}", info.stderr);
        assert!(!info.stdout.trim().is_empty());
        let via_context = docker(&env, &["--context", name, "version", "--format", "{{.Server.Version}}"]);
        assert_eq!(via_context.code, 0, "{handler}: {}", via_context.stderr);
        if handler == "legacy" {
            assert!(out.stderr.contains("retired"), "{}", out.stderr);
        }
    }
    // Running the create again changes nothing and keeps the certificates.
    let certs = env.path().join(".docker");
    let before: Vec<Vec<u8>> = ["ca.pem", "cert.pem", "dockcs-server-cert.pem"]
        .iter()
        .map(|f| std::fs::read(certs.join(f)).unwrap())
        .collect();
    let again = create(&env, &["dockcs"]).success().json();
    assert_eq!(again["created"], json!([]), "{again}");
    assert_eq!(again["reused"].as_array().unwrap().len(), 6, "{again}");
    let after: Vec<Vec<u8>> = ["ca.pem", "cert.pem", "dockcs-server-cert.pem"]
        .iter()
        .map(|f| std::fs::read(certs.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);
    let ip = again["publicIp"].as_str().unwrap().to_owned();
    assert_eq!(docker_info(&env, &format!("{ip}:2376")).code, 0);

    // docker-machine's env conventions.
    let bash = env.run(&["docker", "env", "dockcs"]).success().stdout;
    assert!(
        bash.contains(&format!("export DOCKER_HOST=\"tcp://{ip}:2376\""))
            && bash.contains("# eval $(azdock docker env dockcs)"),
        "{bash}"
    );
    let fish = env.run(&["docker", "env", "dockcs", "--shell", "fish"]).success().stdout;
    assert!(fish.contains("set -gx DOCKER_TLS_VERIFY \"1\";"), "{fish}");
    let unset = env.run(&["docker", "env", "dockcs", "--unset"]).success().stdout;
    assert!(unset.contains("unset DOCKER_HOST"), "{unset}");
    let unknown = env.run(&["docker", "env", "nosuch"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("dockcs"), "{}", unknown.stderr);

    ca_rotation_reaches_every_host_it_can(&env, &arm, &certs, &addrs).await;
    env.run(&["local", "down"]).success();
}

/// A new CA reaches every host azdock knows: each gets a new server certificate from it, and the
/// new client certificate works on all of them; a host the push cannot reach does not stop the
/// others, keeps the old CA (and says so), and `--finish` gives it the new one.
async fn ca_rotation_reaches_every_host_it_can(env: &Env, arm: &Arm, certs: &std::path::Path, addrs: &[String]) {
    // A new CA reaches every host azdock knows: each gets a new server certificate from it, and
    // the new client certificate works on all of them.
    let old_ca = std::fs::read(certs.join("ca.pem")).unwrap();
    let refused =
        env.run(&["--cloud", "local", "ext", "docker", "rotate-certs", "--ca", "--vm", "dockcs", "-g", "dockcs"]);
    assert_eq!(refused.code, 2, "a CA rotation needs --yes without a terminal");
    // A host the push cannot reach does not stop the others: they get the new CA, it keeps the
    // old one (and says so), and `--finish` gives it the new one.
    // ARM refuses the push's extension PUT (a 409 is not retried), so nothing reaches the VM.
    let fail = json!({"rules": [{"method": "PUT", "pathContains": "/virtualMachines/docklegacy/extensions/",
        "sequence": [{"kind": "status", "status": 409}]}]});
    arm.admin(reqwest::Method::PUT, "/faults", Some(fail)).await;
    let rotate_ca =
        ["--cloud", "local", "ext", "docker", "rotate-certs", "--ca", "--yes", "--vm", "dockcs", "-g", "dockcs"];
    let partial = env.run(&[&rotate_ca[..], &["-o", "json"]].concat());
    assert_eq!(partial.code, 1, "{}", partial.stderr);
    assert!(
        partial.stderr.contains("1 of 3 hosts did not get their new certificates")
            && partial.stderr.contains("docklegacy/docklegacy: ")
            && partial.stderr.contains("(fault injection)")
            && partial.stderr.contains("rotate-certs --finish"),
        "{}",
        partial.stderr
    );
    let rows = partial.json();
    let status_of = |rows: &Value, name: &str| {
        rows.as_array().unwrap().iter().find(|r| r["name"] == name).map(|r| r["status"].clone()).unwrap()
    };
    assert_eq!(
        ["dockcs", "dockci", "docklegacy"].map(|n| status_of(&rows, n)),
        [json!("rotated"), json!("rotated"), json!("failed")],
        "{rows}"
    );
    assert_ne!(std::fs::read(certs.join("ca.pem")).unwrap(), old_ca);
    assert_eq!(docker_info(env, &addrs[0]).code, 0, "dockcs carries the new CA");
    assert_ne!(docker_info(env, &addrs[2]).code, 0, "docklegacy still carries the old one");
    let ext = |action: &str, vm: &str| {
        env.run(&["--cloud", "local", "ext", "docker", action, "--vm", vm, "-g", vm, "-o", "json"])
    };
    assert_eq!(ext("status", "docklegacy").success().json()["certificate"]["ca"], "old");
    assert_eq!(ext("status", "dockcs").success().json()["certificate"]["ca"], "current");
    let finished = env.run(&["--cloud", "local", "ext", "docker", "rotate-certs", "--finish", "-o", "json"]);
    assert_eq!(finished.code, 0, "{}", finished.stderr);
    let rows = finished.json();
    assert_eq!(rows.as_array().unwrap().len(), 1, "only the host left behind: {rows}");
    assert_eq!(status_of(&rows, "docklegacy"), "rotated");
    assert_eq!(ext("status", "docklegacy").success().json()["certificate"]["ca"], "current");
    assert_eq!(docker_info(env, &addrs[2]).code, 0);
    let nothing_left = env.run(&["--cloud", "local", "ext", "docker", "rotate-certs", "--finish", "-o", "json"]);
    assert_eq!(nothing_left.success().json(), json!([]));

    let old_ca = std::fs::read(certs.join("ca.pem")).unwrap();
    let rotated = env.run(&rotate_ca);
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    assert_eq!(rotated.json().as_array().unwrap().len(), 3);
    assert_ne!(std::fs::read(certs.join("ca.pem")).unwrap(), old_ca);
    for addr in addrs {
        let info = docker_info(env, addr);
        assert_eq!(info.code, 0, "{addr}: {}", info.stderr);
    }
}

/// Gives the VM's daemon these certificates through the legacy DockerExtension (which restarts
/// it with them), to stage what `verify` must explain.
fn push_certs(env: &Env, ca: &str, cert: &str, key: &str) {
    use base64::Engine as _;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let certs = json!({"certs": {"ca": b64(ca), "cert": b64(cert), "key": b64(key)}});
    env.run(&[
        "--cloud",
        "local",
        "ext",
        "set",
        "--vm",
        "plainvm",
        "-g",
        "plain",
        "--publisher",
        "Microsoft.Azure.Extensions",
        "--type",
        "DockerExtension",
        "--version",
        "1.2",
        "--force-update",
        "--settings",
        r#"{"docker": {"port": "2376"}}"#,
        "--protected-settings",
        &certs.to_string(),
    ])
    .success();
}

/// A server certificate for `ip` from the CA in `dir`, expired yesterday.
fn expired_certificate(dir: &std::path::Path, ip: &str) -> (String, String) {
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca-key.pem")).unwrap()).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(dir.join("ca.pem")).unwrap(), &ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![ip.to_owned()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    (params.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
}

/// A local cloud with a plain Linux VM `vm` in group `group`, and `ext docker install` run on
/// it (the port open to loopback): what `local up` and the install printed.
async fn installed_on_a_plain_vm(env: &Env, group: &str, vm: &str) -> (Value, Arm, Value) {
    let (up, arm) = cloud(env, None).await;
    arm.linux_vm(up["subscriptionId"].as_str().unwrap(), group, vm).await;
    let installed = env
        .run(&["--cloud", "local", "ext", "docker", "install", "--vm", vm, "-g", group, "--allow-from", "127.0.0.0/8"])
        .success()
        .json();
    assert_eq!(installed["daemon"]["status"], "running", "{installed}");
    (up, arm, installed)
}

/// Whether `ready` holds within 20 s, asked every 200 ms.
async fn eventually(mut ready: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if ready() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    ready()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_docker_installs_rotates_verifies_and_uninstalls_on_an_existing_vm() {
    if !azdock_tests::dockerd_available() {
        return;
    }
    let _one_dockerd_at_a_time = azdock_tests::dockerd_lock();
    let env = Env::new();
    let (up, arm, installed) = installed_on_a_plain_vm(&env, "plain", "plainvm").await;
    let sub = up["subscriptionId"].as_str().unwrap();
    let ext = |args: &[&str]| {
        env.run(&[&["--cloud", "local", "ext", "docker"][..], args, &["--vm", "plainvm", "-g", "plain"]].concat())
    };

    let ip = installed["publicIp"].as_str().unwrap().to_owned();
    let addr = format!("{ip}:2376");
    assert_eq!(docker_info(&env, &addr).code, 0);
    let (_, nsg) = arm
        .get(
            &vm_path(sub, "plain", "networkSecurityGroups", "plainvmNSG")
                .replace("?api", "/securityRules/azdock-docker?api"),
        )
        .await;
    assert_eq!(
        nsg["properties"]["sourceAddressPrefix"], "127.0.0.0/8",
        "the VM had no NSG: one was made with the rule"
    );

    let server_cert = env.path().join(".docker/plainvm-server-cert.pem");
    let old = std::fs::read(&server_cert).unwrap();
    ext(&["rotate-certs"]).success();
    assert_ne!(std::fs::read(&server_cert).unwrap(), old, "a new server certificate");
    let verified = ext(&["verify"]).success().json();
    assert_eq!(verified["checks"]["tlsHandshake"], "ok");
    assert_eq!(verified["checks"]["ping"], "OK");
    assert_eq!(docker_info(&env, &addr).code, 0, "the daemon has the new certificate");
    let status = ext(&["status"]).success().json();
    assert_eq!(status["extension"]["provisioningState"], "Succeeded");
    assert!(status["certificate"]["daysLeft"].as_i64().unwrap() > 300);
    // Several VMs through the fleet's fan-out: a row each, the missing one's saying why, exit 1.
    let id = |vm: &str| vm_path(sub, "plain", "virtualMachines", vm).split('?').next().unwrap().to_owned();
    let fleet = env.run(&[
        "--cloud",
        "local",
        "ext",
        "docker",
        "status",
        "--ids",
        &id("plainvm"),
        &id("nosuchvm"),
        "-o",
        "json",
    ]);
    assert_eq!(fleet.code, 1, "{}", fleet.stderr);
    assert!(
        fleet.stderr.contains("1 of 2 VMs failed") && fleet.stderr.contains("plain/nosuchvm: "),
        "{}",
        fleet.stderr
    );
    let rows = fleet.json();
    assert_eq!(rows[0]["extension"]["provisioningState"], "Succeeded", "{rows}");
    assert_eq!((&rows[1]["name"], &rows[1]["status"]), (&json!("nosuchvm"), &json!("failed")), "{rows}");

    // A daemon whose certificate names another host, as after an IP change; one whose
    // certificate expired; a VM that is not running: each explained with what to do.
    let dir = env.path().join(".docker");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    env.run(&["certs", "server", "elsewhere", "--dns", "elsewhere.example.com"]).success();
    push_certs(&env, &read("ca.pem"), &read("elsewhere-server-cert.pem"), &read("elsewhere-server-key.pem"));
    let wrong = ext(&["verify"]);
    assert!(wrong.code == 1 && wrong.stderr.contains(&format!("does not name {ip}")), "{}", wrong.stderr);
    let (cert, key) = expired_certificate(&dir, &ip);
    push_certs(&env, &read("ca.pem"), &cert, &key);
    let stale = ext(&["verify"]);
    assert!(stale.code == 1 && stale.stderr.contains("expired or not yet valid"), "{}", stale.stderr);
    assert!(stale.stderr.contains("rotate-certs"), "{}", stale.stderr);
    env.run(&["--cloud", "local", "vm", "stop", "-g", "plain", "-n", "plainvm"]).success();
    let stopped = ext(&["verify"]);
    assert!(stopped.code == 1 && stopped.stderr.contains("azdock vm start"), "{}", stopped.stderr);
    env.run(&["--cloud", "local", "vm", "start", "-g", "plain", "-n", "plainvm"]).success();

    ext(&["uninstall"]).success();
    let verify = ext(&["verify"]);
    assert_eq!(verify.code, 1);
    assert!(
        verify.stderr.contains("port 2376 is closed") || verify.stderr.contains("nothing listens"),
        "{}",
        verify.stderr
    );
    assert_ne!(docker_info(&env, &addr).code, 0, "no TLS listener any more");
    env.run(&["local", "down"]).success();
}

/// Whether the resource exists.
async fn exists(arm: &Arm, path: &str) -> bool {
    arm.get(path).await.0 == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_install_deletes_what_that_run_created_and_only_that() {
    let env = Env::new();
    let (up, arm) = cloud(&env, None).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    let fail = json!({"rules": [{"method": "PUT", "pathContains": "/extensions/", "sequence": [
        {"kind": "lroFail", "code": "VMExtensionProvisioningError", "message": "VM has reported a failure when processing extension 'docker'. Error message: \"Enable failed: E: Unable to locate package docker.io\"."}]}]});

    // A resource group that existed before stays, with what was in it; the run's resources go.
    arm.call(
        reqwest::Method::PUT,
        &format!("/subscriptions/{sub}/resourcegroups/mine?api-version=2021-04-01"),
        Some(json!({"location": "westeurope", "tags": {"owner": "me"}})),
    )
    .await;
    arm.admin(reqwest::Method::PUT, "/faults", Some(fail.clone())).await;
    let out = create(&env, &["failme", "-g", "mine"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("(VMExtensionProvisioningError)")
            && out.stderr.contains("Unable to locate package docker.io"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("deleting what this run created"), "{}", out.stderr);
    let (status, group) = arm.get(&format!("/subscriptions/{sub}/resourcegroups/mine?api-version=2021-04-01")).await;
    assert_eq!((status.as_u16(), &group["tags"]["owner"]), (200, &json!("me")));
    for (kind, name) in [
        ("virtualMachines", "failme"),
        ("networkInterfaces", "failmeVMNic"),
        ("publicIPAddresses", "failmePublicIP"),
        ("networkSecurityGroups", "failmeNSG"),
        ("virtualNetworks", "failmeVNET"),
    ] {
        assert!(!exists(&arm, &vm_path(&sub, "mine", kind, name)).await, "{kind} {name} was left behind");
    }
    assert!(!env.path().join(".docker/failme-server-cert.pem").exists(), "the run's server certificate went too");
    assert!(env.path().join(".docker/ca.pem").exists(), "the CA stays for the next run");

    // --keep-on-failure keeps it all.
    arm.admin(reqwest::Method::PUT, "/faults", Some(fail)).await;
    let kept = create(&env, &["keepme", "--keep-on-failure"]);
    assert_eq!(kept.code, 1);
    assert!(kept.stderr.contains("kept what this run created"), "{}", kept.stderr);
    assert!(exists(&arm, &vm_path(&sub, "keepme", "virtualMachines", "keepme")).await);

    // A DNS label someone else holds: Azure's refusal, and the run's own group removed.
    arm.linux_vm(&sub, "first", "taken").await;
    let taken = create(&env, &["taken", "-g", "second"]);
    assert_eq!(taken.code, 1);
    assert!(taken.stderr.contains("DnsRecordInUse"), "{}", taken.stderr);
    let (status, _) = arm.get(&format!("/subscriptions/{sub}/resourcegroups/second?api-version=2021-04-01")).await;
    assert_eq!(status.as_u16(), 404, "the group this run made is gone");
    assert!(exists(&arm, &vm_path(&sub, "first", "virtualMachines", "taken")).await, "the other VM is untouched");
    env.run(&["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_create_finishes_when_run_again_without_duplicates() {
    let _one_dockerd_at_a_time = azdock_tests::dockerd_lock();
    let env = Env::new();
    let (up, arm) =
        cloud(&env, Some("network=300,vm-create=4000,vm-action=300,extension=300,delete=300,group-delete=300")).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    let mut first = env.azdock();
    first.args(["--cloud", "local", "vm", "docker", "create", "halfway", "--generate-ssh-keys"]);
    first.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = first.spawn().unwrap();
    // Killed while the VM is being created.
    let vm = format!("/subscriptions/{sub}/resourceGroups/halfway/providers/Microsoft.Compute/virtualMachines/halfway");
    let mut seen = false;
    for _ in 0..300 {
        let (_, log) = arm.admin(reqwest::Method::GET, "/requests", None).await;
        if log["requests"].as_array().unwrap().iter().any(|r| r["method"] == "PUT" && r["path"] == vm.as_str()) {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "the first run reached the VM");
    child.kill().unwrap();
    child.wait().unwrap();

    let again = create(&env, &["halfway"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let report = again.json();
    let reused: Vec<&str> = report["reused"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(reused.contains(&"VM halfway") && reused.contains(&"NIC halfwayVMNic"), "{report}");
    let (_, log) = arm.admin(reqwest::Method::GET, "/requests", None).await;
    let vm_puts =
        log["requests"].as_array().unwrap().iter().filter(|r| r["method"] == "PUT" && r["path"] == vm.as_str()).count();
    assert_eq!(vm_puts, 1, "the VM was created once");
    env.run(&["local", "down"]).success();
}

/// Waits (bounded) until ARM shows the resource at `path`: an answer that shows it is sent only
/// once the cloud has it on disk, so from then on it is acknowledged.
async fn wait_until_visible(arm: &Arm, path: &str) -> bool {
    for _ in 0..600 {
        if arm.get(&format!("{path}?api-version=2024-11-01")).await.0 == 200 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_survives_the_local_cloud_crashing_under_it() {
    let _one_dockerd_at_a_time = azdock_tests::dockerd_lock();
    let env = Env::new();
    let durations = "network=300,vm-create=3000,vm-action=300,extension=3000,delete=300,group-delete=300";
    let (up, arm) = cloud(&env, Some(durations)).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    let group = format!("/subscriptions/{sub}/resourceGroups/crashy/providers");
    let vm = format!("{group}/Microsoft.Compute/virtualMachines/crashy");
    let extension = format!("{vm}/extensions/docker");
    let mut pid = up["pid"].as_u64().unwrap();
    let mut arm = arm;
    // The cloud is killed while the VM is created, then while Docker installs; each time it
    // comes back and the create is run again.
    for (step, target) in [("the VM", vm.as_str()), ("the Docker install", extension.as_str())] {
        let mut run = env.azdock();
        run.args(["--cloud", "local", "vm", "docker", "create", "crashy", "--generate-ssh-keys"]);
        let mut child = run.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        assert!(wait_until_visible(&arm, target).await, "the run reached {step}");
        azdock_tests::kill_and_wait(pid);
        child.kill().unwrap();
        child.wait().unwrap();
        let (up, again) = azdock_tests::local_cloud(&env, &["--durations", durations]).await;
        pid = up["pid"].as_u64().unwrap();
        arm = again;
        // What was accepted before the crash is still there, and its operation ends.
        let (status, body) = arm.get(&format!("{target}?api-version=2024-11-01")).await;
        assert_eq!(status, 200, "{step}: {body}");
    }
    let done = create(&env, &["crashy"]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(done.json()["daemon"]["status"], "running", "{}", done.stdout);
    let count = |kind: &'static str| {
        let (arm, group) = (arm.clone(), group.clone());
        async move {
            let ns = if kind == "virtualMachines" { "Microsoft.Compute" } else { "Microsoft.Network" };
            let api = if kind == "virtualMachines" { "2024-11-01" } else { "2024-05-01" };
            let (_, list) = arm.get(&format!("{group}/{ns}/{kind}?api-version={api}")).await;
            list["value"].as_array().map_or(0, Vec::len)
        }
    };
    for kind in
        ["virtualMachines", "networkInterfaces", "publicIPAddresses", "virtualNetworks", "networkSecurityGroups"]
    {
        assert_eq!(count(kind).await, 1, "one {kind}");
    }
    let info = docker(&env, &["--context", "crashy", "info", "--format", "{{.ServerVersion}}"]);
    assert_eq!(info.code, 0, "{}", info.stderr);
    env.run(&["local", "down"]).success();
}

/// The pids of the live dockerd processes whose data root is below `dir`.
fn dockerds_below(dir: &std::path::Path) -> Vec<u32> {
    let flag = format!("--data-root={}", dir.display());
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| {
            // A zombie's command line is empty: only live daemons count.
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg.starts_with(flag.as_bytes())))
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// How many mounts of this (the host's) mount namespace are at or below `dir`.
fn mounts_below(dir: &std::path::Path) -> usize {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| std::path::Path::new(point).starts_with(dir))
        .count()
}

/// A guest's dockerd bind-mounts its data root onto itself in the host's namespace. One whose
/// cloud was killed lives on: the cloud's next start ends it and releases its mount before
/// starting the VM's own, rather than failing beside it or stacking a second mount. One killed
/// outright (SIGKILL, the OOM killer) leaves its mount: stopping it releases that. Nothing is
/// left mounted or running after `local down`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_dockerd_orphaned_or_killed_outright_leaves_no_mount_or_process_behind() {
    if !azdock_tests::dockerd_available() {
        return;
    }
    let _one_dockerd_at_a_time = azdock_tests::dockerd_lock();
    let env = Env::new();
    let (up, _, installed) = installed_on_a_plain_vm(&env, "mounts", "mountvm").await;
    let addr = format!("{}:2376", installed["publicIp"].as_str().unwrap());
    let state = std::fs::canonicalize(up["stateDir"].as_str().unwrap()).unwrap();
    let first = dockerds_below(&state);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(mounts_below(&state), 1, "dockerd mounts its data root onto itself");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", first[0])).unwrap();
    let exec_root = cmdline
        .split(|b| *b == 0)
        .find_map(|arg| arg.strip_prefix(b"--exec-root="))
        .map(|root| std::path::PathBuf::from(String::from_utf8(root.to_vec()).unwrap()))
        .unwrap();

    azdock_tests::kill_and_wait(up["pid"].as_u64().unwrap());
    assert_eq!(dockerds_below(&state), first, "the daemon outlives its cloud");
    azdock_tests::local_cloud(&env, &["--instant"]).await;
    let replaced = || {
        let now = dockerds_below(&state);
        now.len() == 1 && now != first && docker_info(&env, &addr).code == 0
    };
    assert!(eventually(replaced).await, "the VM's new daemon replaced {first:?}: {:?}", dockerds_below(&state));
    assert_eq!(mounts_below(&state), 1, "the old daemon's mount was released, not stacked under");

    // The daemon and its containerd killed outright, as a whole process group.
    let now = dockerds_below(&state);
    let killed = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", now[0])]).status().unwrap();
    assert!(killed.success());
    assert!(eventually(|| dockerds_below(&state).is_empty()).await);
    assert_eq!(mounts_below(&state), 1, "a daemon killed outright leaves its mount");
    env.run(&["local", "down"]).success();
    assert_eq!(mounts_below(&state), 0, "stopping it released the mount");

    // A pidfile left naming a process that is no daemon of this cloud (the pid reused, here by
    // a process group's leader, as every daemon is) is only stale: that process is left alone.
    let mut bystander = std::process::Command::new("sleep");
    std::os::unix::process::CommandExt::process_group(&mut bystander, 0);
    let mut bystander = bystander.arg("60").spawn().unwrap();
    std::fs::create_dir_all(&exec_root).unwrap();
    std::fs::write(exec_root.join("dockerd.pid"), bystander.id().to_string()).unwrap();
    azdock_tests::local_cloud(&env, &["--instant"]).await;
    let started = eventually(|| dockerds_below(&state).len() == 1 && docker_info(&env, &addr).code == 0).await;
    let untouched = bystander.try_wait().unwrap().is_none();
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    assert!(started, "the VM's daemon started");
    assert!(untouched, "the process the stale pidfile named still runs");
    env.run(&["local", "down"]).success();
    assert_eq!(mounts_below(&state), 0);
}

#[test]
fn the_install_and_uninstall_scripts_pass_shellcheck() {
    let found = std::process::Command::new("shellcheck").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("AZDOCK_TESTS_WITHOUT_SHELLCHECK").is_some(),
            "this test needs shellcheck (Debian's shellcheck; `.ci/run` installs it), or AZDOCK_TESTS_WITHOUT_SHELLCHECK=1 to skip it"
        );
        azdock_tests::skipped("no shellcheck, and AZDOCK_TESTS_WITHOUT_SHELLCHECK is set");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let setup = azdock_ext_docker::DockerSetup {
        port: 2376,
        options: vec!["--log-level=warn".into()],
        admin_user: Some("azureuser".into()),
        ca_pem: "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n".into(),
        cert_pem: "-----BEGIN CERTIFICATE-----\nU0VSVkVS\n-----END CERTIFICATE-----\n".into(),
        key_pem: azdock_core::Secret::new("-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n".into()),
    };
    let over_ssh =
        azdock_ext_docker::SocketSetup { options: vec!["--log-level=warn".into()], admin_user: "azureuser".into() };
    for (name, text) in [
        ("install.sh", setup.install_script().expose().clone()),
        ("install-ssh.sh", over_ssh.install_script()),
        ("uninstall.sh", azdock_ext_docker::uninstall_script(2376)),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = azdock_tests::run(
            std::process::Command::new("shellcheck").args(["--shell=sh", "--severity=style"]).arg(&path),
        );
        assert_eq!(out.code, 0, "{name}:\n{}", out.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_creates_at_once_of_one_name_in_two_groups_make_two_hosts() {
    if !azdock_tests::dockerd_available() {
        return;
    }
    let _one_dockerd_at_a_time = azdock_tests::dockerd_lock();
    let env = Env::new();
    cloud(&env, None).await;
    // Started together in a fresh HOME: both make (or find) the one SSH key, both record their
    // host. The VM name is its DNS label too, which is unique per region: two regions. One
    // certificate directory, a server certificate for each.
    let start = |group: &str, location: &str| {
        let mut cmd = env.azdock();
        cmd.args([
            "--cloud",
            "local",
            "vm",
            "docker",
            "create",
            "twin",
            "-g",
            group,
            "-l",
            location,
            "--generate-ssh-keys",
            "-o",
            "json",
        ]);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (a, b) = (start("ga", "westeurope"), start("gb", "northeurope"));
    let outs = [a, b].map(|child| child.wait_with_output().unwrap());
    let mut contexts = Vec::new();
    for out in &outs {
        let said: Vec<_> = outs.iter().map(|o| String::from_utf8_lossy(&o.stderr)).collect();
        assert_eq!(out.status.code(), Some(0), "{said:#?}");
        let host: Value = serde_json::from_slice(&out.stdout).unwrap();
        contexts.push(host["context"].as_str().unwrap().to_owned());
    }
    assert_ne!(contexts[0], contexts[1], "each host has its own docker context");
    let servers: Vec<String> = std::fs::read_dir(env.path().join(".docker"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with("-server-cert.pem"))
        .collect();
    assert_eq!(servers.len(), 2, "{servers:?}");
    let keys: Vec<String> = std::fs::read_dir(env.path().join(".ssh"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(keys.len(), 2, "one key pair: {keys:?}");
    for context in &contexts {
        let info = docker(&env, &["--context", context, "version", "--format", "{{.Server.Version}}"]);
        assert_eq!(info.code, 0, "{context}: {}", info.stderr);
    }
    // The short name is ambiguous now; GROUP/NAME is not.
    let ambiguous = env.run(&["docker", "env", "twin"]);
    assert_eq!(ambiguous.code, 2);
    assert!(ambiguous.stderr.contains("ga/twin") && ambiguous.stderr.contains("gb/twin"), "{}", ambiguous.stderr);
    let ga = env.run(&["docker", "env", "ga/twin"]).success().stdout;
    let gb = env.run(&["docker", "env", "gb/twin"]).success().stdout;
    assert_ne!(ga, gb);
    assert!(gb.contains("# eval $(azdock docker env gb/twin)"), "{gb}");
    for group in ["ga", "gb"] {
        let status =
            env.run(&["--cloud", "local", "ext", "docker", "status", "--vm", "twin", "-g", group, "-o", "json"]);
        assert_eq!(status.success().json()["daemon"]["status"], "running", "{group}");
    }
    env.run(&["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_boot_s_package_lock_and_unreachable_mirror_are_waited_out() {
    let _one_dockerd_at_a_time = azdock_tests::dockerd_lock();
    let env = Env::new();
    // As on Azure's Ubuntu images: the package lock held for a while after boot, and the first
    // update reaching no mirror.
    azdock_tests::local_cloud(&env, &["--instant", "--first-boot-lock", "8"]).await;
    let out = create(&env, &["firstboot"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let host = out.json();
    if azdock_tests::dockerd_available() {
        assert_eq!(host["daemon"]["status"], "running", "{host}");
    }
    let status =
        env.run(&["--cloud", "local", "ext", "docker", "status", "--vm", "firstboot", "-g", "firstboot", "-o", "json"]);
    let message = status.success().json()["extension"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("azdock: waiting for the package lock (held by apt-get)")
            && message.contains("azdock: waiting for a package mirror (apt-get update reached none)")
            && message.contains("azdock: waited ")
            && message.contains("Could not get lock /var/lib/apt/lists/lock"),
        "{message}"
    );
    env.run(&["local", "down"]).success();
}

/// What a group holds of a Docker host's kinds, as `KIND/NAME`, sorted.
async fn group_contents(arm: &Arm, sub: &str, group: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kind in
        ["virtualNetworks", "networkSecurityGroups", "publicIPAddresses", "networkInterfaces", "virtualMachines"]
    {
        let path = vm_path(sub, group, kind, "").replace("/?api", "?api");
        let (status, list) = arm.get(&path).await;
        assert_eq!(status, 200, "{path}: {list}");
        out.extend(list["value"].as_array().unwrap().iter().map(|r| format!("{kind}/{}", r["name"].as_str().unwrap())));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_killed_at_random_points_converges_when_run_again() {
    let _one_dockerd_at_a_time = azdock_tests::dockerd_lock();
    let env = Env::new();
    let (up, arm) =
        cloud(&env, Some("network=150,vm-create=600,vm-action=100,extension=300,delete=50,group-delete=50")).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    // Seeded, so that a failing trial can be replayed with AZDOCK_KILL_SEED.
    let seed = std::env::var("AZDOCK_KILL_SEED").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos().into()
    });
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64: enough to spread kill points, and repeatable.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for trial in 0..20 {
        let name = format!("kill{trial}");
        // An uninterrupted create takes about 1.5 s here: kills land anywhere in it, and a few
        // after it.
        let delay = std::time::Duration::from_millis(next() % 2000);
        let what = format!("trial {trial} (AZDOCK_KILL_SEED={seed}, killed after {delay:?})");
        let mut first = env.azdock();
        first.args(["--cloud", "local", "vm", "docker", "create", &name, "--generate-ssh-keys"]);
        first.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let mut child = first.spawn().unwrap();
        tokio::time::sleep(delay).await;
        // Child::kill is SIGKILL: no handler, no clean-up of its own.
        child.kill().unwrap();
        child.wait().unwrap();

        let again = create(&env, &[&name]);
        assert_eq!(again.code, 0, "{what}: {}", again.stderr);
        let host = again.json();
        assert_eq!(
            group_contents(&arm, &sub, &name).await,
            [
                format!("networkInterfaces/{name}VMNic"),
                format!("networkSecurityGroups/{name}NSG"),
                format!("publicIPAddresses/{name}PublicIP"),
                format!("virtualMachines/{name}"),
                format!("virtualNetworks/{name}VNET"),
            ],
            "{what}"
        );
        let (_, log) = arm.admin(reqwest::Method::GET, "/requests", None).await;
        let vm = vm_path(&sub, &name, "virtualMachines", &name);
        let vm = vm.split('?').next().unwrap();
        let vm_puts = log["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == "PUT" && r["path"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(vm)))
            .count();
        assert_eq!(vm_puts, 1, "{what}: the VM was created once");
        if azdock_tests::dockerd_available() {
            assert_eq!(host["daemon"]["status"], "running", "{what}: {host}");
            let info = docker_info(&env, &format!("{}:2376", host["publicIp"].as_str().unwrap()));
            assert_eq!(info.code, 0, "{what}: {}", info.stderr);
        }
        // Its daemon goes with its group: twenty at once would only cost memory.
        arm.call(
            reqwest::Method::DELETE,
            &format!("/subscriptions/{sub}/resourcegroups/{name}?api-version=2021-04-01"),
            None,
        )
        .await;
    }
    env.run(&["local", "down"]).success();
}

/// The 2014 article's command as written — a location by display name, a classic image name,
/// the admin user and password in place, `-e 22` and Docker on port 4243 — makes a Docker host
/// in the local cloud (no sign-in here), and the real docker CLI reaches it over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2014_seed_command_as_written_makes_a_docker_host_on_port_4243() {
    if !azdock_tests::dockerd_available() {
        return;
    }
    let _one_dockerd_at_a_time = azdock_tests::dockerd_lock();
    let env = Env::new();
    let (up, arm) = cloud(&env, None).await;
    let sub = up["subscriptionId"].as_str().unwrap();
    let seed = "b39f27a8b8c64d52b05eac6a62ebad85__Ubuntu-14_10-amd64-server-20140729-alpha2-en-us-30GB";
    let out = env.run(&[
        "vm",
        "docker",
        "create",
        "-e",
        "22",
        "-l",
        "West US",
        "seedhost",
        seed,
        "ops",
        "Docker-Passw0rd-2014",
        "-p",
        "4243",
        "-y",
        "-o",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("`{seed}` is a classic Canonical image"))
            && out.stderr.contains("using Ubuntu2204"),
        "a warning names both images: {}",
        out.stderr
    );
    assert!(!out.stdout.contains("Docker-Passw0rd-2014") && !out.stderr.contains("Docker-Passw0rd-2014"));
    let host = out.json();
    let ip = host["publicIp"].as_str().unwrap().to_owned();
    assert_eq!(host["dockerHost"], format!("tcp://{ip}:4243"), "{host}");
    let info = docker_info(&env, &format!("{ip}:4243"));
    assert_eq!(info.code, 0, "{}", info.stderr);
    assert!(!info.stdout.trim().is_empty());

    // In West US, from today's nearest Ubuntu, SSH open on 22 and Docker on 4243.
    let group = host["resourceGroup"].as_str().unwrap();
    let (_, vm) = arm.get(&vm_path(sub, group, "virtualMachines", "seedhost")).await;
    assert_eq!(vm["location"], "westus");
    assert_eq!(vm["properties"]["storageProfile"]["imageReference"]["offer"], "0001-com-ubuntu-server-jammy");
    assert_eq!(vm["properties"]["osProfile"]["adminUsername"], "ops");
    let (_, valid) = arm
        .admin(
            reqwest::Method::POST,
            &format!("/guests/{sub}/{group}/seedhost/verify-password"),
            Some(json!({"username": "ops", "password": "Docker-Passw0rd-2014"})),
        )
        .await;
    assert_eq!(valid["valid"], true);
    let nsgs = arm.get(&format!("/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Network/networkSecurityGroups?api-version=2024-05-01")).await.1;
    let ports: Vec<&str> = nsgs["value"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["properties"]["securityRules"].as_array().unwrap())
        .filter_map(|r| r["properties"]["destinationPortRange"].as_str())
        .collect();
    assert!(ports.contains(&"22") && ports.contains(&"4243"), "{ports:?}");
    env.run(&["local", "down"]).success();
}

/// The docker CLI as this environment's user with `ssh` pointed at its home: OpenSSH finds
/// `~/.ssh` through the password database, not `$HOME`, so a wrapper first on `PATH` names this
/// home's key and known_hosts — what a user's own `~/.ssh` is — and refuses any host key that
/// is not pinned there (`StrictHostKeyChecking=yes`, no user config).
fn docker_over_ssh(env: &Env, args: &[&str]) -> Output {
    let bin = env.path().join("ssh-bin");
    let wrapper = bin.join("ssh");
    if !wrapper.exists() {
        std::fs::create_dir_all(&bin).unwrap();
        let home = env.path().display();
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F /dev/null -o UserKnownHostsFile={home}/.ssh/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -i {home}/.ssh/id_ed25519 -o BatchMode=yes \"$@\"\n"
            ),
        )
        .unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&wrapper).unwrap().permissions(), 0o755);
        std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = std::process::Command::new("docker");
    cmd.env("HOME", env.path())
        .env("PATH", path)
        .env_remove("DOCKER_CONFIG")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("SSH_AUTH_SOCK")
        .args(args);
    azdock_tests::run(&mut cmd)
}

/// A tiny image in `docker save`'s format, made here (no registry): one layer with one file.
fn tiny_image(dir: &std::path::Path) -> std::path::PathBuf {
    let sha = |path: &std::path::Path| {
        let out = azdock_tests::run(std::process::Command::new("sha256sum").arg(path));
        out.stdout.split_whitespace().next().unwrap().to_owned()
    };
    let root = dir.join("image");
    let layer_dir = root.join("layer");
    std::fs::create_dir_all(layer_dir.join("files")).unwrap();
    std::fs::write(layer_dir.join("files/hello.txt"), "made by azdock's test\n").unwrap();
    let tar = |cwd: &std::path::Path, out: &std::path::Path, what: &[&str]| {
        let made = azdock_tests::run(std::process::Command::new("tar").current_dir(cwd).arg("-cf").arg(out).args(what));
        assert_eq!(made.code, 0, "{}", made.stderr);
    };
    tar(&layer_dir.join("files"), &layer_dir.join("layer.tar"), &["hello.txt"]);
    let diff_id = sha(&layer_dir.join("layer.tar"));
    let config = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]}, "history": [{"created_by": "azdock test"}]});
    std::fs::write(root.join("config.json"), config.to_string()).unwrap();
    let config_id = sha(&root.join("config.json"));
    std::fs::rename(root.join("config.json"), root.join(format!("{config_id}.json"))).unwrap();
    let manifest =
        json!([{"Config": format!("{config_id}.json"), "RepoTags": ["azdock/tiny:1"], "Layers": ["layer/layer.tar"]}]);
    std::fs::write(root.join("manifest.json"), manifest.to_string()).unwrap();
    let image = dir.join("tiny.tar");
    tar(&root, &image, &["manifest.json", &format!("{config_id}.json"), "layer/layer.tar"]);
    image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_host_over_ssh_opens_no_docker_port_and_pins_its_host_keys() {
    if !azdock_tests::dockerd_available() || !azdock_tests::sshd_available() {
        return;
    }
    let _one_dockerd_at_a_time = azdock_tests::dockerd_lock();
    let env = Env::new();
    let (up, arm) = cloud(&env, None).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    let out = create(&env, &["sshhost", "--transport", "ssh"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let host = out.json();
    let ip = host["publicIp"].as_str().unwrap().to_owned();
    assert_eq!(host["dockerHost"], format!("ssh://azureuser@{ip}"), "{host}");
    assert_eq!(
        (host["daemon"]["status"].as_str(), host["transport"].as_str()),
        (Some("running"), Some("ssh")),
        "{host}"
    );
    assert!(out.stderr.contains(&format!("docker -H ssh://azureuser@{ip} info")), "{}", out.stderr);
    assert!(!env.path().join(".docker/ca.pem").exists(), "an SSH host needs no certificates");

    // The host keys were pinned, hashed, before any connection of the docker CLI: OpenSSH's
    // own ssh-keygen finds the address in them, and the file does not name it.
    let known_hosts = env.path().join(".ssh/known_hosts");
    let pinned = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(pinned.lines().all(|l| l.starts_with("|1|")) && !pinned.contains(&ip), "{pinned}");
    let found =
        azdock_tests::run(std::process::Command::new("ssh-keygen").arg("-F").arg(&ip).arg("-f").arg(&known_hosts));
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert_eq!(
        found.stdout.lines().filter(|l| l.starts_with("|1|")).count(),
        3,
        "rsa, ecdsa and ed25519: {}",
        found.stdout
    );

    // The real docker CLI through its context: an image loaded over SSH is on that VM's daemon.
    let info = docker_over_ssh(&env, &["--context", "sshhost", "info", "--format", "{{.ServerVersion}}"]);
    assert_eq!(info.code, 0, "{}", info.stderr);
    let image = tiny_image(env.path());
    let loaded = docker_over_ssh(&env, &["--context", "sshhost", "load", "-i", image.to_str().unwrap()]);
    assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    let listed =
        docker_over_ssh(&env, &["--context", "sshhost", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(listed.stdout.lines().any(|l| l == "azdock/tiny:1"), "{}", listed.stdout);

    // Only SSH faces the network: no Docker rule in the NSG, nothing on Docker's port.
    let nsg =
        arm.call(reqwest::Method::GET, &vm_path(&sub, "sshhost", "networkSecurityGroups", "sshhostNSG"), None).await.2;
    let rules: Vec<(String, String)> = nsg["properties"]["securityRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["properties"]["destinationPortRange"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(rules.contains(&("azdock-ssh".into(), "22".into())), "{rules:?}");
    assert!(!rules.iter().any(|(name, port)| name == "azdock-docker" || port == "2376"), "{rules:?}");
    assert!(std::net::TcpStream::connect((ip.as_str(), 2376)).is_err(), "something listens on {ip}:2376");

    // verify logs in as the docker CLI would; env gives the SSH DOCKER_HOST; nothing to rotate.
    let on = ["--vm", "sshhost", "-g", "sshhost"];
    let verify = env.run(&[&["--cloud", "local", "ext", "docker", "verify", "-o", "json"][..], &on].concat());
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert_eq!(verify.json()["checks"]["sshLogin"], "ok", "{}", verify.stdout);
    let exported = env.run(&["docker", "env", "sshhost"]).success().stdout;
    assert!(exported.contains(&format!("export DOCKER_HOST=\"ssh://azureuser@{ip}\"")), "{exported}");
    assert!(exported.contains("unset DOCKER_TLS_VERIFY") && exported.contains("unset DOCKER_CERT_PATH"), "{exported}");
    let rotate = env.run(&[&["--cloud", "local", "ext", "docker", "rotate-certs"][..], &on].concat());
    assert_eq!(rotate.code, 2, "{}", rotate.stderr);
    assert!(rotate.stderr.contains("no certificates to rotate"), "{}", rotate.stderr);

    // The VM's host keys change (made anew on the VM): verify refuses, saying so.
    let path = vm_path(&sub, "sshhost", "virtualMachines", "sshhost").replace("?api", "/extensions/docker?api");
    let rekey = json!({"location": "westeurope", "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
        "typeHandlerVersion": "2.1", "settings": {}, "protectedSettings": {"commandToExecute": "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A"}}});
    assert_eq!(arm.put_and_wait(&path, rekey).await.2["status"], "Succeeded");
    let changed = env.run(&[&["--cloud", "local", "ext", "docker", "verify"][..], &on].concat());
    assert_eq!(changed.code, 1, "{}", changed.stderr);
    assert!(changed.stderr.contains("SSH host key") && changed.stderr.contains("changed"), "{}", changed.stderr);
    assert_ne!(docker_over_ssh(&env, &["--context", "sshhost", "info"]).code, 0, "a changed host key was accepted");

    // ssh → tls → ssh keeps the host reachable each time (the new keys pinned from the VM).
    let install = |transport: &str| {
        env.run(
            &[&["--cloud", "local", "ext", "docker", "install", "--transport", transport, "-o", "json"][..], &on]
                .concat(),
        )
    };
    let tls = install("tls");
    assert_eq!(tls.code, 0, "{}", tls.stderr);
    assert_eq!(tls.json()["dockerHost"], format!("tcp://{ip}:2376"));
    assert_eq!(docker_info(&env, &format!("{ip}:2376")).code, 0);
    assert_eq!(docker(&env, &["--context", "sshhost", "info", "--format", "{{.ServerVersion}}"]).code, 0);
    let back = install("ssh");
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert!(back.stderr.contains("had other SSH host keys pinned"), "{}", back.stderr);
    assert!(std::net::TcpStream::connect((ip.as_str(), 2376)).is_err(), "the TLS listener stayed");
    let nsg =
        arm.call(reqwest::Method::GET, &vm_path(&sub, "sshhost", "networkSecurityGroups", "sshhostNSG"), None).await.2;
    assert!(!nsg.to_string().contains("azdock-docker"), "the Docker rule stayed: {nsg}");
    let again = docker_over_ssh(&env, &["--context", "sshhost", "image", "ls", "--format", "{{.Repository}}"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("azdock/tiny"), "{}", again.stdout);
    // …and tls once more: the host switched tls → ssh → tls is reached with TLS again.
    assert_eq!(install("tls").code, 0);
    assert_eq!(docker_info(&env, &format!("{ip}:2376")).code, 0);
    env.run(&["local", "down"]).success();
}
