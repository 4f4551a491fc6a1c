//! Plans for each action and OS, and the rules checked before any request.

use azdock_core::{ArgValue, Args, InstalledExtension, PowerState, VmFacts};

use super::*;

fn request(action: &str, os: OsType, args: &[(&str, ArgValue)]) -> PlanRequest {
    let facts = VmFacts {
        name: "vm1".into(),
        resource_group: "rg".into(),
        subscription_id: "s".into(),
        resource_id: "/x".into(),
        location: "westeurope".into(),
        os_type: os,
        power_state: PowerState::Running,
        cloud: "local".into(),
        admin_username: Some("azureuser".into()),
        fqdn: None,
        public_ips: vec![],
        private_ips: vec![],
        extensions: vec![],
    };
    let args: Args = args.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    PlanRequest { action: action.into(), args, facts, run_id: "run-7".into() }
}

fn secret(s: &str) -> ArgValue {
    ArgValue::secret(s)
}

fn put(plan: &Plan) -> &ExtensionInstance {
    match &plan.operation {
        Operation::Put(i) => i,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_manifest_is_valid() {
    VmAccessExtension::default().manifest().validate().unwrap();
}

#[tokio::test]
async fn linux_password_reset_goes_in_protected_settings_with_a_fresh_tag() {
    let ext = VmAccessExtension::default();
    let req = request(
        "reset-password",
        OsType::Linux,
        &[
            ("username", ArgValue::Text("ops".into())),
            ("password", secret("N3w-Passw0rd!")),
            ("expiration", ArgValue::Text("2999-01-01".into())),
        ],
    );
    let plan = ext.plan(&req).await.unwrap();
    let i = put(&plan);
    assert_eq!(
        (i.name.as_str(), i.kind.as_str(), i.type_handler_version.as_str()),
        ("enablevmaccess", "VMAccessForLinux", "1.5")
    );
    assert_eq!(i.force_update_tag.as_deref(), Some("run-7"));
    assert_eq!(i.settings, json!({}));
    assert_eq!(
        i.protected_settings.as_ref().unwrap().expose(),
        &json!({"username": "ops", "password": "N3w-Passw0rd!", "expiration": "2999-01-01"})
    );
    assert!(plan.notes[0].contains("creates `ops`"));
}

#[tokio::test]
async fn windows_uses_the_agent_with_azs_casing_and_reuses_the_instance() {
    let ext = VmAccessExtension::default();
    let mut req = request(
        "reset-password",
        OsType::Windows,
        &[("username", ArgValue::Text("Ops".into())), ("password", secret("N3w-Passw0rd!"))],
    );
    req.facts.extensions.push(InstalledExtension {
        name: "myaccess".into(),
        publisher: "Microsoft.Compute".into(),
        kind: "VMAccessAgent".into(),
        type_handler_version: "2.4".into(),
        provisioning_state: None,
        settings: Value::Null,
        statuses: vec![],
        substatuses: vec![],
        owner: None,
    });
    let plan = ext.plan(&req).await.unwrap();
    let i = put(&plan);
    assert_eq!((i.name.as_str(), i.kind.as_str()), ("myaccess", "VMAccessAgent"));
    assert_eq!(i.settings, json!({"UserName": "Ops"}));
    assert_eq!(i.protected_settings.as_ref().unwrap().expose(), &json!({"Password": "N3w-Passw0rd!"}));
    // An expiry Windows cannot take is refused, not dropped.
    let expiring = request(
        "reset-password",
        OsType::Windows,
        &[
            ("username", ArgValue::Text("Ops".into())),
            ("password", secret("N3w-Passw0rd!")),
            ("expiration", ArgValue::Text("2999-01-01".into())),
        ],
    );
    let e = ext.plan(&expiring).await.unwrap_err();
    assert!(e.is_usage() && e.to_string().contains("Windows VMs take no account expiry"), "{e}");
    let rdp = ext.plan(&request("reset-rdp", OsType::Windows, &[])).await.unwrap();
    assert_eq!(put(&rdp).settings, json!({}));
    assert!(put(&rdp).protected_settings.is_none());
}

#[tokio::test]
async fn keys_ssh_users_and_disks_on_linux() {
    let ext = VmAccessExtension::default();
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd3nqjmI9Y2Gm4zk1t6b0x8v5wQwCkq3pX5uS9r2k0m me@host";
    let plan = ext
        .plan(&request(
            "set-ssh-key",
            OsType::Linux,
            &[
                ("username", ArgValue::Text("ops".into())),
                ("ssh-key-value", ArgValue::Text(key.into())),
                ("replace", ArgValue::Flag(true)),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(
        put(&plan).protected_settings.as_ref().unwrap().expose(),
        &json!({"username": "ops", "ssh_key": key, "remove_prior_keys": true})
    );
    for (action, protected) in
        [("reset-ssh", json!({"reset_ssh": true})), ("restore-ssh-backup", json!({"restore_backup_ssh": true}))]
    {
        let plan = ext.plan(&request(action, OsType::Linux, &[])).await.unwrap();
        assert_eq!(put(&plan).protected_settings.as_ref().unwrap().expose(), &protected);
    }
    let remove =
        ext.plan(&request("remove-user", OsType::Linux, &[("username", ArgValue::Text("old".into()))])).await.unwrap();
    assert_eq!(put(&remove).protected_settings.as_ref().unwrap().expose(), &json!({"remove_user": "old"}));
    let repair = ext
        .plan(&request("repair-disk", OsType::Linux, &[("disk-name", ArgValue::Text("data0".into()))]))
        .await
        .unwrap();
    assert_eq!(put(&repair).settings, json!({"repair_disk": true, "disk_name": "data0"}));
}

#[tokio::test]
async fn the_rules_refuse_with_the_rule_in_the_message() {
    let ext = VmAccessExtension::default();
    let cases = [
        request(
            "reset-password",
            OsType::Linux,
            &[("username", ArgValue::Text("root".into())), ("password", secret("N3w-Passw0rd!"))],
        ),
        request(
            "reset-password",
            OsType::Linux,
            &[("username", ArgValue::Text("-ops".into())), ("password", secret("N3w-Passw0rd!"))],
        ),
        request(
            "reset-password",
            OsType::Linux,
            &[("username", ArgValue::Text("ops".into())), ("password", secret("password"))],
        ),
        request(
            "reset-password",
            OsType::Windows,
            &[("username", ArgValue::Text("ops".into())), ("password", secret("Sh0rt!"))],
        ),
        request(
            "reset-password",
            OsType::Linux,
            &[
                ("username", ArgValue::Text("ops".into())),
                ("password", secret("N3w-Passw0rd!")),
                ("expiration", ArgValue::Text("2001-01-01".into())),
            ],
        ),
        request(
            "set-ssh-key",
            OsType::Linux,
            &[("username", ArgValue::Text("ops".into())), ("ssh-key-value", ArgValue::Text("ssh-dss AAAA".into()))],
        ),
    ];
    for req in &cases {
        let err = ext.plan(req).await.unwrap_err();
        assert!(err.is_usage(), "{err}");
        assert!(!err.to_string().contains("N3w-Passw0rd!") && !err.to_string().contains("Sh0rt!"), "{err}");
    }
    for (action, os) in [("reset-ssh", OsType::Windows), ("reset-rdp", OsType::Linux), ("remove-user", OsType::Windows)]
    {
        let err = ext.plan(&request(action, os, &[("username", ArgValue::Text("ops".into()))])).await.unwrap_err();
        assert!(err.to_string().contains("not available for"), "{err}");
    }
}
