//! Result output in az's formats: json, jsonc, table, tsv, yaml, none, after a JMESPath query.

use std::fmt::Write as _;
use std::io::{self, Write};

use anyhow::Context as _;
use clap::ValueEnum;
use serde_json::Value;

use crate::error::Usage;

/// `-o/--output`, as az spells the formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Jsonc,
    Table,
    Tsv,
    Yaml,
    None,
}

/// Which fields a command's table shows, as (header, JSON field) pairs. Without a query the
/// command's columns are used; with one, columns come from the result, as az does.
pub(crate) type Columns = &'static [(&'static str, &'static str)];

/// Renders a command's result to stdout.
/// Set once a command signs in to the local cloud: its results then say so.
static IN_LOCAL_CLOUD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks this command's results as the local cloud's.
pub(crate) fn mark_local_cloud() {
    IN_LOCAL_CLOUD.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A result object of the local cloud says `"cloud": "local"` (each object of a list too), so
/// that no one takes it for Azure's; a `cloud` the result has already stays.
fn with_cloud(value: &Value) -> Value {
    let mark = |v: &Value| match v {
        Value::Object(o) if !o.contains_key("cloud") => {
            let mut o = o.clone();
            o.insert("cloud".into(), Value::String(azdock_azure_sm::cloud::LOCAL_CLOUD.into()));
            Value::Object(o)
        }
        other => other.clone(),
    };
    match value {
        Value::Array(items) => Value::Array(items.iter().map(mark).collect()),
        other => mark(other),
    }
}

pub(crate) fn print(value: &Value, format: Format, query: Option<&str>, columns: Columns) -> anyhow::Result<()> {
    let marked;
    let value = if IN_LOCAL_CLOUD.load(std::sync::atomic::Ordering::Relaxed) {
        marked = with_cloud(value);
        &marked
    } else {
        value
    };
    let text = render(value, format, query, columns)?;
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes()).context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")
}

/// The text `print` writes.
pub(crate) fn render(value: &Value, format: Format, query: Option<&str>, columns: Columns) -> anyhow::Result<String> {
    let (value, columns) = match query {
        Some(expr) => (apply_query(value, expr)?, &[][..]),
        None => (value.clone(), columns),
    };
    Ok(match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&value)?),
        Format::Jsonc => {
            let mut out = String::new();
            colored_json(&value, 0, &mut out);
            out.push('\n');
            out
        }
        Format::Table => table(&value, columns),
        Format::Tsv => tsv(&value),
        Format::Yaml => {
            let mut out = String::new();
            yaml(&value, 0, &mut out);
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out
        }
        Format::None => String::new(),
    })
}

