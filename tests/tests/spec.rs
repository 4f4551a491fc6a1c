//! The local cloud and azdock against Microsoft's published API specifications (`tests/specs`,
//! copied unmodified from Azure/azure-rest-api-specs): the specifications' own examples keep
//! their schemas (which shows the checker reads the specifications right), and every request
//! body azdock and the other clients sent and every response body the local cloud answered
//! during the end-to-end tests (recorded when `AZDOCK_LOCAL_RECORD` names a directory, as
//! `cargo xtask ci` does) keeps the schema of its operation and api-version.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use azdock_tests::spec::{Specs, Violation};
use serde_json::Value;

fn specs() -> Specs {
    Specs::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("specs"))
}

#[test]
fn the_specifications_examples_keep_their_schemas() {
    let specs = specs();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for op in &specs.operations {
        for file in &op.examples {
            let example: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            let name = file.file_name().unwrap().to_string_lossy();
            if let Some(body) = op.body_name.as_deref().and_then(|n| example["parameters"].get(n)) {
                checked += 1;
                wrong.extend(specs.check_request(op, body).into_iter().map(|v| format!("{name} request {v}")));
            }
            for (status, answer) in example["responses"].as_object().into_iter().flatten() {
                if let (Ok(status), Some(body)) = (status.parse::<u16>(), answer.get("body")) {
                    checked += 1;
                    wrong.extend(
                        specs.check_response(op, status, body).into_iter().map(|v| format!("{name} {status} {v}")),
                    );
                }
            }
        }
    }
    assert!(checked >= 40, "only {checked} example bodies were checked");
    assert!(wrong.is_empty(), "{} violations in Microsoft's own examples:\n{}", wrong.len(), wrong.join("\n"));
}

/// Array indices as `*`, so one rule broken in every element of a list is one line.
fn general(pointer: &str) -> String {
    pointer.split('/').map(|s| if s.parse::<usize>().is_ok() { "*" } else { s }).collect::<Vec<_>>().join("/")
}

// What was checked is part of the report (a check of nothing would look the same as a pass).
#[allow(clippy::print_stderr)]
#[test]
fn recorded_traffic_keeps_the_specifications() {
    let Some(dir) = std::env::var_os("AZDOCK_SPEC_RECORDS") else {
        azdock_tests::skipped("no recorded traffic: AZDOCK_SPEC_RECORDS is not set (cargo xtask ci sets it)");
        return;
    };
    let specs = specs();
    let (mut checked, mut uncovered) = (0usize, BTreeSet::new());
    let mut wrong = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let Ok(record) = serde_json::from_str::<Value>(line) else { continue };
            let (method, path) = (record["method"].as_str().unwrap(), record["path"].as_str().unwrap());
            let version = record["apiVersion"].as_str().unwrap_or_default();
            let Some(op) = specs.operation(method, path, version) else {
                uncovered.insert(format!("{method} {version}"));
                continue;
            };
            let status = u16::try_from(record["status"].as_u64().unwrap_or(0)).unwrap_or(0);
            let mut note = |direction: &str, found: Vec<Violation>| {
                for v in found {
                    wrong.insert(format!(
                        "{} {} {direction}: {}: {}",
                        op.id,
                        op.api_version,
                        general(&v.pointer),
                        v.rule
                    ));
                }
            };
            if !record["request"].is_null() {
                checked += 1;
                note("request", specs.check_request(op, &record["request"]));
            }
            if !record["response"].is_null() {
                checked += 1;
                note(&format!("response {status}"), specs.check_response(op, status, &record["response"]));
            }
        }
    }
    assert!(checked >= 100, "only {checked} recorded bodies were checked (in {})", Path::new(&dir).display());
    eprintln!("{checked} bodies checked; requests at api-versions the specs here do not cover: {uncovered:?}");
    assert!(wrong.is_empty(), "{} rules broken:\n{}", wrong.len(), wrong.into_iter().collect::<Vec<_>>().join("\n"));
}

/// The checker sees what breaks a schema: a readOnly property sent, a wrong type, a value the
/// enum does not have, a property the spec does not have, a missing required one.
#[test]
fn the_checker_sees_what_breaks_a_schema() {
    let specs = specs();
    let vm = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1";
    let op = specs.operation("PUT", vm, "2024-11-01").expect("VirtualMachines_CreateOrUpdate");
    assert_eq!(op.id, "VirtualMachines_CreateOrUpdate");
    let body = serde_json::json!({"properties": {
        "provisioningState": "Succeeded",
        "hardwareProfile": {"vmSize": 5},
        "storageProfile": {"osDisk": {"createOption": "Plan9"}},
        "osProfile": {"adminUsername": "azureuser", "linuxConfiguration": {"disablePasswordAuthentication": "yes"}},
        "bogus": 1
    }});
    let found: Vec<String> = specs.check_request(op, &body).iter().map(ToString::to_string).collect();
    for expected in [
        "/: required property `location` is missing",
        "/properties/provisioningState: readOnly property sent in a request",
        "/properties/hardwareProfile/vmSize: 5 is not a string",
        "/properties/storageProfile/osDisk/createOption: `Plan9` is not one of",
        "/properties/osProfile/linuxConfiguration/disablePasswordAuthentication: \"yes\" is not a boolean",
        "/properties/bogus: a property the spec does not have",
    ] {
        assert!(found.iter().any(|f| f.starts_with(expected)), "missing `{expected}` in {found:#?}");
    }
    // A case-insensitive enum (`modelAsString`) takes any case; a response may carry nulls.
    let fine = serde_json::json!({"location": "westus", "properties": {"storageProfile": {"osDisk": {"createOption": "fromimage"}}}});
    assert_eq!(specs.check_request(op, &fine), []);
    let answer = serde_json::json!({"location": "westus", "properties": {"licenseType": null}});
    assert_eq!(specs.check_response(op, 200, &answer), []);
    assert!(!specs.check_response(op, 200, &serde_json::json!([])).is_empty(), "an array is not a VM");
    // Routes match case-insensitively, and a path without a spec'd operation matches none.
    assert!(specs.operation("get", &vm.to_ascii_lowercase(), "2024-11-01").is_some());
    assert!(specs.operation("GET", vm, "2099-01-01").is_none());
    assert!(specs.operation("GET", "/subscriptions", "2021-04-01").is_none(), "not Resources_GetById");
}
