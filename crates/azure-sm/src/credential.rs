//! Credentials: one trait, so the chain (flags, environment, Azure CLI, managed identity) can
//! grow behind it; tokens are cached in memory until five minutes before they expire.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use azdock_core::Secret;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::error::AzureError;

/// A bearer token and when to stop using it.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Secret<String>,
    pub refresh_at: Instant,
}

/// Something that can get ARM tokens.
#[async_trait]
pub trait Credential: Send + Sync + std::fmt::Debug {
    /// A token for `scope`, from the cache while it is fresh.
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError>;
}

/// Tokens by scope, kept until shortly before they expire.
#[derive(Debug, Default)]
struct TokenCache(Mutex<Option<(String, AccessToken)>>);

impl TokenCache {
    /// The cached token for `scope`, or `fetch` run under the cache's lock (so concurrent
    /// callers sign in once) and its result cached.
    async fn get_or_fetch<F>(&self, scope: &str, fetch: F) -> Result<AccessToken, AzureError>
    where
        F: std::future::Future<Output = Result<AccessToken, AzureError>>,
    {
        let mut cache = self.0.lock().await;
        if let Some((cached_scope, token)) = cache.as_ref()
            && cached_scope == scope
            && Instant::now() < token.refresh_at
        {
            return Ok(token.clone());
        }
        let token = fetch.await?;
        *cache = Some((scope.to_owned(), token.clone()));
        Ok(token)
    }
}

/// A service principal with a client secret (`client_credentials` on Entra's v2 endpoint).
#[derive(Debug)]
pub struct ClientSecretCredential {
    authority_host: String,
    tenant: String,
    client_id: String,
    secret: Secret<String>,
    cache: TokenCache,
}

/// Tokens are renewed this long before Entra says they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

impl ClientSecretCredential {
    pub fn new(authority_host: &str, tenant: &str, client_id: &str, secret: Secret<String>) -> Self {
        Self {
            authority_host: authority_host.trim_end_matches('/').to_owned(),
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            secret,
            cache: TokenCache::default(),
        }
    }
}

#[async_trait]
impl Credential for ClientSecretCredential {
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        self.cache.get_or_fetch(scope, self.fetch(http, scope)).await
    }
}

impl ClientSecretCredential {
    async fn fetch(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority_host, self.tenant);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("client_secret", self.secret.expose()),
            ("scope", scope),
        ];
        request_token(http, &url, &form).await
    }
}

/// Entra's client-credentials exchange: POST the form, read the token or Entra's error. A
/// token request changes nothing, so a dropped connection, a 429 or a 5xx is tried again (four
/// attempts, honouring `Retry-After`).
async fn request_token(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Result<AccessToken, AzureError> {
    let mut attempt = 0u32;
    let resp = loop {
        attempt += 1;
        let wait = match http.post(url).form(form).send().await {
            Ok(resp) if attempt < 4 && (resp.status().as_u16() == 429 || resp.status().is_server_error()) => {
                let after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                Duration::from_secs(after.unwrap_or(1).min(10))
            }
            Ok(resp) => break resp,
            Err(e) if attempt >= 4 => return Err(AzureError::Transport { url: url.to_owned(), detail: e.to_string() }),
            Err(_) => Duration::from_millis(250 * u64::from(attempt)),
        };
        tokio::time::sleep(wait).await;
    };
    let status = resp.status().as_u16();
    let body: Value =
        resp.json().await.map_err(|e| AzureError::Protocol { url: url.to_owned(), detail: e.to_string() })?;
    if status != 200 {
        return Err(AzureError::Auth {
            status,
            error: body["error"].as_str().unwrap_or("unknown_error").to_owned(),
            description: body["error_description"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        });
    }
    let Some(access) = body["access_token"].as_str() else {
        return Err(AzureError::Protocol {
            url: url.to_owned(),
            detail: "no access_token in the token response".into(),
        });
    };
    let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(3600));
    Ok(AccessToken {
        token: Secret::new(access.to_owned()),
        refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
    })
}

/// Client credentials with a signed JWT instead of a secret (a certificate's assertion, or a
/// federated token).
async fn request_with_assertion(
    http: &reqwest::Client,
    url: &str,
    client_id: &str,
    assertion: &Secret<String>,
    scope: &str,
) -> Result<AccessToken, AzureError> {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.expose()),
        ("scope", scope),
    ];
    request_token(http, url, &form).await
}

