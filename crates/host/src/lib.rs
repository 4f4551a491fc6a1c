//! azdock-host: the extension host as a library. It learns a VM's facts, holds every extension
//! — built-in or plugin — to the same contract, carries out plans (NSG rules, the extension PUT
//! or DELETE with the handler's verdict, endpoint waits, local files), probes Docker daemons and
//! says why one does not answer, keeps the record of Docker hosts, and fans work out over a
//! fleet. It reports through [`Events`] and returns data; it never prints, and it never
//! depends on the local cloud.

pub mod contract;
pub mod create;
pub mod diagnose;
pub mod dispatch;
pub mod docker;
pub mod error;
pub mod events;
pub mod execute;
pub mod known_hosts;
pub mod manage;
pub mod network;
pub mod plugins;
pub mod probe;
pub mod ssh_probe;
pub mod sshkey;
pub mod target;
pub mod vm;

pub use dispatch::{Host, Invocation, Prepare, Ran, run_id};
pub use error::{Error, Result};
pub use events::{Event, Events, Recorded, Silent, Step, StepOutcome};
pub use execute::{Endpoint, Outcome, Waits};
pub use target::VmAddr;
pub use vm::Vm;

/// An ARM resource id's last name, for messages (a resource group's too).
pub fn short(id: &str) -> String {
    azdock_azure_sm::models::ResourceId::parse(id)
        .map_or_else(|| id.rsplit('/').next().unwrap_or(id).to_owned(), |r| r.name().to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_names_are_the_last_name_of_an_id() {
        assert_eq!(
            super::short("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/web-nsg"),
            "web-nsg"
        );
        assert_eq!(super::short("/subscriptions/s/resourceGroups/web-rg"), "web-rg");
        assert_eq!(super::short("plain"), "plain");
    }
}
