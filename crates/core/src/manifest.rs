//! Extension manifests: what an extension is, which Azure handlers it drives, and its actions.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The operating system family of a VM or image, as ARM spells it in
/// `storageProfile.osDisk.osType`; the one OS type of the workspace (the Azure client's models
/// use it too). ARM sends `Linux` and `linux` depending on the provider, so it reads either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum OsType {
    Linux,
    Windows,
}

impl OsType {
    /// ARM's text, matched without regard to case; `None` for an OS azdock does not know.
    pub fn from_text(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("linux") {
            Some(Self::Linux)
        } else if text.eq_ignore_ascii_case("windows") {
            Some(Self::Windows)
        } else {
            None
        }
    }
}

impl<'de> Deserialize<'de> for OsType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_text(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown OS type `{text}`: Linux or Windows")))
    }
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

impl fmt::Display for ArgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArgKind::Text => "text",
            ArgKind::Flag => "flag",
            ArgKind::Integer => "integer",
            ArgKind::List => "list",
            ArgKind::File => "file",
        })
    }
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
    /// Whether planning needs the VM's network facts (addresses, FQDN, NSG). Without them the
    /// host reads the VM alone, one request per VM, which is what makes fleet runs cheap.
    /// Absent in a manifest means true.
    #[serde(default = "yes")]
    pub network: bool,
}

fn yes() -> bool {
    true
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

/// Words of the host's own `ext` commands, which no extension id may take: `azdock ext list`
/// must stay the host's list.
pub const RESERVED_IDS: &[&str] = &["list", "show", "set", "remove", "plugin", "help"];

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
    #[error("extension id `{0}` is a command of the host (`azdock ext {0}`); choose another id")]
    ReservedId(String),
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
        if RESERVED_IDS.contains(&self.id.as_str()) {
            return Err(ManifestError::ReservedId(self.id.clone()));
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
                network: true,
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
        m.id = "list".into();
        assert_eq!(
            m.validate().unwrap_err().to_string(),
            "extension id `list` is a command of the host (`azdock ext list`); choose another id"
        );

        let mut m = manifest();
        m.actions.clear();
        assert_eq!(m.validate(), Err(ManifestError::NoActions));
    }

    #[test]
    fn os_types_read_either_case_and_refuse_others() {
        assert_eq!(serde_json::from_str::<OsType>("\"linux\"").unwrap(), OsType::Linux);
        assert_eq!(serde_json::from_str::<OsType>("\"WINDOWS\"").unwrap(), OsType::Windows);
        let e = serde_json::from_str::<OsType>("\"Plan9\"").unwrap_err().to_string();
        assert!(e.contains("unknown OS type `Plan9`"), "{e}");
        assert_eq!(serde_json::to_string(&OsType::Linux).unwrap(), "\"Linux\"");
        // Messages name argument kinds as manifests spell them.
        for kind in [ArgKind::Text, ArgKind::Flag, ArgKind::Integer, ArgKind::List, ArgKind::File] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.to_string());
        }
    }

    #[test]
    fn an_action_without_network_in_its_json_needs_the_network() {
        let action: ActionSpec = serde_json::from_value(serde_json::json!({"name": "a", "summary": "s"})).unwrap();
        assert!(action.network);
        let action: ActionSpec =
            serde_json::from_value(serde_json::json!({"name": "a", "summary": "s", "network": false})).unwrap();
        assert!(!action.network);
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
