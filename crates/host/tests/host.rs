//! The host against the local cloud over real HTTPS: facts, the contract, plan execution (the
//! extension PUT and DELETE with the handler's verdict, NSG rules with their protocol and
//! priority, endpoint waits, local files), and what each costs in requests.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use azdock_azure_sm::{Arm, ClientSecretCredential, Cloud, CloudKind, RetryPolicy};
use azdock_core::{
    ActionSpec, ArgSpec, ArgValue, Args, ExtensionError, ExtensionInstance, Manifest, Operation, OsType, Plan,
    PlanRequest, Probe, Protocol, Secret, Step, VmExtension,
};
use azdock_emulator::{Config, Emulator, LOCAL_SUBSCRIPTION};
use azdock_host::probe::Failure;
use azdock_host::{Event, Host, Invocation, Recorded, VmAddr, Waits, diagnose, network, vm};
use reqwest::Method;
use serde_json::{Value, json};

struct Fixture {
    emulator: Emulator,
    plain: azdock_tests::arm::Arm,
    arm: Arm,
    data: tempfile::TempDir,
    _state: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Self {
        let state = tempfile::tempdir().unwrap();
        let emulator = Emulator::start(Config::for_tests(state.path())).await.unwrap();
        let p = emulator.principals()[0].clone();
        let cloud = Cloud::local(emulator.base_url(), emulator.ca_pem());
        let credential = ClientSecretCredential::new(
            &cloud.authority_host,
            &p.tenant_id,
            &p.client_id,
            Secret::new(p.client_secret.clone()),
        );
        let arm = Arm::new(cloud, Arc::new(credential), RetryPolicy::default()).unwrap();
        let plain = azdock_tests::arm::Arm::sign_in(
            emulator.base_url(),
            emulator.ca_pem().as_bytes(),
            &p.tenant_id,
            &p.client_id,
            &p.client_secret,
        )
        .await
        .with_admin_key(emulator.admin_key());
        Self { emulator, plain, arm, data: tempfile::tempdir().unwrap(), _state: state }
    }

    fn host<'a>(&'a self, events: &'a Recorded) -> Host<'a> {
        Host { arm: &self.arm, data_dir: self.data.path(), events }
    }

    /// The sequence number of the last logged request.
    async fn mark(&self) -> u64 {
        self.plain.admin(Method::GET, "/requests", None).await.1["last"].as_u64().unwrap()
    }

    /// ARM requests since `mark`, as `METHOD path` without the query.
    async fn since(&self, mark: u64) -> Vec<String> {
        let (_, log) = self.plain.admin(Method::GET, &format!("/requests?since={mark}"), None).await;
        log["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["path"].as_str().unwrap()))
            .filter(|r| r.contains("/subscriptions/"))
            .map(|r| r.split('?').next().unwrap().to_owned())
            .collect()
    }

    /// Makes the next `method` request whose path holds `fragment` meet `fault` (once).
    async fn fail_next(&self, method: &str, fragment: &str, fault: Value) {
        let rules = json!({"rules": [{"method": method, "pathContains": fragment, "sequence": [fault]}]});
        self.plain.admin(Method::PUT, "/faults", Some(rules)).await;
    }

    async fn password_ok(&self, vm: &str, user: &str, password: &str) -> bool {
        let path = format!("/guests/{LOCAL_SUBSCRIPTION}/g/{vm}/verify-password");
        self.plain.admin(Method::POST, &path, Some(json!({"username": user, "password": password}))).await.1["valid"]
            == true
    }
}

fn addr(name: &str) -> VmAddr {
    VmAddr::new(LOCAL_SUBSCRIPTION, "g", name)
}

/// An extension that drives the local cloud's VMAccessForLinux and the host's steps, with
/// actions that break the contract on purpose.
struct Demo(Manifest);

const PORT: u16 = 40_123;

impl Demo {
    fn new() -> Self {
        let action = |name: &str, network: bool, args: Vec<ArgSpec>| ActionSpec {
            name: name.into(),
            summary: name.into(),
            os: vec![OsType::Linux],
            args,
            network,
        };
        let secret_args =
            || vec![ArgSpec::text("username", "u").required(), ArgSpec::text("password", "p").required().secret()];
        Self(Manifest {
            id: "demo".into(),
            version: "1".into(),
            summary: "demo".into(),
            handlers: vec![],
            actions: vec![
                action("reset", false, secret_args()),
                action("leak", false, secret_args()),
                action("ports", true, vec![]),
                action("close", true, vec![]),
                action("remove", false, vec![]),
                action("wait", true, vec![]),
                action("reopen-udp", true, vec![]),
                action("reopen-wide", true, vec![]),
                action("script", false, vec![]),
            ],
        })
    }
}

fn vmaccess(settings: Value, protected: Value, tag: &str) -> Operation {
    Operation::Put(Box::new(ExtensionInstance {
        name: "enablevmaccess".into(),
        publisher: "Microsoft.OSTCExtensions".into(),
        kind: "VMAccessForLinux".into(),
        type_handler_version: "1.5".into(),
        auto_upgrade_minor_version: true,
        force_update_tag: Some(tag.into()),
        settings,
        protected_settings: Some(Secret::new(protected)),
    }))
}

#[azdock_core::async_trait]
impl VmExtension for Demo {
    fn manifest(&self) -> &Manifest {
        &self.0
    }

