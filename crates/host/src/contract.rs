//! The contract the host holds every extension to, built-in or plugin alike: an action it
//! declares, on an OS it declares, with the arguments it declares, and secrets that leave only
//! in protected settings. Extensions are trusted to plan, not to follow the rules.

use std::path::Path;
use std::sync::Arc;

use azdock_core::{
    ActionSpec, ArgKind, ArgSpec, ArgValue, Args, ExtensionError, Manifest, Operation, OsType, Plan, PlanRequest,
    Secret,
};
use serde_json::Value;

/// Secrets shorter than this are not searched for in plans: they cannot be told apart from
/// ordinary words (`Tcp`, `on`), and Azure's own rules ask for longer ones.
const MIN_SECRET_SEARCH: usize = 4;

fn invalid(arg: &str, message: impl Into<String>) -> ExtensionError {
    ExtensionError::InvalidArgument { arg: arg.into(), message: message.into() }
}

/// The action's spec, or the error naming what the extension offers.
pub fn action<'m>(manifest: &'m Manifest, name: &str) -> Result<&'m ActionSpec, ExtensionError> {
    manifest.action(name).ok_or_else(|| {
        let known: Vec<&str> = manifest.actions.iter().map(|a| a.name.as_str()).collect();
        ExtensionError::Unsupported {
            action: name.into(),
            reason: format!("extension `{}` has no such action (it has: {})", manifest.id, known.join(", ")),
        }
    })
}

fn kind_matches(spec: &ArgSpec, value: &ArgValue) -> bool {
    match value {
        ArgValue::Secret(_) => spec.secret,
        _ if spec.secret => false,
        ArgValue::Text(_) => matches!(spec.kind, ArgKind::Text | ArgKind::File),
        ArgValue::Flag(_) => spec.kind == ArgKind::Flag,
        ArgValue::Integer(_) => spec.kind == ArgKind::Integer,
        ArgValue::List(_) => spec.kind == ArgKind::List,
    }
}

/// Checks a request before the extension sees it: the action exists and applies to the VM's OS,
/// every argument is declared with this kind (secrets as secrets), and required ones are there.
pub fn check_request(manifest: &Manifest, request: &PlanRequest) -> Result<(), ExtensionError> {
    let spec = action(manifest, &request.action)?;
    if !spec.supports(request.facts.os_type) {
        let os: Vec<String> = spec.os.iter().map(ToString::to_string).collect();
        return Err(ExtensionError::Unsupported {
            action: request.action.clone(),
            reason: format!(
                "VM `{}` runs {}, and `{}` is for {} VMs only",
                request.facts.name,
                request.facts.os_type,
                request.action,
                os.join(" and ")
            ),
        });
    }
    for (name, value) in &request.args {
        let Some(arg) = spec.args.iter().find(|a| &a.name == name) else {
            return Err(invalid(name, format!("`{}` takes no such argument", request.action)));
        };
        if !kind_matches(arg, value) {
            let expected = if arg.secret { "a secret".to_owned() } else { arg.kind.to_string() };
            return Err(invalid(name, format!("expected {expected}")));
        }
    }
    for arg in spec.args.iter().filter(|a| a.required) {
        if !request.args.contains_key(&arg.name) {
            return Err(invalid(&arg.name, "this argument is required"));
        }
    }
    Ok(())
}

/// The arguments an action gets from its manifest's defaults alone (`vm create --ext ID`); an
/// action with a required argument that has no default cannot run that way.
pub fn defaults(spec: &ActionSpec) -> Result<Args, ExtensionError> {
    let mut args = Args::new();
    for arg in &spec.args {
        let Some(text) = &arg.default else {
            if arg.required {
                return Err(invalid(&arg.name, format!("`{}` needs it and has no default", spec.name)));
            }
            continue;
        };
        let value = match arg.kind {
            ArgKind::Integer => ArgValue::Integer(
                text.parse().map_err(|_| invalid(&arg.name, format!("its default `{text}` is not a number")))?,
            ),
            ArgKind::Flag => ArgValue::Flag(text == "true"),
            ArgKind::List => ArgValue::List(vec![text.clone()]),
            ArgKind::Text if !arg.secret => ArgValue::Text(text.clone()),
            // A secret or a file never comes from a default.
            ArgKind::Text | ArgKind::File => continue,
        };
        args.insert(arg.name.clone(), value);
    }
    Ok(args)
}

