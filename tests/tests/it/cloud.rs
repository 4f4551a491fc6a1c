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
