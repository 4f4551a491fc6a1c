//! A plain ARM client for tests (reqwest, not azdock's client): signs in as a service principal
//! against a local cloud, sends requests, and follows long-running operations.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// The header and the state directory's file of the local cloud's admin key (azdock-emulator's
/// `ADMIN_KEY_HEADER` and `ADMIN_KEY_FILE`; this crate does not link the emulator).
pub const ADMIN_KEY_HEADER: &str = "x-azdock-admin-key";
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// A signed-in client for one local cloud.
#[derive(Debug, Clone)]
pub struct Arm {
    pub http: Client,
    pub base: String,
    pub token: String,
    /// The local cloud's admin key, sent on `/_emulator` requests.
    pub admin_key: String,
}

impl Arm {
    /// An HTTPS client trusting only `ca_pem`, without a token yet.
    pub fn anonymous(base: &str, ca_pem: &[u8]) -> Self {
        let ca = reqwest::Certificate::from_pem(ca_pem).expect("the CA is PEM");
        let http = Client::builder().add_root_certificate(ca).tls_built_in_root_certs(false).build().expect("client");
        Self { http, base: base.trim_end_matches('/').to_owned(), token: String::new(), admin_key: String::new() }
    }

    /// Signs in with client credentials (v2 token endpoint, `<base>/.default` scope).
    pub async fn sign_in(base: &str, ca_pem: &[u8], tenant: &str, client_id: &str, secret: &str) -> Self {
        let mut arm = Self::anonymous(base, ca_pem);
        arm.token = arm.token_for(tenant, client_id, secret).await;
        arm
    }

    /// Signs in as the principal `azdock local up` printed (its JSON).
    pub async fn for_local_cloud(up: &Value) -> Self {
        let text = |k: &str| up[k].as_str().unwrap_or_else(|| panic!("`local up` printed no {k}")).to_owned();
        let ca = std::fs::read(text("caCertificate")).expect("the local cloud's CA");
        let key_file = std::path::Path::new(&text("stateDir")).join(ADMIN_KEY_FILE);
        let key = std::fs::read_to_string(key_file).expect("the local cloud's admin key");
        let key = key.trim();
        Self::sign_in(&text("endpoint"), &ca, &text("tenantId"), &text("clientId"), &text("clientSecret"))
            .await
            .with_admin_key(key)
    }

    /// The same client, with the admin key of its local cloud for `/_emulator` requests.
    #[must_use]
    pub fn with_admin_key(mut self, key: &str) -> Self {
        key.clone_into(&mut self.admin_key);
        self
    }

    /// A fresh token for a principal.
    pub async fn token_for(&self, tenant: &str, client_id: &str, secret: &str) -> String {
        let scope = format!("{}/.default", self.base);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", &scope),
        ];
        let resp = self
            .http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .form(&form)
            .send()
            .await
            .expect("token request");
        assert_eq!(resp.status(), 200, "sign-in failed");
        let body: Value = resp.json().await.expect("token JSON");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends one authenticated request; the body is `null` when empty.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, HeaderMap, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.expect("body");
        (status, headers, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") })
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::GET, path, None).await;
        (s, b)
    }

    /// Sends, then follows `Azure-AsyncOperation` to a terminal state (bounded); returns the
    /// status, the immediate body and the final operation status body.
    pub async fn send_and_wait(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value, Value) {
        let (status, headers, created) = self.call(method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {created}");
        let outcome = match headers.get("azure-asyncoperation") {
            Some(url) => self.poll(url.to_str().expect("header")).await,
            None => json!({"status": "Succeeded"}),
        };
        (status, created, outcome)
    }

    /// Like [`Arm::send_and_wait`], returning only the final operation status body.
    pub async fn wait(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.send_and_wait(method, path, body).await.2
    }

    pub async fn put_and_wait(&self, path: &str, body: Value) -> (StatusCode, Value, Value) {
        self.send_and_wait(Method::PUT, path, Some(body)).await
    }

    /// Polls an operation status URL until it leaves `InProgress` (at most 30 s).
    pub async fn poll(&self, url: &str) -> Value {
        let path = url.strip_prefix(&self.base).expect("operation URL on this cloud").to_owned();
        for _ in 0..600 {
            let (s, body) = self.get(&path).await;
            assert_eq!(s, 200, "{body}");
            if body["status"] != "InProgress" {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("operation {url} did not finish");
    }

    /// A request to the local cloud's `/_emulator` admin routes (the admin key, no token).
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req =
            self.http.request(method, self.url(&format!("/_emulator{path}"))).header(ADMIN_KEY_HEADER, &self.admin_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") })
    }

    /// Like [`Arm::linux_vm`], a Windows Server 2022 VM (`azureadmin`).
    pub async fn windows_vm(&self, subscription: &str, group: &str, vm: &str) -> Value {
        self.vm_of(subscription, group, vm, json!({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter-g2", "version": "latest"}),
            json!({"computerName": vm, "adminUsername": "azureadmin", "adminPassword": "Sup3r-Secret!", "windowsConfiguration": {"provisionVMAgent": true}})).await
    }

    /// A resource group `group` in westeurope with a VNet, a Standard public IP labelled `vm`, a
    /// NIC and a Linux VM `vm` (Ubuntu 24.04, `azureuser`), each created through its operation.
    pub async fn linux_vm(&self, subscription: &str, group: &str, vm: &str) -> Value {
        self.vm_of(subscription, group, vm, json!({"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}),
            json!({"computerName": vm, "adminUsername": "azureuser", "adminPassword": "Sup3r-Secret!", "customData": "I2Nsb3VkLWNvbmZpZwo="})).await
    }

    async fn vm_of(&self, subscription: &str, group: &str, vm: &str, image: Value, os_profile: Value) -> Value {
        let net = format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Network");
        let n = "api-version=2024-05-01";
        let (status, _, body) = self
            .call(
                Method::PUT,
                &format!("/subscriptions/{subscription}/resourcegroups/{group}?api-version=2021-04-01"),
                Some(json!({"location": "westeurope"})),
            )
            .await;
        assert!(status.is_success(), "{body}");
        self.put_and_wait(&format!("{net}/virtualNetworks/vnet?{n}"), json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}})).await;
        self.put_and_wait(&format!("{net}/publicIPAddresses/pip?{n}"), json!({"location": "westeurope", "sku": {"name": "Standard"}, "properties": {"publicIPAllocationMethod": "Static", "dnsSettings": {"domainNameLabel": vm}}})).await;
        let nic = json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": format!("{net}/virtualNetworks/vnet/subnets/default")}, "publicIPAddress": {"id": format!("{net}/publicIPAddresses/pip")}}}]}});
        self.put_and_wait(&format!("{net}/networkInterfaces/nic?{n}"), nic).await;
        let body = json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"},
            "storageProfile": {"imageReference": image},
            "osProfile": os_profile,
            "networkProfile": {"networkInterfaces": [{"id": format!("{net}/networkInterfaces/nic"), "properties": {"primary": true}}]}}});
        let (_, _, outcome) = self.put_and_wait(&format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{vm}?api-version=2024-11-01"), body).await;
        assert_eq!(outcome["status"], "Succeeded", "{outcome}");
        outcome
    }
}
