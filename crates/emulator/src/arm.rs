//! Azure Resource Manager: the routes azdock (and other Azure clients) use, with ARM's status
//! codes, headers, error codes, validation and long-running operations.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::auth::{ServicePrincipal, authorization_failed};
use crate::catalog::{self, COMPUTE_API_VERSIONS, NETWORK_API_VERSIONS, RESOURCES_API_VERSIONS};
use crate::guest::{Guest, HandlerResult};
use crate::state::{Effect, Inner, Resource, VmRuntime};
use crate::wire::{ArmError, Req, Resp, uuid};
use crate::{OsKind, Shared};

/// Per-request context.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    pub principal: &'a ServicePrincipal,
    pub api_version: String,
    /// A fault rule asked for this request's operation to fail with this error.
    pub lro_fail: Option<ArmError>,
}

type Result<T> = std::result::Result<T, ArmError>;

fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The known provider resource types: (namespace, type path) and whether they carry a location.
const TYPES: &[(&str, &[&str], bool)] = &[
    ("Microsoft.Network", &["virtualNetworks"], true),
    ("Microsoft.Network", &["virtualNetworks", "subnets"], false),
    ("Microsoft.Network", &["networkSecurityGroups"], true),
    ("Microsoft.Network", &["networkSecurityGroups", "securityRules"], false),
    ("Microsoft.Network", &["publicIPAddresses"], true),
    ("Microsoft.Network", &["networkInterfaces"], true),
    ("Microsoft.Compute", &["virtualMachines"], true),
    ("Microsoft.Compute", &["virtualMachines", "extensions"], true),
];

const NAMESPACES: &[&str] = &["Microsoft.Compute", "Microsoft.Network", "Microsoft.Resources", "Microsoft.Storage"];

fn api_versions(ns: &str) -> &'static [&'static str] {
    if eq(ns, "Microsoft.Compute") {
        COMPUTE_API_VERSIONS
    } else if eq(ns, "Microsoft.Network") {
        NETWORK_API_VERSIONS
    } else {
        RESOURCES_API_VERSIONS
    }
}

fn canonical_ns(ns: &str) -> Option<&'static str> {
    NAMESPACES.iter().copied().find(|n| eq(n, ns))
}