    async fn plan(&self, request: &PlanRequest) -> Result<Plan, ExtensionError> {
        let user = request.text("username").unwrap_or_default().to_owned();
        let password = request.secret("password").map(|p| p.expose().clone()).unwrap_or_default();
        let wait = |timeout_secs| Step::WaitForEndpoint { port: PORT, probe: Probe::Tcp, timeout_secs };
        Ok(match request.action.as_str() {
            "reset" => Plan {
                notes: vec!["demo note".into()],
                follow_ups: vec![Step::WriteLocalFile {
                    path: "state/last".into(),
                    contents: Secret::new(user.clone()),
                    mode: 0o600,
                }],
                ..Plan::new(vmaccess(json!({}), json!({"username": user, "password": password}), &request.run_id))
            },
            "leak" => Plan::new(vmaccess(json!({"username": user, "password": password}), json!({}), &request.run_id)),
            "ports" => Plan {
                prerequisites: vec![
                    Step::OpenInboundPort {
                        rule_name: "demo-udp".into(),
                        port: 51_820,
                        protocol: Protocol::Udp,
                        sources: vec!["*".into()],
                    },
                    Step::OpenInboundPort {
                        rule_name: "demo-tcp".into(),
                        port: PORT,
                        protocol: Protocol::Tcp,
                        sources: vec!["10.0.0.0/8".into(), "192.0.2.1".into()],
                    },
                ],
                follow_ups: vec![wait(5)],
                ..Plan::new(Operation::Inspect)
            },
            "close" => Plan {
                prerequisites: vec![Step::CloseInboundPort { rule_name: "demo-tcp".into() }],
                follow_ups: vec![wait(60)],
                ..Plan::new(Operation::Inspect)
            },
            "remove" => Plan::new(Operation::Delete { name: "enablevmaccess".into() }),
            "script" => Plan::new(Operation::Put(Box::new(ExtensionInstance {
                name: "demo-script".into(),
                publisher: "Microsoft.Azure.Extensions".into(),
                kind: "CustomScript".into(),
                type_handler_version: "2.1".into(),
                auto_upgrade_minor_version: true,
                force_update_tag: Some(request.run_id.clone()),
                settings: json!({}),
                protected_settings: Some(Secret::new(json!({"commandToExecute": "true"}))),
            }))),
            "wait" => Plan { follow_ups: vec![wait(5)], ..Plan::new(Operation::Inspect) },
            "reopen-udp" | "reopen-wide" => {
                let udp = request.action == "reopen-udp";
                Plan {
                    prerequisites: vec![Step::OpenInboundPort {
                        rule_name: "demo-tcp".into(),
                        port: PORT,
                        protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
                        sources: if udp { vec!["10.0.0.0/8".into(), "192.0.2.1".into()] } else { vec!["*".into()] },
                    }],
                    ..Plan::new(Operation::Inspect)
                }
            }
            other => return Err(ExtensionError::UnknownAction(other.into())),
        })
    }
}

fn secret_args(password: &str) -> Args {
    let mut args = Args::new();
    args.insert("username".into(), ArgValue::Text("ops".into()));
    args.insert("password".into(), ArgValue::secret(password));
    args
}

#[tokio::test]
async fn facts_come_from_the_vm_and_its_network_or_the_vm_alone() {
    let f = Fixture::start().await;
    f.plain.linux_vm(LOCAL_SUBSCRIPTION, "g", "vm1").await;

    let mark = f.mark().await;
    let full = vm::inspect(&f.arm, &addr("vm1")).await.unwrap();
    let reads = f.since(mark).await;
    assert_eq!(reads.len(), 3, "the VM, its NIC and its public IP: {reads:?}");
    assert!(reads.iter().all(|r| r.starts_with("GET ")), "{reads:?}");
    assert_eq!(full.cloud, CloudKind::Local);
    let facts = &full.facts;
    assert_eq!((facts.name.as_str(), facts.resource_group.as_str()), ("vm1", "g"));
    assert_eq!(facts.cloud, "local");
    assert_eq!(facts.os_type, OsType::Linux);
    assert_eq!(facts.power_state, azdock_core::PowerState::Running);
    assert_eq!(facts.admin_username.as_deref(), Some("azureuser"));
    assert_eq!(facts.location, "westeurope");
    assert_eq!(facts.public_ips.len(), 1);
    assert!(facts.private_ips.iter().all(|ip| ip.to_string().starts_with("10.0.0.")), "{:?}", facts.private_ips);
    assert_eq!(facts.private_ips.len(), 1);
    let fqdn = facts.fqdn.clone().expect("the public IP's DNS label");
    assert!(fqdn.starts_with("vm1."), "{fqdn}");
    // The local cloud's FQDNs do not resolve: clients go to the IP, and are told.
    let (host, note) = full.endpoint().unwrap();
    assert_eq!(host, facts.public_ips[0].to_string());
    assert!(note.unwrap().contains(&fqdn));

    let mark = f.mark().await;
    let alone = vm::inspect_vm(&f.arm, &addr("vm1")).await.unwrap();
    assert_eq!(f.since(mark).await.len(), 1, "one read");
    assert!(alone.nic.is_none() && alone.facts.public_ips.is_empty() && alone.facts.fqdn.is_none());
    assert_eq!(alone.facts.os_type, OsType::Linux);
    assert!(alone.endpoint().unwrap_err().to_string().contains("has no public IP"));
    assert!(alone.nsg(&f.arm).await.unwrap().is_none());
}

#[tokio::test]
async fn a_plan_runs_with_its_notes_told_its_secret_protected_and_its_files_written() {
    let f = Fixture::start().await;
    f.plain.linux_vm(LOCAL_SUBSCRIPTION, "g", "vm1").await;
    let demo = Demo::new();
    let events = Recorded::default();
    let host = f.host(&events);
    let args = secret_args("N3w-Passw0rd!");
    let invocation = Invocation {
        extension: &demo,
        action: "reset",
        args: &args,
        waits: Waits::ALL,
        prepare: None,
        take_over: false,
    };

    let mark = f.mark().await;
    let ran = host.run(&invocation, &addr("vm1")).await.unwrap();
    let requests = f.since(mark).await;
    // `network: false`: the VM alone is read, then the extension is written.
    assert!(requests[0].starts_with("GET ") && requests[0].ends_with("/virtualMachines/vm1"), "{requests:?}");
    assert!(requests.iter().all(|r| !r.contains("Microsoft.Network")), "{requests:?}");
    assert!(
        requests.iter().any(|r| r.starts_with("PUT ") && r.ends_with("/extensions/enablevmaccess")),
        "{requests:?}"
    );
    assert!(f.password_ok("vm1", "ops", "N3w-Passw0rd!").await);
    let extension = ran.outcome.extension.unwrap();
    assert_eq!(extension["properties"]["provisioningState"], "Succeeded");
    assert!(extension["properties"].get("protectedSettings").is_none());
    assert_eq!(ran.request.action, "reset");

    let file = f.data.path().join("extensions/demo/state/last");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "ops");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let told = events.events();
    let warnings: Vec<&Event> = told.iter().filter(|e| matches!(e, Event::Warning(_))).collect();
    assert_eq!(warnings, [&Event::Warning("demo note".into()), &Event::Warning(format!("wrote {}", file.display()))]);
    // The extension's PUT is a step of its own: started, then done with its time.
    let step = "extension enablevmaccess (Microsoft.OSTCExtensions.VMAccessForLinux)";
    let started = told.iter().position(|e| *e == Event::StepStarted { step: step.into() });
    let done = told.iter().position(
        |e| matches!(e, Event::StepDone { step: s, outcome: azdock_host::StepOutcome::Done, .. } if s == step),
    );
    assert!(started.is_some() && done > started, "{told:?}");

