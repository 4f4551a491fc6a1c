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

mod compute;
mod deployments;
mod images;
mod network;
mod operations;
mod render;
mod resources;

pub(crate) use compute::vm_public_ip;
use compute::{prepare_availability_set, prepare_extension, prepare_vm, vm_action};
pub(crate) use deployments::Run;
use images::images;
use network::{
    prepare_nic, prepare_nsg, prepare_public_ip, prepare_rule, prepare_subnet, prepare_vnet, store_inline_children,
};
use operations::{lro_headers, op_url, operation_result, operation_status, retry_after};
use render::instance_view;
pub(crate) use render::render;
use resources::{delete_resource, not_found, put_resource, ref_id, require_ref, validate_name};

/// Per-request context.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    pub principal: &'a ServicePrincipal,
    pub api_version: String,
    /// What a fault rule asked of this request's long-running operation.
    pub op: OpFault,
}

/// A fault rule's say over a request's long-running operation.
#[derive(Debug, Default, Clone)]
pub(crate) struct OpFault {
    /// Fail with this error.
    pub fail: Option<ArmError>,
    /// Take this long instead of the configured duration.
    pub time: Option<Duration>,
}

impl OpFault {
    /// The operation's duration: the fault's, else `configured`.
    pub(crate) fn duration(&self, configured: Duration) -> Duration {
        self.time.unwrap_or(configured)
    }
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
    ("Microsoft.Compute", &["availabilitySets"], true),
    ("Microsoft.Compute", &["virtualMachines"], true),
    ("Microsoft.Compute", &["virtualMachines", "extensions"], true),
    // Served by its own routes (`deployments.rs`); listed here for the provider's registration.
    ("Microsoft.Resources", &["deployments"], false),
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

/// Checks `api-version` for a namespace, or for a resource type (with the location the request
/// is for) against that type's own list: missing and unknown versions fail as ARM fails them.
fn check_api_version(req: &Req, ns: &str, type_name: Option<(&str, &str)>) -> Result<String> {
    let Some(version) = req.query("api-version") else {
        return Err(ArmError::new(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    let supported = match type_name {
        Some((t, _)) => catalog::type_api_versions(t).unwrap_or_else(|| api_versions(ns).to_vec()),
        None => api_versions(ns).to_vec(),
    };
    if supported.contains(&version) {
        return Ok(version.to_owned());
    }
    let list = supported.iter().rev().copied().collect::<Vec<_>>().join(", ");
    Err(match type_name {
        Some((t, location)) => ArmError::new(
            400,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location '{location}' and API version '{version}' for type '{}'. The supported api-versions are '{list}'. The supported locations are '{}'.",
                t.split_once('/').map_or(t, |(_, rest)| rest),
                catalog::location_names(", ")
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
pub(crate) fn handle(inner: &mut Inner, shared: &Shared, principal: &ServicePrincipal, req: &Req, op: OpFault) -> Resp {
    // ARM reads `providers/Microsoft.Compute//availabilitySets/x` (a generic resource client's
    // empty parent path, as az's existence checks send it) as the path without the empty part.
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let mut ctx = Ctx { shared, principal, api_version: String::new(), op };
    deployments::advance(inner, &ctx);
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
            let value: Vec<Value> = catalog::LOCATIONS.iter().map(|r| catalog::location_body(sub, r)).collect();
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
        [r, rg, d, name, o, tail @ ..] if eq(r, "resourcegroups") && eq(d, "deployments") && eq(o, "operations") => {
            let rg = existing_group(inner, sub, rg)?.0;
            deployments::operations(inner, ctx, req, sub, &rg, name, tail)
        }
        [r, rg, p, ns, rest @ ..] if eq(r, "resourcegroups") && eq(p, "providers") => {
            let (rg, location) = existing_group(inner, sub, rg)?;
            if eq(ns, "Microsoft.Resources") && rest.first().is_some_and(|t| eq(t, "deployments")) {
                return deployments::route(inner, ctx, req, sub, (&rg, &location), &rest[1..]);
            }
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
        [p, ns, l, loc, sizes]
            if eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(l, "locations")
                && eq(sizes, "vmSizes")
                && m == "GET" =>
        {
            vm_sizes(ctx, req, loc)
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
            ctx.api_version = check_api_version(req, ns, Some((&format!("{ns}/{}", spec.join("/")), "global")))?;
            let prefix = format!("/subscriptions/{sub}/").to_ascii_lowercase();
            let kind = format!("{ns}/{}", spec.join("/")).to_ascii_lowercase();
            let value: Vec<Value> = inner
                .resources
                .iter()
                .filter(|(k, r)| {
                    k.starts_with(&prefix) && r.body["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(&kind))
                })
                .map(|(k, _)| render::listed(inner, k, false))
                .collect();
            Ok(Resp::json(200, json!({"value": value})))
        }
        _ => Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
    }
}

/// A resource group that exists: its name as created, and its location.
fn existing_group(inner: &Inner, sub: &str, rg: &str) -> Result<(String, String)> {
    let rg_key = key(&format!("/subscriptions/{sub}/resourceGroups/{rg}"));
    let Some(group) = inner.resources.get(&rg_key) else {
        return Err(ArmError::new(404, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found.")));
    };
    let name = group.body["name"].as_str().unwrap_or(rg).to_owned();
    Ok((name, group.body["location"].as_str().unwrap_or("westeurope").to_owned()))
}

/// `…/providers/Microsoft.Compute/locations/{location}/vmSizes`: the sizes offered there.
fn vm_sizes(ctx: &mut Ctx<'_>, req: &Req, location: &str) -> Result<Resp> {
    ctx.api_version =
        check_api_version(req, "Microsoft.Compute", Some(("Microsoft.Compute/locations/vmSizes", location)))?;
    if !catalog::is_location(location) {
        return Err(ArmError::new(
            400,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location '{location}' and API version '{}' for type 'locations/vmSizes'. The supported locations are '{}'.",
                ctx.api_version,
                catalog::location_names(", ")
            ),
        ));
    }
    Ok(Resp::json(200, catalog::vm_sizes()))
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
            let versions = catalog::type_api_versions(&format!("{ns}/{}", path.join("/"))).unwrap_or_default();
            json!({"resourceType": path.join("/"), "locations": catalog::LOCATIONS.iter().map(|r| r.display).collect::<Vec<_>>(), "apiVersions": versions.iter().rev().collect::<Vec<_>>()})
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
                        catalog::location_names(",")
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
            // The group's resources and its deployments' records go with it.
            let keys: Vec<String> = inner
                .resources
                .keys()
                .chain(inner.deployments.keys())
                .filter(|r| r.starts_with(&prefix))
                .cloned()
                .chain([k.clone()])
                .collect();
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
    // Managed images are a type ARM knows; the local cloud holds none. az looks one up by the
    // name given to `--image` before it tries the name as an alias, and wants ARM's 404.
    if eq(ns_canon, "Microsoft.Compute") && types.len() == 1 && eq(types[0], "images") && m == "GET" {
        ctx.api_version = check_api_version(req, ns_canon, Some(("Microsoft.Compute/images", location)))?;
        return match names.first() {
            Some(name) => {
                let id = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/images/{name}");
                Err(not_found(ns_canon, &["images"], &names, rg, &id))
            }
            None => Ok(Resp::json(200, json!({"value": []}))),
        };
    }
    let Some(spec) = find_type(ns_canon, &types) else {
        return Err(invalid_type(ns_canon, &types.join("/")));
    };
    let type_name = format!("{ns_canon}/{}", spec.join("/"));
    ctx.api_version = check_api_version(req, ns_canon, Some((&type_name, location)))?;
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
    // A list takes `$expand=instanceView` as a GET does (extensions: az's `vm extension list`).
    let expand = req.query("$expand").is_some_and(|e| eq(e, "instanceView"));
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
            .map(|k| render::listed(inner, k, expand))
            .collect();
        return Ok(Resp::json(200, json!({"value": value})));
    }
    let k = key(&id);
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
