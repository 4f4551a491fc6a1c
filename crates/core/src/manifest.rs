//! Extension manifests: what an extension is, which Azure handlers it drives, and its actions.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The operating system family of a VM, as ARM spells it in `storageProfile.osDisk.osType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OsType {
    Linux,
    Windows,
}

impl fmt::Display for OsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OsType::Linux => "Linux",
            OsType::Windows => "Windows",
        })
    }
}

/// One Azure extension handler an extension can install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerSpec {
    /// Short name, unique within the manifest, for `--handler` (e.g. `customscript`).
    pub name: String,
    pub os: OsType,
    pub publisher: String,
    /// The handler type, ARM's `type` (e.g. `CustomScript`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `major.minor`, as ARM's `typeHandlerVersion` takes it.
    pub type_handler_version: String,
}

impl fmt::Display for HandlerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} {} ({})", self.publisher, self.kind, self.type_handler_version, self.os)
    }
}

/// The type of an action argument, which decides how the CLI parses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ArgKind {
    /// Free text.
    Text,
    /// A switch without a value.
    Flag,
    /// A whole number.
    Integer,
    /// Repeatable text.
    List,
    /// A path whose contents the host reads and passes as text (`--script FILE`).
    File,
}

/// One argument of an action, rendered by the CLI as `--<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgSpec {
    pub name: String,
    pub help: String,
    pub kind: ArgKind,
    #[serde(default)]
    pub required: bool,
    /// Secret values are read from a prompt or stdin when absent, never echoed, and may only
    /// travel in protected settings.
    #[serde(default)]
    pub secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl ArgSpec {
    /// An optional text argument.
    pub fn text(name: &str, help: &str) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind: ArgKind::Text,
            required: false,
            secret: false,
            default: None,
        }
    }

    /// An argument of the given kind.
    #[must_use]
    pub fn kind(mut self, kind: ArgKind) -> Self {
        self.kind = kind;
        self
    }

    /// Marks the argument required.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks the argument secret.
    #[must_use]
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Sets the default value, as the user would type it.
    #[must_use]
    pub fn default_value(mut self, value: &str) -> Self {
        self.default = Some(value.into());
        self
    }
}

/// One action an extension offers, such as `install` or `reset-password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionSpec {
    pub name: String,
    pub summary: String,
    /// The OS types the action applies to; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<OsType>,
    #[serde(default)]
    pub args: Vec<ArgSpec>,
}

impl ActionSpec {
    /// Whether the action applies to a VM of this OS type.
    pub fn supports(&self, os: OsType) -> bool {
        self.os.is_empty() || self.os.contains(&os)
    }
}

/// Everything the host needs to know about an extension without running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Lower-case id, the CLI group name: `azdock ext <id> <action>`.
    pub id: String,
    pub version: String,
    pub summary: String,
    pub handlers: Vec<HandlerSpec>,
    pub actions: Vec<ActionSpec>,
}

/// Argument names the host itself uses on every extension action.
pub const RESERVED_ARG_NAMES: &[&str] = &[
    "vm",
    "resource-group",
    "ids",
    "subscription",
    "output",
    "query",
    "help",
    "verbose",
    "debug",
    "only-show-errors",
    "no-wait",
    "yes",
    "cloud",
];

/// A manifest that breaks the rules every extension must follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid {what} `{value}`: use 1 to 32 characters of a-z, 0-9 and `-`, starting with a letter")]
    InvalidName { what: &'static str, value: String },
    #[error("duplicate {what} `{value}`")]
    Duplicate { what: &'static str, value: String },
    #[error("argument `--{0}` is reserved for the host")]
    ReservedArg(String),
    #[error("secret argument `--{0}` must be text or a file")]
    SecretKind(String),
    #[error("the manifest declares no actions")]
    NoActions,
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 32
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        && !name.ends_with('-')
}

fn check_unique<'a>(
    what: &'static str,
    names: impl Iterator<Item = &'a str>,
    validate: bool,
) -> Result<(), ManifestError> {
    let mut seen = HashSet::new();
    for name in names {
        if validate && !is_valid_name(name) {
            return Err(ManifestError::InvalidName { what, value: name.into() });
        }
        if !seen.insert(name) {
            return Err(ManifestError::Duplicate { what, value: name.into() });
        }
    }
    Ok(())
}

