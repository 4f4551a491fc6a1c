//! `/_emulator/…`: the routes tests and `azdock local` use to look inside the cloud — health,
//! the request log, fault rules, and each VM's guest state.

use serde_json::{Value, json};

use crate::Shared;
use crate::faults::FaultRule;
use crate::state::Inner;
use crate::wire::{ArmError, Req, Resp};

pub(crate) fn handle(inner: &mut Inner, shared: &Shared, req: &Req, seg: &[&str]) -> Resp {
    match route(inner, shared, req, seg) {
        Ok(resp) => resp,
        Err(e) => e.into_resp(),
    }
}

fn route(inner: &mut Inner, shared: &Shared, req: &Req, seg: &[&str]) -> Result<Resp, ArmError> {
    match (req.method.as_str(), seg) {
        ("GET", ["health"]) => {
            // Where each VM's sshd answers (port 22 of its address, or the fallback port).
            let ssh: Vec<Value> = inner
                .vms
                .iter()
                .filter_map(|(key, vm)| match &vm.guest.ssh_endpoint {
                    Some(crate::guest::SshEndpoint::Listening { address }) => {
                        Some(json!({"vm": key.rsplit('/').next().unwrap_or(key), "address": address}))
                    }
                    _ => None,
                })
                .collect();
            Ok(Resp::json(
                200,
                json!({"status": "ok", "baseUrl": shared.base_url, "resources": inner.resources.len(), "vms": inner.vms.len(), "operations": inner.ops.len(), "sshEndpoints": ssh}),
            ))
        }
        ("GET", ["requests"]) => {
            let since: u64 = req.query("since").and_then(|s| s.parse().ok()).unwrap_or(0);
            let entries: Vec<&crate::state::LogEntry> = inner.log.iter().filter(|e| e.seq > since).collect();
            Ok(Resp::json(200, json!({"last": inner.log_seq, "requests": entries})))
        }
        ("GET", ["faults"]) => Ok(Resp::json(200, json!({"seed": inner.faults.seed, "rules": inner.faults.rules}))),
        ("PUT", ["faults"]) => {
            let body = req.json()?;
            let seed = body.get("seed").and_then(Value::as_u64).unwrap_or(inner.faults.seed);
            let rules: Vec<FaultRule> = serde_json::from_value(body.get("rules").cloned().unwrap_or_else(|| json!([])))
                .map_err(|e| ArmError::new(400, "InvalidFaultRules", format!("invalid fault rules: {e}")))?;
            inner.faults.set(seed, rules);
            Ok(Resp::json(200, json!({"seed": inner.faults.seed, "rules": inner.faults.rules})))
        }
        ("DELETE", ["faults"]) => {
            let seed = inner.faults.seed;
            inner.faults.set(seed, Vec::new());
            Ok(Resp::empty(204))
        }
        ("POST", ["device-codes", code, decision @ ("approve" | "decline")]) => {
            if inner.people.decide(code, *decision == "approve") {
                Ok(Resp::empty(204))
            } else {
                Err(ArmError::new(404, "NotFound", format!("no sign-in waits for the code {code}")))
            }
        }
        ("POST", ["people", "revoke-sessions"]) => {
            inner.people.revoke_sessions();
            Ok(Resp::empty(204))
        }
        ("POST", ["principals", client_id, what]) => principal_credential(inner, shared, req, client_id, what),
        // New limits and full buckets: load tests set up without throttling, then measure with it.
        ("PUT", ["throttle"]) => {
            let config: crate::ThrottleConfig = serde_json::from_value(req.json()?).map_err(|e| {
                ArmError::new(400, "InvalidRequest", format!("expected the ThrottleConfig fields: {e}"))
            })?;
            inner.throttle = crate::throttle::Throttle::new(config);
            Ok(Resp::empty(204))
        }
        ("GET", ["identity"]) => Ok(Resp::json(
            200,
            json!({"identityEndpoint": format!("{}/msi/token", shared.base_url), "identityHeader": shared.identity_header,
                   "imdsEndpoint": crate::imds_base(shared)}),
        )),
        ("GET", ["guests", sub, rg, vm]) => {
            let rt = vm_runtime(inner, sub, rg, vm)?;
            Ok(Resp::json(200, json!({"power": rt.power, "guest": rt.guest})))
        }
        ("GET", ["guests", sub, rg, vm, "files"]) => {
            vm_runtime(inner, sub, rg, vm)?;
            let path = req.query("path").unwrap_or_default();
            let k =
                format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}")
                    .to_ascii_lowercase();
            let root = crate::customscript::vm_dir(shared, &k);
            match crate::sandbox::guest_file(&root, path) {
                Some(bytes) => Ok(Resp::json(200, json!({"path": path, "content": String::from_utf8_lossy(&bytes)}))),
                None => Err(ArmError::new(
                    404,
                    "NotFound",
                    format!("no file `{path}` on the guest (readable: /etc, /var, /home, /root, /tmp)"),
                )),
            }
        }
        ("POST", ["guests", sub, rg, vm, "verify-password"]) => {
            let body = req.json()?;
            let rt = vm_runtime(inner, sub, rg, vm)?;
            let user = body["username"].as_str().unwrap_or_default();
            let password = body["password"].as_str().unwrap_or_default();
            Ok(Resp::json(200, json!({"valid": rt.guest.verify_password(user, password)})))
        }
        _ => Err(ArmError::new(404, "NotFound", format!("no admin route {} {}", req.method, req.path))),
    }
}

fn vm_runtime<'a>(inner: &'a Inner, sub: &str, rg: &str, vm: &str) -> Result<&'a crate::state::VmRuntime, ArmError> {
    let k = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}")
        .to_ascii_lowercase();
    inner.vms.get(&k).ok_or_else(|| ArmError::new(404, "NotFound", format!("no VM {vm} in resource group {rg}")))
}

/// A sign-in credential added to a principal: a certificate (PEM) for client assertions, or a
/// federated identity credential.
fn principal_credential(
    inner: &mut Inner,
    shared: &Shared,
    req: &Req,
    client_id: &str,
    what: &str,
) -> Result<Resp, ArmError> {
    match what {
        "certificates" => {
            let body = req.json()?;
            let Some(pem) = body["pem"].as_str().filter(|p| {
                x509_parser::pem::parse_x509_pem(p.as_bytes()).is_ok_and(|(_, pem)| pem.parse_x509().is_ok())
            }) else {
                return Err(ArmError::new(400, "InvalidCertificate", "`pem` must hold an X.509 certificate in PEM"));
            };
            if !crate::add_certificate(shared, client_id, pem) {
                return Err(ArmError::new(404, "NotFound", format!("no service principal with client id {client_id}")));
            }
            inner.principals_changed = true;
            Ok(Resp::empty(204))
        }
        "federated-credentials" => {
            let credential: crate::FederatedCredential = serde_json::from_value(req.json()?).map_err(|e| {
                ArmError::new(
                    400,
                    "InvalidRequest",
                    format!("expected {{issuer, subject, certificate[, audiences]}}: {e}"),
                )
            })?;
            if x509_parser::pem::parse_x509_pem(credential.certificate.as_bytes())
                .map_or(true, |(_, p)| p.parse_x509().is_err())
            {
                return Err(ArmError::new(
                    400,
                    "InvalidCertificate",
                    "`certificate` must hold an X.509 certificate in PEM",
                ));
            }
            if !crate::add_federated(shared, client_id, credential) {
                return Err(ArmError::new(404, "NotFound", format!("no service principal with client id {client_id}")));
            }
            inner.principals_changed = true;
            Ok(Resp::empty(204))
        }
        _ => Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
    }
}
