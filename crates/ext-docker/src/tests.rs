//! Plans for each action, from facts alone, with certificates minted into a temp directory.

use azdock_core::{ArgValue, Args, InstalledExtension, PowerState, VmFacts};

use super::*;

fn facts(os: OsType) -> VmFacts {
    VmFacts {
        name: "web1".into(),
        resource_group: "rg".into(),
        subscription_id: "sub".into(),
        resource_id: "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web1".into(),
        location: "westeurope".into(),
        os_type: os,
        power_state: PowerState::Running,
        cloud: "local".into(),
        admin_username: Some("azureuser".into()),
        fqdn: Some("web1.westeurope.cloudapp.azure.com".into()),
        public_ips: vec!["127.1.0.9".parse().unwrap()],
        private_ips: vec![],
        extensions: vec![],
    }
}

fn request(action: &str, dir: &std::path::Path, extra: &[(&str, ArgValue)]) -> PlanRequest {
    let mut args = Args::new();
    args.insert("docker-cert-dir".into(), ArgValue::Text(dir.to_string_lossy().into_owned()));
    for (k, v) in extra {
        args.insert((*k).into(), v.clone());
    }
    PlanRequest { action: action.into(), args, facts: facts(OsType::Linux), run_id: "run-1".into() }
}

#[test]
fn the_manifest_is_valid() {
    let ext = DockerExtension::default();
    ext.manifest().validate().unwrap();
    // Every action that reaches the daemon takes the transport and how SSH logs in.
    for action in ["install", "rotate-certs", "status", "verify"] {
        let spec = ext.manifest().actions.iter().find(|a| a.name == action).unwrap();
        let names: Vec<&str> = spec.args.iter().map(|a| a.name.as_str()).collect();
        for arg in ["transport", "ssh-port", "ssh-user", "ssh-identity"] {
            assert!(names.contains(&arg), "{action} lacks {arg}: {names:?}");
        }
    }
}

#[tokio::test]
async fn install_mints_the_certificate_opens_the_port_and_waits_for_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ext = DockerExtension::default();
    let plan = ext
        .plan(&request("install", dir.path(), &[("cert-san", ArgValue::List(vec!["docker.example.com".into()]))]))
        .await
        .unwrap();
    assert!(matches!(&plan.prerequisites[0], Step::OpenInboundPort { port: 2376, sources, .. } if sources == &["*"]));
    assert!(plan.notes.iter().any(|n| n.contains("--allow-from")));
    let Operation::Put(instance) = &plan.operation else { panic!("a put") };
    assert_eq!(
        (instance.name.as_str(), instance.kind.as_str(), instance.type_handler_version.as_str()),
        ("docker", "CustomScript", "2.1")
    );
    assert_eq!(instance.force_update_tag.as_deref(), Some("run-1"));
    let script = instance.protected_settings.as_ref().unwrap().expose()["script"].as_str().unwrap().to_owned();
    let script =
        String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, script).unwrap()).unwrap();
    assert!(script.contains("-H tcp://0.0.0.0:2376 --tlsverify") && script.contains("BEGIN PRIVATE KEY"));
    let cert = azdock_certs::inspect::CertFile::parse(
        &dir.path().join("web1-server-cert.pem"),
        std::fs::read_to_string(dir.path().join("web1-server-cert.pem")).unwrap(),
    )
    .unwrap();
    for name in ["web1.westeurope.cloudapp.azure.com", "127.1.0.9", "docker.example.com"] {
        assert!(cert.covers(name), "{name}");
    }
    assert!(matches!(&plan.follow_ups[0], Step::WaitForEndpoint { port: 2376, probe: Probe::MutualTls { .. }, .. }));
}

#[tokio::test]
async fn install_reuses_the_handlers_instance_and_the_legacy_handler_warns() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(
        "install",
        dir.path(),
        &[("handler", ArgValue::Text("legacy".into())), ("port", ArgValue::Integer(4243))],
    );
    req.facts.extensions.push(InstalledExtension {
        name: "DockerExtensionOld".into(),
        publisher: "Microsoft.Azure.Extensions".into(),
        kind: "DockerExtension".into(),
        type_handler_version: "1.0".into(),
        provisioning_state: None,
        settings: serde_json::Value::Null,
        statuses: vec![],
        substatuses: vec![],
        owner: None,
    });
    let plan = DockerExtension::default().plan(&req).await.unwrap();
    let Operation::Put(instance) = &plan.operation else { panic!("a put") };
    assert_eq!(instance.name, "DockerExtensionOld");
    assert_eq!(instance.settings["docker"]["port"], "4243");
    assert!(plan.notes.iter().any(|n| n.contains("retired")));
}

