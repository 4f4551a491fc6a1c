//! Clouds registered by their ARM endpoint, and every way to sign in besides a stored login: the
//! `AZURE_*` environment (secret, PEM or PFX certificate, federated token) and managed identity
//! (App Service's `IDENTITY_ENDPOINT`, and IMDS) — all against the local cloud, registered here
//! as a custom cloud the way an Azure Stack Hub user registers theirs.

use std::path::Path;

use azdock_tests::Env;
use azdock_tests::arm::Arm;
use base64::Engine as _;
use serde_json::{Value, json};

struct Stack {
    env: Env,
    up: Value,
    arm: Arm,
}

impl Stack {
    /// A running local cloud registered as the custom cloud `stack`.
    async fn new() -> Self {
        let env = Env::new();
        let (up, arm) = azdock_tests::local_cloud(&env, &["--instant"]).await;
        let registered = env
            .run(&[
                "cloud",
                "register",
                "-n",
                "stack",
                "--endpoint-resource-manager",
                &text(&up, "endpoint"),
                "--ca-bundle",
                &text(&up, "caCertificate"),
            ])
            .success()
            .json();
        assert_eq!(
            registered["endpoints"]["activeDirectory"],
            text(&up, "endpoint"),
            "discovered from /metadata/endpoints"
        );
        Self { env, up, arm }
    }

    fn text(&self, k: &str) -> String {
        text(&self.up, k)
    }

    /// `azdock --cloud stack account list` with this environment.
    fn accounts(&self, vars: &[(&str, &str)]) -> azdock_tests::Output {
        let mut cmd = self.env.azdock();
        for (k, v) in vars {
            cmd.env(k, v);
        }
        azdock_tests::run(cmd.args(["--cloud", "stack", "account", "list"]))
    }

    fn signed_in(&self, vars: &[(&str, &str)]) {
        let out = self.accounts(vars);
        assert_eq!(out.code, 0, "{vars:?}: {}", out.stderr);
        assert_eq!(out.json()[0]["id"], self.text("subscriptionId"));
        assert_eq!(out.json()[0]["cloudName"], "stack");
    }
}

/// The base environment plus more variables.
fn with<'a>(base: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    [base, extra].concat()
}