    // The VM's facts now list the instance with its handler's statuses.
    let facts = vm::inspect_vm(&f.arm, &addr("vm1")).await.unwrap().facts;
    let installed = facts.extension_of("microsoft.ostcextensions", "vmaccessforlinux").unwrap();
    assert_eq!(installed.name, "enablevmaccess");
    assert!(
        installed.statuses.iter().any(|s| s.code.eq_ignore_ascii_case("ProvisioningState/succeeded")),
        "{installed:?}"
    );
    // Debug output names the run, never its arguments' values.
    let shown = format!("{host:?} {invocation:?}");
    assert!(shown.contains("local") && shown.contains("demo") && shown.contains("reset"), "{shown}");
    assert!(!shown.contains("N3w-Passw0rd!"), "{shown}");

    // The instance is deleted by its own plan, and the VM's facts stop listing it.
    let remove = Invocation { action: "remove", args: &Args::new(), ..invocation };
    host.run(&remove, &addr("vm1")).await.unwrap();
    assert!(vm::inspect_vm(&f.arm, &addr("vm1")).await.unwrap().facts.extensions.is_empty());
}

#[tokio::test]
async fn the_contract_refuses_before_anything_is_written() {
    let f = Fixture::start().await;
    f.plain.linux_vm(LOCAL_SUBSCRIPTION, "g", "vm1").await;
    // The helper names its network after nothing but the group: the Windows VM gets its own.
    f.plain.windows_vm(LOCAL_SUBSCRIPTION, "w", "win1").await;
    let demo = Demo::new();
    let events = Recorded::default();
    let host = f.host(&events);
    let args = secret_args("N3w-Passw0rd!");
    let reset = Invocation {
        extension: &demo,
        action: "reset",
        args: &args,
        waits: Waits::ALL,
        prepare: None,
        take_over: false,
    };

    let mark = f.mark().await;
    let leak = host.run(&Invocation { action: "leak", ..reset }, &addr("vm1")).await.unwrap_err();
    assert!(!leak.is_usage());
    assert!(leak.to_string().contains("puts the secret `--password` outside the protected settings"), "{leak}");
    assert!(!leak.to_string().contains("N3w-Passw0rd!"));

    let windows = host.run(&reset, &VmAddr::new(LOCAL_SUBSCRIPTION, "w", "win1")).await.unwrap_err();
    assert!(windows.is_usage());
    assert!(windows.to_string().contains("VM `win1` runs Windows, and `reset` is for Linux VMs only"), "{windows}");

    let mut missing = Args::new();
    missing.insert("username".into(), ArgValue::Text("ops".into()));
    let e = host.run(&Invocation { args: &missing, ..reset }, &addr("vm1")).await.unwrap_err();
    assert!(e.is_usage() && e.to_string().contains("`--password`: this argument is required"), "{e}");

    let e = host.run(&Invocation { action: "fly", ..reset }, &addr("vm1")).await.unwrap_err();
    assert!(e.is_usage() && e.to_string().contains("has no such action"), "{e}");

    // A prepare step that fails stops the run before the plan.
    let refuse = |_: &PlanRequest| Err(azdock_host::Error::Usage("no passphrase".into()));
    let e = host.run(&Invocation { prepare: Some(&refuse), ..reset }, &addr("vm1")).await.unwrap_err();
    assert_eq!(e.to_string(), "no passphrase");

    let writes: Vec<String> = f.since(mark).await.into_iter().filter(|r| !r.starts_with("GET ")).collect();
    assert!(writes.is_empty(), "nothing is written for a refused plan: {writes:?}");
    assert!(events.events().is_empty(), "{:?}", events.events());
    assert!(f.password_ok("vm1", "azureuser", "Sup3r-Secret!").await);
}

