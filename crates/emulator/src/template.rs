//! ARM's template language, as much of it as `az vm create` and `az vm availability-set create`
//! submit and a little more: expressions (`[concat('a', parameters('b'))]`) parsed into a tree
//! and evaluated against a deployment's parameters, variables, copy index and resources.

use serde_json::{Map, Value, json};
use sha2::Digest as _;

/// A parsed template expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Str(String),
    Int(i64),
    /// A function call; the name as written.
    Call(String, Vec<Expr>),
    /// `expr.name`
    Member(Box<Expr>, String),
    /// `expr[index]`
    Index(Box<Expr>, Box<Expr>),
}

/// Why an expression cannot be parsed or evaluated, in ARM's words (the message's core; the
/// caller says where in the template it was).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ExprError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError(message.into()))
}

/// The functions the local cloud evaluates; any other is refused as ARM refuses an unknown one.
pub(crate) const FUNCTIONS: &[&str] = &[
    "and",
    "bool",
    "coalesce",
    "concat",
    "copyIndex",
    "deployment",
    "empty",
    "equals",
    "false",
    "format",
    "if",
    "int",
    "length",
    "not",
    "or",
    "parameters",
    "reference",
    "resourceGroup",
    "resourceId",
    "string",
    "subscription",
    "toLower",
    "toUpper",
    "true",
    "uniqueString",
    "variables",
];

/// The text of a string that is an expression (`[…]`), or `None` for a literal (which includes
/// `[[…`, ARM's escape for a literal opening bracket).
pub(crate) fn expression(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    if inner.starts_with('[') { None } else { Some(inner) }
}

/// A literal template string: `[[…]` loses its first bracket.
pub(crate) fn literal(s: &str) -> &str {
    if s.starts_with("[[") && s.ends_with(']') { &s[1..] } else { s }
}

/// Parses an expression's text (without its brackets).
pub(crate) fn parse(text: &str) -> Result<Expr, ExprError> {
    let mut p = Parser { chars: text.chars().collect(), pos: 0 };
    let e = p.expr()?;
    p.skip_ws();
    if p.pos != p.chars.len() {
        return err(format!(
            "The language expression '{text}' is not valid: the string character '{}' at position '{}' is not expected.",
            p.chars[p.pos], p.pos
        ));
    }
    Ok(e)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn text(&self) -> String {
        self.chars.iter().collect()
    }

    fn unexpected(&self) -> ExprError {
        match self.peek() {
            Some(c) => ExprError(format!(
                "The language expression '{}' is not valid: the string character '{c}' at position '{}' is not expected.",
                self.text(),
                self.pos
            )),
            None => ExprError(format!("The language expression '{}' is not valid: it ends too early.", self.text())),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ExprError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        self.skip_ws();
        let mut e = match self.peek() {
            Some('\'') => self.string()?,
            Some(c) if c.is_ascii_digit() || c == '-' => self.int()?,
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.call()?,
            _ => return Err(self.unexpected()),
        };
        loop {
            self.skip_ws();
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    let name = self.ident();
                    if name.is_empty() {
                        return Err(self.unexpected());
                    }
                    e = Expr::Member(Box::new(e), name);
                }
                Some('[') => {
                    self.pos += 1;
                    let index = self.expr()?;
                    self.expect(']')?;
                    e = Expr::Index(Box::new(e), Box::new(index));
                }
                _ => return Ok(e),
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn string(&mut self) -> Result<Expr, ExprError> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(self.unexpected()),
                Some('\'') if self.chars.get(self.pos + 1) == Some(&'\'') => {
                    s.push('\'');
                    self.pos += 2;
                }
                Some('\'') => {
                    self.pos += 1;
                    return Ok(Expr::Str(s));
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn int(&mut self) -> Result<Expr, ExprError> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        text.parse().map(Expr::Int).map_err(|_| self.unexpected())
    }

    fn call(&mut self) -> Result<Expr, ExprError> {
        let name = self.ident();
        self.expect('(')?;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
            return Ok(Expr::Call(name, args));
        }
        loop {
            args.push(self.expr()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(Expr::Call(name, args));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }
}

/// Every function an expression calls that the local cloud does not know.
pub(crate) fn unknown_functions(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Str(_) | Expr::Int(_) => {}
        Expr::Call(name, args) => {
            if !FUNCTIONS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
                out.push(name.clone());
            }
            for a in args {
                unknown_functions(a, out);
            }
        }
        Expr::Member(e, _) => unknown_functions(e, out),
        Expr::Index(e, i) => {
            unknown_functions(e, out);
            unknown_functions(i, out);
        }
    }
}

/// What an expression can see.
pub(crate) trait Scope {
    fn parameter(&self, name: &str) -> Result<Value, ExprError>;
    fn variable(&self, name: &str) -> Result<Value, ExprError>;
    fn copy_index(&self) -> Result<i64, ExprError>;
    /// `reference(target, apiVersion, 'Full')`: the resource's properties, or all of it.
    fn reference(&self, target: &str, full: bool) -> Result<Value, ExprError>;
    fn subscription_id(&self) -> &str;
    fn tenant_id(&self) -> &str;
    /// The resource group's name and location.
    fn resource_group(&self) -> (&str, &str);
    fn deployment_name(&self) -> &str;
}

fn arity(name: &str, args: &[Value], min: usize, max: usize) -> Result<(), ExprError> {
    if (min..=max).contains(&args.len()) {
        Ok(())
    } else {
        let expected = if min == max { format!("{min}") } else { format!("{min} to {max}") };
        err(format!(
            "The template language function '{name}' must have {expected} argument(s), not {}. Please see https://aka.ms/arm-functions for usage details.",
            args.len()
        ))
    }
}

fn text<'v>(name: &str, v: &'v Value) -> Result<&'v str, ExprError> {
    v.as_str().ok_or_else(|| {
        ExprError(format!(
            "The template language function '{name}' expects its argument to be a string, not '{}'.",
            kind(v)
        ))
    })
}

