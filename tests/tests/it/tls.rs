//! Real TLS: certificates from `azdock certs` in front of a real dockerd and the real docker CLI.

use std::path::Path;

use azdock_tests::{Dockerd, Env, dockerd_available, dockerd_lock, openssl};

/// `azdock certs init` and `certs server` into `<home>/<name>`; returns the directory.
fn mint(env: &Env, name: &str, host: &str, sans: &[&str]) -> std::path::PathBuf {
    let dir = env.path().join(name);
    let mut args = vec!["certs", "server", host, "-C", dir.to_str().unwrap()];
    args.extend_from_slice(sans);
    env.run(&args).success();
    dir
}

/// The wait for a Docker host rides through a real dockerd restarting under it — as the install
/// script's `systemctl restart docker` does while azdock waits — instead of failing at the first
/// failed connection with advice to rotate certificates: the wait starts once the daemon is down
/// and ends when the new one, started two seconds later, answers.
// The dockerd lock is held across the wait on purpose: one dockerd test at a time, whichever
// thread runs it.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_a_host_rides_through_dockerd_restarting() {
    if !dockerd_available() {
        return;
    }
    let _one_at_a_time = dockerd_lock();
    let env = Env::new();
    let dir = mint(&env, "restart", "local", &["--ip", "127.0.0.1"]);
    let mut daemon =
        Dockerd::start(&dir.join("ca.pem"), &dir.join("local-server-cert.pem"), &dir.join("local-server-key.pem"));
    let identity = azdock_host::docker::identity(&dir);
    let port = daemon.addr.port();
    let before = azdock_host::probe::wait("127.0.0.1", port, &identity, std::time::Duration::from_secs(30)).await;
    assert!(before.is_ok(), "the daemon did not answer before the restart: {before:?}");

    // The restart runs beside the wait, which starts once the daemon is down.
    let (down, rx) = std::sync::mpsc::channel();
    let restart = std::thread::spawn(move || {
        daemon.stop();
        down.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        daemon.start_again();
        daemon
    });
    rx.recv().unwrap();
    let waited = azdock_host::probe::wait("127.0.0.1", port, &identity, std::time::Duration::from_secs(60)).await;
    let daemon = restart.join().unwrap();
    let info = waited.unwrap_or_else(|f| panic!("the wait failed on a restarting daemon: {f:?}\n{}", daemon.log()));
    assert_eq!(info.ping, "OK");
    assert!(info.version["Version"].as_str().is_some_and(|v| !v.is_empty()), "{:?}", info.version);
    // The daemon really went down and came back within the wait.
    assert!(daemon.log().matches("API listen on").count() >= 2, "{}", daemon.log());
}

