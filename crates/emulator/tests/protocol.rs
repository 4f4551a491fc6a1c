//! Protocol tests: the emulator over real HTTPS with a plain HTTP client (reqwest, not azdock's
//! client), checking status codes, headers, bodies and guest effects as Azure's clients see them.

// AADSTS numbers are written as Entra prints them.
#![allow(clippy::unwrap_used, clippy::too_many_lines, clippy::unreadable_literal)]

use std::time::{Duration, Instant};

use azdock_emulator::{Config, Durations, Emulator, LOCAL_SUBSCRIPTION, LOCAL_TENANT, ThrottleConfig};
use azdock_tests::arm::Arm;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const C: &str = "api-version=2024-11-01";
const N: &str = "api-version=2024-05-01";
const R: &str = "api-version=2021-04-01";

struct Cloud {
    emulator: Emulator,
    arm: Arm,
    dir: tempfile::TempDir,
}

/// The tests talk to the cloud through the shared plain client.
impl std::ops::Deref for Cloud {
    type Target = Arm;
    fn deref(&self) -> &Arm {
        &self.arm
    }
}

impl Cloud {
    async fn start() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::in_dir(tempfile::tempdir().unwrap(), tweak).await
    }

    async fn in_dir(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_tests(dir.path());
        tweak(&mut config);
        let emulator = Emulator::start(config).await.unwrap();
        let p = emulator.principals()[0].clone();
        let arm = Arm::sign_in(
            emulator.base_url(),
            emulator.ca_pem().as_bytes(),
            &p.tenant_id,
            &p.client_id,
            &p.client_secret,
        )
        .await
        .with_admin_key(emulator.admin_key());
        Self { emulator, arm, dir }
    }
}

fn rg(name: &str) -> String {
    format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups/{name}")
}

fn net(rg: &str, rest: &str) -> String {
    format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.Network/{rest}")
}

fn compute(rg: &str, rest: &str) -> String {
    format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.Compute/{rest}")
}

/// Whether the guest of `vm1` in group `g` accepts this password.
async fn password_ok(cloud: &Cloud, user: &str, password: &str) -> bool {
    let path = format!("/guests/{LOCAL_SUBSCRIPTION}/g/vm1/verify-password");
    let (_, body) = cloud.admin(Method::POST, &path, Some(json!({"username": user, "password": password}))).await;
    body["valid"] == true
}

/// Whether ARM accepts this bearer token (for a plain `GET /subscriptions`).
async fn arm_accepts(cloud: &Cloud, token: &str) -> bool {
    let resp = cloud.http.get(cloud.url(&format!("/subscriptions?{R}"))).bearer_auth(token).send().await.unwrap();
    resp.status() == 200
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// A resource group with a VNet, a public IP, a NIC and a Linux VM (the shared test setup).
async fn linux_vm(cloud: &Cloud, group: &str, vm: &str) {
    cloud.arm.linux_vm(LOCAL_SUBSCRIPTION, group, vm).await;
}

#[tokio::test]
async fn tokens_are_issued_to_known_principals_and_refused_otherwise() {
    let cloud = Cloud::start().await;
    let p = cloud.emulator.principals()[0].clone();
    let token_url = cloud.url(&format!("/{}/oauth2/v2.0/token", p.tenant_id));
    let scope = format!("{}/.default", cloud.emulator.base_url());
    let send = |form: Vec<(&'static str, String)>| {
        let (http, url) = (cloud.http.clone(), token_url.clone());
        async move {
            let r = http.post(url).form(&form).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let ok = |secret: &str| {
        vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", p.client_id.clone()),
            ("client_secret", secret.to_owned()),
            ("scope", scope.clone()),
        ]
    };
    let (s, body) = send(ok(&p.client_secret)).await;
    assert_eq!(s, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);

    let (s, body) = send(ok("wrong")).await;
    assert_eq!(s, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS7000215:"));
    assert_eq!(body["error_codes"], json!([7000215]));

    let mut unknown = ok(&p.client_secret);
    unknown[1].1 = "11111111-1111-4111-8111-111111111111".into();
    let (s, body) = send(unknown).await;
    assert_eq!((s.as_u16(), body["error"].as_str().unwrap()), (400, "unauthorized_client"));

    let mut no_scope = ok(&p.client_secret);
    no_scope.pop();
    let (s, body) = send(no_scope).await;
    assert_eq!((s.as_u16(), body["error_codes"][0].as_u64().unwrap()), (400, 900144));

    let mut other = ok(&p.client_secret);
    other[3].1 = "https://management.azure.com/.default".into();
    let (s, body) = send(other).await;
    assert_eq!((s.as_u16(), body["error"].as_str().unwrap()), (400, "invalid_resource"));

    // The v1 endpoint with `resource=`, as older clients use it.
    let r = cloud
        .http
        .post(cloud.url(&format!("/{LOCAL_TENANT}/oauth2/token")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &p.client_id),
            ("client_secret", &p.client_secret),
            ("resource", &format!("{}/", cloud.emulator.base_url())),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["expires_on"].as_str().unwrap().parse::<i64>().is_ok());
    // And it works against ARM.
    assert!(arm_accepts(&cloud, body["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn arm_checks_every_token_and_role() {
    let cloud = Cloud::with(|c| {
        c.subscriptions.push("99999999-0000-4000-8000-000000000000".into());
    })
    .await;
    let r = cloud.http.get(cloud.url(&format!("/subscriptions?{R}"))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer authorization_uri="));
    assert_eq!(code(&r.json().await.unwrap()), "AuthenticationFailed");

    let r = cloud.http.get(cloud.url(&format!("/subscriptions?{R}"))).bearer_auth("not.a.token").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(code(&r.json().await.unwrap()), "InvalidAuthenticationToken");

    let (s, body) = cloud.get(&format!("/subscriptions?{R}")).await;
    assert_eq!(s, 200);
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    assert_eq!(body["value"][0]["subscriptionId"], LOCAL_SUBSCRIPTION);

    let (s, body) = cloud.get(&format!("/subscriptions/99999999-0000-4000-8000-000000000000/resourcegroups?{R}")).await;
    assert_eq!((s.as_u16(), code(&body)), (403, "AuthorizationFailed"));
    let (s, body) = cloud.get(&format!("/subscriptions/12345678-0000-4000-8000-000000000000?{R}")).await;
    assert_eq!((s.as_u16(), code(&body)), (404, "SubscriptionNotFound"));
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let cloud = Cloud::with(|c| c.token_lifetime_secs = 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, body) = cloud.get(&format!("/subscriptions?{R}")).await;
    assert_eq!((s.as_u16(), code(&body)), (401, "ExpiredAuthenticationToken"));
}

#[tokio::test]
async fn api_versions_and_unknown_routes_get_arms_errors() {
    let cloud = Cloud::start().await;
    let (s, body) = cloud.get(&rg("g")).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "MissingApiVersionParameter"));
    let (s, body) = cloud.get(&format!("{}?api-version=2099-01-01", rg("g"))).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "InvalidApiVersionParameter"));
    // Clients in the field still send 2016 versions; they work.
    let (s, body) = cloud.get(&format!("{}?api-version=2016-09-01", rg("g"))).await;
    assert_eq!((s.as_u16(), code(&body)), (404, "ResourceGroupNotFound"));
    assert_eq!(body["error"]["message"], "Resource group 'g' could not be found.");
    cloud.call(Method::PUT, &format!("{}?{R}", rg("g")), Some(json!({"location": "westeurope"}))).await;
    let (s, body) = cloud.get(&format!("{}?api-version=2099-01-01", compute("g", "virtualMachines/x"))).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "NoRegisteredProviderFound"));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("No registered resource provider found for location 'westeurope' and API version '2099-01-01' for type 'virtualMachines'. The supported api-versions are '2026-04-01, 2025-04-01, "),
        "{message}"
    );
    // Each type takes its own versions: the disk service's `2026-03-02` is Compute's, but not a
    // VM's; managed images are younger than VMs; the provider's registration says the same.
    let (s, body) = cloud.get(&format!("{}?api-version=2026-03-02", compute("g", "virtualMachines/x"))).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "NoRegisteredProviderFound"));
    let supported = body["error"]["message"].as_str().unwrap().split("supported api-versions are").nth(1).unwrap();
    assert!(!supported.contains("2026-03-02"), "{body}");
    let (s, body) = cloud.get(&format!("{}?api-version=2026-04-01", compute("g", "virtualMachines/x"))).await;
    assert_eq!((s.as_u16(), code(&body)), (404, "ResourceNotFound"));
    let (s, body) = cloud.get(&format!("{}?api-version=2015-06-15", compute("g", "images/x"))).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "NoRegisteredProviderFound"));
    let (s, body) = cloud.get(&format!("{}?api-version=2016-04-30-preview", compute("g", "images/x"))).await;
    assert_eq!((s.as_u16(), code(&body)), (404, "ResourceNotFound"));
    let (_, provider) =
        cloud.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.Compute?{R}")).await;
    let versions = |t: &str| -> Vec<String> {
        let found = provider["resourceTypes"].as_array().unwrap().iter().find(|r| r["resourceType"] == t).unwrap();
        found["apiVersions"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    let vm_versions = versions("virtualMachines");
    assert_eq!(vm_versions.first().map(String::as_str), Some("2026-04-01"));
    assert!(vm_versions.iter().any(|v| v == "2015-06-15") && !vm_versions.iter().any(|v| v == "2026-03-02"));
    assert_eq!(versions("availabilitySets"), vm_versions);
    let (_, provider) =
        cloud.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.Resources?{R}")).await;
    assert_eq!(provider["resourceTypes"][0]["resourceType"], "deployments", "{provider}");
    // A namespace's own routes take its versions, the disk service's included.
    let (s, body) = cloud
        .get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.Compute/locations/westeurope/operations/nope?api-version=2026-03-02"))
        .await;
    assert_eq!((s.as_u16(), code(&body)), (404, "NotFound"));
    let (s, body) = cloud.get(&format!("{}?{C}", compute("g", "virtualMagic/x"))).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "InvalidResourceType"));
    let (s, body) = cloud
        .get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Nope/things/x?{C}"))
        .await;
    assert_eq!((s.as_u16(), code(&body)), (400, "InvalidResourceNamespace"));
    let (s, body) = cloud.get(&format!("{}?{C}", compute("g", "virtualMachines/missing"))).await;
    assert_eq!((s.as_u16(), code(&body)), (404, "ResourceNotFound"));
    let (s, body) = cloud.get(&format!("{}?{C}", compute("g", "virtualMachines/missing/extensions/e"))).await;
    assert_eq!((s.as_u16(), code(&body)), (404, "ParentResourceNotFound"));
}

