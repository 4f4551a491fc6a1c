//! Any resource's PUT and DELETE: names, references between resources, what is still in use, and
//! the guest work a change queues.

// A family of the parent module: it shares the parent's helpers, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn not_found(ns: &str, spec: &[&str], names: &[&str], rg: &str, id: &str) -> ArmError {
    if spec.len() == 2 {
        ArmError::new(404, "NotFound", format!("Resource {id} not found."))
    } else {
        ArmError::new(
            404,
            "ResourceNotFound",
            format!(
                "The Resource '{ns}/{}/{}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                spec[0], names[0]
            ),
        )
    }
}

/// Azure's generic resource name rule (letters, digits, `-`, `_`, `.`; 1–80; no trailing `.`).
pub(super) fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = (1..=80).contains(&name.len())
        && !name.ends_with('.')
        && name.chars().next().is_some_and(char::is_alphanumeric)
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ArmError::new(400, "InvalidResourceName", format!("Resource name {name} is invalid. The name can be up to 80 characters long. It must begin with a word character, and it must end with a word character or with '_'. The name may contain word characters or '.', '-', '_'.")).target(kind))
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn put_resource(
    inner: &mut Inner,
    ctx: &Ctx<'_>,
    req: &Req,
    sub: &str,
    rg_location: &str,
    type_name: &str,
    id: &str,
    names: &[&str],
) -> Result<Resp> {
    let name = names[names.len() - 1];
    validate_name(type_name, name)?;
    let body = req.json()?;
    let k = key(id);
    let existing = inner.resources.get(&k).cloned();
    let tracked = TYPES.iter().any(|(n, p, t)| *t && eq(&format!("{n}/{}", p.join("/")), type_name));
    let location = if tracked {
        match body.get("location").and_then(Value::as_str) {
            Some(l) if catalog::is_location(l) => catalog::normalize_location(l),
            Some(l) => {
                return Err(ArmError::new(
                    400,
                    "LocationNotAvailableForResourceType",
                    format!(
                        "The provided location '{l}' is not available for resource type '{type_name}'. List of available regions for the resource type is '{}'.",
                        catalog::location_names(",")
                    ),
                ));
            }
            None => {
                return Err(ArmError::new(
                    400,
                    "LocationRequired",
                    "The location property is required for this definition.",
                ));
            }
        }
    } else {
        rg_location.to_owned()
    };
    let id = existing.as_ref().map_or_else(|| id.to_owned(), |r| r.id.clone());
    let mut out = json!({"name": name, "id": id, "type": type_name});
    if tracked {
        out["location"] = json!(location);
    }
    for field in ["tags", "sku", "zones", "plan", "identity"] {
        if let Some(v) = body.get(field) {
            out[field] = v.clone();
        }
    }
    let props = body.get("properties").cloned().unwrap_or_else(|| json!({}));
    let Value::Object(mut props) = props else {
        return Err(ArmError::new(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'properties' must be an object.",
        ));
    };
    let creating = existing.is_none();
    let ns = type_name.split('/').next().unwrap_or_default();
    let mut duration = if eq(ns, "Microsoft.Network") { inner.durations.network } else { inner.durations.vm_create };
    let mut result: Result<()> = Ok(());
    let lower = type_name.to_ascii_lowercase();
    match lower.as_str() {
        "microsoft.network/virtualnetworks" => prepare_vnet(inner, &id, &mut props)?,
        "microsoft.network/virtualnetworks/subnets" => prepare_subnet(inner, &id, &mut props)?,
        "microsoft.network/networksecuritygroups" => prepare_nsg(&id, &mut props)?,
        "microsoft.network/networksecuritygroups/securityrules" => prepare_rule(inner, &id, name, &mut props)?,
        "microsoft.network/publicipaddresses" => prepare_public_ip(inner, &id, &location, &mut props, &mut out)?,
        "microsoft.network/networkinterfaces" => prepare_nic(inner, &id, &mut props)?,
        "microsoft.compute/availabilitysets" => prepare_availability_set(&mut props)?,
        "microsoft.compute/virtualmachines" => prepare_vm(inner, &id, name, &mut props, existing.as_ref())?,
        "microsoft.compute/virtualmachines/extensions" => {
            duration = inner.durations.extension;
            result = prepare_extension(inner, &id, name, &mut props)?;
        }
        _ => {}
    }
    if let Some(fail) = ctx.op.fail.clone() {
        result = Err(fail);
    }
    let duration = ctx.op.duration(duration);
    // Compute says `Creating` for a new resource; Network's states have no such value, and
    // ARM answers `Updating` for a network resource being made (networkInterface.json et al.).
    let state = if creating && !eq(ns, "Microsoft.Network") { "Creating" } else { "Updating" };
    props.insert("provisioningState".into(), json!(state));
    out["properties"] = Value::Object(props);
    inner.resources.insert(k.clone(), Resource { id: id.clone(), body: out });
    // Inline children (subnets, security rules) become resources of their own, as in ARM.
    store_inline_children(inner, &k, &id);
    let op = inner.start_op(duration, Effect::Provision { key: k.clone() }, result);
    queue_guest_work(inner, &k, &lower, &op);
    let resp = Resp::json(if creating { 201 } else { 200 }, render(inner, &k, false));
    let url = op_url(ctx, sub, ns, &location_of(inner, &k, rg_location), &op);
    Ok(lro_headers(resp, ctx, &url, duration, false))
}

