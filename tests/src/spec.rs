//! Microsoft's published OpenAPI (Swagger 2.0) specifications as the schema oracle: the
//! operation a request is for (method, path template, api-version), and whether a request or
//! response body keeps its schema — types, required properties, enums (case-insensitive where
//! `x-ms-enum` says `modelAsString`), `readOnly` properties never sent, `x-nullable` for what is
//! sent, `allOf`,
//! properties the specification does not have — with `$ref`s resolved by relative path across
//! files, as in Microsoft's repository. A `$ref` into a file that is not here (the specs' README
//! lists them) is not followed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One operation of a specification.
#[derive(Debug)]
pub struct Operation {
    pub method: String,
    /// The path template, e.g. `/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}`.
    pub template: String,
    pub api_version: String,
    pub id: String,
    file: PathBuf,
    /// The body parameter's name (what an example's `parameters` calls it) and schema.
    pub body_name: Option<String>,
    body: Option<Value>,
    /// Schemas by status (`200`, `201`, `default`).
    responses: BTreeMap<String, Value>,
    /// `x-ms-examples`: name → the example file.
    pub examples: Vec<PathBuf>,
}

/// A body that breaks its schema: where (a JSON pointer) and which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub pointer: String,
    pub rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", if self.pointer.is_empty() { "/" } else { &self.pointer }, self.rule)
    }
}

/// Whether a body is sent (readOnly properties must not be there) or received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// The specifications below a directory.
#[derive(Debug)]
pub struct Specs {
    files: HashMap<PathBuf, Value>,
    pub operations: Vec<Operation>,
}

