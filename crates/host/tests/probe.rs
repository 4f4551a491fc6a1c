//! The Docker probe against a daemon on loopback that speaks TLS with client certificates as
//! dockerd does: a daemon that drops connections while it restarts is waited out, one that
//! refuses the client certificate with an alert is not, and a chunked answer whose chunks split
//! a multi-byte character reads whole.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use azdock_certs::{CertStore, Passphrases, ServerRequest};
use azdock_host::probe::{self, Failure, Identity};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A CA, client and server certificate for 127.0.0.1 in a temp dir.
fn pki() -> (tempfile::TempDir, Identity) {
    let dir = tempfile::tempdir().unwrap();
    let store = CertStore::new(dir.path());
    store.init(&Passphrases::NONE).unwrap();
    store.server(&ServerRequest::new("daemon", &[], &["127.0.0.1".into()]).unwrap(), &Passphrases::NONE).unwrap();
    let identity = azdock_host::docker::identity(dir.path());
    (dir, identity)
}

/// dockerd's TLS: the server certificate, and client certificates from `client_ca` required.
fn server_config(dir: &std::path::Path, name: &str, client_ca: &std::path::Path) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(client_ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let (cert, key) = CertStore::new(dir).server_paths(name);
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// Serves `/_ping` and `/version` (chunked, a two-byte character split between chunks), after
/// dropping the first `drops` connections as a restarting daemon does.
async fn daemon(config: Arc<rustls::ServerConfig>, drops: usize) -> (u16, Arc<AtomicUsize>) {
    serve(config, drops, false).await
}

/// [`daemon`], or with `truncate` one that closes each answer halfway through its body.
async fn serve(config: Arc<rustls::ServerConfig>, drops: usize, truncate: bool) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        // Bounded: a probe makes a handful of connections.
        for _ in 0..50 {
            let Ok((tcp, _)) = listener.accept().await else { return };
            if count.fetch_add(1, Ordering::SeqCst) < drops {
                drop(tcp);
                continue;
            }
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer: Vec<u8> = if truncate {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nOK".to_vec()
                } else if head.starts_with(b"GET /_ping ") {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK".to_vec()
                } else {
                    let body = "{\"Version\":\"27.0\",\"Os\":\"linux\",\"Name\":\"d\u{e9}mon\"}".as_bytes();
                    // Split inside the two bytes of `é`.
                    let cut = body.iter().position(|b| *b == 0xc3).unwrap() + 1;
                    let mut out =
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                            .to_vec();
                    for part in [&body[..cut], &body[cut..]] {
                        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                        out.extend_from_slice(part);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                    out
                };
                let _ = tls.write_all(&answer).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn a_daemon_that_drops_connections_while_it_restarts_is_waited_out() {
    let (dir, identity) = pki();
    let (port, seen) = daemon(server_config(dir.path(), "daemon", &identity.ca), 3).await;
    let info = probe::wait("127.0.0.1", port, &identity, Duration::from_secs(30)).await.unwrap();
    assert_eq!(info.ping, "OK");
    assert_eq!(info.version["Version"], "27.0");
    assert_eq!(info.version["Name"], "d\u{e9}mon", "a character split across chunks reads whole");
    assert!(seen.load(Ordering::SeqCst) >= 4, "it came back after the drops");
}

#[tokio::test]
async fn a_daemon_that_refuses_the_client_certificate_is_not_waited_for() {
    let (dir, identity) = pki();
    // The daemon trusts another CA's clients: it answers the handshake with an alert.
    let other = tempfile::tempdir().unwrap();
    CertStore::new(other.path()).init(&Passphrases::NONE).unwrap();
    let (port, seen) = daemon(server_config(dir.path(), "daemon", &CertStore::new(other.path()).ca_path()), 0).await;
    let failure = probe::wait("127.0.0.1", port, &identity, Duration::from_secs(30)).await.unwrap_err();
    assert!(matches!(failure, Failure::ClientRefused(_)) && failure.permanent(), "{failure:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "a refusal ends the wait at once");
    // An answer cut off halfway (a daemon stopping mid-reply): closed, worth a retry.
    let (port, _) = serve(server_config(dir.path(), "daemon", &identity.ca), 0, true).await;
    let failure = probe::docker("127.0.0.1", port, &identity, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(failure, Failure::Closed(_)) && !failure.permanent(), "{failure:?}");
    // A certificate for another name, as after an IP change: said at once, not waited for.
    let elsewhere = ServerRequest::new("elsewhere", &["elsewhere.example.com".into()], &[]).unwrap();
    CertStore::new(dir.path()).server(&elsewhere, &Passphrases::NONE).unwrap();
    let (port, _) = daemon(server_config(dir.path(), "elsewhere", &identity.ca), 0).await;
    let failure = probe::wait("127.0.0.1", port, &identity, Duration::from_secs(30)).await.unwrap_err();
    assert!(matches!(failure, Failure::WrongName(_)) && failure.permanent(), "{failure:?}");
    // Nothing listening: refused, which is worth a wait but ends with the deadline.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let failure = probe::wait("127.0.0.1", closed, &identity, Duration::from_millis(500)).await.unwrap_err();
    assert_eq!(failure, Failure::Refused);
}
