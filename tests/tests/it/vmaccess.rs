//! VMAccess through the binary against the local cloud, asserting the guest's state through the
//! emulator's admin routes: passwords, users, keys, sshd, RDP, disks; repeated resets; every rule
//! refused before any request; and a fleet of Linux and Windows VMs with faults on some.

use azdock_tests::arm::Arm;
use azdock_tests::{Env, Output};
use serde_json::{Value, json};

async fn cloud(env: &Env) -> (Value, Arm) {
    cloud_with(env, &[]).await
}

async fn cloud_with(env: &Env, extra: &[&str]) -> (Value, Arm) {
    azdock_tests::local_cloud(env, &[&["--instant"][..], extra].concat()).await
}

/// `azdock --cloud local ext vmaccess ARGS…`, with `password` on stdin when given.
fn vmaccess(env: &Env, args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = env.azdock();
    cmd.args(["--cloud", "local", "ext", "vmaccess"]).args(args);
    match password {
        None => azdock_tests::run(&mut cmd),
        Some(p) => azdock_tests::run_with_stdin(cmd.arg("--password-stdin"), p),
    }
}

async fn guest(arm: &Arm, sub: &str, group: &str, vm: &str) -> Value {
    arm.admin(reqwest::Method::GET, &format!("/guests/{sub}/{group}/{vm}"), None).await.1["guest"].clone()
}

async fn password_ok(arm: &Arm, sub: &str, group: &str, vm: &str, user: &str, password: &str) -> bool {
    let body = json!({"username": user, "password": password});
    arm.admin(reqwest::Method::POST, &format!("/guests/{sub}/{group}/{vm}/verify-password"), Some(body)).await.1["valid"]
        == true
}