/// Queues the guest-side work a PUT started (cloud-init, a script, a dockerd), blocking its
/// operation until that work reports back.
pub(super) fn queue_guest_work(inner: &mut Inner, k: &str, lower: &str, op: &str) {
    let op = op.to_owned();
    if let Some((vm_key, user_data)) = inner.pending_user_data.take() {
        if let Some(o) = inner.ops.get_mut(&op) {
            o.blocked = true;
        }
        inner.jobs.push(crate::state::Job::CloudInit { vm_key, op: op.clone(), user_data });
    }
    if let Some((vm_key, before)) = inner.pending_accounts.take() {
        if let Some(o) = inner.ops.get_mut(&op) {
            o.blocked = true;
        }
        inner.jobs.push(crate::state::Job::SyncAccounts { vm_key, op: op.clone(), before });
    }
    if let Some((vm_key, extension, script)) = inner.pending_script.take() {
        if let Some(o) = inner.ops.get_mut(&op) {
            o.blocked = true;
        }
        inner.jobs.push(crate::state::Job::RunScript { vm_key, extension, op: op.clone(), script });
    }
    // A Docker extension's operation ends when its dockerd listens (or cannot), as the real
    // handler reports success only once the daemon runs.
    let is_docker_extension = is_docker_extension(inner, k);
    if lower == "microsoft.compute/virtualmachines/extensions"
        && is_docker_extension
        && let Some((vm_key, _)) = k.rsplit_once("/extensions/")
        && inner
            .vms
            .get(vm_key)
            .and_then(|vm| vm.guest.docker.as_ref())
            .is_some_and(|d| d.daemon == crate::guest::Daemon::Starting)
    {
        let vm_key = vm_key.to_owned();
        if let Some(o) = inner.ops.get_mut(&op) {
            o.blocked = true;
        }
        inner.jobs.push(crate::state::Job::StartDocker { vm_key, op: Some(op.clone()) });
    }
}

pub(super) fn location_of(inner: &Inner, k: &str, fallback: &str) -> String {
    inner.resources.get(k).and_then(|r| r.body["location"].as_str()).unwrap_or(fallback).to_owned()
}