fn boolean(name: &str, v: &Value) -> Result<bool, ExprError> {
    v.as_bool().ok_or_else(|| {
        ExprError(format!(
            "The template language function '{name}' expects its argument to be a boolean, not '{}'.",
            kind(v)
        ))
    })
}

/// A value's type in ARM's words.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(_) => "Integer",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

/// A value as `concat`, `format` and `string` write it.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        other => other.to_string(),
    }
}

/// Evaluates an expression.
pub(crate) fn eval(e: &Expr, scope: &dyn Scope) -> Result<Value, ExprError> {
    match e {
        Expr::Str(s) => Ok(json!(s)),
        Expr::Int(n) => Ok(json!(n)),
        Expr::Member(target, name) => member(&eval(target, scope)?, name),
        Expr::Index(target, index) => {
            let (v, i) = (eval(target, scope)?, eval(index, scope)?);
            match (&v, &i) {
                (Value::Array(items), Value::Number(n)) => n
                    .as_u64()
                    .and_then(|n| items.get(usize::try_from(n).ok()?))
                    .cloned()
                    .ok_or_else(|| {
                        ExprError(format!(
                            "The language expression property array index '{n}' is out of bounds (the array has {} elements).",
                            items.len()
                        ))
                    }),
                (Value::Object(_), Value::String(name)) => member(&v, name),
                _ => err(format!("The language expression cannot index a '{}' with a '{}'.", kind(&v), kind(&i))),
            }
        }
        Expr::Call(name, args) => call(name, args, scope),
    }
}

