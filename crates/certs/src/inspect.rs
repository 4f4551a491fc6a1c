//! Reading certificates back: the facts `certs show` prints and the checks `certs verify` runs.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OidRegistry;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::error::CertError;

/// Warn when a certificate expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// What a certificate is for in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ca,
    Client,
    Server,
}

/// A parsed certificate file. Holds the DER so that x509 views can be taken from it.
#[derive(Debug, Clone)]
pub struct CertFile {
    pub path: PathBuf,
    pub pem: String,
    pub der: Vec<u8>,
}

impl CertFile {
    /// Parses PEM text read from `path`, checking that it holds one X.509 certificate.
    pub fn parse(path: &Path, pem_text: String) -> Result<Self, CertError> {
        let corrupt = |detail: String| CertError::Corrupt { path: path.to_owned(), what: "PEM certificate", detail };
        let block = pem::parse(&pem_text).map_err(|e| corrupt(e.to_string()))?;
        if block.tag() != "CERTIFICATE" {
            return Err(corrupt(format!("found a `{}` block", block.tag())));
        }
        Self::from_der(path, pem_text, block.into_contents())
    }

    /// A certificate whose DER is already decoded from `pem_text` (one just minted), checked
    /// as [`CertFile::parse`] checks it.
    pub fn from_der(path: &Path, pem_text: String, der: Vec<u8>) -> Result<Self, CertError> {
        if let Err(e) = X509Certificate::from_der(&der) {
            return Err(CertError::Corrupt { path: path.to_owned(), what: "PEM certificate", detail: e.to_string() });
        }
        Ok(Self { path: path.to_owned(), pem: pem_text, der })
    }

    /// The parsed view; parsing was checked in [`CertFile::parse`].
    pub fn x509(&self) -> X509Certificate<'_> {
        match X509Certificate::from_der(&self.der) {
            Ok((_, cert)) => cert,
            Err(e) => unreachable!("checked when the file was read: {e}"),
        }
    }

    /// Whether `issuer` signed this certificate.
    pub fn issued_by(&self, issuer: &CertFile) -> bool {
        let issuer_cert = issuer.x509();
        self.x509().verify_signature(Some(issuer_cert.public_key())).is_ok()
    }

    /// Whether this private key (raw public key bytes from rcgen) belongs to this certificate.
    pub fn matches_key(&self, public_key_raw: &[u8]) -> bool {
        self.x509().public_key().subject_public_key.data.as_ref() == public_key_raw
    }

    /// The subject alternative names, as text (DNS names and IP addresses).
    pub fn sans(&self) -> Vec<String> {
        sans(&self.x509())
    }

    /// Whether the SANs cover a DNS name (case-insensitively, with `*.` wildcards) or an IP.
    pub fn covers(&self, name: &str) -> bool {
        let sans = self.sans();
        if let Ok(ip) = name.parse::<IpAddr>() {
            return sans.iter().any(|s| s.parse::<IpAddr>().is_ok_and(|s| s == ip));
        }
        sans.iter().any(|san| {
            san.eq_ignore_ascii_case(name)
                || san.strip_prefix("*.").is_some_and(|suffix| {
                    name.split_once('.').is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(suffix))
                })
        })
    }

    pub fn not_before(&self) -> OffsetDateTime {
        self.x509().validity().not_before.to_datetime()
    }

    pub fn not_after(&self) -> OffsetDateTime {
        self.x509().validity().not_after.to_datetime()
    }

    /// Whole days until expiry (negative once expired).
    pub fn days_left(&self) -> i64 {
        days_until(self.not_after())
    }

    /// The SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it.
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.der);
        let mut text = String::with_capacity(digest.as_ref().len() * 3);
        for (i, byte) in digest.as_ref().iter().enumerate() {
            let sep = if i == 0 { "" } else { ":" };
            let _ = write!(text, "{sep}{byte:02X}");
        }
        text
    }

    /// A summary for `certs show`, from one parse of the certificate (every command that
    /// writes certificates reports them, so this is on the path of each).
    pub fn info(&self, role: Role, host: Option<&str>, key_file: &Path) -> CertInfo {
        let cert = self.x509();
        let validity = cert.validity();
        let not_after = validity.not_after.to_datetime();
        CertInfo {
            role,
            host: host.map(str::to_owned),
            file: self.path.clone(),
            key_file: key_file.to_owned(),
            subject: name_text(cert.subject()),
            issuer: name_text(cert.issuer()),
            serial: cert.raw_serial_as_string(),
            not_before: rfc3339(validity.not_before.to_datetime()),
            not_after: rfc3339(not_after),
            days_left: days_until(not_after),
            sans: sans(&cert),
            key_algorithm: key_algorithm(&cert),
            fingerprint_sha256: self.fingerprint(),
        }
    }
}

