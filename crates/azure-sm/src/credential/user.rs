//! A person's sign-in: Entra's device-code flow (RFC 8628 — a code entered on another device,
//! the token endpoint polled until the person approves), then the refresh token it returned,
//! used silently for access tokens and replaced by each new one Entra hands out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azdock_core::Secret;
use serde::Deserialize;

use super::{AccessToken, Credential, TokenCache, token_answer};
use crate::error::AzureError;

/// The Azure CLI's public client id: what Microsoft's tools (and azure-identity's interactive
/// credentials) sign a person in with.
pub const PUBLIC_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A code for the person to enter, and what the client polls with.
#[derive(Debug, Deserialize)]
pub struct DeviceCode {
    pub user_code: String,
    pub verification_uri: String,
    /// Entra's own instructions for the person.
    #[serde(default)]
    pub message: String,
    /// What the client polls with (Entra's `device_code`).
    #[serde(rename = "device_code")]
    secret: Secret<String>,
    #[serde(default = "default_interval")]
    interval: u64,
    expires_in: u64,
}

impl DeviceCode {
    /// What the client polls with: a secret, never shown to the person.
    pub fn secret(&self) -> &Secret<String> {
        &self.secret
    }
}

fn default_interval() -> u64 {
    5
}

/// What a person's sign-in gives: an access token and the refresh token for the next ones.
#[derive(Debug)]
pub struct UserTokens {
    pub access: AccessToken,
    pub refresh: Secret<String>,
}

/// Scopes a person's token is asked with: the resource's, and `offline_access` for a refresh
/// token.
fn user_scope(scope: &str) -> String {
    format!("{scope} offline_access")
}

/// `POST {authority}/{tenant}/oauth2/v2.0/devicecode`.
pub async fn start_device_code(
    http: &reqwest::Client,
    authority_host: &str,
    tenant: &str,
    client_id: &str,
    scope: &str,
) -> Result<DeviceCode, AzureError> {
    let url = format!("{}/{tenant}/oauth2/v2.0/devicecode", authority_host.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .form(&[("client_id", client_id), ("scope", &user_scope(scope))])
        .send()
        .await
        .map_err(|e| AzureError::Transport { url: url.clone(), detail: e.to_string() })?;
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if status != 200 {
        return Err(super::refusal(status, &body));
    }
    serde_json::from_value(body).map_err(|e| AzureError::Protocol { url, detail: e.to_string() })
}

/// Polls the token endpoint until the person approves the code (or declines, or it expires),
/// every `interval` seconds and five more after each `slow_down`, as RFC 8628 asks.
pub async fn wait_for_person(
    http: &reqwest::Client,
    authority_host: &str,
    tenant: &str,
    client_id: &str,
    code: &DeviceCode,
) -> Result<UserTokens, AzureError> {
    let url = format!("{}/{tenant}/oauth2/v2.0/token", authority_host.trim_end_matches('/'));
    let deadline = Instant::now() + Duration::from_secs(code.expires_in);
    let mut interval = Duration::from_secs(code.interval.max(1));
    loop {
        tokio::time::sleep(interval).await;
        let form = [("grant_type", DEVICE_CODE_GRANT), ("client_id", client_id), ("device_code", code.secret.expose())];
        match token_answer(http, &url, &form).await {
            Ok((access, Some(refresh))) => return Ok(UserTokens { access, refresh }),
            Ok((_, None)) => {
                return Err(AzureError::Protocol { url, detail: "the sign-in gave no refresh token".into() });
            }
            Err(AzureError::Auth { error, .. }) if error == "authorization_pending" && Instant::now() < deadline => {}
            Err(AzureError::Auth { error, .. }) if error == "slow_down" && Instant::now() < deadline => {
                interval += Duration::from_secs(5);
            }
            Err(AzureError::Auth { error, .. })
                if matches!(error.as_str(), "authorization_pending" | "slow_down" | "expired_token") =>
            {
                return Err(AzureError::Auth {
                    status: 400,
                    error: "expired_token".into(),
                    description: format!(
                        "the code {} expired before it was entered; run `azdock login` again",
                        code.user_code
                    ),
                });
            }
            Err(AzureError::Auth { status, error, .. }) if error == "authorization_declined" => {
                return Err(AzureError::Auth { status, error, description: "the sign-in was declined".into() });
            }
            Err(e) => return Err(e),
        }
    }
}

/// What keeps a renewed refresh token (writes it back to the stored sign-in).
pub type KeepRefreshToken = Box<dyn Fn(&Arc<Secret<String>>) + Send + Sync>;

/// Access tokens from a person's refresh token. Each new refresh token Entra hands out replaces
/// the old one, and `on_rotate` is told so it can be stored.
pub struct RefreshTokenCredential {
    authority_host: String,
    tenant: String,
    client_id: String,
    refresh: Mutex<Arc<Secret<String>>>,
    on_rotate: KeepRefreshToken,
    cache: TokenCache,
}

impl std::fmt::Debug for RefreshTokenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenCredential")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl RefreshTokenCredential {
    pub fn new(
        authority_host: &str,
        tenant: &str,
        client_id: &str,
        refresh: Arc<Secret<String>>,
        on_rotate: KeepRefreshToken,
    ) -> Self {
        Self {
            authority_host: authority_host.trim_end_matches('/').to_owned(),
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            refresh: Mutex::new(refresh),
            on_rotate,
            cache: TokenCache::default(),
        }
    }

    async fn fetch(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority_host, self.tenant);
        let refresh = Arc::clone(&self.refresh.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let scope = user_scope(scope);
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("refresh_token", refresh.expose()),
            ("scope", scope.as_str()),
        ];
        let (access, rotated) = token_answer(http, &url, &form).await.map_err(|e| match e {
            AzureError::Auth { status, error, description } if error == "invalid_grant" => AzureError::Auth {
                status,
                error,
                description: format!(
                    "{description} — the sign-in has expired or was revoked: sign in again with `azdock login`"
                ),
            },
            other => other,
        })?;
        if let Some(rotated) = rotated {
            let rotated = Arc::new(rotated);
            (self.on_rotate)(&rotated);
            *self.refresh.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = rotated;
        }
        Ok(access)
    }
}

#[async_trait]
impl Credential for RefreshTokenCredential {
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        self.cache.get_or_fetch(scope, self.fetch(http, scope)).await
    }

    async fn forget(&self, _scope: &str) {
        self.cache.clear().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_code_without_an_interval_is_polled_every_five_seconds() {
        let code: DeviceCode = serde_json::from_value(serde_json::json!({
            "user_code": "AB-CD", "verification_uri": "https://x", "device_code": "secret", "expires_in": 900
        }))
        .unwrap();
        assert_eq!((code.interval, code.expires_in, code.secret.expose().as_str()), (5, 900, "secret"));
        assert_eq!(
            user_scope("https://management.azure.com/.default"),
            "https://management.azure.com/.default offline_access"
        );
    }
}