/// `value.name`: a property of an object, matched case-insensitively as ARM matches it.
fn member(v: &Value, name: &str) -> Result<Value, ExprError> {
    let Value::Object(map) = v else {
        return err(format!(
            "The language expression property '{name}' can't be evaluated, property name must be applied to an object, not '{}'.",
            kind(v)
        ));
    };
    map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).ok_or_else(|| {
        ExprError(format!(
            "The language expression property '{name}' doesn't exist, available properties are '{}'.",
            map.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}

fn call(name: &str, exprs: &[Expr], scope: &dyn Scope) -> Result<Value, ExprError> {
    let lower = name.to_ascii_lowercase();
    // `if` evaluates only the branch it takes, as ARM does since 2019.
    if lower == "if" {
        if exprs.len() != 3 {
            return arity("if", &vec![Value::Null; exprs.len()], 3, 3).map(|()| Value::Null);
        }
        let cond = boolean("if", &eval(&exprs[0], scope)?)?;
        return eval(&exprs[if cond { 1 } else { 2 }], scope);
    }
    let args = exprs.iter().map(|e| eval(e, scope)).collect::<Result<Vec<_>, _>>()?;
    match lower.as_str() {
        "parameters" => {
            arity(name, &args, 1, 1)?;
            scope.parameter(text(name, &args[0])?)
        }
        "variables" => {
            arity(name, &args, 1, 1)?;
            scope.variable(text(name, &args[0])?)
        }
        "concat" => {
            if !args.is_empty() && args.iter().all(Value::is_array) {
                Ok(Value::Array(args.iter().filter_map(Value::as_array).flatten().cloned().collect()))
            } else {
                Ok(json!(args.iter().map(render).collect::<String>()))
            }
        }
        "format" => {
            if args.is_empty() {
                return arity(name, &args, 1, usize::MAX).map(|()| Value::Null);
            }
            format(text(name, &args[0])?, &args[1..]).map(Value::String)
        }
        "tolower" | "toupper" => {
            arity(name, &args, 1, 1)?;
            let s = text(name, &args[0])?;
            Ok(json!(if lower == "tolower" { s.to_lowercase() } else { s.to_uppercase() }))
        }
        "string" | "int" | "bool" | "true" | "false" | "not" | "and" | "or" | "equals" | "empty" | "length"
        | "coalesce" => values(name, &lower, args),
        "copyindex" => copy_index(name, &args, scope),
        "resourceid" => resource_id(name, &args, scope),
        "uniquestring" => {
            arity(name, &args, 1, usize::MAX)?;
            let parts = args.iter().map(|a| text(name, a)).collect::<Result<Vec<_>, _>>()?;
            Ok(json!(unique_string(&parts)))
        }
        "resourcegroup" => {
            arity(name, &args, 0, 0)?;
            let (rg, location) = scope.resource_group();
            let sub = scope.subscription_id();
            Ok(json!({
                "id": format!("/subscriptions/{sub}/resourceGroups/{rg}"), "name": rg,
                "type": "Microsoft.Resources/resourceGroups", "location": location,
                "properties": {"provisioningState": "Succeeded"}
            }))
        }
        "subscription" => {
            arity(name, &args, 0, 0)?;
            let sub = scope.subscription_id();
            Ok(
                json!({"id": format!("/subscriptions/{sub}"), "subscriptionId": sub, "tenantId": scope.tenant_id(), "displayName": "azdock local"}),
            )
        }
        "deployment" => {
            arity(name, &args, 0, 0)?;
            Ok(json!({"name": scope.deployment_name(), "properties": {"mode": "Incremental"}}))
        }
        "reference" => {
            arity(name, &args, 1, 3)?;
            let target = text(name, &args[0])?;
            let full = args.get(2).and_then(Value::as_str).is_some_and(|f| f.eq_ignore_ascii_case("Full"));
            scope.reference(target, full)
        }
        _ => err(format!(
            "The template function '{name}' is not valid. Please see https://aka.ms/arm-functions for usage details."
        )),
    }
}

/// The functions over plain values: conversions, logic and comparisons.
fn values(name: &str, lower: &str, args: Vec<Value>) -> Result<Value, ExprError> {
    match lower {
        "string" => {
            arity(name, &args, 1, 1)?;
            Ok(json!(render(&args[0])))
        }
        "int" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::Number(n) => Ok(Value::Number(n.clone())),
                Value::String(s) => s.trim().parse::<i64>().map(|n| json!(n)).map_err(|_| {
                    ExprError(format!("The template language function 'int' cannot convert '{s}' to an integer."))
                }),
                v => err(format!("The template language function 'int' cannot convert a '{}' to an integer.", kind(v))),
            }
        }
        "bool" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::Bool(b) => Ok(json!(b)),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(json!(true)),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(json!(false)),
                Value::Number(n) => Ok(json!(n.as_i64() != Some(0))),
                v => err(format!("The template language function 'bool' cannot convert '{}' to a boolean.", render(v))),
            }
        }
        "true" | "false" => {
            arity(name, &args, 0, 0)?;
            Ok(json!(lower == "true"))
        }
        "not" => {
            arity(name, &args, 1, 1)?;
            Ok(json!(!boolean(name, &args[0])?))
        }
        "and" | "or" => {
            arity(name, &args, 2, usize::MAX)?;
            let values = args.iter().map(|a| boolean(name, a)).collect::<Result<Vec<_>, _>>()?;
            Ok(json!(if lower == "and" { values.iter().all(|b| *b) } else { values.iter().any(|b| *b) }))
        }
        "equals" => {
            arity(name, &args, 2, 2)?;
            Ok(json!(args[0] == args[1]))
        }
        "empty" => {
            arity(name, &args, 1, 1)?;
            Ok(json!(match &args[0] {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            }))
        }
        "length" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::String(s) => Ok(json!(s.chars().count())),
                Value::Array(a) => Ok(json!(a.len())),
                Value::Object(o) => Ok(json!(o.len())),
                v => err(format!(
                    "The template language function 'length' expects a string, array or object, not '{}'.",
                    kind(v)
                )),
            }
        }
        "coalesce" => {
            arity(name, &args, 1, usize::MAX)?;
            Ok(args.into_iter().find(|a| !a.is_null()).unwrap_or(Value::Null))
        }
        _ => err(format!("The template function '{name}' is not valid.")),
    }
}

