//! The Azure CLI's own sign-in (`az account get-access-token`).

// One credential of the parent module: it shares its token plumbing, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

/// Whether the Azure CLI (`az`) is on PATH.
pub fn az_cli_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("az").is_file()))
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
        // Not installed or not signed in: another credential may still work.
        let out = cmd.output().await.map_err(|e| AzureError::Unavailable {
            credential: "Azure CLI",
            detail: format!("cannot run `{}`: {e}", self.program),
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(AzureError::Unavailable {
                credential: "Azure CLI",
                detail: format!("`az account get-access-token` failed: {}; run `az login`", stderr.trim()),
            });
        }
        let body: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| failed(format!("`az account get-access-token` printed no JSON: {e}")))?;
        let access = body["accessToken"]
            .as_str()
            .ok_or_else(|| failed("`az account get-access-token` printed no accessToken".into()))?;
        // `expires_on` since az 2.54; older versions print only `expiresOn` (ten minutes then).
        Ok(expiring(access, &body["expires_on"]))
    }
}