fn text(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clouds_are_registered_from_their_metadata_and_checked_first() {
    let env = Env::new();
    let up = env.run(&["local", "up", "--instant"]).success().json();
    let (endpoint, ca) = (text(&up, "endpoint"), text(&up, "caCertificate"));
    let clouds = env.path().join("config/clouds.toml");
    let not_pem = env.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let register = |name: &str, url: &str, bundle: &str| {
        env.run(&["cloud", "register", "-n", name, "--endpoint-resource-manager", url, "--ca-bundle", bundle])
    };
    for (name, url, bundle, says) in [
        ("stack", "http://127.0.0.1:1", ca.as_str(), "give an https:// URL"),
        ("AzureCloud", endpoint.as_str(), ca.as_str(), "is a built-in cloud"),
        ("bad name", endpoint.as_str(), ca.as_str(), "invalid cloud name `bad name`"),
        ("stack", endpoint.as_str(), not_pem.to_str().unwrap(), "holds no PEM certificate"),
    ] {
        let out = register(name, url, bundle);
        assert_eq!(out.code, 2, "{name} {url}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{}", out.stderr);
    }
    // Nothing answers there: a runtime failure, and nothing registered.
    let closed = format!("https://127.0.0.1:{}", azdock_tests::free_port());
    assert_eq!(register("stack", &closed, &ca).code, 1);
    assert!(!clouds.exists(), "failed registrations write nothing");

    register("stack", &endpoint, &ca).success();
    let again = register("Stack", &endpoint, &ca);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("already registered"), "{}", again.stderr);
    let list = env.run(&["cloud", "list"]).success().json();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["AzureCloud", "AzureChinaCloud", "AzureUSGovernment", "local", "stack"]);
    assert_eq!(list[3]["isActive"], true, "with no Azure sign-in configured, commands use the local cloud");
    let shown = env.run(&["cloud", "show", "-n", "stack"]).success().json();
    assert_eq!(shown["endpoints"]["resourceManager"], endpoint);
    assert_eq!(shown["endpoints"]["activeDirectoryResourceId"], format!("{endpoint}/"));

    // The active cloud: commands use it without --cloud, and it cannot be unregistered.
    env.run(&["cloud", "set", "-n", "stack"]).success();
    let vars = [
        ("AZURE_TENANT_ID", text(&up, "tenantId")),
        ("AZURE_CLIENT_ID", text(&up, "clientId")),
        ("AZURE_CLIENT_SECRET", text(&up, "clientSecret")),
    ];
    let mut cmd = env.azdock();
    for (k, v) in &vars {
        cmd.env(k, v);
    }
    let vms = azdock_tests::run(cmd.args(["vm", "list"]));
    assert_eq!(vms.code, 0, "{}", vms.stderr);
    let busy = env.run(&["cloud", "unregister", "-n", "stack"]);
    assert_eq!(busy.code, 2);
    assert!(busy.stderr.contains("is the active cloud"), "{}", busy.stderr);
    let builtin = env.run(&["cloud", "unregister", "-n", "AzureCloud"]);
    assert_eq!(builtin.code, 2);
    env.run(&["cloud", "set", "-n", "azurecloud"]).success();
    env.run(&["cloud", "unregister", "-n", "stack"]).success();
    let gone = env.run(&["--cloud", "stack", "vm", "list"]);
    assert_eq!(gone.code, 2);
    assert!(gone.stderr.contains("unknown cloud `stack`"), "{}", gone.stderr);
    env.run(&["local", "down"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_signs_in_with_a_secret_a_pem_or_pfx_certificate() {
    let s = Stack::new().await;
    let (tenant, client) = (s.text("tenantId"), s.text("clientId"));
    let base = [("AZURE_TENANT_ID", tenant.as_str()), ("AZURE_CLIENT_ID", client.as_str())];

    s.signed_in(&with(&base, &[("AZURE_CLIENT_SECRET", &s.text("clientSecret"))]));
    let wrong = s.accounts(&with(&base, &[("AZURE_CLIENT_SECRET", "not-it")]));
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("AADSTS7000215"),
        "a configured credential that fails ends the chain: {}",
        wrong.stderr
    );

    let dir = s.env.path();
    let (cert, key) = azdock_tests::self_signed_rsa(dir, "sp");
    let pem = dir.join("sp.pem");
    std::fs::write(&pem, std::fs::read_to_string(&cert).unwrap() + &std::fs::read_to_string(&key).unwrap()).unwrap();
    let (status, _) = s
        .arm
        .admin(
            reqwest::Method::POST,
            &format!("/principals/{client}/certificates"),
            Some(json!({"pem": std::fs::read_to_string(&cert).unwrap()})),
        )
        .await;
    assert_eq!(status, 204);
    s.signed_in(&with(&base, &[("AZURE_CLIENT_CERTIFICATE_PATH", pem.to_str().unwrap())]));

    // PFX as OpenSSL 3 writes it (AES-256, PBKDF2) and as older tools do (3DES, SHA-1 MAC).
    for (name, extra) in [
        ("modern.pfx", &[][..]),
        ("legacy.pfx", &["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"][..]),
    ] {
        let args = [
            &[
                "pkcs12",
                "-export",
                "-in",
                "sp-cert.pem",
                "-inkey",
                "sp-key.pem",
                "-out",
                name,
                "-passout",
                "pass:pfx-Passw0rd",
            ][..],
            extra,
        ]
        .concat();
        azdock_tests::openssl(dir, &args);
        let path = dir.join(name);
        s.signed_in(&with(
            &base,
            &[
                ("AZURE_CLIENT_CERTIFICATE_PATH", path.to_str().unwrap()),
                ("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pfx-Passw0rd"),
            ],
        ));
        let bad = s.accounts(&with(
            &base,
            &[
                ("AZURE_CLIENT_CERTIFICATE_PATH", path.to_str().unwrap()),
                ("AZURE_CLIENT_CERTIFICATE_PASSWORD", "wrong"),
            ],
        ));
        assert_eq!(bad.code, 1);
        assert!(
            bad.stderr.contains(name) && bad.stderr.contains("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
            "{}",
            bad.stderr
        );
    }
    // `azdock login --certificate` takes the PFX too, its password from stdin.
    let mut cmd = s.env.azdock();
    cmd.args(["--cloud", "stack", "login", "--service-principal", "-u", &client, "-t", &tenant, "--certificate"])
        .arg(dir.join("modern.pfx"))
        .arg("--password-stdin");
    let out = azdock_tests::run_with_stdin(&mut cmd, "pfx-Passw0rd");
    assert_eq!(out.code, 0, "{}", out.stderr);
    s.signed_in(&[]);
    s.env.run(&["local", "down"]).success();
}

/// A compact RS256 JWT signed by `key` (PEM), made with openssl in `dir`.
fn jwt(dir: &Path, key: &Path, claims: &Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!("{}.{}", b64(br#"{"alg":"RS256","typ":"JWT"}"#), b64(claims.to_string().as_bytes()));
    std::fs::write(dir.join("jwt-input"), &input).unwrap();
    azdock_tests::openssl(dir, &["dgst", "-sha256", "-sign", key.to_str().unwrap(), "-out", "jwt-sig", "jwt-input"]);
    format!("{input}.{}", b64(&std::fs::read(dir.join("jwt-sig")).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_tokens_and_managed_identity_sign_in() {
    let s = Stack::new().await;
    let (tenant, client) = (s.text("tenantId"), s.text("clientId"));
    let dir = s.env.path();

    // A Kubernetes-style issuer whose tokens the principal trusts for one subject.
    let (issuer_cert, issuer_key) = azdock_tests::self_signed_rsa(dir, "issuer");
    let issuer = "https://oidc.cluster.example";
    let fic = json!({"issuer": issuer, "subject": "system:serviceaccount:ci:deployer", "certificate": std::fs::read_to_string(&issuer_cert).unwrap()});
    let (status, body) =
        s.arm.admin(reqwest::Method::POST, &format!("/principals/{client}/federated-credentials"), Some(fic)).await;
    assert_eq!(status, 204, "{body}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = |sub: &str| {
        jwt(
            dir,
            &issuer_key,
            &json!({"iss": issuer, "sub": sub, "aud": "api://AzureADTokenExchange", "iat": now, "nbf": now, "exp": now + 600}),
        )
    };
    let file = dir.join("token");
    std::fs::write(&file, token("system:serviceaccount:ci:deployer")).unwrap();
    let federated = [
        ("AZURE_TENANT_ID", tenant.as_str()),
        ("AZURE_CLIENT_ID", client.as_str()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
    ];
    s.signed_in(&federated);
    std::fs::write(&file, token("system:serviceaccount:ci:someone-else")).unwrap();
    let refused = s.accounts(&federated);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("AADSTS70021") && refused.stderr.contains("someone-else"), "{}", refused.stderr);

    // App Service's managed identity: IDENTITY_ENDPOINT with its header secret.
    let (_, identity) = s.arm.admin(reqwest::Method::GET, "/identity", None).await;
    let (endpoint, header) = (text(&identity, "identityEndpoint"), text(&identity, "identityHeader"));
    s.signed_in(&[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", &header)]);
    let wrong = s.accounts(&[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", "guess")]);
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("X-IDENTITY-HEADER"), "{}", wrong.stderr);

    // A VM's managed identity through IMDS (its address moved to the local cloud).
    let imds = text(&identity, "imdsEndpoint");
    s.signed_in(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds)]);
    let login = azdock_tests::run(s.env.azdock().env("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds).args([
        "--cloud",
        "stack",
        "login",
        "--identity",
    ]));
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(std::fs::read_to_string(dir.join("config/credentials.json")).unwrap().contains("managedIdentity"));
    azdock_tests::run(s.env.azdock().args(["--cloud", "stack", "logout"])).success();

    // Nothing configured and no IMDS: every source tried is named.
    let none = s.accounts(&[]);
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("no credentials for stack")
            && none.stderr.contains("managed identity: no answer from http://127.0.0.1:9"),
        "{}",
        none.stderr
    );
    s.env.run(&["local", "down"]).success();
}

#[test]
fn a_corrupt_credentials_file_is_refused_and_left_as_it_is() {
    let env = azdock_tests::Env::new();
    let file = env.path().join("config/credentials.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    for garbage in ["{\"AzureCloud\": {\"kind\": \"servicePrin", "[1, 2]"] {
        std::fs::write(&file, garbage).unwrap();
        for args in [&["logout"][..], &["--cloud", "AzureCloud", "account", "list"][..]] {
            let out = env.run(args);
            assert_eq!(out.code, 2, "{args:?}: {out:?}");
            assert!(out.stderr.contains("credentials.json") && out.stderr.contains("azdock login"), "{}", out.stderr);
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), garbage, "the file was changed");
    }
}