fn copy_index(name: &str, args: &[Value], scope: &dyn Scope) -> Result<Value, ExprError> {
    arity(name, args, 0, 2)?;
    // `copyIndex()`, `copyIndex(offset)`, `copyIndex('loop')`, `copyIndex('loop', offset)`:
    // the local cloud runs resource loops only, one at a time, so a loop name picks that loop.
    let offset = match args {
        [] | [Value::String(_)] => 0,
        [Value::Number(n)] | [Value::String(_), Value::Number(n)] => n.as_i64().unwrap_or(0),
        _ => {
            return err(
                "The template language function 'copyIndex' takes an optional loop name and an optional integer offset.",
            );
        }
    };
    Ok(json!(scope.copy_index()? + offset))
}

/// `resourceId([subscriptionId], [resourceGroupName], resourceType, name1, [name2], …)`.
fn resource_id(name: &str, args: &[Value], scope: &dyn Scope) -> Result<Value, ExprError> {
    let args = args.iter().map(|a| text(name, a)).collect::<Result<Vec<_>, _>>()?;
    // The type is the first argument with a `/` among the first three.
    let Some(at) = args.iter().take(3).position(|a| a.contains('/')) else {
        return err(format!(
            "Unable to evaluate template language function 'resourceId': function requires a fully qualified resource type 'Namespace/type' and at least one resource name, not '{}'.",
            args.join("', '")
        ));
    };
    let kind = args[at];
    let names = &args[at + 1..];
    let types: Vec<&str> = kind.split('/').skip(1).collect();
    if names.len() != types.len() {
        return err(format!(
            "Unable to evaluate template language function 'resourceId': the type '{kind}' requires '{}' resource name argument(s).",
            types.len()
        ));
    }
    let (sub, rg) = match args[..at] {
        [] => (scope.subscription_id(), scope.resource_group().0),
        [rg] => (scope.subscription_id(), rg),
        [sub, rg] => (sub, rg),
        _ => {
            return err(
                "Unable to evaluate template language function 'resourceId': too many arguments before the type.",
            );
        }
    };
    let ns = kind.split('/').next().unwrap_or_default();
    let id = types.iter().zip(names).fold(
        format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}"),
        |mut id, (t, n)| {
            id.push('/');
            id.push_str(t);
            id.push('/');
            id.push_str(n);
            id
        },
    );
    Ok(json!(id))
}