#[tokio::test]
async fn resource_groups_create_update_list_and_delete_through_location_polling() {
    let cloud = Cloud::start().await;
    let (s, h, body) = cloud
        .call(
            Method::PUT,
            &format!("{}?{R}", rg("Apps")),
            Some(json!({"location": "West Europe", "tags": {"env": "test"}})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(body["location"], "westeurope");
    assert_eq!(body["properties"]["provisioningState"], "Succeeded");
    assert!(h.get("x-ms-ratelimit-remaining-subscription-writes").is_some());
    assert!(h.get("x-ms-request-id").is_some());
    let (s, _, _) =
        cloud.call(Method::PUT, &format!("{}?{R}", rg("apps")), Some(json!({"location": "westeurope"}))).await;
    assert_eq!(s, 200, "names are case-insensitive");
    let (s, _, body) = cloud.call(Method::PUT, &format!("{}?{R}", rg("x")), Some(json!({}))).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "LocationRequired"));
    let (s, _, body) =
        cloud.call(Method::PUT, &format!("{}?{R}", rg("x")), Some(json!({"location": "atlantis"}))).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "LocationNotAvailableForResourceGroup"));
    let (_, body) = cloud.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups?{R}")).await;
    assert_eq!(body["value"][0]["name"], "Apps");

    let (s, h, _) = cloud.call(Method::DELETE, &format!("{}?{R}", rg("apps")), None).await;
    assert_eq!(s, 202);
    let location = h["location"].to_str().unwrap().strip_prefix(cloud.emulator.base_url()).unwrap().to_owned();
    assert!(location.contains("/operationresults/"));
    let (s, _) = cloud.get(&location).await;
    assert_eq!(s, 200);
    let (s, _) = cloud.get(&format!("{}?{R}", rg("apps"))).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_linux_vm_with_its_network_as_azure_builds_it() {
    let cloud = Cloud::start().await;
    linux_vm(&cloud, "g", "vm1").await;

    let (_, pip) = cloud.get(&format!("{}?{N}", net("g", "publicIPAddresses/pip"))).await;
    assert_eq!(pip["properties"]["dnsSettings"]["fqdn"], "vm1.westeurope.cloudapp.azure.com");
    let ip = pip["properties"]["ipAddress"].as_str().unwrap();
    assert!(ip.starts_with("127.1."), "{ip}");
    assert_eq!(pip["sku"]["name"], "Standard");

    let (_, vnet) = cloud.get(&format!("{}?{N}", net("g", "virtualNetworks/vnet"))).await;
    assert_eq!(vnet["properties"]["subnets"][0]["name"], "default");
    let (s, subnet) = cloud.get(&format!("{}?{N}", net("g", "virtualNetworks/vnet/subnets/default"))).await;
    assert_eq!(s, 200, "inline subnets are resources too");
    assert_eq!(subnet["properties"]["addressPrefix"], "10.0.0.0/24");

    let (_, nic) = cloud.get(&format!("{}?{N}", net("g", "networkInterfaces/nic"))).await;
    assert_eq!(nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"], "10.0.0.4");
    assert!(nic["properties"]["virtualMachine"]["id"].as_str().unwrap().ends_with("/virtualMachines/vm1"));

    let (s, vm) = cloud.get(&format!("{}?{C}&$expand=instanceView", compute("g", "virtualMachines/vm1"))).await;
    assert_eq!(s, 200);
    assert_eq!(vm["properties"]["provisioningState"], "Succeeded");
    assert_eq!(vm["properties"]["storageProfile"]["osDisk"]["osType"], "Linux");
    assert!(vm["properties"]["osProfile"].get("adminPassword").is_none(), "passwords are never echoed");
    assert!(vm["properties"]["osProfile"].get("customData").is_none(), "custom data is never echoed");
    let statuses: Vec<&str> = vm["properties"]["instanceView"]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ProvisioningState/succeeded", "PowerState/running"]);

    let (_, guest) = cloud.admin(Method::GET, &format!("/guests/{LOCAL_SUBSCRIPTION}/g/vm1"), None).await;
    assert_eq!(guest["guest"]["users"]["azureuser"]["admin"], true);
    assert_eq!(guest["guest"]["customDataBytes"], 14);
    assert!(password_ok(&cloud, "azureuser", "Sup3r-Secret!").await);

    // The same DNS label in the same region is taken.
    let (s, _, body) = cloud
        .call(
            Method::PUT,
            &format!("{}?{N}", net("g", "publicIPAddresses/pip2")),
            Some(json!({"location": "westeurope", "properties": {"dnsSettings": {"domainNameLabel": "vm1"}}})),
        )
        .await;
    assert_eq!((s.as_u16(), code(&body)), (400, "DnsRecordInUse"));
    // A NIC naming a missing subnet.
    let missing = format!(
        "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nope"
    );
    let (s, _, body) = cloud.call(Method::PUT, &format!("{}?{N}", net("g", "networkInterfaces/nic2")), Some(json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": missing}}}]}}))).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "InvalidResourceReference"));
}

#[tokio::test]
async fn vm_validation_follows_the_platform_rules() {
    let cloud = Cloud::start().await;
    linux_vm(&cloud, "g", "vm1").await;
    let nic = format!(
        "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/nic"
    );
    let vm = |user: &str, password: &str, image: Value| {
        json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"}, "storageProfile": {"imageReference": image},
               "osProfile": {"adminUsername": user, "adminPassword": password}, "networkProfile": {"networkInterfaces": [{"id": nic}]}}})
    };
    let ubuntu = json!({"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"});
    for (user, password, target) in [
        ("admin", "Sup3r-Secret!", "adminUsername"),
        ("Bad", "Sup3r-Secret!", "adminUsername"),
        ("ops", "short", "adminPassword"),
        ("ops", "alllowercase", "adminPassword"),
        ("ops", "P@ssw0rd", "adminPassword"),
    ] {
        let (s, _, body) = cloud
            .call(
                Method::PUT,
                &format!("{}?{C}", compute("g", "virtualMachines/vm2")),
                Some(vm(user, password, ubuntu.clone())),
            )
            .await;
        assert_eq!(
            (s.as_u16(), code(&body), body["error"]["target"].as_str().unwrap()),
            (400, "InvalidParameter", target),
            "{user}/{password}: {body}"
        );
    }
    let (s, _, body) = cloud
        .call(
            Method::PUT,
            &format!("{}?{C}", compute("g", "virtualMachines/vm2")),
            Some(vm(
                "ops",
                "Sup3r-Secret!",
                json!({"publisher": "Canonical", "offer": "nope", "sku": "x", "version": "latest"}),
            )),
        )
        .await;
    assert_eq!((s.as_u16(), code(&body)), (404, "PlatformImageNotFound"));
    // The NIC already belongs to vm1.
    let (s, _, body) = cloud
        .call(
            Method::PUT,
            &format!("{}?{C}", compute("g", "virtualMachines/vm2")),
            Some(vm("ops", "Sup3r-Secret!", ubuntu)),
        )
        .await;
    assert_eq!((s.as_u16(), code(&body)), (400, "NicInUse"));
}

