//! Plans: what an extension asks the host to do, as data the host can check, log and execute.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::facts::VmFacts;
use crate::secret::{Secret, expose, expose_option};

/// The value of one action argument, as parsed by the CLI from the manifest's [`ArgKind`].
///
/// [`ArgKind`]: crate::manifest::ArgKind
///
/// A secret is shared, not copied, when the arguments are: one invocation's arguments go to
/// every VM of a fleet, and the one allocation is wiped when the last of them is dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ArgValue {
    Text(String),
    Flag(bool),
    Integer(i64),
    List(Vec<String>),
    /// A secret argument; it may only be placed into protected settings.
    Secret(#[serde(serialize_with = "expose")] Arc<Secret<String>>),
}

impl ArgValue {
    /// A secret argument.
    pub fn secret(value: impl Into<String>) -> Self {
        Self::Secret(Arc::new(Secret::new(value.into())))
    }
}

/// The arguments of one invocation, by argument name.
pub type Args = BTreeMap<String, ArgValue>;

/// What the host passes to [`VmExtension::plan`](crate::VmExtension::plan).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRequest {
    pub action: String,
    #[serde(default)]
    pub args: Args,
    pub facts: VmFacts,
    /// Unique per invocation. Extensions use it as `forceUpdateTag` so that repeating the same
    /// request really runs the handler again, while the plan itself stays a pure function.
    pub run_id: String,
}

impl PlanRequest {
    /// A text (or file contents) argument.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.args.get(name) {
            Some(ArgValue::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// A flag; absent means false.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.args.get(name), Some(ArgValue::Flag(true)))
    }

    /// A whole-number argument.
    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.args.get(name) {
            Some(ArgValue::Integer(n)) => Some(*n),
            _ => None,
        }
    }

    /// A repeatable argument; absent means empty.
    pub fn list(&self, name: &str) -> &[String] {
        match self.args.get(name) {
            Some(ArgValue::List(items)) => items,
            _ => &[],
        }
    }

    /// A secret argument.
    pub fn secret(&self, name: &str) -> Option<&Secret<String>> {
        match self.args.get(name) {
            Some(ArgValue::Secret(s)) => Some(s.as_ref()),
            _ => None,
        }
    }
}

/// The extension instance to PUT on the VM: ARM's extension resource, minus what the host adds
/// (location, ids).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionInstance {
    pub name: String,
    pub publisher: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub type_handler_version: String,
    #[serde(default)]
    pub auto_upgrade_minor_version: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_update_tag: Option<String>,
    #[serde(default)]
    pub settings: serde_json::Value,
    #[serde(default, serialize_with = "expose_option", skip_serializing_if = "Option::is_none")]
    pub protected_settings: Option<Secret<serde_json::Value>>,
}

/// The change the plan makes to the VM's extensions.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Operation {
    /// Create or update an extension instance and wait for its handler's result.
    Put(Box<ExtensionInstance>),
    /// Remove an extension instance by name.
    Delete { name: String },
    /// Change nothing; report the facts and the extension's instanceView (for `status`).
    Inspect,
}

/// Network protocol for an inbound rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// How to tell that an endpoint on the VM is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Probe {
    /// A TCP connection is accepted.
    Tcp,
    /// A TLS handshake succeeds with this client identity, verifying the server against `ca`
    /// (paths to local PEM files).
    #[serde(rename_all = "camelCase")]
    MutualTls { ca: String, cert: String, key: String },
    /// `docker version` answers through an SSH login as `user` — the connection the docker CLI
    /// makes for `ssh://` — with the host key checked against `known_hosts` (a path) and the
    /// user's own SSH key (`identity`, a path, else what ssh picks).
    #[serde(rename_all = "camelCase")]
    Ssh { user: String, known_hosts: String, identity: Option<String> },
}

/// What a handler prints before each SSH host key it reports for [`Step::PinHostKeys`]
/// (`azdock-host-key ssh-ed25519 AAAA…`, one line per key).
pub const HOST_KEY_PREFIX: &str = "azdock-host-key ";

/// How clients reach a daemon an extension sets up on the VM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A TCP port with mutual TLS (certificates from the user's CA).
    #[default]
    Tls,
    /// The daemon's unix socket, through an SSH login: no daemon port faces the network.
    Ssh,
}

impl Transport {
    /// Every transport, the default first.
    pub const ALL: [Transport; 2] = [Transport::Tls, Transport::Ssh];