/// `format`: .NET composite formatting, `{0}` placeholders with `{{`/`}}` escapes.
fn format(fmt: &str, args: &[Value]) -> Result<String, ExprError> {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut index = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    index.push(c);
                }
                let arg = index.trim().parse::<usize>().ok().and_then(|i| args.get(i)).ok_or_else(|| {
                    ExprError(format!(
                        "The template language function 'format' has the placeholder '{{{index}}}', which names none of its {} argument(s); the local cloud takes placeholders as {{0}}, {{1}}, … without format specifiers.",
                        args.len()
                    ))
                })?;
                out.push_str(&render(arg));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `uniqueString`: 13 characters from a hash of the arguments, stable for the same arguments.
/// ARM's hash is its own (unpublished) 64-bit one; this is SHA-256 in the same alphabet and
/// length, so names look and behave alike without matching real Azure's letter for letter.
pub(crate) fn unique_string(parts: &[&str]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = sha2::Sha256::digest(parts.join("-").as_bytes());
    let mut bits = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
    let mut out = String::with_capacity(13);
    for _ in 0..13 {
        out.push(char::from(ALPHABET[usize::try_from(bits >> 59).unwrap_or(0)]));
        bits <<= 5;
    }
    out
}

/// Evaluates every expression in a JSON value (strings in `[…]`), keeping literals.
pub(crate) fn eval_value(v: &Value, scope: &dyn Scope) -> Result<Value, ExprError> {
    match v {
        Value::String(s) => match expression(s) {
            Some(text) => eval(&parse(text)?, scope),
            None => Ok(json!(literal(s))),
        },
        Value::Array(items) => {
            items.iter().map(|i| eval_value(i, scope)).collect::<Result<Vec<_>, _>>().map(Value::Array)
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), eval_value(v, scope)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// Every expression in a JSON value, parsed, with the JSON path where it sits.
pub(crate) fn expressions(v: &Value, path: &str, out: &mut Vec<(String, Result<Expr, ExprError>)>) {
    match v {
        Value::String(s) => {
            if let Some(text) = expression(s) {
                out.push((path.to_owned(), parse(text)));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                expressions(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                expressions(v, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Test;

    impl Scope for Test {
        fn parameter(&self, name: &str) -> Result<Value, ExprError> {
            match name {
                "vmName" => Ok(json!("web")),
                "count" => Ok(json!(2)),
                _ => err(format!("The template parameter '{name}' is not found.")),
            }
        }
        fn variable(&self, name: &str) -> Result<Value, ExprError> {
            match name {
                "names" => Ok(json!(["a", "b"])),
                "obj" => Ok(json!({"Inner": {"x": 1}})),
                _ => err(format!("The template variable '{name}' is not found.")),
            }
        }
        fn copy_index(&self) -> Result<i64, ExprError> {
            Ok(1)
        }
        fn reference(&self, target: &str, full: bool) -> Result<Value, ExprError> {
            Ok(if full { json!({"id": target, "properties": {"ip": "1.2.3.4"}}) } else { json!({"ip": "1.2.3.4"}) })
        }
        fn subscription_id(&self) -> &'static str {
            "sub"
        }
        fn tenant_id(&self) -> &'static str {
            "tenant"
        }
        fn resource_group(&self) -> (&'static str, &'static str) {
            ("rg", "westus")
        }
        fn deployment_name(&self) -> &'static str {
            "dep"
        }
    }

    fn ev(s: &str) -> Result<Value, ExprError> {
        eval_value(&json!(s), &Test)
    }

    #[test]
    fn the_functions_az_templates_use_evaluate_as_arm_evaluates_them() {
        assert_eq!(ev("[concat(parameters('vmName'), 'VNET')]").unwrap(), json!("webVNET"));
        assert_eq!(ev("[concat('nic', copyIndex())]").unwrap(), json!("nic1"));
        assert_eq!(ev("[concat('nic', copyIndex(10))]").unwrap(), json!("nic11"));
        assert_eq!(ev("[concat(variables('names'), variables('names'))]").unwrap(), json!(["a", "b", "a", "b"]));
        assert_eq!(ev("[variables('names')[1]]").unwrap(), json!("b"));
        assert_eq!(ev("[variables('obj').inner.x]").unwrap(), json!(1));
        assert_eq!(ev("[variables('obj')['Inner']]").unwrap(), json!({"x": 1}));
        assert_eq!(ev("[format('{0}-{1}-{{x}}', 'a', parameters('count'))]").unwrap(), json!("a-2-{x}"));
        assert_eq!(ev("[toLower('AbC')]").unwrap(), json!("abc"));
        assert_eq!(ev("[toUpper('AbC')]").unwrap(), json!("ABC"));
        assert_eq!(
            ev("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 's')]").unwrap(),
            json!("/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s")
        );
        assert_eq!(
            ev("[resourceId('other', 'Microsoft.Compute/virtualMachines', 'vm')]").unwrap(),
            json!("/subscriptions/sub/resourceGroups/other/providers/Microsoft.Compute/virtualMachines/vm")
        );
        assert_eq!(
            ev("[resourceId('s2', 'other', 'Microsoft.Compute/virtualMachines', 'vm')]").unwrap(),
            json!("/subscriptions/s2/resourceGroups/other/providers/Microsoft.Compute/virtualMachines/vm")
        );
        assert_eq!(ev("[resourceGroup().location]").unwrap(), json!("westus"));
        assert_eq!(ev("[resourceGroup().id]").unwrap(), json!("/subscriptions/sub/resourceGroups/rg"));
        assert_eq!(ev("[subscription().subscriptionId]").unwrap(), json!("sub"));
        assert_eq!(ev("[subscription().tenantId]").unwrap(), json!("tenant"));
        assert_eq!(ev("[deployment().name]").unwrap(), json!("dep"));
        assert_eq!(ev("[if(equals(parameters('count'), 2), 'two', parameters('missing'))]").unwrap(), json!("two"));
        assert_eq!(ev("[if(not(true()), 'x', 'y')]").unwrap(), json!("y"));
        assert_eq!(ev("[and(true(), or(false(), true()))]").unwrap(), json!(true));
        assert_eq!(ev("[and(true(), false())]").unwrap(), json!(false));
        assert_eq!(ev("[reference('ip').ip]").unwrap(), json!("1.2.3.4"));
        assert_eq!(ev("[reference('ip', '2022-01-01', 'Full').properties.ip]").unwrap(), json!("1.2.3.4"));
        assert_eq!(ev("[length(variables('names'))]").unwrap(), json!(2));
        assert_eq!(ev("[length('abc')]").unwrap(), json!(3));
        assert_eq!(ev("[empty('')]").unwrap(), json!(true));
        assert_eq!(ev("[empty(variables('names'))]").unwrap(), json!(false));
        assert_eq!(ev("[string(parameters('count'))]").unwrap(), json!("2"));
        assert_eq!(ev("[int('42')]").unwrap(), json!(42));
        assert_eq!(ev("[bool('True')]").unwrap(), json!(true));
        assert_eq!(ev("[coalesce(variables('obj').Inner.x, 'x')]").unwrap(), json!(1));
        assert_eq!(ev("[concat('it''s', ' ', 'ok')]").unwrap(), json!("it's ok"));
        assert_eq!(ev("[[not an expression]").unwrap(), json!("[not an expression]"));
        assert_eq!(ev("plain").unwrap(), json!("plain"));
    }

    #[test]
    fn unique_string_is_thirteen_base32_letters_stable_per_input() {
        let a = unique_string(&["sub", "rg"]);
        assert_eq!(a.len(), 13);
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)), "{a}");
        assert_eq!(a, unique_string(&["sub", "rg"]));
        assert_ne!(a, unique_string(&["sub", "rg2"]));
        assert_eq!(ev("[uniqueString('sub', 'rg')]").unwrap(), json!(a));
    }

    #[test]
    fn unknown_functions_and_bad_arguments_are_named() {
        let e = parse("concat(foo('x'), utcNow())").unwrap();
        let mut unknown = Vec::new();
        unknown_functions(&e, &mut unknown);
        assert_eq!(unknown, ["foo", "utcNow"]);
        let e = ev("[foo('x')]").unwrap_err();
        assert!(e.0.contains("'foo' is not valid"), "{e}");
        let e = ev("[toLower('a', 'b')]").unwrap_err();
        assert!(e.0.contains("'toLower' must have 1 argument(s), not 2"), "{e}");
        let e = ev("[parameters('missing')]").unwrap_err();
        assert!(e.0.contains("'missing'"), "{e}");
        let e = ev("[variables('obj').nope]").unwrap_err();
        assert!(e.0.contains("'nope' doesn't exist") && e.0.contains("Inner"), "{e}");
        let e = ev("[variables('names')[5]]").unwrap_err();
        assert!(e.0.contains("out of bounds"), "{e}");
        let e = ev("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v')]").unwrap_err();
        assert!(e.0.contains("requires '2' resource name"), "{e}");
        let e = ev("[format('{3}', 'a')]").unwrap_err();
        assert!(e.0.contains("'{3}'"), "{e}");
        for bad in ["[concat('a']", "[concat('a') x]", "['open]", "[1 +]"] {
            let e = ev(bad).unwrap_err();
            assert!(e.0.contains("is not valid"), "{bad}: {e}");
        }
    }

    #[test]
    fn edges_of_the_syntax_literals_signs_escapes_and_type_names() {
        // Only `[[…]` is an escaped literal; other strings stay as written.
        assert_eq!(ev("[[abc").unwrap(), json!("[[abc"));
        assert_eq!(ev("abc]").unwrap(), json!("abc]"));
        // Negative numbers, and names that begin with `_`.
        assert_eq!(ev("[copyIndex(-1)]").unwrap(), json!(0));
        assert_eq!(ev("[string(-25)]").unwrap(), json!("-25"));
        assert_eq!(parse("_f()").unwrap(), Expr::Call("_f".into(), vec![]));
        // A lone `}` in a format string is kept; `}}` is one.
        assert_eq!(ev("[format('x}y {0}}}', 1)]").unwrap(), json!("x}y 1}"));
        // `bool` of text: true and false in any case, anything else refused.
        assert_eq!(ev("[bool('TRUE')]").unwrap(), json!(true));
        assert_eq!(ev("[bool('False')]").unwrap(), json!(false));
        assert!(ev("[bool('maybe')]").is_err());
        // Errors name the expression and the types ARM names.
        let e = parse("concat('a' 'b')").unwrap_err();
        assert!(e.0.contains("'concat('a' 'b')'") && e.0.contains("position '11'"), "{e}");
        for (expr, kind) in [
            ("[toLower(1)]", "'Integer'"),
            ("[toLower(true())]", "'Boolean'"),
            ("[toLower(variables('names'))]", "'Array'"),
            ("[toLower(variables('obj'))]", "'Object'"),
        ] {
            let e = ev(expr).unwrap_err();
            assert!(e.0.ends_with(&format!("not {kind}.")), "{expr}: {e}");
        }
    }

    #[test]
    fn unique_strings_use_the_whole_hash() {
        for parts in [["a", "b"], ["sub", "rg"], ["x", "y"]] {
            let u = unique_string(&parts);
            let distinct: std::collections::BTreeSet<char> = u.chars().collect();
            assert!(distinct.len() >= 5, "{u}");
        }
    }

    #[test]
    fn every_expression_of_a_document_is_found_with_its_path() {
        let doc = json!({"name": "[concat('a', 'b')]", "list": ["plain", "[bad(]"], "nested": {"deep": "[toLower('X')]"}, "n": 1});
        let mut found = Vec::new();
        expressions(&doc, "", &mut found);
        let paths: Vec<(&str, bool)> = found.iter().map(|(p, e)| (p.as_str(), e.is_ok())).collect();
        assert_eq!(paths, [("name", true), ("list[1]", false), ("nested.deep", true)]);
        let mut found = Vec::new();
        expressions(&json!("[x()]"), "outputs", &mut found);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "outputs");
    }
}
