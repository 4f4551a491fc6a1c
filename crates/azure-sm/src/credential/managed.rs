//! The managed identity of the machine azdock runs on (IMDS, App Service, Arc).

// One credential of the parent module: it shares its token plumbing, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

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
pub(super) const IMDS_TIMEOUT: Duration = Duration::from_secs(2);

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