#[tokio::test]
async fn ports_open_with_their_protocol_and_priority_and_waits_know_a_closed_port() {
    let f = Fixture::start().await;
    f.plain.linux_vm(LOCAL_SUBSCRIPTION, "g", "vm1").await;
    let demo = Demo::new();
    let events = Recorded::default();
    let host = f.host(&events);
    let args = Args::new();
    let ports = Invocation {
        extension: &demo,
        action: "ports",
        args: &args,
        waits: Waits { operation: true, endpoints: true, endpoint_required: false },
        prepare: None,
        take_over: false,
    };
    // The VM's address answers on the port (the local cloud's public IPs are loopback ones).
    let ip = vm::inspect(&f.arm, &addr("vm1")).await.unwrap().facts.public_ips[0];
    let listener = std::net::TcpListener::bind((ip, PORT)).unwrap();

    // The VM has no NSG: the host makes one on its NIC, then adds both rules.
    let ran = host.run(&ports, &addr("vm1")).await.unwrap();
    let endpoint = ran.outcome.endpoint.unwrap();
    assert_eq!((endpoint.host.as_str(), endpoint.port), (ip.to_string().as_str(), PORT));
    assert_eq!(endpoint.answer.unwrap().map(|_| ()), None);
    assert_eq!(endpoint.admitted_by.as_deref(), Some("vm1NSG/demo-tcp"));
    assert_eq!(ran.outcome.opened, [(51_820, "vm1NSG/demo-udp".to_owned()), (PORT, "vm1NSG/demo-tcp".to_owned())]);
    let rule = |name: &str| {
        let path = format!(
            "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/vm1NSG/securityRules/{name}?api-version=2024-05-01"
        );
        let plain = &f.plain;
        async move { plain.get(&path).await.1["properties"].clone() }
    };
    let udp = rule("demo-udp").await;
    assert_eq!((udp["protocol"].as_str(), udp["priority"].as_u64()), (Some("Udp"), Some(1000)));
    assert_eq!(udp["sourceAddressPrefix"], "*");
    let tcp = rule("demo-tcp").await;
    assert_eq!((tcp["protocol"].as_str(), tcp["priority"].as_u64()), (Some("Tcp"), Some(1010)));
    assert_eq!(tcp["destinationPortRange"], PORT.to_string());
    assert_eq!(tcp["sourceAddressPrefixes"], json!(["10.0.0.0/8", "192.0.2.1"]));
    let vm = vm::inspect(&f.arm, &addr("vm1")).await.unwrap();
    assert_eq!(network::port_admitted(&f.arm, &vm, PORT).await.unwrap().as_deref(), Some("vm1NSG/demo-tcp"));
    assert_eq!(network::port_admitted(&f.arm, &vm, 51_820).await.unwrap(), None, "a UDP rule admits no TCP");

    // Rules that already say the same are left alone; the NSG is now found through the NIC.
    let mark = f.mark().await;
    let again = host.run(&ports, &addr("vm1")).await.unwrap();
    assert!(f.since(mark).await.iter().all(|r| r.starts_with("GET ")), "no rule rewritten");
    assert_eq!(again.outcome.endpoint.unwrap().admitted_by.as_deref(), Some("vm1NSG/demo-tcp"));

    // A plan that only waits finds the rule in the NSG.
    let waited = host.run(&Invocation { action: "wait", ..ports }, &addr("vm1")).await.unwrap();
    let waited = waited.outcome.endpoint.unwrap();
    assert_eq!(waited.admitted_by.as_deref(), Some("vm1NSG/demo-tcp"));
    assert!(waited.answer.is_ok());
    // A rule that differs in its protocol, or its sources, is rewritten.
    host.run(&Invocation { action: "reopen-udp", ..ports }, &addr("vm1")).await.unwrap();
    assert_eq!(rule("demo-tcp").await["protocol"], "Udp");
    host.run(&Invocation { action: "reopen-wide", ..ports }, &addr("vm1")).await.unwrap();
    let wide = rule("demo-tcp").await;
    assert_eq!((wide["protocol"].as_str(), wide["sourceAddressPrefix"].as_str()), (Some("Tcp"), Some("*")));
    assert_eq!(wide["priority"], 1010, "a rewritten rule keeps its priority");

    // Closed, the port is known closed at once: the 60 s wait does not start.
    let close = Invocation { action: "close", ..ports };
    let started = std::time::Instant::now();
    let closed = host.run(&close, &addr("vm1")).await.unwrap().outcome.endpoint.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(closed.admitted_by, None);
    let why = closed.answer.unwrap_err();
    assert!(why.starts_with(&format!("port {PORT} is closed in the VM's network security group")), "{why}");
    let vm = vm::inspect(&f.arm, &addr("vm1")).await.unwrap();
    assert_eq!(network::port_admitted(&f.arm, &vm, PORT).await.unwrap(), None);
    // A required endpoint that does not answer fails the run with the reason; a second close
    // finds nothing to remove.
    let required = Invocation { waits: Waits::ALL, ..close };
    let e = host.run(&required, &addr("vm1")).await.unwrap_err();
    assert!(e.to_string().starts_with(&format!("port {PORT} is closed")), "{e}");
    // Without waiting for endpoints, nothing is probed.
    let skip = Invocation { waits: Waits { endpoints: false, ..Waits::ALL }, ..close };
    assert!(host.run(&skip, &addr("vm1")).await.unwrap().outcome.endpoint.is_none());
    drop(listener);
    // An NSG that cannot be read (403) is not a missing one: none is made over it.
    f.plain.linux_vm(LOCAL_SUBSCRIPTION, "g9", "vm9").await;
    f.fail_next("GET", "/networkSecurityGroups/vm9NSG", json!({"kind": "status", "status": 403})).await;
    let e = host.run(&ports, &addr_in("g9", "vm9")).await.unwrap_err();
    assert!(format!("{e:?}").contains("403"), "{e:?}");
    let nsg = format!(
        "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g9/providers/Microsoft.Network/networkSecurityGroups/vm9NSG?api-version=2024-05-01"
    );
    assert_eq!(f.plain.get(&nsg).await.0, 404);
}