#[tokio::test]
async fn long_running_operations_report_progress_with_retry_after() {
    let cloud =
        Cloud::with(|c| c.durations = Durations { network: Duration::from_millis(400), ..Durations::instant() }).await;
    cloud.call(Method::PUT, &format!("{}?{R}", rg("g")), Some(json!({"location": "westeurope"}))).await;
    let (s, h, body) = cloud
        .call(
            Method::PUT,
            &format!("{}?{N}", net("g", "networkSecurityGroups/nsg")),
            Some(json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(s, 201);
    // Network's provisioning states have no `Creating`: a new one is `Updating` (the spec's enum).
    assert_eq!(body["properties"]["provisioningState"], "Updating");
    assert_eq!(h["retry-after"], "1");
    let op = h["azure-asyncoperation"].to_str().unwrap().strip_prefix(cloud.emulator.base_url()).unwrap().to_owned();
    assert!(op.contains("/providers/Microsoft.Network/locations/westeurope/operations/"), "{op}");
    let (_, status) = cloud.get(&op).await;
    assert_eq!(status["status"], "InProgress");
    let (_, nsg) = cloud.get(&format!("{}?{N}", net("g", "networkSecurityGroups/nsg"))).await;
    assert_eq!(nsg["properties"]["provisioningState"], "Updating");
    assert_eq!(nsg["properties"]["defaultSecurityRules"].as_array().unwrap().len(), 6);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (_, status) = cloud.get(&op).await;
    assert_eq!(status["status"], "Succeeded");
    assert!(status["endTime"].is_string());
    let (_, nsg) = cloud.get(&format!("{}?{N}", net("g", "networkSecurityGroups/nsg"))).await;
    assert_eq!(nsg["properties"]["provisioningState"], "Succeeded");
}

#[tokio::test]
async fn nsg_rules_are_validated() {
    let cloud = Cloud::start().await;
    cloud.call(Method::PUT, &format!("{}?{R}", rg("g")), Some(json!({"location": "westeurope"}))).await;
    cloud
        .put_and_wait(&format!("{}?{N}", net("g", "networkSecurityGroups/nsg")), json!({"location": "westeurope"}))
        .await;
    let rule = |priority: i64| json!({"properties": {"protocol": "Tcp", "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "2376", "access": "Allow", "direction": "Inbound", "priority": priority}});
    let (s, _, _) = cloud
        .put_and_wait(&format!("{}?{N}", net("g", "networkSecurityGroups/nsg/securityRules/docker")), rule(1000))
        .await;
    assert_eq!(s, 201);
    let (s, _, body) = cloud
        .call(
            Method::PUT,
            &format!("{}?{N}", net("g", "networkSecurityGroups/nsg/securityRules/ssh")),
            Some(rule(1000)),
        )
        .await;
    assert_eq!((s.as_u16(), code(&body)), (400, "SecurityRuleConflict"));
    let (s, _, body) = cloud
        .call(Method::PUT, &format!("{}?{N}", net("g", "networkSecurityGroups/nsg/securityRules/ssh")), Some(rule(50)))
        .await;
    assert_eq!((s.as_u16(), code(&body)), (400, "SecurityRuleInvalidPriority"));
    let (_, nsg) = cloud.get(&format!("{}?{N}", net("g", "networkSecurityGroups/nsg"))).await;
    assert_eq!(nsg["properties"]["securityRules"][0]["name"], "docker");
}

#[tokio::test]
async fn power_actions_and_extensions_on_a_stopped_vm() {
    let cloud = Cloud::start().await;
    linux_vm(&cloud, "g", "vm1").await;
    let vm = compute("g", "virtualMachines/vm1");
    let (s, h, _) = cloud.call(Method::POST, &format!("{vm}/powerOff?{C}"), None).await;
    assert_eq!(s, 202);
    assert!(h.get("azure-asyncoperation").is_some() && h.get("location").is_some());
    let (_, view) = cloud.get(&format!("{vm}/instanceView?{C}")).await;
    assert_eq!(view["statuses"][1]["code"], "PowerState/stopped");
    let (s, _, body) = cloud
        .call(Method::PUT, &format!("{vm}/extensions/enablevmaccess?{C}"), Some(json!({"location": "westeurope", "properties": {"publisher": "Microsoft.OSTCExtensions", "type": "VMAccessForLinux", "typeHandlerVersion": "1.5"}})))
        .await;
    assert_eq!((s.as_u16(), code(&body)), (409, "OperationNotAllowed"));
    cloud.call(Method::POST, &format!("{vm}/start?{C}"), None).await;
    cloud.call(Method::POST, &format!("{vm}/deallocate?{C}"), None).await;
    let (_, view) = cloud.get(&format!("{vm}/instanceView?{C}")).await;
    assert_eq!(view["statuses"][1]["code"], "PowerState/deallocated");
}

#[tokio::test]
async fn vmaccess_changes_the_guest_and_reruns_only_with_a_new_tag() {
    let cloud = Cloud::start().await;
    linux_vm(&cloud, "g", "vm1").await;
    let ext = format!("{}?{C}", compute("g", "virtualMachines/vm1/extensions/enablevmaccess"));
    let body = |tag: &str, protected: Value| json!({"location": "westeurope", "properties": {"publisher": "Microsoft.OSTCExtensions", "type": "VMAccessForLinux", "typeHandlerVersion": "1.5", "autoUpgradeMinorVersion": true, "forceUpdateTag": tag, "settings": {}, "protectedSettings": protected}});
    let (s, created, op) =
        cloud.put_and_wait(&ext, body("1", json!({"username": "ops", "password": "N3w-Passw0rd!"}))).await;
    assert_eq!(s, 201);
    assert_eq!(op["status"], "Succeeded");
    assert!(created["properties"].get("protectedSettings").is_none(), "protected settings are never echoed");
    let (_, got) = cloud
        .get(&format!("{}?{C}&$expand=instanceView", compute("g", "virtualMachines/vm1/extensions/enablevmaccess")))
        .await;
    assert!(got["properties"].get("protectedSettings").is_none());
    assert_eq!(got["properties"]["instanceView"]["statuses"][0]["code"], "ProvisioningState/succeeded");
    assert!(password_ok(&cloud, "ops", "N3w-Passw0rd!").await);
    assert!(!password_ok(&cloud, "ops", "nope").await);

    cloud.put_and_wait(&ext, body("1", json!({"username": "ops", "password": "N3w-Passw0rd!"}))).await;
    let (_, guest) = cloud.admin(Method::GET, &format!("/guests/{LOCAL_SUBSCRIPTION}/g/vm1"), None).await;
    assert_eq!(guest["guest"]["handlerRuns"]["enablevmaccess"], 1, "same settings and tag: the handler does not run");
    cloud.put_and_wait(&ext, body("2", json!({"username": "ops", "password": "N3w-Passw0rd!"}))).await;
    let (_, guest) = cloud.admin(Method::GET, &format!("/guests/{LOCAL_SUBSCRIPTION}/g/vm1"), None).await;
    assert_eq!(guest["guest"]["handlerRuns"]["enablevmaccess"], 2);

    // One instance per handler.
    let (s, _, err) = cloud
        .call(
            Method::PUT,
            &format!("{}?{C}", compute("g", "virtualMachines/vm1/extensions/other")),
            Some(body("3", json!({}))),
        )
        .await;
    assert_eq!((s.as_u16(), code(&err)), (400, "BadRequest"));
    assert!(err["error"]["message"].as_str().unwrap().contains("Multiple VMExtensions per handler"));
    // Unknown handler.
    let (s, _, err) = cloud
        .call(Method::PUT, &format!("{}?{C}", compute("g", "virtualMachines/vm1/extensions/x")), Some(json!({"location": "westeurope", "properties": {"publisher": "Contoso", "type": "Nope", "typeHandlerVersion": "1.0"}})))
        .await;
    assert_eq!((s.as_u16(), code(&err)), (404, "ArtifactNotFound"));

    // A handler failure fails the operation and shows on the VM.
    let (_, _, op) = cloud.put_and_wait(&ext, body("4", json!({"username": "ops"}))).await;
    assert_eq!(op["status"], "Failed");
    assert_eq!(op["error"]["code"], "VMExtensionProvisioningError");
    let (_, vm) = cloud.get(&format!("{}?{C}&$expand=instanceView", compute("g", "virtualMachines/vm1"))).await;
    assert_eq!(
        vm["properties"]["instanceView"]["statuses"][0]["code"],
        "ProvisioningState/failed/VMExtensionProvisioningError"
    );
}

#[tokio::test]
async fn deletes_check_use_and_cascade() {
    let cloud = Cloud::start().await;
    linux_vm(&cloud, "g", "vm1").await;
    let (s, _, body) = cloud.call(Method::DELETE, &format!("{}?{N}", net("g", "networkInterfaces/nic")), None).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "NicInUse"));
    let (s, _, body) =
        cloud.call(Method::DELETE, &format!("{}?{N}", net("g", "virtualNetworks/vnet/subnets/default")), None).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "InUseSubnetCannotBeDeleted"));
    let (s, _, body) = cloud.call(Method::DELETE, &format!("{}?{N}", net("g", "publicIPAddresses/pip")), None).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "PublicIPAddressCannotBeDeleted"));

    let (s, h, _) = cloud.call(Method::DELETE, &format!("{}?{C}", compute("g", "virtualMachines/vm1")), None).await;
    assert_eq!(s, 202);
    let monitor = h["location"].to_str().unwrap().strip_prefix(cloud.emulator.base_url()).unwrap().to_owned();
    let (s, _) = cloud.get(&monitor).await;
    assert_eq!(s, 200);
    let (s, _) = cloud.get(&format!("{}?{C}", compute("g", "virtualMachines/vm1"))).await;
    assert_eq!(s, 404);
    // Deleting what does not exist is 204, as in ARM.
    let (s, _, _) = cloud.call(Method::DELETE, &format!("{}?{C}", compute("g", "virtualMachines/vm1")), None).await;
    assert_eq!(s, 204);
    // Now the NIC is free.
    let (s, _, _) = cloud.call(Method::DELETE, &format!("{}?{N}", net("g", "networkInterfaces/nic")), None).await;
    assert_eq!(s, 202);
}

