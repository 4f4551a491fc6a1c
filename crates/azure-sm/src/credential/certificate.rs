//! A service principal with a certificate: a signed client assertion per token request.

// One credential of the parent module: it shares its token plumbing, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

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

pub(super) fn invalid_certificate(source: &str, detail: &str) -> AzureError {
    AzureError::Auth { status: 0, error: "invalid_certificate".into(), description: format!("`{source}`: {detail}") }
}

/// The base64 body of the first PEM block with this label.
pub(super) fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
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
