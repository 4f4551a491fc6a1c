//! Clouds: where ARM and Entra live, and which certificate authorities to trust there.

/// An Azure cloud's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    pub name: String,
    /// ARM, without a trailing slash.
    pub resource_manager: String,
    /// Entra's authority host, without a trailing slash.
    pub authority_host: String,
    /// The resource ARM tokens are for; the scope is `<audience>/.default`.
    pub audience: String,
    /// Extra CA certificates (PEM, one or more) to trust.
    pub ca_pem: Option<String>,
    /// Whether the system's trusted roots count too (not for the local cloud, whose CA alone
    /// may vouch for it).
    pub trust_system_roots: bool,
}

/// The name of azdock's own cloud (`--cloud local`).
pub const LOCAL_CLOUD: &str = "local";

/// What kind of cloud a name denotes; decided once, so no code compares names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudKind {
    /// azdock's local cloud on loopback: its FQDNs do not resolve, its guests run on this machine.
    Local,
    /// An Azure: the public cloud, a sovereign one, or one registered by its endpoints.
    Azure,
}

impl CloudKind {
    /// The kind of the cloud with this name (names are matched without regard to case, as az does).
    pub fn of(name: &str) -> Self {
        if name.eq_ignore_ascii_case(LOCAL_CLOUD) { Self::Local } else { Self::Azure }
    }
}

impl Cloud {
    /// Whether this is azdock's local cloud or an Azure.
    pub fn kind(&self) -> CloudKind {
        CloudKind::of(&self.name)
    }

    fn public(name: &str, arm: &str, authority: &str) -> Self {
        Self {
            name: name.into(),
            resource_manager: arm.into(),
            authority_host: authority.into(),
            audience: arm.into(),
            ca_pem: None,
            trust_system_roots: true,
        }
    }

    pub fn azure() -> Self {
        Self::public("AzureCloud", "https://management.azure.com", "https://login.microsoftonline.com")
    }

    pub fn china() -> Self {
        Self::public("AzureChinaCloud", "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn")
    }

    pub fn us_government() -> Self {
        Self::public("AzureUSGovernment", "https://management.usgovcloudapi.net", "https://login.microsoftonline.us")
    }

    /// azdock's local cloud at `base_url`, trusting only its CA.
    pub fn local(base_url: &str, ca_pem: &str) -> Self {
        let base = base_url.trim_end_matches('/').to_owned();
        Self {
            name: LOCAL_CLOUD.into(),
            resource_manager: base.clone(),
            authority_host: base.clone(),
            audience: base,
            ca_pem: Some(ca_pem.to_owned()),
            trust_system_roots: false,
        }
    }

    /// A cloud registered by the user (Azure Stack Hub, a private or sovereign cloud), with its
    /// CA bundle trusted next to the system's roots.
    pub fn custom(
        name: &str,
        resource_manager: &str,
        authority_host: &str,
        audience: &str,
        ca_pem: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            resource_manager: resource_manager.trim_end_matches('/').into(),
            authority_host: authority_host.trim_end_matches('/').into(),
            audience: audience.into(),
            ca_pem,
            trust_system_roots: true,
        }
    }

    /// The token scope for ARM in this cloud.
    /// An HTTP client for this cloud's endpoints: its extra CAs trusted, the system's roots only
    /// where they count.
    pub fn http_client(&self, timeout: std::time::Duration) -> Result<reqwest::Client, crate::AzureError> {
        let mut builder = reqwest::Client::builder().timeout(timeout).pool_max_idle_per_host(32);
        if let Some(pem) = &self.ca_pem {
            let invalid = |detail: String| crate::AzureError::Protocol {
                url: self.resource_manager.clone(),
                detail: format!("invalid CA certificate: {detail}"),
            };
            let bundle = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            if bundle.is_empty() {
                return Err(invalid("no certificate in the bundle".into()));
            }
            for ca in bundle {
                builder = builder.add_root_certificate(ca);
            }
        }
        builder
            .tls_built_in_root_certs(self.trust_system_roots)
            .build()
            .map_err(|e| crate::AzureError::Protocol { url: self.resource_manager.clone(), detail: e.to_string() })
    }

    pub fn scope(&self) -> String {
        format!("{}/.default", self.audience.trim_end_matches('/'))
    }
}
