//! Which VMs a command works on — `-g` with `-n` (or `--vm`), or `--ids` as az takes them — and
//! running a command over several of them through the shared, rate-limited fan-out.

use azdock_azure_sm::Arm;
pub(crate) use azdock_host::VmAddr;

use crate::cli::GlobalArgs;
use crate::config::Config;
use crate::error::Usage;
use crate::session;

/// The VMs named on the command line, checked before anything is sent.
#[derive(Debug, Clone)]
pub(crate) enum Selection {
    /// `-g` and `-n`: the subscription comes from the session.
    Named { resource_group: String, name: String },
    /// `--ids`: each carries its own subscription.
    Ids(Vec<VmAddr>),
}

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
                let addr = VmAddr::parse_id(id, extensions).map_err(|e| Usage::new(e.to_string()))?;
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

/// Runs `task` on every VM, `limit` at a time: one VM gives its error as it is (so its Azure
/// code and exit code show); several give every success, or an error listing each failure.
pub(crate) async fn for_each<T, Fut>(
    ctx: &crate::commands::Ctx,
    action: &str,
    addrs: Vec<VmAddr>,
    limit: usize,
    task: impl Fn(VmAddr) -> Fut,
) -> anyhow::Result<Vec<T>>
where
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    if addrs.len() == 1 {
        let addr = addrs.into_iter().next().unwrap_or_else(|| unreachable!("one address"));
        return task(addr).await.map(|v| vec![v]);
    }
    let total = addrs.len();
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    ctx.progress.fleet_start(action, total);
    let task = &task;
    let counted = |addr| async move {
        let result = task(addr).await;
        ctx.progress.fleet_tick(result.is_err());
        result
    };
    let results = azdock_host::target::each(addrs, limit, counted).await;
    ctx.progress.fleet_end();
    for (addr, result) in results {
        match result {
            Ok(v) => ok.push(v),
            Err(e) => failures.push(format!("  {}: {e:#}", addr.path())),
        }
    }
    if failures.is_empty() {
        return Ok(ok);
    }
    anyhow::bail!("{} of {total} VMs failed:\n{}", failures.len(), failures.join("\n"))
}

/// A fleet's results as the user sees them: one VM's result or error as it is; for several, a
/// row each (a failed VM's row says why), printed, then exit 1 naming every VM that failed.
pub(crate) fn print_fleet(
    ctx: &crate::commands::Ctx,
    results: Vec<(VmAddr, anyhow::Result<serde_json::Value>)>,
    action: &str,
    columns: crate::output::Columns,
) -> anyhow::Result<()> {
    use serde_json::{Value, json};
    let single = results.len() == 1;
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for (addr, result) in results {
        match result {
            Ok(row) => out.push(row),
            Err(e) if single => return Err(e),
            Err(e) => {
                failures.push(format!("  {}/{}: {e:#}", addr.resource_group, addr.name));
                out.push(json!({"name": addr.name, "resourceGroup": addr.resource_group, "action": action,
                                "status": "failed", "message": format!("{e:#}")}));
            }
        }
    }
    let total = out.len();
    let value = if single { out.remove(0) } else { Value::Array(out) };
    ctx.print(&value, columns)?;
    if !failures.is_empty() {
        anyhow::bail!("{} of {total} VMs failed:\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
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
