//! Template deployments (`Microsoft.Resources/deployments`): a template is checked and planned
//! when it is submitted, then its resources are created in dependency order — independent ones
//! together — each through the same route a direct PUT takes, as ARM does.

// A family of the parent module: it shares the parent's helpers, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

use serde::{Deserialize, Serialize};

use crate::template::{self, ExprError, Scope};

/// A deployment: what was submitted, its plan and how far it got. Kept (and journaled) after
/// it ends, for its GET and its operations list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Run {
    pub id: String,
    pub name: String,
    pub sub: String,
    pub rg: String,
    pub rg_location: String,
    pub tenant: String,
    /// The parameters' values, by name as declared.
    pub parameters: Map<String, Value>,
    pub template: Value,
    pub steps: Vec<Step>,
    pub state: RunState,
    pub correlation_id: String,
    /// The id of the operation its `Azure-AsyncOperation` URL names.
    pub operation: String,
    pub timestamp: String,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub outputs: Option<Value>,
    pub error: Option<Value>,
    pub tags: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RunState {
    Accepted,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl RunState {
    fn ended(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }
}

/// One resource of the template (one instance of a copy loop).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Step {
    /// Its index in the template's `resources`.
    pub resource: usize,
    pub copy_index: Option<i64>,
    pub copy_name: Option<String>,
    pub name: String,
    pub type_name: String,
    pub id: String,
    pub api_version: String,
    pub depends_on: Vec<usize>,
    pub state: StepState,
    pub op: Option<String>,
    pub operation_id: String,
    pub timestamp: Option<String>,
    pub status_code: Option<String>,
    pub error: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StepState {
    Waiting,
    Running,
    Succeeded,
    Failed,
}

fn unix_ms() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis())
        .unwrap_or(u64::MAX)
}

fn invalid_template(message: impl std::fmt::Display) -> ArmError {
    ArmError::new(400, "InvalidTemplate", format!("Deployment template validation failed: '{message}'."))
}

fn resource_invalid(name: &str, e: &ExprError) -> ArmError {
    invalid_template(format!("The template resource '{name}' is not valid: {e}"))
}

/// What expressions see while a deployment is planned (no `reference`) and while it runs.
struct RunScope<'a> {
    run: &'a Run,
    copy: Option<i64>,
    /// The resources as they stand, for `reference`; `None` while planning.
    inner: Option<&'a Inner>,
    /// Variables being evaluated, to refuse a cycle instead of recursing forever.
    evaluating: std::cell::RefCell<Vec<String>>,
}

impl<'a> RunScope<'a> {
    fn new(run: &'a Run, copy: Option<i64>, inner: Option<&'a Inner>) -> Self {
        Self { run, copy, inner, evaluating: std::cell::RefCell::new(Vec::new()) }
    }
}

fn lookup<'v>(map: &'v Value, name: &str) -> Option<&'v Value> {
    map.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

impl Scope for RunScope<'_> {
    fn parameter(&self, name: &str) -> std::result::Result<Value, ExprError> {
        self.run
            .parameters
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| ExprError(format!("The template parameter '{name}' is not found.")))
    }

    fn variable(&self, name: &str) -> std::result::Result<Value, ExprError> {
        let raw = lookup(&self.run.template["variables"], name)
            .ok_or_else(|| ExprError(format!("The template variable '{name}' is not found.")))?;
        if self.evaluating.borrow().iter().any(|v| v.eq_ignore_ascii_case(name)) {
            return Err(ExprError(format!("The template variable '{name}' refers to itself.")));
        }
        self.evaluating.borrow_mut().push(name.to_owned());
        let value = template::eval_value(raw, self);
        self.evaluating.borrow_mut().pop();
        value
    }

    fn copy_index(&self) -> std::result::Result<i64, ExprError> {
        self.copy.ok_or_else(|| {
            ExprError("The template function 'copyIndex' is not expected at this location. It can only be used in a resource with a copy loop.".into())
        })
    }

    fn reference(&self, target: &str, full: bool) -> std::result::Result<Value, ExprError> {
        let Some(inner) = self.inner else {
            return Err(ExprError(
                "The template function 'reference' is not expected at this location. Please see https://aka.ms/arm-template-expressions for usage details.".into(),
            ));
        };
        let id = match self.run.steps.iter().find(|s| s.name.eq_ignore_ascii_case(target)) {
            Some(step) => step.id.clone(),
            None => target.to_owned(),
        };
        let body = render(inner, &key(&id), false);
        if body.is_null() {
            return Err(ExprError(format!(
                "The Resource '{id}' under resource group '{}' was not found.",
                self.run.rg
            )));
        }
        Ok(if full { body } else { body["properties"].clone() })
    }

    fn subscription_id(&self) -> &str {
        &self.run.sub
    }

    fn tenant_id(&self) -> &str {
        &self.run.tenant
    }

    fn resource_group(&self) -> (&str, &str) {
        (&self.run.rg, &self.run.rg_location)
    }

    fn deployment_name(&self) -> &str {
        &self.run.name
    }
}

