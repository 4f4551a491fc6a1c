//! Why a Docker daemon cannot be reached, in words a user can act on: the probe's
//! classification, the VM's power state, its NSG, and what the local cloud says of its guest.

use azdock_azure_sm::api::COMPUTE;
use azdock_azure_sm::{Arm, CloudKind};
use azdock_core::PowerState;

use crate::network::port_admitted;
use crate::probe::Failure;
use crate::vm::Vm;

/// The instance-view status in which the local cloud reports a guest's dockerd.
const DAEMON_STATUS: &str = "LocalCloud/DockerDaemon/";

/// In the local cloud, what the guest says about its dockerd when it will not answer (not set
/// up, failed to start, cannot run here), so that nobody waits ten minutes for it. The local
/// cloud reports it in the VM's instance view as `LocalCloud/DockerDaemon/<state>`; real clouds
/// have no such status.
pub async fn local_daemon_trouble(arm: &Arm, vm: &Vm) -> Option<String> {
    if vm.cloud != CloudKind::Local {
        return None;
    }
    let path = format!("{}?api-version={COMPUTE}&$expand=instanceView", vm.addr.path());
    let body = arm.get(&path).await.ok()?;
    daemon_trouble_in(&body["properties"]["instanceView"]["statuses"])
}

/// The trouble a VM's instance-view statuses report about its dockerd, if any.
pub fn daemon_trouble_in(statuses: &serde_json::Value) -> Option<String> {
    let statuses = statuses.as_array()?;
    let Some(status) = statuses.iter().find(|s| s["code"].as_str().is_some_and(|c| c.starts_with(DAEMON_STATUS)))
    else {
        return Some("Docker is not set up on the VM: nothing configured dockerd with a TCP listener".into());
    };
    let message = status["message"].as_str().unwrap_or("no reason given");
    match status["code"].as_str()?.trim_start_matches(DAEMON_STATUS) {
        "failed" | "unavailable" => Some(format!("the VM's dockerd does not run: {message}")),
        "notConfigured" => Some(format!("Docker is not set up on the VM: {message}")),
        _ => None,
    }
}

/// Why a Docker daemon cannot be reached, and what to do.
pub async fn explain(arm: &Arm, vm: &Vm, host: &str, port: u16, failure: &Failure) -> String {
    let name = &vm.facts.name;
    let group = &vm.addr.resource_group;
    let rotate = format!("run `azdock ext docker rotate-certs --vm {name} -g {group}`");
    match failure {
        Failure::WrongName(d) => format!(
            "the daemon's server certificate does not name {host} ({d}); the VM's address may have changed since it was made: {rotate} for a certificate with its current names"
        ),
        Failure::Expired(d) => format!("the daemon's server certificate is expired or not yet valid ({d}): {rotate}"),
        Failure::UnknownCa(d) => format!(
            "the daemon's certificate is not from your CA ({d}); it was made with another cert directory or before a CA rotation: {rotate}"
        ),
        Failure::ClientRefused(d) => {
            format!("the daemon refused your client certificate ({d}): it trusts another CA; {rotate} to give it yours")
        }
        Failure::Local(d) => d.clone(),
        Failure::Refused | Failure::NoAnswer | Failure::Other(_) => {
            let power = vm.facts.power_state;
            if power != PowerState::Running {
                return format!(
                    "VM `{name}` is not running ({power:?}): start it with `azdock vm start -g {group} -n {name}`"
                );
            }
            match port_admitted(arm, vm, port).await {
                Ok(None) => format!(
                    "port {port} is closed in the VM's network security group, so nothing reaches the daemon: run `azdock ext docker install --vm {name} -g {group} --port {port}` to open it"
                ),
                _ if *failure == Failure::Refused => format!(
                    "nothing listens on {host}:{port}: the daemon is down or not set up for TLS on that port; see `azdock ext docker status --vm {name} -g {group}`, or install it again"
                ),
                _ => format!("no answer from {host}:{port} ({failure}): the daemon may still be starting, or down"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_local_cloud_s_daemon_status_is_read_into_words() {
        let status = |code: &str| json!([{"code": "PowerState/running"}, {"code": code, "message": "why"}]);
        assert_eq!(
            daemon_trouble_in(&status("LocalCloud/DockerDaemon/failed")).as_deref(),
            Some("the VM's dockerd does not run: why")
        );
        assert_eq!(
            daemon_trouble_in(&status("LocalCloud/DockerDaemon/unavailable")).as_deref(),
            Some("the VM's dockerd does not run: why")
        );
        assert_eq!(
            daemon_trouble_in(&status("LocalCloud/DockerDaemon/notConfigured")).as_deref(),
            Some("Docker is not set up on the VM: why")
        );
        assert_eq!(daemon_trouble_in(&status("LocalCloud/DockerDaemon/running")), None);
        assert_eq!(
            daemon_trouble_in(&json!([{"code": "PowerState/running"}])).as_deref(),
            Some("Docker is not set up on the VM: nothing configured dockerd with a TCP listener")
        );
        assert_eq!(daemon_trouble_in(&json!(null)), None);
    }
}