/// One `--ext ID[:ACTION]` of a VM create: the extension from the registry and its action's
/// arguments from the manifest's defaults.
#[derive(Clone)]
pub struct Step {
    pub extension: std::sync::Arc<dyn azdock_core::VmExtension>,
    pub action: String,
    pub args: Args,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("extension", &self.extension.manifest().id)
            .field("action", &self.action)
            .field("args", &self.args)
            .finish()
    }
}

/// The steps `--ext ID[:ACTION]` words name (the action `install` when none is given), each
/// found in the registry, for the OS `os`, and able to run on its manifest's defaults alone; a
/// usage error naming the word and what would do otherwise.
pub fn steps(registry: &azdock_core::Registry, words: &[String], os: OsType) -> crate::Result<Vec<Step>> {
    let usage = |m: String| crate::Error::Usage(m);
    let mut out = Vec::new();
    for word in words {
        let (id, action) = word.split_once(':').unwrap_or((word, "install"));
        let Some(entry) = registry.get(id) else {
            let ids: Vec<String> = registry.entries().iter().map(|e| e.extension.manifest().id.clone()).collect();
            return Err(usage(format!("--ext {word}: no extension `{id}`; known are {}", ids.join(", "))));
        };
        let spec = self::action(entry.extension.manifest(), action).map_err(|e| usage(format!("--ext {word}: {e}")))?;
        if !spec.supports(os) {
            return Err(usage(format!("--ext {word}: `{action}` is not for {os} VMs")));
        }
        let args = defaults(spec).map_err(|e| {
            usage(format!("--ext {word}: {e}; run `azdock ext {id} {action} …` with it once the VM exists"))
        })?;
        out.push(Step { extension: entry.extension.clone(), action: action.to_owned(), args });
    }
    Ok(out)
}

/// Who holds a handler's slot on a VM: Azure allows one instance per handler on a Linux VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// No instance of the handler, or one the planning extension holds (or that no azdock
    /// extension claims and the plan names itself): the plan goes ahead as written.
    Free,
    /// The planner's own instance under another name (it was taken over, say): the plan's
    /// instance is put under that name, the only one Azure accepts for the handler.
    Own { name: String },
    /// Another extension holds it and the user passed `--take-over`: the plan's instance is put
    /// under the existing instance's name, which Azure accepts.
    TakeOver { name: String, owner: String },
}

/// Checks a plan's PUT against the handler instances on the VM. `owner_of` says which azdock
/// extension made an instance (its tag, or the host's records for instances made before tags).
pub fn check_slot(
    extension: &str,
    action: &str,
    plan: &Plan,
    facts: &azdock_core::VmFacts,
    owner_of: &dyn Fn(&azdock_core::InstalledExtension) -> Option<String>,
    take_over: bool,
) -> Result<Slot, ExtensionError> {
    let Operation::Put(instance) = &plan.operation else { return Ok(Slot::Free) };
    let Some(held) = facts.extension_of(&instance.publisher, &instance.kind) else { return Ok(Slot::Free) };
    let owner = owner_of(held);
    let same_name = held.name.eq_ignore_ascii_case(&instance.name);
    // Who holds it, as the take-over warning and the refusal name them.
    let (owner, holder) = match owner {
        Some(o) if o == extension && same_name => return Ok(Slot::Free),
        Some(o) if o == extension => return Ok(Slot::Own { name: held.name.clone() }),
        None if same_name => return Ok(Slot::Free),
        Some(o) => (o.clone(), format!("extension `{o}`")),
        None => ("an instance azdock did not make".to_owned(), "an instance azdock did not make".to_owned()),
    };
    let handler = format!("{}.{}", instance.publisher, instance.kind);
    if take_over {
        return Ok(Slot::TakeOver { name: held.name.clone(), owner });
    }
    Err(ExtensionError::Unsupported {
        action: action.to_owned(),
        reason: format!(
            "VM `{}` runs handler {handler} as instance `{}`, held by {holder}, and Azure allows one instance per handler; pass --take-over to replace it (its work on the VM is then undone or overwritten)",
            facts.name, held.name
        ),
    })
}

