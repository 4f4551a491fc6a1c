//! Reaching a Docker daemon the way the `docker` CLI does: TCP, a TLS handshake that checks the
//! server against the user's CA and presents the client certificate, then Docker's `/_ping` and
//! `/version`. A failure is classified, so the host can say what to do about it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

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
    /// The daemon refused the client certificate (it trusts another CA): a TLS alert that says so.
    ClientRefused(String),
    /// The connection was reset or closed before an answer: a daemon restarting (as an install
    /// restarts it), or one that drops clients it refuses without an alert. Worth a retry.
    Closed(String),
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
            | Self::Closed(d)
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

/// What a TLS error means for the user.
fn classify_rustls(inner: &rustls::Error) -> Failure {
    use rustls::{AlertDescription, CertificateError, Error};
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
        // The alerts a server sends when it will not take our certificate; a CA of the same
        // name as the one it trusts (every azdock CA is "azdock CA") fails its signature check:
        // decrypt_error.
        Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
            | AlertDescription::HandshakeFailure
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError,
        ) => Failure::ClientRefused(inner.to_string()),
        other => Failure::Other(other.to_string()),
    }
}

/// An error and everything it wraps, the error inside an `io::Error` included (whose own
/// `source()` skips it): TLS errors arrive as an `io::Error` inside another.
fn chain<'a>(top: &'a (dyn std::error::Error + 'static)) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(top);
    // Bounded: error chains are short, and a cycle must not hang a probe.
    while let Some(e) = next.filter(|_| out.len() < 32) {
        out.push(e);
        next = match e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    out
}

/// What a failed request means: a TLS error anywhere inside says what is wrong with a
/// certificate; else the innermost socket error (a reply cut off arrives as one).
fn classify_chain(top: &(dyn std::error::Error + 'static)) -> Option<Failure> {
    let errors = chain(top);
    if let Some(tls) = errors.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return Some(classify_rustls(tls));
    }
    errors.iter().rev().find_map(|e| e.downcast_ref::<std::io::Error>()).map(io_kind)
}

/// A socket error's meaning, as [`classify`] reads it inside a request's error.
#[cfg(test)]
fn io_failure(e: &std::io::Error) -> Failure {
    classify_chain(e).unwrap_or_else(|| io_kind(e))
}

fn io_kind(e: &std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
            Failure::NoAnswer
        }
        // A daemon restarting drops its connections; a refusal of our certificate comes as an
        // alert (above), so a bare reset or end is worth waiting out.
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::BrokenPipe => Failure::Closed(format!("the daemon closed the connection ({e})")),
        _ => Failure::Other(e.to_string()),
    }
}

/// What a failed request means.
fn classify(e: &reqwest::Error) -> Failure {
    classify_chain(e).unwrap_or_else(|| if e.is_timeout() { Failure::NoAnswer } else { Failure::Other(e.to_string()) })
}

/// An HTTP/1.1 client that reaches the daemon as the docker CLI does: the user's CA, the client
/// certificate, no proxy, a fresh connection each time.
fn client(identity: &Identity, timeout: Duration) -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(identity)?)
        .http1_only()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent("azdock")
        .build()
        .map_err(|e| Failure::Other(e.to_string()))
}

/// One GET; the status and body.
async fn get(client: &reqwest::Client, host: &str, port: u16, path: &str) -> Result<(u16, String), Failure> {
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    let resp = client.get(format!("https://{host}:{port}{path}")).send().await.map_err(|e| classify(&e))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(|e| classify(&e))?;
    Ok((status, body))
}

/// `/_ping` then `/version`, as `docker version` starts.
pub async fn docker(host: &str, port: u16, identity: &Identity, timeout: Duration) -> Result<DaemonInfo, Failure> {
    let client = client(identity, timeout)?;
    let (status, ping) = get(&client, host, port, "/_ping").await?;
    if status != 200 {
        return Err(Failure::Other(format!("/_ping answered HTTP {status}: {}", ping.trim())));
    }
    let (status, version) = get(&client, host, port, "/version").await?;
    if status != 200 {
        return Err(Failure::Other(format!("/version answered HTTP {status}")));
    }
    let version = serde_json::from_str(&version).unwrap_or(Value::Null);
    Ok(DaemonInfo { ping: ping.trim().to_owned(), version })
}

