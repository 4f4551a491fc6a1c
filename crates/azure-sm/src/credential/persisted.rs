//! Access tokens and the chosen subscription kept between runs, in `tokens.json` (0600) beside
//! the stored sign-ins and changed under its lock: a warm command asks Entra nothing it already
//! knows and ARM only for its own work.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azdock_core::Secret;
use azdock_core::secret::Wipe as _;
use serde::{Deserialize, Serialize};

use super::{AccessToken, Credential, REFRESH_MARGIN, TokenCache};
use crate::error::AzureError;

/// `tokens.json`: access tokens by sign-in and scope, and the subscription each sign-in works
/// in. It is a cache: a file that cannot be read is taken for empty and rewritten.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Contents {
    #[serde(default)]
    tokens: BTreeMap<String, Entry>,
    #[serde(default)]
    subscriptions: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(serialize_with = "azdock_core::secret::expose")]
    access_token: Arc<Secret<String>>,
    /// Unix seconds.
    expires_on: i64,
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The key of a token: the sign-in's identity and the scope, which never holds a secret.
fn token_key(identity: &str, scope: &str) -> String {
    format!("{identity} {scope}")
}

impl TokenFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn read(&self) -> Contents {
        let Ok(mut data) = std::fs::read(&self.path) else { return Contents::default() };
        let contents = serde_json::from_slice(&data).unwrap_or_else(|e| {
            tracing::debug!(path = %self.path.display(), error = %e, "an unreadable token cache is taken for empty");
            Contents::default()
        });
        data.wipe();
        contents
    }

    /// Changes the file under its lock; a failure to write it costs only a cache miss later.
    fn change(&self, f: impl FnOnce(&mut Contents) -> bool) {
        let result = azdock_files::update(&self.path, 0o600, |old| -> std::io::Result<Option<Vec<u8>>> {
            let mut contents = old
                .and_then(|mut data| {
                    let parsed = serde_json::from_slice::<Contents>(&data).ok();
                    data.wipe();
                    parsed
                })
                .unwrap_or_default();
            if !f(&mut contents) {
                return Ok(None);
            }
            // Tokens past their expiry leave the file as it is rewritten.
            let now = unix_now();
            contents.tokens.retain(|_, e| e.expires_on > now);
            serde_json::to_vec(&contents).map(Some).map_err(std::io::Error::other)
        });
        if let Err(e) = result {
            tracing::debug!(path = %self.path.display(), error = %e, "cannot update the token cache");
        }
    }

    /// A token for `identity` and `scope` that is good for more than [`REFRESH_MARGIN`].
    pub fn token(&self, identity: &str, scope: &str) -> Option<AccessToken> {
        let contents = self.read();
        let entry = contents.tokens.get(&token_key(identity, scope))?;
        let left = entry.expires_on - unix_now() - i64::try_from(REFRESH_MARGIN.as_secs()).unwrap_or(0);
        let left = Duration::from_secs(u64::try_from(left).ok().filter(|l| *l > 0)?);
        Some(AccessToken { token: Arc::clone(&entry.access_token), refresh_at: Instant::now() + left })
    }

    /// Keeps a token until it expires.
    pub fn store(&self, identity: &str, scope: &str, token: &AccessToken) {
        let left = token.refresh_at.saturating_duration_since(Instant::now()) + REFRESH_MARGIN;
        let expires_on = unix_now() + i64::try_from(left.as_secs()).unwrap_or(0);
        self.change(|c| {
            c.tokens.insert(token_key(identity, scope), Entry { access_token: Arc::clone(&token.token), expires_on });
            true
        });
    }

    /// Drops a token ARM refused (revoked, or from a cloud that was reset).
    pub fn forget(&self, identity: &str, scope: &str) {
        self.change(|c| c.tokens.remove(&token_key(identity, scope)).is_some());
    }

    /// The subscription the sign-in works in, as remembered.
    pub fn subscription(&self, identity: &str) -> Option<String> {
        self.read().subscriptions.remove(identity)
    }

    pub fn remember_subscription(&self, identity: &str, subscription: &str) {
        self.change(|c| {
            c.subscriptions.insert(identity.to_owned(), subscription.to_owned()).as_deref() != Some(subscription)
        });
    }

    /// Forgets every token and subscription of the sign-ins whose identity starts with
    /// `prefix` (a cloud's: at logout, or at a new login, which keeps its own as `keep`).
    pub fn clear(&self, prefix: &str, keep: Option<&str>) {
        let gone = |identity: &str| identity.starts_with(prefix) && Some(identity) != keep;
        self.change(|c| {
            let before = c.tokens.len() + c.subscriptions.len();
            c.tokens.retain(|k, _| !gone(k.split_once(' ').map_or(k.as_str(), |(identity, _)| identity)));
            c.subscriptions.retain(|k, _| !gone(k));
            before != c.tokens.len() + c.subscriptions.len()
        });
    }
}

/// A credential whose tokens outlive the process: from memory, else from the token file, else
/// from the credential it wraps (and then kept in both).
#[derive(Debug)]
pub struct PersistedCredential {
    inner: Arc<dyn Credential>,
    file: TokenFile,
    identity: String,
    memory: TokenCache,
}

impl PersistedCredential {
    /// `identity` names the sign-in (cloud, kind, tenant, client) and holds no secret.
    pub fn new(inner: Arc<dyn Credential>, file: TokenFile, identity: String) -> Self {
        Self { inner, file, identity, memory: TokenCache::default() }
    }
}