#[tokio::test]
async fn bad_arguments_and_windows_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ext = DockerExtension::default();
    for (arg, value, says) in [
        ("port", ArgValue::Integer(70000), "not a TCP port"),
        ("handler", ArgValue::Text("snap".into()), "use customscript, cloud-init or legacy"),
        ("handler", ArgValue::Text("cloud-init".into()), "only when a VM is created"),
        ("docker-option", ArgValue::List(vec!["--x=$(id)".into()]), "not a dockerd flag"),
        ("allow-from", ArgValue::List(vec!["10.0.0.0/33".into()]), "prefix length"),
        ("cert-san", ArgValue::List(vec!["bad name!".into()]), "bad name!"),
    ] {
        let err = ext.plan(&request("install", dir.path(), &[(arg, value)])).await.unwrap_err();
        assert!(err.is_usage() && err.to_string().contains(says), "{arg}: {err}");
    }
    assert!(!dir.path().join("web1-server-cert.pem").exists(), "nothing minted for a refused request");
    let mut windows = request("install", dir.path(), &[]);
    windows.facts.os_type = OsType::Windows;
    assert!(ext.plan(&windows).await.unwrap_err().to_string().contains("not available for Windows"));
}

#[tokio::test]
async fn uninstall_runs_the_removal_script_and_closes_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let plan = DockerExtension::default().plan(&request("uninstall", dir.path(), &[])).await.unwrap();
    let Operation::Put(instance) = &plan.operation else { panic!("a put") };
    assert_eq!(instance.kind, "CustomScript");
    assert!(matches!(&plan.follow_ups[0], Step::CloseInboundPort { rule_name } if rule_name == RULE_NAME));
}

fn installed_extension(publisher: &str, kind: &str, name: &str) -> InstalledExtension {
    InstalledExtension {
        name: name.into(),
        publisher: publisher.into(),
        kind: kind.into(),
        type_handler_version: "1.0".into(),
        provisioning_state: None,
        settings: serde_json::Value::Null,
        statuses: vec![],
        substatuses: vec![],
        owner: None,
    }
}

#[test]
fn deliveries_parse_name_and_say_their_handler() {
    for (text, delivery, name, handler) in [
        ("customscript", Delivery::Handler(Handler::CustomScript), "customscript", Some(Handler::CustomScript)),
        ("Custom-Script", Delivery::Handler(Handler::CustomScript), "customscript", Some(Handler::CustomScript)),
        ("legacy", Delivery::Handler(Handler::Legacy), "legacy", Some(Handler::Legacy)),
        ("cloud-init", Delivery::CloudInit, "cloud-init", None),
        ("cloudinit", Delivery::CloudInit, "cloud-init", None),
    ] {
        let parsed = Delivery::parse(text).unwrap();
        assert_eq!((parsed, parsed.name(), parsed.handler()), (delivery, name, handler), "{text}");
    }
    let e = Delivery::parse("puppet").unwrap_err();
    assert_eq!(e, "unknown handler `puppet`: use customscript, cloud-init or legacy");
    assert_eq!(Handler::Legacy.spec().kind, "DockerExtension");
    assert_eq!(Handler::CustomScript.spec().type_handler_version, "2.1");
}