/// A token that expires at `expires_on`: unix seconds, as a number or a string depending on who
/// issued it; ten minutes when it is missing.
fn expiring(access: &str, expires_on: &Value) -> AccessToken {
    let expires_on = expires_on.as_i64().or_else(|| expires_on.as_str().and_then(|s| s.parse().ok()));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let lifetime = Duration::from_secs(u64::try_from(expires_on.map_or(600, |e| e - now)).unwrap_or(0));
    AccessToken {
        token: Secret::new(access.to_owned()),
        refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
    }
}

/// Whether the Azure CLI (`az`) is on PATH.
pub fn az_cli_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("az").is_file()))
}

/// A service principal with a certificate: each token request carries a client assertion
/// (RS256, `x5t` thumbprint) signed with the certificate's key.
pub struct ClientCertificateCredential {
    authority_host: String,
    tenant: String,
    client_id: String,
    key: ring::signature::RsaKeyPair,
    cert_der: Vec<u8>,
    cache: TokenCache,
}

impl std::fmt::Debug for ClientCertificateCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificateCredential")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn invalid_certificate(source: &str, detail: &str) -> AzureError {
    AzureError::Auth { status: 0, error: "invalid_certificate".into(), description: format!("`{source}`: {detail}") }
}

/// The base64 body of the first PEM block with this label.
fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

impl ClientCertificateCredential {
    /// From PEM text holding the certificate and its unencrypted PKCS#8 RSA key (what
    /// `az ad sp create-for-rbac --create-cert` writes); `source` names it in errors.
    pub fn from_pem(
        authority_host: &str,
        tenant: &str,
        client_id: &str,
        pem: &Secret<String>,
        source: &str,
    ) -> Result<Self, AzureError> {
        let text = pem.expose();
        let cert_der =
            pem_block(text, "CERTIFICATE").ok_or_else(|| invalid_certificate(source, "no CERTIFICATE block"))?;
        let key_der = pem_block(text, "PRIVATE KEY").ok_or_else(|| {
            invalid_certificate(
                source,
                "no unencrypted PKCS#8 key (BEGIN PRIVATE KEY); convert it with `openssl pkcs8 -topk8 -nocrypt`",
            )
        })?;
        Self::from_der(authority_host, tenant, client_id, cert_der, &Secret::new(key_der), source)
    }

    /// From a PKCS#12 (PFX) archive holding the key and its certificate, as Windows and Key
    /// Vault export them; modern (AES) and legacy (3DES, RC2) encryption are both read.
    pub fn from_pfx(
        authority_host: &str,
        tenant: &str,
        client_id: &str,
        pfx: &[u8],
        password: &Secret<String>,
        source: &str,
    ) -> Result<Self, AzureError> {
        let store =
            p12_keystore::KeyStore::from_pkcs12(pfx, password.expose(), p12_keystore::Pkcs12ImportPolicy::Relaxed)
                .map_err(|e| {
                    invalid_certificate(
                        source,
                        &format!("cannot open the PFX ({e}); check AZURE_CLIENT_CERTIFICATE_PASSWORD"),
                    )
                })?;
        let (_, chain) =
            store.private_key_chain().ok_or_else(|| invalid_certificate(source, "the PFX holds no private key"))?;
        let cert = chain
            .certs()
            .first()
            .ok_or_else(|| invalid_certificate(source, "the PFX holds no certificate for its key"))?;
        let key = Secret::new(chain.key().as_der().to_vec());
        Self::from_der(authority_host, tenant, client_id, cert.as_der().to_vec(), &key, source)
    }

    /// From a file: PEM when it reads as PEM, else PFX (with `password`, empty when absent).
    pub fn from_file(
        authority_host: &str,
        tenant: &str,
        client_id: &str,
        path: &std::path::Path,
        password: Option<&Secret<String>>,
    ) -> Result<Self, AzureError> {
        let source = path.display().to_string();
        let data = Secret::new(
            std::fs::read(path).map_err(|e| invalid_certificate(&source, &format!("cannot read it: {e}")))?,
        );
        if data.expose().windows(11).any(|w| w == b"-----BEGIN ") {
            let text = Secret::new(String::from_utf8_lossy(data.expose()).into_owned());
            return Self::from_pem(authority_host, tenant, client_id, &text, &source);
        }
        let empty = Secret::new(String::new());
        Self::from_pfx(authority_host, tenant, client_id, data.expose(), password.unwrap_or(&empty), &source)
    }