/// The parameter types ARM takes, with the names its answers give them.
fn parameter_type(declared: &str) -> Option<&'static str> {
    [
        ("string", "String"),
        ("securestring", "SecureString"),
        ("int", "Int"),
        ("bool", "Bool"),
        ("object", "Object"),
        ("secureobject", "SecureObject"),
        ("array", "Array"),
    ]
    .into_iter()
    .find(|(t, _)| t.eq_ignore_ascii_case(declared))
    .map(|(_, name)| name)
}

fn fits(kind: &str, v: &Value) -> bool {
    match kind {
        "String" | "SecureString" => v.is_string(),
        "Int" => v.is_i64() || v.is_u64(),
        "Bool" => v.is_boolean(),
        "Object" | "SecureObject" => v.is_object(),
        _ => v.is_array(),
    }
}

/// Reads the submitted deployment and plans it: every check ARM makes before it accepts a
/// deployment (the template's shape, parameters, expressions, names, dependencies).
fn plan(ctx: &Ctx<'_>, sub: &str, rg: &str, rg_location: &str, name: &str, body: &Value) -> Result<Run> {
    let props = &body["properties"];
    if props.get("templateLink").is_some_and(|l| !l.is_null()) {
        return Err(ArmError::new(
            400,
            "InvalidTemplateDeployment",
            "The local cloud deploys inline templates (`properties.template`) only; it does not fetch a templateLink.",
        ));
    }
    let Some(template) = props.get("template").filter(|t| t.is_object()) else {
        return Err(ArmError::new(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'properties.template' must be an object.",
        ));
    };
    let mode = props["mode"].as_str().unwrap_or("Incremental");
    if !mode.eq_ignore_ascii_case("Incremental") {
        return Err(ArmError::new(
            400,
            "InvalidDeploymentMode",
            format!(
                "The deployment mode '{mode}' is not supported by the local cloud; it deploys in 'Incremental' mode only."
            ),
        ));
    }
    let id = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/{name}");
    let mut run = Run {
        id,
        name: name.to_owned(),
        sub: sub.to_owned(),
        rg: rg.to_owned(),
        rg_location: rg_location.to_owned(),
        tenant: ctx.principal.tenant_id.clone(),
        parameters: Map::new(),
        template: template.clone(),
        steps: Vec::new(),
        state: RunState::Accepted,
        correlation_id: uuid(),
        operation: uuid(),
        timestamp: crate::now_rfc3339(),
        started_ms: unix_ms(),
        ended_ms: None,
        outputs: None,
        error: None,
        tags: body.get("tags").cloned(),
    };
    check_expressions(template)?;
    run.parameters = parameters(template, &props["parameters"], &run)?;
    run.steps = steps(&run)?;
    order(&run.steps)?;
    Ok(run)
}

/// Every expression parses and calls only functions the local cloud knows.
fn check_expressions(template: &Value) -> Result<()> {
    let mut found = Vec::new();
    for (section, value) in [("variables", &template["variables"]), ("outputs", &template["outputs"])] {
        template::expressions(value, section, &mut found);
    }
    let resources = template["resources"].as_array().map(Vec::as_slice).unwrap_or_default();
    for r in resources {
        let mut mine = Vec::new();
        template::expressions(r, "", &mut mine);
        let name = r["name"].as_str().unwrap_or_default();
        for (_, e) in mine {
            let e = e.map_err(|e| resource_invalid(name, &e))?;
            let mut unknown = Vec::new();
            template::unknown_functions(&e, &mut unknown);
            if let Some(f) = unknown.first() {
                return Err(resource_invalid(
                    name,
                    &ExprError(format!(
                        "The template function '{f}' is not valid. Please see https://aka.ms/arm-functions for usage details."
                    )),
                ));
            }
        }
    }
    for (path, e) in found {
        let e = e.map_err(|e| invalid_template(format!("The template '{path}' is not valid: {e}")))?;
        let mut unknown = Vec::new();
        template::unknown_functions(&e, &mut unknown);
        if let Some(f) = unknown.first() {
            return Err(invalid_template(format!(
                "The template '{path}' is not valid: The template function '{f}' is not valid. Please see https://aka.ms/arm-functions for usage details."
            )));
        }
    }
    Ok(())
}

