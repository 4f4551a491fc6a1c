//! Minting: the CA, client and server certificate profiles azdock issues.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

use crate::error::CertError;

/// CA lifetime: long, because replacing it means redeploying every host.
pub const CA_DAYS: i64 = 3650;
/// Client certificate lifetime, as docker-machine's defaults roughly are.
pub const CLIENT_DAYS: i64 = 730;
/// Server certificate lifetime; a host's certificate is cheap to rotate.
pub const SERVER_DAYS: i64 = 365;
/// Validity starts this far in the past, because a freshly booted VM's clock may lag.
pub const BACKDATE: Duration = Duration::minutes(5);

/// A freshly minted certificate and its key: PEM to be written, and the forms the store goes on
/// with (so that nothing it has just made is decoded again).
#[derive(Debug)]
pub struct Minted {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: zeroize::Zeroizing<String>,
    pub key: KeyPair,
}

impl Minted {
    fn new(cert: &rcgen::Certificate, key: KeyPair) -> Self {
        Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
            key,
        }
    }
}

fn base_params(common_name: &str, days: i64) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "azdock");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(days);
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// A random positive 128-bit serial number.
fn random_serial() -> Result<SerialNumber, CertError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).map_err(|_| CertError::Generate(rcgen::Error::RingUnspecified))?;
    // Positive and without a leading zero byte, so the DER integer is exactly 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn minted(params: &CertificateParams, key: KeyPair, issuer: &Issuer<'_, &KeyPair>) -> Result<Minted, CertError> {
    let cert = params.signed_by(&key, issuer)?;
    Ok(Minted::new(&cert, key))
}

/// The CA: a CA (basicConstraints CA:TRUE, pathlen 0) that can sign certificates and nothing else.
pub fn ca() -> Result<Minted, CertError> {
    let key = KeyPair::generate()?;
    let mut params = base_params("azdock CA", CA_DAYS)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let cert = params.self_signed(&key)?;
    Ok(Minted::new(&cert, key))
}

/// The client certificate the Docker CLI presents: clientAuth only.
pub fn client(issuer: &Issuer<'_, &KeyPair>) -> Result<Minted, CertError> {
    let key = KeyPair::generate()?;
    let mut params = base_params("azdock client", CLIENT_DAYS)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    minted(&params, key, issuer)
}

/// A host's server certificate: serverAuth only, with a SAN for every name and address (Go
/// ignores the CN), and the first name as CN for humans reading it.
pub fn server(
    host: &str,
    dns_names: &[String],
    ips: &[IpAddr],
    issuer: &Issuer<'_, &KeyPair>,
) -> Result<Minted, CertError> {
    let key = KeyPair::generate()?;
    let common_name = dns_names.first().map_or(host, String::as_str);
    let mut params = base_params(common_name, SERVER_DAYS)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let mut sans = Vec::with_capacity(dns_names.len() + ips.len());
    for name in dns_names {
        let ia5 = name
            .clone()
            .try_into()
            .map_err(|_| CertError::InvalidDnsName { value: name.clone(), reason: "it is not ASCII" })?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(ips.iter().copied().map(SanType::IpAddress));
    params.subject_alt_names = sans;
    minted(&params, key, issuer)
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::*;

    use super::*;

    fn parse(pem_text: &str) -> Vec<u8> {
        ::pem::parse(pem_text).unwrap().into_contents()
    }

    #[test]
    fn profiles_have_the_right_extensions() {
        let ca = ca().unwrap();
        let ca_key = KeyPair::from_pem(&ca.key_pem).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &ca_key).unwrap();
        let client = client(&issuer).unwrap();
        let server =
            server("vm1", &["vm1.westeurope.cloudapp.azure.com".into()], &["127.0.0.9".parse().unwrap()], &issuer)
                .unwrap();

        let der = parse(&ca.cert_pem);
        let (_, ca_cert) = X509Certificate::from_der(&der).unwrap();
        assert!(ca_cert.is_ca());
        let ku = ca_cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && !ku.digital_signature());
        assert!(ca_cert.extended_key_usage().unwrap().is_none());

        let der = parse(&client.cert_pem);
        let (_, c) = X509Certificate::from_der(&der).unwrap();
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!c.is_ca());
        c.verify_signature(Some(ca_cert.public_key())).unwrap();

        let der = parse(&server.cert_pem);
        let (_, s) = X509Certificate::from_der(&der).unwrap();
        let eku = s.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let sans = &s.subject_alternative_name().unwrap().unwrap().value.general_names;
        assert_eq!(sans.len(), 2);
        assert!(s.validity().not_before.timestamp() < OffsetDateTime::now_utc().unix_timestamp() - 200);
        let days = (s.validity().not_after.timestamp() - OffsetDateTime::now_utc().unix_timestamp()) / 86400;
        assert!((SERVER_DAYS - 1..=SERVER_DAYS).contains(&days), "{days}");
        assert_ne!(s.raw_serial(), c.raw_serial());
        assert_eq!(s.raw_serial().len(), 16);
    }
}
