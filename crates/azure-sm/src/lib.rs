//! azdock-azure-sm: the Azure service-management client — clouds, credentials, an HTTP
//! pipeline that retries safely and paces itself against ARM's throttling, long-running
//! operations followed to their end, and ARM's error envelope as a typed error.
//! Typed models of the resources azdock reads live in [`models`]; fleet operations go through
//! [`fanout::fan_out`] on one shared client.

pub mod api;
pub mod body;
pub mod cloud;
pub mod clouds;
pub mod credential;
pub mod error;
pub mod extensions;
pub mod fanout;
pub mod images;
pub mod locations;
pub mod models;
pub mod pipeline;
pub mod requests;
pub mod rules;

pub use body::Body;
pub use cloud::{Cloud, CloudKind};
pub use credential::{
    AccessToken, AzureCliCredential, ChainedCredential, ClientCertificateCredential, ClientSecretCredential,
    Credential, ManagedIdentityCredential, ManagedIdentitySource, WorkloadIdentityCredential,
};
pub use error::{ArmErrorBody, AzureError};
pub use fanout::fan_out;
pub use pipeline::{Arm, ArmResponse, RetryPolicy, redact};

/// A fresh UUID (v4) for request ids.
pub(crate) fn uuid() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().fold(String::new(), |mut s, x| {
        use std::fmt::Write as _;
        let _ = write!(s, "{x:02x}");
        s
    });
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