/// The parameters' values: given, else defaults; each declared, typed and allowed.
fn parameters(template: &Value, given: &Value, run: &Run) -> Result<Map<String, Value>> {
    let declared = template["parameters"].as_object().cloned().unwrap_or_default();
    let given = given.as_object().cloned().unwrap_or_default();
    let unknown: Vec<&String> = given.keys().filter(|g| !declared.keys().any(|d| d.eq_ignore_ascii_case(g))).collect();
    if !unknown.is_empty() {
        return Err(invalid_template(format!(
            "The template parameters '{}' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are '{}'. Please see https://aka.ms/arm-pass-parameter-values for usage details.",
            unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            declared.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let mut values = Map::new();
    for (name, decl) in &declared {
        let kind = decl["type"].as_str().and_then(parameter_type).ok_or_else(|| {
            invalid_template(format!(
                "The template parameter '{name}' has type '{}'; the accepted types are 'string', 'securestring', 'int', 'bool', 'object', 'secureObject' and 'array'.",
                decl["type"].as_str().unwrap_or_default()
            ))
        })?;
        let provided = given.iter().find(|(g, _)| g.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        if provided.is_some_and(|p| p.get("reference").is_some()) {
            return Err(ArmError::new(
                400,
                "InvalidTemplateDeployment",
                format!("The parameter '{name}' is a Key Vault reference; the local cloud has no Key Vault."),
            ));
        }
        let value = match provided.and_then(|p| p.get("value")) {
            Some(v) => v.clone(),
            None => match decl.get("defaultValue") {
                // A default may be an expression over other parameters, variables or functions.
                Some(d) => {
                    let partial = Run { parameters: values.clone(), ..run.clone() };
                    template::eval_value(d, &RunScope::new(&partial, None, None))
                        .map_err(|e| invalid_template(format!("The template parameter '{name}' is not valid: {e}")))?
                }
                None => {
                    return Err(invalid_template(format!(
                        "The value for the template parameter '{name}' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details."
                    )));
                }
            },
        };
        if !fits(kind, &value) {
            return Err(invalid_template(format!(
                "The provided value for the template parameter '{name}' is not valid. Expected a value of type '{kind}', but received a value of type '{}'.",
                match value {
                    Value::String(_) => "String",
                    Value::Number(_) => "Integer",
                    Value::Bool(_) => "Boolean",
                    Value::Array(_) => "Array",
                    Value::Object(_) => "Object",
                    Value::Null => "Null",
                }
            )));
        }
        if let Some(allowed) = decl["allowedValues"].as_array()
            && !allowed.contains(&value)
        {
            // A secure value is never repeated back, even in an error.
            let shown = if kind.starts_with("Secure") { "[redacted]".to_owned() } else { value.to_string() };
            return Err(invalid_template(format!(
                "The provided value '{shown}' for the template parameter '{name}' is not valid. The parameter value is not part of the allowed value(s): '{}'.",
                allowed.iter().map(Value::to_string).collect::<Vec<_>>().join(",")
            )));
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

/// The template's resources, copy loops unrolled, each with its name, type and id evaluated.
fn steps(run: &Run) -> Result<Vec<Step>> {
    let resources = run.template["resources"].as_array().cloned().unwrap_or_default();
    let mut steps = Vec::new();
    for (index, r) in resources.iter().enumerate() {
        let raw_name = r["name"].as_str().unwrap_or_default();
        if r.get("resources").is_some_and(|c| c.as_array().is_some_and(|c| !c.is_empty())) {
            return Err(invalid_template(format!(
                "The template resource '{raw_name}' has child resources; the local cloud takes them as top-level resources with a full type and name ('type': 'Namespace/parent/child', 'name': 'parent/child')."
            )));
        }
        let scope = RunScope::new(run, None, None);
        let (count, copy_name) = match r.get("copy") {
            Some(copy) => {
                let count = template::eval_value(&copy["count"], &scope)
                    .map_err(|e| resource_invalid(raw_name, &e))?
                    .as_i64()
                    .filter(|c| (0..=800).contains(c))
                    .ok_or_else(|| {
                        invalid_template(format!(
                            "The template resource '{raw_name}' has a copy count that is not an integer from 0 to 800."
                        ))
                    })?;
                (count, copy["name"].as_str().map(str::to_owned))
            }
            None => (1, None),
        };
        for i in 0..count {
            let copy = copy_name.as_ref().map(|_| i);
            let scope = RunScope::new(run, copy, None);
            let eval_text = |field: &str| -> Result<String> {
                let v = template::eval_value(&r[field], &scope).map_err(|e| resource_invalid(raw_name, &e))?;
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    invalid_template(format!(
                        "The template resource '{raw_name}' is not valid: its '{field}' must be a string."
                    ))
                })
            };
            if let Some(condition) = r.get("condition") {
                let keep = template::eval_value(condition, &scope).map_err(|e| resource_invalid(raw_name, &e))?;
                if keep == json!(false) {
                    continue;
                }
            }
            let name = eval_text("name")?;
            let type_name = eval_text("type")?;
            let api_version = eval_text("apiVersion").map_err(|_| {
                invalid_template(format!(
                    "The template resource '{name}' of type '{type_name}' has no 'apiVersion'. Please see https://aka.ms/arm-syntax-resources for usage details."
                ))
            })?;
            let id = resource_id(run, &name, &type_name)?;
            if steps.iter().any(|s: &Step| s.id.eq_ignore_ascii_case(&id)) {
                return Err(invalid_template(format!(
                    "The resource '{id}' is defined multiple times in a template. Please see https://aka.ms/arm-template/#resources for usage details."
                )));
            }
            steps.push(Step {
                resource: index,
                copy_index: copy,
                copy_name: copy_name.clone(),
                name,
                type_name,
                id,
                api_version,
                depends_on: Vec::new(),
                state: StepState::Waiting,
                op: None,
                operation_id: uuid().replace('-', "").to_ascii_uppercase()[..16].to_owned(),
                timestamp: None,
                status_code: None,
                error: None,
            });
        }
    }
    dependencies(run, &resources, &mut steps)?;
    Ok(steps)
}

/// Each step's dependencies: `dependsOn` by name, type/name, id or copy loop, plus the
/// resources a `reference` to one of the template's own names needs.
fn dependencies(run: &Run, resources: &[Value], steps: &mut [Step]) -> Result<()> {
    for i in 0..steps.len() {
        let r = &resources[steps[i].resource];
        let scope = RunScope::new(run, steps[i].copy_index, None);
        let mut targets = Vec::new();
        for d in r["dependsOn"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let d = template::eval_value(d, &scope).map_err(|e| resource_invalid(&steps[i].name, &e))?;
            targets.push((d.as_str().unwrap_or_default().to_owned(), true));
        }
        let mut found = Vec::new();
        template::expressions(r, "", &mut found);
        for e in found.into_iter().filter_map(|(_, e)| e.ok()) {
            referenced(&e, &scope, &mut targets);
        }
        let mut deps = Vec::new();
        for (target, explicit) in targets {
            let matched: Vec<usize> = (0..steps.len()).filter(|j| *j != i && names_step(&steps[*j], &target)).collect();
            if matched.is_empty() && explicit {
                return Err(invalid_template(format!(
                    "The resource '{target}' is not defined in the template. Please see https://aka.ms/arm-syntax for usage details."
                )));
            }
            deps.extend(matched);
        }
        deps.sort_unstable();
        deps.dedup();
        steps[i].depends_on = deps;
    }
    Ok(())
}

/// The targets of `reference('…')` calls whose first argument is known before the run.
fn referenced(e: &template::Expr, scope: &RunScope<'_>, out: &mut Vec<(String, bool)>) {
    use template::Expr;
    match e {
        Expr::Call(name, args) => {
            if name.eq_ignore_ascii_case("reference")
                && let Some(first) = args.first()
                && let Ok(Value::String(target)) = template::eval(first, scope)
            {
                out.push((target, false));
            }
            for a in args {
                referenced(a, scope, out);
            }
        }
        Expr::Member(e, _) => referenced(e, scope, out),
        Expr::Index(e, i) => {
            referenced(e, scope, out);
            referenced(i, scope, out);
        }
        Expr::Str(_) | Expr::Int(_) => {}
    }
}

/// Whether a `dependsOn` entry names a step: its id, `type/name`, name or copy loop.
fn names_step(step: &Step, target: &str) -> bool {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if target.starts_with('/') {
        return eq(&step.id, target);
    }
    eq(&step.name, target)
        || step.copy_name.as_deref().is_some_and(|c| eq(c, target))
        || eq(&type_and_name(&step.type_name, &step.name), target)
}

/// `Microsoft.Network/virtualNetworks/v1VNET/subnets/s1` for type
/// `Microsoft.Network/virtualNetworks/subnets` and name `v1VNET/s1`, as `dependsOn` writes it.
fn type_and_name(type_name: &str, name: &str) -> String {
    let mut parts = type_name.split('/');
    let ns = parts.next().unwrap_or_default();
    parts.zip(name.split('/')).fold(ns.to_owned(), |mut out, (t, n)| {
        out.push('/');
        out.push_str(t);
        out.push('/');
        out.push_str(n);
        out
    })
}

fn resource_id(run: &Run, name: &str, type_name: &str) -> Result<String> {
    let types = type_name.split('/').count().saturating_sub(1);
    if types == 0 || name.split('/').count() != types || name.split('/').any(str::is_empty) {
        return Err(invalid_template(format!(
            "The template resource '{name}' for type '{type_name}' has incorrect segment lengths. A nested resource type must have identical number of segments as its resource name. A root resource type must have segment length one greater than its resource name. Please see https://aka.ms/arm-template/#resources for usage details."
        )));
    }
    Ok(format!("/subscriptions/{}/resourceGroups/{}/providers/{}", run.sub, run.rg, type_and_name(type_name, name)))
}

/// Refuses a dependency cycle, naming a resource on it.
fn order(steps: &[Step]) -> Result<()> {
    // Kahn's algorithm: whatever cannot be ordered sits on (or behind) a cycle.
    let mut remaining: Vec<usize> = steps.iter().map(|s| s.depends_on.len()).collect();
    let mut ready: Vec<usize> = (0..steps.len()).filter(|i| remaining[*i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for (j, s) in steps.iter().enumerate() {
            if s.depends_on.contains(&i) {
                remaining[j] -= 1;
                if remaining[j] == 0 {
                    ready.push(j);
                }
            }
        }
    }
    if done == steps.len() {
        return Ok(());
    }
    let stuck: Vec<&str> = (0..steps.len()).filter(|i| remaining[*i] > 0).map(|i| steps[i].name.as_str()).collect();
    Err(invalid_template(format!(
        "Circular dependency detected on resource: '{}'. Please see https://aka.ms/arm-template/#resources for usage details.",
        stuck.join("', '")
    )))
}

// ---------------------------------------------------------------------------------------------
// Running

/// Moves every unfinished deployment on as far as it can go now.
pub(super) fn advance(inner: &mut Inner, ctx: &Ctx<'_>) {
    let running: Vec<String> =
        inner.deployments.iter().filter(|(_, r)| !r.state.ended()).map(|(k, _)| k.clone()).collect();
    for k in running {
        let Some(mut run) = inner.deployments.get(&k).cloned() else { continue };
        let before = serde_json::to_value(&run).unwrap_or_default();
        // Bounded: each round starts or finishes at least one step, or the loop ends.
        for _ in 0..=run.steps.len() * 2 + 1 {
            inner.settle(Instant::now());
            if !step_once(inner, ctx, &mut run) {
                break;
            }
        }
        finish(inner, &mut run);
        if serde_json::to_value(&run).unwrap_or_default() != before {
            inner.deployments.insert(k, run);
        }
    }
}

/// Finishes running steps whose operation ended and starts the steps now free to start;
/// whether anything changed.
fn step_once(inner: &mut Inner, ctx: &Ctx<'_>, run: &mut Run) -> bool {
    let mut changed = false;
    if run.state == RunState::Accepted {
        run.state = RunState::Running;
        changed = true;
    }
    for step in &mut run.steps {
        if step.state != StepState::Running {
            continue;
        }
        let outcome = match step.op.as_deref().and_then(|op| inner.ops.get(op)) {
            Some(op) if !op.settled => continue,
            Some(op) => op.result.clone(),
            // An operation forgotten (kept an hour): the resource's own state says.
            None => match inner.resources.get(&key(&step.id)) {
                Some(r) if r.body["properties"]["provisioningState"] == "Failed" => Err(ArmError::new(
                    409,
                    "ResourceDeploymentFailure",
                    "The resource operation completed with terminal provisioning state 'Failed'.",
                )),
                _ => Ok(()),
            },
        };
        match outcome {
            Ok(()) => step.state = StepState::Succeeded,
            Err(e) => {
                step.state = StepState::Failed;
                step.status_code = Some("Conflict".into());
                step.error = Some(e.body());
            }
        }
        changed = true;
    }
    if run.state == RunState::Canceled {
        return changed;
    }
    let startable: Vec<usize> = (0..run.steps.len())
        .filter(|i| {
            run.steps[*i].state == StepState::Waiting
                && run.steps[*i].depends_on.iter().all(|d| run.steps[*d].state == StepState::Succeeded)
        })
        .collect();
    for i in startable {
        start(inner, ctx, run, i);
        changed = true;
    }
    changed
}

/// Sends one step's resource to its route, as a PUT of the evaluated resource.
fn start(inner: &mut Inner, ctx: &Ctx<'_>, run: &mut Run, i: usize) {
    let resource = run.template["resources"][run.steps[i].resource].clone();
    let evaluated = {
        let scope = RunScope::new(run, run.steps[i].copy_index, Some(inner));
        let mut body = Map::new();
        let mut result = Ok(());
        for field in ["location", "properties", "tags", "sku", "zones", "plan", "identity", "kind"] {
            if let Some(v) = resource.get(field) {
                match template::eval_value(v, &scope) {
                    Ok(v) => {
                        body.insert(field.to_owned(), v);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        result.map(|()| Value::Object(body))
    };
    let step = &mut run.steps[i];
    step.timestamp = Some(crate::now_rfc3339());
    let body = match evaluated {
        Ok(body) => body,
        Err(e) => {
            step.state = StepState::Failed;
            step.status_code = Some("BadRequest".into());
            step.error = Some(
                json!({"code": "InvalidTemplate", "message": format!("Unable to process template language expressions for resource '{}': {e}", step.id)}),
            );
            return;
        }
    };
    let path = step.id.clone();
    let mut query = std::collections::BTreeMap::new();
    query.insert("api-version".to_owned(), step.api_version.clone());
    let req = Req {
        method: "PUT".into(),
        path: path.clone(),
        query,
        headers: std::collections::BTreeMap::new(),
        body: serde_json::to_vec(&body).unwrap_or_default(),
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{rest…}
    let (ns, rest) = (segments[5], &segments[6..]);
    let mut step_ctx =
        Ctx { shared: ctx.shared, principal: ctx.principal, api_version: String::new(), op: OpFault::default() };
    match provider_route(inner, &mut step_ctx, &req, &run.sub, &run.rg, &run.rg_location, ns, rest) {
        Ok(answer) => {
            step.status_code = Some(if answer.status == 201 { "Created" } else { "OK" }.into());
            let op = answer
                .headers
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case("Azure-AsyncOperation"))
                .and_then(|(_, url)| url.split('?').next()?.rsplit('/').next().map(str::to_owned));
            match op {
                Some(op) => {
                    step.op = Some(op);
                    step.state = StepState::Running;
                }
                None => step.state = StepState::Succeeded,
            }
        }
        Err(e) => {
            step.state = StepState::Failed;
            step.status_code = Some(status_text(e.status).into());
            step.error = Some(e.body());
        }
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        429 => "TooManyRequests",
        _ => "InternalServerError",
    }
}

/// Ends a deployment once nothing runs and nothing more can start; outputs on success.
fn finish(inner: &Inner, run: &mut Run) {
    if run.state.ended() || run.steps.iter().any(|s| s.state == StepState::Running) {
        return;
    }
    let failed: Vec<&Step> = run.steps.iter().filter(|s| s.state == StepState::Failed).collect();
    let startable = run.steps.iter().any(|s| {
        s.state == StepState::Waiting && s.depends_on.iter().all(|d| run.steps[*d].state == StepState::Succeeded)
    });
    if failed.is_empty() && startable {
        return;
    }
    run.ended_ms = Some(unix_ms());
    if !failed.is_empty() {
        run.state = RunState::Failed;
        run.error = Some(deployment_failed(&failed.iter().filter_map(|s| s.error.clone()).collect::<Vec<_>>()));
        forget_secure_parameters(run);
        return;
    }
    let scope = RunScope::new(run, None, Some(inner));
    let mut outputs = Map::new();
    let mut error = None;
    for (name, output) in run.template["outputs"].as_object().cloned().unwrap_or_default() {
        let kind = output["type"].as_str().and_then(parameter_type).unwrap_or("String");
        match template::eval_value(&output["value"], &scope) {
            // A secure output is never shown, as in ARM.
            Ok(_) if kind.starts_with("Secure") => {
                outputs.insert(name, json!({"type": kind}));
            }
            Ok(value) => {
                outputs.insert(name, json!({"type": kind, "value": value}));
            }
            Err(e) => {
                error = Some(
                    json!({"code": "DeploymentOutputEvaluationFailed", "message": format!("Unable to evaluate template outputs: '{name}'. Please see error details and deployment operations. Please see https://aka.ms/arm-common-errors for usage details."), "details": [{"code": "DeploymentOutputEvaluationFailed", "target": name, "message": e.0}]}),
                );
                break;
            }
        }
    }
    if let Some(error) = error {
        run.state = RunState::Failed;
        run.error = Some(error);
    } else {
        run.state = RunState::Succeeded;
        run.outputs = Some(Value::Object(outputs));
    }
    forget_secure_parameters(run);
}

/// Once a deployment has ended nothing needs its secure parameters: they leave the state (and
/// its journal) rather than stay on disk.
fn forget_secure_parameters(run: &mut Run) {
    let declared = run.template["parameters"].clone();
    for (name, value) in &mut run.parameters {
        let kind = lookup(&declared, name).and_then(|d| d["type"].as_str()).and_then(parameter_type);
        if kind.is_some_and(|k| k.starts_with("Secure")) {
            *value = Value::Null;
        }
    }
}

fn deployment_failed(details: &[Value]) -> Value {
    json!({
        "code": "DeploymentFailed",
        "message": "At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.",
        "details": details,
    })
}

// ---------------------------------------------------------------------------------------------
// What ARM answers

fn duration(run: &Run) -> String {
    let ms = run.ended_ms.unwrap_or_else(unix_ms).saturating_sub(run.started_ms);
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// The deployment as ARM shows it (`DeploymentExtended`): secure parameters without values.
fn body(run: &Run) -> Value {
    let declared = run.template["parameters"].as_object().cloned().unwrap_or_default();
    let parameters: Map<String, Value> = run
        .parameters
        .iter()
        .map(|(name, value)| {
            let kind = declared.get(name).and_then(|d| d["type"].as_str()).and_then(parameter_type).unwrap_or("String");
            let shown =
                if kind.starts_with("Secure") { json!({"type": kind}) } else { json!({"type": kind, "value": value}) };
            (name.clone(), shown)
        })
        .collect();
    let mut providers: Vec<(String, String)> = run
        .steps
        .iter()
        .map(|s| {
            let (ns, t) = s.type_name.split_once('/').unwrap_or((&s.type_name, ""));
            (ns.to_owned(), t.to_owned())
        })
        .collect();
    providers.sort();
    providers.dedup();
    let providers: Vec<Value> = providers
        .iter()
        .map(|(ns, t)| json!({"namespace": ns, "resourceTypes": [{"resourceType": t, "locations": [run.rg_location]}]}))
        .collect();
    let dependencies: Vec<Value> = run
        .steps
        .iter()
        .filter(|s| !s.depends_on.is_empty())
        .map(|s| {
            json!({
                "dependsOn": s.depends_on.iter().map(|d| {
                    let d = &run.steps[*d];
                    json!({"id": d.id, "resourceType": d.type_name, "resourceName": d.name})
                }).collect::<Vec<_>>(),
                "id": s.id, "resourceType": s.type_name, "resourceName": s.name,
            })
        })
        .collect();
    let mut props = json!({
        "templateHash": template_hash(&run.template),
        "parameters": parameters,
        "mode": "Incremental",
        "provisioningState": format!("{:?}", run.state),
        "timestamp": run.timestamp,
        "duration": duration(run),
        "correlationId": run.correlation_id,
        "providers": providers,
        "dependencies": dependencies,
    });
    if run.state == RunState::Succeeded {
        props["outputs"] = run.outputs.clone().unwrap_or_else(|| json!({}));
        props["outputResources"] = Value::Array(run.steps.iter().map(|s| json!({"id": s.id})).collect());
    }
    if let Some(error) = &run.error {
        props["error"] = error.clone();
    }
    let mut out =
        json!({"id": run.id, "name": run.name, "type": "Microsoft.Resources/deployments", "properties": props});
    if let Some(tags) = &run.tags {
        out["tags"] = tags.clone();
    }
    out
}

/// A stable number for a template, as ARM's `templateHash` is.
fn template_hash(template: &Value) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(template.to_string().as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()).to_string()
}

fn operation_body(run: &Run, step: &Step) -> Value {
    let state = match step.state {
        StepState::Waiting => "Waiting",
        StepState::Running => "Running",
        StepState::Succeeded => "Succeeded",
        StepState::Failed => "Failed",
    };
    let mut props = json!({
        "provisioningOperation": "Create",
        "provisioningState": state,
        "timestamp": step.timestamp.clone().unwrap_or_else(|| run.timestamp.clone()),
        "duration": duration(run),
        "serviceRequestId": step.op,
        "targetResource": {"id": step.id, "resourceType": step.type_name, "resourceName": step.name},
    });
    if let Some(code) = &step.status_code {
        props["statusCode"] = json!(code);
    }
    if let Some(error) = &step.error {
        props["statusMessage"] = json!({"status": "Failed", "error": error});
    } else if step.state == StepState::Succeeded {
        props["statusMessage"] = json!({"status": "OK"});
    }
    json!({
        "id": format!("{}/operations/{}", run.id.replace("/providers/Microsoft.Resources", ""), step.operation_id),
        "operationId": step.operation_id,
        "properties": props,
    })
}

// ---------------------------------------------------------------------------------------------
// Routes

fn deployment_not_found(name: &str) -> ArmError {
    ArmError::new(404, "DeploymentNotFound", format!("Deployment '{name}' could not be found."))
}

fn deployment_key(sub: &str, rg: &str, name: &str) -> String {
    key(&format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/{name}"))
}

/// `…/resourcegroups/{rg}/providers/Microsoft.Resources/deployments[/{name}[/{action}[/{id}]]]`.
pub(super) fn route(
    inner: &mut Inner,
    ctx: &mut Ctx<'_>,
    req: &Req,
    sub: &str,
    (rg, rg_location): (&str, &str),
    rest: &[&str],
) -> Result<Resp> {
    ctx.api_version =
        check_api_version(req, "Microsoft.Resources", Some(("Microsoft.Resources/deployments", rg_location)))?;
    let m = req.method.as_str();
    match rest {
        [] | [""] if m == "GET" => {
            let prefix = format!("{}/", deployment_key(sub, rg, "").trim_end_matches('/'));
            let value: Vec<Value> =
                inner.deployments.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(_, r)| body(r)).collect();
            Ok(Resp::json(200, json!({"value": value})))
        }
        [name] => {
            let k = deployment_key(sub, rg, name);
            match m {
                "GET" => inner
                    .deployments
                    .get(&k)
                    .map(|r| Resp::json(200, body(r)))
                    .ok_or_else(|| deployment_not_found(name)),
                "HEAD" => Ok(Resp::empty(if inner.deployments.contains_key(&k) { 204 } else { 404 })),
                "PUT" => put(inner, ctx, req, sub, (rg, rg_location), name),
                "DELETE" => delete(inner, ctx, sub, &k, name),
                m => Err(method_not_allowed(m)),
            }
        }
        [name, action] if m == "POST" => {
            let action = action.to_ascii_lowercase();
            match action.as_str() {
                "validate" => {
                    check_deployment_name(name)?;
                    let run = plan(ctx, sub, rg, rg_location, name, &req.json()?)?;
                    let mut out = body(&run);
                    out["properties"]["provisioningState"] = json!("Succeeded");
                    out["properties"]["validatedResources"] =
                        Value::Array(run.steps.iter().map(|s| json!({"id": s.id})).collect());
                    Ok(Resp::json(200, out))
                }
                "whatif" => {
                    check_deployment_name(name)?;
                    let run = plan(ctx, sub, rg, rg_location, name, &req.json()?)?;
                    Ok(Resp::json(200, what_if(inner, &run)))
                }
                "cancel" => {
                    let k = deployment_key(sub, rg, name);
                    let run = inner.deployments.get(&k).cloned().ok_or_else(|| deployment_not_found(name))?;
                    if run.state.ended() {
                        return Err(ArmError::new(
                            409,
                            "DeploymentCannotBeCancelled",
                            format!(
                                "The deployment '{name}' cannot be cancelled because it is in '{:?}' state.",
                                run.state
                            ),
                        ));
                    }
                    let mut run = run;
                    run.state = RunState::Canceled;
                    run.ended_ms = Some(unix_ms());
                    forget_secure_parameters(&mut run);
                    inner.deployments.insert(k, run);
                    Ok(Resp::empty(204))
                }
                _ => Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
            }
        }
        [name, statuses, id] if m == "GET" && eq(statuses, "operationStatuses") => {
            let run =
                inner.deployments.get(&deployment_key(sub, rg, name)).ok_or_else(|| deployment_not_found(name))?;
            if !eq(&run.operation, id) {
                return Err(ArmError::new(404, "NotFound", format!("The operation '{id}' was not found.")));
            }
            let mut status = json!({"status": format!("{:?}", run.state)});
            if let Some(error) = &run.error {
                status["error"] = error.clone();
            }
            let answer = Resp::json(200, status);
            Ok(if run.state.ended() { answer } else { answer.header("Retry-After", "1") })
        }
        _ => Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
    }
}

/// `…/resourcegroups/{rg}/deployments/{name}/operations[/{id}]`.
pub(super) fn operations(
    inner: &Inner,
    ctx: &mut Ctx<'_>,
    req: &Req,
    sub: &str,
    rg: &str,
    name: &str,
    tail: &[&str],
) -> Result<Resp> {
    ctx.api_version = check_api_version(req, "Microsoft.Resources", None)?;
    let run = inner.deployments.get(&deployment_key(sub, rg, name)).ok_or_else(|| deployment_not_found(name))?;
    // Operations appear once the resource's work began, as in ARM.
    let started = run.steps.iter().filter(|s| s.state != StepState::Waiting);
    match tail {
        [] => Ok(Resp::json(200, json!({"value": started.map(|s| operation_body(run, s)).collect::<Vec<_>>()}))),
        [id] => started
            .into_iter()
            .find(|s| eq(&s.operation_id, id))
            .map(|s| Resp::json(200, operation_body(run, s)))
            .ok_or_else(|| {
                ArmError::new(
                    404,
                    "DeploymentOperationNotFound",
                    format!("Deployment operation '{id}' could not be found."),
                )
            }),
        _ => Err(ArmError::new(404, "NotFound", format!("The requested path '{}' was not found.", req.path))),
    }
}

/// Deployment names: 1–64 of letters, digits, `-`, `_`, `.`, `(`, `)`.
fn check_deployment_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'));
    if ok {
        Ok(())
    } else {
        Err(ArmError::new(
            400,
            "InvalidDeploymentName",
            format!(
                "The deployment name '{name}' is invalid. It can contain up to 64 letters, digits, '-', '_', '.', '(' and ')'."
            ),
        ))
    }
}

fn put(
    inner: &mut Inner,
    ctx: &Ctx<'_>,
    req: &Req,
    sub: &str,
    (rg, rg_location): (&str, &str),
    name: &str,
) -> Result<Resp> {
    check_deployment_name(name)?;
    let k = deployment_key(sub, rg, name);
    if let Some(active) = inner.deployments.get(&k).filter(|r| !r.state.ended()) {
        return Err(ArmError::new(
            409,
            "DeploymentActive",
            format!(
                "Unable to edit or replace deployment '{name}': previous deployment from '{}' is still active. Please see https://aka.ms/arm-deploy for usage details.",
                active.timestamp
            ),
        ));
    }
    let existed = inner.deployments.contains_key(&k);
    let run = plan(ctx, sub, rg, rg_location, name, &req.json()?)?;
    let status_url = format!(
        "{}{}/operationStatuses/{}?api-version={}",
        ctx.shared.base_url, run.id, run.operation, ctx.api_version
    );
    let out = body(&run);
    inner.deployments.insert(k, run);
    Ok(Resp::json(if existed { 200 } else { 201 }, out)
        .header("Azure-AsyncOperation", status_url)
        .header("Retry-After", "1"))
}

fn delete(inner: &mut Inner, ctx: &Ctx<'_>, sub: &str, k: &str, name: &str) -> Result<Resp> {
    let Some(run) = inner.deployments.get(k) else { return Ok(Resp::empty(204)) };
    if !run.state.ended() {
        return Err(ArmError::new(
            409,
            "DeploymentActive",
            format!(
                "The deployment '{name}' cannot be deleted while it is running; cancel it first. Please see https://aka.ms/arm-deploy for usage details."
            ),
        ));
    }
    let op = inner.start_op(Duration::ZERO, Effect::Delete { keys: vec![k.to_owned()] }, Ok(()));
    let url =
        format!("{}/subscriptions/{sub}/operationresults/{op}?api-version={}", ctx.shared.base_url, ctx.api_version);
    Ok(Resp::empty(202).header("Location", url).header("Retry-After", "0"))
}

/// What a deployment would change (`whatIf`): each resource created, or modified where its
/// submitted properties differ from what is there.
fn what_if(inner: &Inner, run: &Run) -> Value {
    let changes: Vec<Value> = run
        .steps
        .iter()
        .map(|s| match inner.resources.get(&key(&s.id)) {
            None => json!({"resourceId": s.id, "changeType": "Create"}),
            Some(r) => {
                let submitted = &run.template["resources"][s.resource]["properties"];
                let evaluated = template::eval_value(submitted, &RunScope::new(run, s.copy_index, Some(inner)));
                let same = evaluated.is_ok_and(|p| {
                    p.as_object().is_none_or(|p| p.iter().all(|(k, v)| r.body["properties"].get(k) == Some(v)))
                });
                json!({"resourceId": s.id, "changeType": if same { "NoChange" } else { "Modify" }, "before": r.body})
            }
        })
        .collect();
    json!({"status": "Succeeded", "changes": changes})
}
