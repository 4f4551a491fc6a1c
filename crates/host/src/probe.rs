//! Reaching a Docker daemon the way the `docker` CLI does: TCP, a TLS handshake that checks the
//! server against the user's CA and presents the client certificate, then Docker's `/_ping` and
//! `/version`. A failure is classified, so the host can say what to do about it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The client identity and the CA to check the daemon against (the cert directory's files).
#[derive(Debug, Clone)]
pub struct Identity {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Why a daemon could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing accepted the connection: the daemon is down or not listening on TCP.
    Refused,
    /// No answer at all: a firewall (the NSG) drops the traffic, or the VM is off.
    NoAnswer,
    /// The server certificate does not carry the name or address we connected to.
    WrongName(String),
    /// The server certificate has expired (or is not valid yet).
    Expired(String),
    /// The server certificate is not signed by the user's CA.
    UnknownCa(String),
    /// The daemon refused the client certificate (it trusts another CA).
    ClientRefused(String),
    /// The local certificate files cannot be used.
    Local(String),
    /// Something else, as the TLS library or Docker said it.
    Other(String),
}

impl Failure {
    /// Failures that waiting will not fix.
    pub fn permanent(&self) -> bool {
        matches!(
            self,
            Self::WrongName(_) | Self::Expired(_) | Self::UnknownCa(_) | Self::ClientRefused(_) | Self::Local(_)
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused => f.write_str("connection refused"),
            Self::NoAnswer => f.write_str("no answer"),
            Self::WrongName(d)
            | Self::Expired(d)
            | Self::UnknownCa(d)
            | Self::ClientRefused(d)
            | Self::Local(d)
            | Self::Other(d) => f.write_str(d),
        }
    }
}

/// What `/_ping` and `/version` said.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    pub ping: String,
    pub version: Value,
}

fn tls_config(identity: &Identity) -> Result<rustls::ClientConfig, Failure> {
    let local = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        Failure::Local(format!("cannot use the {what} `{}`: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&identity.ca).map_err(|e| local("CA certificate", &identity.ca, &e))? {
        roots
            .add(cert.map_err(|e| local("CA certificate", &identity.ca, &e))?)
            .map_err(|e| local("CA certificate", &identity.ca, &e))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&identity.cert)
        .map_err(|e| local("client certificate", &identity.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| local("client certificate", &identity.cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(&identity.key).map_err(|e| local("client key", &identity.key, &e))?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| local("client certificate and key", &identity.cert, &e))
}

fn classify_tls(e: &std::io::Error) -> Failure {
    use rustls::{AlertDescription, CertificateError, Error};
    let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return io_failure(e);
    };
    match inner {
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => Failure::WrongName(inner.to_string()),
        Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => Failure::Expired(inner.to_string()),
        Error::InvalidCertificate(_) => Failure::UnknownCa(inner.to_string()),
        Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
            | AlertDescription::HandshakeFailure
            | AlertDescription::CertificateUnknown,
        ) => Failure::ClientRefused(inner.to_string()),
        other => Failure::Other(other.to_string()),
    }
}

fn io_failure(e: &std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
            Failure::NoAnswer
        }
        // A daemon that refuses our certificate under TLS 1.3 just closes the connection.
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe => {
            Failure::ClientRefused(format!("the daemon closed the connection during the handshake ({e})"))
        }
        _ => Failure::Other(e.to_string()),
    }
}

/// One HTTP/1.1 GET over a fresh TLS connection; the status and body.
async fn get(
    host: &str,
    port: u16,
    identity: &Identity,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), Failure> {
    let config = tls_config(identity)?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| Failure::Other(format!("`{host}`: {e}")))?;
    let run = async {
        let tcp = TcpStream::connect((host, port)).await.map_err(|e| io_failure(&e))?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| classify_tls(&e))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: azdock\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.map_err(|e| classify_tls(&e))?;
        let mut raw = Vec::new();
        tls.read_to_end(&mut raw).await.or_else(|e| {
            // Some servers end TLS without close_notify after the response; keep what came.
            if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() { Ok(0) } else { Err(classify_tls(&e)) }
        })?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| Failure::Other(format!("not an HTTP answer from {host}:{port}")))?;
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked")
        });
        Ok((status, if chunked { dechunk(body) } else { body.to_owned() }))
    };
    tokio::time::timeout(timeout, run).await.unwrap_or(Err(Failure::NoAnswer))
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// `/_ping` then `/version`, as `docker version` starts.
pub async fn docker(host: &str, port: u16, identity: &Identity, timeout: Duration) -> Result<DaemonInfo, Failure> {
    let (status, ping) = get(host, port, identity, "/_ping", timeout).await?;
    if status != 200 {
        return Err(Failure::Other(format!("/_ping answered HTTP {status}: {}", ping.trim())));
    }
    let (status, version) = get(host, port, identity, "/version", timeout).await?;
    if status != 200 {
        return Err(Failure::Other(format!("/version answered HTTP {status}")));
    }
    let version = serde_json::from_str(&version).unwrap_or(Value::Null);
    Ok(DaemonInfo { ping: ping.trim().to_owned(), version })
}

/// Tries until the daemon answers or `timeout` passes (at least once); permanent failures end
/// the wait at once.
pub async fn wait(host: &str, port: u16, identity: &Identity, timeout: Duration) -> Result<DaemonInfo, Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let attempt = docker(host, port, identity, Duration::from_secs(5)).await;
        match attempt {
            Ok(info) => return Ok(info),
            Err(f) if f.permanent() || tokio::time::Instant::now() + Duration::from_secs(1) > deadline => {
                return Err(f);
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("2\r\nOK\r\n0\r\n\r\n"), "OK");
        assert_eq!(dechunk("3\r\n{\"a\r\n2\r\n\"}\r\n0\r\n\r\n"), "{\"a\"}");
    }
}
