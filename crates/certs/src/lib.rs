//! azdock-certs: the Docker TLS PKI — a CA, a client identity and per-host server certificates
//! in Docker's certificate directory, reused across hosts and runs, never overwritten silently.
//!
//! Profiles: ECDSA P-256 keys; the CA is a CA (pathlen 0, keyCertSign) and nothing else, valid
//! [`mint::CA_DAYS`] days; the client certificate has clientAuth only ([`mint::CLIENT_DAYS`]);
//! server certificates have serverAuth only and a SAN for every name and address
//! ([`mint::SERVER_DAYS`]). Validity starts [`mint::BACKDATE`] in the past for VM clock skew.

pub mod error;
pub mod inspect;
pub mod keys;
pub mod mint;
pub mod store;

pub use error::CertError;
pub use inspect::{CertInfo, Check, CheckStatus, Role};
pub use keys::{CLASSIC_CLI_PASSPHRASE, Passphrases};
pub use store::{CertStore, Outcome, Report, ReportEntry, Rotation, ServerRequest};
