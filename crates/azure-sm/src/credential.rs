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

/// Entra's client-credentials exchange: POST the form, read the token or Entra's error.
async fn request_token(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Result<AccessToken, AzureError> {
    let resp = http
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| AzureError::Transport { url: url.to_owned(), detail: e.to_string() })?;
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
        let invalid = |detail: &str| AzureError::Auth {
            status: 0,
            error: "invalid_certificate".into(),
            description: format!("`{source}`: {detail}"),
        };
        let text = pem.expose();
        let cert_der = pem_block(text, "CERTIFICATE").ok_or_else(|| invalid("no CERTIFICATE block"))?;
        let key_der = pem_block(text, "PRIVATE KEY").ok_or_else(|| {
            invalid("no unencrypted PKCS#8 key (BEGIN PRIVATE KEY); convert it with `openssl pkcs8 -topk8 -nocrypt`")
        })?;
        // Wiped when dropped.
        let key_der = Secret::new(key_der);
        let key = ring::signature::RsaKeyPair::from_pkcs8(key_der.expose())
            .map_err(|e| invalid(&format!("the key is not an RSA key Entra accepts ({e})")))?;
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
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion.expose()),
            ("scope", scope),
        ];
        request_token(http, &url, &form).await
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
        let out = cmd.output().await.map_err(|e| {
            failed(format!("cannot run `{}`: {e}; install the Azure CLI or sign in another way", self.program))
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(failed(format!("`az account get-access-token` failed: {}; run `az login`", stderr.trim())));
        }
        let body: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| failed(format!("`az account get-access-token` printed no JSON: {e}")))?;
        let access = body["accessToken"]
            .as_str()
            .ok_or_else(|| failed("`az account get-access-token` printed no accessToken".into()))?;
        // `expires_on` (unix seconds) since az 2.54; older versions print only `expiresOn`.
        let expires_on =
            body["expires_on"].as_i64().or_else(|| body["expires_on"].as_str().and_then(|s| s.parse().ok()));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let lifetime = Duration::from_secs(u64::try_from(expires_on.map_or(600, |e| e - now)).unwrap_or(0));
        let token = AccessToken {
            token: Secret::new(access.to_owned()),
            refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
        };
        Ok(token)
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