fn apply_query(value: &Value, expr: &str) -> anyhow::Result<Value> {
    let compiled = jmespath::compile(expr)
        .map_err(|e| Usage::new(format!("invalid `--query` expression `{expr}`: {}", e.reason)))?;
    let result = compiled.search(value).map_err(|e| Usage::new(format!("`--query` failed: {e}")))?;
    Ok(serde_json::to_value(&*result)?)
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        // Short lists of scalars read well in a cell; anything deeper is left to json.
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            Some(items.iter().filter_map(scalar).collect::<Vec<_>>().join(", "))
        }
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn rows_of(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// az's table: headers, a dashed rule, columns separated by two spaces.
fn table(value: &Value, columns: Columns) -> String {
    let rows = rows_of(value);
    // az prints nothing for an empty list, not a header without rows.
    if rows.is_empty() {
        return String::new();
    }
    let (headers, cells): (Vec<String>, Vec<Vec<String>>) = if columns.is_empty() {
        // Columns from the data: every scalar field of the first object, in order.
        match rows.first() {
            Some(Value::Object(first)) => {
                let keys: Vec<&String> = first.iter().filter(|(_, v)| scalar(v).is_some()).map(|(k, _)| k).collect();
                let headers = keys.iter().map(|k| title_case(k)).collect();
                let cells = rows
                    .iter()
                    .map(|r| keys.iter().map(|k| r.get(k.as_str()).and_then(scalar).unwrap_or_default()).collect())
                    .collect();
                (headers, cells)
            }
            Some(_) => {
                (vec!["Result".into()], rows.iter().map(|r| vec![scalar(r).unwrap_or_else(|| r.to_string())]).collect())
            }
            None => (Vec::new(), Vec::new()),
        }
    } else {
        let headers = columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        let cells = rows
            .iter()
            .map(|r| columns.iter().map(|(_, field)| r.pointer(field).and_then(scalar).unwrap_or_default()).collect())
            .collect();
        (headers, cells)
    };
    if headers.is_empty() {
        return String::new();
    }
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| cells.iter().map(|r| r[i].chars().count()).chain([headers[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut out, &headers);
    line(&mut out, &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for row in &cells {
        line(&mut out, row);
    }
    out
}

/// `camelCase` → `Camel Case`, as az titles its auto-derived columns.
fn title_case(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else {
            if c.is_uppercase() {
                out.push(' ');
            }
            out.push(c);
        }
    }
    out
}

/// az's tsv: one line per row, the scalar fields tab-separated, nothing else.
fn tsv(value: &Value) -> String {
    let mut out = String::new();
    for row in rows_of(value) {
        let fields: Vec<String> = match row {
            Value::Object(map) => map
                .values()
                .filter_map(|v| match v {
                    Value::Array(_) | Value::Object(_) => None,
                    other => scalar(other),
                })
                .collect(),
            other => vec![scalar(other).unwrap_or_else(|| other.to_string())],
        };
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    out
}

/// YAML 1.2 block style. Strings that could read as anything but a plain string are written as
/// JSON strings, which YAML accepts as double-quoted scalars; so the output is always valid.
fn yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let _ = write!(out, "{pad}{}:", yaml_string(k));
                yaml_child(v, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                let _ = write!(out, "{pad}-");
                match item {
                    Value::Object(map) if !map.is_empty() => {
                        // First key on the dash line, the rest aligned under it.
                        let mut nested = String::new();
                        yaml(item, indent + 2, &mut nested);
                        out.push(' ');
                        out.push_str(nested.trim_start());
                    }
                    _ => yaml_child(item, indent, out),
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", yaml_scalar(other));
        }
    }
}

fn yaml_child(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            yaml(value, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            yaml(value, indent + 2, out);
        }
        other => {
            let _ = writeln!(out, " {}", yaml_scalar(other));
        }
    }
}

fn yaml_scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn yaml_string(s: &str) -> String {
    const RESERVED: &[&str] = &["", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"];
    let plain = !RESERVED.contains(&s.to_ascii_lowercase().as_str())
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ' ' | '@' | '+'))
        && !s.ends_with(' ')
        && s.parse::<f64>().is_err();
    if plain { s.to_owned() } else { Value::String(s.to_owned()).to_string() }
}

const KEY: &str = "\x1b[94m";
const STRING: &str = "\x1b[32m";
const LITERAL: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// Indented JSON with ANSI colours, as az's jsonc.
fn colored_json(value: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent + 1);
    let end_pad = "  ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            for (i, (k, v)) in map.iter().enumerate() {
                let _ = write!(out, "{pad}{KEY}{}{RESET}: ", Value::String(k.clone()));
                colored_json(v, indent + 1, out);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{end_pad}}}");
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, v) in items.iter().enumerate() {
                out.push_str(&pad);
                colored_json(v, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{end_pad}]");
        }
        Value::String(_) => {
            let _ = write!(out, "{STRING}{value}{RESET}");
        }
        other => {
            let _ = write!(out, "{LITERAL}{other}{RESET}");
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn local_cloud_results_say_so() {
        let one = with_cloud(&json!({"name": "a"}));
        assert_eq!(one, json!({"name": "a", "cloud": "local"}));
        let many = with_cloud(&json!([{"name": "a"}, {"name": "b", "cloud": "AzureCloud"}, "text"]));
        assert_eq!(many, json!([{"name": "a", "cloud": "local"}, {"name": "b", "cloud": "AzureCloud"}, "text"]));
        assert_eq!(with_cloud(&Value::Null), Value::Null);
    }

    use serde_json::json;

    use super::*;

    #[test]
    fn table_uses_given_columns_and_aligns() {
        let v = json!([{"id": "docker", "n": 2}, {"id": "vmaccess", "n": 10}]);
        let t = render(&v, Format::Table, None, &[("Id", "/id"), ("N", "/n")]).unwrap();
        assert_eq!(t, "Id        N\n--------  --\ndocker    2\nvmaccess  10\n");
    }

    #[test]
    fn query_then_auto_columns() {
        let v = json!([{"roleName": "ca", "daysLeft": 3650, "sans": []}]);
        let t = render(&v, Format::Table, Some("[].{role: roleName, days: daysLeft}"), &[]).unwrap();
        // The jmespath crate returns multiselect hashes sorted by key.
        assert_eq!(t, "Days  Role\n----  ----\n3650  ca\n");
        let tsv = render(&v, Format::Tsv, Some("[0].roleName"), &[]).unwrap();
        assert_eq!(tsv, "ca\n");
        let err = render(&v, Format::Json, Some("[?"), &[]).unwrap_err();
        assert!(err.downcast_ref::<Usage>().is_some());
    }

    #[test]
    fn yaml_quotes_what_would_change_meaning() {
        let v = json!({"a": "plain text", "b": "yes", "c": "12", "d": "x: y", "list": [{"k": 1, "m": true}, "s"], "e": [], "n": null});
        let y = render(&v, Format::Yaml, None, &[]).unwrap();
        assert_eq!(
            y,
            "a: plain text\nb: \"yes\"\nc: \"12\"\nd: \"x: y\"\nlist:\n  - k: 1\n    m: true\n  - s\ne: []\n\"n\": null\n"
        );
    }

    #[test]
    fn jsonc_is_json_once_colours_are_removed() {
        let v = json!({"a": [1, "x", {"b": null}], "c": {}});
        let c = render(&v, Format::Jsonc, None, &[]).unwrap();
        let plain = c.replace(KEY, "").replace(STRING, "").replace(LITERAL, "").replace(RESET, "");
        assert_eq!(serde_json::from_str::<Value>(&plain).unwrap(), v);
    }
}