    fn from_der(
        authority_host: &str,
        tenant: &str,
        client_id: &str,
        cert_der: Vec<u8>,
        key_der: &Secret<Vec<u8>>,
        source: &str,
    ) -> Result<Self, AzureError> {
        let key = ring::signature::RsaKeyPair::from_pkcs8(key_der.expose())
            .map_err(|e| invalid_certificate(source, &format!("the key is not an RSA key Entra accepts ({e})")))?;
        Ok(Self {
            authority_host: authority_host.trim_end_matches('/').to_owned(),
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            key,
            cert_der,
            cache: TokenCache::default(),
        })
    }

    fn assertion(&self, audience: &str) -> Result<Secret<String>, AzureError> {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let thumbprint = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.cert_der);
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": b64(thumbprint.as_ref())});
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({"aud": audience, "iss": self.client_id, "sub": self.client_id, "jti": crate::uuid(), "nbf": now, "iat": now, "exp": now + 600});
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| AzureError::Auth {
                status: 0,
                error: "invalid_certificate".into(),
                description: "cannot sign the client assertion".into(),
            })?;
        Ok(Secret::new(format!("{input}.{}", b64(&signature))))
    }

    async fn fetch(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority_host, self.tenant);
        let assertion = self.assertion(&url)?;
        request_with_assertion(http, &url, &self.client_id, &assertion, scope).await
    }
}

#[async_trait]
impl Credential for ClientCertificateCredential {
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        self.cache.get_or_fetch(scope, self.fetch(http, scope)).await
    }
}

/// The Azure CLI's own sign-in: `az account get-access-token`, as az users expect azdock to
/// reuse their `az login`.
#[derive(Debug)]
pub struct AzureCliCredential {
    /// The `az` program (a path or a name on PATH).
    program: String,
    tenant: Option<String>,
    cache: TokenCache,
}

impl AzureCliCredential {
    pub fn new(program: &str, tenant: Option<&str>) -> Self {
        Self { program: program.to_owned(), tenant: tenant.map(str::to_owned), cache: TokenCache::default() }
    }
}

#[async_trait]
impl Credential for AzureCliCredential {
    async fn token(&self, _http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        self.cache.get_or_fetch(scope, self.fetch(scope)).await
    }
}

impl AzureCliCredential {
    async fn fetch(&self, scope: &str) -> Result<AccessToken, AzureError> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(["account", "get-access-token", "--output", "json", "--scope", scope]);
        if let Some(tenant) = &self.tenant {
            cmd.args(["--tenant", tenant]);
        }
        let failed = |detail: String| AzureError::Auth { status: 0, error: "azure_cli".into(), description: detail };
        // Not installed or not signed in: another credential may still work.
        let out = cmd.output().await.map_err(|e| AzureError::Unavailable {
            credential: "Azure CLI",
            detail: format!("cannot run `{}`: {e}", self.program),
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(AzureError::Unavailable {
                credential: "Azure CLI",
                detail: format!("`az account get-access-token` failed: {}; run `az login`", stderr.trim()),
            });
        }
        let body: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| failed(format!("`az account get-access-token` printed no JSON: {e}")))?;
        let access = body["accessToken"]
            .as_str()
            .ok_or_else(|| failed("`az account get-access-token` printed no accessToken".into()))?;
        // `expires_on` since az 2.54; older versions print only `expiresOn` (ten minutes then).
        Ok(expiring(access, &body["expires_on"]))
    }
}

/// Workload identity federation: a token another issuer wrote to a file (Kubernetes projects
/// it to `AZURE_FEDERATED_TOKEN_FILE`, CI systems do the same) is the client assertion. The file
/// is read on every exchange because its writer rotates it.
#[derive(Debug)]
pub struct WorkloadIdentityCredential {
    authority_host: String,
    tenant: String,
    client_id: String,
    token_file: std::path::PathBuf,
    cache: TokenCache,
}

