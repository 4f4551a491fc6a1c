//! The one path every extension action takes, built-in or plugin: the VM's facts, the host's
//! checks of the request, the extension's plan, the host's checks of the plan, execution.

use std::path::Path;

use azdock_azure_sm::Arm;
use azdock_azure_sm::models::VirtualMachineExtension;
use azdock_core::{Args, InstalledExtension, Operation, Plan, PlanRequest, VmExtension};
use serde_json::{Value, json};

use crate::contract;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::execute::{Outcome, Waits, execute};
use crate::target::VmAddr;
use crate::vm::{Vm, inspect, inspect_vm};

/// What the host works with: the signed-in client, azdock's data directory (extensions'
/// local files, the record of Docker hosts), and where it tells the user what happens.
#[derive(Clone, Copy)]
pub struct Host<'a> {
    pub arm: &'a Arm,
    pub data_dir: &'a Path,
    pub events: &'a dyn Events,
}

impl std::fmt::Debug for Host<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("cloud", &self.arm.cloud().name).field("data_dir", &self.data_dir).finish()
    }
}

/// Work the caller does once the VM's facts are known and before the extension plans (the
/// Docker host mints its server certificate, asking for the CA's passphrase on a terminal).
pub type Prepare<'a> = &'a dyn Fn(&PlanRequest) -> Result<()>;

/// One action of one extension, to run on one VM or many.
#[derive(Clone, Copy)]
pub struct Invocation<'a> {
    pub extension: &'a dyn VmExtension,
    pub action: &'a str,
    pub args: &'a Args,
    pub waits: Waits,
    pub prepare: Option<Prepare<'a>>,
    /// The user's `--take-over`: the plan may take a handler instance another extension holds.
    pub take_over: bool,
}

impl std::fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("extension", &self.extension.manifest().id)
            .field("action", &self.action)
            .field("args", &self.args.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What one run did on one VM.
#[derive(Debug)]
pub struct Ran {
    pub vm: Vm,
    /// The request the extension planned from (its arguments and the facts).
    pub request: PlanRequest,
    pub plan: Plan,
    pub outcome: Outcome,
}

impl Ran {
    /// The outcome as a user sees it: the handler's status (`accepted` when it has said none
    /// yet), and the output it reported in its substatuses (CustomScript's `StdOut`, `StdErr`).
    pub fn row(&self) -> Value {
        let extension = self.outcome.extension.as_ref();
        let view = extension.map(|e| &e["properties"]["instanceView"]);
        let sub = |stream: &str| {
            view.and_then(|v| v["substatuses"].as_array())
                .and_then(|subs| {
                    subs.iter().find(|s| s["code"].as_str().is_some_and(|c| c.contains(&format!("/{stream}/"))))
                })
                .and_then(|s| s["message"].as_str())
                .map(str::to_owned)
        };
        let status = view.and_then(|v| v["statuses"][0]["displayStatus"].as_str()).unwrap_or("accepted");
        json!({"name": self.vm.addr.name, "resourceGroup": self.vm.addr.resource_group, "action": self.request.action,
               "extension": extension.map(|e| &e["name"]), "status": status, "stdout": sub("StdOut"), "stderr": sub("StdErr")})
    }

    /// The handler's own verdict, as a row: success only when the handler says so (an operation
    /// that ended without its word is not one), else its failure in its words.
    pub fn verdict(&self) -> Result<Value> {
        let ext = self.outcome.extension.clone().unwrap_or(Value::Null);
        let view: VirtualMachineExtension = serde_json::from_value(ext).unwrap_or_default();
        let iv = view.properties.instance_view.unwrap_or_default();
        if !iv.succeeded() {
            let why = iv.failure().unwrap_or_else(|| "no status in its instance view".into());
            return Err(Error::Failed(format!("the handler reported no success: {why}")));
        }
        let message = iv.statuses.iter().find_map(|s| s.message.clone()).unwrap_or_default();
        let name = match &self.plan.operation {
            Operation::Put(i) => i.name.clone(),
            _ => String::new(),
        };
        let a = &self.vm.addr;
        Ok(json!({"name": a.name, "resourceGroup": a.resource_group, "osType": self.vm.facts.os_type.to_string(),
                  "action": self.request.action, "extension": name, "status": "succeeded", "message": message}))
    }
}

/// A unique id per invocation: extensions use it as `forceUpdateTag`.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("azdock-{nanos}")
}