/// Tries until the daemon answers or `timeout` passes (at least once); permanent failures end
/// the wait at once.
pub async fn wait(host: &str, port: u16, identity: &Identity, timeout: Duration) -> Result<DaemonInfo, Failure> {
    retry(timeout, || docker(host, port, identity, Duration::from_secs(5)), Failure::permanent).await
}

/// Runs `attempt` a second apart until it succeeds or `timeout` passes (at least once); a
/// failure `permanent` says waiting will not fix ends the wait at once.
pub(crate) async fn retry<T, E, F: std::future::Future<Output = Result<T, E>>>(
    timeout: Duration,
    mut attempt: impl FnMut() -> F,
    permanent: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(info) => return Ok(info),
            Err(f) if permanent(&f) || tokio::time::Instant::now() + Duration::from_secs(1) > deadline => {
                return Err(f);
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_retry_ends_at_success_at_a_permanent_failure_or_at_its_time() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let tries = AtomicU32::new(0);
        // Transient twice, then an answer.
        let answered = retry(
            Duration::from_secs(10),
            || async {
                let n = tries.fetch_add(1, Ordering::SeqCst);
                if n < 2 { Err(false) } else { Ok(n) }
            },
            |permanent: &bool| *permanent,
        )
        .await;
        assert_eq!(answered, Ok(2));
        // A try that counts itself and fails, permanently or not.
        let failing = |permanent: bool| {
            let tries = &tries;
            move || async move {
                tries.fetch_add(1, Ordering::SeqCst);
                Err::<(), bool>(permanent)
            }
        };
        // A permanent failure ends it at the first try.
        tries.store(0, Ordering::SeqCst);
        let refused = retry(Duration::from_secs(10), failing(true), |permanent: &bool| *permanent).await;
        assert_eq!((refused, tries.load(Ordering::SeqCst)), (Err(true), 1));
        // Transient failures are tried a second apart until the time is up: 0 s, 1 s, 2 s.
        tries.store(0, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let gave_up = retry(Duration::from_millis(2500), failing(false), |permanent: &bool| *permanent).await;
        assert_eq!((gave_up, tries.load(Ordering::SeqCst)), (Err(false), 3));
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    }

    #[test]
    fn resets_are_transient_and_certificate_refusals_are_not() {
        let io = |kind| io_failure(&std::io::Error::new(kind, "x"));
        for kind in [
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::ConnectionAborted,
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::BrokenPipe,
        ] {
            let f = io(kind);
            assert!(matches!(f, Failure::Closed(_)) && !f.permanent(), "{kind:?}: {f:?}");
        }
        assert_eq!(io(std::io::ErrorKind::ConnectionRefused), Failure::Refused);
        assert_eq!(io(std::io::ErrorKind::TimedOut), Failure::NoAnswer);
        assert!(matches!(io(std::io::ErrorKind::PermissionDenied), Failure::Other(_)));
        let alert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        let refused = io_failure(&alert);
        assert!(matches!(refused, Failure::ClientRefused(_)) && refused.permanent(), "{refused:?}");
        // As the TLS stack hands it up: the TLS error in an io::Error in another io::Error.
        let wrong_name = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        let nested = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, wrong_name));
        assert!(matches!(io_failure(&nested), Failure::WrongName(_)), "{:?}", io_failure(&nested));
        let reset = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer reset"));
        assert!(matches!(io_failure(&reset), Failure::Closed(_)), "{:?}", io_failure(&reset));
        let expired = classify_rustls(&rustls::Error::InvalidCertificate(rustls::CertificateError::Expired));
        assert!(matches!(expired, Failure::Expired(_)));
        assert!(matches!(
            classify_rustls(&rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)),
            Failure::WrongName(_)
        ));
        assert!(matches!(
            classify_rustls(&rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
            Failure::UnknownCa(_)
        ));
        assert!(matches!(classify_rustls(&rustls::Error::DecryptError), Failure::Other(_)));
        let decrypt = classify_rustls(&rustls::Error::AlertReceived(rustls::AlertDescription::DecryptError));
        assert!(matches!(decrypt, Failure::ClientRefused(_)), "{decrypt:?}");
        let internal = classify_rustls(&rustls::Error::AlertReceived(rustls::AlertDescription::InternalError));
        assert!(matches!(internal, Failure::Other(_)), "{internal:?}");
        assert_eq!(Failure::Closed("c".into()).to_string(), "c");
    }
}
