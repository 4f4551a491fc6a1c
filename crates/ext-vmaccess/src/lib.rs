//! azdock-ext-vmaccess: VM access through Azure's VMAccess handlers — VMAccessForLinux 1.5 and
//! VMAccessAgent 2.4, chosen by the VM's OS: reset a password (creating the user on Linux), add
//! or replace SSH keys, reset or restore the SSH configuration, remove a user, reset RDP, check
//! or repair disks. Every rule the handler or Azure would refuse is checked here first, with the
//! rule in the message; every run carries a fresh `forceUpdateTag`, so the same reset twice
//! really runs twice.

use azdock_azure_sm::models::OsType as AzureOs;
use azdock_azure_sm::rules;
use azdock_core::{
    ActionSpec, ArgKind, ArgSpec, ArgValue, Args, ExtensionError, ExtensionInstance, HandlerSpec, Manifest, Operation,
    OsType, Plan, PlanRequest, Secret, VmExtension,
};
use serde_json::{Value, json};

azdock_core::register_builtin!(VmAccessExtension);

/// The instance name az gives VMAccess on both OSes, used when the VM has none yet.
pub const DEFAULT_INSTANCE: &str = "enablevmaccess";

/// The handler for an OS.
pub fn handler(os: OsType) -> HandlerSpec {
    match os {
        OsType::Linux => HandlerSpec {
            name: "linux".into(),
            os,
            publisher: "Microsoft.OSTCExtensions".into(),
            kind: "VMAccessForLinux".into(),
            type_handler_version: "1.5".into(),
        },
        OsType::Windows => HandlerSpec {
            name: "windows".into(),
            os,
            publisher: "Microsoft.Compute".into(),
            kind: "VMAccessAgent".into(),
            type_handler_version: "2.4".into(),
        },
    }
}

/// The VMAccess extension.
#[derive(Debug)]
pub struct VmAccessExtension {
    manifest: Manifest,
}

fn action(name: &str, summary: &str, os: &[OsType], args: Vec<ArgSpec>) -> ActionSpec {
    // VMAccess needs the VM's OS and extensions, not its network: one read per VM in a fleet.
    ActionSpec { name: name.into(), summary: summary.into(), os: os.to_vec(), args, network: false }
}

impl Default for VmAccessExtension {
    fn default() -> Self {
        use OsType::{Linux, Windows};
        let user = || ArgSpec::text("username", "The user name").required();
        let manifest = Manifest {
            id: "vmaccess".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "VM access: passwords, SSH keys, SSH configuration, RDP and disk checks".into(),
            handlers: vec![handler(Linux), handler(Windows)],
            actions: vec![
                action(
                    "reset-password",
                    "Set a user's password (on Linux the user is created, with sudo, when missing)",
                    &[Linux, Windows],
                    vec![
                        user(),
                        ArgSpec::text("password", "The new password").required().secret(),
                        ArgSpec::text("expiration", "Account expiry, YYYY-MM-DD (Linux)"),
                    ],
                ),
                action(
                    "set-ssh-key",
                    "Add an SSH public key to a user's authorized_keys (Linux)",
                    &[Linux],
                    vec![
                        user(),
                        ArgSpec::text("ssh-key-value", "The public key (ssh-rsa, ssh-ed25519, ecdsa or SSH2)")
                            .required(),
                        ArgSpec::text("replace", "Replace the user's keys instead of adding").kind(ArgKind::Flag),
                    ],
                ),
                action(
                    "reset-ssh",
                    "Restore the distribution's sshd configuration and port 22 (Linux)",
                    &[Linux],
                    vec![],
                ),
                action(
                    "restore-ssh-backup",
                    "Restore the sshd configuration saved by reset-ssh (Linux)",
                    &[Linux],
                    vec![],
                ),
                action("remove-user", "Delete a user (Linux)", &[Linux], vec![user()]),
                action("reset-rdp", "Reset the Remote Desktop configuration (Windows)", &[Windows], vec![]),
                action("check-disk", "Check the VM's disks (Linux)", &[Linux], vec![]),
                action(
                    "repair-disk",
                    "Repair a disk (Linux)",
                    &[Linux],
                    vec![ArgSpec::text("disk-name", "The disk to repair").required()],
                ),
            ],
        };
        Self { manifest }
    }
}

fn invalid(arg: &str, message: impl Into<String>) -> ExtensionError {
    ExtensionError::InvalidArgument { arg: arg.into(), message: message.into() }
}

fn azure_os(os: OsType) -> AzureOs {
    match os {
        OsType::Linux => AzureOs::Linux,
        OsType::Windows => AzureOs::Windows,
    }
}

/// A `YYYY-MM-DD` date that is not in the past.
fn check_expiration(text: &str) -> Result<(), ExtensionError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format)
        .map_err(|_| invalid("expiration", format!("`{text}` is not a date: use YYYY-MM-DD")))?;
    let today = time::OffsetDateTime::now_utc().date();
    if date < today {
        return Err(invalid("expiration", format!("{text} is in the past (today is {today})")));
    }
    Ok(())
}

