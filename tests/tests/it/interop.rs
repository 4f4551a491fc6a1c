//! Microsoft's Azure SDK for Python (MSAL, azure-mgmt-*) against `azdock local`: if the SDK's
//! own sign-in, requests and pollers work, the local cloud speaks Azure's wire format.

use azdock_tests::{Env, run};

#[test]
fn the_azure_sdk_for_python_drives_the_local_cloud() {
    let Some(python) = std::env::var_os("AZDOCK_SDK_PYTHON") else {
        assert!(
            std::env::var_os("AZDOCK_TESTS_WITHOUT_SDK").is_some(),
            "AZDOCK_SDK_PYTHON is not set: run the tests through `cargo xtask ci`, which installs the pinned SDK into target/interop-venv, or set AZDOCK_TESTS_WITHOUT_SDK=1 to skip this test"
        );
        azdock_tests::skipped("no Azure SDK for Python, and AZDOCK_TESTS_WITHOUT_SDK is set");
        return;
    };
    let env = Env::new();
    env.run(&["local", "up", "--instant"]).success();
    // The SDK is configured the way a user would configure it: `eval "$(azdock local env)"`.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/azure_sdk.py");
    let mut shell = env.command("bash");
    shell
        .env("SDK_PYTHON", &python)
        .env("SDK_SCRIPT", &script)
        .args(["-c", r#"set -e; eval "$("$AZDOCK" local env --for sdk)"; exec "$SDK_PYTHON" "$SDK_SCRIPT""#]);
    let out = run(&mut shell);
    env.run(&["local", "down"]).success();
    assert_eq!(out.code, 0, "the SDK failed:\n{}\n{}", out.stdout, out.stderr);
    for line in [
        "rg sdk-rg westeurope Succeeded",
        "latest ubuntu ['24.04.202411030']",
        "deleted; exists now: False",
        "vnet vnet ProvisioningState.SUCCEEDED ['default']",
        "pip 127.1.",
        "nic 10.1.0.4",
        "vm sdkvm Succeeded OperatingSystemTypes.LINUX",
        "ext enablevmaccess Succeeded",
        "instance view ['ProvisioningState/succeeded', 'PowerState/running'] ['enablevmaccess']",
        "power ['ProvisioningState/succeeded', 'PowerState/stopped']",
        "vm deleted; vms left: []",
    ] {
        assert!(out.stdout.contains(line), "missing `{line}` in:\n{}", out.stdout);
    }
}

/// The Azure CLI (pinned, installed by `cargo xtask ci` into target/az-venv) against `azdock
/// local`, configured by `eval "$(azdock local env --for az)"`: az reads what azdock made, makes
/// and removes an extension, resets a password, lists sizes and networks at the api-versions it
/// sends, and creates VMs and an availability set through template deployments; azdock signs in
/// through that real az (`login --use-az-cli`) and turns az's VM into a Docker host the real
/// docker CLI reaches over mutual TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_cli_drives_the_local_cloud() {
    let Some(az) = std::env::var_os("AZDOCK_AZ_CLI") else {
        assert!(
            std::env::var_os("AZDOCK_TESTS_WITHOUT_AZ").is_some(),
            "AZDOCK_AZ_CLI is not set: run the tests through `cargo xtask ci`, which installs the pinned Azure CLI into target/az-venv, or set AZDOCK_TESTS_WITHOUT_AZ=1 to skip this test"
        );
        azdock_tests::skipped("no Azure CLI, and AZDOCK_TESTS_WITHOUT_AZ is set");
        return;
    };
    let docker = azdock_tests::dockerd_available();
    let _one_dockerd_at_a_time = docker.then(azdock_tests::dockerd_lock);
    let env = Env::new();
    let (up, arm) = azdock_tests::local_cloud(&env, &["--instant"]).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    // A VM azdock made, with the VMAccess extension azdock wrote.
    env.run(&["--cloud", "local", "vm", "create", "azvm", "-g", "azrg", "--generate-ssh-keys", "-o", "none"]).success();
    let reset = env.run(&[
        "--cloud",
        "local",
        "ext",
        "vmaccess",
        "set-ssh-key",
        "--vm",
        "azvm",
        "-g",
        "azrg",
        "-u",
        "azureuser",
        "--ssh-key-value",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd3nqjmI9Y2Gm4zk1t6b0x8v5wQwCkq3pX5uS9r2k0m one@host",
    ]);
    assert_eq!(reset.code, 0, "{}", reset.stderr);

    // One shell, as a user would type it: each az answer into a file of its own.
    let out_dir = env.path().join("az-out");
    std::fs::create_dir(&out_dir).unwrap();
    let script = r#"
set -eu
eval "$("$AZDOCK" local env --for az)"
cd "$OUT"
az account show -o json > account.json
az vm list -o json > vm-list.json
az vm show -d -g azrg -n azvm -o json > vm-show.json
az vm list-sizes -l westus -o json > sizes.json
az network public-ip list -o json > pips.json
az network vnet list -o json > vnets.json
az vm extension show -g azrg --vm-name azvm -n enablevmaccess -o json > ext-azdock.json
az vm user update -g azrg -n azvm -u ops -p 'Az-Passw0rd-77' -o json > user.json
az vm extension list -g azrg --vm-name azvm -o json > ext-list.json
az vm extension delete -g azrg --vm-name azvm -n enablevmaccess
az vm extension list -g azrg --vm-name azvm -o json > ext-after.json
az vm get-instance-view -g azrg -n azvm -o json > view.json
az vm availability-set create -g azrg -n azset -o json > avset.json
az vm create -g azrg -n azmade --image Ubuntu2404 --generate-ssh-keys --size Standard_B1s --availability-set azset -o json > created.json
az vm create -g azrg -n azurn --image Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest --size Standard_B1s --admin-username ops --admin-password 'Az-Passw0rd-78' --nsg-rule NONE -o json > created-urn.json
az vm list -g azrg -o json > vm-list-after.json
az deployment group list -g azrg -o json > deployments.json
"$AZDOCK" --cloud local login --use-az-cli -o json > azdock-login.json
"$AZDOCK" --cloud local vm list -o json > azdock-vms.json
"#;
    let az_bin = std::path::Path::new(&az).parent().unwrap().to_owned();
    let path = format!("{}:{}", az_bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = azdock_tests::run(env.command("bash").env("PATH", path).env("OUT", &out_dir).args(["-c", script]));
    assert_eq!(out.code, 0, "az failed:\n{}\n{}", out.stdout, out.stderr);
    check_az_answers(&out_dir, &arm, &sub).await;
    check_az_creates(&out_dir, &arm, &sub).await;
    if docker {
        docker_on_az_vm(&env, &out_dir, &az_bin);
    } else {
        azdock_tests::skipped("azdock ext docker install on az's VM: no dockerd (AZDOCK_TESTS_WITHOUT_DOCKERD)");
    }
    env.run(&["local", "down"]).success();
}

fn read_json(dir: &std::path::Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    if text.trim().is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).unwrap() }
}

