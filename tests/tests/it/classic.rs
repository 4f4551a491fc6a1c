//! Material left by other tools: the classic Azure CLI's openssl sequence (RSA CA key encrypted
//! under `Docker123`) and docker-machine's unencrypted RSA and EC keys, reused by azdock.

use std::path::Path;

use azdock_tests::{Dockerd, Env, dockerd_available, dockerd_lock, openssl, snapshot_dir};

/// The classic CLI's sequence, checking the CA key came out in the intended encoding.
fn classic_pki(dir: &Path, passphrase: &str, traditional: bool) {
    azdock_tests::classic_cli_pki(dir, passphrase, traditional);
    let key = std::fs::read_to_string(dir.join("ca-key.pem")).unwrap();
    if traditional {
        assert!(key.contains("Proc-Type: 4,ENCRYPTED") && key.contains("DEK-Info: DES-EDE3-CBC"), "{key}");
        assert!(std::fs::read_to_string(dir.join("key.pem")).unwrap().contains("BEGIN RSA PRIVATE KEY"));
    } else {
        assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"), "{key}");
    }
}

#[test]
fn classic_cli_rsa_ca_signs_a_server_certificate_dockerd_accepts() {
    if !dockerd_available() {
        return;
    }
    let env = Env::new();
    let dir = env.path().join("docker");
    classic_pki(&dir, "Docker123", true);
    let ca_key_before = std::fs::read(dir.join("ca-key.pem")).unwrap();

    let out = env.run(&["certs", "server", "classic", "--ip", "127.0.0.1", "-C", dir.to_str().unwrap()]).success();
    let report = out.json();
    let status: Vec<&str> =
        report["certificates"].as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["reused", "reused", "created"]);
    assert_eq!(report["certificates"][0]["keyAlgorithm"], "RSA 2048");
    // The user's CA and client files are untouched.
    assert_eq!(std::fs::read(dir.join("ca-key.pem")).unwrap(), ca_key_before);

    let _one_at_a_time = dockerd_lock();
    let (ca, cert, key) = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    let daemon = Dockerd::start(&ca, &dir.join("classic-server-cert.pem"), &dir.join("classic-server-key.pem"));
    let out = daemon.docker(&ca, &cert, &key, &["version", "--format", "{{.Server.Version}}"]).success();
    assert!(!out.stdout.trim().is_empty());
}

#[test]
fn openssl3_encrypted_pkcs8_ca_with_a_passphrase_from_the_environment() {
    let env = Env::new();
    let dir = env.path().join("docker");
    classic_pki(&dir, "s3cret-pass", false);
    let c = dir.to_str().unwrap();

    // Neither the classic passphrase nor a prompt (no terminal): a clear error, nothing written.
    let before = snapshot_dir(&dir);
    let out = env.run(&["certs", "server", "h1", "--ip", "127.0.0.1", "-C", c]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("ca-key.pem") && out.stderr.contains("AZDOCK_CA_KEY_PASSPHRASE"), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cret-pass"));
    assert_eq!(snapshot_dir(&dir), before);

    let out = azdock_tests::run(env.azdock().env("AZDOCK_CA_KEY_PASSPHRASE", "s3cret-pass").args([
        "certs",
        "server",
        "h1",
        "--ip",
        "127.0.0.1",
        "-C",
        c,
    ]))
    .success();
    assert_eq!(out.json()["certificates"][2]["status"], "created");
    let verified = openssl(&dir, &["verify", "-CAfile", "ca.pem", "h1-server-cert.pem"]);
    assert_eq!(verified.stdout, "h1-server-cert.pem: OK\n");
}

#[test]
fn docker_machine_style_unencrypted_rsa_and_ec_keys_are_reused() {
    let env = Env::new();
    let dir = env.path().join("machine");
    std::fs::create_dir_all(&dir).unwrap();
    // CA key as PKCS#1 RSA, client key as SEC1 EC: the formats docker-machine and
    // `openssl ecparam -genkey` leave.
    openssl(&dir, &["genrsa", "-traditional", "-out", "ca-key.pem", "2048"]);
    openssl(
        &dir,
        &["req", "-new", "-x509", "-days", "30", "-key", "ca-key.pem", "-subj", "/O=machine", "-out", "ca.pem"],
    );
    openssl(&dir, &["ecparam", "-genkey", "-name", "prime256v1", "-out", "key.pem"]);
    openssl(&dir, &["req", "-new", "-key", "key.pem", "-subj", "/O=machine.client", "-out", "c.csr"]);
    std::fs::write(dir.join("ext.cnf"), "extendedKeyUsage = clientAuth\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-days",
            "30",
            "-in",
            "c.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-extfile",
            "ext.cnf",
        ],
    );
    assert!(std::fs::read_to_string(dir.join("key.pem")).unwrap().contains("BEGIN EC PRIVATE KEY"));

    let out = env.run(&["certs", "init", "-C", dir.to_str().unwrap()]).success();
    let status: Vec<String> =
        out.json()["certificates"].as_array().unwrap().iter().map(|c| c["status"].to_string()).collect();
    assert_eq!(status, ["\"reused\"", "\"reused\""]);
    // The CA expires within 30 days: said on stderr, not hidden.
    assert!(out.stderr.contains("WARNING:") && out.stderr.contains("ca.pem` expires in"), "{}", out.stderr);
    let out = env.run(&["certs", "server", "m1", "--dns", "m1.example.com", "-C", dir.to_str().unwrap()]).success();
    assert_eq!(out.json()["certificates"][2]["status"], "created");
    openssl(&dir, &["verify", "-CAfile", "ca.pem", "m1-server-cert.pem"]);
}