impl Manifest {
    /// Checks the rules the CLI and the registry rely on: names it can turn into subcommands and
    /// flags, no duplicates, no clash with the host's own flags, secrets only as text.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !is_valid_name(&self.id) {
            return Err(ManifestError::InvalidName { what: "extension id", value: self.id.clone() });
        }
        if self.actions.is_empty() {
            return Err(ManifestError::NoActions);
        }
        check_unique("handler", self.handlers.iter().map(|h| h.name.as_str()), true)?;
        check_unique("action", self.actions.iter().map(|a| a.name.as_str()), true)?;
        for action in &self.actions {
            check_unique("argument", action.args.iter().map(|a| a.name.as_str()), true)?;
            for arg in &action.args {
                if RESERVED_ARG_NAMES.contains(&arg.name.as_str()) {
                    return Err(ManifestError::ReservedArg(arg.name.clone()));
                }
                if arg.secret && !matches!(arg.kind, ArgKind::Text | ArgKind::File) {
                    return Err(ManifestError::SecretKind(arg.name.clone()));
                }
            }
        }
        Ok(())
    }

    /// The action with this name.
    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// The handlers available for an OS type, in manifest order (the first is the default).
    pub fn handlers_for(&self, os: OsType) -> impl Iterator<Item = &HandlerSpec> {
        self.handlers.iter().filter(move |h| h.os == os)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            id: "demo".into(),
            version: "1.0.0".into(),
            summary: "demo".into(),
            handlers: vec![HandlerSpec {
                name: "linux".into(),
                os: OsType::Linux,
                publisher: "P".into(),
                kind: "T".into(),
                type_handler_version: "1.0".into(),
            }],
            actions: vec![ActionSpec {
                name: "run".into(),
                summary: "run it".into(),
                os: vec![],
                args: vec![ArgSpec::text("password", "pw").secret()],
            }],
        }
    }

    #[test]
    fn a_good_manifest_validates() {
        assert_eq!(manifest().validate(), Ok(()));
    }

    #[test]
    fn bad_manifests_are_rejected_with_the_reason() {
        let mut m = manifest();
        m.id = "Bad_Id".into();
        assert_eq!(
            m.validate().unwrap_err().to_string(),
            "invalid extension id `Bad_Id`: use 1 to 32 characters of a-z, 0-9 and `-`, starting with a letter"
        );

        let mut m = manifest();
        m.actions.push(m.actions[0].clone());
        assert_eq!(m.validate(), Err(ManifestError::Duplicate { what: "action", value: "run".into() }));

        let mut m = manifest();
        m.actions[0].args.push(ArgSpec::text("vm", "clash"));
        assert_eq!(m.validate(), Err(ManifestError::ReservedArg("vm".into())));

        let mut m = manifest();
        m.actions[0].args[0].kind = ArgKind::Flag;
        assert_eq!(m.validate(), Err(ManifestError::SecretKind("password".into())));

        let mut m = manifest();
        m.actions.clear();
        assert_eq!(m.validate(), Err(ManifestError::NoActions));
    }

    #[test]
    fn manifest_json_uses_arm_names() {
        let json = serde_json::to_value(manifest()).unwrap();
        assert_eq!(json["handlers"][0]["type"], "T");
        assert_eq!(json["handlers"][0]["typeHandlerVersion"], "1.0");
        assert_eq!(json["handlers"][0]["os"], "Linux");
        let back: Manifest = serde_json::from_value(json).unwrap();
        assert_eq!(back, manifest());
    }
}
