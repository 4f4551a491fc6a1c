//! Guest effects of extension handlers: CustomScript runs in the VM's sandbox, and Docker
//! (the legacy extension, or a script's systemd drop-in) becomes a real dockerd on the VM's
//! emulated public IP, reached with the real docker CLI and certificates from azdock-certs.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::time::Duration;

use azdock_certs::{CertStore, Passphrases, ServerRequest};
use azdock_emulator::{Config, Emulator, LOCAL_SUBSCRIPTION};
use azdock_tests::arm::Arm;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

const C: &str = "api-version=2024-11-01";
const N: &str = "api-version=2024-05-01";

/// The guest's admin views, through the shared plain client.
async fn guest_state(api: &Arm, vm: &str) -> Value {
    api.admin(Method::GET, &format!("/guests/{LOCAL_SUBSCRIPTION}/g/{vm}"), None).await.1
}

async fn file(api: &Arm, vm: &str, path: &str) -> Option<String> {
    let (status, body) =
        api.admin(Method::GET, &format!("/guests/{LOCAL_SUBSCRIPTION}/g/{vm}/files?path={path}"), None).await;
    (status == 200).then(|| body["content"].as_str().map(str::to_owned)).flatten()
}

fn path(rest: &str) -> String {
    format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourceGroups/g/providers/{rest}")
}

/// A running local cloud with one Linux VM (`dockerhost`) that has a public IP.
struct World {
    emulator: Emulator,
    api: Arm,
    ip: String,
    vm: String,
    dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(Config::for_tests(&dir.path().join("cloud"))).await.unwrap();
    let p = emulator.principals()[0].clone();
    let api =
        Arm::sign_in(emulator.base_url(), emulator.ca_pem().as_bytes(), &p.tenant_id, &p.client_id, &p.client_secret)
            .await
            .with_admin_key(emulator.admin_key());

    let rg = format!("/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups/g?api-version=2021-04-01");
    api.call(Method::PUT, &rg, Some(json!({"location": "westeurope"}))).await;
    let vnet = json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}});
    api.wait(Method::PUT, &format!("{}?{N}", path("Microsoft.Network/virtualNetworks/vnet")), Some(vnet)).await;
    let pip = json!({"location": "westeurope", "properties": {"dnsSettings": {"domainNameLabel": "dockerhost"}}});
    api.wait(Method::PUT, &format!("{}?{N}", path("Microsoft.Network/publicIPAddresses/pip")), Some(pip)).await;
    let (_, _, pip) =
        api.call(Method::GET, &format!("{}?{N}", path("Microsoft.Network/publicIPAddresses/pip")), None).await;
    let ip = pip["properties"]["ipAddress"].as_str().unwrap().to_owned();
    let subnet = path("Microsoft.Network/virtualNetworks/vnet/subnets/default");
    let nic = json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet}, "publicIPAddress": {"id": path("Microsoft.Network/publicIPAddresses/pip")}}}]}});
    api.wait(Method::PUT, &format!("{}?{N}", path("Microsoft.Network/networkInterfaces/nic")), Some(nic)).await;
    let vm = path("Microsoft.Compute/virtualMachines/dockerhost");
    let body = json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"},
        "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}},
        "osProfile": {"adminUsername": "azureuser", "adminPassword": "Sup3r-Secret!"},
        "networkProfile": {"networkInterfaces": [{"id": path("Microsoft.Network/networkInterfaces/nic")}]}}});
    api.wait(Method::PUT, &format!("{vm}?{C}"), Some(body)).await;
    World { emulator, api, ip, vm, dir }
}

/// `azdock certs server` for the VM, with its emulated IP as a SAN.
fn user_pki(world: &World) -> CertStore {
    let certs = CertStore::new(world.dir.path().join("docker-certs"));
    let request = ServerRequest::new(
        "dockerhost",
        &["dockerhost.westeurope.cloudapp.azure.com".into()],
        std::slice::from_ref(&world.ip),
    )
    .unwrap();
    certs.server(&request, &Passphrases::NONE).unwrap();
    certs
}

