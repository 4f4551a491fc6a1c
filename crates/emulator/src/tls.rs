//! The emulator's TLS identity: its own CA and a server certificate for 127.0.0.1 and
//! localhost, minted once into the state directory with azdock-certs and reused after.

use std::path::Path;
use std::sync::Arc;

use azdock_certs::{CertStore, Passphrases, ServerRequest};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::EmulatorError;

/// The CA certificate (PEM) clients must trust, and the rustls config serving the identity.
pub(crate) struct Identity {
    pub ca_pem: String,
    pub config: Arc<rustls::ServerConfig>,
}

pub(crate) fn identity(state_dir: &Path) -> Result<Identity, EmulatorError> {
    let store = CertStore::new(state_dir.join("tls"));
    let request = ServerRequest::new("localhost", &["localhost".into()], &["127.0.0.1".into(), "::1".into()])
        .map_err(|e| EmulatorError::Tls(e.to_string()))?;
    store.server(&request, &Passphrases::NONE).map_err(|e| EmulatorError::Tls(e.to_string()))?;
    let (cert_path, key_path) = store.server_paths("localhost");
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| EmulatorError::Tls(format!("cannot read `{}`: {e}", p.display())));
    let ca_pem = String::from_utf8_lossy(&read(&store.ca_path())?).into_owned();
    let certs = CertificateDer::pem_slice_iter(&read(&cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EmulatorError::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&key_path)?).map_err(|e| EmulatorError::Tls(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EmulatorError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| EmulatorError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity { ca_pem, config: Arc::new(config) })
}
