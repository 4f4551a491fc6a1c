//! An azdock plugin, built and loaded as a third party's would be: `azdock ext customscript run
//! --vm VM -g RG --script FILE | --command CMD [--file-uri URI…]` runs a shell script or a
//! command on a Linux VM through CustomScript 2.1 (Microsoft.Azure.Extensions). The script travels
//! base64-encoded in protected settings; the host shows the handler's stdout and stderr from the
//! instance view's substatuses.

use azdock_core::serde_json::json;
use azdock_core::{
    ActionSpec, ArgKind, ArgSpec, ExtensionError, ExtensionInstance, HandlerSpec, Manifest, Operation, OsType, Plan,
    PlanRequest, Secret, VmExtension,
};

/// The CustomScript extension as a plugin.
#[derive(Debug)]
pub struct CustomScript {
    manifest: Manifest,
}

impl Default for CustomScript {
    fn default() -> Self {
        Self {
            manifest: Manifest {
                id: "customscript".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                summary: "Run a shell script or command on a Linux VM (CustomScript 2.1)".into(),
                handlers: vec![HandlerSpec {
                    name: "linux".into(),
                    os: OsType::Linux,
                    publisher: "Microsoft.Azure.Extensions".into(),
                    kind: "CustomScript".into(),
                    type_handler_version: "2.1".into(),
                }],
                actions: vec![ActionSpec {
                    name: "run".into(),
                    summary: "Run a script (its file) or a command, and show its output".into(),
                    os: vec![OsType::Linux],
                    args: vec![
                        ArgSpec::text("script", "A shell script file to run").kind(ArgKind::File),
                        ArgSpec::text("command", "A command to run instead of a script"),
                        ArgSpec::text("file-uri", "A file to download first (repeatable)").kind(ArgKind::List),
                    ],
                    network: true,
                }],
            },
        }
    }
}

/// Standard base64 with padding (the plugin depends on azdock-core alone).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[azdock_core::async_trait]
impl VmExtension for CustomScript {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn plan(&self, request: &PlanRequest) -> Result<Plan, ExtensionError> {
        if request.facts.os_type != OsType::Linux {
            return Err(ExtensionError::wrong_os(&request.action, request.facts.os_type));
        }
        if request.action != "run" {
            return Err(ExtensionError::UnknownAction(request.action.clone()));
        }
        let mut protected = match (request.text("script"), request.text("command")) {
            (Some(script), None) => json!({"script": base64(script.as_bytes())}),
            (None, Some(command)) => json!({"commandToExecute": command}),
            _ => {
                return Err(ExtensionError::InvalidArgument {
                    arg: "script".into(),
                    message: "give exactly one of --script FILE and --command CMD".into(),
                });
            }
        };
        let uris = request.list("file-uri");
        if !uris.is_empty() {
            protected["fileUris"] = json!(uris);
        }
        let handler = &self.manifest.handlers[0];
        let name = request
            .facts
            .extension_of(&handler.publisher, &handler.kind)
            .map_or_else(|| "customscript".to_owned(), |e| e.name.clone());
        Ok(Plan::new(Operation::Put(Box::new(ExtensionInstance {
            name,
            publisher: handler.publisher.clone(),
            kind: handler.kind.clone(),
            type_handler_version: handler.type_handler_version.clone(),
            auto_upgrade_minor_version: true,
            force_update_tag: Some(request.run_id.clone()),
            settings: json!({}),
            protected_settings: Some(Secret::new(protected)),
        }))))
    }
}

azdock_core::export_plugin!(CustomScript);

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"echo hi\n"), "ZWNobyBoaQo=");
    }
}