    pub fn name(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::Ssh => "ssh",
        }
    }

    /// Parses `--transport`; the message names what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("unknown transport `{text}`: use tls or ssh"))
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A prerequisite or follow-up the host carries out around the operation.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Step {
    /// Admit inbound traffic to a port in the VM's network security group.
    #[serde(rename_all = "camelCase")]
    OpenInboundPort {
        rule_name: String,
        port: u16,
        protocol: Protocol,
        /// Source address prefixes (CIDR, an IP, or `*`).
        sources: Vec<String>,
    },
    /// Remove an inbound rule this extension opened earlier.
    #[serde(rename_all = "camelCase")]
    CloseInboundPort { rule_name: String },
    /// Wait until the VM answers on a port (its FQDN, else its public IP).
    #[serde(rename_all = "camelCase")]
    WaitForEndpoint { port: u16, probe: Probe, timeout_secs: u32 },
    /// Pin the VM's SSH host keys, as the operation's handler reported them (`azdock-host-key
    /// TYPE BASE64` lines in its output), in `known_hosts` (a path): hashed entries for each of
    /// the VM's names and addresses on `port`, replacing what was there for them. Nothing is
    /// trusted on first use: no reported key is an error.
    #[serde(rename_all = "camelCase")]
    PinHostKeys { known_hosts: String, port: u16 },
    /// Write a file below the extension's own local data directory. `path` is relative; the host
    /// refuses absolute paths and `..`.
    #[serde(rename_all = "camelCase")]
    WriteLocalFile {
        path: String,
        #[serde(serialize_with = "expose")]
        contents: Secret<String>,
        /// Unix permission bits, e.g. `0o600`.
        mode: u32,
    },
}

/// What an action asks the host to do, in order: prerequisites, the operation, follow-ups.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Step>,
    pub operation: Operation,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_ups: Vec<Step>,
    /// Messages for the user (warnings, hints), printed on stderr.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Plan {
    /// A plan with just an operation.
    pub fn new(operation: Operation) -> Self {
        Self { prerequisites: Vec::new(), operation, follow_ups: Vec::new(), notes: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::PowerState;
    use crate::manifest::OsType;

    fn facts() -> VmFacts {
        VmFacts {
            name: "vm1".into(),
            resource_group: "rg".into(),
            subscription_id: "sub".into(),
            resource_id: "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1".into(),
            location: "westeurope".into(),
            os_type: OsType::Linux,
            power_state: PowerState::Running,
            cloud: "local".into(),
            admin_username: Some("azureuser".into()),
            fqdn: None,
            public_ips: vec!["127.1.0.4".parse().unwrap()],
            private_ips: vec![],
            extensions: vec![],
        }
    }

    #[test]
    fn plan_round_trips_through_json_with_secrets() {
        let plan = Plan {
            prerequisites: vec![Step::OpenInboundPort {
                rule_name: "docker".into(),
                port: 2376,
                protocol: Protocol::Tcp,
                sources: vec!["*".into()],
            }],
            operation: Operation::Put(Box::new(ExtensionInstance {
                name: "docker".into(),
                publisher: "Microsoft.Azure.Extensions".into(),
                kind: "CustomScript".into(),
                type_handler_version: "2.1".into(),
                auto_upgrade_minor_version: true,
                force_update_tag: Some("run-1".into()),
                settings: serde_json::json!({}),
                protected_settings: Some(Secret::new(serde_json::json!({"script": "c2g="}))),
            })),
            follow_ups: vec![Step::WaitForEndpoint { port: 2376, probe: Probe::Tcp, timeout_secs: 300 }],
            notes: vec![],
        };
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["operation"]["kind"], "put");
        assert_eq!(json["operation"]["protectedSettings"]["script"], "c2g=");
        assert_eq!(json["prerequisites"][0]["kind"], "openInboundPort");
        assert_eq!(json["prerequisites"][0]["ruleName"], "docker");
        let back: Plan = serde_json::from_value(json).unwrap();
        assert_eq!(back, plan);
        // Debug output of a plan never shows the protected settings.
        assert!(!format!("{plan:?}").contains("c2g="));
    }

    #[test]
    fn request_accessors_read_typed_arguments() {
        let mut args = Args::new();
        args.insert("username".into(), ArgValue::Text("ops".into()));
        args.insert("replace".into(), ArgValue::Flag(true));
        args.insert("port".into(), ArgValue::Integer(2376));
        args.insert("san".into(), ArgValue::List(vec!["a.example".into()]));
        args.insert("password".into(), ArgValue::secret("pw"));
        let request = PlanRequest { action: "x".into(), args, facts: facts(), run_id: "r".into() };
        assert_eq!(request.text("username"), Some("ops"));
        assert!(request.flag("replace"));
        assert!(!request.flag("missing"));
        assert_eq!(request.integer("port"), Some(2376));
        assert_eq!(request.list("san"), ["a.example".to_string()]);
        assert_eq!(request.secret("password").map(|s| s.expose().as_str()), Some("pw"));
        assert_eq!(request.text("password"), None);
        let json = serde_json::to_string(&request).unwrap();
        let back: PlanRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, request);
    }
}