#[tokio::test]
async fn throttling_reports_remaining_and_answers_429_when_empty() {
    let cloud = Cloud::with(|c| {
        c.throttle =
            ThrottleConfig { write_burst: 5.0, write_per_sec: 2.0, read_burst: 100.0, ..ThrottleConfig::default() }
    })
    .await;
    let mut remaining = Vec::new();
    let mut throttled = None;
    for i in 0..7 {
        let (s, h, body) = cloud
            .call(Method::PUT, &format!("{}?{R}", rg(&format!("g{i}"))), Some(json!({"location": "westeurope"})))
            .await;
        let left = h["x-ms-ratelimit-remaining-subscription-writes"].to_str().unwrap().to_owned();
        if s == 429 {
            throttled = Some((h["retry-after"].to_str().unwrap().to_owned(), code(&body).to_owned()));
            break;
        }
        remaining.push(left);
    }
    assert_eq!(remaining, ["4", "3", "2", "1", "0"]);
    assert_eq!(throttled, Some(("1".into(), "TooManyRequests".into())));
    // Reads have their own bucket.
    let (s, h) = cloud.call(Method::GET, &format!("{}?{R}", rg("g0")), None).await.into_parts();
    assert_eq!(s, 200);
    assert_eq!(h["x-ms-ratelimit-remaining-subscription-reads"], "99");
}

