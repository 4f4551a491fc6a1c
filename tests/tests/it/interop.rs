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
    let up = env.run(&["local", "up", "--instant"]).success();
    let up_file = env.path().join("up.json");
    std::fs::write(&up_file, &up.stdout).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/azure_sdk.py");
    let out = run(std::process::Command::new(python).arg(&script).arg(&up_file));
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
