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

/// A service principal with a client secret (`client_credentials` on Entra's v2 endpoint).
#[derive(Debug)]
pub struct ClientSecretCredential {
    authority_host: String,
    tenant: String,
    client_id: String,
    secret: Secret<String>,
    cache: Mutex<Option<(String, AccessToken)>>,
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
            cache: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Credential for ClientSecretCredential {
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        let mut cache = self.cache.lock().await;
        if let Some((cached_scope, token)) = cache.as_ref()
            && cached_scope == scope
            && Instant::now() < token.refresh_at
        {
            return Ok(token.clone());
        }
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority_host, self.tenant);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("client_secret", self.secret.expose()),
            ("scope", scope),
        ];
        let resp = http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| AzureError::Transport { url: url.clone(), detail: e.to_string() })?;
        let status = resp.status().as_u16();
        let body: Value =
            resp.json().await.map_err(|e| AzureError::Protocol { url: url.clone(), detail: e.to_string() })?;
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
            return Err(AzureError::Protocol { url, detail: "no access_token in the token response".into() });
        };
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(3600));
        let token = AccessToken {
            token: Secret::new(access.to_owned()),
            refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
        };
        *cache = Some((scope.to_owned(), token.clone()));
        Ok(token)
    }
}
