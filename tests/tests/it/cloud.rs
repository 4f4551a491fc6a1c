//! Commands that talk to a cloud, against the local one: `--cloud local` starts it on demand.

use azdock_tests::Env;
use azdock_tests::arm::Arm;

/// `azdock local up --instant`, and a plain client signed in with the credentials it printed.
async fn local_cloud(env: &Env) -> (serde_json::Value, Arm) {
    azdock_tests::local_cloud(env, &["--instant"]).await
}

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
    let (up, arm) = local_cloud(&env).await;
    let text = |k: &str| up[k].as_str().unwrap().to_owned();
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
        out.stderr.contains(
            "unknown cloud `Mars`: use AzureCloud, AzureChinaCloud, AzureUSGovernment, local (or register one"
        ),
        "{}",
        out.stderr
    );
    let out = azdock(&env, &["--cloud", "AzureCloud", "account", "list"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("no credentials for AzureCloud: run `azdock login --service-principal` or `az login`, or set AZURE_TENANT_ID"),
        "{}",
        out.stderr
    );
    // With no cloud named and no Azure sign-in at all, commands run in the local cloud and say so.
    let out = azdock(&env, &["account", "list"]).success();
    assert_eq!(out.json()[0]["cloudName"], "local");
    assert_eq!(out.json()[0]["cloud"], "local", "a result of the local cloud says so");
    assert!(
        out.stderr.contains("no Azure sign-in is configured, so this runs in azdock's local cloud"),
        "{}",
        out.stderr
    );
    // But nothing that deletes, resets, rotates or stops runs there unless the local cloud is
    // chosen: the user may believe it acts on Azure.
    for words in [
        &["vm", "delete", "-g", "g", "-n", "x", "--yes"][..],
        &["vm", "stop", "-g", "g", "-n", "x"],
        &["ext", "remove", "--vm", "x", "-g", "g", "-n", "docker"],
        &["ext", "docker", "uninstall", "--vm", "x", "-g", "g"],
        &["ext", "vmaccess", "reset-ssh", "--vm", "x", "-g", "g"],
    ] {
        let out = azdock(&env, words);
        assert_eq!(out.code, 2, "{words:?}: {}", out.stderr);
        assert!(out.stderr.contains("pass `--cloud local`") && out.stderr.contains("sign in"), "{}", out.stderr);
    }
    let chosen = azdock(&env, &["--cloud", "local", "vm", "delete", "-g", "g", "-n", "x", "--yes"]);
    assert_eq!(chosen.code, 1, "chosen, it runs (and finds no such VM): {}", chosen.stderr);
    // A service principal's secret without its tenant and client is named, not skipped over.
    let mut half = env.azdock();
    half.env("AZURE_CLIENT_SECRET", "s3cret-value").args(["--cloud", "AzureCloud", "account", "list"]);
    let out = azdock_tests::run(&mut half);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID and AZURE_CLIENT_ID are not"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret-value"));
    azdock(&env, &["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_power_actions_delete_and_images() {
    let env = Env::new();
    let (up, arm) = local_cloud(&env).await;
    let text = |k: &str| up[k].as_str().unwrap().to_owned();
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

    // A long-running operation that fails: its error code and message; `--no-wait` returns
    // once Azure accepted the request, so the same failure does not reach it.
    let preempted = serde_json::json!({"rules": [{"method": "POST", "pathContains": "/restart", "sequence": [
        {"kind": "lroFail", "code": "OperationPreempted", "message": "Operation execution has been preempted by a more recent operation."},
        {"kind": "lroFail", "code": "OperationPreempted", "message": "Operation execution has been preempted by a more recent operation."}]}]});
    let (status, _) = arm.admin(reqwest::Method::PUT, "/faults", Some(preempted)).await;
    assert!(status.is_success());
    let failed = azdock(&env, &["--cloud", "local", "vm", "restart", "-g", "ops", "-n", "box1"]);
    assert_eq!(failed.code, 1);
    assert!(
        failed.stderr.contains("ERROR: (OperationPreempted) Operation execution has been preempted"),
        "{}",
        failed.stderr
    );
    azdock(&env, &["--cloud", "local", "vm", "restart", "-g", "ops", "-n", "box1", "--no-wait"]).success();

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

#[test]
fn login_checks_the_secret_stores_it_privately_and_logout_forgets_it() {
    let env = Env::new();
    let up = azdock(&env, &["local", "up", "--instant"]).success().json();
    let (tenant, client, secret) =
        (up["tenantId"].as_str().unwrap(), up["clientId"].as_str().unwrap(), up["clientSecret"].as_str().unwrap());
    let login = |password: &str| {
        let mut cmd = env.azdock();
        cmd.args(["--cloud", "local", "login", "--service-principal", "-u", client, "-t", tenant, "--password-stdin"]);
        let out = azdock_tests::run_with_stdin(&mut cmd, password);
        (out.code, out.stdout, out.stderr)
    };
    let credentials = env.path().join("config/credentials.json");

    let (code, stdout, stderr) = login("not-the-secret");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("sign-in failed: invalid_client: AADSTS7000215"), "{stderr}");
    assert!(!credentials.exists(), "a failed sign-in stores nothing");
    assert!(stdout.is_empty());

    let (code, stdout, stderr) = login(secret);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(up["subscriptionId"].as_str().unwrap()), "login lists the subscriptions: {stdout}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret), "the secret is never printed");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&credentials).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(!std::fs::read_to_string(env.path().join("config/config.toml")).unwrap_or_default().contains(secret));

    // account set writes the default into the config file; an unknown subscription is refused.
    let sub = up["subscriptionId"].as_str().unwrap();
    azdock(&env, &["--cloud", "local", "account", "set", "-s", sub]).success();
    let config = std::fs::read_to_string(env.path().join("config/config.toml")).unwrap();
    assert!(config.contains(&format!("subscription = \"{sub}\"")), "{config}");
    let out = azdock(&env, &["--cloud", "local", "account", "set", "-s", "11111111-1111-4111-8111-111111111111"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is not visible to this login"), "{}", out.stderr);

    // A secret in argv works, with a warning. (`--password=` because secrets may start with `-`.)
    let password = format!("--password={secret}");
    let argv =
        azdock(&env, &["--cloud", "local", "login", "--service-principal", "-u", client, "-t", tenant, &password]);
    assert_eq!(argv.code, 0, "{}", argv.stderr);
    assert!(argv.stderr.contains("WARNING: a secret on the command line is visible"), "{}", argv.stderr);

    azdock(&env, &["--cloud", "local", "logout"]).success();
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(stored, serde_json::json!({}));
    azdock(&env, &["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_show_requests_but_never_secrets_or_tokens() {
    let env = Env::new();
    let (up, arm) = local_cloud(&env).await;
    arm.linux_vm(up["subscriptionId"].as_str().unwrap(), "dbg", "dbgvm").await;
    let (tenant, client, secret) =
        (up["tenantId"].as_str().unwrap(), up["clientId"].as_str().unwrap(), up["clientSecret"].as_str().unwrap());
    let password = format!("--password={secret}");
    let login = azdock(
        &env,
        &["--debug", "--cloud", "local", "login", "--service-principal", "-u", client, "-t", tenant, &password],
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    let list = azdock(&env, &["--debug", "--cloud", "local", "vm", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    // A password and a script in protected settings, from a file as scripts pass them.
    let settings = env.path().join("protected.json");
    std::fs::write(&settings, r#"{"username": "ops", "password": "Zq9-Redact-Me!", "script": "ZWNobyBzM2NyM3Q="}"#)
        .unwrap();
    let set = azdock(
        &env,
        &[
            "--debug",
            "--cloud",
            "local",
            "ext",
            "set",
            "--vm",
            "dbgvm",
            "-g",
            "dbg",
            "--publisher",
            "Microsoft.OSTCExtensions",
            "--type",
            "VMAccessForLinux",
            "--protected-settings",
            &format!("@{}", settings.display()),
        ],
    );
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert!(set.stderr.contains("protectedSettings") && set.stderr.contains("[redacted]"), "{}", set.stderr);
    for out in [&login, &list, &set] {
        assert!(out.stderr.contains("azdock_azure_sm::pipeline: request"), "debug logs show requests: {}", out.stderr);
        assert!(!out.stderr.contains(secret), "the client secret reached the log");
        assert!(!out.stderr.contains("Zq9-Redact-Me!") && !out.stderr.contains("ZWNobyBzM2NyM3Q="), "{}", out.stderr);
        // A JWT starts with the base64 of `{"`; no bearer token reaches the log either.
        assert!(
            !out.stderr.contains("eyJ") && !out.stderr.to_ascii_lowercase().contains("bearer "),
            "a token reached the log: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("hyper_util"), "library debug output is filtered");
    }
    // Headers are logged, with the credential in them redacted.
    assert!(
        list.stderr.contains("authorization: [redacted]") && list.stderr.contains("x-ms-client-request-id: "),
        "{}",
        list.stderr
    );
    // --verbose: each ARM call with its method, path, status and time, and nothing of debug's.
    let verbose = azdock(&env, &["--verbose", "--cloud", "local", "vm", "list", "-g", "dbg"]);
    assert_eq!(verbose.code, 0, "{}", verbose.stderr);
    let call = verbose
        .stderr
        .lines()
        .find(|l| {
            l.contains("GET /subscriptions/")
                && l.contains("/resourceGroups/dbg/providers/Microsoft.Compute/virtualMachines?api-version=")
        })
        .unwrap_or_else(|| panic!("no call line: {}", verbose.stderr));
    assert!(call.contains(" 200 ") && call.trim_end().ends_with(" ms"), "{call}");
    assert!(!verbose.stderr.contains("authorization") && !verbose.stderr.contains("eyJ"), "{}", verbose.stderr);
    azdock(&env, &["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_set_list_show_remove_on_a_vm() {
    let env = Env::new();
    let (up, arm) = local_cloud(&env).await;
    let text = |k: &str| up[k].as_str().unwrap().to_owned();
    let sub = text("subscriptionId");
    arm.linux_vm(&sub, "ext", "vm1").await;
    let vm = [
        "--cloud",
        "local",
        "ext",
        "set",
        "--vm",
        "vm1",
        "-g",
        "ext",
        "--publisher",
        "Microsoft.OSTCExtensions",
        "--type",
        "VMAccessForLinux",
    ];
    let with = |extra: &[&str]| azdock(&env, &[&vm[..], extra].concat());

    // The latest version is looked up and trimmed; protected settings reach the handler.
    let set = with(&["--protected-settings", r#"{"username": "ops", "password": "N3w-Passw0rd!"}"#]).success().json();
    assert_eq!(set["name"], "VMAccessForLinux");
    assert_eq!(set["properties"]["typeHandlerVersion"], "1.5");
    assert_eq!(set["properties"]["instanceView"]["statuses"][0]["code"], "ProvisioningState/succeeded");
    assert!(set["properties"].get("protectedSettings").is_none());
    let (_, ok) = arm
        .admin(
            reqwest::Method::POST,
            &format!("/guests/{sub}/ext/vm1/verify-password"),
            Some(serde_json::json!({"username": "ops", "password": "N3w-Passw0rd!"})),
        )
        .await;
    assert_eq!(ok["valid"], true);
    let runs = async || {
        arm.admin(reqwest::Method::GET, &format!("/guests/{sub}/ext/vm1"), None).await.1["guest"]["handlerRuns"]["vmaccessforlinux"].clone()
    };
    assert_eq!(runs().await, 1);

    // Same settings again: the instance is reused and the handler does not run; --force-update runs it.
    let again =
        with(&["--version", "1.5.18", "--protected-settings", r#"{"username": "ops", "password": "N3w-Passw0rd!"}"#])
            .success()
            .json();
    assert_eq!(again["name"], "VMAccessForLinux");
    assert_eq!(runs().await, 1);
    with(&["--force-update", "--protected-settings", r#"{"username": "ops", "password": "N3w-Passw0rd!"}"#]).success();
    assert_eq!(runs().await, 2);

    // A handler failure is reported with the handler's message.
    let failed = with(&["--protected-settings", r#"{"username": "nopass"}"#]);
    assert_eq!(failed.code, 1);
    assert!(
        failed.stderr.contains("(VMExtensionProvisioningError)")
            && failed.stderr.contains("neither password nor ssh_key"),
        "{}",
        failed.stderr
    );
    // Bad JSON is refused before any request.
    let bad = with(&["--settings", "{not json"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("invalid JSON for `--settings`"), "{}", bad.stderr);

    let list = azdock(&env, &["--cloud", "local", "ext", "list", "--vm", "vm1", "-g", "ext"]).success().json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // With each instance's status, as `az vm extension list` shows it.
    assert!(list[0]["properties"]["instanceView"]["statuses"][0]["code"].is_string(), "{list}");
    let id = format!("/subscriptions/{sub}/resourceGroups/ext/providers/Microsoft.Compute/virtualMachines/vm1");
    let by_ids = azdock(&env, &["--cloud", "local", "ext", "list", "--ids", &id, &id, "-o", "table"]).success().stdout;
    assert!(by_ids.contains("VMAccessForLinux") && by_ids.contains("Status"), "{by_ids}");
    let shown =
        azdock(&env, &["--cloud", "local", "ext", "show", "--vm", "vm1", "-g", "ext", "-n", "VMAccessForLinux"])
            .success()
            .json();
    assert_eq!(shown["properties"]["publisher"], "Microsoft.OSTCExtensions");
    azdock(&env, &["--cloud", "local", "ext", "remove", "--vm", "vm1", "-g", "ext", "-n", "VMAccessForLinux"])
        .success();
    let list = azdock(&env, &["--cloud", "local", "ext", "list", "--vm", "vm1", "-g", "ext"]).success().json();
    assert_eq!(list, serde_json::json!([]));
    // Without --vm, `ext list` is still the registry and needs no cloud.
    assert_eq!(azdock(&env, &["ext", "list"]).success().json()[0]["id"], "docker");
    azdock(&env, &["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_the_azure_cli_uses_its_tokens() {
    let env = Env::new();
    let (up, arm) = local_cloud(&env).await;
    let text = |k: &str| up[k].as_str().unwrap().to_owned();
    // A fake `az` that hands out a real token of the local cloud and records how it was asked.
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let expires = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{}'\ncat <<'EOF'\n{{\"accessToken\": \"{}\", \"expires_on\": {expires}, \"subscription\": \"{}\", \"tenant\": \"{}\", \"tokenType\": \"Bearer\"}}\nEOF\n",
        env.path().join("az-calls").display(),
        arm.token,
        text("subscriptionId"),
        text("tenantId")
    );
    std::fs::write(bin.join("az"), script).unwrap();
    std::fs::set_permissions(bin.join("az"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let with_az = |args: &[&str]| azdock_tests::run(env.azdock().env("PATH", &path).args(args));

    let login = with_az(&["--cloud", "local", "login", "--use-az-cli"]);
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stdout.contains(&text("subscriptionId")));
    let accounts = with_az(&["--cloud", "local", "account", "list"]);
    assert_eq!(accounts.code, 0, "{}", accounts.stderr);
    let calls = std::fs::read_to_string(env.path().join("az-calls")).unwrap();
    assert!(
        calls.contains(&format!("account get-access-token --output json --scope {}/.default", text("endpoint"))),
        "{calls}"
    );
    let stored = std::fs::read_to_string(env.path().join("config/credentials.json")).unwrap();
    assert!(stored.contains("azureCli") && !stored.contains(&arm.token), "the az token is not stored: {stored}");

    // An `az` that is not signed in: its message, and the way forward.
    std::fs::write(bin.join("az"), "#!/bin/sh\necho 'ERROR: Please run az login to setup account.' >&2\nexit 1\n")
        .unwrap();
    let out = with_az(&["--cloud", "local", "account", "list"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Please run az login") && out.stderr.contains("run `az login`"), "{}", out.stderr);
    azdock(&env, &["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_certificate_signs_client_assertions() {
    let env = Env::new();
    let (up, arm) = local_cloud(&env).await;
    let text = |k: &str| up[k].as_str().unwrap().to_owned();
    let (sp_cert, sp_key) = azdock_tests::self_signed_rsa(env.path(), "sp");
    let (other_cert, other_key) = azdock_tests::self_signed_rsa(env.path(), "other");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let cert = read(&sp_cert);
    let combined = env.path().join("sp.pem");
    std::fs::write(&combined, cert.clone() + &read(&sp_key)).unwrap();
    let other = env.path().join("other.pem");
    std::fs::write(&other, read(&other_cert) + &read(&other_key)).unwrap();
    let (status, _) = arm
        .admin(
            reqwest::Method::POST,
            &format!("/principals/{}/certificates", text("clientId")),
            Some(serde_json::json!({"pem": cert})),
        )
        .await;
    assert_eq!(status, 204);

    let login = |pem: &std::path::Path| {
        azdock(
            &env,
            &[
                "--cloud",
                "local",
                "login",
                "--service-principal",
                "-u",
                &text("clientId"),
                "-t",
                &text("tenantId"),
                "--certificate",
                pem.to_str().unwrap(),
            ],
        )
    };
    let refused = login(&other);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("invalid_client: AADSTS700027"), "{}", refused.stderr);
    assert!(!env.path().join("config/credentials.json").exists(), "a refused sign-in stores nothing");
    let missing = login(&env.path().join("nope.pem"));
    assert_eq!(missing.code, 2, "{}", missing.stderr);

    let ok = login(&combined);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let stored = std::fs::read_to_string(env.path().join("config/credentials.json")).unwrap();
    assert!(
        stored.contains("clientCertificate") && !stored.contains("PRIVATE KEY"),
        "the path is stored, not the key: {stored}"
    );
    // Later commands sign in with fresh assertions from the stored certificate.
    let accounts = azdock(&env, &["--cloud", "local", "account", "list"]).success().json();
    assert_eq!(accounts[0]["id"], text("subscriptionId"));
    azdock(&env, &["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_fan_out_over_vms_and_name_every_failure() {
    let env = Env::new();
    let (up, arm) = local_cloud(&env).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    for g in ["fleet1", "fleet2", "fleet3"] {
        arm.linux_vm(&sub, g, g).await;
    }
    let id =
        |g: &str| format!("/subscriptions/{sub}/resourceGroups/{g}/providers/Microsoft.Compute/virtualMachines/{g}");
    let (f1, f2, f3) = (id("fleet1"), id("fleet2"), id("fleet3"));
    let local = |args: &[&str]| azdock(&env, &[&["--cloud", "local"][..], args].concat());

    // Bad ids and mixed forms are refused before any request.
    let bad = local(&["vm", "stop", "--ids", "fleet1"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("invalid VM id `fleet1`"), "{}", bad.stderr);
    assert_eq!(local(&["vm", "stop", "-g", "fleet1", "--ids", &f1]).code, 2);

    local(&["vm", "stop", "--ids", &f1, &f2, &f3]).success();
    let power = local(&["vm", "show", "-d", "--ids", &f1, &f2, &f3, "--query", "[].powerState"]).success().json();
    assert_eq!(power, serde_json::json!(["VM stopped", "VM stopped", "VM stopped"]));

    // One VM that does not exist: the others still start, and the failure names it.
    let ghost = f1.replace("/virtualMachines/fleet1", "/virtualMachines/ghost");
    let out = local(&["vm", "start", "--ids", &f1, &ghost, &f2]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("1 of 3 VMs failed")
            && out.stderr.contains(&ghost)
            && out.stderr.contains("(ResourceNotFound)"),
        "{}",
        out.stderr
    );
    let power = local(&["vm", "show", "-d", "--ids", &f1, &f2, &f3, "--query", "[].powerState"]).success().json();
    assert_eq!(power, serde_json::json!(["VM running", "VM running", "VM stopped"]));

    // Extensions on several VMs at once, then by their own ids.
    let set = local(&[
        "ext",
        "set",
        "--ids",
        &f1,
        &f2,
        "--publisher",
        "Microsoft.OSTCExtensions",
        "--type",
        "VMAccessForLinux",
        "--protected-settings",
        r#"{"username": "ops", "password": "N3w-Passw0rd!"}"#,
    ])
    .success()
    .json();
    let ext_ids: Vec<String> = set.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ext_ids.len(), 2);
    let shown = local(&["ext", "show", "--ids", &ext_ids[0], &ext_ids[1], "--query", "[].name"]).success().json();
    assert_eq!(shown, serde_json::json!(["VMAccessForLinux", "VMAccessForLinux"]));
    let unnamed = local(&["ext", "show", "--ids", &f1]);
    assert_eq!(unnamed.code, 2);
    assert!(unnamed.stderr.contains("name the extension"), "{}", unnamed.stderr);
    local(&["ext", "remove", "--ids", &ext_ids[0], &ext_ids[1]]).success();
    assert_eq!(local(&["ext", "list", "--vm", "fleet2", "-g", "fleet2"]).success().json(), serde_json::json!([]));

    // Image arguments: an alias resolves to the newest version; a URN and an id are looked up.
    let image = local(&["vm", "image", "show", "ubuntu2404"]).success().json();
    assert_eq!((image["version"].as_str(), image["osType"].as_str()), (Some("24.04.202411030"), Some("Linux")));
    let pinned = local(&["vm", "image", "show", "Canonical:ubuntu-24_04-lts:server:24.04.202409120"]).success().json();
    assert_eq!(pinned["version"], "24.04.202409120");
    let bad = local(&["vm", "image", "show", "Ubuntu"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("invalid image `Ubuntu`") && bad.stderr.contains("Ubuntu2404"), "{}", bad.stderr);
    assert_eq!(local(&["vm", "image", "show", "Canonical:ubuntu-24_04-lts:server:1.0.0"]).code, 1);
    azdock(&env, &["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_ride_out_throttling_drops_and_outages_and_give_up_on_a_permanent_500() {
    let env = Env::new();
    let (up, arm) = local_cloud(&env).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    arm.linux_vm(&sub, "flaky", "flaky").await;
    // A fifth of all requests (token requests too) meet a 429, a 503 or a dropped connection.
    let rules = serde_json::json!({"seed": 20_261_128, "rules": [
        {"rate": 0.07, "fault": {"kind": "status", "status": 429}},
        {"rate": 0.07, "fault": {"kind": "status", "status": 503}},
        {"rate": 0.07, "fault": {"kind": "drop"}}]});
    let (status, _) = arm.admin(reqwest::Method::PUT, "/faults", Some(rules)).await;
    assert!(status.is_success());
    let local = |args: &[&str]| {
        let out = azdock(&env, &[&["--cloud", "local"][..], args].concat());
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        out
    };
    for _ in 0..3 {
        local(&["account", "list"]);
        local(&["vm", "list"]);
        local(&["vm", "show", "-g", "flaky", "-n", "flaky", "-d"]);
    }
    local(&["vm", "restart", "-g", "flaky", "-n", "flaky"]);
    let ext = [
        "ext",
        "set",
        "--vm",
        "flaky",
        "-g",
        "flaky",
        "--publisher",
        "Microsoft.OSTCExtensions",
        "--type",
        "VMAccessForLinux",
    ];
    local(&[&ext[..], &["--protected-settings", r#"{"username": "ops", "password": "N3w-Passw0rd!"}"#]].concat());
    local(&["ext", "list", "--vm", "flaky", "-g", "flaky"]);

    // Nothing happened twice: one accepted PUT of the extension, one handler run.
    let (_, log) = arm.admin(reqwest::Method::GET, "/requests", None).await;
    let entries = log["requests"].as_array().unwrap();
    let faulted = entries.iter().filter(|e| matches!(e["status"].as_u64(), Some(0 | 429 | 503))).count();
    assert!(faulted >= 5, "faults were injected: {faulted} of {}", entries.len());
    let accepted_puts = entries
        .iter()
        .filter(|e| e["method"] == "PUT" && e["path"].as_str().unwrap().ends_with("/extensions/VMAccessForLinux"))
        .filter(|e| (200..300).contains(&e["status"].as_u64().unwrap()))
        .count();
    assert_eq!(accepted_puts, 1);
    let (_, _) = arm.admin(reqwest::Method::PUT, "/faults", Some(serde_json::json!({"rules": []}))).await;
    let (_, guest) = arm.admin(reqwest::Method::GET, &format!("/guests/{sub}/flaky/flaky"), None).await;
    assert_eq!(guest["guest"]["handlerRuns"]["vmaccessforlinux"], 1);

    // A permanent 500: a clear message after a bounded number of attempts.
    let broken = serde_json::json!({"rules": [{"method": "GET", "pathContains": "/virtualMachines", "rate": 1.0, "fault": {"kind": "status", "status": 500}}]});
    arm.admin(reqwest::Method::PUT, "/faults", Some(broken)).await;
    let before = arm.admin(reqwest::Method::GET, "/requests", None).await.1["last"].as_u64().unwrap();
    let out = azdock_tests::run(
        env.azdock().env("AZDOCK_RETRY_BASE_DELAY_MS", "20").args(["--cloud", "local", "vm", "list"]),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("gave up after 6 attempts") && out.stderr.contains("(InternalServerError)"),
        "{}",
        out.stderr
    );
    let (_, log) = arm.admin(reqwest::Method::GET, "/requests", None).await;
    let tries = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > before && e["path"].as_str().unwrap().ends_with("/virtualMachines"))
        .count();
    assert_eq!(tries, 6);
    azdock(&env, &["local", "down"]).success();
}

/// One slow VM holds back no other VM of a fleet: 100 VMs restarted with `--ids` at
/// `--max-parallel 16`, the first one's operation taking 20 s and the others' 1 s. Every other
/// VM's restart is requested — and the last of them has finished — while the slow one is still
/// restarting; finished results do not wait in line behind it. The rows come back in the order
/// the ids were given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_vm_holds_back_no_other_vm_of_a_fleet() {
    use std::sync::Arc;

    use serde_json::json;

    const VMS: usize = 100;
    let env = Env::new();
    let (up, arm) = azdock_tests::local_cloud(&env, &["--instant", "--durations", "vm-action=1000"]).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    let group = format!("/subscriptions/{sub}/resourceGroups/fleet");
    let net = format!("{group}/providers/Microsoft.Network");
    let (status, _, body) = arm
        .call(
            reqwest::Method::PUT,
            &format!("/subscriptions/{sub}/resourcegroups/fleet?api-version=2021-04-01"),
            Some(json!({"location": "westeurope"})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    arm.put_and_wait(&format!("{net}/virtualNetworks/vnet?api-version=2024-05-01"), json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/20"}}]}})).await;
    // The VMs, sixteen at a time: a NIC each on the one subnet.
    let names: Vec<String> = (0..VMS).map(|i| if i == 0 { "slow".to_owned() } else { format!("fast{i:02}") }).collect();
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let mut made = tokio::task::JoinSet::new();
    for name in names.clone() {
        let (arm, gate, net, group) = (arm.clone(), Arc::clone(&gate), net.clone(), group.clone());
        made.spawn(async move {
            let _slot = gate.acquire_owned().await.unwrap();
            let nic = format!("{net}/networkInterfaces/{name}-nic");
            arm.put_and_wait(&format!("{nic}?api-version=2024-05-01"), json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": format!("{net}/virtualNetworks/vnet/subnets/default")}}}]}})).await;
            let vm = json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"},
                "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}},
                "osProfile": {"computerName": name, "adminUsername": "azureuser", "adminPassword": "Sup3r-Secret!"},
                "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"primary": true}}]}}});
            let path = format!("{group}/providers/Microsoft.Compute/virtualMachines/{name}?api-version=2024-11-01");
            assert_eq!(arm.put_and_wait(&path, vm).await.2["status"], "Succeeded");
        });
    }
    while let Some(done) = made.join_next().await {
        done.unwrap();
    }
    let ids: Vec<String> =
        names.iter().map(|n| format!("{group}/providers/Microsoft.Compute/virtualMachines/{n}")).collect();
    let slow_rule = json!({"rules": [{"method": "POST", "pathContains": "/virtualMachines/slow/restart",
        "fault": {"kind": "operationTime", "millis": 20000}}]});
    assert!(arm.admin(reqwest::Method::PUT, "/faults", Some(slow_rule)).await.0.is_success());
    let since = arm.admin(reqwest::Method::GET, "/requests", None).await.1["last"].as_u64().unwrap();

    let mut restart = env.azdock();
    restart.args(["--cloud", "local", "vm", "restart", "--max-parallel", "16", "-o", "json", "--ids"]).args(&ids);
    let fleet = tokio::task::spawn_blocking(move || azdock_tests::run(&mut restart));

    // Watch the fleet: once every fast VM's restart has been asked for and has finished, the
    // slow VM must still be restarting. Bounded: 240 looks, 250 ms apart.
    let power = |name: &str| {
        let arm = arm.clone();
        let path =
            format!("{group}/providers/Microsoft.Compute/virtualMachines/{name}/instanceView?api-version=2024-11-01");
        async move {
            let (_, view) = arm.get(&path).await;
            view["statuses"]
                .as_array()
                .and_then(|s| s.iter().find_map(|s| s["code"].as_str()?.strip_prefix("PowerState/").map(str::to_owned)))
                .unwrap_or_default()
        }
    };
    let mut seen_all = false;
    for _ in 0..240 {
        let log = arm.admin(reqwest::Method::GET, &format!("/requests?since={since}"), None).await.1;
        let asked = log["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap_or_default().ends_with("/restart"))
            .count();
        if asked == VMS {
            // Every restart was asked for; wait for the fast ones to finish (1 s each).
            let last = names.last().unwrap().clone();
            for _ in 0..40 {
                if power(&last).await == "running" {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            assert_eq!(power(&last).await, "running", "the last fast VM never finished restarting");
            assert_eq!(
                power("slow").await,
                "starting",
                "every VM behind the slow one waited for it: the fleet ran as a sum of waits"
            );
            seen_all = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(seen_all, "the fleet never asked for all {VMS} restarts");
    let out = fleet.await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(power("slow").await, "running");
}

/// Locations as people write them: a display name (`-l "West US"`, as the 2014 article did) is
/// the region's ARM name; a typo is refused before anything is made, naming the nearest region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_by_display_name_and_typos_refused_before_anything_is_made() {
    let env = Env::new();
    let (up, arm) = local_cloud(&env).await;
    let sub = up["subscriptionId"].as_str().unwrap().to_owned();
    let made = azdock(
        &env,
        &["--cloud", "local", "vm", "create", "disp", "-l", "West US", "--generate-ssh-keys", "-o", "json"],
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert_eq!(made.json()["location"], "westus", "{}", made.stdout);
    let (_, group) = arm.get(&format!("/subscriptions/{sub}/resourcegroups/disp?api-version=2021-04-01")).await;
    assert_eq!(group["location"], "westus");

    let typo = azdock(&env, &["--cloud", "local", "vm", "create", "typo", "-l", "Wset US", "--generate-ssh-keys"]);
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(
        typo.stderr.contains("`Wset US`") && typo.stderr.contains("did you mean `westus` (West US)"),
        "{}",
        typo.stderr
    );
    let (status, _) = arm.get(&format!("/subscriptions/{sub}/resourcegroups/typo?api-version=2021-04-01")).await;
    assert_eq!(status, 404, "a refused location made nothing");

    let listed = azdock(&env, &["--cloud", "local", "account", "list-locations", "-o", "json"]).success().json();
    assert!(listed.as_array().unwrap().iter().any(|l| l["name"] == "westus" && l["displayName"] == "West US"));
    azdock(&env, &["local", "down"]).success();
}

/// The requests the local cloud saw after `since`, but for the log's own: (method, path, status).
async fn requests_since(arm: &azdock_tests::arm::Arm, since: u64) -> Vec<(String, String, u64)> {
    let (_, log) = arm.admin(reqwest::Method::GET, &format!("/requests?since={since}"), None).await;
    log["requests"]
        .as_array()
        .unwrap()
        .iter()
        // The test's own reads of the log are not the command's.
        .filter(|e| e["seq"].as_u64().unwrap() > since && !e["path"].as_str().unwrap().starts_with("/_emulator/"))
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn last_request(arm: &azdock_tests::arm::Arm) -> u64 {
    arm.admin(reqwest::Method::GET, "/requests", None).await.1["last"].as_u64().unwrap()
}

/// A warm command asks the cloud only for its own work: the token and the subscription come
/// from `tokens.json` (0600) — with the local cloud's own principal and with a stored sign-in —
/// a refused token is replaced once, and logout forgets both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_command_makes_one_request_its_token_and_subscription_kept_between_runs() {
    let env = Env::new();
    let (up, arm) = local_cloud(&env).await;
    let sub = up["subscriptionId"].as_str().unwrap();
    arm.linux_vm(sub, "warm", "warmvm").await;
    let show = ["--cloud", "local", "vm", "show", "-n", "warmvm", "-g", "warm", "-o", "json"];
    let vm_path =
        format!("/subscriptions/{sub}/resourceGroups/warm/providers/Microsoft.Compute/virtualMachines/warmvm");

    let cold = last_request(&arm).await;
    assert_eq!(azdock(&env, &show).success().json()["name"], "warmvm");
    let seen = requests_since(&arm, cold).await;
    assert!(seen.iter().any(|(m, p, _)| m == "POST" && p.ends_with("/oauth2/v2.0/token")), "{seen:?}");
    assert!(seen.iter().any(|(_, p, _)| p == "/subscriptions"), "{seen:?}");
    let tokens = env.path().join("config/tokens.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&tokens).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let secret = up["clientSecret"].as_str().unwrap();
    assert!(!std::fs::read_to_string(&tokens).unwrap().contains(secret), "no client secret in the token cache");

    let warm = last_request(&arm).await;
    azdock(&env, &show).success();
    assert_eq!(requests_since(&arm, warm).await, [("GET".to_owned(), vm_path.clone(), 200)]);

    // A kept token the cloud refuses (here: damaged) is replaced once, and the command works.
    let text = std::fs::read_to_string(&tokens).unwrap();
    let mut cache: serde_json::Value = serde_json::from_str(&text).unwrap();
    for entry in cache["tokens"].as_object_mut().unwrap().values_mut() {
        entry["accessToken"] = serde_json::json!("not-a-token");
    }
    std::fs::write(&tokens, serde_json::to_vec(&cache).unwrap()).unwrap();
    let refused = last_request(&arm).await;
    azdock(&env, &show).success();
    let seen = requests_since(&arm, refused).await;
    let shape: Vec<(&str, u64)> =
        seen.iter().map(|(m, p, s)| (if p.ends_with("/token") { "token" } else { m.as_str() }, *s)).collect();
    assert_eq!(shape, [("GET", 401), ("token", 200), ("GET", 200)], "{seen:?}");

    // A stored sign-in: login remembers the subscription; the next command makes one request.
    let (tenant, client) = (up["tenantId"].as_str().unwrap(), up["clientId"].as_str().unwrap());
    let mut login = env.azdock();
    login.args(["--cloud", "local", "login", "--service-principal", "-u", client, "-t", tenant, "--password-stdin"]);
    assert_eq!(azdock_tests::run_with_stdin(&mut login, secret).code, 0);
    let after_login = last_request(&arm).await;
    azdock(&env, &show).success();
    assert_eq!(requests_since(&arm, after_login).await, [("GET".to_owned(), vm_path.clone(), 200)]);

    // Logout forgets the tokens and the subscription: the next command signs in again.
    azdock(&env, &["--cloud", "local", "logout"]).success();
    let cache: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&tokens).unwrap()).unwrap();
    assert_eq!(
        (cache["tokens"].as_object().unwrap().len(), cache["subscriptions"].as_object().unwrap().len()),
        (0, 0),
        "{cache}"
    );
    let logged_out = last_request(&arm).await;
    azdock(&env, &show).success();
    let seen = requests_since(&arm, logged_out).await;
    assert_eq!(seen.len(), 3, "token, subscriptions, the VM: {seen:?}");
    azdock(&env, &["local", "down"]).success();
}

/// A person signs in with no flags: the device code goes to stderr, the owner approves it
/// (`azdock local approve`), the refresh token is kept 0600 and renews access silently; once
/// the person's sessions are revoked a command says to sign in again (exit 1); logout forgets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_a_device_code_and_is_told_to_sign_in_again_once_revoked() {
    use std::io::BufRead as _;
    let env = Env::new();
    let (up, arm) = local_cloud(&env).await;
    assert_eq!(up["user"], "user@azdock.local");
    let mut login = env.azdock();
    login
        .args(["--cloud", "local", "login", "-o", "json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut told = String::new();
    stderr.read_line(&mut told).unwrap();
    let code = told.split("approve ").nth(1).and_then(|t| t.split('`').next()).unwrap_or_else(|| panic!("{told}"));
    assert!(told.contains("user@azdock.local"), "{told}");
    let approved = azdock(&env, &["local", "approve", code, "-o", "json"]).success().json();
    assert_eq!(approved["status"], "approved");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let accounts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(accounts[0]["id"], up["subscriptionId"]);

    let credentials = env.path().join("config/credentials.json");
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(stored["local"]["kind"], "user");
    let refresh = stored["local"]["refreshToken"].as_str().unwrap().to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&credentials).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&refresh) && !told.contains(&refresh));

    // Signed in as the person: commands work (the access token from the login is kept); once
    // it is gone, the refresh token renews it and the renewed refresh token replaces the first.
    let listed = azdock(&env, &["--cloud", "local", "account", "list", "-o", "json"]).success().json();
    assert_eq!(listed[0]["id"], up["subscriptionId"]);
    std::fs::remove_file(env.path().join("config/tokens.json")).unwrap();
    azdock(&env, &["--cloud", "local", "vm", "list"]).success();
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_ne!(stored["local"]["refreshToken"].as_str().unwrap(), refresh, "the renewed token is kept");

    // Revoked (and the kept access token gone): a clear "sign in again", exit 1.
    arm.admin(reqwest::Method::POST, "/people/revoke-sessions", None).await;
    std::fs::remove_file(env.path().join("config/tokens.json")).unwrap();
    let refused = azdock(&env, &["--cloud", "local", "vm", "list"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("sign in again with `azdock login`"), "{}", refused.stderr);

    azdock(&env, &["--cloud", "local", "logout"]).success();
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(stored, serde_json::json!({}));
    let wrong = azdock(&env, &["local", "approve", "NOPE-NOPE"]);
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("no sign-in waits for the code NOPE-NOPE"), "{}", wrong.stderr);
    azdock(&env, &["local", "down"]).success();
}