#[async_trait]
impl Credential for PersistedCredential {
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        self.memory
            .get_or_fetch(scope, async {
                if let Some(token) = self.file.token(&self.identity, scope) {
                    return Ok(token);
                }
                let token = self.inner.token(http, scope).await?;
                self.file.store(&self.identity, scope, &token);
                Ok(token)
            })
            .await
    }

    async fn forget(&self, scope: &str) {
        self.memory.clear().await;
        self.file.forget(&self.identity, scope);
        self.inner.forget(scope).await;
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug, Default)]
    struct Counting(AtomicU32);

    #[async_trait]
    impl Credential for Counting {
        async fn token(&self, _: &reqwest::Client, _: &str) -> Result<AccessToken, AzureError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken {
                token: Arc::new(Secret::new(format!("token-{n}"))),
                refresh_at: Instant::now() + Duration::from_secs(3000),
            })
        }
    }

    #[tokio::test]
    async fn a_token_outlives_the_process_until_refused_or_logged_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::new(dir.path().join("tokens.json"));
        let http = reqwest::Client::new();
        let counting = Arc::new(Counting::default());
        let first = PersistedCredential::new(counting.clone(), file.clone(), "cloud|secret|t|c".into());
        assert_eq!(first.token(&http, "s").await.unwrap().token.expose(), "token-0");
        assert_eq!(std::fs::metadata(dir.path().join("tokens.json")).unwrap().permissions().mode() & 0o777, 0o600);
        // Another run: the file answers, the credential is not asked.
        let second = PersistedCredential::new(counting.clone(), file.clone(), "cloud|secret|t|c".into());
        let token = second.token(&http, "s").await.unwrap();
        assert_eq!(token.token.expose(), "token-0");
        assert!(token.refresh_at > Instant::now() + Duration::from_secs(2600), "it keeps its expiry");
        assert_eq!(counting.0.load(Ordering::SeqCst), 1);
        // Another scope or sign-in is another token.
        assert_eq!(second.token(&http, "other").await.unwrap().token.expose(), "token-1");
        let someone = PersistedCredential::new(counting.clone(), file.clone(), "cloud|secret|t|d".into());
        assert_eq!(someone.token(&http, "s").await.unwrap().token.expose(), "token-2");
        // A refused token is forgotten in memory and on disk.
        assert_eq!(second.token(&http, "s").await.unwrap().token.expose(), "token-0");
        second.forget("s").await;
        assert_eq!(second.token(&http, "s").await.unwrap().token.expose(), "token-3");
        let third = PersistedCredential::new(counting.clone(), file.clone(), "cloud|secret|t|c".into());
        assert_eq!(third.token(&http, "s").await.unwrap().token.expose(), "token-3");

        // Logging out of a cloud with tokens and no remembered subscription clears them.
        file.clear("cloud|", Some("cloud|secret|t|c"));
        assert!(file.token("cloud|secret|t|d", "s").is_none() && file.token("cloud|secret|t|c", "s").is_some());
        file.store("cloud|secret|t|d", "s", &token);

        file.remember_subscription("cloud|secret|t|c", "sub-1");
        assert_eq!(file.subscription("cloud|secret|t|c").as_deref(), Some("sub-1"));
        assert_eq!(file.subscription("cloud|secret|t|d"), None);
        file.remember_subscription("elsewhere|secret|t|c", "sub-2");
        file.remember_subscription("cloud|secret|t|d", "sub-3");
        file.clear("cloud|", Some("cloud|secret|t|d"));
        assert_eq!(file.subscription("cloud|secret|t|d").as_deref(), Some("sub-3"), "the sign-in kept");
        assert!(file.token("cloud|secret|t|d", "s").is_some());
        file.clear("cloud|", None);
        assert_eq!(file.subscription("cloud|secret|t|c"), None);
        assert!(file.token("cloud|secret|t|c", "s").is_none() && file.token("cloud|secret|t|d", "s").is_none());
        assert_eq!(file.subscription("elsewhere|secret|t|c").as_deref(), Some("sub-2"), "other clouds stay");
    }

    #[test]
    fn tokens_near_expiry_are_not_used_and_a_damaged_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let file = TokenFile::new(path.clone());
        let soon = AccessToken {
            token: Arc::new(Secret::new("t".into())),
            refresh_at: Instant::now() + Duration::from_secs(10),
        };
        file.store("i", "s", &soon);
        assert!(file.token("i", "s").is_some());
        let due = AccessToken { token: Arc::new(Secret::new("t".into())), refresh_at: Instant::now() };
        file.store("i", "s", &due);
        assert!(file.token("i", "s").is_none(), "a token inside the refresh margin is fetched again");
        // A token whose expiry has passed by the clock is not used, whatever the file says.
        let past = time::OffsetDateTime::now_utc().unix_timestamp() - 10;
        std::fs::write(&path, format!(r#"{{"tokens": {{"i s": {{"accessToken": "t", "expiresOn": {past}}}}}}}"#))
            .unwrap();
        assert!(file.token("i", "s").is_none());
        let future = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        std::fs::write(&path, format!(r#"{{"tokens": {{"i s": {{"accessToken": "t", "expiresOn": {future}}}}}}}"#))
            .unwrap();
        let left = file.token("i", "s").unwrap().refresh_at.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(3200) && left <= Duration::from_secs(3300), "{left:?}");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(file.token("i", "s").is_none());
        file.store("i", "s", &soon);
        assert!(file.token("i", "s").is_some(), "a damaged cache is rewritten");
    }
}
