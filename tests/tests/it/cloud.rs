//! Commands that talk to a cloud, against the local one: `--cloud local` starts it on demand.

use azdock_tests::Env;
use azdock_tests::arm::Arm;

fn azdock(env: &Env, args: &[&str]) -> azdock_tests::Output {
    let mut cmd = env.azdock();
    // Never reach a real cloud from a test: no ambient Azure credentials.
    for var in ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_SUBSCRIPTION_ID"] {
        cmd.env_remove(var);
    }
    azdock_tests::run(cmd.args(args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_local_starts_the_cloud_and_reads_accounts_and_vms() {
    let env = Env::new();
    assert_eq!(azdock(&env, &["local", "status"]).success().json()["status"], "stopped");
    let accounts = azdock(&env, &["--cloud", "local", "account", "list"]).success().json();
    assert_eq!(accounts.as_array().unwrap().len(), 1);
    assert_eq!((accounts[0]["isDefault"].as_bool(), accounts[0]["cloudName"].as_str()), (Some(true), Some("local")));
    assert_eq!(azdock(&env, &["local", "status"]).success().json()["status"], "running", "--cloud local started it");

    // It started with Azure's own operation times; the VM below wants them instant.
    azdock(&env, &["local", "down"]).success();
    let up = azdock(&env, &["local", "up", "--instant"]).success().json();
    let text = |k: &str| up[k].as_str().unwrap().to_owned();
    let ca = std::fs::read(text("caCertificate")).unwrap();
    let arm = Arm::sign_in(&text("endpoint"), &ca, &text("tenantId"), &text("clientId"), &text("clientSecret")).await;
    arm.linux_vm(&text("subscriptionId"), "web", "web1").await;

    let vms = azdock(&env, &["--cloud", "local", "vm", "list"]).success().json();
    assert_eq!(vms.as_array().unwrap().len(), 1);
    assert_eq!((vms[0]["name"].as_str(), vms[0]["resourceGroup"].as_str()), (Some("web1"), Some("web")));
    assert_eq!(vms[0]["storageProfile"]["osDisk"]["osType"], "Linux");
    let table = azdock(&env, &["--cloud", "local", "vm", "list", "-g", "web", "-o", "table"]).success().stdout;
    assert!(table.starts_with("Name  ResourceGroup  Location    VmSize        OsType  ProvisioningState\n"), "{table}");

    let shown = azdock(&env, &["--cloud", "local", "vm", "show", "-g", "web", "-n", "web1", "-d"]).success().json();
    assert_eq!(shown["powerState"], "VM running");
    assert_eq!(shown["fqdns"], "web1.westeurope.cloudapp.azure.com");
    assert!(shown["publicIps"].as_str().unwrap().starts_with("127.1."));
    assert_eq!(shown["privateIps"], "10.0.0.4");

    let missing = azdock(&env, &["--cloud", "local", "vm", "show", "-g", "web", "-n", "nope"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.starts_with("ERROR: (ResourceNotFound) The Resource 'Microsoft.Compute/virtualMachines/nope' under resource group 'web' was not found"), "{}", missing.stderr);
    azdock(&env, &["local", "down"]).success();
}

#[test]
fn unknown_clouds_and_missing_credentials_fail_before_any_request() {
    let env = Env::new();
    let out = azdock(&env, &["--cloud", "Mars", "account", "list"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown cloud `Mars`: use AzureCloud, AzureChinaCloud, AzureUSGovernment or local"),
        "{}",
        out.stderr
    );
    let out = azdock(&env, &["account", "list"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("no credentials for AzureCloud: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_power_actions_delete_and_images() {
    let env = Env::new();
    let up = azdock(&env, &["local", "up", "--instant"]).success().json();
    let text = |k: &str| up[k].as_str().unwrap().to_owned();
    let ca = std::fs::read(text("caCertificate")).unwrap();
    let arm = Arm::sign_in(&text("endpoint"), &ca, &text("tenantId"), &text("clientId"), &text("clientSecret")).await;
    arm.linux_vm(&text("subscriptionId"), "ops", "box1").await;
    let power = |env: &Env| {
        azdock(
            env,
            &["--cloud", "local", "vm", "show", "-g", "ops", "-n", "box1", "-d", "--query", "powerState", "-o", "tsv"],
        )
        .success()
        .stdout
    };

    let out = azdock(&env, &["--cloud", "local", "vm", "stop", "-g", "ops", "-n", "box1"]).success();
    assert_eq!(out.stdout, "", "actions print nothing, as az does");
    assert_eq!(power(&env), "VM stopped\n");
    azdock(&env, &["--cloud", "local", "vm", "start", "-g", "ops", "-n", "box1"]).success();
    assert_eq!(power(&env), "VM running\n");
    azdock(&env, &["--cloud", "local", "vm", "deallocate", "-g", "ops", "-n", "box1", "--no-wait"]).success();
    azdock(&env, &["--cloud", "local", "vm", "start", "-g", "ops", "-n", "box1"]).success();
    azdock(&env, &["--cloud", "local", "vm", "restart", "-g", "ops", "-n", "box1"]).success();
    assert_eq!(power(&env), "VM running\n");

    let out = azdock(&env, &["--cloud", "local", "vm", "delete", "-g", "ops", "-n", "box1"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("pass `--yes` to confirm"), "{}", out.stderr);
    azdock(&env, &["--cloud", "local", "vm", "delete", "-g", "ops", "-n", "box1", "--yes"]).success();
    let vms = azdock(&env, &["--cloud", "local", "vm", "list", "-g", "ops"]).success().json();
    assert_eq!(vms, serde_json::json!([]));

    let aliases = azdock(&env, &["vm", "image", "aliases", "-o", "json"]).success().json();
    assert_eq!(aliases[0]["urn"], "Canonical:ubuntu-24_04-lts:server:latest");
    let images = azdock(
        &env,
        &["--cloud", "local", "vm", "image", "list", "--all", "-p", "Canonical", "-f", "ubuntu-24", "-o", "json"],
    )
    .success()
    .json();
    let urns: Vec<&str> = images.as_array().unwrap().iter().map(|i| i["urn"].as_str().unwrap()).collect();
    assert_eq!(
        urns,
        ["Canonical:ubuntu-24_04-lts:server:24.04.202409120", "Canonical:ubuntu-24_04-lts:server:24.04.202411030"]
    );
    let out = azdock(&env, &["--cloud", "local", "vm", "image", "list", "--all"]);
    assert_eq!(out.code, 2, "{out:?}");
    let missing = azdock(&env, &["--cloud", "local", "vm", "start", "-g", "ops", "-n", "ghost"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("(ResourceNotFound)"), "{}", missing.stderr);
    azdock(&env, &["local", "down"]).success();
}
