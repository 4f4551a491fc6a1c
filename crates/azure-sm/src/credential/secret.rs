//! A service principal with a client secret.

// One credential of the parent module: it shares its token plumbing, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

/// A service principal with a client secret (`client_credentials` on Entra's v2 endpoint).
#[derive(Debug)]
pub struct ClientSecretCredential {
    authority_host: String,
    tenant: String,
    client_id: String,
    secret: Arc<Secret<String>>,
    cache: TokenCache,
}

impl ClientSecretCredential {
    pub fn new(authority_host: &str, tenant: &str, client_id: &str, secret: impl Into<Arc<Secret<String>>>) -> Self {
        Self {
            authority_host: authority_host.trim_end_matches('/').to_owned(),
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            secret: secret.into(),
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