/// A name as x509-parser writes it (`O=azdock, CN=azdock CA`). Its `Display` first builds a
/// registry of every OID it knows (150 entries, hashed, on each run that reports a
/// certificate); the attributes of almost every name (CN, O, OU, C, ST, L, DC, Email) have
/// abbreviations of their own, so that registry is asked only for a name with another.
pub fn name_text(name: &X509Name<'_>) -> String {
    let abbreviations_only = OidRegistry::default();
    let abbreviated =
        name.iter_attributes().all(|a| x509_parser::objects::oid2abbrev(a.attr_type(), &abbreviations_only).is_ok());
    match abbreviated.then(|| name.to_string_with_registry(&abbreviations_only)) {
        Some(Ok(text)) => text,
        _ => name.to_string(),
    }
}

/// The subject alternative names of `cert`, as text (DNS names and IP addresses).
fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(|ip| ip.to_string()),
            _ => None,
        })
        .collect()
}

/// Whole days from now until `t` (negative once past).
fn days_until(t: OffsetDateTime) -> i64 {
    (t - OffsetDateTime::now_utc()).whole_days()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn key_algorithm(cert: &X509Certificate<'_>) -> String {
    use x509_parser::public_key::PublicKey;
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(point)) => match point.key_size() {
            256 => "ECDSA P-256".into(),
            384 => "ECDSA P-384".into(),
            bits => format!("ECDSA {bits}"),
        },
        Ok(_) | Err(_) => cert.public_key().algorithm.algorithm.to_id_string(),
    }
}

/// Formats a time as RFC 3339, as Azure and az print times.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// What `certs show` prints for one certificate.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub file: PathBuf,
    pub key_file: PathBuf,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub sans: Vec<String>,
    pub key_algorithm: String,
    pub fingerprint_sha256: String,
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warning,
    Failed,
}

/// One line of `certs verify`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// `ca`, `client` or `server <host>`.
    pub subject: String,
    pub check: &'static str,
    pub status: CheckStatus,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::name_text;

    /// The fingerprint is SHA-256 as openssl prints it: upper-case hex pairs joined by colons
    /// (the digest of `abc`, FIPS 180-2's first example).
    #[test]
    fn fingerprints_are_sha256_as_openssl_prints_them() {
        let file = super::CertFile { path: "x.pem".into(), pem: String::new(), der: b"abc".to_vec() };
        assert_eq!(
            file.fingerprint(),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

    /// Names read as x509-parser's `Display` writes them, with its registry or without it.
    #[test]
    fn names_read_as_x509_parser_writes_them() {
        let key = KeyPair::generate().unwrap();
        let cases: [(&[(DnType, &str)], &str); 3] = [
            (&[(DnType::OrganizationName, "azdock"), (DnType::CommonName, "azdock CA")], "O=azdock, CN=azdock CA"),
            (
                &[
                    (DnType::CountryName, "NL"),
                    (DnType::OrganizationalUnitName, "ops"),
                    (DnType::LocalityName, "Delft"),
                ],
                "C=NL, OU=ops, L=Delft",
            ),
            // serialNumber (2.5.4.5) has no abbreviation: its name comes from the registry.
            (&[(DnType::CustomDnType(vec![2, 5, 4, 5]), "42"), (DnType::CommonName, "x")], "serialNumber=42, CN=x"),
        ];
        for (attributes, expected) in cases {
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            for (kind, value) in attributes {
                dn.push(kind.clone(), *value);
            }
            params.distinguished_name = dn;
            let cert = params.self_signed(&key).unwrap();
            let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
            assert_eq!(name_text(parsed.subject()), expected);
            assert_eq!(name_text(parsed.issuer()), parsed.issuer().to_string());
        }
    }
}