/// A `File` argument: the host reads the file and passes its contents, as a secret when the
/// manifest marks the argument secret (the path is never what the extension gets).
pub fn file_argument(spec: &ArgSpec, path: &Path) -> Result<ArgValue, ExtensionError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(&spec.name, format!("cannot read `{}`: {e}", path.display())))?;
    Ok(if spec.secret { ArgValue::Secret(Arc::new(Secret::new(text))) } else { ArgValue::Text(text) })
}

fn strings_containing(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s.contains(needle),
        Value::Array(items) => items.iter().any(|v| strings_containing(v, needle)),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains(needle) || strings_containing(v, needle)),
        _ => false,
    }
}

/// Checks a plan before the host carries it out: no secret argument appears anywhere but in the
/// operation's protected settings (public settings, instance names, rules, notes and local files
/// are all shown or stored in the clear).
pub fn check_plan(manifest: &Manifest, request: &PlanRequest, plan: &Plan) -> Result<(), ExtensionError> {
    let secrets: Vec<(&String, &Secret<String>)> = request
        .args
        .iter()
        .filter_map(|(name, value)| match value {
            ArgValue::Secret(s) if s.expose().chars().count() >= MIN_SECRET_SEARCH => Some((name, s.as_ref())),
            _ => None,
        })
        .collect();
    if secrets.is_empty() {
        return Ok(());
    }
    let mut open = serde_json::to_value(plan).unwrap_or(Value::Null);
    if let Operation::Put(_) = &plan.operation
        && let Some(op) = open.get_mut("operation").and_then(Value::as_object_mut)
    {
        op.remove("protectedSettings");
    }
    // The plan with its secrets in the clear, to search: wiped when the search is done.
    let open = Secret::new(open);
    for (name, secret) in secrets {
        if strings_containing(open.expose(), secret.expose()) {
            return Err(ExtensionError::Failed(format!(
                "extension `{}` broke the host's rules: its plan for `{}` puts the secret `--{name}` outside the protected settings; the host refused to run it",
                manifest.id, request.action
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use azdock_core::{ExtensionInstance, HandlerSpec, OsType, PowerState, Step, VmFacts};
    use serde_json::json;

    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            id: "demo".into(),
            version: "1".into(),
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
                summary: "run".into(),
                os: vec![OsType::Linux],
                args: vec![
                    ArgSpec::text("user", "u").required(),
                    ArgSpec::text("password", "p").secret(),
                    ArgSpec::text("script", "s").kind(ArgKind::File),
                    ArgSpec::text("key", "k").kind(ArgKind::File).secret(),
                    ArgSpec::text("force", "f").kind(ArgKind::Flag),
                    ArgSpec::text("port", "n").kind(ArgKind::Integer),
                    ArgSpec::text("from", "l").kind(ArgKind::List),
                ],
                network: true,
            }],
        }
    }

    fn request(os: OsType, args: &[(&str, ArgValue)]) -> PlanRequest {
        PlanRequest {
            action: "run".into(),
            args: args.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            facts: VmFacts {
                name: "vm1".into(),
                resource_group: "g".into(),
                subscription_id: "s".into(),
                resource_id: "/x".into(),
                location: "l".into(),
                os_type: os,
                power_state: PowerState::Running,
                cloud: "local".into(),
                admin_username: None,
                fqdn: None,
                public_ips: vec![],
                private_ips: vec![],
                extensions: vec![],
            },
            run_id: "r".into(),
        }
    }

    fn text(s: &str) -> ArgValue {
        ArgValue::Text(s.into())
    }

    #[test]
    fn requests_are_checked_against_the_manifest() {
        let m = manifest();
        let user = ("user", text("ops"));
        assert_eq!(check_request(&m, &request(OsType::Linux, std::slice::from_ref(&user))), Ok(()));
        let all = [
            user.clone(),
            ("password", ArgValue::secret("pw")),
            ("script", text("echo")),
            ("key", ArgValue::secret("k")),
            ("force", ArgValue::Flag(true)),
            ("port", ArgValue::Integer(1)),
            ("from", ArgValue::List(vec![])),
        ];
        assert_eq!(check_request(&m, &request(OsType::Linux, &all)), Ok(()));

        let e = check_request(&m, &request(OsType::Windows, std::slice::from_ref(&user))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`run` is not supported on this VM: VM `vm1` runs Windows, and `run` is for Linux VMs only"
        );
        assert!(e.is_usage());

        let mut r = request(OsType::Linux, std::slice::from_ref(&user));
        r.action = "fly".into();
        assert_eq!(
            check_request(&m, &r).unwrap_err().to_string(),
            "`fly` is not supported on this VM: extension `demo` has no such action (it has: run)"
        );

        let e = check_request(&m, &request(OsType::Linux, &[])).unwrap_err();
        assert_eq!(e, invalid("user", "this argument is required"));
        let e = check_request(&m, &request(OsType::Linux, &[user.clone(), ("color", text("red"))])).unwrap_err();
        assert_eq!(e, invalid("color", "`run` takes no such argument"));
        // A secret must arrive as a secret, and only a secret argument takes one.
        let e = check_request(&m, &request(OsType::Linux, &[user.clone(), ("password", text("pw"))])).unwrap_err();
        assert_eq!(e, invalid("password", "expected a secret"));
        let e =
            check_request(&m, &request(OsType::Linux, &[user.clone(), ("script", ArgValue::secret("x"))])).unwrap_err();
        assert_eq!(e, invalid("script", "expected file"));
        for (name, wrong) in
            [("force", text("yes")), ("port", text("1")), ("from", text("a")), ("user", ArgValue::Flag(true))]
        {
            assert!(
                check_request(&m, &request(OsType::Linux, &[("user", text("u")), (name, wrong.clone())])).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn secret_files_are_read_into_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "PRIVATE").unwrap();
        let m = manifest();
        let args = &m.actions[0].args;
        let key = file_argument(&args[3], &path).unwrap();
        assert!(matches!(&key, ArgValue::Secret(s) if s.expose() == "PRIVATE"), "{key:?}");
        assert_eq!(file_argument(&args[2], &path).unwrap(), text("PRIVATE"));
        let e = file_argument(&args[2], &dir.path().join("none")).unwrap_err();
        assert!(e.to_string().starts_with("invalid value for `--script`: cannot read"), "{e}");
    }

    fn put(settings: Value, protected: Value) -> Plan {
        Plan::new(Operation::Put(Box::new(ExtensionInstance {
            name: "x".into(),
            publisher: "P".into(),
            kind: "T".into(),
            type_handler_version: "1.0".into(),
            auto_upgrade_minor_version: true,
            force_update_tag: None,
            settings,
            protected_settings: Some(Secret::new(protected)),
        })))
    }

    #[test]
    fn secrets_may_only_travel_in_protected_settings() {
        let m = manifest();
        let r = request(OsType::Linux, &[("user", text("ops")), ("password", ArgValue::secret("hunter22"))]);
        assert_eq!(check_plan(&m, &r, &put(json!({"user": "ops"}), json!({"password": "hunter22"}))), Ok(()));
        for leak in [
            put(json!({"password": "hunter22"}), json!({})),
            put(json!({"cmd": "echo hunter22 | chpasswd"}), json!({})),
            put(json!({"hunter22": true}), json!({})),
            Plan { notes: vec!["your password is hunter22".into()], ..put(json!({}), json!({"p": "hunter22"})) },
            Plan {
                prerequisites: vec![Step::WriteLocalFile {
                    path: "p".into(),
                    contents: Secret::new("hunter22".into()),
                    mode: 0o600,
                }],
                ..Plan::new(Operation::Inspect)
            },
        ] {
            let e = check_plan(&m, &r, &leak).unwrap_err();
            assert!(!e.is_usage());
            assert!(e.to_string().contains("puts the secret `--password` outside the protected settings"), "{e}");
            assert!(!e.to_string().contains("hunter22"));
        }
        // Short secrets are not searched for: they would match ordinary words.
        let short = request(OsType::Linux, &[("password", ArgValue::secret("Tcp"))]);
        assert_eq!(check_plan(&m, &short, &put(json!({"protocol": "Tcp"}), json!({}))), Ok(()));
    }

    #[test]
    fn defaults_give_every_kind_and_refuse_a_required_argument_without_one() {
        let spec = ActionSpec {
            name: "install".into(),
            summary: "s".into(),
            os: vec![OsType::Linux],
            args: vec![
                ArgSpec::text("port", "p").kind(ArgKind::Integer).default_value("2376"),
                ArgSpec::text("handler", "h").default_value("customscript"),
                ArgSpec::text("verbose", "v").kind(ArgKind::Flag).default_value("true"),
                ArgSpec::text("quiet", "q").kind(ArgKind::Flag).default_value("false"),
                ArgSpec::text("from", "f").kind(ArgKind::List).default_value("*"),
                ArgSpec::text("token", "t").secret().default_value("never-used"),
                ArgSpec::text("script", "s").kind(ArgKind::File).default_value("/etc/never-read"),
                ArgSpec::text("note", "n"),
            ],
            network: true,
        };
        let args = defaults(&spec).unwrap();
        let expect: Args = [
            ("port", ArgValue::Integer(2376)),
            ("handler", text("customscript")),
            ("verbose", ArgValue::Flag(true)),
            ("quiet", ArgValue::Flag(false)),
            ("from", ArgValue::List(vec!["*".into()])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(args, expect);
        let mut broken = spec.clone();
        broken.args[0] = ArgSpec::text("port", "p").kind(ArgKind::Integer).default_value("many");
        assert!(defaults(&broken).unwrap_err().to_string().contains("its default `many` is not a number"));
        let mut needs = spec;
        needs.args.push(ArgSpec::text("user", "u").required());
        let e = defaults(&needs).unwrap_err().to_string();
        assert!(e.contains("--user") && e.contains("`install` needs it and has no default"), "{e}");
        needs.args.last_mut().unwrap().default = Some("ops".into());
        assert_eq!(defaults(&needs).unwrap()["user"], text("ops"));
    }

    struct Planless(Manifest);

    #[azdock_core::async_trait]
    impl azdock_core::VmExtension for Planless {
        fn manifest(&self) -> &Manifest {
            &self.0
        }

        async fn plan(&self, _: &PlanRequest) -> Result<Plan, ExtensionError> {
            Ok(Plan::new(Operation::Inspect))
        }
    }

    #[test]
    fn ext_words_become_steps_with_their_defaults_or_a_usage_error() {
        let mut m = manifest();
        m.actions.push(ActionSpec {
            name: "install".into(),
            summary: "i".into(),
            os: vec![OsType::Linux],
            args: vec![ArgSpec::text("port", "p").kind(ArgKind::Integer).default_value("80")],
            network: true,
        });
        m.actions.push(ActionSpec {
            name: "rdp".into(),
            summary: "r".into(),
            os: vec![OsType::Windows],
            args: vec![],
            network: false,
        });
        m.handlers.push(HandlerSpec {
            name: "windows".into(),
            os: OsType::Windows,
            publisher: "P".into(),
            kind: "W".into(),
            type_handler_version: "1.0".into(),
        });
        let mut registry = azdock_core::Registry::new();
        registry.add(azdock_core::Source::Builtin, std::sync::Arc::new(Planless(m))).unwrap();
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let got = steps(&registry, &words(&["demo", "demo:install"]), OsType::Linux).unwrap();
        assert_eq!(got.len(), 2);
        for step in &got {
            assert_eq!((step.action.as_str(), step.args.get("port")), ("install", Some(&ArgValue::Integer(80))));
            assert_eq!(step.extension.manifest().id, "demo");
        }
        assert!(format!("{:?}", got[0]).contains("demo"));
        for (word, says) in [
            ("nope", "--ext nope: no extension `nope`; known are demo"),
            ("demo:fly", "--ext demo:fly: "),
            ("demo:rdp", "--ext demo:rdp: `rdp` is not for Linux VMs"),
            ("demo:run", "run `azdock ext demo run …` with it once the VM exists"),
        ] {
            let e = steps(&registry, &words(&[word]), OsType::Linux).unwrap_err();
            assert!(e.is_usage() && e.to_string().contains(says), "{word}: {e}");
        }
        assert_eq!(steps(&registry, &words(&["demo:rdp"]), OsType::Windows).unwrap()[0].action, "rdp");
    }

    fn holding(name: &str, owner: Option<&str>) -> azdock_core::InstalledExtension {
        azdock_core::InstalledExtension {
            name: name.into(),
            publisher: "p".into(),
            kind: "t".into(),
            type_handler_version: "1.0".into(),
            provisioning_state: None,
            settings: Value::Null,
            statuses: vec![],
            substatuses: vec![],
            owner: owner.map(str::to_owned),
        }
    }

    #[test]
    fn a_handler_slot_another_extension_holds_is_refused_unless_taken_over() {
        let owner_of = |e: &azdock_core::InstalledExtension| e.owner.clone();
        let mut facts = request(OsType::Linux, &[]).facts;
        let plan = put(json!({}), json!({}));
        let slot = |facts: &VmFacts, take_over: bool| check_slot("demo", "run", &plan, facts, &owner_of, take_over);
        // Nothing there; or the planner's own instance, under any name.
        assert_eq!(slot(&facts, false), Ok(Slot::Free));
        facts.extensions = vec![holding("x", Some("demo"))];
        assert_eq!(slot(&facts, false), Ok(Slot::Free));
        facts.extensions = vec![holding("mine", Some("demo"))];
        assert_eq!(slot(&facts, false), Ok(Slot::Own { name: "mine".into() }));
        // An instance azdock did not tag, that the plan names itself (it found it): as before.
        facts.extensions = vec![holding("X", None)];
        assert_eq!(slot(&facts, false), Ok(Slot::Free));
        // Another extension's: refused, naming it and the way out; taken over under its name.
        facts.extensions = vec![holding("docker", Some("docker"))];
        let e = slot(&facts, false).unwrap_err().to_string();
        assert!(e.contains("held by extension `docker`") && e.contains("--take-over") && e.contains("P.T"), "{e}");
        assert!(e.contains("instance `docker`") && e.contains("`run`"), "{e}");
        assert_eq!(slot(&facts, true), Ok(Slot::TakeOver { name: "docker".into(), owner: "docker".into() }));
        // An untagged instance under another name: Azure would refuse the second instance.
        facts.extensions = vec![holding("theirs", None)];
        let e = slot(&facts, false).unwrap_err().to_string();
        assert!(e.contains("held by an instance azdock did not make"), "{e}");
        assert!(matches!(slot(&facts, true), Ok(Slot::TakeOver { name, .. }) if name == "theirs"));
        // Another handler's instance is no one's business; nor is a plan that puts nothing.
        facts.extensions = vec![azdock_core::InstalledExtension { kind: "other".into(), ..holding("o", Some("x")) }];
        assert_eq!(slot(&facts, false), Ok(Slot::Free));
        facts.extensions = vec![holding("docker", Some("docker"))];
        let inspect = Plan::new(Operation::Inspect);
        assert_eq!(check_slot("demo", "run", &inspect, &facts, &owner_of, false), Ok(Slot::Free));
        // The owner the host's records give counts as a tag does.
        facts.extensions = vec![holding("x", None)];
        let recorded = |_: &azdock_core::InstalledExtension| Some("docker".to_owned());
        let e = check_slot("demo", "run", &plan, &facts, &recorded, false).unwrap_err().to_string();
        assert!(e.contains("held by extension `docker`"), "{e}");
    }
}