#[test]
fn docker_connects_with_azdock_certificates_and_tls_refuses_the_rest() {
    if !dockerd_available() {
        return;
    }
    let _one_at_a_time = dockerd_lock();
    let env = Env::new();
    let good = mint(&env, "good", "local", &["--ip", "127.0.0.1", "--dns", "localhost"]);
    let (ca, cert, key) = (good.join("ca.pem"), good.join("cert.pem"), good.join("key.pem"));
    let daemon = Dockerd::start(&ca, &good.join("local-server-cert.pem"), &good.join("local-server-key.pem"));

    // The happy path, by IP and by DNS name: both are SANs.
    let out = daemon.docker(&ca, &cert, &key, &["version", "--format", "{{.Server.Version}}"]).success();
    assert!(!out.stdout.trim().is_empty(), "no server version: {out:?}");
    let by_name = format!("localhost:{}", daemon.addr.port());
    daemon.docker_at(&by_name, &ca, &cert, &key, &["version", "--format", "{{.Server.Version}}"]).success();

    // A client certificate from another CA is refused by the daemon.
    let other = mint(&env, "other", "local", &["--ip", "127.0.0.1"]);
    let out = daemon.docker(&ca, &other.join("cert.pem"), &other.join("key.pem"), &["version"]);
    assert_ne!(out.code, 0, "a foreign client certificate was accepted: {out:?}");
    // Under TLS 1.3 the client may only see the connection close; the daemon's log says why.
    assert!(daemon.log_contains("x509: certificate signed by unknown authority"), "{out:?}\n{}", daemon.log());

    // The client refuses a server whose certificate is from another CA.
    let out = daemon.docker(&other.join("ca.pem"), &cert, &key, &["version"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("x509"), "{}", out.stderr);
    drop(daemon);

    // A server certificate whose SANs do not include the dialled address fails with Go's error.
    let wrong = mint(&env, "good", "elsewhere", &["--ip", "127.0.0.2", "--dns", "elsewhere.example"]);
    let daemon = Dockerd::start(&ca, &wrong.join("elsewhere-server-cert.pem"), &wrong.join("elsewhere-server-key.pem"));
    let out = daemon.docker(&ca, &cert, &key, &["version"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("x509: certificate is valid for"), "{}", out.stderr);
    assert!(out.stderr.contains("not 127.0.0.1"), "{}", out.stderr);
    drop(daemon);

    // A CN-only server certificate (what old tools made) is rejected by Go's TLS.
    let cn_only = cn_only_server_cert(&good);
    let daemon = Dockerd::start(&ca, &cn_only, &good.join("cn-only-key.pem"));
    let out = daemon.docker(&ca, &cert, &key, &["version"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("x509"), "{}", out.stderr);
    assert!(out.stderr.contains("IP SANs") || out.stderr.contains("Common Name"), "{}", out.stderr);
    // And azdock's own verification says why before any daemon is involved.
    std::fs::copy(&cn_only, good.join("legacy-server-cert.pem")).unwrap();
    std::fs::copy(good.join("cn-only-key.pem"), good.join("legacy-server-key.pem")).unwrap();
    let out = env.run(&["certs", "verify", "legacy", "-C", good.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("CN-only"), "{}", out.stdout);
}

/// Signs a server certificate for CN=127.0.0.1 without any SAN, with openssl and azdock's CA.
fn cn_only_server_cert(dir: &Path) -> std::path::PathBuf {
    openssl(dir, &["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "cn-only-key.pem"]);
    openssl(dir, &["req", "-new", "-key", "cn-only-key.pem", "-subj", "/CN=127.0.0.1", "-out", "cn-only.csr"]);
    std::fs::write(dir.join("cn-only.ext"), "extendedKeyUsage=serverAuth\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "cn-only.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "cn-only.ext",
            "-out",
            "cn-only-cert.pem",
        ],
    );
    dir.join("cn-only-cert.pem")
}

#[test]
fn openssl_verifies_the_chain_and_reads_the_right_extensions() {
    let env = Env::new();
    let dir = mint(&env, "pki", "vm1", &["--dns", "vm1.westeurope.cloudapp.azure.com", "--ip", "127.0.0.5"]);
    let out = openssl(&dir, &["verify", "-CAfile", "ca.pem", "cert.pem", "vm1-server-cert.pem"]);
    assert_eq!(out.stdout, "cert.pem: OK\nvm1-server-cert.pem: OK\n");
    // The purpose checks openssl applies for TLS clients and servers.
    openssl(&dir, &["verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "cert.pem"]);
    openssl(&dir, &["verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "vm1-server-cert.pem"]);
    let wrong = openssl_fails(&dir, &["verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "cert.pem"]);
    assert!(wrong.contains("unsuitable certificate purpose"), "{wrong}");

    let ca = openssl(&dir, &["x509", "-in", "ca.pem", "-noout", "-text"]).stdout;
    assert!(ca.contains("CA:TRUE, pathlen:0"), "{ca}");
    assert!(ca.contains("Certificate Sign") && !ca.contains("Digital Signature"), "{ca}");
    assert!(!ca.contains("Extended Key Usage"), "{ca}");
    assert!(ca.contains("ASN1 OID: prime256v1"), "{ca}");

    let client = openssl(&dir, &["x509", "-in", "cert.pem", "-noout", "-text"]).stdout;
    assert!(
        client.contains("TLS Web Client Authentication") && !client.contains("TLS Web Server Authentication"),
        "{client}"
    );
    assert!(client.contains("CA:FALSE"), "{client}");

    let server = openssl(&dir, &["x509", "-in", "vm1-server-cert.pem", "-noout", "-text"]).stdout;
    assert!(
        server.contains("TLS Web Server Authentication") && !server.contains("TLS Web Client Authentication"),
        "{server}"
    );
    assert!(server.contains("DNS:vm1.westeurope.cloudapp.azure.com, IP Address:127.0.0.5"), "{server}");
    assert!(server.contains("Subject: O = azdock, CN = vm1.westeurope.cloudapp.azure.com"), "{server}");
}

/// What `certs server` reports of the files it wrote is what openssl reads in them.
#[test]
fn the_report_of_certs_server_is_what_openssl_reads() {
    let env = Env::new();
    let dir = env.path().join("pki");
    let args = ["certs", "server", "vm1", "--dns", "vm1.example", "--ip", "127.0.0.5", "-C", dir.to_str().unwrap()];
    let report = env.run(&args).success().json();
    let entries = report["certificates"].as_array().expect("certificates");
    assert_eq!(entries.len(), 3, "{report}");
    for entry in entries {
        let file = entry["file"].as_str().expect("file");
        let fingerprint = openssl(&dir, &["x509", "-in", file, "-noout", "-fingerprint", "-sha256"]).stdout;
        assert_eq!(fingerprint.trim(), format!("sha256 Fingerprint={}", entry["fingerprintSha256"].as_str().unwrap()));
        let days = entry["daysLeft"].as_i64().expect("daysLeft");
        let (role, expected_days) = match entry["role"].as_str() {
            Some("ca") => ("ca", 3650),
            Some("client") => ("client", 730),
            other => (other.unwrap_or("?"), 365),
        };
        assert!((expected_days - 1..=expected_days).contains(&days), "{role}: {days} days left");
        // openssl prints `notAfter=2027-12-03 11:13:42Z`; the report has RFC 3339.
        let dates = openssl(&dir, &["x509", "-in", file, "-noout", "-dates", "-dateopt", "iso_8601"]).stdout;
        for field in ["notBefore", "notAfter"] {
            let read = dates.lines().find_map(|l| l.strip_prefix(&format!("{field}="))).expect("openssl's date");
            assert_eq!(entry[field].as_str().unwrap().replace('T', " "), read, "{role} {field}");
        }
    }
    let server = entries.iter().find(|e| e["role"] == "server").expect("the server entry");
    assert_eq!(server["sans"], serde_json::json!(["vm1.example", "127.0.0.5"]));
    let text = openssl(&dir, &["x509", "-in", "vm1-server-cert.pem", "-noout", "-ext", "subjectAltName"]).stdout;
    assert!(text.contains("DNS:vm1.example, IP Address:127.0.0.5"), "{text}");
}

fn openssl_fails(dir: &Path, args: &[&str]) -> String {
    let out = azdock_tests::run(std::process::Command::new("openssl").args(args).current_dir(dir));
    assert_ne!(out.code, 0, "openssl {args:?} succeeded");
    out.stdout + &out.stderr
}
