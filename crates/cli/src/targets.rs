//! Which VMs a command works on — `-g` with `-n` (or `--vm`), or `--ids` as az takes them — and
//! running a command over several of them through the shared, rate-limited fan-out.

use std::future::Future;

use azdock_azure_sm::models::ResourceId;
use azdock_azure_sm::{Arm, fan_out};

use crate::cli::GlobalArgs;
use crate::config::Config;
use crate::error::Usage;
use crate::session;

/// One VM (and, for extension commands given extension ids, one of its extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VmAddr {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub extension: Option<String>,
}

impl VmAddr {
    /// The VM's ARM path (its resource id).
    pub(crate) fn path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
            self.subscription, self.resource_group, self.name
        )
    }
}

/// The VMs named on the command line, checked before anything is sent.
#[derive(Debug, Clone)]
pub(crate) enum Selection {
    /// `-g` and `-n`: the subscription comes from the session.
    Named { resource_group: String, name: String },
    /// `--ids`: each carries its own subscription.
    Ids(Vec<VmAddr>),
}

const VM_ID_SHAPE: &str = "/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/NAME";

impl Selection {
    /// From `-g`/`-n` or `--ids`; clap already made them exclusive. `extensions` allows extension
    /// ids (`…/virtualMachines/NAME/extensions/EXT`) as well as VM ids.
    pub(crate) fn new(
        resource_group: Option<&str>,
        name: Option<&str>,
        ids: &[String],
        extensions: bool,
    ) -> Result<Self, Usage> {
        if !ids.is_empty() {
            let mut out: Vec<VmAddr> = Vec::new();
            for id in ids.iter().flat_map(|i| i.split_whitespace()) {
                let addr = parse_vm_id(id, extensions)?;
                if !out.contains(&addr) {
                    out.push(addr);
                }
            }
            return Ok(Self::Ids(out));
        }
        match (resource_group, name) {
            (Some(g), Some(n)) => Ok(Self::Named { resource_group: g.to_owned(), name: n.to_owned() }),
            _ => Err(Usage::new("name the VM with `-g RG` and its name, or give `--ids`")),
        }
    }

    /// Signs in and returns the client and the VMs. With `--ids` no subscription needs to be
    /// chosen: each id names its own.
    pub(crate) async fn resolve(self, global: &GlobalArgs, config: &Config) -> anyhow::Result<(Arm, Vec<VmAddr>)> {
        match self {
            Self::Ids(addrs) => Ok((session::arm(global, config).await?, addrs)),
            Self::Named { resource_group, name } => {
                let s = session::session(global, config).await?;
                let addr = VmAddr { subscription: s.subscription, resource_group, name, extension: None };
                Ok((s.arm, vec![addr]))
            }
        }
    }
}

fn parse_vm_id(id: &str, extensions: bool) -> Result<VmAddr, Usage> {
    let shape = if extensions { format!("{VM_ID_SHAPE}[/extensions/EXT]") } else { VM_ID_SHAPE.to_owned() };
    let bad = || Usage::new(format!("invalid VM id `{id}`: expected {shape}"));
    let parsed = ResourceId::parse(id).ok_or_else(bad)?;
    if !parsed.namespace.eq_ignore_ascii_case("Microsoft.Compute") {
        return Err(bad());
    }
    let extension = match parsed.segments.as_slice() {
        [(vm, _)] if vm.eq_ignore_ascii_case("virtualMachines") => None,
        [(vm, _), (ext, e)]
            if extensions && vm.eq_ignore_ascii_case("virtualMachines") && ext.eq_ignore_ascii_case("extensions") =>
        {
            Some((*e).to_owned())
        }
        _ => return Err(bad()),
    };
    Ok(VmAddr {
        subscription: parsed.subscription.to_owned(),
        resource_group: parsed.resource_group.to_owned(),
        name: parsed.segments[0].1.to_owned(),
        extension,
    })
}

/// Runs `task` on every VM, `limit` at a time. One VM: its error as it is (so its Azure code
/// and exit code show). Several: every result, and when some failed an error listing each
/// failure, after the successes were printed by `done`.
pub(crate) async fn for_each<T, Fut>(
    addrs: Vec<VmAddr>,
    limit: usize,
    task: impl Fn(VmAddr) -> Fut,
) -> anyhow::Result<Vec<T>>
where
    Fut: Future<Output = anyhow::Result<T>>,
{
    if addrs.len() == 1 {
        let addr = addrs.into_iter().next().unwrap_or_else(|| unreachable!("one address"));
        return Ok(vec![task(addr).await?]);
    }
    let total = addrs.len();
    let results = fan_out(addrs, limit, |addr| {
        let id = addr.path();
        let run = task(addr);
        async move { (id, run.await) }
    })
    .await;
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    for (id, result) in results {
        match result {
            Ok(v) => ok.push(v),
            Err(e) => failures.push(format!("  {id}: {e:#}")),
        }
    }
    if failures.is_empty() {
        return Ok(ok);
    }
    anyhow::bail!("{} of {total} VMs failed:\n{}", failures.len(), failures.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_deduplicated() {
        let id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1";
        let Ok(Selection::Ids(addrs)) = Selection::new(None, None, &[id.into(), format!("{id} {id}")], false) else {
            panic!("ids")
        };
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0].path(), id);
        let ext = format!("{id}/extensions/docker");
        let Ok(Selection::Ids(addrs)) = Selection::new(None, None, std::slice::from_ref(&ext), true) else {
            panic!("ext")
        };
        assert_eq!(addrs[0].extension.as_deref(), Some("docker"));
        assert!(Selection::new(None, None, &[ext], false).is_err());
        for bad in ["vm1", "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v"] {
            let e = Selection::new(None, None, &[bad.into()], true).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("virtualMachines/NAME"), "{e}");
        }
    }
}