impl Host<'_> {
    /// The extension that made an untagged instance, from the host's own records.
    fn recorded_owner(&self, vm: &Vm, instance: &InstalledExtension) -> Option<String> {
        let hosts = crate::docker::HostRecord::new(self.data_dir).load().ok()?;
        crate::docker::recorded_owner(&hosts, &vm.facts.cloud, &vm.addr, instance)
    }

    /// The VM's facts as the action needs them: with its network (NIC, public IP) unless the
    /// action's manifest says it plans without.
    pub async fn facts_for(&self, invocation: &Invocation<'_>, addr: &VmAddr) -> Result<Vm> {
        let spec = contract::action(invocation.extension.manifest(), invocation.action)?;
        if spec.network { inspect(self.arm, addr).await } else { inspect_vm(self.arm, addr).await }
    }

    /// Runs the invocation on the VM at `addr`.
    pub async fn run(&self, invocation: &Invocation<'_>, addr: &VmAddr) -> Result<Ran> {
        let vm = self.facts_for(invocation, addr).await?;
        self.run_on(invocation, vm).await
    }

    /// Runs the invocation on a VM whose facts the caller already has.
    pub async fn run_on(&self, invocation: &Invocation<'_>, vm: Vm) -> Result<Ran> {
        let manifest = invocation.extension.manifest();
        let request = PlanRequest {
            action: invocation.action.to_owned(),
            args: invocation.args.clone(),
            facts: vm.facts.clone(),
            run_id: run_id(),
        };
        contract::check_request(manifest, &request)?;
        if let Some(prepare) = invocation.prepare {
            prepare(&request)?;
        }
        let mut plan = invocation.extension.plan(&request).await?;
        contract::check_plan(manifest, &request, &plan)?;
        let owner_of = |e: &InstalledExtension| e.owner.clone().or_else(|| self.recorded_owner(&vm, e));
        let slot =
            contract::check_slot(&manifest.id, &request.action, &plan, &vm.facts, &owner_of, invocation.take_over)?;
        if let Operation::Put(instance) = &mut plan.operation {
            match slot {
                contract::Slot::Free => {}
                contract::Slot::Own { name } => instance.name = name,
                contract::Slot::TakeOver { name, owner } => {
                    self.events.warn(&format!(
                        "taking over handler {}.{} on VM `{}` from {owner} (--take-over): instance `{name}` now runs `{}`'s settings",
                        instance.publisher, instance.kind, vm.facts.name, manifest.id
                    ));
                    instance.name = name;
                }
            }
        }
        // The plan's notes before it runs: an install's warnings should not wait for the daemon.
        for note in &plan.notes {
            self.events.warn(note);
        }
        let outcome = execute(self, &vm, &plan, invocation.waits, &manifest.id).await?;
        Ok(Ran { vm, request, plan, outcome })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run of `action` on VM `web` in group `g` that planned `operation`, with no outcome yet.
    pub(crate) fn ran(action: &str, args: Args, operation: Operation) -> Ran {
        let facts = azdock_core::VmFacts {
            name: "web".into(),
            resource_group: "g".into(),
            subscription_id: "s".into(),
            resource_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/web".into(),
            location: "l".into(),
            os_type: azdock_core::OsType::Linux,
            power_state: azdock_core::PowerState::Running,
            cloud: "local".into(),
            admin_username: None,
            fqdn: None,
            public_ips: vec!["127.1.0.9".parse().unwrap()],
            private_ips: vec![],
            extensions: vec![],
        };
        Ran {
            vm: Vm {
                addr: VmAddr::new("s", "g", "web"),
                nic: None,
                cloud: azdock_azure_sm::CloudKind::Local,
                facts: facts.clone(),
            },
            request: PlanRequest { action: action.into(), args, facts, run_id: "r".into() },
            plan: Plan::new(operation),
            outcome: Outcome::default(),
        }
    }

    fn instance_view(statuses: &Value, substatuses: &Value) -> Value {
        json!({"name": "run", "properties": {"publisher": "p", "type": "t", "typeHandlerVersion": "1",
               "instanceView": {"name": "run", "statuses": statuses, "substatuses": substatuses}}})
    }

    #[test]
    fn a_row_carries_the_handler_s_status_and_output() {
        let mut r = ran("script", Args::new(), Operation::Inspect);
        assert_eq!(
            r.row(),
            json!({"name": "web", "resourceGroup": "g", "action": "script", "extension": null,
                   "status": "accepted", "stdout": null, "stderr": null})
        );
        r.outcome.extension = Some(instance_view(
            &json!([{"code": "ProvisioningState/succeeded", "displayStatus": "Provisioning succeeded"}]),
            &json!([{"code": "ComponentStatus/StdOut/succeeded", "message": "hello"},
                   {"code": "ComponentStatus/StdErr/succeeded", "message": "warn"}]),
        ));
        let row = r.row();
        assert_eq!(
            (&row["status"], &row["stdout"], &row["stderr"]),
            (&json!("Provisioning succeeded"), &json!("hello"), &json!("warn"))
        );
        assert_eq!(row["extension"], "run");
    }

    #[test]
    fn a_verdict_is_the_handler_s_word() {
        let instance = azdock_core::ExtensionInstance {
            name: "enablevmaccess".into(),
            publisher: "p".into(),
            kind: "t".into(),
            type_handler_version: "1".into(),
            auto_upgrade_minor_version: true,
            settings: Value::Null,
            protected_settings: None,
            force_update_tag: None,
        };
        let mut r = ran("reset-password", Args::new(), Operation::Put(Box::new(instance)));
        let e = r.verdict().unwrap_err().to_string();
        assert!(e.contains("the handler reported no success: no status in its instance view"), "{e}");
        r.outcome.extension = Some(instance_view(
            &json!([{"code": "ProvisioningState/failed/1", "level": "Error", "displayStatus": "Provisioning failed", "message": "user is locked"}]),
            &json!([]),
        ));
        let e = r.verdict().unwrap_err().to_string();
        assert!(e.contains("user is locked"), "{e}");
        r.outcome.extension = Some(instance_view(
            &json!([{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "message": "done"}]),
            &json!([]),
        ));
        assert_eq!(
            r.verdict().unwrap(),
            json!({"name": "web", "resourceGroup": "g", "osType": "Linux", "action": "reset-password",
                   "extension": "enablevmaccess", "status": "succeeded", "message": "done"})
        );
        r.plan = Plan::new(Operation::Inspect);
        assert_eq!(r.verdict().unwrap()["extension"], "");
    }

    #[test]
    fn run_ids_are_unique_and_say_whose_they_are() {
        let (a, b) = (run_id(), run_id());
        assert!(a.starts_with("azdock-") && a.len() > "azdock-".len(), "{a}");
        assert_ne!(a, b);
    }
}
