//! Bad input: each case gets a clear message, the right exit code, and changes no file.

use std::path::Path;

use azdock_tests::{Env, Output, openssl, snapshot_dir};

/// Runs azdock against `dir`, asserting the exit code, that stderr says `needle`, and that the
/// directory is exactly as it was.
#[track_caller]
fn rejects(env: &Env, dir: &Path, args: &[&str], code: i32, needle: &str) -> Output {
    let before = snapshot_dir(dir);
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["-C", dir.to_str().unwrap()]);
    let out = env.run(&full);
    assert_eq!(out.code, code, "{args:?}: {out:?}");
    assert!(out.stderr.contains(needle), "{args:?}: expected `{needle}` in:\n{}", out.stderr);
    assert!(out.stdout.is_empty(), "{args:?} printed a result: {}", out.stdout);
    assert_eq!(snapshot_dir(dir), before, "{args:?} changed the directory");
    out
}

fn initialised(env: &Env) -> std::path::PathBuf {
    let dir = env.path().join("certs");
    env.run(&["certs", "init", "-C", dir.to_str().unwrap()]).success();
    dir
}

#[test]
fn unwritable_directory_is_a_runtime_error_naming_it() {
    let env = Env::new();
    // A path below a regular file cannot be created, even by root (tests run as root in CI,
    // where permission bits would not stop anything).
    let file = env.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let dir = file.join("certs");
    let out = env.run(&["certs", "init", "-C", dir.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot create the certificate directory") && out.stderr.contains("not-a-dir/certs"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn partial_sets_name_the_missing_file() {
    let env = Env::new();
    let dir = initialised(&env);
    std::fs::remove_file(dir.join("ca-key.pem")).unwrap();
    let out = rejects(&env, &dir, &["certs", "init"], 2, "`ca.pem` exists but `ca-key.pem` is missing");
    assert!(out.stderr.contains("restore `ca-key.pem`"), "{}", out.stderr);

    let env = Env::new();
    let dir = initialised(&env);
    std::fs::remove_file(dir.join("key.pem")).unwrap();
    rejects(
        &env,
        &dir,
        &["certs", "server", "h", "--ip", "127.0.0.1"],
        2,
        "`cert.pem` exists but `key.pem` is missing",
    );

    // A client without any CA: azdock would orphan it by making a new CA, so it refuses.
    let env = Env::new();
    let dir = initialised(&env);
    std::fs::remove_file(dir.join("ca.pem")).unwrap();
    std::fs::remove_file(dir.join("ca-key.pem")).unwrap();
    rejects(&env, &dir, &["certs", "init"], 2, "no CA in");

    let env = Env::new();
    let dir = initialised(&env);
    env.run(&["certs", "server", "h", "--ip", "127.0.0.1", "-C", dir.to_str().unwrap()]).success();
    std::fs::remove_file(dir.join("h-server-key.pem")).unwrap();
    rejects(
        &env,
        &dir,
        &["certs", "server", "h", "--ip", "127.0.0.1"],
        2,
        "`h-server-cert.pem` exists but `h-server-key.pem` is missing",
    );
}

#[test]
fn corrupt_pem_is_rejected() {
    let env = Env::new();
    let dir = initialised(&env);
    std::fs::write(dir.join("ca.pem"), "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
        .unwrap();
    rejects(&env, &dir, &["certs", "init"], 2, "ca.pem` is not a valid PEM certificate");

    let env = Env::new();
    let dir = initialised(&env);
    std::fs::write(dir.join("key.pem"), "garbage").unwrap();
    rejects(&env, &dir, &["certs", "init"], 2, "key.pem` is not a valid private key");
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_rejected() {
    let env = Env::new();
    let dir = initialised(&env);
    let other = Env::new();
    let other_dir = initialised(&other);
    std::fs::copy(other_dir.join("key.pem"), dir.join("key.pem")).unwrap();
    rejects(&env, &dir, &["certs", "init"], 2, "key.pem` does not belong to the certificate");

    // A client certificate from another CA is not silently replaced either.
    let env = Env::new();
    let dir = initialised(&env);
    std::fs::copy(other_dir.join("key.pem"), dir.join("key.pem")).unwrap();
    std::fs::copy(other_dir.join("cert.pem"), dir.join("cert.pem")).unwrap();
    rejects(&env, &dir, &["certs", "init"], 2, "was not issued by the CA");
}

#[test]
fn an_expired_ca_is_rejected_with_the_way_forward() {
    let env = Env::new();
    let dir = env.path().join("old");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\n\
         policy = p\n[p]\ncommonName = supplied\n[v3]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = keyCertSign\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-subj",
            "/CN=old",
            "-out",
            "ca.csr",
        ],
    );
    openssl(
        &dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-selfsign",
            "-keyfile",
            "ca-key.pem",
            "-in",
            "ca.csr",
            "-notext",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
            "-extensions",
            "v3",
            "-out",
            "ca.pem",
        ],
    );
    for f in ["ca.csr", "ca.cnf", "index.txt", "index.txt.attr", "index.txt.old", "serial", "serial.old", "01.pem"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let out = rejects(&env, &dir, &["certs", "init"], 2, "ca.pem` expired on 2021-01-01T00:00:00Z");
    assert!(out.stderr.contains("azdock certs rotate --ca"), "{}", out.stderr);
}

#[test]
fn invalid_hosts_names_and_addresses_create_nothing() {
    let env = Env::new();
    let dir = env.path().join("fresh");
    for (args, needle) in [
        (vec!["certs", "server", "../evil"], "invalid host name `../evil`"),
        (vec!["certs", "server", "h", "--ip", "1.2.3"], "invalid IP address `1.2.3`"),
        (vec!["certs", "server", "h", "--ip", "10.0.0.300"], "invalid IP address `10.0.0.300`"),
        (vec!["certs", "server", "h", "--dns", "bad name.example"], "invalid DNS name `bad name.example`"),
        (vec!["certs", "server", "h", "--dns=-lead.example"], "invalid DNS name `-lead.example`"),
        (vec!["certs", "server", "h", "--dns", "127.0.0.1"], "pass it with `--ip`"),
        (vec!["certs", "rotate", "--server", "a b"], "invalid host name `a b`"),
    ] {
        let mut full = args.clone();
        full.extend(["-C", dir.to_str().unwrap()]);
        let out = env.run(&full);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(!dir.exists(), "{args:?} created the directory");
    }
}

#[test]
fn ca_rotation_needs_confirmation_without_a_terminal() {
    let env = Env::new();
    let dir = initialised(&env);
    rejects(&env, &dir, &["certs", "rotate", "--ca"], 2, "pass `--yes` to confirm");
}
