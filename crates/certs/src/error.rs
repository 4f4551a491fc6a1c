//! The errors of the certificate store; each names the file or value and what to do next.

use std::io;
use std::path::PathBuf;

/// A certificate store failure.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot create the certificate directory `{path}`: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot lock the certificate directory `{path}`: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error(
        "incomplete certificate set in `{dir}`: `{present}` exists but `{missing}` is missing; restore `{missing}`, \
         or move `{present}` away so that azdock can create a new pair"
    )]
    PartialSet { dir: PathBuf, present: String, missing: String },
    #[error(
        "no CA in `{dir}`, but the client certificate `{client}` exists; restore `ca.pem` and `ca-key.pem`, or move \
         `cert.pem` and `key.pem` away so that azdock can create a new CA and client"
    )]
    ClientWithoutCa { dir: PathBuf, client: String },
    #[error("`{path}` is not a valid {what}: {detail}")]
    Corrupt { path: PathBuf, what: &'static str, detail: String },
    #[error("unsupported private key in `{path}`: {detail}")]
    UnsupportedKey { path: PathBuf, detail: String },
    #[error(
        "cannot decrypt `{path}`: the passphrase was not accepted; set `AZDOCK_CA_KEY_PASSPHRASE` or run azdock on \
         a terminal to be asked"
    )]
    Passphrase { path: PathBuf },
    #[error("the private key `{key}` does not belong to the certificate `{cert}`")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("`{cert}` was not issued by the CA `{ca}`; {hint}")]
    WrongIssuer { cert: PathBuf, ca: PathBuf, hint: String },
    #[error("`{path}` is not a CA certificate (basicConstraints CA:TRUE is missing)")]
    NotCa { path: PathBuf },
    #[error(
        "the CA certificate `{path}` expired on {not_after}; run `azdock certs rotate --ca` for a new CA and client \
         (every Docker host then needs new certificates)"
    )]
    CaExpired { path: PathBuf, not_after: String },
    #[error("the CA certificate `{path}` is not valid before {not_before}; check this machine's clock")]
    CaNotYetValid { path: PathBuf, not_before: String },
    #[error("the {role} certificate `{path}` expired on {not_after}; {hint}")]
    Expired { role: &'static str, path: PathBuf, not_after: String, hint: String },
    #[error("no CA in `{dir}`; run `azdock certs init` first")]
    NoCa { dir: PathBuf },
    #[error("no server certificate for host `{host}` in `{dir}`; run `azdock certs server {host}`")]
    NoServer { dir: PathBuf, host: String },
    #[error("invalid host name `{value}`: use 1 to 64 letters, digits, `-`, `_` and `.`, not starting with `.` or `-`")]
    InvalidHost { value: String },
    #[error("invalid DNS name `{value}` for the certificate: {reason}")]
    InvalidDnsName { value: String, reason: &'static str },
    #[error("invalid IP address `{value}` for the certificate: use a dotted IPv4 or an IPv6 address")]
    InvalidIp { value: String },
    #[error(
        "the server certificate `{path}` does not cover {missing}; run `azdock certs rotate --server {host}` with \
         every name and address the host needs"
    )]
    SanMismatch { path: PathBuf, host: String, missing: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

impl CertError {
    /// Whether this is a problem with the user's input (arguments or existing files), which the
    /// CLI reports with exit code 2, rather than an operational failure (exit code 1).
    pub fn is_usage(&self) -> bool {
        !matches!(
            self,
            CertError::CreateDir { .. }
                | CertError::Read { .. }
                | CertError::Write { .. }
                | CertError::Lock { .. }
                | CertError::Generate(_)
        )
    }
}