async fn request_count(arm: &Arm) -> u64 {
    arm.admin(reqwest::Method::GET, "/requests", None).await.1["last"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_users_keys_sshd_and_disks_change_in_the_guest() {
    let env = Env::new();
    let (up, arm) = cloud(&env).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    arm.linux_vm(&sub, "lin", "lin1").await;
    let on = ["--vm", "lin1", "-g", "lin"];
    let run = |args: &[&str], password: Option<&str>| vmaccess(&env, &[args, &on[..]].concat(), password);

    // A password reset changes the hash, creates a missing user with sudo and the expiry, and
    // turns on SSH password login.
    let reset = run(&["reset-password", "-u", "ops", "--expiration", "2999-12-31"], Some("N3w-Passw0rd!"));
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    assert_eq!(reset.json()["status"], "succeeded");
    assert!(reset.stderr.contains("creates `ops` with sudo"), "{}", reset.stderr);
    assert!(password_ok(&arm, &sub, "lin", "lin1", "ops", "N3w-Passw0rd!").await);
    assert!(!password_ok(&arm, &sub, "lin", "lin1", "ops", "not-it").await);
    let g = guest(&arm, &sub, "lin", "lin1").await;
    assert_eq!(
        (g["users"]["ops"]["admin"].as_bool(), g["users"]["ops"]["expiration"].as_str()),
        (Some(true), Some("2999-12-31"))
    );
    assert_eq!(g["sshd"]["passwordAuthentication"], true);
    // The same reset again runs the handler again (a fresh forceUpdateTag).
    assert_eq!(g["handlerRuns"]["enablevmaccess"], 1);
    run(&["reset-password", "-u", "ops"], Some("N3w-Passw0rd!")).success();
    assert_eq!(guest(&arm, &sub, "lin", "lin1").await["handlerRuns"]["enablevmaccess"], 2);
    // A password from the environment works too; one in argv works with a warning.
    let argv = run(&["reset-password", "-u", "ops", "--password", "Other-Passw0rd!"], None).success();
    assert!(argv.stderr.contains("WARNING: a password on the command line"), "{}", argv.stderr);
    assert!(password_ok(&arm, &sub, "lin", "lin1", "ops", "Other-Passw0rd!").await);

    // Keys: appended, then replaced; a key file is read.
    let k1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd3nqjmI9Y2Gm4zk1t6b0x8v5wQwCkq3pX5uS9r2k0m one@host";
    let k2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA0nvP3eA4sBhDUUmjCFjDYwPx0X0vZzCvD2eGsMbRdq two@host";
    let key_file = env.path().join("k2.pub");
    std::fs::write(&key_file, k2).unwrap();
    run(&["set-ssh-key", "-u", "ops", "--ssh-key-value", k1], None).success();
    run(&["set-ssh-key", "-u", "ops", "--ssh-key-value", key_file.to_str().unwrap()], None).success();
    assert_eq!(guest(&arm, &sub, "lin", "lin1").await["users"]["ops"]["authorizedKeys"], json!([k1, k2]));
    run(&["set-ssh-key", "-u", "ops", "--ssh-key-value", k1, "--replace"], None).success();
    assert_eq!(guest(&arm, &sub, "lin", "lin1").await["users"]["ops"]["authorizedKeys"], json!([k1]));

    // sshd: back to the distribution's file, then the backup.
    assert_eq!(guest(&arm, &sub, "lin", "lin1").await["sshd"]["config"], "provisioned");
    run(&["reset-ssh"], None).success();
    let g = guest(&arm, &sub, "lin", "lin1").await;
    assert_eq!((g["sshd"]["config"].as_str(), g["sshd"]["port"].as_u64()), (Some("default"), Some(22)));
    run(&["restore-ssh-backup"], None).success();
    assert_eq!(guest(&arm, &sub, "lin", "lin1").await["sshd"]["config"], "provisioned");

    // Disks, then the user goes.
    run(&["check-disk"], None).success();
    run(&["repair-disk", "--disk-name", "data0"], None).success();
    assert_eq!(guest(&arm, &sub, "lin", "lin1").await["diskChecks"], json!(["check", "repair data0"]));
    run(&["remove-user", "-u", "ops"], None).success();
    assert!(guest(&arm, &sub, "lin", "lin1").await["users"].get("ops").is_none());
    // The handler's failure comes back with its words.
    let gone = run(&["remove-user", "-u", "ops"], None);
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("user 'ops' does not exist"), "{}", gone.stderr);
    env.run(&["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_password_and_rdp_and_each_os_keeps_to_its_actions() {
    let env = Env::new();
    let (up, arm) = cloud(&env).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    arm.windows_vm(&sub, "win", "win1").await;
    arm.linux_vm(&sub, "lin", "lin2").await;
    let win = ["--vm", "win1", "-g", "win"];
    let reset = vmaccess(&env, &[&["reset-password", "-u", "Ops"][..], &win].concat(), Some("N3w-Passw0rd!"));
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    assert!(password_ok(&arm, &sub, "win", "win1", "Ops", "N3w-Passw0rd!").await);
    assert_eq!(guest(&arm, &sub, "win", "win1").await["users"]["Ops"]["admin"], true);
    vmaccess(&env, &[&["reset-rdp"][..], &win].concat(), None).success();
    let g = guest(&arm, &sub, "win", "win1").await;
    assert_eq!((g["rdp"]["enabled"].as_bool(), g["rdp"]["resets"].as_u64()), (Some(true), Some(1)));

    // Linux-only on Windows and Windows-only on Linux: refused once the OS is known, nothing sent.
    let before = request_count(&arm).await;
    for (args, vm) in [(&["reset-ssh"][..], &win[..]), (&["reset-rdp"][..], &["--vm", "lin2", "-g", "lin"][..])] {
        let out = vmaccess(&env, &[args, vm].concat(), None);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("is not supported on this VM"), "{}", out.stderr);
    }
    let (_, log) = arm.admin(reqwest::Method::GET, &format!("/requests?since={before}"), None).await;
    assert!(log["requests"].as_array().unwrap().iter().all(|r| r["method"] != "PUT"), "no extension was sent");
    // A Windows password shorter than Windows allows, though Linux would take it.
    let short = vmaccess(&env, &[&["reset-password", "-u", "Ops"][..], &win].concat(), Some("Sh0rt!x"));
    assert_eq!(short.code, 2);
    assert!(short.stderr.contains("Windows VMs need 8 to 123"), "{}", short.stderr);
    env.run(&["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_is_refused_before_any_request() {
    let env = Env::new();
    let (_, arm) = cloud(&env).await;
    let on = ["--vm", "any", "-g", "any"];
    let before = request_count(&arm).await;
    let cases: &[(&[&str], Option<&str>, &str)] = &[
        (&["reset-password", "-u", "root"], Some("N3w-Passw0rd!"), "reserved by Azure"),
        (&["reset-password", "-u", "a@b"], Some("N3w-Passw0rd!"), "cannot contain"),
        (&["reset-password", "-u", "ops"], Some("password"), "3 of"),
        (&["reset-password", "-u", "ops"], Some("P@ssw0rd"), "refused passwords"),
        (&["reset-password", "-u", "ops", "--expiration", "2001-01-01"], Some("N3w-Passw0rd!"), "in the past"),
        (&["reset-password", "-u", "ops", "--expiration", "31/12/2999"], Some("N3w-Passw0rd!"), "YYYY-MM-DD"),
        (&["reset-password", "-u", "ops"], None, "no password"),
        (&["set-ssh-key", "-u", "ops", "--ssh-key-value", "ssh-dss AAAAB3Nza"], None, "not accepted"),
        (&["set-ssh-key", "-u", "ops", "--ssh-key-value", "not a key"], None, "not accepted"),
        (&["set-ssh-key", "-u", "ops", "--ssh-key-value", "ssh-ed25519"], None, "not an SSH public key"),
        (&["repair-disk", "--disk-name", "../etc"], None, "not a disk name"),
    ];
    for (args, password, says) in cases {
        let out = vmaccess(&env, &[args, &on[..]].concat(), *password);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("N3w-Passw0rd!"), "the password is never echoed");
    }
    let no_target = vmaccess(&env, &["check-disk"], None);
    assert_eq!(no_target.code, 2);
    let (_, log) = arm.admin(reqwest::Method::GET, &format!("/requests?since={before}"), None).await;
    let sent: Vec<&Value> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["path"].as_str().unwrap().starts_with("/_emulator"))
        .collect();
    assert!(sent.is_empty(), "no request reached the cloud: {sent:?}");
    env.run(&["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_linux_and_windows_vms_with_faults_on_some() {
    let env = Env::new();
    // Setting up 200 VMs would wait on ARM's write bucket; injected 429s stand in for it below.
    let (up, arm) = cloud_with(&env, &["--no-throttle"]).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    let group = format!("/subscriptions/{sub}/resourceGroups/fleet");
    arm.call(
        reqwest::Method::PUT,
        &format!("/subscriptions/{sub}/resourcegroups/fleet?api-version=2021-04-01"),
        Some(json!({"location": "westeurope"})),
    )
    .await;
    let net = format!("{group}/providers/Microsoft.Network");
    arm.put_and_wait(&format!("{net}/virtualNetworks/vnet?api-version=2024-05-01"), json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/16"}}]}})).await;
    // 200 VMs, every fifth Windows, made eight at a time.
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (arm, net, group) = (arm.clone(), net.clone(), group.clone());
        tasks.push(tokio::spawn(async move {
            for i in (worker..200).step_by(8) {
                let nic = json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": format!("{net}/virtualNetworks/vnet/subnets/default")}}}]}});
                arm.put_and_wait(&format!("{net}/networkInterfaces/nic{i}?api-version=2024-05-01"), nic).await;
                let (image, os) = if i % 5 == 0 {
                    (json!({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter-g2", "version": "latest"}), json!({"adminUsername": "azureadmin", "adminPassword": "Sup3r-Secret!", "windowsConfiguration": {}}))
                } else {
                    (json!({"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}), json!({"adminUsername": "azureuser", "adminPassword": "Sup3r-Secret!"}))
                };
                let vm = json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"}, "storageProfile": {"imageReference": image},
                    "osProfile": os, "networkProfile": {"networkInterfaces": [{"id": format!("{net}/networkInterfaces/nic{i}")}]}}});
                arm.put_and_wait(&format!("{group}/providers/Microsoft.Compute/virtualMachines/fleet{i:03}?api-version=2024-11-01"), vm).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Three VMs' extensions fail in Azure; throttling and dropped connections hit the rest.
    let broken = ["fleet007", "fleet050", "fleet123"];
    let mut rules: Vec<Value> = broken
        .iter()
        .map(|vm| json!({"method": "PUT", "pathContains": format!("/virtualMachines/{vm}/extensions/"), "sequence": [{"kind": "lroFail", "code": "VMExtensionProvisioningError", "message": format!("VM '{vm}' has reported a failure when processing extension 'enablevmaccess'.")}]}))
        .collect();
    rules.push(json!({"pathContains": "/virtualMachines/", "rate": 0.05, "fault": {"kind": "status", "status": 429}}));
    rules.push(json!({"method": "GET", "pathContains": "/virtualMachines/", "rate": 0.05, "fault": {"kind": "drop"}}));
    arm.admin(reqwest::Method::PUT, "/faults", Some(json!({"seed": 42, "rules": rules}))).await;

    let out = vmaccess(
        &env,
        &["reset-password", "-u", "fleetops", "-g", "fleet", "--all", "--max-parallel", "16"],
        Some("Fl33t-Passw0rd!"),
    );
    assert_eq!(out.code, 1, "three VMs failed: {}", out.stderr);
    let rows = out.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 200);
    for row in rows {
        let name = row["name"].as_str().unwrap();
        let expected = if broken.contains(&name) { "failed" } else { "succeeded" };
        assert_eq!(row["status"], expected, "{row}");
    }
    for vm in broken {
        assert!(out.stderr.contains(&format!("fleet/{vm}: (VMExtensionProvisioningError)")), "{}", out.stderr);
    }
    assert!(out.stderr.contains("3 of 200 VMs failed"), "{}", out.stderr);
    arm.admin(reqwest::Method::PUT, "/faults", Some(json!({"rules": []}))).await;
    // Every VM that succeeded has the password, set by exactly one handler run.
    for row in rows.iter().filter(|r| r["status"] == "succeeded") {
        let vm = row["name"].as_str().unwrap();
        assert!(password_ok(&arm, &sub, "fleet", vm, "fleetops", "Fl33t-Passw0rd!").await, "{vm}");
        assert_eq!(guest(&arm, &sub, "fleet", vm).await["handlerRuns"]["enablevmaccess"], 1, "{vm} ran once");
    }
    let windows = rows.iter().filter(|r| r["osType"] == "Windows").count();
    assert_eq!(windows, 40 - broken.iter().filter(|b| b.ends_with("050")).count());
    env.run(&["local", "down"]).success();
}

/// The VM's SSH endpoint once the local cloud opened it (bounded wait).
async fn ssh_endpoint(arm: &Arm, sub: &str, group: &str, vm: &str) -> (String, u16) {
    for _ in 0..200 {
        let g = guest(arm, sub, group, vm).await;
        if g["sshEndpoint"]["state"] == "listening" {
            let address: std::net::SocketAddr = g["sshEndpoint"]["address"].as_str().unwrap().parse().unwrap();
            return (address.ip().to_string(), address.port());
        }
        assert_ne!(g["sshEndpoint"]["state"], "unavailable", "{}", g["sshEndpoint"]);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the VM's SSH endpoint did not open within 10 s");
}

/// Runs a command as CustomScript on the VM (as root of the guest) and waits for it.
async fn custom_script(arm: &Arm, sub: &str, group: &str, vm: &str, command: &str) -> Value {
    let path = format!(
        "/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{vm}/extensions/script?api-version=2024-11-01"
    );
    let body = json!({"location": "westeurope", "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
        "typeHandlerVersion": "2.1", "autoUpgradeMinorVersion": true, "settings": {}, "protectedSettings": {"commandToExecute": command}}});
    arm.put_and_wait(&path, body).await.2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_vmaccess_changes_is_what_a_real_ssh_login_finds() {
    if !azdock_tests::sshd_available() {
        return;
    }
    let env = Env::new();
    let (up, arm) = cloud(&env).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    arm.linux_vm(&sub, "sshg", "box1").await;
    let (host, port) = ssh_endpoint(&arm, &sub, "sshg", "box1").await;
    // `local status` says where each VM's sshd answers.
    let status = env.run(&["local", "status"]).success().json();
    assert_eq!(status["ssh"], "available", "{status}");
    let listed = json!({"vm": "box1", "address": format!("{host}:{port}")});
    assert!(status["sshEndpoints"].as_array().unwrap().contains(&listed), "{status}");
    let on = ["--vm", "box1", "-g", "sshg"];
    let run = |args: &[&str], password: Option<&str>| vmaccess(&env, &[args, &on[..]].concat(), password);
    let login = |user: &str, password: Option<&str>, key: Option<&std::path::Path>| {
        azdock_tests::ssh_to(&host, port, user, password, key, "id -un")
    };

    // The account the VM was made with logs in with its password, as itself; a wrong one not.
    let admin = login("azureuser", Some("Sup3r-Secret!"), None);
    assert_eq!((admin.code, admin.stdout.trim()), (0, "azureuser"), "{}", admin.stderr);
    assert_ne!(login("azureuser", Some("not-it"), None).code, 0);

    // reset-password: the new password logs in and the old one no longer does.
    run(&["reset-password", "-u", "azureuser"], Some("N3w-Passw0rd!")).success();
    assert_eq!(login("azureuser", Some("N3w-Passw0rd!"), None).code, 0);
    assert_ne!(login("azureuser", Some("Sup3r-Secret!"), None).code, 0);
    // A new account, made by a reset, logs in as itself.
    run(&["reset-password", "-u", "ops"], Some("Ops-Passw0rd!")).success();
    let ops = login("ops", Some("Ops-Passw0rd!"), None);
    assert_eq!((ops.code, ops.stdout.trim()), (0, "ops"), "{}", ops.stderr);

    // set-ssh-key: the key logs in once it is set, not before.
    let key = env.path().join("id_ops");
    let made = azdock_tests::run(
        std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key),
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert_ne!(login("ops", None, Some(&key)).code, 0);
    run(&["set-ssh-key", "-u", "ops", "--ssh-key-value", key.with_extension("pub").to_str().unwrap()], None).success();
    let by_key = login("ops", None, Some(&key));
    assert_eq!((by_key.code, by_key.stdout.trim()), (0, "ops"), "{}", by_key.stderr);

    // remove-user: neither the key nor the password gets in.
    run(&["remove-user", "-u", "ops"], None).success();
    assert_ne!(login("ops", None, Some(&key)).code, 0);
    assert_ne!(login("ops", Some("Ops-Passw0rd!"), None).code, 0);

    // A broken sshd_config (written by a script, as root of the guest) stops every login;
    // reset-ssh puts the distribution's file back and logins work again.
    let broke =
        custom_script(&arm, &sub, "sshg", "box1", "echo 'NotAnSshdDirective yes' >> /etc/ssh/sshd_config").await;
    assert_eq!(broke["status"], "Succeeded", "{broke}");
    assert_ne!(login("azureuser", Some("N3w-Passw0rd!"), None).code, 0);
    run(&["reset-ssh"], None).success();
    let back = login("azureuser", Some("N3w-Passw0rd!"), None);
    assert_eq!((back.code, back.stdout.trim()), (0, "azureuser"), "{}", back.stderr);

    // sshd stops with the VM and comes back when it starts.
    let vm = format!("/subscriptions/{sub}/resourceGroups/sshg/providers/Microsoft.Compute/virtualMachines/box1");
    arm.send_and_wait(reqwest::Method::POST, &format!("{vm}/powerOff?api-version=2024-11-01"), None).await;
    assert_eq!(guest(&arm, &sub, "sshg", "box1").await["sshEndpoint"]["state"], "stopped");
    let off = login("azureuser", Some("N3w-Passw0rd!"), None);
    assert_ne!(off.code, 0);
    arm.send_and_wait(reqwest::Method::POST, &format!("{vm}/start?api-version=2024-11-01"), None).await;
    assert_eq!(ssh_endpoint(&arm, &sub, "sshg", "box1").await, (host.clone(), port));
    assert_eq!(login("azureuser", Some("N3w-Passw0rd!"), None).code, 0);
    env.run(&["local", "down"]).success();
}