trait Parts {
    fn into_parts(self) -> (StatusCode, reqwest::header::HeaderMap);
}

impl Parts for (StatusCode, reqwest::header::HeaderMap, Value) {
    fn into_parts(self) -> (StatusCode, reqwest::header::HeaderMap) {
        (self.0, self.1)
    }
}

#[tokio::test]
async fn faults_are_deterministic_under_a_seed() {
    let cloud = Cloud::start().await;
    cloud.call(Method::PUT, &format!("{}?{R}", rg("g")), Some(json!({"location": "westeurope"}))).await;
    let rules = json!({"seed": 42, "rules": [{"method": "GET", "pathContains": "/resourcegroups/g", "rate": 0.3, "fault": {"kind": "status", "status": 503}}]});
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (s, _) = cloud.admin(Method::PUT, "/faults", Some(rules.clone())).await;
        assert_eq!(s, 200);
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(cloud.get(&format!("{}?{R}", rg("g"))).await.0.as_u16());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    let failures = runs[0].iter().filter(|s| **s == 503).count();
    assert!((4..=20).contains(&failures), "{failures} of 40");

    // A sequence: drop the connection, add latency, fail the long-running operation.
    let rules = json!({"rules": [{"pathContains": "/networkSecurityGroups/", "sequence": [
        {"kind": "drop"}, {"kind": "latency", "millis": 300}, {"kind": "lroFail", "code": "InternalOperationError", "message": "boom"}]}]});
    cloud.admin(Method::PUT, "/faults", Some(rules)).await;
    let url = format!("{}?{N}", net("g", "networkSecurityGroups/nsg"));
    let dropped =
        cloud.http.put(cloud.url(&url)).bearer_auth(&cloud.token).json(&json!({"location": "westeurope"})).send().await;
    assert!(dropped.is_err(), "the connection should have been dropped");
    let start = Instant::now();
    let (s, _, _) = cloud.call(Method::GET, &url, None).await;
    assert_eq!(s, 404);
    assert!(start.elapsed() >= Duration::from_millis(300));
    let (_, _, op) = cloud.put_and_wait(&url, json!({"location": "westeurope"})).await;
    assert_eq!(
        (op["status"].as_str().unwrap(), op["error"]["code"].as_str().unwrap()),
        ("Failed", "InternalOperationError")
    );
    let (s, log) = cloud.admin(Method::GET, "/requests", None).await;
    assert_eq!(s, 200);
    assert!(
        log["requests"].as_array().unwrap().iter().any(|r| r["status"] == 0),
        "dropped requests are logged with status 0"
    );
}

