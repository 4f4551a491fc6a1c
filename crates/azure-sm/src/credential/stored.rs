//! Stored sign-ins: how azdock signs in to each cloud between runs (a service principal's
//! secret or certificate, the Azure CLI, a managed identity), tagged by kind, in one 0600 file
//! changed under its lock — never in the config file.

use std::path::PathBuf;
use std::sync::Arc;

use azdock_core::Secret;
use azdock_core::secret::Wipe as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::credential::Credential;
use crate::error::AzureError;

/// A stored sign-in for one cloud, as `credentials.json` keeps it: tagged by `kind`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum StoredLogin {
    /// A service principal with a client secret.
    #[serde(rename = "clientSecret")]
    Secret {
        #[serde(rename = "tenantId")]
        tenant: String,
        client_id: String,
        #[serde(rename = "clientSecret", serialize_with = "azdock_core::secret::expose")]
        secret: Arc<Secret<String>>,
    },
    /// A service principal with a certificate (the PEM or PFX file's path, and a PFX's password).
    #[serde(rename = "clientCertificate")]
    Certificate {
        #[serde(rename = "tenantId")]
        tenant: String,
        client_id: String,
        #[serde(rename = "certificatePath")]
        path: PathBuf,
        #[serde(
            rename = "certificatePassword",
            default,
            serialize_with = "azdock_core::secret::expose_option",
            skip_serializing_if = "Option::is_none"
        )]
        password: Option<Secret<String>>,
    },
    /// The Azure CLI's sign-in, optionally in one tenant.
    AzureCli {
        #[serde(rename = "tenantId", default)]
        tenant: Option<String>,
    },
    /// The machine's managed identity (a user-assigned one by its client id).
    ManagedIdentity {
        #[serde(default)]
        client_id: Option<String>,
    },
    /// A person, signed in with a device code: their refresh token, replaced in the store as
    /// Entra rotates it.
    User {
        #[serde(rename = "tenantId")]
        tenant: String,
        client_id: String,
        #[serde(rename = "refreshToken", serialize_with = "azdock_core::secret::expose")]
        refresh_token: Arc<Secret<String>>,
    },
}

impl StoredLogin {
    /// The credential for this sign-in against `authority_host`; a client secret is shared with
    /// it, not copied.
    pub fn credential(&self, authority_host: &str) -> Result<Arc<dyn Credential>, AzureError> {
        Ok(match self {
            StoredLogin::Secret { tenant, client_id, secret } => {
                Arc::new(crate::ClientSecretCredential::new(authority_host, tenant, client_id, Arc::clone(secret)))
            }
            StoredLogin::Certificate { tenant, client_id, path, password } => {
                Arc::new(crate::ClientCertificateCredential::from_file(
                    authority_host,
                    tenant,
                    client_id,
                    path,
                    password.as_ref(),
                )?)
            }
            StoredLogin::ManagedIdentity { client_id } => {
                Arc::new(crate::ManagedIdentityCredential::from_env(client_id.as_deref()))
            }
            StoredLogin::AzureCli { tenant } => Arc::new(crate::AzureCliCredential::new("az", tenant.as_deref())),
            // Rotated refresh tokens are kept only in memory here; [`LoginStore::user_credential`]
            // writes them back.
            StoredLogin::User { tenant, client_id, refresh_token } => {
                Arc::new(crate::credential::RefreshTokenCredential::new(
                    authority_host,
                    tenant,
                    client_id,
                    Arc::clone(refresh_token),
                    Box::new(|_| {}),
                ))
            }
        })
    }
}

/// What can go wrong with the stored sign-ins: a damaged file (which the user repairs or moves
/// away; it is never taken for empty) or one that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot read the stored sign-ins in `{}`: {why}; repair it, or move it away and sign in again with `azdock login`",
        path.display()
    )]
    Corrupt { path: PathBuf, why: String },
    #[error("cannot store the sign-in in `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl StoreError {
    /// Whether the user has to act on the file (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }
}

impl From<std::io::Error> for StoreError {
    fn from(source: std::io::Error) -> Self {
        Self::Io { path: PathBuf::new(), source }
    }
}

/// `credentials.json` (0600): the stored sign-in of each cloud, by lower-cased cloud name.
#[derive(Debug, Clone)]
pub struct LoginStore {
    path: PathBuf,
}

