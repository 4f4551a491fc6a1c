//! azdock's models read what Microsoft's own examples say ARM answers (the `x-ms-examples` of
//! the specifications in `tests/specs`): every response body of a resource azdock reads —
//! resource groups, VNets, NSGs, security rules, public IPs, NICs, VMs (with their instance
//! view), extensions and images — deserialises, and keeps its name.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use azdock_azure_sm::models::{
    NetworkInterface, NetworkSecurityGroup, Page, PublicIpAddress, ResourceGroup, SecurityRule, VirtualMachine,
    VirtualMachineExtension, VirtualNetwork,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/specs");
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.parent().is_some_and(|p| p.ends_with("examples")) {
                found.push(path);
            }
        }
    }
    found
}

/// Reads `body` as `T`, or says which example and why not.
fn read<T: DeserializeOwned>(file: &Path, status: &str, body: &Value) -> T {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("{} ({status}): {e}\n{body:#}", file.file_name().unwrap().to_string_lossy()))
}

#[test]
fn microsofts_example_answers_read_as_azdock_s_models() {
    let mut read_bodies = 0;
    for file in examples() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let example: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for (status, answer) in example["responses"].as_object().into_iter().flatten() {
            let Some(body) = answer.get("body") else { continue };
            let listed = name.contains("_List");
            macro_rules! check {
                ($t:ty) => {{
                    if listed {
                        let page: Page<$t> = read(&file, status, body);
                        assert_eq!(page.value.len(), body["value"].as_array().map_or(0, Vec::len), "{name}");
                    } else {
                        let _: $t = read(&file, status, body);
                    }
                    read_bodies += 1;
                }};
            }
            match name.as_str() {
                n if n.contains("ResourceGroup") && !n.starts_with("Force") => check!(ResourceGroup),
                n if n.starts_with("NetworkInterface") => check!(NetworkInterface),
                n if n.starts_with("NetworkSecurityGroupRule") => check!(SecurityRule),
                n if n.starts_with("NetworkSecurityGroup") => check!(NetworkSecurityGroup),
                n if n.starts_with("PublicIpAddress") => check!(PublicIpAddress),
                n if n.starts_with("VirtualNetwork") => check!(VirtualNetwork),
                n if n.starts_with("VirtualMachineExtension") => check!(VirtualMachineExtension),
                n if n.starts_with("VirtualMachine_") => {
                    if n.contains("InstanceView") {
                        let _: azdock_azure_sm::models::VmInstanceView = read(&file, status, body);
                        read_bodies += 1;
                    } else {
                        check!(VirtualMachine);
                    }
                }
                _ => {}
            }
        }
    }
    assert!(read_bodies >= 25, "only {read_bodies} example answers were read");
}
