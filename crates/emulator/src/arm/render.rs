//! What ARM answers for a resource: its stored body with the VM's instance view and extensions.

// A family of the parent module: it shares the parent's helpers, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

/// The resource as GET returns it: stored body, inline children, instance view on request.
pub(crate) fn render(inner: &Inner, k: &str, expand: bool) -> Value {
    let Some(r) = inner.resources.get(k) else { return Value::Null };
    let mut body = r.body.clone();
    let kind = body["type"].as_str().unwrap_or_default().to_ascii_lowercase();
    let children = |child: &str| -> Vec<Value> {
        let prefix = format!("{k}/{child}/");
        inner
            .resources
            .iter()
            .filter(|(ck, _)| ck.starts_with(&prefix) && !ck[prefix.len()..].contains('/'))
            .map(|(_, c)| c.body.clone())
            .collect()
    };
    match kind.as_str() {
        "microsoft.compute/availabilitysets" => {
            let members: Vec<Value> = inner
                .resources
                .values()
                .filter(|vm| vm.body["properties"]["availabilitySet"]["id"].as_str().is_some_and(|s| eq(s, &r.id)))
                .map(|vm| json!({"id": vm.id}))
                .collect();
            body["properties"]["virtualMachines"] = Value::Array(members);
        }
        "microsoft.network/virtualnetworks" => body["properties"]["subnets"] = Value::Array(children("subnets")),
        "microsoft.network/networksecuritygroups" => {
            body["properties"]["securityRules"] = Value::Array(children("securityrules"));
        }
        "microsoft.compute/virtualmachines" => {
            // As ARM does: each extension in full, without what only its own GET may show.
            let exts: Vec<Value> = children("extensions")
                .into_iter()
                .map(|mut e| {
                    if let Some(p) = e["properties"].as_object_mut() {
                        p.remove("protectedSettings");
                        p.remove("instanceView");
                    }
                    e
                })
                .collect();
            if !exts.is_empty() {
                body["resources"] = Value::Array(exts);
            }
            if expand {
                body["properties"]["instanceView"] = instance_view(inner, k);
            }
        }
        "microsoft.compute/virtualmachines/extensions" if expand => {
            let (vm_key, name) = k.rsplit_once("/extensions/").unwrap_or((k, ""));
            if let Some(statuses) = inner.vms.get(vm_key).and_then(|v| v.extension_status.get(name)) {
                body["properties"]["instanceView"] = statuses.first().cloned().unwrap_or(Value::Null);
            }
        }
        _ => {}
    }
    body
}

/// A resource as a list shows it: like [`render`], but a VM names its extensions by id only,
/// as ARM's list answers do (the az and SDK models flatten a full extension's `properties.type`
/// onto its `type` and fail on a list that carries them).
pub(crate) fn listed(inner: &Inner, k: &str, expand: bool) -> Value {
    let mut body = render(inner, k, expand);
    if let Some(resources) = body.get_mut("resources").and_then(Value::as_array_mut) {
        for r in resources.iter_mut() {
            *r = serde_json::json!({"id": r["id"]});
        }
    }
    body
}

/// A VM's instanceView: provisioning and power state, agent, extensions.
pub(super) fn instance_view(inner: &Inner, k: &str) -> Value {
    let Some(r) = inner.resources.get(k) else { return Value::Null };
    let rt = inner.vms.get(k);
    let state = r.body["properties"]["provisioningState"].as_str().unwrap_or("Succeeded").to_ascii_lowercase();
    let extensions: Vec<Value> =
        rt.map(|v| v.extension_status.values().filter_map(|s| s.first().cloned()).collect()).unwrap_or_default();
    let ext_failed = extensions.iter().any(|e| e["statuses"][0]["level"] == "Error");
    let (code, level, display) = if ext_failed {
        ("ProvisioningState/failed/VMExtensionProvisioningError", "Error", "Provisioning failed")
    } else {
        match state.as_str() {
            "succeeded" => ("ProvisioningState/succeeded", "Info", "Provisioning succeeded"),
            "failed" => ("ProvisioningState/failed", "Error", "Provisioning failed"),
            "creating" => ("ProvisioningState/creating", "Info", "Creating"),
            "deleting" => ("ProvisioningState/deleting", "Info", "Deleting"),
            _ => ("ProvisioningState/updating", "Info", "Updating"),
        }
    };
    let power = rt.map_or("running", |v| v.power);
    let power_display = match power {
        "running" => "VM running",
        "stopped" => "VM stopped",
        "deallocated" => "VM deallocated",
        "starting" => "VM starting",
        "stopping" => "VM stopping",
        _ => "VM deallocating",
    };
    let mut statuses =
        vec![json!({"code": code, "level": level, "displayStatus": display, "time": crate::now_rfc3339()})];
    if let Some(first) = extensions.iter().find(|e| e["statuses"][0]["level"] == "Error")
        && let Some(s) = statuses.first_mut()
    {
        s["message"] = first["statuses"][0]["message"].clone();
    }
    statuses.push(json!({"code": format!("PowerState/{power}"), "level": "Info", "displayStatus": power_display}));
    if let Some(status) = rt.and_then(|v| docker_status(&v.guest)) {
        statuses.push(status);
    }
    let os = rt.map_or(OsKind::Linux, |v| v.guest.os);
    json!({
        "computerName": rt.map(|v| v.guest.computer_name.clone()),
        "osName": match os { OsKind::Linux => "ubuntu", OsKind::Windows => "Windows Server 2022 Datacenter" },
        "vmAgent": {"vmAgentVersion": "2.11.1.12", "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready", "message": "Guest Agent is running", "time": crate::now_rfc3339()}],
                    "extensionHandlers": extensions.iter().map(|e| json!({"type": e["type"], "typeHandlerVersion": e["typeHandlerVersion"], "status": {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready"}})).collect::<Vec<_>>()},
        "disks": [],
        "extensions": extensions,
        "hyperVGeneration": "V2",
        "statuses": statuses,
    })
}

/// What the local cloud knows of a guest's dockerd, as one more instance-view status
/// (`LocalCloud/DockerDaemon/<state>`), so that a client learns through ARM — not through the
/// owner's admin routes — why a daemon will not answer instead of waiting out a timeout. Only
/// for guests where Docker was configured or cloud-init left a word: the others' instance views
/// stay exactly Azure's.
pub(super) fn docker_status(guest: &crate::guest::Guest) -> Option<Value> {
    use crate::guest::Daemon;
    let (state, level, message) = match guest.docker.as_ref().map(|d| &d.daemon) {
        Some(Daemon::Starting) => ("starting", "Info", String::new()),
        Some(Daemon::Running { address }) => ("running", "Info", format!("dockerd listens on {address}")),
        Some(Daemon::Stopped) => ("stopped", "Info", String::new()),
        Some(Daemon::Unavailable { reason }) => ("unavailable", "Warning", reason.clone()),
        Some(Daemon::Failed { reason }) => ("failed", "Error", reason.clone()),
        None => {
            let cloud_init = guest.cloud_init.as_ref().filter(|c| !c.detail.is_empty())?;
            let detail = format!("(cloud-init: {}: {})", cloud_init.status, cloud_init.detail.trim());
            ("notConfigured", "Info", format!("nothing configured dockerd with a TCP listener {detail}"))
        }
    };
    Some(
        json!({"code": format!("LocalCloud/DockerDaemon/{state}"), "level": level, "displayStatus": format!("Docker daemon {state}"), "message": message}),
    )
}

// --- images