impl WorkloadIdentityCredential {
    pub fn new(authority_host: &str, tenant: &str, client_id: &str, token_file: &std::path::Path) -> Self {
        Self {
            authority_host: authority_host.trim_end_matches('/').to_owned(),
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            token_file: token_file.to_owned(),
            cache: TokenCache::default(),
        }
    }

    async fn fetch(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        let assertion = Secret::new(
            tokio::fs::read_to_string(&self.token_file)
                .await
                .map_err(|e| AzureError::Auth {
                    status: 0,
                    error: "workload_identity".into(),
                    description: format!("cannot read the federated token `{}`: {e}", self.token_file.display()),
                })?
                .trim()
                .to_owned(),
        );
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority_host, self.tenant);
        request_with_assertion(http, &url, &self.client_id, &assertion, scope).await
    }
}

#[async_trait]
impl Credential for WorkloadIdentityCredential {
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        self.cache.get_or_fetch(scope, self.fetch(http, scope)).await
    }
}

/// Where a managed identity's tokens come from.
#[derive(Debug)]
pub enum ManagedIdentitySource {
    /// The VM's Instance Metadata Service, at this base URL (`http://169.254.169.254`).
    Imds { base: String },
    /// App Service, Functions, Container Apps: `IDENTITY_ENDPOINT` and the `IDENTITY_HEADER` secret.
    AppService { endpoint: String, header: Secret<String> },
}

/// The managed identity of the machine azdock runs on.
#[derive(Debug)]
pub struct ManagedIdentityCredential {
    source: ManagedIdentitySource,
    /// A user-assigned identity's client id; the system-assigned one when absent.
    client_id: Option<String>,
    cache: TokenCache,
}

/// How long to wait for IMDS: off Azure nothing answers at its link-local address, and the chain
/// must not hang there.
const IMDS_TIMEOUT: Duration = Duration::from_secs(2);

impl ManagedIdentityCredential {
    pub fn new(source: ManagedIdentitySource, client_id: Option<&str>) -> Self {
        Self { source, client_id: client_id.map(str::to_owned), cache: TokenCache::default() }
    }

    /// From the environment: `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, else IMDS (its address
    /// overridable with `AZURE_POD_IDENTITY_AUTHORITY_HOST`, as the Azure SDKs allow).
    pub fn from_env(client_id: Option<&str>) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let source = match (var("IDENTITY_ENDPOINT"), var("IDENTITY_HEADER")) {
            (Some(endpoint), Some(header)) => {
                ManagedIdentitySource::AppService { endpoint, header: Secret::new(header) }
            }
            _ => ManagedIdentitySource::Imds {
                base: var("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                    .unwrap_or_else(|| "http://169.254.169.254".into())
                    .trim_end_matches('/')
                    .to_owned(),
            },
        };
        Self::new(source, client_id)
    }

