//! Credentials: one trait, so the chain (flags, environment, Azure CLI, managed identity) can
//! grow behind it; tokens are cached in memory until five minutes before they expire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azdock_core::Secret;
use azdock_core::secret::SecretBuf;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::error::AzureError;

mod azure_cli;
mod certificate;
mod chain;
mod managed;
mod persisted;
mod secret;
pub mod stored;
mod user;
mod workload;

pub use azure_cli::{AzureCliCredential, az_cli_installed};
pub use certificate::ClientCertificateCredential;
pub use chain::ChainedCredential;
pub use managed::{ManagedIdentityCredential, ManagedIdentitySource};
pub use persisted::{PersistedCredential, TokenFile};
pub use secret::ClientSecretCredential;
pub use user::{
    DeviceCode, KeepRefreshToken, PUBLIC_CLIENT_ID, RefreshTokenCredential, UserTokens, start_device_code,
    wait_for_person,
};
pub use workload::WorkloadIdentityCredential;

/// Tokens are renewed this long before Entra says they expire.
pub(super) const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A bearer token and when to stop using it.
///
/// The token is shared, not copied: a cached token and the ones handed out are one allocation,
/// wiped when the last of them is dropped.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Arc<Secret<String>>,
    pub refresh_at: Instant,
}

/// Something that can get ARM tokens.
#[async_trait]
pub trait Credential: Send + Sync + std::fmt::Debug {
    /// A token for `scope`, from the cache while it is fresh.
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError>;

    /// Drops what is cached for `scope` after ARM refused its token (revoked, or issued by a
    /// local cloud since reset), so the next call signs in afresh.
    async fn forget(&self, _scope: &str) {}
}

/// Tokens by scope, kept until shortly before they expire.
#[derive(Debug, Default)]
pub(super) struct TokenCache(Mutex<Option<(String, AccessToken)>>);

impl TokenCache {
    async fn clear(&self) {
        *self.0.lock().await = None;
    }

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

/// Entra's client-credentials exchange: POST the form, read the token or Entra's error. A
/// token request changes nothing, so a dropped connection, a 429 or a 5xx is tried again (four
/// attempts, honouring `Retry-After`).
pub(super) async fn request_token(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<AccessToken, AzureError> {
    Ok(token_answer(http, url, form).await?.0)
}

/// Like [`request_token`], with the refresh token a person's sign-in also gets.
pub(super) async fn token_answer(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<(AccessToken, Option<Secret<String>>), AzureError> {
    let body = form_body(form);
    let mut attempt = 0u32;
    let resp = loop {
        attempt += 1;
        let request = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.clone());
        let wait = match request.send().await {
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
    if status != 200 {
        return Err(refusal(status, &resp.json().await.unwrap_or(Value::Null)));
    }
    let answer: TokenAnswer =
        resp.json().await.map_err(|e| AzureError::Protocol { url: url.to_owned(), detail: e.to_string() })?;
    let Some(access) = answer.access_token else {
        return Err(AzureError::Protocol {
            url: url.to_owned(),
            detail: "no access_token in the token response".into(),
        });
    };
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
    let token =
        AccessToken { token: Arc::new(access), refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN) };
    Ok((token, answer.refresh_token))
}

/// Entra's refusal as an error: its body, or whatever a proxy or an outage put there (HTML,
/// ARM's shape), read leniently; the description's first line only (the rest is trace ids).
pub(super) fn refusal(status: u16, body: &Value) -> AzureError {
    let error = body["error"].as_str().or_else(|| body["error"]["code"].as_str()).unwrap_or("unknown_error");
    let description =
        body["error_description"].as_str().or_else(|| body["error"]["message"].as_str()).unwrap_or_default();
    AzureError::Auth {
        status,
        error: error.to_owned(),
        description: description.lines().next().unwrap_or_default().to_owned(),
    }
}

/// Entra's answer to a token request that succeeded: the token goes straight into a [`Secret`].
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<Secret<String>>,
    refresh_token: Option<Secret<String>>,
    expires_in: Option<u64>,
}

/// A form body (`application/x-www-form-urlencoded`) written into a [`SecretBuf`]: the client
/// secret or assertion it carries is never in a `String` of its own, and the buffer is wiped
/// when the last attempt is done with it.
fn form_body(form: &[(&str, &str)]) -> bytes::Bytes {
    use std::io::Write as _;
    let mut buf = SecretBuf::with_capacity(4096);
    for (i, (name, value)) in form.iter().enumerate() {
        let pieces = std::iter::once(if i == 0 { "" } else { "&" })
            .chain(form_urlencoded::byte_serialize(name.as_bytes()))
            .chain(std::iter::once("="))
            .chain(form_urlencoded::byte_serialize(value.as_bytes()));
        for piece in pieces {
            // Writing to memory cannot fail.
            let _ = buf.write_all(piece.as_bytes());
        }
    }
    bytes::Bytes::from_owner(buf)
}

/// Client credentials with a signed JWT instead of a secret (a certificate's assertion, or a
/// federated token).
pub(super) async fn request_with_assertion(
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
pub(super) fn expiring(access: &str, expires_on: &Value) -> AccessToken {
    let expires_on = expires_on.as_i64().or_else(|| expires_on.as_str().and_then(|s| s.parse().ok()));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let lifetime = Duration::from_secs(u64::try_from(expires_on.map_or(600, |e| e - now)).unwrap_or(0));
    AccessToken {
        token: Arc::new(Secret::new(access.to_owned())),
        refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
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
                Ok(AccessToken { token: Arc::new(Secret::new("t".into())), refresh_at })
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
