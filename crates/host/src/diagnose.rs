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

/// Why a Docker daemon cannot be reached, and what to do; reads the VM's NSG only when the
/// answer depends on it.
pub async fn explain(arm: &Arm, vm: &Vm, host: &str, port: u16, failure: &Failure) -> String {
    let network_matters =
        matches!(failure, Failure::Refused | Failure::NoAnswer | Failure::Closed(_) | Failure::Other(_))
            && vm.facts.power_state == PowerState::Running;
    let admitted = if network_matters { port_admitted(arm, vm, port).await.ok().map(|r| r.is_some()) } else { None };
    explain_known(vm, host, port, failure, admitted)
}

/// [`explain`] with what is known of the NSG: `Some(false)` when it closes the port, `None`
/// when that is unknown.
pub fn explain_known(vm: &Vm, host: &str, port: u16, failure: &Failure, admitted: Option<bool>) -> String {
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
        Failure::Refused | Failure::NoAnswer | Failure::Closed(_) | Failure::Other(_) => {
            let power = vm.facts.power_state;
            if power != PowerState::Running {
                return format!(
                    "VM `{name}` is not running ({power:?}): start it with `azdock vm start -g {group} -n {name}`"
                );
            }
            match admitted {
                Some(false) => format!(
                    "port {port} is closed in the VM's network security group, so nothing reaches the daemon: run `azdock ext docker install --vm {name} -g {group} --port {port}` to open it"
                ),
                _ if *failure == Failure::Refused => format!(
                    "nothing listens on {host}:{port}: the daemon is down or not set up for TLS on that port; see `azdock ext docker status --vm {name} -g {group}`, or install it again"
                ),
                _ if matches!(failure, Failure::Closed(_)) => format!(
                    "{host}:{port} closes every connection ({failure}): the daemon may be restarting, or it drops clients whose certificate it refuses; {rotate} if it persists"
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

    fn vm(power: PowerState) -> Vm {
        Vm {
            addr: crate::VmAddr::new("s", "g", "web"),
            nic: None,
            cloud: CloudKind::Azure,
            facts: azdock_core::VmFacts {
                name: "web".into(),
                resource_group: "g".into(),
                subscription_id: "s".into(),
                resource_id: "/x".into(),
                location: "l".into(),
                os_type: azdock_core::OsType::Linux,
                power_state: power,
                cloud: "AzureCloud".into(),
                admin_username: None,
                fqdn: None,
                public_ips: vec![],
                private_ips: vec![],
                extensions: vec![],
            },
        }
    }

    #[test]
    fn failures_are_explained_with_what_to_do() {
        let running = vm(PowerState::Running);
        let say = |f: &Failure, admitted| explain_known(&running, "h", 2376, f, admitted);
        let rotate = "run `azdock ext docker rotate-certs --vm web -g g`";
        assert!(
            say(&Failure::WrongName("n".into()), None)
                .starts_with("the daemon's server certificate does not name h (n)")
        );
        assert!(say(&Failure::WrongName("n".into()), None).contains(rotate));
        assert!(say(&Failure::Expired("e".into()), None).starts_with("the daemon's server certificate is expired"));
        assert!(
            say(&Failure::UnknownCa("c".into()), None).starts_with("the daemon's certificate is not from your CA (c)")
        );
        assert!(
            say(&Failure::ClientRefused("r".into()), None)
                .starts_with("the daemon refused your client certificate (r)")
        );
        assert_eq!(say(&Failure::Local("bad file".into()), None), "bad file");
        let closed = say(&Failure::NoAnswer, Some(false));
        assert!(closed.starts_with("port 2376 is closed in the VM's network security group"), "{closed}");
        assert!(closed.contains("azdock ext docker install --vm web -g g --port 2376"));
        assert!(say(&Failure::Refused, Some(false)).starts_with("port 2376 is closed"));
        let closed = say(&Failure::Closed("reset".into()), Some(true));
        assert!(
            closed.starts_with("h:2376 closes every connection (reset)") && closed.contains("rotate-certs"),
            "{closed}"
        );
        assert!(say(&Failure::Refused, Some(true)).starts_with("nothing listens on h:2376"));
        assert!(say(&Failure::Refused, None).starts_with("nothing listens on h:2376"));
        assert_eq!(
            say(&Failure::NoAnswer, Some(true)),
            "no answer from h:2376 (no answer): the daemon may still be starting, or down"
        );
        assert!(say(&Failure::Other("x".into()), None).starts_with("no answer from h:2376 (x)"));
        // A VM that is off explains every unanswered connection, whatever the NSG says.
        let off = vm(PowerState::Deallocated);
        assert_eq!(
            explain_known(&off, "h", 2376, &Failure::NoAnswer, Some(false)),
            "VM `web` is not running (Deallocated): start it with `azdock vm start -g g -n web`"
        );
        // Certificate trouble is told as it is even when the VM is off.
        assert!(explain_known(&off, "h", 2376, &Failure::Expired("e".into()), None).contains("expired"));
    }

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