/// What az's template deployments made: VMs from an alias and a URN, in an availability set,
/// each resource through the local cloud's own routes.
async fn check_az_creates(out_dir: &std::path::Path, arm: &azdock_tests::arm::Arm, sub: &str) {
    let created = read_json(out_dir, "created.json");
    assert_eq!(created["powerState"], "VM running", "{created}");
    assert!(created["publicIpAddress"].as_str().unwrap().starts_with("127."), "{created}");
    let urn = read_json(out_dir, "created-urn.json");
    assert_eq!(urn["powerState"], "VM running", "{urn}");
    let (_, vm) = arm
        .get(&format!(
            "/subscriptions/{sub}/resourceGroups/azrg/providers/Microsoft.Compute/virtualMachines/azurn?api-version=2024-11-01"
        ))
        .await;
    assert_eq!(vm["properties"]["storageProfile"]["imageReference"]["sku"], "22_04-lts-gen2", "{vm}");
    let (_, valid) = arm
        .admin(
            reqwest::Method::POST,
            &format!("/guests/{sub}/azrg/azurn/verify-password"),
            Some(serde_json::json!({"username": "ops", "password": "Az-Passw0rd-78"})),
        )
        .await;
    assert_eq!(valid["valid"], true, "the template's secure parameter reached the guest");
    let set = read_json(out_dir, "avset.json");
    assert_eq!(
        (set["platformFaultDomainCount"].as_i64(), set["platformUpdateDomainCount"].as_i64()),
        (Some(2), Some(5))
    );
    let (_, set) = arm
        .get(&format!(
            "/subscriptions/{sub}/resourceGroups/azrg/providers/Microsoft.Compute/availabilitySets/azset?api-version=2024-11-01"
        ))
        .await;
    assert!(
        set["properties"]["virtualMachines"][0]["id"].as_str().unwrap().ends_with("/virtualMachines/azmade"),
        "{set}"
    );
    let listed = read_json(out_dir, "vm-list-after.json");
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    for name in ["azvm", "azmade", "azurn"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let deployments = read_json(out_dir, "deployments.json");
    let deployments = deployments.as_array().unwrap();
    assert_eq!(deployments.len(), 3, "{deployments:?}");
    assert!(deployments.iter().all(|d| d["properties"]["provisioningState"] == "Succeeded"));
    assert!(
        !serde_json::to_string(deployments).unwrap().contains("Az-Passw0rd-78"),
        "a secure parameter is never shown"
    );
    // The same records at the api-version of the vendored specification, so that the spec test
    // checks the deployment and operation bodies the local cloud serves.
    let group = format!("/subscriptions/{sub}/resourcegroups/azrg");
    let (_, listed) =
        arm.get(&format!("{group}/providers/Microsoft.Resources/deployments/?api-version=2021-04-01")).await;
    let name = listed["value"][0]["name"].as_str().unwrap();
    let (_, ops) = arm.get(&format!("{group}/deployments/{name}/operations?api-version=2021-04-01")).await;
    assert!(
        ops["value"].as_array().unwrap().iter().all(|o| o["properties"]["provisioningState"] == "Succeeded"),
        "{ops}"
    );
}

/// `azdock ext docker install` on the VM az made, the real docker CLI through the context azdock
/// wrote, and az showing the extension azdock installed.
fn docker_on_az_vm(env: &Env, out_dir: &std::path::Path, az_bin: &std::path::Path) {
    // azdock is signed in through az (`login --use-az-cli` above): it runs where az is set up.
    let script = r#"
set -eu
eval "$("$AZDOCK" local env --for az)"
cd "$OUT"
"$AZDOCK" --cloud local ext docker install --vm azmade -g azrg --allow-from 127.0.0.0/8 -o json > installed.json
az vm extension list -g azrg --vm-name azmade -o json > ext-docker.json
"#;
    let path = format!("{}:{}", az_bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = azdock_tests::run(env.command("bash").env("PATH", &path).env("OUT", out_dir).args(["-c", script]));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let installed = read_json(out_dir, "installed.json");
    assert_eq!(installed["daemon"]["status"], "running", "{installed}");
    let mut docker = std::process::Command::new("docker");
    docker
        .env("HOME", env.path())
        .env_remove("DOCKER_CONFIG")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .args(["--context", "azmade", "info", "--format", "{{.ServerVersion}}"]);
    let info = azdock_tests::run(&mut docker);
    assert_eq!(info.code, 0, "{}", info.stderr);
    assert!(!info.stdout.trim().is_empty());
    // az shows the extension azdock wrote (`vm extension show`), and never its protected settings.
    let listed = read_json(out_dir, "ext-docker.json");
    let name = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] != "enablevmaccess")
        .and_then(|e| e["name"].as_str())
        .unwrap_or_else(|| panic!("no extension azdock installed in {listed}"))
        .to_owned();
    let show = format!(
        "set -eu\neval \"$(\"$AZDOCK\" local env --for az)\"\naz vm extension show -g azrg --vm-name azmade -n '{name}' -o json > \"$OUT/ext-show.json\"\n"
    );
    let out = azdock_tests::run(env.command("bash").env("PATH", &path).env("OUT", out_dir).args(["-c", &show]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let shown = read_json(out_dir, "ext-show.json");
    assert_eq!(
        (shown["name"].as_str(), shown["provisioningState"].as_str()),
        (Some(name.as_str()), Some("Succeeded")),
        "{shown}"
    );
    assert!(shown.get("protectedSettings").is_none_or(serde_json::Value::is_null), "{shown}");
}

/// What az answered in the script above, file by file.
async fn check_az_answers(out_dir: &std::path::Path, arm: &azdock_tests::arm::Arm, sub: &str) {
    let read = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(out_dir.join(name)).unwrap();
        if text.trim().is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).unwrap() }
    };

    assert_eq!(read("account.json")["id"], sub);
    let vms = read("vm-list.json");
    let vm = vms.as_array().unwrap().iter().find(|v| v["name"] == "azvm").expect("az lists the VM azdock made");
    assert!(
        vm["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"].as_str().unwrap().ends_with("/extensions/enablevmaccess")),
        "{vm}"
    );
    let shown = read("vm-show.json");
    assert_eq!(shown["powerState"], "VM running");
    assert!(shown["publicIps"].as_str().unwrap().starts_with("127."), "{shown}");
    assert!(read("sizes.json").as_array().unwrap().iter().any(|s| s["name"] == "Standard_B1s"));
    assert!(read("pips.json").as_array().unwrap().iter().any(|p| p["name"] == "azvmPublicIP"), "{}", read("pips.json"));
    assert!(read("vnets.json").as_array().unwrap().iter().any(|v| v["name"] == "azvmVNET"));
    // What azdock wrote, as az shows it.
    let ext = read("ext-azdock.json");
    assert_eq!(
        (ext["publisher"].as_str(), ext["provisioningState"].as_str()),
        (Some("Microsoft.OSTCExtensions"), Some("Succeeded"))
    );
    assert_eq!(ext["typePropertiesType"], "VMAccessForLinux");
    // az's password reset changed the guest.
    let (_, valid) = arm
        .admin(
            reqwest::Method::POST,
            &format!("/guests/{sub}/azrg/azvm/verify-password"),
            Some(serde_json::json!({"username": "ops", "password": "Az-Passw0rd-77"})),
        )
        .await;
    assert_eq!(valid["valid"], true);
    assert!(read("ext-list.json").as_array().unwrap().iter().any(|e| e["name"] == "enablevmaccess"));
    assert_eq!(read("ext-after.json"), serde_json::json!([]));
    let view = read("view.json");
    let listed = view["instanceView"]["extensions"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, 0, "the deleted extension left the instance view: {view}");
    // azdock, signed in through the real az.
    assert_eq!(read("azdock-login.json")[0]["id"], sub);
    assert!(read("azdock-vms.json").as_array().unwrap().iter().any(|v| v["name"] == "azvm"));
}
