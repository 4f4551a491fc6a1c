//! The legacy DockerExtension leads to a real dockerd on the VM's emulated public IP, reached
//! with the real docker CLI and the client certificate from azdock-certs.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::time::Duration;

use azdock_certs::{CertStore, Passphrases, ServerRequest};
use azdock_emulator::{Config, Emulator, LOCAL_SUBSCRIPTION};
use base64::Engine as _;
use reqwest::{Client, Method};
use serde_json::{Value, json};

const C: &str = "api-version=2024-11-01";
const N: &str = "api-version=2024-05-01";

struct Api {
    http: Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let text = resp.text().await.unwrap();
        (status, headers, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    /// Sends and waits for the operation (Azure-AsyncOperation) to end; returns its status body.
    async fn wait(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, headers, body) = self.call(method, path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {body}");
        let Some(op) = headers.get("azure-asyncoperation") else { return json!({"status": "Succeeded"}) };
        let op = op.to_str().unwrap().strip_prefix(&self.base).unwrap().to_owned();
        for _ in 0..400 {
            let (_, _, s) = self.call(Method::GET, &op, None).await;
            if s["status"] != "InProgress" {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{op} did not finish");
    }

    async fn guest(&self, vm: &str) -> Value {
        let url = format!("{}/_emulator/guests/{LOCAL_SUBSCRIPTION}/g/{vm}", self.base);
        self.http.get(url).send().await.unwrap().json().await.unwrap()
    }
}

fn path(rest: &str) -> String {
    format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/{rest}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_docker_extension_runs_a_real_dockerd_on_the_vms_public_ip() {
    if !azdock_tests::dockerd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(Config::for_tests(&dir.path().join("cloud"))).await.unwrap();
    let base = emulator.base_url().to_owned();
    let ca = reqwest::Certificate::from_pem(emulator.ca_pem().as_bytes()).unwrap();
    let http = Client::builder().add_root_certificate(ca).tls_built_in_root_certs(false).build().unwrap();
    let p = emulator.principals()[0].clone();
    let token: Value = http
        .post(format!("{base}/{}/oauth2/v2.0/token", p.tenant_id))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &p.client_id),
            ("client_secret", &p.client_secret),
            ("scope", &format!("{base}/.default")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api = Api { http, base, token: token["access_token"].as_str().unwrap().to_owned() };

    api.call(
        Method::PUT,
        &format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups/g?api-version=2021-04-01"),
        Some(json!({"location": "westeurope"})),
    )
    .await;
    api.wait(Method::PUT, &format!("{}?{N}", path("Microsoft.Network/virtualNetworks/vnet")), Some(json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}}))).await;
    api.wait(
        Method::PUT,
        &format!("{}?{N}", path("Microsoft.Network/publicIPAddresses/pip")),
        Some(json!({"location": "westeurope", "properties": {"dnsSettings": {"domainNameLabel": "dockerhost"}}})),
    )
    .await;
    let (_, _, pip) =
        api.call(Method::GET, &format!("{}?{N}", path("Microsoft.Network/publicIPAddresses/pip")), None).await;
    let ip = pip["properties"]["ipAddress"].as_str().unwrap().to_owned();
    let subnet = format!(
        "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"
    );
    let pip_id = format!(
        "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/publicIPAddresses/pip"
    );
    api.wait(Method::PUT, &format!("{}?{N}", path("Microsoft.Network/networkInterfaces/nic")), Some(json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet}, "publicIPAddress": {"id": pip_id}}}]}}))).await;
    let nic = format!(
        "/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/nic"
    );
    let vm = path("Microsoft.Compute/virtualMachines/dockerhost");
    api.wait(Method::PUT, &format!("{vm}?{C}"), Some(json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"},
        "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}},
        "osProfile": {"adminUsername": "azureuser", "adminPassword": "Sup3r-Secret!"}, "networkProfile": {"networkInterfaces": [{"id": nic}]}}}))).await;

    // The user's PKI, as `azdock certs` makes it, with the VM's emulated IP as a SAN.
    let certs = CertStore::new(dir.path().join("docker-certs"));
    certs
        .server(
            &ServerRequest::new(
                "dockerhost",
                &["dockerhost.westeurope.cloudapp.azure.com".into()],
                std::slice::from_ref(&ip),
            )
            .unwrap(),
            &Passphrases::NONE,
        )
        .unwrap();
    let (server_cert, server_key) = certs.server_paths("dockerhost");
    let b64 = |p: &std::path::Path| base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap());
    let port = azdock_tests::free_port();
    let extension = json!({"location": "westeurope", "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "DockerExtension", "typeHandlerVersion": "1.2", "autoUpgradeMinorVersion": true,
        "settings": {"docker": {"port": port.to_string()}},
        "protectedSettings": {"certs": {"ca": b64(&certs.ca_path()), "cert": b64(&server_cert), "key": b64(&server_key)}}}});
    let op = api.wait(Method::PUT, &format!("{vm}/extensions/docker?{C}"), Some(extension)).await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    let guest = api.guest("dockerhost").await;
    assert_eq!(
        guest["guest"]["docker"]["daemon"],
        json!({"state": "running", "address": format!("{ip}:{port}")}),
        "{guest}"
    );
    assert!(guest.to_string().find("BEGIN").is_none(), "certificates and keys are never shown");

    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .env("DOCKER_CONFIG", dir.path().join("docker-client"))
            .arg("--tlsverify")
            .arg(format!("--tlscacert={}", certs.ca_path().display()))
            .arg(format!("--tlscert={}", certs.client_cert_path().display()))
            .arg(format!("--tlskey={}", certs.client_key_path().display()))
            .arg(format!("--host=tcp://{ip}:{port}"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = docker(&["version", "--format", "{{.Server.Version}}"]);
    assert!(ok, "docker could not reach the VM's daemon: {out}");

    // Power off stops the daemon; start brings it back.
    let op = api.wait(Method::POST, &format!("{vm}/powerOff?{C}"), None).await;
    assert_eq!(op["status"], "Succeeded");
    let mut stopped = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect((ip.as_str(), port)).is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "dockerd still listens after power off");
    assert_eq!(api.guest("dockerhost").await["guest"]["docker"]["daemon"]["state"], "stopped");
    api.wait(Method::POST, &format!("{vm}/start?{C}"), None).await;
    let mut running = false;
    for _ in 0..300 {
        if api.guest("dockerhost").await["guest"]["docker"]["daemon"]["state"] == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running, "dockerd did not come back after start: {}", api.guest("dockerhost").await);
    assert!(docker(&["info", "--format", "{{.ServerVersion}}"]).0);

    // Deleting the VM stops its daemon too.
    api.wait(Method::DELETE, &format!("{vm}?{C}"), None).await;
    let mut gone = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect((ip.as_str(), port)).is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "dockerd still listens after the VM was deleted");
    emulator.stop().await;
}
