//! The VMs the host works on, and running a task over many of them through the shared,
//! rate-limited fan-out.

use std::future::Future;

use azdock_azure_sm::fan_out;
use azdock_azure_sm::models::ResourceId;

use crate::error::{Error, Result};
/// One VM (and, for extension commands given extension ids, one of its extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmAddr {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub extension: Option<String>,
}

const VM_ID_SHAPE: &str = "/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/NAME";

impl VmAddr {
    /// A VM by subscription, group and name.
    pub fn new(subscription: &str, resource_group: &str, name: &str) -> Self {
        Self {
            subscription: subscription.to_owned(),
            resource_group: resource_group.to_owned(),
            name: name.to_owned(),
            extension: None,
        }
    }

    /// The VM's ARM path (its resource id).
    pub fn path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
            self.subscription, self.resource_group, self.name
        )
    }

    /// A VM resource id as az takes them; with `extensions`, an extension id
    /// (`…/virtualMachines/NAME/extensions/EXT`) too. A bad id is a usage error showing the shape.
    pub fn parse_id(id: &str, extensions: bool) -> Result<Self> {
        let shape = if extensions { format!("{VM_ID_SHAPE}[/extensions/EXT]") } else { VM_ID_SHAPE.to_owned() };
        let bad = || Error::Usage(format!("invalid VM id `{id}`: expected {shape}"));
        let parsed = ResourceId::parse(id).ok_or_else(bad)?;
        if !parsed.namespace.eq_ignore_ascii_case("Microsoft.Compute") {
            return Err(bad());
        }
        let extension = match parsed.segments.as_slice() {
            [(vm, _)] if vm.eq_ignore_ascii_case("virtualMachines") => None,
            [(vm, _), (ext, e)]
                if extensions
                    && vm.eq_ignore_ascii_case("virtualMachines")
                    && ext.eq_ignore_ascii_case("extensions") =>
            {
                Some((*e).to_owned())
            }
            _ => return Err(bad()),
        };
        Ok(Self {
            subscription: parsed.subscription.to_owned(),
            resource_group: parsed.resource_group.to_owned(),
            name: parsed.segments[0].1.to_owned(),
            extension,
        })
    }
}

/// Runs `task` on every VM, `limit` at a time, and returns each VM's result in the order
/// given: the fan-out every fleet command shares.
pub async fn each<R, Fut>(addrs: Vec<VmAddr>, limit: usize, task: impl Fn(VmAddr) -> Fut) -> Vec<(VmAddr, R)>
where
    Fut: Future<Output = R>,
{
    fan_out(addrs, limit, |addr| {
        let run = task(addr.clone());
        async move { (addr, run.await) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_with_their_shape_in_errors() {
        let id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1";
        let addr = VmAddr::parse_id(id, false).unwrap();
        assert_eq!(addr, VmAddr::new("s", "g", "vm1"));
        assert_eq!(addr.path(), id);
        let ext = VmAddr::parse_id(&format!("{id}/extensions/docker"), true).unwrap();
        assert_eq!(ext.extension.as_deref(), Some("docker"));
        assert!(VmAddr::parse_id(&format!("{id}/extensions/docker"), false).is_err());
        for bad in [
            "vm1",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d",
        ] {
            let e = VmAddr::parse_id(bad, true).unwrap_err();
            assert!(e.is_usage());
            let e = e.to_string();
            assert!(e.contains(bad) && e.contains("virtualMachines/NAME[/extensions/EXT]"), "{e}");
        }
    }

    #[tokio::test]
    async fn each_vm_gets_its_own_result_in_order() {
        let addrs: Vec<VmAddr> = ["a", "b", "c"].iter().map(|n| VmAddr::new("s", "g", n)).collect();
        let run =
            |a: VmAddr| async move { if a.name == "b" { Err(Error::Failed("no".into())) } else { Ok(a.name.clone()) } };
        let each = each(addrs, 3, run).await;
        assert_eq!(
            each.iter().map(|(a, r)| (a.name.as_str(), r.is_ok())).collect::<Vec<_>>(),
            [("a", true), ("b", false), ("c", true)]
        );
    }
}
