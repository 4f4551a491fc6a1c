//! Credentials tried in order until one gives a token.

// One credential of the parent module: it shares its token plumbing, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

/// Credentials tried in order until one gives a token; the first that works is kept. A
/// credential that is not available here (no `az`, no managed identity) passes to the next; one
/// that is available but refused (a wrong secret) ends the chain with its error.
#[derive(Debug)]
pub struct ChainedCredential {
    cloud: String,
    links: Vec<Box<dyn Credential>>,
    chosen: std::sync::OnceLock<usize>,
}

impl ChainedCredential {
    /// `cloud` names the cloud in the error when no link works.
    pub fn new(cloud: &str, links: Vec<Box<dyn Credential>>) -> Self {
        Self { cloud: cloud.to_owned(), links, chosen: std::sync::OnceLock::new() }
    }

    /// The chain az and the Azure SDKs users expect, after a stored `azdock login`: the
    /// `AZURE_*` environment (secret, certificate, federated token), the Azure CLI when it is
    /// installed, then managed identity. Bad environment settings are errors here, before any
    /// request.
    pub fn from_env(cloud: &crate::Cloud) -> Result<Self, AzureError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut links: Vec<Box<dyn Credential>> = Vec::new();
        let (tenant, client) = (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"));
        check_env_credential(&var)?;
        if let (Some(tenant), Some(client)) = (&tenant, &client) {
            let authority = &cloud.authority_host;
            if let Some(secret) = var("AZURE_CLIENT_SECRET") {
                links.push(Box::new(ClientSecretCredential::new(authority, tenant, client, Secret::new(secret))));
            } else if let Some(path) = var("AZURE_CLIENT_CERTIFICATE_PATH") {
                let password = var("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(Secret::new);
                links.push(Box::new(ClientCertificateCredential::from_file(
                    authority,
                    tenant,
                    client,
                    std::path::Path::new(&path),
                    password.as_ref(),
                )?));
            } else if let Some(file) = var("AZURE_FEDERATED_TOKEN_FILE") {
                links.push(Box::new(WorkloadIdentityCredential::new(
                    authority,
                    tenant,
                    client,
                    std::path::Path::new(&file),
                )));
            }
        }
        if az_cli_installed() {
            links.push(Box::new(AzureCliCredential::new("az", tenant.as_deref())));
        }
        // A user-assigned identity is chosen with AZURE_CLIENT_ID, as in the Azure SDKs.
        links.push(Box::new(ManagedIdentityCredential::from_env(client.as_deref())));
        Ok(Self::new(&cloud.name, links))
    }
}

/// The environment's service-principal variables: a secret, certificate or token file given
/// without the tenant and client it is for is a mistake to name, not a reason to fall back to
/// another sign-in.
fn check_env_credential(var: &dyn Fn(&str) -> Option<String>) -> Result<(), AzureError> {
    let given = ["AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE"]
        .into_iter()
        .find(|k| var(k).is_some());
    let Some(given) = given else { return Ok(()) };
    let missing: Vec<&str> = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID"].into_iter().filter(|k| var(k).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(AzureError::Incomplete(format!(
        "{given} is set but {} {}: set {}, or unset {given} to sign in another way",
        missing.join(" and "),
        if missing.len() == 1 { "is not" } else { "are not" },
        if missing.len() == 1 { "it" } else { "them" }
    )))
}

#[async_trait]
impl Credential for ChainedCredential {
    async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<AccessToken, AzureError> {
        if let Some(&i) = self.chosen.get() {
            return self.links[i].token(http, scope).await;
        }
        let mut tried = Vec::new();
        for (i, link) in self.links.iter().enumerate() {
            match link.token(http, scope).await {
                Ok(token) => {
                    let _ = self.chosen.set(i);
                    return Ok(token);
                }
                Err(AzureError::Unavailable { credential, detail }) => tried.push(format!("{credential}: {detail}")),
                Err(other) => return Err(other),
            }
        }
        Err(AzureError::Auth {
            status: 0,
            error: "no_credentials".into(),
            description: format!(
                "no credentials for {}: run `azdock login --service-principal` or `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (tried {})",
                self.cloud,
                tried.join("; ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_without_its_tenant_and_client_is_named() {
        fn env<'v>(vars: &'v [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> + 'v {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        }
        assert!(check_env_credential(&env(&[])).is_ok(), "nothing set: another sign-in may work");
        assert!(check_env_credential(&env(&[("AZURE_CLIENT_ID", "c")])).is_ok(), "a managed identity's client id");
        let whole = [("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c"), ("AZURE_CLIENT_SECRET", "s3cret")];
        assert!(check_env_credential(&env(&whole)).is_ok());
        let e = check_env_credential(&env(&[("AZURE_CLIENT_SECRET", "s3cret")])).unwrap_err();
        assert!(e.is_usage());
        assert!(
            !AzureError::Timeout(std::time::Duration::from_secs(1)).is_usage(),
            "only what the user gave is theirs to fix"
        );
        assert_eq!(
            e.to_string(),
            "AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID and AZURE_CLIENT_ID are not: set them, or unset AZURE_CLIENT_SECRET to sign in another way"
        );
        let e =
            check_env_credential(&env(&[("AZURE_FEDERATED_TOKEN_FILE", "/t"), ("AZURE_TENANT_ID", "t")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_CLIENT_ID is not: set it, or unset AZURE_FEDERATED_TOKEN_FILE to sign in another way"
        );
        let e = check_env_credential(&env(&[("AZURE_CLIENT_CERTIFICATE_PATH", "/c"), ("AZURE_CLIENT_ID", "c")]))
            .unwrap_err();
        assert!(e.to_string().starts_with("AZURE_CLIENT_CERTIFICATE_PATH is set but AZURE_TENANT_ID is not"), "{e}");
        assert!(!e.to_string().contains("s3cret"));
    }
}