    async fn fetch(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let mut query = vec![("resource", resource.to_owned())];
        if let Some(id) = &self.client_id {
            query.push(("client_id", id.clone()));
        }
        let (url, request) = match &self.source {
            ManagedIdentitySource::Imds { base } => {
                let url = format!("{base}/metadata/identity/oauth2/token");
                query.push(("api-version", "2019-08-01".into()));
                (url.clone(), http.get(url).header("Metadata", "true").timeout(IMDS_TIMEOUT))
            }
            ManagedIdentitySource::AppService { endpoint, header } => {
                query.push(("api-version", "2019-08-01".into()));
                (endpoint.clone(), http.get(endpoint).header("X-IDENTITY-HEADER", header.expose()))
            }
        };
        let unavailable = |detail: String| AzureError::Unavailable { credential: "managed identity", detail };
        let resp = request.query(&query).send().await.map_err(|e| unavailable(format!("no answer from {url}: {e}")))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.map_err(|e| unavailable(format!("{url} sent no JSON: {e}")))?;
        if status != 200 {
            return Err(AzureError::Auth {
                status,
                error: body["error"].as_str().unwrap_or("managed_identity").to_owned(),
                description: body["error_description"]
                    .as_str()
                    .or(body["message"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        let access = body["access_token"]
            .as_str()
            .ok_or_else(|| AzureError::Protocol { url: url.clone(), detail: "no access_token".into() })?;
        Ok(expiring(access, &body["expires_on"]))
    }
}

#[async_trait]
impl Credential for ManagedIdentityCredential {
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        self.cache.get_or_fetch(scope, self.fetch(http, scope)).await
    }
}

/// Credentials tried in order until one gives a token; the first that works is kept. A
/// credential that is not available here (no `az`, no managed identity) passes to the next; one
/// that is available but refused (a wrong secret) ends the chain with its error.
#[derive(Debug)]
pub struct ChainedCredential {
    cloud: String,
    links: Vec<Box<dyn Credential>>,
    chosen: std::sync::OnceLock<usize>,
}

impl ChainedCredential {
    /// `cloud` names the cloud in the error when no link works.
    pub fn new(cloud: &str, links: Vec<Box<dyn Credential>>) -> Self {
        Self { cloud: cloud.to_owned(), links, chosen: std::sync::OnceLock::new() }
    }

    /// The chain az and the Azure SDKs users expect, after a stored `azdock login`: the
    /// `AZURE_*` environment (secret, certificate, federated token), the Azure CLI when it is
    /// installed, then managed identity. Bad environment settings are errors here, before any
    /// request.
    pub fn from_env(cloud: &crate::Cloud) -> Result<Self, AzureError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut links: Vec<Box<dyn Credential>> = Vec::new();
        let (tenant, client) = (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"));
        if let (Some(tenant), Some(client)) = (&tenant, &client) {
            let authority = &cloud.authority_host;
            if let Some(secret) = var("AZURE_CLIENT_SECRET") {
                links.push(Box::new(ClientSecretCredential::new(authority, tenant, client, Secret::new(secret))));
            } else if let Some(path) = var("AZURE_CLIENT_CERTIFICATE_PATH") {
                let password = var("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(Secret::new);
                links.push(Box::new(ClientCertificateCredential::from_file(
                    authority,
                    tenant,
                    client,
                    std::path::Path::new(&path),
                    password.as_ref(),
                )?));
            } else if let Some(file) = var("AZURE_FEDERATED_TOKEN_FILE") {
                links.push(Box::new(WorkloadIdentityCredential::new(
                    authority,
                    tenant,
                    client,
                    std::path::Path::new(&file),
                )));
            }
        }
        if az_cli_installed() {
            links.push(Box::new(AzureCliCredential::new("az", tenant.as_deref())));
        }
        // A user-assigned identity is chosen with AZURE_CLIENT_ID, as in the Azure SDKs.
        links.push(Box::new(ManagedIdentityCredential::from_env(client.as_deref())));
        Ok(Self::new(&cloud.name, links))
    }
}

#[async_trait]
impl Credential for ChainedCredential {
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        if let Some(&i) = self.chosen.get() {
            return self.links[i].token(http, scope).await;
        }
        let mut tried = Vec::new();
        for (i, link) in self.links.iter().enumerate() {
            match link.token(http, scope).await {
                Ok(token) => {
                    let _ = self.chosen.set(i);
                    return Ok(token);
                }
                Err(AzureError::Unavailable { credential, detail }) => tried.push(format!("{credential}: {detail}")),
                Err(other) => return Err(other),
            }
        }
        Err(AzureError::Auth {
            status: 0,
            error: "no_credentials".into(),
            description: format!(
                "no credentials for {}: run `azdock login --service-principal` or `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (tried {})",
                self.cloud,
                tried.join("; ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn the_cache_fetches_once_per_scope_until_the_token_is_due() {
        // A future runs only when awaited, so `ran` counts real fetches.
        let ran = AtomicU32::new(0);
        let counted = |fresh: bool| {
            let ran = &ran;
            async move {
                ran.fetch_add(1, Ordering::SeqCst);
                let refresh_at = if fresh { Instant::now() + Duration::from_secs(60) } else { Instant::now() };
                Ok(AccessToken { token: Secret::new("t".into()), refresh_at })
            }
        };
        let cache = TokenCache::default();
        cache.get_or_fetch("a", counted(true)).await.unwrap();
        cache.get_or_fetch("a", counted(true)).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1, "a fresh token is reused");
        cache.get_or_fetch("b", counted(false)).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 2, "another scope fetches");
        cache.get_or_fetch("b", counted(true)).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 3, "a token due for refresh is fetched again");
    }
}
