//! The one path every extension action takes, built-in or plugin: the VM's facts, the host's
//! checks of the request, the extension's plan, the host's checks of the plan, execution.

use std::path::Path;

use azdock_azure_sm::Arm;
use azdock_core::{Args, InstalledExtension, Operation, Plan, PlanRequest, VmExtension};

use crate::contract;
use crate::error::Result;
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
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_unique_and_say_whose_they_are() {
        let (a, b) = (run_id(), run_id());
        assert!(a.starts_with("azdock-") && a.len() > "azdock-".len(), "{a}");
        assert_ne!(a, b);
    }
}
