//! Microsoft.Compute's resources: VMs (admin and computer-name rules), their extensions, and VM
//! actions (start, stop, deallocate, restart).

// A family of the parent module: it shares the parent's helpers, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) const DISALLOWED_USERS: &[&str] = &[
    "administrator",
    "admin",
    "user",
    "user1",
    "test",
    "user2",
    "test1",
    "user3",
    "admin1",
    "1",
    "123",
    "a",
    "actuser",
    "adm",
    "admin2",
    "aspnet",
    "backup",
    "console",
    "guest",
    "owner",
    "root",
    "server",
    "sql",
    "support",
    "support_388945a0",
    "sys",
    "test2",
    "test3",
    "user4",
    "user5",
    "david",
    "john",
];
pub(super) const DISALLOWED_PASSWORDS: &[&str] = &[
    "abc@123",
    "P@$$w0rd",
    "P@ssw0rd",
    "P@ssword123",
    "Pa$$word",
    "pass@word1",
    "Password!",
    "Password1",
    "Password22",
    "iloveyou!",
];

pub(super) fn invalid_parameter(target: &str, message: impl Into<String>) -> ArmError {
    ArmError::new(400, "InvalidParameter", message).target(target)
}

pub(super) fn validate_admin(os: OsKind, user: &str, password: Option<&str>) -> Result<()> {
    if DISALLOWED_USERS.contains(&user.to_ascii_lowercase().as_str()) {
        return Err(invalid_parameter("adminUsername", "The Admin Username specified is not allowed."));
    }
    match os {
        OsKind::Linux => {
            let bad = user.len() > 64
                || user.starts_with(['$', '-'])
                || user.chars().any(|c| c.is_ascii_uppercase() || "\\/\"[]:|<>+=;,?*@#()!".contains(c));
            if bad || user.is_empty() {
                return Err(invalid_parameter(
                    "adminUsername",
                    "Linux admin user name cannot be more than 64 characters long, contain upper case character A-Z, special characters \\/\"[]:|<>+=;,?*@#()! or start with $ or -.",
                ));
            }
        }
        OsKind::Windows => {
            let bad = user.len() > 20 || user.ends_with('.') || user.chars().any(|c| "\\/\"[]:|<>+=;,?*@".contains(c));
            if bad || user.is_empty() {
                return Err(invalid_parameter(
                    "adminUsername",
                    "Windows admin user name cannot be more than 20 characters long, end with a period(.), or contain the following characters: \\ / \" [ ] : | < > + = ; , ? * @.",
                ));
            }
        }
    }
    if let Some(p) = password {
        let (min, max) = match os {
            OsKind::Linux => (6, 72),
            OsKind::Windows => (8, 123),
        };
        let classes = [
            p.chars().any(char::is_lowercase),
            p.chars().any(char::is_uppercase),
            p.chars().any(|c| c.is_ascii_digit()),
            p.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let len = p.chars().count();
        if len < min || len > max || classes < 3 || p.chars().any(char::is_control) {
            return Err(invalid_parameter(
                "adminPassword",
                format!(
                    "The supplied password must be between {min}-{max} characters long and must satisfy at least 3 of password complexity requirements from the following:\r\n1) Contains an uppercase character\r\n2) Contains a lowercase character\r\n3) Contains a numeric digit\r\n4) Contains a special character\r\n5) Control characters are not allowed"
                ),
            ));
        }
        if DISALLOWED_PASSWORDS.contains(&p) {
            return Err(invalid_parameter(
                "adminPassword",
                "The supplied password is not allowed: it is on the list of commonly used passwords.",
            ));
        }
    }
    Ok(())
}

pub(super) fn validate_computer_name(os: OsKind, name: &str) -> Result<()> {
    let max = match os {
        OsKind::Linux => 64,
        OsKind::Windows => 15,
    };
    let bad = name.is_empty()
        || name.len() > max
        || name.ends_with(['-', '.'])
        || (os == OsKind::Windows && (name.contains('.') || name.chars().all(|c| c.is_ascii_digit())))
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if bad {
        return Err(invalid_parameter(
            "computerName",
            match os {
                OsKind::Linux => {
                    "Linux host name cannot exceed 64 characters in length or contain the following characters: ` ~ ! @ # $ % ^ & * ( ) = + _ [ ] { } \\ | ; : ' \" , < > / ?."
                }
                OsKind::Windows => {
                    "Windows computer name cannot be more than 15 characters long, be entirely numeric, or contain the following characters: ` ~ ! @ # $ % ^ & * ( ) = + _ [ ] { } \\ | ; : . ' \" , < > / ?."
                }
            },
        ));
    }
    Ok(())
}

// One VM create, validated in the order ARM reports problems; splitting it would scatter that.
/// An availability set: ARM's default domain counts; its VMs are listed when it is read.
pub(super) fn prepare_availability_set(props: &mut Map<String, Value>) -> Result<()> {
    for (field, default, max) in [("platformFaultDomainCount", 2, 3), ("platformUpdateDomainCount", 5, 20)] {
        let count = props.get(field).map_or(Some(default), Value::as_i64);
        match count {
            Some(n) if (1..=max).contains(&n) => {
                props.insert(field.into(), json!(n));
            }
            _ => {
                return Err(invalid_parameter(
                    field,
                    format!("The value of parameter {field} is invalid: it must be an integer from 1 to {max}."),
                ));
            }
        }
    }
    props.remove("virtualMachines");
    Ok(())
}

#[allow(clippy::too_many_lines)]
pub(super) fn prepare_vm(
    inner: &mut Inner,
    id: &str,
    name: &str,
    props: &mut Map<String, Value>,
    existing: Option<&Resource>,
) -> Result<()> {
    use base64::Engine as _;
    if props.get("hardwareProfile").and_then(|h| h.get("vmSize")).and_then(Value::as_str).is_none() {
        if let Some(old) = existing.and_then(|e| e.body["properties"].get("hardwareProfile")) {
            props.insert("hardwareProfile".into(), old.clone());
        } else {
            props.insert("hardwareProfile".into(), json!({"vmSize": "Standard_DS1_v2"}));
        }
    }
    let k = key(id);
    if let Some(old) = existing {
        // An update keeps what the platform fixed at creation.
        for field in ["vmId", "storageProfile", "osProfile", "timeCreated"] {
            if let Some(v) = old.body["properties"].get(field) {
                props.insert(field.into(), v.clone());
            }
        }
        return Ok(());
    }
    let image = props.get("storageProfile").and_then(|s| s.get("imageReference")).cloned().unwrap_or(Value::Null);
    let (publisher, offer, sku) = (
        image["publisher"].as_str().unwrap_or_default(),
        image["offer"].as_str().unwrap_or_default(),
        image["sku"].as_str().unwrap_or_default(),
    );
    let Some(found) = catalog::image(publisher, offer, sku) else {
        let version = image["version"].as_str().unwrap_or("latest");
        return Err(ArmError::new(404, "PlatformImageNotFound", format!("The platform image '{publisher}:{offer}:{sku}:{version}' is not available. Verify that all fields in the storage profile are correct. For more details about storage profile information, please refer to https://aka.ms/storageprofile")).target("imageReference"));
    };
    let version = image["version"].as_str().unwrap_or("latest");
    let exact = if version.eq_ignore_ascii_case("latest") { found.versions[found.versions.len() - 1] } else { version };
    if !found.versions.contains(&exact) {
        return Err(ArmError::new(404, "PlatformImageNotFound", format!("The platform image '{publisher}:{offer}:{sku}:{version}' is not available. Verify that all fields in the storage profile are correct.")).target("imageReference"));
    }
    let os = found.os;
    let os_profile = props.get("osProfile").cloned().unwrap_or_else(|| json!({}));
    let computer_name = os_profile["computerName"].as_str().unwrap_or(name).to_owned();
    validate_computer_name(os, &computer_name)?;
    let Some(user) = os_profile["adminUsername"].as_str().map(str::to_owned) else {
        return Err(invalid_parameter("adminUsername", "Required parameter 'adminUsername' is missing (null)."));
    };
    let password = os_profile["adminPassword"].as_str().map(str::to_owned);
    validate_admin(os, &user, password.as_deref())?;
    let keys: Vec<String> = os_profile["linuxConfiguration"]["ssh"]["publicKeys"]
        .as_array()
        .map(|a| a.iter().filter_map(|k| k["keyData"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let disable_password = os_profile["linuxConfiguration"]["disablePasswordAuthentication"].as_bool().unwrap_or(false);
    match os {
        OsKind::Linux if password.is_none() && keys.is_empty() => {
            return Err(invalid_parameter(
                "linuxConfiguration",
                "Authentication using either SSH or by user name and password must be enabled in Linux profile.",
            ));
        }
        OsKind::Windows if password.is_none() => {
            return Err(invalid_parameter("adminPassword", "Required parameter 'adminPassword' is missing (null)."));
        }
        _ => {}
    }
    let (custom_data, user_data) = match os_profile["customData"].as_str() {
        Some(data) => {
            let decoded = base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| {
                invalid_parameter("customData", "Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 characters.")
            })?;
            if data.len() > 87_380 {
                return Err(invalid_parameter(
                    "customData",
                    "Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 characters.",
                ));
            }
            (decoded.len(), Some(decoded))
        }
        None => (0, None),
    };
    let nics: Vec<String> = props
        .get("networkProfile")
        .and_then(|n| n.get("networkInterfaces"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|n| ref_id(n).map(str::to_owned)).collect())
        .unwrap_or_default();
    if nics.is_empty() {
        return Err(invalid_parameter(
            "networkProfile",
            "At least one network interface is required: networkProfile.networkInterfaces is empty.",
        ));
    }
    if let Some(set) = props.get("availabilitySet").and_then(ref_id) {
        require_ref(inner, set, id)?;
    }
    for nic in &nics {
        require_ref(inner, nic, id)?;
        if let Some(other) =
            inner.resources.get(&key(nic)).and_then(|r| r.body["properties"]["virtualMachine"]["id"].as_str())
            && !eq(other, id)
        {
            return Err(ArmError::new(
                400,
                "NicInUse",
                format!(
                    "Network Interface {nic} is used by existing resource {other}. In order to use it with this VM, it must be dissociated from that resource."
                ),
            ));
        }
    }
    attach_nics(inner, id, props, &nics);
    // What ARM returns: the platform fills the OS disk and never echoes secrets.
    let mut os_profile_out = os_profile.as_object().cloned().unwrap_or_default();
    os_profile_out.remove("adminPassword");
    os_profile_out.remove("customData");
    os_profile_out.insert("computerName".into(), json!(computer_name));
    os_profile_out.insert("secrets".into(), json!([]));
    os_profile_out.insert("allowExtensionOperations".into(), json!(true));
    if os == OsKind::Linux {
        os_profile_out
            .entry("linuxConfiguration")
            .or_insert(json!({"disablePasswordAuthentication": disable_password}));
    }
    props.insert("osProfile".into(), Value::Object(os_profile_out));
    props.insert(
        "storageProfile".into(),
        json!({
            "imageReference": {"publisher": found.publisher, "offer": found.offer, "sku": found.sku, "version": image["version"].as_str().unwrap_or("latest"), "exactVersion": exact},
            "osDisk": {"osType": os.to_string(), "name": format!("{name}_OsDisk_1_{}", uuid().replace('-', "")), "createOption": "FromImage", "caching": "ReadWrite",
                       "managedDisk": {"storageAccountType": "Premium_LRS"}, "deleteOption": "Detach", "diskSizeGB": 30},
            "dataDisks": [],
        }),
    );
    props.insert("vmId".into(), json!(uuid()));
    props.insert("timeCreated".into(), json!(crate::now_rfc3339()));
    let mut guest = Guest::new(os, &computer_name);
    let mut admin = crate::guest::User { admin: true, authorized_keys: keys, ..crate::guest::User::default() };
    if let Some(p) = &password {
        admin.password_hash = Some(crate::guest::hash_password(p));
    }
    guest.users.insert(user, admin);
    guest.sshd.password_authentication = os == OsKind::Linux && password.is_some() && !disable_password;
    guest.custom_data_bytes = custom_data;
    if let Some(data) = user_data {
        // cloud-init applies it at first boot, once the create's operation exists.
        inner.pending_user_data = Some((k.clone(), crate::customscript::Script { command: None, script: Some(data) }));
    }
    if os == OsKind::Linux {
        inner.jobs.push(crate::state::Job::StartSsh { vm_key: k.clone() });
    }
    inner.vms.insert(k, VmRuntime { power: "running", guest, extension_status: std::collections::BTreeMap::new() });
    Ok(())
}

/// The handler an extension PUT names, if the VM's OS has it in that version and no other
/// instance of the VM holds it.
fn known_handler(
    inner: &Inner,
    vm_key: &str,
    name: &str,
    publisher: &str,
    kind: &str,
    version: &str,
) -> Result<&'static catalog::Handler> {
    let os = vm_os(inner, vm_key);
    let Some(handler) = catalog::handler(publisher, kind).filter(|h| h.os == os) else {
        return Err(ArmError::new(
            404,
            "ArtifactNotFound",
            format!(
                "The VM extension with publisher '{publisher}' and type '{kind}' could not be found for OS type '{os}' in this region."
            ),
        ));
    };
    if !catalog::has_version(handler, version) {
        return Err(ArmError::new(
            404,
            "ArtifactNotFound",
            format!(
                "The VM extension with publisher '{publisher}', type '{kind}' and type handler version '{version}' could not be found in the extension repository."
            ),
        ));
    }
    let prefix = format!("{vm_key}/extensions/");
    let clash = inner.resources.iter().find(|(k, r)| {
        k.starts_with(&prefix)
            && !eq(r.body["name"].as_str().unwrap_or_default(), name)
            && r.body["properties"]["publisher"].as_str().is_some_and(|p| eq(p, publisher))
            && r.body["properties"]["type"].as_str().is_some_and(|t| eq(t, kind))
    });
    if let Some((_, other)) = clash {
        return Err(ArmError::new(
            400,
            "BadRequest",
            format!(
                "Multiple VMExtensions per handler not supported for OS type '{os}'. VMExtension '{}' with handler '{publisher}.{kind}' already added or specified in input.",
                other.body["name"].as_str().unwrap_or_default()
            ),
        ));
    }
    Ok(handler)
}

/// Whether a handler run changed a Linux guest's accounts or sshd settings.
fn accounts_changed(before: &Guest, after: &Guest) -> bool {
    after.os == OsKind::Linux && (after.users != before.users || after.sshd != before.sshd)
}

pub(super) fn vm_os(inner: &Inner, vm_key: &str) -> OsKind {
    inner.vms.get(vm_key).map_or(OsKind::Linux, |v| v.guest.os)
}

/// Validates an extension PUT, runs its handler on the guest, and says how the operation ends.
pub(super) fn prepare_extension(
    inner: &mut Inner,
    id: &str,
    name: &str,
    props: &mut Map<String, Value>,
) -> Result<Result<()>> {
    let vm_key = key(id.rsplit_once("/extensions/").map_or(id, |(vm, _)| vm));
    let power = inner.vms.get(&vm_key).map_or("running", |v| v.power);
    if power != "running" {
        return Err(ArmError::new(
            409,
            "OperationNotAllowed",
            format!("Cannot modify extensions in the VM when the VM is not running. The VM is {power}."),
        ));
    }
    let text = |f: &str| props.get(f).and_then(Value::as_str).map(str::to_owned);
    let (Some(publisher), Some(kind), Some(version)) = (text("publisher"), text("type"), text("typeHandlerVersion"))
    else {
        return Err(invalid_parameter("properties", "The extension needs publisher, type and typeHandlerVersion."));
    };
    let handler = known_handler(inner, &vm_key, name, &publisher, &kind, &version)?;
    let settings = props.get("settings").cloned().unwrap_or_else(|| json!({}));
    // Protected settings reach the handler and are never stored in the resource or echoed.
    let protected = props.remove("protectedSettings").unwrap_or_else(|| json!({}));
    let tag = props.get("forceUpdateTag").and_then(Value::as_str).unwrap_or_default().to_owned();
    props.entry("autoUpgradeMinorVersion").or_insert(json!(false));
    let Some(vm) = inner.vms.get_mut(&vm_key) else { return Ok(Ok(())) };
    let before = Box::new(vm.guest.clone());
    let outcome = vm.guest.run_handler(&name.to_ascii_lowercase(), &publisher, &kind, &settings, &protected, &tag);
    let full_type = format!("{}.{}", handler.publisher, handler.kind);
    let status = |code: &str, level: &str, display: &str, message: &str| {
        json!({"name": name, "type": full_type, "typeHandlerVersion": handler.versions[handler.versions.len() - 1],
               "statuses": [{"code": code, "level": level, "displayStatus": display, "message": message, "time": crate::now_rfc3339()}]})
    };
    match outcome {
        HandlerResult::Unchanged => Ok(Ok(())),
        HandlerResult::Deferred(script) => {
            vm.extension_status.insert(
                name.to_ascii_lowercase(),
                vec![status("ProvisioningState/transitioning", "Info", "Transitioning", "Enable in progress")],
            );
            inner.pending_script = Some((vm_key, name.to_owned(), script));
            Ok(Ok(()))
        }
        HandlerResult::Succeeded(message) => {
            vm.extension_status.insert(
                name.to_ascii_lowercase(),
                vec![status("ProvisioningState/succeeded", "Info", "Provisioning succeeded", &message)],
            );
            if accounts_changed(&before, &vm.guest) {
                // The handler's changes reach the guest's files before its operation ends.
                inner.pending_accounts = Some((vm_key, before));
            }
            Ok(Ok(()))
        }
        HandlerResult::Failed(message) => {
            vm.extension_status.insert(
                name.to_ascii_lowercase(),
                vec![status(
                    "ProvisioningState/failed/1",
                    "Error",
                    "Provisioning failed",
                    &format!("Enable failed: {message}"),
                )],
            );
            Ok(Err(ArmError::new(
                200,
                "VMExtensionProvisioningError",
                format!(
                    "VM has reported a failure when processing extension '{name}' (publisher '{publisher}' and type '{kind}'). Error message: \"Enable failed: {message}\". More information on troubleshooting is available at https://aka.ms/VMExtensionLinuxTroubleshoot."
                ),
            )))
        }
    }
}

pub(super) fn vm_action(
    inner: &mut Inner,
    ctx: &Ctx<'_>,
    req: &Req,
    sub: &str,
    location: &str,
    vm_id: &str,
    action: &str,
) -> Result<Resp> {
    let k = key(vm_id);
    let Some(vm) = inner.resources.get(&k) else {
        let name = vm_id.rsplit('/').next().unwrap_or_default();
        return Err(ArmError::new(
            404,
            "ResourceNotFound",
            format!("The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group was not found."),
        ));
    };
    if !eq(vm.body["type"].as_str().unwrap_or_default(), "Microsoft.Compute/virtualMachines") {
        return Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path)));
    }
    let location = vm.body["location"].as_str().unwrap_or(location).to_owned();
    if eq(action, "instanceView") && req.method == "GET" {
        return Ok(Resp::json(200, instance_view(inner, &k)));
    }
    if req.method != "POST" {
        return Err(method_not_allowed(&req.method));
    }
    let (during, to) = match action.to_ascii_lowercase().as_str() {
        "start" | "restart" => ("starting", "running"),
        "poweroff" => ("stopping", "stopped"),
        "deallocate" => ("deallocating", "deallocated"),
        _ => return Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
    };
    let mut back = "running";
    if let Some(rt) = inner.vms.get_mut(&k) {
        back = rt.power;
        if eq(action, "restart") && rt.power != "running" {
            return Err(ArmError::new(
                409,
                "OperationNotAllowed",
                format!("Cannot restart the VM while it is {}. Start it instead.", rt.power),
            ));
        }
        rt.power = during;
    }
    let duration = ctx.op.duration(inner.durations.vm_action);
    let result = ctx.op.fail.clone().map_or(Ok(()), Err);
    let op = inner.start_op(duration, Effect::Power { vm_key: k, to, back }, result);
    let url = op_url(ctx, sub, "Microsoft.Compute", &location, &op);
    Ok(lro_headers(Resp::empty(202), ctx, &url, duration, true))
}

