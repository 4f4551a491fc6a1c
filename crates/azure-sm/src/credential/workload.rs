//! Workload identity federation: another issuer's token, from a file, as the client assertion.

// One credential of the parent module: it shares its token plumbing, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

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
