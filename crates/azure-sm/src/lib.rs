//! azdock-azure-sm: the Azure service-management client — clouds, credentials, an HTTP
//! pipeline that retries safely and paces itself against ARM's throttling, long-running
//! operations followed to their end, and ARM's error envelope as a typed error.
//!
//! Status: the pipeline and client-secret credentials; typed models, the rest of the credential
//! chain and fleet fan-out helpers arrive with the everyday commands (see ARCHITECTURE.md).

pub mod cloud;
pub mod credential;
pub mod error;
pub mod pipeline;

pub use cloud::Cloud;
pub use credential::{
    AccessToken, AzureCliCredential, ClientCertificateCredential, ClientSecretCredential, Credential,
};
pub use error::{ArmErrorBody, AzureError};
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