/// Marks the VM's NICs as used by it, as Azure shows them: the VM's id, whether each is its
/// primary NIC (the one marked so, else the first: a VM with one NIC needs no mark) and a MAC
/// address.
fn attach_nics(inner: &mut Inner, vm_id: &str, props: &Map<String, Value>, nics: &[String]) {
    let marked = props["networkProfile"]["networkInterfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["properties"]["primary"] == true))
        .and_then(|n| ref_id(n).map(str::to_owned));
    let primary = marked.unwrap_or_else(|| nics[0].clone());
    for nic in nics {
        if let Some(resource) = inner.resources.get_mut(&key(nic)) {
            let properties = &mut resource.body["properties"];
            properties["virtualMachine"] = json!({"id": vm_id});
            properties["primary"] = json!(eq(nic, &primary));
            // Azure's MAC prefix 00-0D-3A, the rest fixed per NIC (FNV-1a of its id).
            let hash = nic
                .to_ascii_lowercase()
                .bytes()
                .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
            let [_, a, b, c] = hash.to_be_bytes();
            properties["macAddress"] = json!(format!("00-0D-3A-{a:02X}-{b:02X}-{c:02X}"));
        }
    }
}

/// The public IP of a VM's primary NIC, if it has one.
pub(crate) fn vm_public_ip(inner: &Inner, vm_key: &str) -> Option<String> {
    let vm = inner.resources.get(vm_key)?;
    let nics = vm.body["properties"]["networkProfile"]["networkInterfaces"].as_array()?;
    nics.iter().filter_map(|n| n["id"].as_str()).find_map(|nic| {
        let nic = inner.resources.get(&key(nic))?;
        nic.body["properties"]["ipConfigurations"].as_array()?.iter().find_map(|c| {
            let pip = c["properties"]["publicIPAddress"]["id"].as_str()?;
            inner.resources.get(&key(pip))?.body["properties"]["ipAddress"].as_str().map(str::to_owned)
        })
    })
}