/// Checks `api-version` for a namespace: missing and unknown versions fail as ARM fails them.
fn check_api_version(req: &Req, ns: &str, type_name: Option<&str>) -> Result<String> {
    let Some(version) = req.query("api-version") else {
        return Err(ArmError::new(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    let supported = api_versions(ns);
    if supported.contains(&version) {
        return Ok(version.to_owned());
    }
    let list = supported.iter().rev().copied().collect::<Vec<_>>().join(", ");
    Err(match type_name {
        Some(t) => ArmError::new(
            400,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location 'westeurope' and API version '{version}' for type '{t}'. The supported api-versions are '{list}'. The supported locations are '{}'.",
                catalog::LOCATIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        ),
        None => ArmError::new(
            400,
            "InvalidApiVersionParameter",
            format!("The api-version '{version}' is invalid. The supported versions are '{list}'."),
        ),
    })
}

/// Dispatches an authenticated ARM request.
pub(crate) fn handle(
    inner: &mut Inner,
    shared: &Shared,
    principal: &ServicePrincipal,
    req: &Req,
    lro_fail: Option<ArmError>,
) -> Resp {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let mut ctx = Ctx { shared, principal, api_version: String::new(), lro_fail };
    match route(inner, &mut ctx, req, &segments) {
        Ok(resp) => resp,
        Err(e) => e.into_resp(),
    }
}

fn route(inner: &mut Inner, ctx: &mut Ctx<'_>, req: &Req, seg: &[&str]) -> Result<Resp> {
    let m = req.method.as_str();
    match seg {
        [t] if eq(t, "tenants") && m == "GET" => {
            ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
            let t = &ctx.principal.tenant_id;
            Ok(Resp::json(
                200,
                json!({"value": [{"id": format!("/tenants/{t}"), "tenantId": t, "tenantCategory": "Home", "displayName": "azdock local", "defaultDomain": "azdock.local"}]}),
            ))
        }
        [s] if eq(s, "subscriptions") && m == "GET" => {
            ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
            let value: Vec<Value> = ctx.principal.subscriptions.iter().map(|s| subscription_body(ctx, s)).collect();
            Ok(Resp::json(200, json!({"value": value})))
        }
        [s, sub, rest @ ..] if eq(s, "subscriptions") => {
            let sub = check_subscription(ctx, sub, m, req)?;
            subscription_route(inner, ctx, req, &sub, rest)
        }
        _ => Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
    }
}

/// The subscription must exist and the principal must hold a role on it.
fn check_subscription(ctx: &Ctx<'_>, sub: &str, method: &str, req: &Req) -> Result<String> {
    let known = ctx.shared.subscriptions.iter().find(|s| eq(s, sub));
    let Some(sub) = known else {
        return Err(ArmError::new(
            404,
            "SubscriptionNotFound",
            format!("The subscription '{sub}' could not be found."),
        ));
    };
    if !ctx.principal.subscriptions.iter().any(|s| eq(s, sub)) {
        let action = match method {
            "GET" | "HEAD" => "read",
            "DELETE" => "delete",
            _ => "write",
        };
        return Err(authorization_failed(
            ctx.principal,
            &format!("Microsoft.Resources/subscriptions/{action}"),
            &req.path,
        ));
    }
    Ok(sub.clone())
}

fn subscription_body(ctx: &Ctx<'_>, sub: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{sub}"),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub,
        "tenantId": ctx.principal.tenant_id,
        "displayName": "azdock local",
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
    })
}

fn subscription_route(inner: &mut Inner, ctx: &mut Ctx<'_>, req: &Req, sub: &str, rest: &[&str]) -> Result<Resp> {
    let m = req.method.as_str();
    match rest {
        [] if m == "GET" => {
            ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
            Ok(Resp::json(200, subscription_body(ctx, sub)))
        }
        [l] if eq(l, "locations") && m == "GET" => {
            ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
            let value: Vec<Value> = catalog::LOCATIONS
                .iter()
                .map(|(name, display)| json!({"id": format!("/subscriptions/{sub}/locations/{name}"), "name": name, "displayName": display, "regionalDisplayName": display, "type": "Region"}))
                .collect();
            Ok(Resp::json(200, json!({"value": value})))
        }
        [r] if eq(r, "resourcegroups") && m == "GET" => {
            ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
            let prefix = format!("/subscriptions/{sub}/resourcegroups/").to_ascii_lowercase();
            let value: Vec<Value> = inner
                .resources
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix) && k[prefix.len()..].split('/').count() == 1)
                .map(|(_, r)| r.body.clone())
                .collect();
            Ok(Resp::json(200, json!({"value": value})))
        }
        [r, rg] if eq(r, "resourcegroups") => {
            ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
            resource_group(inner, ctx, req, sub, rg)
        }
        [r, rg, p, ns, rest @ ..] if eq(r, "resourcegroups") && eq(p, "providers") => {
            let rg_key = key(&format!("/subscriptions/{sub}/resourceGroups/{rg}"));
            let Some(group) = inner.resources.get(&rg_key) else {
                return Err(ArmError::new(
                    404,
                    "ResourceGroupNotFound",
                    format!("Resource group '{rg}' could not be found."),
                ));
            };
            let rg = group.body["name"].as_str().unwrap_or(rg).to_owned();
            let location = group.body["location"].as_str().unwrap_or("westeurope").to_owned();
            provider_route(inner, ctx, req, sub, &rg, &location, ns, rest)
        }
        [o, id] if eq(o, "operationresults") && m == "GET" => {
            ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
            operation_result(inner, id)
        }
        [p] if eq(p, "providers") && m == "GET" => {
            ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
            let value: Vec<Value> = NAMESPACES.iter().map(|ns| provider_body(sub, ns)).collect();
            Ok(Resp::json(200, json!({"value": value})))
        }
        [p, ns] if eq(p, "providers") && m == "GET" => {
            ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
            let ns = canonical_ns(ns).ok_or_else(|| invalid_namespace(ns))?;
            Ok(Resp::json(200, provider_body(sub, ns)))
        }
        [p, ns, r] if eq(p, "providers") && eq(r, "register") && m == "POST" => {
            ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
            let ns = canonical_ns(ns).ok_or_else(|| invalid_namespace(ns))?;
            Ok(Resp::json(200, provider_body(sub, ns)))
        }
        [p, ns, l, loc, o, id] if eq(p, "providers") && eq(l, "locations") && eq(o, "operations") && m == "GET" => {
            let ns = canonical_ns(ns).ok_or_else(|| invalid_namespace(ns))?;
            ctx.api_version = check_api_version(req, ns, None)?;
            operation_status(inner, id, loc, req.query("monitor").is_some_and(|v| v == "true"))
        }
        [p, ns, l, loc, pubs, tail @ ..]
            if eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(l, "locations")
                && eq(pubs, "publishers")
                && m == "GET" =>
        {
            ctx.api_version = check_api_version(req, "Microsoft.Compute", None)?;
            images(req, sub, loc, tail)
        }
        [p, ns, t] if eq(p, "providers") && m == "GET" => {
            let ns = canonical_ns(ns).ok_or_else(|| invalid_namespace(ns))?;
            let spec = find_type(ns, &[t]).ok_or_else(|| invalid_type(ns, t))?;
            ctx.api_version = check_api_version(req, ns, Some(&format!("{ns}/{}", spec.join("/"))))?;
            let prefix = format!("/subscriptions/{sub}/").to_ascii_lowercase();
            let kind = format!("{ns}/{}", spec.join("/")).to_ascii_lowercase();
            let value: Vec<Value> = inner
                .resources
                .iter()
                .filter(|(k, r)| {
                    k.starts_with(&prefix) && r.body["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(&kind))
                })
                .map(|(k, _)| render(inner, k, false))
                .collect();
            Ok(Resp::json(200, json!({"value": value})))
        }
        _ => Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
    }
}

fn invalid_namespace(ns: &str) -> ArmError {
    ArmError::new(400, "InvalidResourceNamespace", format!("The resource namespace '{ns}' is invalid."))
}

fn invalid_type(ns: &str, t: &str) -> ArmError {
    ArmError::new(
        400,
        "InvalidResourceType",
        format!("The resource type '{t}' could not be found in the namespace '{ns}' for api version '2024-11-01'."),
    )
}

fn provider_body(sub: &str, ns: &str) -> Value {
    let types: Vec<Value> = TYPES
        .iter()
        .filter(|(n, _, _)| *n == ns)
        .map(|(_, path, _)| {
            json!({"resourceType": path.join("/"), "locations": catalog::LOCATIONS.iter().map(|(_, d)| *d).collect::<Vec<_>>(), "apiVersions": api_versions(ns).iter().rev().collect::<Vec<_>>()})
        })
        .collect();
    json!({"id": format!("/subscriptions/{sub}/providers/{ns}"), "namespace": ns, "registrationState": "Registered", "registrationPolicy": "RegistrationRequired", "resourceTypes": types})
}

fn find_type(ns: &str, path: &[&str]) -> Option<&'static [&'static str]> {
    TYPES
        .iter()
        .find(|(n, p, _)| eq(n, ns) && p.len() == path.len() && p.iter().zip(path).all(|(a, b)| eq(a, b)))
        .map(|(_, p, _)| *p)
}

// ---------------------------------------------------------------------------------------------
// Resource groups