#[tokio::test]
async fn a_no_wait_run_returns_once_azure_accepted_it() {
    let f = Fixture::start().await;
    f.plain.linux_vm(LOCAL_SUBSCRIPTION, "g", "vm1").await;
    let demo = Demo::new();
    let events = Recorded::default();
    let host = f.host(&events);
    let args = secret_args("N3w-Passw0rd!");
    let waits = Waits { operation: false, endpoints: false, endpoint_required: true };
    let invocation =
        Invocation { extension: &demo, action: "reset", args: &args, waits, prepare: None, take_over: false };
    let ran = host.run(&invocation, &addr("vm1")).await.unwrap();
    let accepted = ran.outcome.extension.unwrap();
    assert_eq!(accepted["name"], "enablevmaccess");
    // Returned before its follow-ups: no local file.
    assert!(!f.data.path().join("extensions/demo/state/last").exists());
    let _ = &f.emulator;
}

#[tokio::test]
async fn a_daemon_that_does_not_answer_is_explained_from_what_the_cloud_says() {
    let f = Fixture::start().await;
    f.plain.linux_vm(LOCAL_SUBSCRIPTION, "g", "vm1").await;
    let mut vm = vm::inspect(&f.arm, &addr("vm1")).await.unwrap();
    // Nothing set Docker up on this VM, and the local cloud says so in its instance view.
    let trouble = diagnose::local_daemon_trouble(&f.arm, &vm).await.unwrap();
    assert!(trouble.starts_with("Docker is not set up on the VM"), "{trouble}");
    // A VM without an NSG admits nothing to its Standard IP: that is the reason given.
    let (host, _) = vm.endpoint().unwrap();
    let why = diagnose::explain(&f.arm, &vm, &host, 2376, &Failure::NoAnswer).await;
    assert!(why.starts_with("port 2376 is closed in the VM's network security group"), "{why}");
    // Certificate trouble needs no request to explain.
    let mark = f.mark().await;
    let why = diagnose::explain(&f.arm, &vm, &host, 2376, &Failure::Expired("old".into())).await;
    assert!(why.starts_with("the daemon's server certificate is expired"), "{why}");
    assert!(f.since(mark).await.is_empty(), "a certificate's trouble is explained without a request");
    let mark = f.mark().await;
    let refused = diagnose::explain(&f.arm, &vm, &host, 2376, &Failure::Refused).await;
    assert!(refused.starts_with("port 2376 is closed"), "{refused}");
    let reads = f.since(mark).await;
    assert!(reads.iter().all(|r| r.contains("Microsoft.Network")), "only the NSG check reads: {reads:?}");
    assert!(!reads.is_empty());
    // Real clouds have no such status: nothing is read, nothing is said.
    vm.cloud = CloudKind::Azure;
    let mark = f.mark().await;
    assert_eq!(diagnose::local_daemon_trouble(&f.arm, &vm).await, None);
    assert!(f.since(mark).await.is_empty());
}

