//! cloud-init at first boot: `customData` holding `#cloud-config` (write_files, packages,
//! runcmd) or a `#!` user-data script is applied in the VM's sandbox, in the order cloud-init's
//! modules run, before the VM reports provisioning succeeded. A runcmd failure is recorded in
//! the guest (as cloud-init reports it), not turned into a failed VM, as on Azure.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Shared;
use crate::customscript::{self, Script};

/// What cloud-init did on the guest, shown in the guest state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudInit {
    /// `done`, `error` (a step failed), or `unsupported` (custom data that is neither).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Deserialize)]
struct CloudConfig {
    #[serde(default)]
    write_files: Vec<WriteFile>,
    #[serde(default)]
    package_update: bool,
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    runcmd: Vec<RunCmd>,
}

#[derive(Deserialize)]
struct WriteFile {
    path: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    permissions: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    append: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RunCmd {
    Shell(String),
    Argv(Vec<String>),
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell script that applies a cloud-config, or why it cannot be applied.
fn script_for(config: &CloudConfig) -> Result<String, String> {
    use std::fmt::Write as _;

    use base64::Engine as _;
    let mut out = String::from(
        "#!/bin/sh\n# azdock local cloud: cloud-config applied as cloud-init's modules would.\nstatus=0\n",
    );
    for file in &config.write_files {
        let bytes = match file.encoding.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("text/plain") => file.content.clone().into_bytes(),
            Some("b64" | "base64") => base64::engine::general_purpose::STANDARD
                .decode(file.content.trim())
                .map_err(|_| format!("write_files: {} is not valid base64", file.path))?,
            Some(other) => {
                return Err(format!(
                    "write_files: encoding `{other}` of {} is not supported (use text or b64)",
                    file.path
                ));
            }
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let redirect = if file.append { ">>" } else { ">" };
        let path = quote(&file.path);
        let _ = writeln!(
            out,
            "mkdir -p \"$(dirname {path})\" && printf %s {} | base64 -d {redirect} {path} || status=1",
            quote(&b64)
        );
        let mode = file.permissions.as_deref().unwrap_or("0644");
        let _ = writeln!(out, "chmod {} {path} || status=1", quote(mode));
        if let Some(owner) = &file.owner {
            let _ = writeln!(
                out,
                "chown {} {path} || echo \"cloud-init: cannot chown {}\" >&2",
                quote(owner),
                file.path.replace('"', "")
            );
        }
    }
    if config.package_update || !config.packages.is_empty() {
        out.push_str("apt-get update || status=1\n");
    }
    if !config.packages.is_empty() {
        let names: Vec<String> = config.packages.iter().map(|p| quote(p)).collect();
        let _ = writeln!(out, "apt-get install -y {} || status=1", names.join(" "));
    }
    for cmd in &config.runcmd {
        let line = match cmd {
            RunCmd::Shell(s) => s.clone(),
            RunCmd::Argv(argv) => argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        };
        let _ = writeln!(out, "{{ {line}\n}} || status=1");
    }
    out.push_str("exit $status\n");
    Ok(out)
}

/// Runs the VM's user data at first boot, records the result, then lets the create finish.
pub(crate) fn run(shared: &Arc<Shared>, vm_key: &str, op: &str, user_data: &Script) {
    let data = user_data.script.as_deref().unwrap_or_default();
    let text = String::from_utf8_lossy(data);
    let script = if text.starts_with("#cloud-config") {
        serde_saphyr::from_str::<CloudConfig>(&text)
            .map_err(|e| format!("invalid cloud-config: {e}"))
            .and_then(|c| script_for(&c))
            .map(Some)
    } else if text.starts_with("#!") {
        Ok(Some(text.into_owned()))
    } else {
        Ok(None)
    };
    let result = match script {
        Ok(Some(body)) => {
            match customscript::execute(shared, vm_key, &Script { command: None, script: Some(body.into_bytes()) }) {
                Ok(out) if out.code == 0 => {
                    CloudInit { status: "done".into(), exit_code: Some(0), detail: String::new() }
                }
                Ok(out) => CloudInit { status: "error".into(), exit_code: Some(out.code), detail: out.stderr },
                Err(reason) => CloudInit { status: "error".into(), exit_code: None, detail: reason },
            }
        }
        Ok(None) => CloudInit {
            status: "unsupported".into(),
            exit_code: None,
            detail: "custom data is neither #cloud-config nor a #! script; cloud-init ignored it".into(),
        },
        Err(reason) => CloudInit { status: "error".into(), exit_code: None, detail: reason },
    };
    // cloud-init carries on past a failing runcmd: what earlier steps set up (a dockerd) runs
    // all the same, so the guest is inspected whenever the script ran at all.
    let ran = result.exit_code.is_some();
    customscript::finish(shared, vm_key, op, ran, |inner| {
        if let Some(vm) = inner.vms.get_mut(vm_key) {
            vm.guest.cloud_init = Some(result);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_config_becomes_a_script_in_module_order() {
        let config: CloudConfig = serde_saphyr::from_str(
            "#cloud-config\nwrite_files:\n  - path: /etc/app.conf\n    content: |\n      it's here\n    permissions: '0600'\npackages: [openssl]\nruncmd:\n  - echo one\n  - [sh, -c, \"echo 'two'\"]\n",
        )
        .unwrap();
        let script = script_for(&config).unwrap();
        let write = script.find("/etc/app.conf").unwrap();
        let install = script.find("apt-get install -y 'openssl'").unwrap();
        let run = script.find("{ echo one").unwrap();
        assert!(write < install && install < run, "{script}");
        assert!(script.contains(r"'sh' '-c' 'echo '\''two'\'''"), "{script}");
        assert!(script.contains("chmod '0600' '/etc/app.conf'"));
    }
}
