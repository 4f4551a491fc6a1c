//! `azdock cloud …`: the clouds azdock can talk to — the three public Azure clouds, the local
//! cloud, and clouds the user registers (Azure Stack Hub, private and sovereign endpoints), whose
//! other endpoints are discovered from ARM's `/metadata/endpoints` as az does. Registered clouds
//! live in `clouds.toml` in the config directory, with a copy of their CA bundle beside it.

use azdock_azure_sm::Cloud;
use azdock_azure_sm::clouds::{self, CloudRegistry};
use serde_json::{Value, json};

use super::Ctx;
use crate::cli::{CloudCommand, GlobalArgs};
use crate::config::{self, Config};
use crate::output::Columns;
use crate::session;

const COLUMNS: Columns = &[
    ("Name", "/name"),
    ("IsActive", "/isActive"),
    ("ResourceManager", "/endpoints/resourceManager"),
    ("AuthorityHost", "/endpoints/activeDirectory"),
    ("Source", "/source"),
];

/// The registry of clouds the user registered, in the config directory.
pub(crate) fn registry() -> anyhow::Result<CloudRegistry> {
    Ok(CloudRegistry::new(config::config_dir()?))
}

/// The cloud called `name` (any case), other than the local cloud.
pub(crate) fn resolve(name: &str) -> anyhow::Result<Cloud> {
    Ok(registry()?.resolve(name)?)
}

fn row(name: &str, active: &str, resource_manager: &str, authority: &str, source: &str) -> Value {
    json!({
        "name": name,
        "isActive": name.eq_ignore_ascii_case(active),
        "endpoints": {"resourceManager": resource_manager, "activeDirectory": authority},
        "source": source,
    })
}

fn cloud_row(cloud: &Cloud, active: &str, source: &str) -> Value {
    let mut r = row(&cloud.name, active, &cloud.resource_manager, &cloud.authority_host, source);
    r["endpoints"]["activeDirectoryResourceId"] = json!(cloud.audience);
    r
}

fn all_rows(active: &str) -> anyhow::Result<Vec<Value>> {
    let mut rows: Vec<Value> = clouds::BUILTIN_NAMES
        .iter()
        .filter_map(|n| clouds::builtin(n))
        .map(|c| cloud_row(&c, active, "builtin"))
        .collect();
    let local = azdock_azure_sm::cloud::LOCAL_CLOUD;
    rows.push(row(local, active, "(the local cloud's loopback address)", "(the local cloud)", local));
    for name in registry()?.registered()?.keys() {
        rows.push(cloud_row(&resolve(name)?, active, "registered"));
    }
    Ok(rows)
}

pub(crate) fn run(ctx: &Ctx, global: &GlobalArgs, config: &Config, command: &CloudCommand) -> anyhow::Result<()> {
    // What commands would use; `cloud list` with nothing configured shows `local` active.
    let active = if matches!(command, CloudCommand::List | CloudCommand::Show { .. }) {
        session::working_cloud(global, config)
    } else {
        session::cloud_name(global, config)
    };
    match command {
        CloudCommand::List => ctx.print(&Value::Array(all_rows(&active)?), COLUMNS),
        CloudCommand::Show { name } => {
            let name = name.as_deref().unwrap_or(&active);
            let found = all_rows(&active)?
                .into_iter()
                .find(|r| r["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)));
            match found {
                Some(r) => ctx.print(&r, COLUMNS),
                None => resolve(name).map(|_| ()),
            }
        }
        CloudCommand::Set { name } => {
            let canonical = if name.eq_ignore_ascii_case("local") { "local".to_owned() } else { resolve(name)?.name };
            config::set_default("cloud", &canonical)
        }
        CloudCommand::Unregister { name } => Ok(registry()?.unregister(name, &active)?),
        CloudCommand::Register { name, endpoint_resource_manager, ca_bundle } => {
            // Every argument is checked before the cloud is asked.
            clouds::check_name(name)?;
            clouds::check_https("--endpoint-resource-manager", endpoint_resource_manager)?;
            let bundle = ca_bundle.as_deref().map(clouds::read_ca_bundle).transpose()?;
            let registry = registry()?;
            let cloud = session::block_on(async {
                Ok(registry.register(name, endpoint_resource_manager, bundle.as_deref()).await?)
            })?;
            ctx.print(&cloud_row(&cloud, &active, "registered"), COLUMNS)
        }
    }
}