#[test]
fn the_installed_handler_is_found_by_publisher_and_type() {
    let mut f = facts(OsType::Linux);
    assert!(installed(&f).is_none());
    f.extensions.push(installed_extension("Microsoft.Compute", "VMAccessAgent", "access"));
    assert!(installed(&f).is_none());
    f.extensions.push(installed_extension("microsoft.azure.extensions", "dockerextension", "DockerExtension"));
    let (handler, ext) = installed(&f).unwrap();
    assert_eq!((handler, ext.name.as_str()), (Handler::Legacy, "DockerExtension"));
    f.extensions.push(installed_extension("Microsoft.Azure.Extensions", "CustomScript", "docker"));
    assert_eq!(installed(&f).unwrap().0, Handler::CustomScript);
    f.extensions[2].owner = Some("docker".into());
    assert_eq!(installed(&f).unwrap().0, Handler::CustomScript);
    // Another extension took the CustomScript slot over: Docker is what the legacy handler runs.
    f.extensions[2].owner = Some("customscript".into());
    assert_eq!(installed(&f).unwrap().0, Handler::Legacy);
    f.extensions.remove(1);
    assert!(installed(&f).is_none());
}

#[tokio::test]
async fn uninstall_removes_the_legacy_handler_whole_even_beside_customscript() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = request("uninstall", dir.path(), &[]);
    r.facts.extensions.push(installed_extension("Microsoft.Azure.Extensions", "CustomScript", "other"));
    r.facts.extensions.push(installed_extension("Microsoft.Azure.Extensions", "DockerExtension", "OldDocker"));
    let plan = DockerExtension::default().plan(&r).await.unwrap();
    assert_eq!(plan.operation, Operation::Delete { name: "OldDocker".into() });
    // Without it, the removal script goes to the CustomScript instance that is there.
    r.facts.extensions.pop();
    let plan = DockerExtension::default().plan(&r).await.unwrap();
    let Operation::Put(instance) = &plan.operation else { panic!("a put") };
    assert_eq!(instance.name, "other");
}

#[tokio::test]
async fn status_looks_once_and_verify_waits_as_long_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let wait_of = |plan: &azdock_core::Plan| match &plan.follow_ups[..] {
        [Step::WaitForEndpoint { timeout_secs, probe: Probe::MutualTls { .. }, port: 2376 }] => *timeout_secs,
        other => panic!("{other:?}"),
    };
    let ext = DockerExtension::default();
    assert_eq!(wait_of(&ext.plan(&request("status", dir.path(), &[])).await.unwrap()), 0);
    assert_eq!(wait_of(&ext.plan(&request("verify", dir.path(), &[])).await.unwrap()), 15);
    let long = request("verify", dir.path(), &[("timeout", ArgValue::Integer(600))]);
    assert_eq!(wait_of(&ext.plan(&long).await.unwrap()), 600);
    for bad in [0, -1, 3601] {
        let e = ext.plan(&request("verify", dir.path(), &[("timeout", ArgValue::Integer(bad))])).await.unwrap_err();
        assert!(e.to_string().contains(&format!("{bad} is not a number of seconds from 1 to 3600")), "{e}");
    }
    assert!(matches!(ext.plan(&long).await.unwrap().operation, azdock_core::Operation::Inspect));
}