/// The checks that do not depend on the VM's OS, so the CLI can run them before any request:
/// the rules both OSes share for user names and passwords, dates, SSH keys, names.
pub fn check_anywhere(args: &Args) -> Result<(), ExtensionError> {
    let text = |name: &str| match args.get(name) {
        Some(ArgValue::Text(t)) => Some(t.as_str()),
        _ => None,
    };
    if let Some(user) = text("username") {
        // What both OSes refuse: the Windows rule is the looser one on characters.
        rules::check_user_name(user, &AzureOs::Windows)
            .or_else(|e| if user.chars().count() > 20 { rules::check_user_name(user, &AzureOs::Linux) } else { Err(e) })
            .map_err(|m| invalid("username", m))?;
    }
    if let Some(ArgValue::Secret(password)) = args.get("password") {
        rules::check_password(password.expose(), &AzureOs::Linux, 0).map_err(|m| invalid("password", m))?;
    }
    if let Some(expiration) = text("expiration") {
        check_expiration(expiration)?;
    }
    if let Some(key) = text("ssh-key-value") {
        rules::ssh_public_key(key).map_err(|m| invalid("ssh-key-value", m))?;
    }
    if let Some(disk) = text("disk-name")
        && (disk.is_empty() || !disk.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
    {
        return Err(invalid("disk-name", format!("`{disk}` is not a disk name (letters, digits, `-`, `_`, `.`)")));
    }
    Ok(())
}

impl VmAccessExtension {
    fn settings(request: &PlanRequest, os: OsType) -> Result<(Value, Option<Value>, Vec<String>), ExtensionError> {
        let mut notes = Vec::new();
        let user = request.text("username");
        if let Some(user) = user {
            rules::check_user_name(user, &azure_os(os)).map_err(|m| invalid("username", m))?;
        }
        let password = request.secret("password").map(Secret::expose);
        if let Some(p) = password {
            rules::check_password(p, &azure_os(os), 0).map_err(|m| invalid("password", m))?;
        }
        // Windows' VMAccessAgent has no account expiry: refused rather than dropped unsaid.
        if os == OsType::Windows && request.text("expiration").is_some() {
            return Err(invalid(
                "expiration",
                "Windows VMs take no account expiry (VMAccessAgent has none); set it in the VM, or leave --expiration out",
            ));
        }
        let (public, protected) = match (os, request.action.as_str()) {
            (OsType::Windows, "reset-password") => (json!({"UserName": user}), Some(json!({"Password": password}))),
            // Empty settings with a new forceUpdateTag: the handler resets RDP only.
            (OsType::Windows, _) => (json!({}), None),
            (OsType::Linux, "reset-password") => {
                notes.push(format!(
                    "VMAccess creates `{}` with sudo when it does not exist, and turns on SSH password login",
                    user.unwrap_or_default()
                ));
                let mut p = json!({"username": user, "password": password});
                if let Some(e) = request.text("expiration") {
                    p["expiration"] = json!(e);
                }
                (json!({}), Some(p))
            }
            (OsType::Linux, "set-ssh-key") => {
                let key = request
                    .text("ssh-key-value")
                    .map(rules::ssh_public_key)
                    .transpose()
                    .map_err(|m| invalid("ssh-key-value", m))?;
                let mut p = json!({"username": user, "ssh_key": key});
                if request.flag("replace") {
                    p["remove_prior_keys"] = json!(true);
                }
                (json!({}), Some(p))
            }
            (OsType::Linux, "reset-ssh") => (json!({}), Some(json!({"reset_ssh": true}))),
            (OsType::Linux, "restore-ssh-backup") => (json!({}), Some(json!({"restore_backup_ssh": true}))),
            (OsType::Linux, "remove-user") => (json!({}), Some(json!({"remove_user": user}))),
            (OsType::Linux, "check-disk") => (json!({"check_disk": true}), None),
            (OsType::Linux, "repair-disk") => {
                (json!({"repair_disk": true, "disk_name": request.text("disk-name")}), None)
            }
            (_, other) => return Err(ExtensionError::UnknownAction(other.into())),
        };
        Ok((public, protected, notes))
    }
}

#[azdock_core::async_trait]
impl VmExtension for VmAccessExtension {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn plan(&self, request: &PlanRequest) -> Result<Plan, ExtensionError> {
        let os = request.facts.os_type;
        let spec = self
            .manifest
            .action(&request.action)
            .ok_or_else(|| ExtensionError::UnknownAction(request.action.clone()))?;
        if !spec.supports(os) {
            return Err(ExtensionError::wrong_os(&request.action, os));
        }
        check_anywhere(&request.args)?;
        let (settings, protected, notes) = Self::settings(request, os)?;
        let handler = handler(os);
        // Only one instance per handler: reuse its name, as az does.
        let name = request
            .facts
            .extension_of(&handler.publisher, &handler.kind)
            .map_or_else(|| DEFAULT_INSTANCE.to_owned(), |e| e.name.clone());
        let mut plan = Plan::new(Operation::Put(Box::new(ExtensionInstance {
            name,
            publisher: handler.publisher,
            kind: handler.kind,
            type_handler_version: handler.type_handler_version,
            auto_upgrade_minor_version: true,
            force_update_tag: Some(request.run_id.clone()),
            settings,
            protected_settings: protected.map(Secret::new),
        })));
        plan.notes = notes;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests;