pub(super) fn delete_resource(
    inner: &mut Inner,
    ctx: &Ctx<'_>,
    sub: &str,
    location: &str,
    type_name: &str,
    k: &str,
) -> Result<Resp> {
    let Some(resource) = inner.resources.get(k).cloned() else {
        return Ok(Resp::empty(204));
    };
    check_not_in_use(inner, type_name, k, &resource.id)?;
    let prefix = format!("{k}/");
    let keys: Vec<String> =
        inner.resources.keys().filter(|r| r.starts_with(&prefix)).cloned().chain([k.to_owned()]).collect();
    if let Some(r) = inner.resources.get_mut(k) {
        r.body["properties"]["provisioningState"] = json!("Deleting");
    }
    let lower = type_name.to_ascii_lowercase();
    if lower == "microsoft.compute/virtualmachines" {
        // Detach the NICs so they can be deleted after the VM.
        let vm_id = resource.id.clone();
        let attached: Vec<String> = inner
            .resources
            .iter()
            .filter(|(_, r)| r.body["properties"]["virtualMachine"]["id"].as_str().is_some_and(|id| eq(id, &vm_id)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in attached {
            if let Some(p) = inner.resources.get_mut(&key).and_then(|r| r.body["properties"].as_object_mut()) {
                for attached in ["virtualMachine", "primary", "macAddress"] {
                    p.remove(attached);
                }
            }
        }
        if let Some(vm) = inner.vms.get_mut(k) {
            vm.power = "deallocating";
        }
        inner.jobs.push(crate::state::Job::StopDocker { vm_key: k.to_owned() });
    }
    let is_docker_extension = is_docker_extension(inner, k);
    if lower == "microsoft.compute/virtualmachines/extensions"
        && is_docker_extension
        && let Some((vm_key, _)) = k.rsplit_once("/extensions/")
        && let Some(vm) = inner.vms.get_mut(vm_key)
    {
        let name = resource.body["name"].as_str().unwrap_or_default().to_ascii_lowercase();
        vm.extension_status.remove(&name);
        vm.guest.last_settings.remove(&name);
    }
    let duration = ctx.op.duration(inner.durations.delete);
    let result = ctx.op.fail.clone().map_or(Ok(()), Err);
    let op = inner.start_op(duration, Effect::Delete { keys }, result);
    let ns = type_name.split('/').next().unwrap_or_default();
    let url = op_url(ctx, sub, ns, &location_of(inner, k, location), &op);
    Ok(lro_headers(Resp::empty(202), ctx, &url, duration, true))
}

/// Ids of resources whose body references `id` (case-insensitively), except itself.
pub(super) fn referrers(inner: &Inner, id: &str, field_path: &[&str]) -> Vec<String> {
    let needle = id.to_ascii_lowercase();
    inner
        .resources
        .values()
        .filter(|r| !eq(&r.id, id))
        .filter(|r| {
            let mut v = &r.body;
            for f in field_path {
                v = &v[*f];
            }
            v.to_string().to_ascii_lowercase().contains(&format!("\"{needle}\""))
                || v.to_string().to_ascii_lowercase().contains(&format!("\"{needle}/"))
        })
        .map(|r| r.id.clone())
        .collect()
}

pub(super) fn check_not_in_use(inner: &Inner, type_name: &str, k: &str, id: &str) -> Result<()> {
    let lower = type_name.to_ascii_lowercase();
    let nic_users = |target: &str| -> Vec<String> {
        inner
            .resources
            .values()
            .filter(|r| r.body["type"].as_str().is_some_and(|t| eq(t, "Microsoft.Network/networkInterfaces")))
            .filter(|r| {
                r.body["properties"]
                    .to_string()
                    .to_ascii_lowercase()
                    .contains(&format!("\"{}\"", target.to_ascii_lowercase()))
            })
            .map(|r| r.id.clone())
            .collect()
    };
    match lower.as_str() {
        "microsoft.network/virtualnetworks/subnets" => {
            if let Some(user) = nic_users(id).first() {
                return Err(ArmError::new(
                    400,
                    "InUseSubnetCannotBeDeleted",
                    format!(
                        "Subnet {} is in use by {user}/ipConfigurations/ipconfig1 and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                        id.rsplit('/').next().unwrap_or_default()
                    ),
                ));
            }
        }
        "microsoft.network/virtualnetworks" => {
            let prefix = format!("{k}/subnets/");
            for (sk, s) in inner.resources.iter() {
                if sk.starts_with(&prefix)
                    && let Some(user) = nic_users(&s.id).first()
                {
                    return Err(ArmError::new(
                        400,
                        "InUseSubnetCannotBeDeleted",
                        format!(
                            "Subnet {} is in use by {user}/ipConfigurations/ipconfig1 and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                            s.id.rsplit('/').next().unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        "microsoft.network/networksecuritygroups" => {
            let users: Vec<String> = referrers(inner, id, &["properties"])
                .into_iter()
                .filter(|u| !u.to_ascii_lowercase().starts_with(&format!("{k}/")))
                .collect();
            if !users.is_empty() {
                return Err(ArmError::new(
                    400,
                    "InUseNetworkSecurityGroupCannotBeDeleted",
                    format!(
                        "Network security group {id} cannot be deleted because it is in use by the following resources: {}. In order to delete the Network security group, remove the association with the resource(s).",
                        users.join(", ")
                    ),
                ));
            }
        }
        "microsoft.network/publicipaddresses" => {
            if let Some(user) = nic_users(id).first() {
                return Err(ArmError::new(
                    400,
                    "PublicIPAddressCannotBeDeleted",
                    format!(
                        "Public IP address {id} can not be deleted since it is still allocated to resource {user}/ipConfigurations/ipconfig1. In order to delete the public IP, disassociate/detach the Public IP address from the resource."
                    ),
                ));
            }
        }
        "microsoft.network/networkinterfaces" => {
            if let Some(vm) = inner.resources.get(k).and_then(|r| r.body["properties"]["virtualMachine"]["id"].as_str())
            {
                return Err(ArmError::new(
                    400,
                    "NicInUse",
                    format!(
                        "Network Interface {id} is used by existing resource {vm}. In order to delete the network interface, it must be dissociated from the resource. To learn more, see aka.ms/deletenic."
                    ),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The referenced resource must exist: ARM's `InvalidResourceReference`.
pub(super) fn require_ref(inner: &Inner, referenced: &str, by: &str) -> Result<()> {
    if inner.resources.contains_key(&key(referenced)) {
        Ok(())
    } else {
        Err(ArmError::new(
            400,
            "InvalidResourceReference",
            format!(
                "Resource {referenced} referenced by resource {by} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."
            ),
        ))
    }
}

pub(super) fn ref_id(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

// --- Microsoft.Network
