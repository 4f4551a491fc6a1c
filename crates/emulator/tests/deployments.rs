//! Template deployments over real HTTPS with a plain client: what ARM accepts and refuses, the
//! order resources are made in, outputs, operations, cancel, restart and clean-up.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::time::Duration;

use azdock_emulator::{Config, Durations, Emulator, LOCAL_SUBSCRIPTION};
use azdock_tests::arm::Arm;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The api-version of the vendored Resources specification, so the spec test checks these.
const R: &str = "api-version=2021-04-01";
const C: &str = "api-version=2024-11-01";
const N: &str = "api-version=2024-05-01";

struct Cloud {
    emulator: Emulator,
    arm: Arm,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for Cloud {
    type Target = Arm;
    fn deref(&self) -> &Arm {
        &self.arm
    }
}

async fn start(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Cloud {
    let mut config = Config::for_tests(dir.path());
    tweak(&mut config);
    let emulator = Emulator::start(config).await.unwrap();
    let p = emulator.principals()[0].clone();
    let arm =
        Arm::sign_in(emulator.base_url(), emulator.ca_pem().as_bytes(), &p.tenant_id, &p.client_id, &p.client_secret)
            .await
            .with_admin_key(emulator.admin_key());
    Cloud { emulator, arm, dir }
}

async fn instant() -> Cloud {
    start(tempfile::tempdir().unwrap(), |_| {}).await
}

fn group(name: &str) -> String {
    format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups/{name}")
}

fn deployment(rg: &str, name: &str) -> String {
    format!("{}/providers/Microsoft.Resources/deployments/{name}", group(rg))
}

async fn make_group(cloud: &Cloud, name: &str) {
    let (s, _, body) =
        cloud.call(Method::PUT, &format!("{}?{R}", group(name)), Some(json!({"location": "westus"}))).await;
    assert!(s.is_success(), "{body}");
}

/// Polls a deployment's status URL until it ends (bounded).
async fn finished(cloud: &Cloud, status_url: &str) -> Value {
    let path = status_url.strip_prefix(cloud.url("").as_str()).unwrap().to_owned();
    for _ in 0..400 {
        let (s, body) = cloud.get(&path).await;
        assert_eq!(s, 200, "{body}");
        if !matches!(body["status"].as_str(), Some("Accepted" | "Running")) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deployment {status_url} did not end");
}

/// Submits a deployment; the status code, the body and the status URL.
async fn submit(
    cloud: &Cloud,
    rg: &str,
    name: &str,
    template: Value,
    parameters: Value,
) -> (StatusCode, Value, String) {
    let body = json!({"properties": {"mode": "Incremental", "template": template, "parameters": parameters}});
    let (s, headers, out) = cloud.call(Method::PUT, &format!("{}?{R}", deployment(rg, name)), Some(body)).await;
    let url = headers.get("azure-asyncoperation").map(|h| h.to_str().unwrap().to_owned()).unwrap_or_default();
    (s, out, url)
}

/// What `az vm create` submits, with a parameter, variables, a copy loop and the functions its
/// templates use, plus outputs that read the created resources back.
fn vm_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "adminPassword": {"type": "securestring"},
            "prefix": {"type": "string", "defaultValue": "Web", "allowedValues": ["Web", "Db"]},
            "ipCount": {"type": "int", "defaultValue": 2}
        },
        "variables": {
            "name": "[toLower(parameters('prefix'))]",
            "vnet": "[concat(variables('name'), 'VNET')]",
            "subnetId": "[resourceId('Microsoft.Network/virtualNetworks/subnets', variables('vnet'), 'default')]"
        },
        "resources": [
            {
                "name": "[concat(variables('name'), 'Nic')]", "type": "Microsoft.Network/networkInterfaces", "apiVersion": "2015-06-15",
                "location": "[resourceGroup().location]",
                "dependsOn": ["[variables('vnet')]", "Microsoft.Network/networkSecurityGroups/webNSG", "ips"],
                "properties": {
                    "ipConfigurations": [{"name": "ipconfig1", "properties": {
                        "privateIPAllocationMethod": "Dynamic",
                        "subnet": {"id": "[variables('subnetId')]"},
                        "publicIPAddress": {"id": "[resourceId('Microsoft.Network/publicIPAddresses', concat(variables('name'), 'IP', 0))]"}
                    }}],
                    "networkSecurityGroup": {"id": "[resourceId('Microsoft.Network/networkSecurityGroups', 'webNSG')]"}
                }
            },
            {
                "name": "[variables('vnet')]", "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2015-06-15", "location": "westus",
                "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}
            },
            {
                "name": "webNSG", "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2015-06-15", "location": "westus",
                "properties": {"securityRules": [{"name": "default-allow-ssh", "properties": {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Allow", "priority": 1000, "direction": "Inbound"}}]}
            },
            {
                "name": "[concat(variables('name'), 'IP', copyIndex())]", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2022-01-01",
                "location": "westus", "copy": {"name": "ips", "count": "[parameters('ipCount')]"},
                "sku": {"name": "Standard"}, "properties": {"publicIPAllocationMethod": "Static"}
            },
            {
                "name": "[variables('name')]", "type": "Microsoft.Compute/virtualMachines", "apiVersion": "2024-11-01", "location": "westus",
                "dependsOn": ["[resourceId('Microsoft.Network/networkInterfaces', concat(variables('name'), 'Nic'))]"],
                "properties": {
                    "hardwareProfile": {"vmSize": "Standard_B1s"},
                    "networkProfile": {"networkInterfaces": [{"id": "[resourceId('Microsoft.Network/networkInterfaces', concat(variables('name'), 'Nic'))]"}]},
                    "storageProfile": {"osDisk": {"createOption": "fromImage"}, "imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}},
                    "osProfile": {
                        "computerName": "[format('{0}-{1}', variables('name'), uniqueString(resourceGroup().id))]",
                        "adminUsername": "ops", "adminPassword": "[parameters('adminPassword')]"
                    }
                }
            }
        ],
        "outputs": {
            "ip": {"type": "string", "value": "[reference(concat(variables('name'), 'IP0')).ipAddress]"},
            "vmId": {"type": "string", "value": "[reference(variables('name'), '2024-11-01', 'Full').id]"},
            "secret": {"type": "securestring", "value": "[parameters('adminPassword')]"},
            "big": {"type": "bool", "value": "[if(equals(parameters('ipCount'), 2), true(), false())]"}
        }
    })
}

#[tokio::test]
async fn a_template_deploys_its_resources_in_dependency_order_and_reads_them_back() {
    // Network work takes a while, VMs none: the moment after the first round shows what ran
    // together and what waited.
    let cloud = start(tempfile::tempdir().unwrap(), |c| {
        c.durations = Durations { network: Duration::from_secs(2), ..Durations::instant() };
    })
    .await;
    make_group(&cloud, "g").await;
    let (s, created, url) =
        submit(&cloud, "g", "vm1", vm_template(), json!({"adminPassword": {"value": "Tmpl-Passw0rd!"}})).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["properties"]["provisioningState"], "Accepted");
    assert_eq!(created["properties"]["parameters"]["adminPassword"], json!({"type": "SecureString"}));
    assert_eq!(created["properties"]["parameters"]["prefix"], json!({"type": "String", "value": "Web"}));
    assert!(url.contains("/deployments/vm1/operationStatuses/"), "{url}");

    // First round: the VNet, the NSG and both public IPs start together; the NIC waits for
    // them all and the VM for the NIC.
    let ops_path = format!("{}/deployments/vm1/operations?{R}", group("g"));
    let (_, ops) = cloud.get(&ops_path).await;
    let mut started: Vec<String> = ops["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["properties"]["targetResource"]["resourceName"].as_str().unwrap().to_owned())
        .collect();
    started.sort();
    assert_eq!(started, ["webIP0", "webIP1", "webNSG", "webVNET"], "{ops}");
    assert!(ops["value"].as_array().unwrap().iter().all(|o| o["properties"]["provisioningState"] == "Running"));
    let (_, running) = cloud.get(&format!("{}?{R}", deployment("g", "vm1"))).await;
    assert_eq!(running["properties"]["provisioningState"], "Running");

    let status = finished(&cloud, &url).await;
    assert_eq!(status["status"], "Succeeded", "{status}");
    let (_, done) = cloud.get(&format!("{}?{R}", deployment("g", "vm1"))).await;
    let props = &done["properties"];
    assert_eq!(props["provisioningState"], "Succeeded");
    // Outputs read the created resources (`reference`), a secure one is not shown.
    let (_, ip) = cloud.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/publicIPAddresses/webIP0?{N}")).await;
    assert_eq!(props["outputs"]["ip"], json!({"type": "String", "value": ip["properties"]["ipAddress"]}));
    assert!(props["outputs"]["vmId"]["value"].as_str().unwrap().ends_with("/virtualMachines/web"), "{props}");
    assert_eq!(props["outputs"]["secret"], json!({"type": "SecureString"}));
    assert_eq!(props["outputs"]["big"]["value"], true);
    assert_eq!(props["outputResources"].as_array().unwrap().len(), 6);
    let nic_deps = props["dependencies"].as_array().unwrap().iter().find(|d| d["resourceName"] == "webNic").unwrap();
    assert_eq!(nic_deps["dependsOn"].as_array().unwrap().len(), 4, "{nic_deps}");
    assert!(!done.to_string().contains("Tmpl-Passw0rd!"));

    // Every resource went through its own route: the VM runs with the template's password
    // and the computer name its expressions made.
    let (_, vm) = cloud
        .get(&format!(
            "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/web?{C}"
        ))
        .await;
    assert_eq!(vm["properties"]["provisioningState"], "Succeeded");
    let computer = vm["properties"]["osProfile"]["computerName"].as_str().unwrap();
    assert!(computer.starts_with("web-") && computer.len() == 17, "{computer}");
    let (_, valid) = cloud
        .admin(
            Method::POST,
            &format!("/guests/{LOCAL_SUBSCRIPTION}/g/web/verify-password"),
            Some(json!({"username": "ops", "password": "Tmpl-Passw0rd!"})),
        )
        .await;
    assert_eq!(valid["valid"], true);
    let (_, ops) = cloud.get(&ops_path).await;
    let ops = ops["value"].as_array().unwrap();
    assert_eq!(ops.len(), 6);
    assert!(
        ops.iter()
            .all(|o| o["properties"]["provisioningState"] == "Succeeded" && o["properties"]["statusCode"] == "Created"),
        "{ops:?}"
    );
    let one = &ops[0];
    let (s, got) = cloud
        .get(&format!("{}/deployments/vm1/operations/{}?{R}", group("g"), one["operationId"].as_str().unwrap()))
        .await;
    assert_eq!((s, &got), (StatusCode::OK, one));

    // Listed; replaced once ended (200); and gone with its group.
    let (_, list) = cloud.get(&format!("{}/providers/Microsoft.Resources/deployments/?{R}", group("g"))).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let (s, again, url) =
        submit(&cloud, "g", "vm1", vm_template(), json!({"adminPassword": {"value": "Tmpl-Passw0rd!"}})).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(finished(&cloud, &url).await["status"], "Succeeded");
    let (s, headers, _) = cloud.call(Method::DELETE, &format!("{}?{R}", group("g")), None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let location = headers["location"].to_str().unwrap().strip_prefix(cloud.url("").as_str()).unwrap().to_owned();
    for _ in 0..100 {
        if cloud.get(&location).await.0 == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    make_group(&cloud, "g").await;
    let (s, gone) = cloud.get(&format!("{}?{R}", deployment("g", "vm1"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{gone}");
    assert_eq!(gone["error"]["code"], "DeploymentNotFound");
}

/// Refusals ARM makes before it accepts a deployment; nothing is created by any of them.
#[tokio::test]
async fn a_template_that_cannot_run_is_refused_with_arms_words_and_nothing_made() {
    let cloud = instant().await;
    make_group(&cloud, "g").await;
    let pip = |name: &str| json!({"name": name, "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "location": "westus"});
    let with = |resources: Value| json!({"contentVersion": "1.0.0.0", "resources": resources});
    let cases: Vec<(Value, Value, &str, &str)> = vec![
        (
            with(
                json!([{"name": "[utcNow()]", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01"}]),
            ),
            json!({}),
            "InvalidTemplate",
            "The template function 'utcNow' is not valid",
        ),
        (
            with(
                json!([{"name": "[concat('a' 'b')]", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01"}]),
            ),
            json!({}),
            "InvalidTemplate",
            "is not valid",
        ),
        (
            json!({"parameters": {"p": {"type": "string"}}, "resources": [pip("a")]}),
            json!({}),
            "InvalidTemplate",
            "The value for the template parameter 'p' is not provided",
        ),
        (
            json!({"parameters": {"p": {"type": "int"}}, "resources": [pip("a")]}),
            json!({"p": {"value": "x"}}),
            "InvalidTemplate",
            "Expected a value of type 'Int'",
        ),
        (
            json!({"parameters": {"p": {"type": "securestring", "allowedValues": ["a"]}}, "resources": [pip("a")]}),
            json!({"p": {"value": "Hidden-Value-1"}}),
            "InvalidTemplate",
            "not part of the allowed value(s)",
        ),
        (
            json!({"resources": [pip("a")]}),
            json!({"extra": {"value": 1}}),
            "InvalidTemplate",
            "The template parameters 'extra' in the parameters file are not valid",
        ),
        (
            with(
                json!([{"name": "a", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "dependsOn": ["missing"]}]),
            ),
            json!({}),
            "InvalidTemplate",
            "The resource 'missing' is not defined in the template",
        ),
        (
            with(json!([
                {"name": "a", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "dependsOn": ["b"]},
                {"name": "b", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "dependsOn": ["a"]}
            ])),
            json!({}),
            "InvalidTemplate",
            "Circular dependency detected on resource: 'a', 'b'",
        ),
        (with(json!([pip("a"), pip("a")])), json!({}), "InvalidTemplate", "is defined multiple times in a template"),
        (
            with(json!([{"name": "a", "type": "Microsoft.Network/publicIPAddresses"}])),
            json!({}),
            "InvalidTemplate",
            "has no 'apiVersion'",
        ),
        (
            with(json!([{"name": "a/b", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01"}])),
            json!({}),
            "InvalidTemplate",
            "has incorrect segment lengths",
        ),
        (
            with(
                json!([{"name": "[copyIndex()]", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01"}]),
            ),
            json!({}),
            "InvalidTemplate",
            "'copyIndex' is not expected at this location",
        ),
        (
            with(
                json!([{"name": "[reference('x').y]", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01"}]),
            ),
            json!({}),
            "InvalidTemplate",
            "'reference' is not expected at this location",
        ),
    ];
    for (i, (template, parameters, code, words)) in cases.into_iter().enumerate() {
        let name = format!("bad{i}");
        let body = json!({"properties": {"mode": "Incremental", "template": template, "parameters": parameters}});
        for action in ["", "/validate", "/whatIf"] {
            let method = if action.is_empty() { Method::PUT } else { Method::POST };
            let (s, _, out) =
                cloud.call(method, &format!("{}{action}?{R}", deployment("g", &name)), Some(body.clone())).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "case {i}{action}: {out}");
            assert_eq!(out["error"]["code"], code, "case {i}{action}: {out}");
            let message = out["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with("Deployment template validation failed: '") && message.contains(words),
                "case {i}{action}: {message}"
            );
            assert!(!message.contains("Hidden-Value-1"), "a secure value is never repeated: {message}");
        }
        let (s, _) = cloud.get(&format!("{}?{R}", deployment("g", &name))).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "case {i}");
    }
    let (_, ips) = cloud
        .get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.Network/publicIPAddresses?{N}"))
        .await;
    assert_eq!(ips["value"], json!([]));
    let (s, _, out) = cloud
        .call(
            Method::PUT,
            &format!("{}?{R}", deployment("g", "x")),
            Some(json!({"properties": {"mode": "Complete", "template": with(json!([]))}})),
        )
        .await;
    assert_eq!((s, out["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidDeploymentMode")));
    let (s, _, out) = cloud
        .call(
            Method::PUT,
            &format!("{}?{R}", deployment("g", "bad name!")),
            Some(json!({"properties": {"mode": "Incremental", "template": with(json!([]))}})),
        )
        .await;
    assert_eq!((s, out["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidDeploymentName")));

    // Validate and what-if of a good template: what would be made, and then what is there.
    let good = json!({"properties": {"mode": "Incremental", "template": with(json!([pip("a")]))}});
    let (s, _, valid) =
        cloud.call(Method::POST, &format!("{}/validate?{R}", deployment("g", "ok")), Some(good.clone())).await;
    assert_eq!(s, StatusCode::OK, "{valid}");
    assert_eq!(
        valid["properties"]["validatedResources"][0]["id"],
        format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/publicIPAddresses/a")
    );
    let (_, _, what) =
        cloud.call(Method::POST, &format!("{}/whatIf?{R}", deployment("g", "ok")), Some(good.clone())).await;
    assert_eq!(what["changes"][0]["changeType"], "Create", "{what}");
    let (s, out, url) = submit(&cloud, "g", "ok", with(json!([pip("a")])), json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{out}");
    assert_eq!(finished(&cloud, &url).await["status"], "Succeeded");
    let (_, _, what) = cloud.call(Method::POST, &format!("{}/whatIf?{R}", deployment("g", "ok")), Some(good)).await;
    assert_eq!(what["changes"][0]["changeType"], "NoChange", "{what}");
    let (s, _, out) = cloud.call(Method::POST, &format!("{}/cancel?{R}", deployment("g", "ok")), None).await;
    assert_eq!((s, out["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("DeploymentCannotBeCancelled")));
}

/// A resource its route refuses fails the deployment with ARM's `DeploymentFailed` and the
/// route's own error; what depends on it is never attempted.
#[tokio::test]
async fn a_resource_its_route_refuses_fails_the_deployment_with_the_routes_error() {
    let cloud = instant().await;
    make_group(&cloud, "g").await;
    let template = json!({"resources": [
        {"name": "ok", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "location": "westus"},
        {"name": "old", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2099-01-01", "location": "westus"},
        {"name": "after", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "location": "westus", "dependsOn": ["old"]},
        {"name": "far", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "location": "nowhere"}
    ]});
    let (s, out, url) = submit(&cloud, "g", "d", template, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{out}");
    let status = finished(&cloud, &url).await;
    assert_eq!(status["status"], "Failed");
    assert_eq!(status["error"]["code"], "DeploymentFailed");
    let mut codes: Vec<&str> =
        status["error"]["details"].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap()).collect();
    codes.sort_unstable();
    assert_eq!(codes, ["LocationNotAvailableForResourceType", "NoRegisteredProviderFound"], "{status}");
    let (_, ops) = cloud.get(&format!("{}/deployments/d/operations?{R}", group("g"))).await;
    let state = |name: &str| {
        ops["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["properties"]["targetResource"]["resourceName"] == name)
            .map(|o| o["properties"].clone())
    };
    assert_eq!(state("ok").unwrap()["provisioningState"], "Succeeded");
    let old = state("old").unwrap();
    assert_eq!((old["provisioningState"].as_str(), old["statusCode"].as_str()), (Some("Failed"), Some("BadRequest")));
    assert_eq!(old["statusMessage"]["error"]["code"], "NoRegisteredProviderFound");
    assert!(state("after").is_none(), "a resource behind a failed one is never attempted: {ops}");
    let (s, _) = cloud.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/publicIPAddresses/after?{N}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A deployment caught running by a restart goes on where it stood; one running can be
/// cancelled, and what it had not started is never made.
#[tokio::test]
async fn a_running_deployment_survives_a_restart_and_one_can_be_cancelled() {
    let slow = |c: &mut Config| {
        c.persist = true;
        c.durations = Durations { network: Duration::from_millis(1500), ..Durations::instant() };
    };
    let cloud = start(tempfile::tempdir().unwrap(), slow).await;
    make_group(&cloud, "g").await;
    let chain = json!({"resources": [
        {"name": "first", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "location": "westus"},
        {"name": "second", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "location": "westus", "dependsOn": ["first"]}
    ]});
    let (_, _, url) = submit(&cloud, "g", "chain", chain.clone(), json!({})).await;
    let (_, running) = cloud.get(&format!("{}?{R}", deployment("g", "chain"))).await;
    assert_eq!(running["properties"]["provisioningState"], "Running");
    let Cloud { emulator, dir, .. } = cloud;
    emulator.stop().await;

    let cloud = start(dir, slow).await;
    let status = finished(
        &cloud,
        &url.replace(&url[..url.find("/subscriptions").unwrap()], cloud.url("").trim_end_matches('/')),
    )
    .await;
    assert_eq!(status["status"], "Succeeded", "{status}");
    let (s, _) = cloud.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/publicIPAddresses/second?{N}")).await;
    assert_eq!(s, StatusCode::OK);

    let (_, _, url) = submit(&cloud, "g", "stopped", json!({"resources": [
        {"name": "third", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "location": "westus"},
        {"name": "fourth", "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01", "location": "westus", "dependsOn": ["third"]}
    ]}), json!({})).await;
    let (s, _, out) = cloud
        .call(
            Method::PUT,
            &format!("{}?{R}", deployment("g", "stopped")),
            Some(json!({"properties": {"mode": "Incremental", "template": chain}})),
        )
        .await;
    assert_eq!((s, out["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("DeploymentActive")));
    let (s, _, _) = cloud.call(Method::POST, &format!("{}/cancel?{R}", deployment("g", "stopped")), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(finished(&cloud, &url).await["status"], "Canceled");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (s, _) = cloud.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/publicIPAddresses/fourth?{N}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, headers, _) = cloud.call(Method::DELETE, &format!("{}?{R}", deployment("g", "stopped")), None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(headers.contains_key("location"));
    let (s, _) = cloud.get(&format!("{}?{R}", deployment("g", "stopped"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The resources a deployment made stay when its record goes, as in ARM.
    let (s, _) = cloud.get(&format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/publicIPAddresses/third?{N}")).await;
    assert_eq!(s, StatusCode::OK);
    drop(cloud.dir);
}