/// The names of every resource of azdock's kinds in a group, by type.
async fn group_contents(f: &Fixture, group: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (ns, kind, api) in [
        ("Microsoft.Network", "virtualNetworks", "2024-05-01"),
        ("Microsoft.Network", "networkSecurityGroups", "2024-05-01"),
        ("Microsoft.Network", "publicIPAddresses", "2024-05-01"),
        ("Microsoft.Network", "networkInterfaces", "2024-05-01"),
        ("Microsoft.Compute", "virtualMachines", "2024-11-01"),
    ] {
        let path = format!(
            "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/{group}/providers/{ns}/{kind}?api-version={api}"
        );
        let (status, list) = f.plain.get(&path).await;
        assert_eq!(status, 200, "{path}: {list}");
        out.extend(list["value"].as_array().unwrap().iter().map(|r| format!("{kind}/{}", r["name"].as_str().unwrap())));
    }
    out.sort();
    out
}

fn new_vm(name: &str, group: &str) -> azdock_host::create::NewVm {
    azdock_host::create::NewVm {
        addr: VmAddr::new(LOCAL_SUBSCRIPTION, group, name),
        location: None,
        size: "Standard_B2s".into(),
        image: azdock_azure_sm::images::ImageSpec::parse("Ubuntu2404").unwrap(),
        admin_user: "ops".into(),
        login: azdock_azure_sm::requests::AdminLogin::Key(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8oYfC1Fa0AHeXq8oYfC1Fa0AHeXq8oYfC1Fa0AHeX test".into(),
        ),
        dns_label: Some(name.into()),
        inbound: vec![azdock_host::create::Inbound { rule: "web".into(), port: 8080, protocol: Protocol::Tcp }],
        sources: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_fails_at_any_step_leaves_an_existing_group_as_it_was() {
    let f = Fixture::start().await;
    let events = Recorded::default();
    let host = f.host(&events);
    // The user's group, holding a network of its own that no run may touch.
    let rg = format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups/mine?api-version=2021-04-01");
    f.plain.call(Method::PUT, &rg, Some(json!({"location": "westeurope"}))).await;
    let theirs = format!(
        "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/mine/providers/Microsoft.Network/virtualNetworks/theirs?api-version=2024-05-01"
    );
    f.plain
        .put_and_wait(
            &theirs,
            json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}}),
        )
        .await;
    let before = group_contents(&f, "mine").await;
    assert_eq!(before, ["virtualNetworks/theirs"]);
    let lro = |code: &str| json!({"kind": "lroFail", "code": code, "message": format!("{code} injected")});
    // Refused outright, or accepted and then failed: both leave nothing of the run.
    let steps = [
        ("/virtualNetworks/step1VNET", json!({"kind": "status", "status": 400})),
        ("/networkSecurityGroups/step2NSG", lro("NetworkSecurityGroupFailed")),
        ("/publicIPAddresses/step3PublicIP", lro("PublicIpFailed")),
        ("/networkInterfaces/step4VMNic", lro("NicFailed")),
        ("/virtualMachines/step5", lro("OSProvisioningTimedOut")),
        ("/virtualMachines/step6", lro("SkuNotAvailable")),
    ];
    for (i, (fragment, fault)) in steps.iter().enumerate() {
        let name = format!("step{}", i + 1);
        f.fail_next("PUT", fragment, fault.clone()).await;
        let e = host
            .create_then(&new_vm(&name, "mine"), None, false, async |_| Ok::<_, azdock_host::Error>(()))
            .await
            .unwrap_err();
        // The injected failure is what stopped the run.
        let (why, code) = (format!("{e:?}"), fault["code"].as_str().unwrap_or("400"));
        assert!(why.contains(code), "{fragment}: {why}");
        // Only a size Azure does not offer gets the advice to choose another.
        assert_eq!(e.to_string().contains("choose another --size"), code == "SkuNotAvailable", "{fragment}: {e}");
        assert_eq!(group_contents(&f, "mine").await, before, "{fragment}: the group changed");
        let told = format!("{:?}", events.events());
        assert!(told.contains("deleting what this run created"), "{fragment}: {told}");
    }
    // A resource that cannot be read (403) is not one that is missing: nothing is created over it.
    let forbidden = json!({"kind": "status", "status": 403});
    f.fail_next("GET", "/virtualNetworks/unreadableVNET", forbidden.clone()).await;
    let e = host
        .create_then(&new_vm("unreadable", "mine"), None, false, async |_| Ok::<_, azdock_host::Error>(()))
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("403"), "{e:?}");
    assert_eq!(group_contents(&f, "mine").await, before);
    // Nor is a resource group that cannot be read.
    f.fail_next("GET", "/resourcegroups/lockedrg", forbidden).await;
    let e = host
        .create_then(&new_vm("lockedvm", "lockedrg"), None, false, async |_| Ok::<_, azdock_host::Error>(()))
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("403"), "{e:?}");
    let rg = format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups/lockedrg?api-version=2021-04-01");
    assert_eq!(f.plain.get(&rg).await.0, 404, "no group was made");
    // The VM exists and the extension's plan fails: the VM and its network go too.
    f.plain.admin(Method::PUT, "/faults", Some(json!({"rules": []}))).await;
    let e = host
        .create_then(&new_vm("step7", "mine"), None, false, async |created| {
            assert_eq!(created.vm.facts.name, "step7");
            assert_eq!(created.vm.facts.admin_username.as_deref(), Some("ops"));
            Err::<(), _>(azdock_host::Error::Failed("the extension failed".into()))
        })
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "the extension failed", "{e:?}");
    assert_eq!(group_contents(&f, "mine").await, before);
    // Kept on request: everything the run made is there, and nothing was deleted.
    let kept = host
        .create_then(&new_vm("step8", "mine"), None, true, async |_| {
            Err::<(), _>(azdock_host::Error::Failed("kept".into()))
        })
        .await;
    assert!(kept.is_err());
    let after = group_contents(&f, "mine").await;
    for made in [
        "virtualMachines/step8",
        "networkInterfaces/step8VMNic",
        "publicIPAddresses/step8PublicIP",
        "networkSecurityGroups/step8NSG",
        "virtualNetworks/step8VNET",
    ] {
        assert!(after.iter().any(|r| r == made), "{made} kept: {after:?}");
    }
    assert!(format!("{:?}", events.events()).contains("kept what this run created (--keep-on-failure)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_makes_the_vm_with_its_network_and_a_rerun_reuses_it() {
    let f = Fixture::start().await;
    let events = Recorded::default();
    let host = f.host(&events);
    let spec = new_vm("web1", "fresh");
    let seen = std::sync::Mutex::new(None);
    let before_vm = |facts: &azdock_core::VmFacts| {
        *seen.lock().unwrap() = Some(facts.clone());
        Ok(Some(Secret::new("I2Nsb3VkLWNvbmZpZwo=".to_owned())))
    };
    let (created, ledger) =
        host.create_then(&spec, Some(&before_vm), false, async |c| Ok::<_, azdock_host::Error>(c)).await.unwrap();
    let made: Vec<String> = ledger.made().iter().map(ToString::to_string).collect();
    assert_eq!(made[0], "resource group fresh");
    assert_eq!(made.len(), 6, "{made:?}");
    assert!(ledger.found().is_empty());
    let facts = &created.vm.facts;
    let early = seen.lock().unwrap().clone().unwrap();
    // The facts before the VM existed named the addresses it has now.
    assert_eq!(early.public_ips, facts.public_ips);
    assert_eq!(early.fqdn, facts.fqdn);
    assert!(facts.fqdn.as_deref().is_some_and(|d| d.starts_with("web1.")), "{facts:?}");
    assert!(created.image.exact_version.is_some());
    // The NSG was born with the rule, at az's first priority.
    let nsg = created.vm.nsg(&f.arm).await.unwrap().unwrap();
    let rule = nsg.properties.security_rules.iter().find(|r| r.name == "web").unwrap();
    assert_eq!((rule.properties.priority, rule.properties.destination_port_range.as_deref()), (1000, Some("8080")));
    // A second run finds everything and makes nothing.
    let (_, again) = host.create_then(&spec, None, false, async |c| Ok::<_, azdock_host::Error>(c)).await.unwrap();
    assert!(again.made().is_empty(), "{:?}", again.made());
    assert_eq!(again.found().len(), 6);
    // A reused NSG gains a rule it lacks at the next free priority.
    let mut wider = new_vm("web1", "fresh");
    wider.inbound.push(azdock_host::create::Inbound { rule: "dns".into(), port: 53, protocol: Protocol::Udp });
    // Named twice (an extension's port that is also --ssh's, say): added once.
    wider.inbound.push(azdock_host::create::Inbound { rule: "dns".into(), port: 53, protocol: Protocol::Udp });
    host.create_then(&wider, None, false, async |_| Ok::<_, azdock_host::Error>(())).await.unwrap();
    let vm = vm::inspect(&f.arm, &addr_in("fresh", "web1")).await.unwrap();
    let nsg = vm.nsg(&f.arm).await.unwrap().unwrap();
    let dns = nsg.properties.security_rules.iter().find(|r| r.name == "dns").unwrap();
    assert_eq!((dns.properties.priority, dns.properties.protocol.as_str()), (1010, "Udp"));
}

fn addr_in(group: &str, name: &str) -> VmAddr {
    VmAddr::new(LOCAL_SUBSCRIPTION, group, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slot_is_its_owner_s_unless_taken_over() {
    let f = Fixture::start().await;
    f.plain.linux_vm(LOCAL_SUBSCRIPTION, "g", "vm1").await;
    let demo = Demo::new();
    let events = Recorded::default();
    let host = f.host(&events);
    let args = Args::new();
    let script = Invocation {
        extension: &demo,
        action: "script",
        args: &args,
        waits: Waits::ALL,
        prepare: None,
        take_over: false,
    };
    let instance = |name: &str| {
        format!(
            "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1/extensions/{name}?api-version=2024-11-01"
        )
    };
    // CustomScript put by another tool, untagged, under another name.
    let body = json!({"location": "westeurope", "properties": {"publisher": "Microsoft.Azure.Extensions",
        "type": "CustomScript", "typeHandlerVersion": "2.1", "protectedSettings": {"commandToExecute": "true"}}});
    f.plain.put_and_wait(&instance("docker"), body).await;
    let e = host.run(&script, &addr("vm1")).await.unwrap_err().to_string();
    assert!(e.contains("held by an instance azdock did not make") && e.contains("--take-over"), "{e}");
    // Recorded as a Docker host set up before instances were tagged: the instance is Docker's.
    let record = azdock_host::docker::HostRecord::new(f.data.path());
    record
        .record(azdock_host::docker::DockerHost {
            name: "vm1".into(),
            cloud: "local".into(),
            subscription: LOCAL_SUBSCRIPTION.into(),
            resource_group: "g".into(),
            address: "127.0.0.1".into(),
            fqdn: None,
            public_ip: None,
            port: 2376,
            handler: "customscript".into(),
            cert_dir: f.data.path().join("certs"),
            options: vec![],
            allow_from: vec![],
            cert_sans: vec![],
            ca: None,
            transport: azdock_core::Transport::Tls,
            ssh_user: None,
            ssh_identity: None,
        })
        .unwrap();
    let e = host.run(&script, &addr("vm1")).await.unwrap_err();
    assert!(e.is_usage() && e.to_string().contains("held by extension `docker`"), "{e}");
    let (_, before) = f.plain.get(&instance("docker")).await;
    assert_eq!(before["tags"], Value::Null, "nothing was put");
    // Taken over: the plan goes into the existing instance, which is the planner's from now on.
    let ran = host.run(&Invocation { take_over: true, ..script }, &addr("vm1")).await.unwrap();
    assert_eq!(ran.outcome.extension.as_ref().unwrap()["name"], "docker");
    let (_, after) = f.plain.get(&instance("docker")).await;
    assert_eq!(after["tags"]["azdock-extension"], "demo");
    let told = format!("{:?}", events.events());
    assert!(
        told.contains("taking over handler Microsoft.Azure.Extensions.CustomScript on VM `vm1` from docker"),
        "{told}"
    );
    let vm = vm::inspect(&f.arm, &addr("vm1")).await.unwrap();
    let held = vm.facts.extension_of("Microsoft.Azure.Extensions", "CustomScript").unwrap();
    assert_eq!(held.owner.as_deref(), Some("demo"));
    // Its own slot needs no take-over.
    host.run(&script, &addr("vm1")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_are_shown_listed_powered_and_deleted_as_az_does() {
    use azdock_host::manage::{self, Power};
    let f = Fixture::start().await;
    f.plain.linux_vm(LOCAL_SUBSCRIPTION, "m", "vm1").await;
    let a = VmAddr::new(LOCAL_SUBSCRIPTION, "m", "vm1");
    let shown = manage::show(&f.arm, &a, true).await.unwrap();
    assert_eq!((&shown["name"], &shown["resourceGroup"]), (&json!("vm1"), &json!("m")));
    assert_eq!(shown["powerState"], "VM running");
    assert!(shown["publicIps"].as_str().unwrap().starts_with("127.1."), "{shown}");
    assert_eq!(shown["fqdns"], "vm1.westeurope.cloudapp.azure.com");
    assert_eq!(shown["privateIps"], "10.0.0.4");
    assert!(shown["instanceView"].is_object(), "the details come with the instance view");
    let plain = manage::show(&f.arm, &a, false).await.unwrap();
    assert_eq!(plain["hardwareProfile"]["vmSize"], "Standard_B1s");
    assert!(plain.get("powerState").is_none() && plain.get("instanceView").is_none(), "{plain}");
    manage::power(&f.arm, &a, Power::Stop, true).await.unwrap();
    assert_eq!(manage::show(&f.arm, &a, true).await.unwrap()["powerState"], "VM stopped");
    manage::power(&f.arm, &a, Power::Start, false).await.unwrap();
    let listed = manage::list(&f.arm, LOCAL_SUBSCRIPTION, Some("m")).await.unwrap();
    assert_eq!(listed.iter().map(|v| v["name"].clone()).collect::<Vec<_>>(), [json!("vm1")]);
    assert!(manage::list(&f.arm, LOCAL_SUBSCRIPTION, None).await.unwrap().iter().any(|v| v["resourceGroup"] == "m"));
    assert_eq!(manage::addrs_in(&f.arm, LOCAL_SUBSCRIPTION, "m").await.unwrap(), std::slice::from_ref(&a));
    assert_eq!(manage::extensions(&f.arm, &a).await.unwrap(), json!([]));
    let none = manage::extension(&f.arm, &a, "nope").await.unwrap_err();
    assert!(none.azure_code().is_some_and(|c| c.contains("NotFound")), "{none}");
    let catalogue =
        manage::catalogue(&f.arm, LOCAL_SUBSCRIPTION, "westeurope", "Canonical", Some("ubuntu-24_04"), Some("server"))
            .await
            .unwrap();
    let rows = catalogue.as_array().unwrap();
    assert!(
        !rows.is_empty()
            && rows.iter().all(|r| r["urn"].as_str().unwrap().starts_with("Canonical:ubuntu-24_04-lts:server:")),
        "{catalogue}"
    );
    manage::delete(&f.arm, &a.path(), true).await.unwrap();
    let gone = manage::show(&f.arm, &a, false).await.unwrap_err();
    assert_eq!(gone.azure_code(), Some("ResourceNotFound"));
    assert!(manage::addrs_in(&f.arm, LOCAL_SUBSCRIPTION, "m").await.unwrap().is_empty());
}