fn resource_group(inner: &mut Inner, ctx: &Ctx<'_>, req: &Req, sub: &str, rg: &str) -> Result<Resp> {
    let id = format!("/subscriptions/{sub}/resourceGroups/{rg}");
    let k = key(&id);
    let not_found =
        || ArmError::new(404, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found."));
    match req.method.as_str() {
        "GET" => inner.resources.get(&k).map(|r| Resp::json(200, r.body.clone())).ok_or_else(not_found),
        "HEAD" => Ok(Resp::empty(if inner.resources.contains_key(&k) { 204 } else { 404 })),
        "PUT" | "PATCH" => {
            validate_rg_name(rg)?;
            let body = req.json()?;
            let existing = inner.resources.get(&k).cloned();
            if existing.as_ref().is_some_and(|r| r.body["properties"]["provisioningState"] == "Deleting") {
                return Err(ArmError::new(
                    409,
                    "ResourceGroupBeingDeleted",
                    format!("The resource group '{rg}' is in deprovisioning state and cannot perform this operation."),
                ));
            }
            let location = match (body.get("location").and_then(Value::as_str), &existing) {
                (Some(l), _) => l.to_owned(),
                (None, Some(r)) => r.body["location"].as_str().unwrap_or_default().to_owned(),
                (None, None) => {
                    return Err(ArmError::new(
                        400,
                        "LocationRequired",
                        "The location property is required for this definition.",
                    ));
                }
            };
            if !catalog::is_location(&location) {
                return Err(ArmError::new(
                    400,
                    "LocationNotAvailableForResourceGroup",
                    format!(
                        "The provided location '{location}' is not available for resource group. List of available regions is '{}'.",
                        catalog::LOCATIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(",")
                    ),
                ));
            }
            if let Some(r) = &existing
                && !eq(r.body["location"].as_str().unwrap_or_default(), &catalog::normalize_location(&location))
            {
                return Err(ArmError::new(
                    409,
                    "InvalidResourceGroupLocation",
                    format!(
                        "Invalid resource group location '{location}'. The Resource group already exists in location '{}'.",
                        r.body["location"].as_str().unwrap_or_default()
                    ),
                ));
            }
            let name = existing
                .as_ref()
                .and_then(|r| r.body["name"].as_str().map(str::to_owned))
                .unwrap_or_else(|| rg.to_owned());
            let id = existing.as_ref().map_or(id, |r| r.id.clone());
            let mut out = json!({"id": id, "name": name, "type": "Microsoft.Resources/resourceGroups", "location": catalog::normalize_location(&location), "properties": {"provisioningState": "Succeeded"}});
            if let Some(tags) = body.get("tags").or_else(|| existing.as_ref().and_then(|r| r.body.get("tags"))) {
                out["tags"] = tags.clone();
            }
            let status = if existing.is_some() { 200 } else { 201 };
            inner.resources.insert(k, Resource { id, body: out.clone() });
            Ok(Resp::json(status, out))
        }
        "DELETE" => {
            let Some(group) = inner.resources.get_mut(&k) else { return Err(not_found()) };
            group.body["properties"]["provisioningState"] = json!("Deleting");
            let prefix = format!("{k}/");
            let keys: Vec<String> =
                inner.resources.keys().filter(|r| r.starts_with(&prefix)).cloned().chain([k.clone()]).collect();
            for key in &keys {
                if let Some(vm) = inner.vms.get_mut(key) {
                    vm.power = "stopped";
                    inner.jobs.push(crate::state::Job::StopDocker { vm_key: key.clone() });
                }
            }
            let duration = inner.durations.resource_group_delete;
            let op = inner.start_op(duration, Effect::Delete { keys }, Ok(()));
            let url = format!(
                "{}/subscriptions/{sub}/operationresults/{op}?api-version={}",
                ctx.shared.base_url, ctx.api_version
            );
            Ok(Resp::empty(202).header("Location", url).header("Retry-After", retry_after(duration)))
        }
        m => Err(method_not_allowed(m)),
    }
}

fn validate_rg_name(rg: &str) -> Result<()> {
    let ok = (1..=90).contains(&rg.len())
        && !rg.ends_with('.')
        && rg.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'));
    if ok {
        Ok(())
    } else {
        Err(ArmError::new(
            400,
            "InvalidResourceGroup",
            format!(
                "The provided resource group name '{rg}' has these invalid characters: '{}'. The name can only be a letter, digit, '-', '.', '(', ')' or '_'.",
                rg.chars()
                    .filter(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')')))
                    .collect::<String>()
            ),
        ))
    }
}

/// Whether the resource at `k` is an instance of the retired DockerExtension.
fn is_docker_extension(inner: &Inner, k: &str) -> bool {
    inner
        .resources
        .get(k)
        .is_some_and(|r| r.body["properties"]["type"].as_str().is_some_and(|t| eq(t, "DockerExtension")))
}

fn method_not_allowed(m: &str) -> ArmError {
    ArmError::new(405, "MethodNotAllowed", format!("The requested resource does not support http method '{m}'."))
}

/// Retry-After in whole seconds, rounded up, so clients never poll before the work is done.
fn retry_after(d: Duration) -> String {
    d.as_secs_f64().ceil().to_string()
}

// ---------------------------------------------------------------------------------------------
// Long-running operations

fn operation_status(inner: &mut Inner, id: &str, _loc: &str, monitor: bool) -> Result<Resp> {
    let now = Instant::now();
    let Some(op) = inner.ops.get(id) else {
        return Err(ArmError::new(404, "NotFound", format!("The operation '{id}' was not found.")));
    };
    if !op.done(now) {
        if monitor {
            return Ok(Resp::empty(202).header("Retry-After", retry_after(op.remaining(now))));
        }
        return Ok(Resp::json(200, json!({"startTime": op.started_at, "status": "InProgress", "name": id}))
            .header("Retry-After", retry_after(op.remaining(now))));
    }
    let end = crate::now_rfc3339();
    Ok(match &op.result {
        Ok(()) if monitor => Resp::empty(200),
        Ok(()) => {
            Resp::json(200, json!({"startTime": op.started_at, "endTime": end, "status": "Succeeded", "name": id}))
        }
        Err(e) if monitor => e.clone().into_resp(),
        Err(e) => Resp::json(
            200,
            json!({"startTime": op.started_at, "endTime": end, "status": "Failed", "error": e.body(), "name": id}),
        ),
    })
}