impl Specs {
    /// Every specification file below `root` (examples excluded).
    pub fn load(root: &Path) -> Self {
        let mut files = HashMap::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if path.file_name().is_some_and(|n| n != "examples") {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "json") {
                    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    let value: Value =
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    files.insert(path.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", path.display())), value);
                }
            }
        }
        let mut operations = Vec::new();
        for (file, spec) in &files {
            let version = spec["info"]["version"].as_str().unwrap_or_default().to_owned();
            let Some(paths) = spec["paths"].as_object() else { continue };
            for (template, ops) in paths {
                for (method, op) in ops.as_object().into_iter().flatten() {
                    let Some(id) = op["operationId"].as_str() else { continue };
                    let body_param = op["parameters"].as_array().into_iter().flatten().find(|p| p["in"] == "body");
                    let body = body_param.map(|p| p["schema"].clone());
                    let body_name = body_param.and_then(|p| p["name"].as_str()).map(str::to_owned);
                    let responses = op["responses"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(status, r)| Some((status.clone(), r.get("schema")?.clone())))
                        .collect();
                    let examples = op["x-ms-examples"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(_, e)| e["$ref"].as_str())
                        .map(|r| file.parent().unwrap_or(Path::new("/")).join(r))
                        .filter(|p| p.exists())
                        .collect();
                    operations.push(Operation {
                        method: method.to_ascii_uppercase(),
                        template: template.clone(),
                        api_version: version.clone(),
                        id: id.to_owned(),
                        file: file.clone(),
                        body_name,
                        body,
                        responses,
                        examples,
                    });
                }
            }
        }
        Self { files, operations }
    }

    /// The operation a request is for: its method, a path that fits the template (names
    /// case-insensitively, parameters any one segment) and its api-version.
    pub fn operation(&self, method: &str, path: &str, api_version: &str) -> Option<&Operation> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|op| op.method.eq_ignore_ascii_case(method) && op.api_version == api_version)
            .filter_map(|op| {
                let template: Vec<&str> = op.template.trim_matches('/').split('/').collect();
                // `/{resourceId}` (Resources_GetById) stands for any path; it is not what a
                // request to a named route is for.
                if template.len() != segments.len() || template.iter().all(|t| t.starts_with('{')) {
                    return None;
                }
                let mut literal = 0;
                for (t, s) in template.iter().zip(&segments) {
                    if t.starts_with('{') {
                        continue;
                    }
                    if !t.eq_ignore_ascii_case(s) {
                        return None;
                    }
                    literal += 1;
                }
                Some((literal, op))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, op)| op)
    }

    /// What is wrong with a request body of `op`.
    pub fn check_request(&self, op: &Operation, body: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        if let Some(schema) = &op.body {
            self.check(&op.file, schema, body, "", Direction::Request, &mut out, 0);
        }
        out
    }

    /// What is wrong with a response body of `op` with `status` (an error against `default`).
    pub fn check_response(&self, op: &Operation, status: u16, body: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        let schema = op
            .responses
            .get(&status.to_string())
            .or_else(|| (status >= 400).then(|| op.responses.get("default")).flatten());
        match schema {
            Some(schema) => self.check(&op.file, schema, body, "", Direction::Response, &mut out, 0),
            None if status >= 400 || body.is_null() => {}
            None => out.push(Violation {
                pointer: String::new(),
                rule: format!("status {status} is not an answer of {}", op.id),
            }),
        }
        out
    }

    /// The schema a `$ref` names, and the file it is in; `None` for a file that is not here.
    fn resolve(&self, file: &Path, reference: &str) -> Option<(PathBuf, Value)> {
        let (target, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let target =
            if target.is_empty() { file.to_owned() } else { file.parent()?.join(target).canonicalize().ok()? };
        let doc = self.files.get(&target)?;
        Some((target, doc.pointer(pointer)?.clone()))
    }

    /// The object schema `schema` amounts to with its `allOf`s merged: its properties (with the
    /// file each is defined in), required names, and additionalProperties.
    fn merged(&self, file: &Path, schema: &Value, depth: usize) -> Merged {
        let mut m = Merged::default();
        if depth > 32 {
            return m;
        }
        if let Some(reference) = schema["$ref"].as_str() {
            if let Some((f, s)) = self.resolve(file, reference) {
                return self.merged(&f, &s, depth + 1);
            }
            m.open = true;
            return m;
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            let inner = self.merged(file, part, depth + 1);
            m.properties.extend(inner.properties);
            m.required.extend(inner.required);
            m.additional = m.additional.or(inner.additional);
            m.open |= inner.open;
        }
        for (name, s) in schema["properties"].as_object().into_iter().flatten() {
            m.properties.insert(name.clone(), (file.to_owned(), s.clone()));
        }
        m.required
            .extend(schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
        if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            m.additional = Some((file.to_owned(), extra.clone()));
        }
        if schema.get("additionalProperties") == Some(&Value::Bool(true)) {
            m.open = true;
        }
        m
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        file: &Path,
        schema: &Value,
        value: &Value,
        at: &str,
        dir: Direction,
        out: &mut Vec<Violation>,
        depth: usize,
    ) {
        if depth > 64 {
            return;
        }
        if let Some(reference) = schema["$ref"].as_str() {
            // A file that is not here (see the README): not followed.
            if let Some((f, s)) = self.resolve(file, reference) {
                self.check(&f, &s, value, at, dir, out, depth + 1);
            }
            return;
        }
        let mut violation = |rule: String| out.push(Violation { pointer: at.to_owned(), rule });
        if value.is_null() {
            // ARM answers with nulls the specs do not mark (Microsoft's own examples do), and
            // every generated client reads them as absent; a request must not send one.
            if dir == Direction::Request && schema["x-nullable"] != true {
                violation("null sent where the spec allows none (no x-nullable)".into());
            }
            return;
        }
        let kind = schema["type"].as_str();
        let object_like = kind == Some("object") || schema.get("properties").is_some() || schema.get("allOf").is_some();
        match kind {
            Some("string") if !value.is_string() => return violation(format!("{value} is not a string")),
            Some("integer") if !(value.is_i64() || value.is_u64()) => {
                return violation(format!("{value} is not an integer"));
            }
            Some("number") if !value.is_number() => return violation(format!("{value} is not a number")),
            Some("boolean") if !value.is_boolean() => return violation(format!("{value} is not a boolean")),
            Some("array") if !value.is_array() => return violation(format!("{} is not an array", kind_of(value))),
            _ if object_like && !value.is_object() => return violation(format!("{} is not an object", kind_of(value))),
            _ => {}
        }
        if let (Some(allowed), Some(text)) = (schema["enum"].as_array(), value.as_str()) {
            let loose = schema["x-ms-enum"]["modelAsString"] == true;
            let ok = allowed
                .iter()
                .filter_map(Value::as_str)
                .any(|a| if loose { a.eq_ignore_ascii_case(text) } else { a == text });
            if !ok {
                let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                violation(format!("`{text}` is not one of {}", names.join(", ")));
            }
        }
        if let Some(items) = value.as_array() {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.check(file, item_schema, item, &format!("{at}/{i}"), dir, out, depth + 1);
                }
            }
            return;
        }
        let Some(object) = value.as_object() else { return };
        let described = schema.get("properties").is_some()
            || schema.get("allOf").is_some()
            || schema.get("additionalProperties").is_some();
        if !described {
            // `type: object` with nothing said about its content (an extension's settings):
            // anything goes.
            return;
        }
        let m = self.merged(file, schema, 0);
        for name in &m.required {
            // A response may leave out what a request must carry (ARM does not echo everything).
            if dir == Direction::Request && !object.contains_key(name) {
                out.push(Violation { pointer: at.to_owned(), rule: format!("required property `{name}` is missing") });
            }
        }
        for (key, v) in object {
            let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
            match m.properties.get(key) {
                Some((f, s)) => {
                    let read_only = s["readOnly"] == true || self.read_only_by_ref(f, s);
                    if dir == Direction::Request && read_only {
                        out.push(Violation {
                            pointer: here.clone(),
                            rule: "readOnly property sent in a request".into(),
                        });
                    }
                    self.check(f, s, v, &here, dir, out, depth + 1);
                }
                None => match &m.additional {
                    Some((f, s)) => self.check(f, s, v, &here, dir, out, depth + 1),
                    None if m.open => {}
                    None => out.push(Violation { pointer: here, rule: "a property the spec does not have".into() }),
                },
            }
        }
    }

    /// Whether a `$ref`'d schema is itself marked readOnly.
    fn read_only_by_ref(&self, file: &Path, schema: &Value) -> bool {
        schema["$ref"].as_str().and_then(|r| self.resolve(file, r)).is_some_and(|(_, s)| s["readOnly"] == true)
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An object schema with its `allOf`s merged.
#[derive(Debug, Default)]
struct Merged {
    properties: BTreeMap<String, (PathBuf, Value)>,
    required: Vec<String>,
    additional: Option<(PathBuf, Value)>,
    /// Part of it is in a file that is not here: unknown properties are not judged.
    open: bool,
}