/// Runs the docker CLI against the VM's daemon with the user's client certificate.
fn docker(world: &World, certs: &CertStore, port: u16, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("docker")
        .env("DOCKER_CONFIG", world.dir.path().join("docker-client"))
        .arg("--tlsverify")
        .arg(format!("--tlscacert={}", certs.ca_path().display()))
        .arg(format!("--tlscert={}", certs.client_cert_path().display()))
        .arg(format!("--tlskey={}", certs.client_key_path().display()))
        .arg(format!("--host=tcp://{}:{port}", world.ip))
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Polls (bounded) until `check` holds.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..300 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn custom_script(protected: &Value) -> Value {
    json!({"location": "westeurope", "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript", "typeHandlerVersion": "2.1",
           "autoUpgradeMinorVersion": true, "settings": {}, "protectedSettings": protected}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_docker_extension_runs_a_real_dockerd_on_the_vms_public_ip() {
    if !azdock_tests::dockerd_available() {
        return;
    }
    let world = world().await;
    let (api, ip, vm) = (&world.api, world.ip.clone(), world.vm.clone());
    let certs = user_pki(&world);
    let (server_cert, server_key) = certs.server_paths("dockerhost");
    let read = |p: &std::path::Path| b64(&std::fs::read(p).unwrap());
    let port = azdock_tests::free_port();
    let extension = json!({"location": "westeurope", "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "DockerExtension", "typeHandlerVersion": "1.2", "autoUpgradeMinorVersion": true,
        "settings": {"docker": {"port": port.to_string()}},
        "protectedSettings": {"certs": {"ca": read(&certs.ca_path()), "cert": read(&server_cert), "key": read(&server_key)}}}});
    let op = api.wait(Method::PUT, &format!("{vm}/extensions/docker?{C}"), Some(extension)).await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    let guest = guest_state(api, "dockerhost").await;
    assert_eq!(
        guest["guest"]["docker"]["daemon"],
        json!({"state": "running", "address": format!("{ip}:{port}")}),
        "{guest}"
    );
    assert!(!guest.to_string().contains("BEGIN"), "certificates and keys are never shown");
    let (ok, out) = docker(&world, &certs, port, &["version", "--format", "{{.Server.Version}}"]);
    assert!(ok, "docker could not reach the VM's daemon: {out}");

    // Power off stops the daemon; start brings it back.
    assert_eq!(api.wait(Method::POST, &format!("{vm}/powerOff?{C}"), None).await["status"], "Succeeded");
    assert!(
        eventually(async || std::net::TcpStream::connect((ip.as_str(), port)).is_err()).await,
        "dockerd still listens after power off"
    );
    assert_eq!(guest_state(api, "dockerhost").await["guest"]["docker"]["daemon"]["state"], "stopped");
    api.wait(Method::POST, &format!("{vm}/start?{C}"), None).await;
    assert!(
        eventually(async || guest_state(api, "dockerhost").await["guest"]["docker"]["daemon"]["state"] == "running")
            .await,
        "{}",
        guest_state(api, "dockerhost").await
    );
    assert!(docker(&world, &certs, port, &["info", "--format", "{{.ServerVersion}}"]).0);

    // Deleting the VM stops its daemon too.
    api.wait(Method::DELETE, &format!("{vm}?{C}"), None).await;
    assert!(
        eventually(async || std::net::TcpStream::connect((ip.as_str(), port)).is_err()).await,
        "dockerd still listens after the VM was deleted"
    );
    world.emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_script_runs_in_the_vms_sandbox_and_reports_its_output() {
    if azdock_emulator::Emulator::docker_unavailable_reason().is_some_and(|r| r.contains("root")) {
        assert!(
            std::env::var_os("AZDOCK_TESTS_WITHOUT_DOCKERD").is_some(),
            "scripts need root; run as root or set AZDOCK_TESTS_WITHOUT_DOCKERD=1"
        );
        return;
    }
    let world = world().await;
    let (api, vm) = (&world.api, world.vm.clone());
    let script = "#!/bin/sh\nset -e\necho 'listen=8080' > /etc/myapp.conf\nmkdir -p /home/azureuser && echo hello > /home/azureuser/hello.txt\n\
                  apt-get install -y openssl\nsystemctl restart myapp\necho done-out\necho done-err >&2\n";
    let op = api
        .wait(
            Method::PUT,
            &format!("{vm}/extensions/setup?{C}"),
            Some(custom_script(&json!({"script": b64(script.as_bytes())}))),
        )
        .await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    assert_eq!(file(api, "dockerhost", "/etc/myapp.conf").await.as_deref(), Some("listen=8080\n"));
    assert_eq!(file(api, "dockerhost", "/home/azureuser/hello.txt").await.as_deref(), Some("hello\n"));
    assert_eq!(
        file(api, "dockerhost", "/var/lib/azdock-guest/systemctl.log").await.as_deref(),
        Some("restart myapp\n")
    );
    assert!(!std::path::Path::new("/etc/myapp.conf").exists(), "the script wrote to the host's /etc");
    let (_, _, ext) = api.call(Method::GET, &format!("{vm}/extensions/setup?{C}&$expand=instanceView"), None).await;
    let view = &ext["properties"]["instanceView"];
    assert_eq!(view["statuses"][0]["code"], "ProvisioningState/succeeded");
    assert_eq!(view["substatuses"][0]["code"], "ComponentStatus/StdOut/succeeded");
    assert!(view["substatuses"][0]["message"].as_str().unwrap().contains("done-out"), "{view}");
    assert_eq!(view["substatuses"][1]["message"], "done-err\n");
    assert!(ext["properties"].get("protectedSettings").is_none());

    // A failing script: its exit code and stderr reach the operation and the instance view.
    let failing = "echo about to fail\necho 'no such thing' >&2\nexit 3\n";
    let op = api
        .wait(
            Method::PUT,
            &format!("{vm}/extensions/setup?{C}"),
            Some(custom_script(&json!({"script": b64(failing.as_bytes())}))),
        )
        .await;
    assert_eq!(op["status"], "Failed");
    assert_eq!(op["error"]["code"], "VMExtensionProvisioningError");
    let message = op["error"]["message"].as_str().unwrap();
    assert!(message.contains("exit status=3") && message.contains("no such thing"), "{message}");
    let (_, _, ext) = api.call(Method::GET, &format!("{vm}/extensions/setup?{C}&$expand=instanceView"), None).await;
    assert_eq!(ext["properties"]["instanceView"]["statuses"][0]["code"], "ProvisioningState/failed/3");

    // Outside its own directories the host is read-only; unknown packages are not installed.
    for (name, command) in [("usr", "touch /usr/azdock-escape"), ("pkg", "apt-get install -y definitely-not-a-package")]
    {
        let op = api
            .wait(
                Method::PUT,
                &format!("{vm}/extensions/setup?{C}"),
                Some(custom_script(&json!({"commandToExecute": command}))),
            )
            .await;
        assert_eq!(op["status"], "Failed", "{name}: {op}");
    }
    assert!(!std::path::Path::new("/usr/azdock-escape").exists());
    world.emulator.stop().await;
}

/// What a guest tries against its host; each line is `<check> ok` when the sandbox held.
const ESCAPES: &str = r#"
check() { if eval "$2" >/dev/null 2>&1; then echo "$1 ESCAPED"; else echo "$1 ok"; fi; }
echo "uid $(id -u)"
check remount-rw 'mount -o remount,bind,rw /'
check unmount-vm-dir 'umount /etc'
check write-usr 'touch /usr/azdock-escape'
check write-var-cache 'touch /var/cache/azdock-escape'
check nsenter-pid1 'nsenter -t 1 -m -u -i -n -p true'
check host-process '[ "$(cat /proc/$HOST_PID/comm)" = "$HOST_COMM" ]'
check clock 'date -s @86400'
check sysctl 'echo 1 > /proc/sys/kernel/sysrq'
check net-admin 'ip addr add 127.77.0.1/32 dev lo'
# init_module: EPERM without CAP_SYS_MODULE on the host; ENOSYS where the kernel loads no modules.
python3 -c 'import ctypes; libc = ctypes.CDLL(None, use_errno=True); r = libc.syscall(175, None, 0, b""); print("load-module", "ok" if r != 0 and ctypes.get_errno() in (1, 38) else "ESCAPED")'
hostname sandboxed-guest && echo "hostname $(hostname)"
# The host's hashes never arrive; the one account the VM was made with has its own.
echo "hashes $(grep -v '^azureuser:' /etc/shadow | cut -d: -f2 | sort -u | tr '\n' ' ')"
echo "admin-hash $(grep '^azureuser:' /etc/shadow | cut -d: -f2 | cut -c1-3)"
echo mine > /etc/azdock-sandbox
mkdir -p /home/azureuser && echo mine > /home/azureuser/file
# The IMDS URL holds a secret: it goes to curl on stdin (printf is a shell builtin), never in argv.
token=$(printf 'url = "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%s/"\n' "$AZURE_POD_IDENTITY_AUTHORITY_HOST" "$CLOUD" | curl -sf -K - --cacert /run/azdock-agent/ca.pem -H Metadata:true)
case "$token" in *access_token*) echo "imds ok" ;; *) echo "imds FAILED" ;; esac
echo "admin $(curl -s -o /dev/null -w '%{http_code}' --cacert /run/azdock-agent/ca.pem "$CLOUD/_emulator/health")"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_code_cannot_reach_the_host() {
    use std::os::unix::fs::MetadataExt as _;
    if let Some(reason) = azdock_emulator::Emulator::script_unavailable_reason() {
        assert!(std::env::var_os("AZDOCK_TESTS_WITHOUT_DOCKERD").is_some(), "scripts cannot run here: {reason}");
        return;
    }
    let world = world().await;
    let (api, vm) = (&world.api, world.vm.clone());
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let script = format!(
        "HOST_PID={} HOST_COMM='{}' CLOUD='{}'\n{ESCAPES}",
        std::process::id(),
        comm.trim(),
        world.emulator.base_url()
    );
    let op = api
        .wait(
            Method::PUT,
            &format!("{vm}/extensions/probe?{C}"),
            Some(custom_script(&json!({"script": b64(script.as_bytes())}))),
        )
        .await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    let (_, _, ext) = api.call(Method::GET, &format!("{vm}/extensions/probe?{C}&$expand=instanceView"), None).await;
    let out = ext["properties"]["instanceView"]["substatuses"][0]["message"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = out.lines().collect();
    for check in [
        "uid 0",
        "remount-rw ok",
        "unmount-vm-dir ok",
        "write-usr ok",
        "write-var-cache ok",
        "nsenter-pid1 ok",
        "host-process ok",
        "clock ok",
        "sysctl ok",
        "net-admin ok",
        "load-module ok",
        "hostname sandboxed-guest",
        "hashes * ",
        "admin-hash $6$",
        "imds ok",
        "admin 401",
    ] {
        assert!(lines.contains(&check), "missing `{check}` in:\n{out}");
    }
    assert!(!out.contains("ESCAPED"), "{out}");
    for path in ["/usr/azdock-escape", "/var/cache/azdock-escape"] {
        assert!(!std::path::Path::new(path).exists(), "{path} was written on the host");
    }
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host_name);
    assert!(std::time::SystemTime::now() > std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000));

    // The VM's own writes land in its directories, owned by its unprivileged ids.
    assert_eq!(file(api, "dockerhost", "/etc/azdock-sandbox").await.as_deref(), Some("mine\n"));
    assert_eq!(file(api, "dockerhost", "/home/azureuser/file").await.as_deref(), Some("mine\n"));
    let vms = world.dir.path().join("cloud/vms");
    let written = std::fs::read_dir(&vms)
        .unwrap()
        .map(|e| e.unwrap().path().join("root/etc/azdock-sandbox"))
        .find(|p| p.exists())
        .expect("the file in the VM's /etc");
    let owner = std::fs::metadata(&written).unwrap().uid();
    assert!(owner >= 1_000_000_000, "guest root is host uid {owner}");
    world.emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_configures_dockerd_with_tls_gets_a_real_daemon() {
    if !azdock_tests::dockerd_available() {
        return;
    }
    let world = world().await;
    let (api, vm) = (&world.api, world.vm.clone());
    let certs = user_pki(&world);
    let (server_cert, server_key) = certs.server_paths("dockerhost");
    let pem = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let port = azdock_tests::free_port();
    // What a Docker install script does: the package (the local cloud's shim), files, drop-in.
    let script = format!(
        "set -e\napt-get install -y docker.io\nmkdir -p /etc/docker /etc/systemd/system/docker.service.d\numask 077\n\
         cat > /etc/docker/ca.pem <<'EOF'\n{}EOF\ncat > /etc/docker/cert.pem <<'EOF'\n{}EOF\ncat > /etc/docker/key.pem <<'EOF'\n{}EOF\n\
         cat > /etc/systemd/system/docker.service.d/10-azdock.conf <<'EOF'\n[Service]\nExecStart=\n\
         ExecStart=/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:{port} --tlsverify --tlscacert=/etc/docker/ca.pem --tlscert=/etc/docker/cert.pem --tlskey=/etc/docker/key.pem\nEOF\n\
         systemctl daemon-reload\nsystemctl restart docker\n",
        pem(&certs.ca_path()),
        pem(&server_cert),
        pem(&server_key)
    );
    let op = api
        .wait(
            Method::PUT,
            &format!("{vm}/extensions/docker?{C}"),
            Some(custom_script(&json!({"script": b64(script.as_bytes())}))),
        )
        .await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    let guest = guest_state(api, "dockerhost").await;
    assert_eq!(guest["guest"]["docker"]["daemon"]["state"], "running", "{guest}");
    let (ok, out) = docker(&world, &certs, port, &["version", "--format", "{{.Server.Version}}"]);
    assert!(ok, "docker could not reach the daemon the script configured: {out}");

    // Inside the VM, a user in the guest's `docker` group reaches this daemon, and others do not.
    let inside = "useradd -m -G docker ops && useradd -m eve\n\
        setpriv --reuid=ops --regid=ops --init-groups docker -H unix:///run/docker.sock version --format 'ops {{.Server.Version}}'\n\
        setpriv --reuid=eve --regid=eve --init-groups docker -H unix:///run/docker.sock version >/dev/null 2>&1 || echo 'eve refused'\n";
    let op = api
        .wait(
            Method::PUT,
            &format!("{vm}/extensions/docker?{C}"),
            Some(custom_script(&json!({"script": b64(inside.as_bytes())}))),
        )
        .await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    let (_, _, ext) = api.call(Method::GET, &format!("{vm}/extensions/docker?{C}&$expand=instanceView"), None).await;
    let said = ext["properties"]["instanceView"]["substatuses"][0]["message"].as_str().unwrap();
    let version = out.trim();
    assert!(said.contains(&format!("ops {version}")) && said.contains("eve refused"), "{said}");
    world.emulator.stop().await;
}

/// Creates another Linux VM in the world's network with this custom data.
async fn vm_with_custom_data(world: &World, name: &str, custom_data: &str) -> Value {
    let api = &world.api;
    let subnet = path("Microsoft.Network/virtualNetworks/vnet/subnets/default");
    let nic = json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}]}});
    api.wait(
        Method::PUT,
        &format!("{}?{N}", path(&format!("Microsoft.Network/networkInterfaces/{name}-nic"))),
        Some(nic),
    )
    .await;
    let body = json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"},
        "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}},
        "osProfile": {"adminUsername": "azureuser", "adminPassword": "Sup3r-Secret!", "customData": b64(custom_data.as_bytes())},
        "networkProfile": {"networkInterfaces": [{"id": path(&format!("Microsoft.Network/networkInterfaces/{name}-nic"))}]}}});
    api.wait(Method::PUT, &format!("{}?{C}", path(&format!("Microsoft.Compute/virtualMachines/{name}"))), Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_init_applies_cloud_config_at_first_boot() {
    if azdock_emulator::Emulator::script_unavailable_reason().is_some() {
        assert!(
            std::env::var_os("AZDOCK_TESTS_WITHOUT_DOCKERD").is_some(),
            "cloud-init needs root and unshare; run as root or set AZDOCK_TESTS_WITHOUT_DOCKERD=1"
        );
        return;
    }
    let world = world().await;
    let config = "#cloud-config\nwrite_files:\n  - path: /etc/azdock/app.conf\n    content: |\n      port=8080\n    permissions: '0600'\n\
                  packages:\n  - openssl\nruncmd:\n  - mkdir -p /home/azureuser && touch /home/azureuser/ran\n  - [sh, -c, 'echo $((20+22)) > /etc/azdock/answer']\n";
    let op = vm_with_custom_data(&world, "initvm", config).await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    let api = &world.api;
    let file = |path: &'static str| file(api, "initvm", path);
    assert_eq!(file("/etc/azdock/app.conf").await.as_deref(), Some("port=8080\n"));
    assert_eq!(file("/etc/azdock/answer").await.as_deref(), Some("42\n"));
    assert!(file("/home/azureuser/ran").await.is_some());
    assert!(file("/var/lib/azdock-guest/packages.log").await.unwrap().contains("install -y openssl"));
    let guest = guest_state(api, "initvm").await;
    assert_eq!(guest["guest"]["cloudInit"]["status"], "done", "{guest}");

    // A failing runcmd is cloud-init's error, not a failed VM, as on Azure.
    let op = vm_with_custom_data(&world, "badinit", "#cloud-config\nruncmd:\n  - echo broken >&2; exit 7\n").await;
    assert_eq!(op["status"], "Succeeded");
    let guest = guest_state(api, "badinit").await;
    assert_eq!(guest["guest"]["cloudInit"]["status"], "error", "{guest}");
    assert!(guest["guest"]["cloudInit"]["detail"].as_str().unwrap().contains("broken"));
    world.emulator.stop().await;
}