fn ssh() -> [(&'static str, ArgValue); 1] {
    [("transport", ArgValue::Text("ssh".into()))]
}

#[tokio::test]
async fn over_ssh_the_plan_opens_sshd_only_pins_keys_and_waits_for_docker_through_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let ext = DockerExtension::default();
    let mut req = request(
        "install",
        dir.path(),
        &[
            ("transport", ArgValue::Text("ssh".into())),
            ("allow-from", ArgValue::List(vec!["203.0.113.0/24".into()])),
            ("ssh-identity", ArgValue::Text("/keys/id".into())),
        ],
    );
    req.facts.extensions.push(InstalledExtension {
        name: "setup".into(),
        publisher: "Microsoft.Azure.Extensions".into(),
        kind: "CustomScript".into(),
        type_handler_version: "2.1".into(),
        provisioning_state: None,
        settings: serde_json::Value::Null,
        statuses: vec![],
        substatuses: vec![],
        owner: None,
    });
    let plan = ext.plan(&req).await.unwrap();
    assert!(
        matches!(&plan.prerequisites[..], [Step::OpenInboundPort { rule_name, port: 22, sources, .. }] if rule_name == SSH_RULE_NAME && sources == &["203.0.113.0/24"]),
        "{:?}",
        plan.prerequisites
    );
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    let Operation::Put(instance) = &plan.operation else { panic!("a put") };
    assert_eq!((instance.name.as_str(), instance.kind.as_str()), ("setup", "CustomScript"));
    let script = instance.protected_settings.as_ref().unwrap().expose()["script"].as_str().unwrap().to_owned();
    let script =
        String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, script).unwrap()).unwrap();
    assert!(script.contains("-H fd://") && !script.contains("tcp://") && script.contains(HOST_KEY_PREFIX_IN_SCRIPT));
    assert!(!dir.path().join("web1-server-cert.pem").exists(), "no server certificate over SSH");
    let known_hosts = known_hosts_path().unwrap().to_string_lossy().into_owned();
    let home = std::env::home_dir().unwrap();
    assert_eq!(std::path::Path::new(&known_hosts), home.join(".ssh/known_hosts"), "ssh's own file");
    assert_eq!(
        plan.follow_ups,
        vec![
            Step::CloseInboundPort { rule_name: RULE_NAME.into() },
            Step::PinHostKeys { known_hosts: known_hosts.clone(), port: 22 },
            Step::WaitForEndpoint {
                port: 22,
                probe: Probe::Ssh { user: "azureuser".into(), known_hosts, identity: Some("/keys/id".into()) },
                timeout_secs: READY_TIMEOUT_SECS,
            },
        ]
    );
    // No source: any, said once.
    let open = ext.plan(&request("install", dir.path(), &ssh())).await.unwrap();
    assert!(matches!(&open.prerequisites[0], Step::OpenInboundPort { sources, .. } if sources == &["*"]));
    assert_eq!(open.notes, vec![SSH_OPEN_TO_ANY_NOTE.to_owned()]);
}

/// What the SSH install script prints before each host key.
const HOST_KEY_PREFIX_IN_SCRIPT: &str = "printf 'azdock-host-key %s\\n'";

#[tokio::test]
async fn over_ssh_status_logs_in_and_what_cannot_work_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ext = DockerExtension::default();
    let extra = [
        ("transport", ArgValue::Text("ssh".into())),
        ("ssh-port", ArgValue::Integer(2222)),
        ("ssh-user", ArgValue::Text("ops".into())),
    ];
    let status = ext.plan(&request("status", dir.path(), &extra)).await.unwrap();
    assert!(
        matches!(&status.follow_ups[..], [Step::WaitForEndpoint { port: 2222, probe: Probe::Ssh { user, identity: None, .. }, timeout_secs: 0 }] if user == "ops"),
        "{:?}",
        status.follow_ups
    );
    assert_eq!(status.operation, Operation::Inspect);
    let refused = |action: &str, extra: &[(&str, ArgValue)]| {
        let ext = DockerExtension::default();
        let req = request(action, dir.path(), &[&[("transport", ArgValue::Text("ssh".into()))][..], extra].concat());
        async move { ext.plan(&req).await.unwrap_err() }
    };
    let rotate = refused("rotate-certs", &[]).await;
    assert!(rotate.is_usage() && rotate.to_string().contains("no certificates to rotate"), "{rotate}");
    let legacy = refused("install", &[("handler", ArgValue::Text("legacy".into()))]).await;
    assert!(legacy.is_usage() && legacy.to_string().contains("customscript"), "{legacy}");
    let cloud_init = refused("install", &[("handler", ArgValue::Text("cloud-init".into()))]).await;
    assert!(cloud_init.is_usage() && cloud_init.to_string().contains("only when a VM is created"), "{cloud_init}");
    for port in [0, 65_536] {
        let bad = refused("install", &[("ssh-port", ArgValue::Integer(port))]).await;
        assert!(bad.is_usage() && bad.to_string().contains(&format!("{port} is not a TCP port")), "{bad}");
    }
    let unknown = ext.plan(&request("install", dir.path(), &[("transport", ArgValue::Text("udp".into()))])).await;
    assert!(unknown.unwrap_err().to_string().contains("unknown transport `udp`: use tls or ssh"));
    // Without an admin user known and no --ssh-user, no one to log in as.
    let mut req = request("verify", dir.path(), &[("transport", ArgValue::Text("ssh".into()))]);
    req.facts.admin_username = None;
    let nobody = ext.plan(&req).await.unwrap_err();
    assert!(!nobody.is_usage() && nobody.to_string().contains("--ssh-user"), "{nobody}");
}