/// Resource-group deletes are polled through `Location`: 202 until done, then 200.
fn operation_result(inner: &mut Inner, id: &str) -> Result<Resp> {
    let now = Instant::now();
    let Some(op) = inner.ops.get(id) else {
        return Err(ArmError::new(404, "NotFound", format!("The operation '{id}' was not found.")));
    };
    if op.done(now) {
        match &op.result {
            Ok(()) => Ok(Resp::empty(200)),
            Err(e) => Err(e.clone()),
        }
    } else {
        Ok(Resp::empty(202).header("Retry-After", retry_after(op.remaining(now))))
    }
}

/// The status URL of an operation, without query.
fn op_url(ctx: &Ctx<'_>, sub: &str, ns: &str, location: &str, op: &str) -> String {
    format!("{}/subscriptions/{sub}/providers/{ns}/locations/{location}/operations/{op}", ctx.shared.base_url)
}

/// The response headers of an accepted long-running operation.
fn lro_headers(resp: Resp, ctx: &Ctx<'_>, op_url: &str, duration: Duration, with_location: bool) -> Resp {
    let mut resp = resp
        .header("Azure-AsyncOperation", format!("{op_url}?api-version={}", ctx.api_version))
        .header("Retry-After", retry_after(duration));
    if with_location {
        resp = resp.header("Location", format!("{op_url}?monitor=true&api-version={}", ctx.api_version));
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// Provider resources

#[allow(clippy::too_many_arguments)]
fn provider_route(
    inner: &mut Inner,
    ctx: &mut Ctx<'_>,
    req: &Req,
    sub: &str,
    rg: &str,
    location: &str,
    ns: &str,
    rest: &[&str],
) -> Result<Resp> {
    let ns_canon = canonical_ns(ns).ok_or_else(|| invalid_namespace(ns))?;
    let m = req.method.as_str();
    let (types, names, action): (Vec<&str>, Vec<&str>, Option<&str>) = match rest {
        [t] => (vec![t], vec![], None),
        [t, n] => (vec![t], vec![n], None),
        [t, n, x] => {
            if find_type(ns_canon, &[t, x]).is_some() {
                (vec![t, x], vec![n], None)
            } else {
                (vec![t], vec![n], Some(*x))
            }
        }
        [t, n, t2, n2] => (vec![t, t2], vec![n, n2], None),
        _ => return Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
    };
    let Some(spec) = find_type(ns_canon, &types) else {
        return Err(invalid_type(ns_canon, &types.join("/")));
    };
    let type_name = format!("{ns_canon}/{}", spec.join("/"));
    ctx.api_version = check_api_version(req, ns_canon, Some(&type_name))?;
    let rg_id = format!("/subscriptions/{sub}/resourceGroups/{rg}");
    let mut id = format!("{rg_id}/providers/{ns_canon}/{}/{}", spec[0], names.first().copied().unwrap_or_default());
    if spec.len() == 2 {
        // Parent must exist for nested resources.
        let parent_key = key(&id);
        if !inner.resources.contains_key(&parent_key) {
            return Err(ArmError::new(
                404,
                "ParentResourceNotFound",
                format!(
                    "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
                    names[0]
                ),
            ));
        }
        if names.len() == 2 {
            id = format!("{id}/{}/{}", spec[1], names[1]);
        } else {
            id = format!("{id}/{}", spec[1]);
        }
    }
    if let Some(action) = action {
        return vm_action(inner, ctx, req, sub, location, &id, action);
    }
    let listing = names.len() < spec.len();
    if listing {
        if m != "GET" {
            return Err(method_not_allowed(m));
        }
        let prefix = if spec.len() == 2 {
            format!("{}/", key(&id))
        } else {
            format!("{}/providers/{}/", key(&rg_id), key(&type_name))
        };
        let value: Vec<Value> = inner
            .resources
            .iter()
            .filter(|(k, r)| {
                k.starts_with(&prefix)
                    && r.body["type"].as_str().is_some_and(|t| eq(t, &type_name))
                    && !k[prefix.len()..].contains('/')
            })
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
            .iter()
            .map(|k| render(inner, k, false))
            .collect();
        return Ok(Resp::json(200, json!({"value": value})));
    }
    let k = key(&id);
    let expand = req.query("$expand").is_some_and(|e| eq(e, "instanceView"));
    match m {
        "GET" => {
            if inner.resources.contains_key(&k) {
                Ok(Resp::json(200, render(inner, &k, expand)))
            } else {
                Err(not_found(ns_canon, spec, &names, rg, &id))
            }
        }
        "PUT" => put_resource(inner, ctx, req, sub, location, &type_name, &id, &names),
        "DELETE" => delete_resource(inner, ctx, sub, location, &type_name, &k),
        m => Err(method_not_allowed(m)),
    }
}

fn not_found(ns: &str, spec: &[&str], names: &[&str], rg: &str, id: &str) -> ArmError {
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
fn validate_name(kind: &str, name: &str) -> Result<()> {
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
fn put_resource(
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
                        catalog::LOCATIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(",")
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
        "microsoft.compute/virtualmachines" => prepare_vm(inner, &id, name, &mut props, existing.as_ref())?,
        "microsoft.compute/virtualmachines/extensions" => {
            duration = inner.durations.extension;
            result = prepare_extension(inner, &id, name, &mut props)?;
        }
        _ => {}
    }
    if let Some(fail) = ctx.lro_fail.clone() {
        result = Err(fail);
    }
    props.insert("provisioningState".into(), json!(if creating { "Creating" } else { "Updating" }));
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
fn queue_guest_work(inner: &mut Inner, k: &str, lower: &str, op: &str) {
    let op = op.to_owned();
    if let Some((vm_key, user_data)) = inner.pending_user_data.take() {
        if let Some(o) = inner.ops.get_mut(&op) {
            o.blocked = true;
        }
        inner.jobs.push(crate::state::Job::CloudInit { vm_key, op: op.clone(), user_data });
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

fn location_of(inner: &Inner, k: &str, fallback: &str) -> String {
    inner.resources.get(k).and_then(|r| r.body["location"].as_str()).unwrap_or(fallback).to_owned()
}

fn delete_resource(
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
            if let Some(r) = inner.resources.get_mut(&key) {
                r.body["properties"].as_object_mut().map(|p| p.remove("virtualMachine"));
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
    let duration = inner.durations.delete;
    let result = ctx.lro_fail.clone().map_or(Ok(()), Err);
    let op = inner.start_op(duration, Effect::Delete { keys }, result);
    let ns = type_name.split('/').next().unwrap_or_default();
    let url = op_url(ctx, sub, ns, &location_of(inner, k, location), &op);
    Ok(lro_headers(Resp::empty(202), ctx, &url, duration, true))
}

/// Ids of resources whose body references `id` (case-insensitively), except itself.
fn referrers(inner: &Inner, id: &str, field_path: &[&str]) -> Vec<String> {
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

fn check_not_in_use(inner: &Inner, type_name: &str, k: &str, id: &str) -> Result<()> {
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
fn require_ref(inner: &Inner, referenced: &str, by: &str) -> Result<()> {
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

fn ref_id(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

// --- Microsoft.Network

fn prepare_vnet(inner: &Inner, id: &str, props: &mut Map<String, Value>) -> Result<()> {
    let prefixes = props
        .get("addressSpace")
        .and_then(|a| a.get("addressPrefixes"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if prefixes.is_empty() {
        return Err(ArmError::new(
            400,
            "InvalidAddressSpace",
            format!("Virtual network {id} does not have an address space: addressSpace.addressPrefixes is required."),
        ));
    }
    for p in &prefixes {
        let p = p.as_str().unwrap_or_default();
        if parse_cidr(p).is_none() {
            return Err(ArmError::new(
                400,
                "InvalidAddressPrefixFormat",
                format!(
                    "Address prefix {p} of resource {id} is not formatted correctly. It should follow CIDR notation, for example 10.0.0.0/24."
                ),
            ));
        }
    }
    if let Some(subnets) = props.get("subnets").and_then(Value::as_array) {
        for s in subnets {
            let name = s["name"].as_str().unwrap_or_default();
            validate_name("subnets", name)?;
            let mut sp = s["properties"].as_object().cloned().unwrap_or_default();
            prepare_subnet(inner, &format!("{id}/subnets/{name}"), &mut sp)?;
        }
    }
    props.insert("resourceGuid".into(), json!(uuid()));
    Ok(())
}

fn parse_cidr(p: &str) -> Option<([u8; 4], u8)> {
    let (ip, bits) = p.split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok().filter(|b| *b <= 32)?;
    Some((ip.octets(), bits))
}

fn prepare_subnet(inner: &Inner, id: &str, props: &mut Map<String, Value>) -> Result<()> {
    let prefix = props.get("addressPrefix").and_then(Value::as_str).map(str::to_owned).or_else(|| {
        props
            .get("addressPrefixes")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    match prefix {
        Some(p) if parse_cidr(&p).is_some() => {}
        Some(p) => {
            return Err(ArmError::new(
                400,
                "InvalidAddressPrefixFormat",
                format!(
                    "Address prefix {p} of resource {id} is not formatted correctly. It should follow CIDR notation, for example 10.0.0.0/24."
                ),
            ));
        }
        None => {
            return Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                format!("Cannot parse the request: subnet {id} needs addressPrefix."),
            ));
        }
    }
    if let Some(nsg) = props.get("networkSecurityGroup").and_then(ref_id) {
        require_ref(inner, nsg, id)?;
    }
    Ok(())
}

fn prepare_nsg(id: &str, props: &mut Map<String, Value>) -> Result<()> {
    if let Some(rules) = props.get("securityRules").and_then(Value::as_array) {
        let mut seen: Vec<(String, i64, String)> = Vec::new();
        for r in rules {
            let name = r["name"].as_str().unwrap_or_default();
            validate_name("securityRules", name)?;
            let mut rp = r["properties"].as_object().cloned().unwrap_or_default();
            validate_rule(name, &mut rp)?;
            let (priority, direction) =
                (rp["priority"].as_i64().unwrap_or_default(), rp["direction"].as_str().unwrap_or_default().to_owned());
            if let Some((other, _, _)) = seen.iter().find(|(_, p, d)| *p == priority && eq(d, &direction)) {
                return Err(ArmError::new(
                    400,
                    "SecurityRuleConflict",
                    format!(
                        "Security rule {name} conflicts with rule {other}. Rules cannot have the same Priority and Direction. To learn more, see aka.ms/nsgrules."
                    ),
                ));
            }
            seen.push((name.to_owned(), priority, direction));
        }
    }
    let defaults = [
        ("AllowVnetInBound", 65000, "Inbound", "VirtualNetwork", "VirtualNetwork", "Allow"),
        ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "AzureLoadBalancer", "*", "Allow"),
        ("DenyAllInBound", 65500, "Inbound", "*", "*", "Deny"),
        ("AllowVnetOutBound", 65000, "Outbound", "VirtualNetwork", "VirtualNetwork", "Allow"),
        ("AllowInternetOutBound", 65001, "Outbound", "*", "Internet", "Allow"),
        ("DenyAllOutBound", 65500, "Outbound", "*", "*", "Deny"),
    ];
    let defaults: Vec<Value> = defaults
        .iter()
        .map(|(name, priority, direction, src, dst, access)| {
            json!({"name": name, "id": format!("{id}/defaultSecurityRules/{name}"), "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
                   "properties": {"provisioningState": "Succeeded", "description": "Default rule", "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
                                  "sourceAddressPrefix": src, "destinationAddressPrefix": dst, "access": access, "priority": priority, "direction": direction}})
        })
        .collect();
    props.insert("defaultSecurityRules".into(), Value::Array(defaults));
    props.insert("resourceGuid".into(), json!(uuid()));
    Ok(())
}

fn validate_rule(name: &str, rp: &mut Map<String, Value>) -> Result<()> {
    let priority = rp.get("priority").and_then(Value::as_i64).unwrap_or(0);
    if !(100..=4096).contains(&priority) {
        return Err(ArmError::new(
            400,
            "SecurityRuleInvalidPriority",
            format!("Security rule has invalid Priority. Value provided: {priority}. Allowed range 100-4096."),
        )
        .target(name));
    }
    let check = |field: &str, allowed: &[&str]| -> Result<()> {
        let v = rp.get(field).and_then(Value::as_str).unwrap_or_default();
        if allowed.iter().any(|a| eq(a, v)) {
            Ok(())
        } else {
            Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                format!(
                    "Cannot parse the request: security rule {name} has an invalid {field} '{v}'; allowed: {}.",
                    allowed.join(", ")
                ),
            )
            .target(name))
        }
    };
    check("direction", &["Inbound", "Outbound"])?;
    check("access", &["Allow", "Deny"])?;
    check("protocol", &["Tcp", "Udp", "Icmp", "Esp", "Ah", "*"])?;
    for (single, plural) in [
        ("sourcePortRange", "sourcePortRanges"),
        ("destinationPortRange", "destinationPortRanges"),
        ("sourceAddressPrefix", "sourceAddressPrefixes"),
        ("destinationAddressPrefix", "destinationAddressPrefixes"),
    ] {
        let has = rp.get(single).and_then(Value::as_str).is_some_and(|v| !v.is_empty())
            || rp.get(plural).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if !has {
            return Err(ArmError::new(
                400,
                "SecurityRuleParameterContainsUnsupportedValue",
                format!("Security rule parameter {single} for rule with Id {name} cannot be empty."),
            )
            .target(name));
        }
    }
    Ok(())
}

fn prepare_rule(inner: &Inner, id: &str, name: &str, props: &mut Map<String, Value>) -> Result<()> {
    validate_rule(name, props)?;
    let (priority, direction) =
        (props["priority"].as_i64().unwrap_or_default(), props["direction"].as_str().unwrap_or_default().to_owned());
    let parent = id.rsplit_once("/securityRules/").map(|(p, _)| key(p)).unwrap_or_default();
    let prefix = format!("{parent}/securityrules/");
    for (k, r) in inner.resources.iter() {
        if k.starts_with(&prefix)
            && !eq(&r.id, id)
            && r.body["properties"]["priority"].as_i64() == Some(priority)
            && r.body["properties"]["direction"].as_str().is_some_and(|d| eq(d, &direction))
        {
            return Err(ArmError::new(
                400,
                "SecurityRuleConflict",
                format!(
                    "Security rule {name} conflicts with rule {}. Rules cannot have the same Priority and Direction. To learn more, see aka.ms/nsgrules.",
                    r.body["name"].as_str().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

fn prepare_public_ip(
    inner: &mut Inner,
    id: &str,
    location: &str,
    props: &mut Map<String, Value>,
    out: &mut Value,
) -> Result<()> {
    if out.get("sku").is_none() {
        out["sku"] = json!({"name": "Standard", "tier": "Regional"});
    }
    props.entry("publicIPAllocationMethod").or_insert(json!("Static"));
    props.entry("publicIPAddressVersion").or_insert(json!("IPv4"));
    props.entry("idleTimeoutInMinutes").or_insert(json!(4));
    if let Some(label) =
        props.get("dnsSettings").and_then(|d| d.get("domainNameLabel")).and_then(Value::as_str).map(str::to_owned)
    {
        let valid = label.len() >= 3
            && label.len() <= 63
            && label.starts_with(|c: char| c.is_ascii_lowercase())
            && label.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(ArmError::new(
                400,
                "InvalidDomainNameLabel",
                format!(
                    "The domain name label {label} is invalid. It must conform to the following regular expression: ^[a-z][a-z0-9-]{{1,61}}[a-z0-9]$."
                ),
            ));
        }
        let fqdn = format!("{label}.{location}.cloudapp.azure.com");
        let taken = inner.resources.values().any(|r| {
            !eq(&r.id, id) && r.body["properties"]["dnsSettings"]["fqdn"].as_str().is_some_and(|f| eq(f, &fqdn))
        });
        if taken {
            return Err(ArmError::new(
                400,
                "DnsRecordInUse",
                format!("DNS record {fqdn} is already used by another public IP."),
            ));
        }
        props.insert("dnsSettings".into(), json!({"domainNameLabel": label, "fqdn": fqdn}));
    }
    let existing_ip =
        inner.resources.get(&key(id)).and_then(|r| r.body["properties"]["ipAddress"].as_str()).map(str::to_owned);
    let ip = existing_ip.unwrap_or_else(|| inner.allocate_public_ip());
    props.insert("ipAddress".into(), json!(ip));
    props.insert("resourceGuid".into(), json!(uuid()));
    Ok(())
}

fn prepare_nic(inner: &Inner, id: &str, props: &mut Map<String, Value>) -> Result<()> {
    let Some(configs) = props.get("ipConfigurations").and_then(Value::as_array).cloned().filter(|c| !c.is_empty())
    else {
        return Err(ArmError::new(
            400,
            "InvalidRequestFormat",
            format!("Cannot parse the request: network interface {id} needs at least one ipConfiguration."),
        ));
    };
    if let Some(nsg) = props.get("networkSecurityGroup").and_then(ref_id) {
        require_ref(inner, nsg, id)?;
    }
    let mut out = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let name = c["name"].as_str().map_or_else(|| format!("ipconfig{}", i + 1), str::to_owned);
        let mut cp = c["properties"].as_object().cloned().unwrap_or_default();
        let Some(subnet) = cp.get("subnet").and_then(ref_id).map(str::to_owned) else {
            return Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                format!("Cannot parse the request: ipConfiguration {name} of {id} needs a subnet."),
            ));
        };
        require_ref(inner, &subnet, id)?;
        if let Some(pip) = cp.get("publicIPAddress").and_then(ref_id).map(str::to_owned) {
            require_ref(inner, &pip, id)?;
            let used_by: Vec<String> = inner
                .resources
                .values()
                .filter(|r| {
                    !eq(&r.id, id)
                        && r.body["type"].as_str().is_some_and(|t| eq(t, "Microsoft.Network/networkInterfaces"))
                })
                .filter(|r| {
                    r.body["properties"]
                        .to_string()
                        .to_ascii_lowercase()
                        .contains(&format!("\"{}\"", pip.to_ascii_lowercase()))
                })
                .map(|r| r.id.clone())
                .collect();
            if let Some(other) = used_by.first() {
                return Err(ArmError::new(
                    400,
                    "PublicIPAddressInUse",
                    format!(
                        "Resource {pip} is referenced by resource {other}/ipConfigurations/ipconfig1. It cannot be used by {id}."
                    ),
                ));
            }
        }
        if !cp.contains_key("privateIPAddress") {
            let subnet_prefix = inner
                .resources
                .get(&key(&subnet))
                .and_then(|s| s.body["properties"]["addressPrefix"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "10.0.0.0/24".into());
            let (octets, _) = parse_cidr(&subnet_prefix).unwrap_or(([10, 0, 0, 0], 24));
            let used = inner
                .resources
                .values()
                .filter(|r| {
                    !eq(&r.id, id)
                        && r.body["properties"]
                            .to_string()
                            .to_ascii_lowercase()
                            .contains(&format!("\"{}\"", subnet.to_ascii_lowercase()))
                })
                .count();
            // Azure keeps the first four addresses of a subnet for itself.
            let offset = u32::try_from(4 + used + i).unwrap_or(4);
            let ip = std::net::Ipv4Addr::from(u32::from_be_bytes(octets).saturating_add(offset));
            cp.insert("privateIPAddress".into(), json!(ip.to_string()));
            cp.insert("privateIPAllocationMethod".into(), json!("Dynamic"));
        }
        cp.insert("primary".into(), json!(i == 0));
        cp.insert("provisioningState".into(), json!("Succeeded"));
        out.push(json!({"name": name, "id": format!("{id}/ipConfigurations/{name}"), "type": "Microsoft.Network/networkInterfaces/ipConfigurations", "properties": cp}));
    }
    props.insert("ipConfigurations".into(), Value::Array(out));
    props.insert("resourceGuid".into(), json!(uuid()));
    if let Some(existing) = inner.resources.get(&key(id)).and_then(|r| r.body["properties"].get("virtualMachine")) {
        props.insert("virtualMachine".into(), existing.clone());
    }
    Ok(())
}

fn store_inline_children(inner: &mut Inner, parent_key: &str, parent_id: &str) {
    let Some(parent) = inner.resources.get(parent_key) else { return };
    let kind = parent.body["type"].as_str().unwrap_or_default().to_ascii_lowercase();
    let (field, child, child_type) = match kind.as_str() {
        "microsoft.network/virtualnetworks" => ("subnets", "subnets", "Microsoft.Network/virtualNetworks/subnets"),
        "microsoft.network/networksecuritygroups" => {
            ("securityRules", "securityRules", "Microsoft.Network/networkSecurityGroups/securityRules")
        }
        _ => return,
    };
    let Some(items) = parent.body["properties"].get(field).and_then(Value::as_array).cloned() else { return };
    let prefix = format!("{parent_key}/{}/", child.to_ascii_lowercase());
    // The inline list is the whole truth: children it no longer names go away (unless in use).
    let names: Vec<String> = items.iter().filter_map(|i| i["name"].as_str().map(str::to_ascii_lowercase)).collect();
    inner.resources.retain(|k, _| !k.starts_with(&prefix) || names.iter().any(|n| *k == format!("{prefix}{n}")));
    for item in items {
        let name = item["name"].as_str().unwrap_or_default().to_owned();
        let id = format!("{parent_id}/{child}/{name}");
        let mut props = item["properties"].as_object().cloned().unwrap_or_default();
        props.insert("provisioningState".into(), json!("Succeeded"));
        let body = json!({"name": name, "id": id, "type": child_type, "properties": props});
        inner.resources.insert(key(&id), Resource { id, body });
    }
    if let Some(p) = inner.resources.get_mut(parent_key) {
        p.body["properties"].as_object_mut().map(|m| m.remove(field));
    }
}

// --- Microsoft.Compute

const DISALLOWED_USERS: &[&str] = &[
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
const DISALLOWED_PASSWORDS: &[&str] = &[
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

fn invalid_parameter(target: &str, message: impl Into<String>) -> ArmError {
    ArmError::new(400, "InvalidParameter", message).target(target)
}

fn validate_admin(os: OsKind, user: &str, password: Option<&str>) -> Result<()> {
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

fn validate_computer_name(os: OsKind, name: &str) -> Result<()> {
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
#[allow(clippy::too_many_lines)]
fn prepare_vm(
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
    for nic in &nics {
        if let Some(r) = inner.resources.get_mut(&key(nic)) {
            r.body["properties"]["virtualMachine"] = json!({"id": id});
        }
    }
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
    inner.vms.insert(k, VmRuntime { power: "running", guest, extension_status: std::collections::BTreeMap::new() });
    Ok(())
}

fn vm_os(inner: &Inner, vm_key: &str) -> OsKind {
    inner.vms.get(vm_key).map_or(OsKind::Linux, |v| v.guest.os)
}

/// Validates an extension PUT, runs its handler on the guest, and says how the operation ends.
fn prepare_extension(inner: &mut Inner, id: &str, name: &str, props: &mut Map<String, Value>) -> Result<Result<()>> {
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
    let os = vm_os(inner, &vm_key);
    let Some(handler) = catalog::handler(&publisher, &kind).filter(|h| h.os == os) else {
        return Err(ArmError::new(
            404,
            "ArtifactNotFound",
            format!(
                "The VM extension with publisher '{publisher}' and type '{kind}' could not be found for OS type '{os}' in this region."
            ),
        ));
    };
    if !catalog::has_version(handler, &version) {
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
            && r.body["properties"]["publisher"].as_str().is_some_and(|p| eq(p, &publisher))
            && r.body["properties"]["type"].as_str().is_some_and(|t| eq(t, &kind))
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
    let settings = props.get("settings").cloned().unwrap_or_else(|| json!({}));
    // Protected settings reach the handler and are never stored in the resource or echoed.
    let protected = props.remove("protectedSettings").unwrap_or_else(|| json!({}));
    let tag = props.get("forceUpdateTag").and_then(Value::as_str).unwrap_or_default().to_owned();
    props.entry("autoUpgradeMinorVersion").or_insert(json!(false));
    let Some(vm) = inner.vms.get_mut(&vm_key) else { return Ok(Ok(())) };
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

fn vm_action(
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
    let duration = inner.durations.vm_action;
    let result = ctx.lro_fail.clone().map_or(Ok(()), Err);
    let op = inner.start_op(duration, Effect::Power { vm_key: k, to, back }, result);
    let url = op_url(ctx, sub, "Microsoft.Compute", &location, &op);
    Ok(lro_headers(Resp::empty(202), ctx, &url, duration, true))
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

/// A VM's instanceView: provisioning and power state, agent, extensions.
fn instance_view(inner: &Inner, k: &str) -> Value {
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
fn docker_status(guest: &crate::guest::Guest) -> Option<Value> {
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

fn images(req: &Req, sub: &str, loc: &str, tail: &[&str]) -> Result<Resp> {
    let base = format!("/Subscriptions/{sub}/Providers/Microsoft.Compute/Locations/{loc}/Publishers");
    let mut publishers: Vec<&str> =
        catalog::IMAGES.iter().map(|i| i.publisher).chain(catalog::HANDLERS.iter().map(|h| h.publisher)).collect();
    publishers.sort_unstable();
    publishers.dedup();
    let top = req.query("$top").and_then(|t| t.parse::<usize>().ok());
    let desc = req.query("$orderby").is_some_and(|o| o.to_ascii_lowercase().contains("desc"));
    let finish = |mut names: Vec<String>, prefix: String| {
        names.sort();
        names.dedup();
        if desc {
            names.reverse();
        }
        if let Some(n) = top {
            names.truncate(n);
        }
        Resp::json(200, catalog::name_list(&prefix, loc, names.into_iter()))
    };
    let unknown = |what: &str| ArmError::new(404, "NotFound", format!("Artifact: {what} was not found."));
    // Fixed words match case-insensitively; names keep the caller's casing.
    let lower: Vec<String> = tail.iter().map(|t| t.to_ascii_lowercase()).collect();
    let shape: Vec<&str> = lower.iter().map(String::as_str).collect();
    let name = |i: usize| tail.get(i).copied().unwrap_or_default();
    let (publisher, offer, sku) = (name(0), name(4), name(6));
    match shape.as_slice() {
        [] => Ok(finish(publishers.iter().map(|p| (*p).to_owned()).collect(), base)),
        [_, "artifacttypes", "vmimage", "offers"] => {
            let names: Vec<String> =
                catalog::IMAGES.iter().filter(|i| eq(i.publisher, publisher)).map(|i| i.offer.to_owned()).collect();
            if names.is_empty() {
                return Err(unknown(&format!("publisher {publisher}")));
            }
            Ok(finish(names, format!("{base}/{publisher}/ArtifactTypes/VMImage/Offers")))
        }
        [_, "artifacttypes", "vmimage", "offers", _, "skus"] => {
            let names: Vec<String> = catalog::IMAGES
                .iter()
                .filter(|i| eq(i.publisher, publisher) && eq(i.offer, offer))
                .map(|i| i.sku.to_owned())
                .collect();
            if names.is_empty() {
                return Err(unknown(&format!("offer {offer}")));
            }
            Ok(finish(names, format!("{base}/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus")))
        }
        [_, "artifacttypes", "vmimage", "offers", _, "skus", _, "versions"] => {
            let image = catalog::image(publisher, offer, sku).ok_or_else(|| unknown(&format!("sku {sku}")))?;
            let prefix = format!("{base}/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}/Versions");
            Ok(finish(image.versions.iter().map(|v| (*v).to_owned()).collect(), prefix))
        }
        [_, "artifacttypes", "vmimage", "offers", _, "skus", _, "versions", _] => {
            let version = name(8);
            let image = catalog::image(publisher, offer, sku).ok_or_else(|| unknown(&format!("sku {sku}")))?;
            if !image.versions.contains(&version) {
                return Err(unknown(&format!("version {version}")));
            }
            Ok(Resp::json(
                200,
                json!({"name": version, "location": loc, "id": format!("{base}/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}/Versions/{version}"),
                       "properties": {"osDiskImage": {"operatingSystem": image.os.to_string(), "sizeInGb": 30}, "hyperVGeneration": "V2", "architecture": "x64"}}),
            ))
        }
        [_, "artifacttypes", "vmextension", "types"] => {
            let names: Vec<String> =
                catalog::HANDLERS.iter().filter(|h| eq(h.publisher, publisher)).map(|h| h.kind.to_owned()).collect();
            if names.is_empty() {
                return Err(unknown(&format!("publisher {publisher}")));
            }
            Ok(finish(names, format!("{base}/{publisher}/ArtifactTypes/VMExtension/Types")))
        }
        [_, "artifacttypes", "vmextension", "types", _, "versions"] => {
            let kind = name(4);
            let handler = catalog::handler(publisher, kind).ok_or_else(|| unknown(&format!("type {kind}")))?;
            Ok(finish(
                handler.versions.iter().map(|v| (*v).to_owned()).collect(),
                format!("{base}/{publisher}/ArtifactTypes/VMExtension/Types/{kind}/Versions"),
            ))
        }
        _ => Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
    }
}