#[tokio::test]
async fn discovery_documents_and_image_catalogue() {
    let cloud = Cloud::start().await;
    let base = cloud.emulator.base_url().to_owned();
    let r = cloud.http.get(cloud.url("/metadata/endpoints?api-version=2015-01-01")).send().await.unwrap();
    let old: Value = r.json().await.unwrap();
    assert_eq!(old["authentication"]["loginEndpoint"], base);
    assert_eq!(old["authentication"]["audiences"][0], format!("{base}/"));
    let new: Value = cloud
        .http
        .get(cloud.url("/metadata/endpoints?api-version=2022-09-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // One cloud's object, as a custom cloud serves it (what `az cloud register` reads).
    assert_eq!(new["resourceManager"], base);
    assert_eq!(new["authentication"]["loginEndpoint"], base);
    assert!(new["suffixes"].is_object() && new["name"].is_string(), "{new}");
    // The image alias document `az vm create --image Ubuntu2404` reads, served without a token
    // as Azure serves it from a public blob: each alias names an image of the catalogue.
    let alias_doc = new["vmImageAliasDoc"].as_str().unwrap();
    assert!(alias_doc.starts_with(&base), "{alias_doc}");
    let aliases: Value = cloud.http.get(alias_doc).send().await.unwrap().json().await.unwrap();
    let ubuntu = &aliases["outputs"]["aliases"]["value"]["Linux"]["Ubuntu2404"];
    assert_eq!((ubuntu["publisher"].as_str(), ubuntu["offer"].as_str()), (Some("Canonical"), Some("ubuntu-24_04-lts")));
    let windows = &aliases["outputs"]["aliases"]["value"]["Windows"]["Win2022Datacenter"];
    let (_, versions) = cloud
        .get(&format!(
            "/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.Compute/locations/westus/publishers/{}/artifacttypes/vmimage/offers/{}/skus/{}/versions?{C}",
            windows["publisher"].as_str().unwrap(),
            windows["offer"].as_str().unwrap(),
            windows["sku"].as_str().unwrap()
        ))
        .await;
    assert!(!versions.as_array().unwrap().is_empty(), "{versions}");
    assert!(aliases["outputs"]["aliases"]["value"]["Linux"].get("Win2022Datacenter").is_none());
    let oidc: Value = cloud
        .http
        .get(cloud.url(&format!("/{LOCAL_TENANT}/v2.0/.well-known/openid-configuration")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oidc["token_endpoint"], format!("{base}/{LOCAL_TENANT}/oauth2/v2.0/token"));

    let images =
        format!("/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.Compute/locations/westeurope/publishers");
    let (_, latest) = cloud.get(&format!("{images}/Canonical/artifacttypes/vmimage/offers/ubuntu-24_04-lts/skus/server/versions?{C}&$orderby=name%20desc&$top=1")).await;
    assert_eq!(latest.as_array().unwrap().len(), 1);
    assert_eq!(latest[0]["name"], "24.04.202411030");
    let (_, versions) = cloud
        .get(&format!(
            "{images}/Microsoft.OSTCExtensions/artifacttypes/vmextension/types/VMAccessForLinux/versions?{C}"
        ))
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    let (s, body) = cloud.get(&format!("{images}/Nobody/artifacttypes/vmimage/offers?{C}")).await;
    assert_eq!((s.as_u16(), code(&body)), (404, "NotFound"));
    let (_, locations) = cloud.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/locations?{R}")).await;
    assert!(locations["value"].as_array().unwrap().iter().any(|l| l["name"] == "westeurope"));
    let (_, providers) =
        cloud.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.Compute?{R}")).await;
    assert_eq!(providers["registrationState"], "Registered");
}

#[tokio::test]
async fn state_survives_a_restart() {
    let cloud = Cloud::with(|c| c.persist = true).await;
    linux_vm(&cloud, "g", "vm1").await;
    let ext = format!("{}?{C}", compute("g", "virtualMachines/vm1/extensions/enablevmaccess"));
    let body = json!({"location": "westeurope", "properties": {"publisher": "Microsoft.OSTCExtensions", "type": "VMAccessForLinux", "typeHandlerVersion": "1.5", "forceUpdateTag": "1", "protectedSettings": {"username": "ops", "password": "N3w-Passw0rd!"}}});
    cloud.put_and_wait(&ext, body).await;
    let (_, pip_before) = cloud.get(&format!("{}?{N}", net("g", "publicIPAddresses/pip"))).await;
    let Cloud { emulator, dir, .. } = cloud;
    emulator.stop().await;
    assert!(dir.path().join("state.json").exists());

    let cloud = Cloud::in_dir(dir, |c| c.persist = true).await;
    let (s, _) = cloud.get(&format!("{}?{R}", rg("g"))).await;
    assert_eq!(s, 200);
    let (s, vm) = cloud.get(&format!("{}?{C}&$expand=instanceView", compute("g", "virtualMachines/vm1"))).await;
    assert_eq!(s, 200);
    assert_eq!(vm["properties"]["instanceView"]["statuses"][1]["code"], "PowerState/running");
    let (_, pip) = cloud.get(&format!("{}?{N}", net("g", "publicIPAddresses/pip"))).await;
    assert_eq!(pip["properties"]["ipAddress"], pip_before["properties"]["ipAddress"]);
    assert!(password_ok(&cloud, "ops", "N3w-Passw0rd!").await, "guest state survives");
    let (_, ext) = cloud
        .get(&format!("{}?{C}&$expand=instanceView", compute("g", "virtualMachines/vm1/extensions/enablevmaccess")))
        .await;
    assert_eq!(ext["properties"]["instanceView"]["statuses"][0]["code"], "ProvisioningState/succeeded");
    // A new public IP does not reuse an old address.
    cloud.put_and_wait(&format!("{}?{N}", net("g", "publicIPAddresses/pip2")), json!({"location": "westeurope"})).await;
    let (_, pip2) = cloud.get(&format!("{}?{N}", net("g", "publicIPAddresses/pip2"))).await;
    assert_ne!(pip2["properties"]["ipAddress"], pip["properties"]["ipAddress"]);
}

/// A client assertion signed with `key` (PKCS#8 DER), in Entra's format.
fn assertion(key: &[u8], cert_der: &[u8], alg: &str, aud: &str, client_id: &str, exp_offset: i64) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = if alg == "PS256" {
        json!({"alg": "PS256", "typ": "JWT", "x5t#S256": b64(ring::digest::digest(&ring::digest::SHA256, cert_der).as_ref())})
    } else {
        json!({"alg": "RS256", "typ": "JWT", "x5t": b64(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der).as_ref())})
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims =
        json!({"aud": aud, "iss": client_id, "sub": client_id, "jti": "1", "nbf": now - 60, "exp": now + exp_offset});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let pair = ring::signature::RsaKeyPair::from_pkcs8(key).unwrap();
    let mut sig = vec![0; pair.public().modulus_len()];
    let padding: &'static dyn ring::signature::RsaEncoding =
        if alg == "PS256" { &ring::signature::RSA_PSS_SHA256 } else { &ring::signature::RSA_PKCS1_SHA256 };
    pair.sign(padding, &ring::rand::SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
    format!("{input}.{}", b64(&sig))
}

fn pem_body(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

#[tokio::test]
async fn certificate_credentials_sign_in_with_a_signed_client_assertion() {
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = azdock_tests::self_signed_rsa(dir.path(), "azdock-sp");
    let (other_cert, other_key_path) = azdock_tests::self_signed_rsa(dir.path(), "other");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let cert_pem = read(&cert_path);
    let (key, cert) = (pem_body(&read(&key_path)), pem_body(&cert_pem));
    let (other_key, other) = (pem_body(&read(&other_key_path)), pem_body(&read(&other_cert)));
    let p = cloud.emulator.principals()[0].clone();
    let (s, _) = cloud
        .admin(Method::POST, &format!("/principals/{}/certificates", p.client_id), Some(json!({"pem": cert_pem})))
        .await;
    assert_eq!(s, 204);

    let endpoint = cloud.url(&format!("/{}/oauth2/v2.0/token", p.tenant_id));
    let scope = format!("{}/.default", cloud.emulator.base_url());
    let sign_in = |assertion: String| {
        let (http, endpoint, scope, client_id) =
            (cloud.http.clone(), endpoint.clone(), scope.clone(), p.client_id.clone());
        async move {
            let form = [
                ("grant_type", "client_credentials".to_owned()),
                ("client_id", client_id),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
                ("client_assertion", assertion),
                ("scope", scope),
            ];
            let r = http.post(endpoint).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    for alg in ["RS256", "PS256"] {
        let (s, body) = sign_in(assertion(&key, &cert, alg, &endpoint, &p.client_id, 600)).await;
        assert_eq!(s, 200, "{alg}: {body}");
        assert!(arm_accepts(&cloud, body["access_token"].as_str().unwrap()).await);
    }
    let refused = [
        (
            assertion(&key, &cert, "RS256", "https://login.microsoftonline.com/x/oauth2/v2.0/token", &p.client_id, 600),
            700_021,
        ),
        (assertion(&other_key, &other, "RS256", &endpoint, &p.client_id, 600), 700_027),
        (assertion(&key, &cert, "RS256", &endpoint, &p.client_id, -10), 700_024),
        // Signed by another key but naming the registered certificate.
        (assertion(&other_key, &cert, "RS256", &endpoint, &p.client_id, 600), 700_027),
    ];
    for (jwt, code) in refused {
        let (s, body) = sign_in(jwt).await;
        assert_eq!((s, body["error_codes"][0].as_u64()), (401, Some(code)), "{body}");
    }
}

#[tokio::test]
async fn reads_journal_nothing_and_a_change_is_on_disk_when_answered() {
    let cloud = Cloud::with(|c| c.persist = true).await;
    let journal = || {
        let entry = std::fs::read_dir(cloud.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("state.journal."))
            .expect("a journal");
        std::fs::read_to_string(entry).unwrap()
    };
    assert_eq!(journal(), "", "a fresh start journals nothing");
    cloud.call(Method::PUT, &format!("{}?{R}", rg("g")), Some(json!({"location": "westeurope"}))).await;
    // No waiting: the answer came only once the change was written.
    let first = journal();
    assert!(first.contains("resourceGroups/g\""), "{first}");
    for _ in 0..20 {
        assert_eq!(cloud.get(&format!("{}?{R}", rg("g"))).await.0, 200);
    }
    assert_eq!(cloud.get(&format!("{}?{R}", rg("missing"))).await.0, 404);
    assert_eq!(journal(), first, "reads were journaled");
    cloud.call(Method::PUT, &format!("{}?{R}", rg("h")), Some(json!({"location": "westeurope"}))).await;
    let second = journal();
    assert!(second.starts_with(&first) && second.contains("resourceGroups/h\""), "{second}");
    // One line per changed resource, not a copy of the cloud.
    assert_eq!(second.lines().count() - first.lines().count(), 1, "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_becomes_a_snapshot_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let cloud = Cloud::in_dir(dir, |c| {
        c.persist = true;
        c.checkpoint_bytes = 2_000;
    })
    .await;
    for i in 0..40 {
        let (s, _, _) = cloud
            .call(Method::PUT, &format!("{}?{R}", rg(&format!("g{i}"))), Some(json!({"location": "westeurope"})))
            .await;
        assert!(s.is_success());
    }
    assert_eq!(cloud.call(Method::DELETE, &format!("{}?{R}", rg("g3")), None).await.0.as_u16(), 202);
    let journals = || {
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("state.journal."))
            .collect();
        names.sort();
        names
    };
    // The snapshot took over; the old generations are gone. The committer writes the snapshot
    // after it made the switch durable (responses do not wait for it), so allow it a moment.
    let mut seen = journals();
    for _ in 0..50 {
        if seen.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        seen = journals();
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_ne!(seen[0], "state.journal.1", "no checkpoint happened");
    let snapshot: Value = serde_json::from_slice(&std::fs::read(path.join("state.json")).unwrap()).unwrap();
    assert!(snapshot["resources"].as_array().unwrap().len() > 10, "the snapshot holds what was folded");
    // Nothing written is lost across a restart that replays snapshot and journal.
    let Cloud { emulator, dir, .. } = cloud;
    emulator.stop().await;
    let again = Cloud::in_dir(dir, |c| c.persist = true).await;
    for i in 0..40 {
        let (s, _) = again.get(&format!("{}?{R}", rg(&format!("g{i}")))).await;
        assert_eq!(s, if i == 3 { 404 } else { 200 }, "g{i}");
    }
}

#[tokio::test]
async fn imds_answers_only_below_its_secret_path() {
    let cloud = Cloud::start().await;
    let base = cloud.emulator.base_url().to_owned();
    let query = format!("resource={base}/&api-version=2018-02-01");
    let imds = cloud.emulator.imds_endpoint();
    assert!(imds.starts_with(&format!("{base}/_imds/")) && imds.len() > base.len() + 40, "{imds}");
    for url in [
        format!("{base}/metadata/identity/oauth2/token?{query}"),
        format!("{base}/_imds/guess/metadata/identity/oauth2/token?{query}"),
    ] {
        let resp = cloud.http.get(&url).header("Metadata", "true").send().await.unwrap();
        assert_eq!(resp.status(), 401, "{url}");
        // IMDS's own refusal, not ARM's missing-token one.
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{url}: {body}");
    }
    let resp = cloud.http.get(format!("{imds}/metadata/identity/oauth2/token?{query}")).header("Metadata", "true");
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["access_token"].is_string(), "{body}");
    // Without the admin key, no admin route answers.
    let resp = cloud.http.get(cloud.url("/_emulator/health")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_deleted_extension_leaves_the_vms_instance_view() {
    let cloud = Cloud::start().await;
    linux_vm(&cloud, "g", "vm1").await;
    let ext = format!("{}?{C}", compute("g", "virtualMachines/vm1/extensions/enablevmaccess"));
    // A handler that fails (no password, no key): the VM shows the failure.
    let body = json!({"location": "westeurope", "properties": {"publisher": "Microsoft.OSTCExtensions", "type": "VMAccessForLinux", "typeHandlerVersion": "1.5", "settings": {}, "protectedSettings": {"username": "ops"}}});
    assert_eq!(cloud.put_and_wait(&ext, body).await.2["status"], "Failed");
    let view = || async {
        let (_, vm) = cloud.get(&format!("{}?{C}&$expand=instanceView", compute("g", "virtualMachines/vm1"))).await;
        vm["properties"]["instanceView"].clone()
    };
    let before = view().await;
    assert_eq!(before["extensions"][0]["name"], "enablevmaccess", "{before}");
    assert_eq!(before["statuses"][0]["code"], "ProvisioningState/failed/VMExtensionProvisioningError");

    assert_eq!(cloud.wait(Method::DELETE, &ext, None).await["status"], "Succeeded");
    let after = view().await;
    let listed: Vec<&Value> = after["extensions"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    assert!(listed.iter().all(|e| e["name"] != "enablevmaccess"), "the deleted extension is still listed: {after}");
    assert_eq!(after["statuses"][0]["code"], "ProvisioningState/succeeded", "{after}");
}

#[tokio::test]
async fn regions_sizes_api_versions_images_and_nics_as_azure_serves_them() {
    let cloud = Cloud::start().await;
    let sub = format!("/subscriptions/{LOCAL_SUBSCRIPTION}");
    // Every public region, with its display name; a display name in a PUT is stored as the name.
    let (_, locations) = cloud.get(&format!("{sub}/locations?{R}")).await;
    let regions = locations["value"].as_array().unwrap();
    assert!(regions.len() >= 50, "{} regions", regions.len());
    let west = regions.iter().find(|r| r["name"] == "westus").expect("westus, the 2014 article's region");
    assert_eq!((west["displayName"].as_str(), west["type"].as_str()), (Some("West US"), Some("Region")));
    assert_eq!(west["metadata"]["regionType"], "Physical");
    let (s, _, group) =
        cloud.call(Method::PUT, &format!("{}?{R}", rg("classic")), Some(json!({"location": "West US"}))).await;
    assert_eq!((s.as_u16(), group["location"].as_str()), (201, Some("westus")));

    // VM sizes per region; an unknown region as ARM refuses it.
    let sizes = |loc: &str| format!("{sub}/providers/Microsoft.Compute/locations/{loc}/vmSizes?{C}");
    let (s, listed) = cloud.get(&sizes("westus")).await;
    assert_eq!(s, 200);
    let b1s = listed["value"].as_array().unwrap().iter().find(|v| v["name"] == "Standard_B1s").expect("B1s");
    assert_eq!((b1s["numberOfCores"].as_u64(), b1s["memoryInMB"].as_u64()), (Some(1), Some(1024)));
    let (s, body) = cloud.get(&sizes("atlantis")).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "NoRegisteredProviderFound"));

    // The api-versions az 2.91 sends for network lists, and ARM's answer to one it does not know.
    for version in ["2025-07-01", "2025-09-01"] {
        let (s, body) =
            cloud.get(&format!("{sub}/providers/Microsoft.Network/publicIPAddresses?api-version={version}")).await;
        assert_eq!(s, 200, "{version}: {body}");
    }
    let (s, body) =
        cloud.get(&format!("{sub}/providers/Microsoft.Network/virtualNetworks?api-version=2099-01-01")).await;
    assert_eq!((s.as_u16(), code(&body)), (400, "NoRegisteredProviderFound"));

    // A managed image that does not exist: ARM's 404, which az reads as "not an image id".
    let (s, body) = cloud.get(&format!("{}?{C}", compute("classic", "images/Ubuntu2404"))).await;
    assert_eq!((s.as_u16(), code(&body)), (404, "ResourceNotFound"));
    assert!(body["error"]["message"].as_str().unwrap().contains("Microsoft.Compute/images/Ubuntu2404"), "{body}");

    // A NIC: DNS settings, and once a VM uses it, primary and a MAC address.
    linux_vm(&cloud, "g", "vm1").await;
    let (_, nic) = cloud.get(&format!("{}?{N}", net("g", "networkInterfaces/nic"))).await;
    let p = &nic["properties"];
    assert_eq!(p["dnsSettings"]["dnsServers"], json!([]));
    assert!(p["dnsSettings"]["internalDomainNameSuffix"].as_str().unwrap().ends_with(".internal.cloudapp.net"), "{p}");
    assert_eq!((p["primary"].as_bool(), p["enableAcceleratedNetworking"].as_bool()), (Some(true), Some(false)));
    let mac = p["macAddress"].as_str().unwrap();
    assert!(mac.starts_with("00-0D-3A-") && mac.len() == 17, "{mac}");
    assert_eq!(p["ipConfigurations"][0]["properties"]["privateIPAddressVersion"], "IPv4");
    // The suffix is the NIC's for good: an update keeps it.
    let suffix = p["dnsSettings"]["internalDomainNameSuffix"].clone();
    let mut update = nic.clone();
    update["properties"].as_object_mut().unwrap().remove("dnsSettings");
    cloud.put_and_wait(&format!("{}?{N}", net("g", "networkInterfaces/nic")), update).await;
    let (_, nic) = cloud.get(&format!("{}?{N}", net("g", "networkInterfaces/nic"))).await;
    assert_eq!(nic["properties"]["dnsSettings"]["internalDomainNameSuffix"], suffix);
    assert_eq!(nic["properties"]["primary"], true);

    // A generic resource client's empty parent path (`Microsoft.Network//networkInterfaces/nic`,
    // az's existence check) reads as the path without it, as in ARM.
    let doubled = format!("{}?{N}", net("g", "/networkInterfaces/nic"));
    assert!(doubled.contains("Microsoft.Network//networkInterfaces"), "{doubled}");
    let (s, same) = cloud.get(&doubled).await;
    assert_eq!((s.as_u16(), &same), (200, &nic));
}

/// As ARM answers (see the recorded Java and .NET sessions): a VM's GET carries its extensions in
/// full, a list of VMs names them by id only.
#[tokio::test]
async fn a_vm_list_names_extensions_by_id_and_a_get_shows_them() {
    let cloud = Cloud::start().await;
    linux_vm(&cloud, "g", "vm1").await;
    let ext = format!("{}?{C}", compute("g", "virtualMachines/vm1/extensions/enablevmaccess"));
    let body = json!({"location": "westeurope", "properties": {"publisher": "Microsoft.OSTCExtensions", "type": "VMAccessForLinux", "typeHandlerVersion": "1.5", "protectedSettings": {"username": "ops", "password": "N3w-Passw0rd!"}}});
    assert_eq!(cloud.put_and_wait(&ext, body).await.2["status"], "Succeeded");
    let id = format!(
        "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1/extensions/enablevmaccess"
    );
    for list in [
        format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Compute/virtualMachines?{C}"),
        format!("/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.Compute/virtualMachines?{C}"),
    ] {
        let (_, listed) = cloud.get(&list).await;
        assert_eq!(listed["value"][0]["resources"], json!([{"id": id}]), "{list}");
    }
    let (_, vm) = cloud.get(&format!("{}?{C}", compute("g", "virtualMachines/vm1"))).await;
    let full = &vm["resources"][0];
    assert_eq!(
        (full["name"].as_str(), full["properties"]["type"].as_str()),
        (Some("enablevmaccess"), Some("VMAccessForLinux"))
    );
    assert!(full["properties"].get("protectedSettings").is_none());
}

/// With `record` set, every ARM exchange is a JSON line — method, path, api-version, status and
/// both bodies — and nothing else (token requests, admin routes) is.
#[tokio::test]
async fn arm_traffic_is_recorded_when_asked() {
    let records = tempfile::tempdir().unwrap();
    let dir = records.path().to_owned();
    let cloud = Cloud::with(|c| c.record = Some(dir)).await;
    cloud.call(Method::PUT, &format!("{}?{R}", rg("rec")), Some(json!({"location": "westeurope"}))).await;
    cloud.admin(Method::GET, "/requests", None).await;
    let files: Vec<_> = std::fs::read_dir(records.path()).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let put = &lines[0];
    assert_eq!(
        (put["method"].as_str(), put["apiVersion"].as_str(), put["status"].as_u64()),
        (Some("PUT"), Some("2021-04-01"), Some(201))
    );
    assert_eq!(put["path"], format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups/rec"));
    assert_eq!(put["request"], json!({"location": "westeurope"}));
    assert_eq!(put["response"]["name"], "rec");
}