impl LoginStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn corrupt(&self, why: impl Into<String>) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), why: why.into() }
    }

    /// Every stored sign-in. A file that is not a JSON object is refused, never taken for
    /// empty: the next login would overwrite it and drop the other clouds' sign-ins.
    fn parse_all(&self, data: &[u8]) -> Result<Map<String, Value>, StoreError> {
        match serde_json::from_slice::<Value>(data) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(self.corrupt("it is not a JSON object")),
            Err(e) => Err(self.corrupt(format!("it is not valid JSON ({e})"))),
        }
    }

    /// Sets (or with `None` removes) the sign-in of `cloud` under the file's lock, so two logins
    /// at once both land; returns whether there was one before.
    pub fn change(&self, cloud: &str, login: Option<&StoredLogin>) -> Result<bool, StoreError> {
        let mut had = false;
        azdock_files::update(&self.path, 0o600, |old| -> Result<Option<Vec<u8>>, StoreError> {
            let mut all = match old {
                Some(data) => self.parse_all(&data)?,
                None => Map::new(),
            };
            let key = cloud.to_ascii_lowercase();
            had = match login {
                Some(login) => {
                    let value = serde_json::to_value(login).map_err(|e| self.corrupt(e.to_string()))?;
                    all.insert(key, value).is_some()
                }
                None => all.remove(&key).is_some(),
            };
            if login.is_none() && !had {
                return Ok(None);
            }
            Ok(Some(serde_json::to_vec_pretty(&Value::Object(all)).map_err(|e| self.corrupt(e.to_string()))?))
        })
        .map_err(|e| match e {
            StoreError::Io { source, .. } => StoreError::Io { path: self.path.clone(), source },
            other @ StoreError::Corrupt { .. } => other,
        })?;
        Ok(had)
    }

    /// A person's credential whose rotated refresh tokens replace the stored one (under the
    /// file's lock), so the next run starts from the newest.
    pub fn user_credential(
        &self,
        cloud: &str,
        authority_host: &str,
        tenant: &str,
        client_id: &str,
        refresh_token: Arc<Secret<String>>,
    ) -> crate::credential::RefreshTokenCredential {
        let (store, cloud_name, tenant_owned, client) =
            (self.clone(), cloud.to_owned(), tenant.to_owned(), client_id.to_owned());
        let keep = move |rotated: &Arc<Secret<String>>| {
            let login = StoredLogin::User {
                tenant: tenant_owned.clone(),
                client_id: client.clone(),
                refresh_token: Arc::clone(rotated),
            };
            if let Err(e) = store.change(&cloud_name, Some(&login)) {
                tracing::warn!("cannot keep the renewed sign-in: {e}");
            }
        };
        crate::credential::RefreshTokenCredential::new(authority_host, tenant, client_id, refresh_token, Box::new(keep))
    }

    /// The stored sign-in for a cloud, if any. Entries written before sign-ins were tagged have
    /// no `kind`: those are client secrets.
    pub fn get(&self, cloud: &str) -> Result<Option<StoredLogin>, StoreError> {
        let mut data = match std::fs::read(&self.path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path: self.path.clone(), source }),
        };
        let parsed = self.parse_all(&data);
        // The file holds other clouds' secrets too: its bytes and every entry not returned are
        // wiped, and the one returned moves (it is not copied) into the sign-in.
        data.wipe();
        let mut all = parsed?;
        let entry = all.remove(&cloud.to_ascii_lowercase());
        Value::Object(all).wipe();
        let Some(mut entry) = entry else { return Ok(None) };
        if let Some(map) = entry.as_object_mut() {
            map.entry("kind").or_insert_with(|| Value::String("clientSecret".into()));
        }
        serde_json::from_value(entry).map(Some).map_err(|e| {
            self.corrupt(format!("the sign-in for {cloud} is not readable ({e}); run `azdock login` again"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ins_are_kept_per_cloud_tagged_and_a_damaged_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = LoginStore::new(dir.path().join("credentials.json"));
        assert_eq!(store.get("AzureCloud").unwrap(), None);
        let cli = StoredLogin::AzureCli { tenant: Some("t".into()) };
        assert!(!store.change("AzureCloud", Some(&cli)).unwrap());
        let sp = StoredLogin::Secret {
            tenant: "t".into(),
            client_id: "c".into(),
            secret: Arc::new(Secret::new("s3cret".into())),
        };
        assert!(!store.change("local", Some(&sp)).unwrap());
        assert_eq!(store.get("azurecloud").unwrap(), Some(cli));
        assert_eq!(store.get("LOCAL").unwrap(), Some(sp));
        let text = std::fs::read_to_string(dir.path().join("credentials.json")).unwrap();
        assert!(text.contains("\"kind\": \"azureCli\"") && text.contains("\"kind\": \"clientSecret\""), "{text}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("credentials.json")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(store.change("local", None).unwrap());
        assert!(!store.change("local", None).unwrap());
        // An entry from before sign-ins were tagged is a client secret.
        std::fs::write(
            dir.path().join("credentials.json"),
            r#"{"old": {"tenantId": "t", "clientId": "c", "clientSecret": "s"}}"#,
        )
        .unwrap();
        assert!(matches!(store.get("old").unwrap(), Some(StoredLogin::Secret { .. })));
        for damaged in ["[]", "{not json", r#"{"x": {"kind": "nonsense"}}"#] {
            std::fs::write(dir.path().join("credentials.json"), damaged).unwrap();
            let e = store
                .get("x")
                .and_then(|_| store.change("y", Some(&StoredLogin::AzureCli { tenant: None })))
                .unwrap_err();
            assert!(e.is_usage() && e.to_string().contains("repair it"), "{damaged}: {e}");
            assert_eq!(std::fs::read_to_string(dir.path().join("credentials.json")).unwrap(), damaged, "left alone");
        }
    }
}
