//! TLS for the listener, optional: the rustls server configuration built from a PEM certificate
//! chain and private key (`--tls-cert`, `--tls-key`) or from a certificate made at start
//! (`--tls-self-signed`), offering HTTP/2 and HTTP/1.1 by ALPN. It owns no sockets: the accept
//! loop (`listener.rs`) runs each handshake under the connection limits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Where the server's certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files: the certificate chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1).
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate made at start for these DNS names and IP addresses, trusted by nobody:
    /// clients turn certificate verification off (the KPL's `VerifyCertificate=false`).
    SelfSigned { names: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate file {path}: {source}")]
    Certificate { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("TLS certificate file {0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("cannot read TLS private key file {path}: {source}")]
    Key { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    #[error("TLS certificate and key cannot be used: {0}")]
    Unusable(#[from] rustls::Error),
}

/// ALPN protocols offered, preferred first: the AWS SDKs' HTTP/2 clients (SubscribeToShard) ask
/// for h2, everything else for http/1.1.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The acceptor for `source`; errors name the file and what is wrong with it.
pub fn acceptor(source: &TlsSource) -> Result<TlsAcceptor, TlsError> {
    let (chain, key) = match source {
        TlsSource::Files { cert, key } => (read_chain(cert)?, read_key(key)?),
        TlsSource::SelfSigned { names } => self_signed(names)?,
    };
    // The provider is named rather than taken from the process default, which rustls can only
    // pick when exactly one provider is compiled in.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificate { path: path.to_owned(), source })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Key { path: path.to_owned(), source })
}

type CertifiedKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn self_signed(names: &[String]) -> Result<CertifiedKey, TlsError> {
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names.to_vec())?;
    let key = PrivatePkcs8KeyDer::from(signing_key.serialize_der());
    Ok((vec![cert.der().clone()], key.into()))
}

/// The names a self-signed certificate is made for: loopback under every spelling, plus the
/// host the server listens on when it is a name or an address of its own.
pub fn self_signed_names(listen_host: &str) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(str::to_owned).to_vec();
    let host = listen_host.trim_start_matches('[').trim_end_matches(']');
    let unspecified = host.parse::<std::net::IpAddr>().is_ok_and(|address| address.is_unspecified());
    if !host.is_empty() && !unspecified && !names.iter().any(|name| name == host) {
        names.push(host.to_owned());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_names_cover_loopback_and_the_listen_host() {
        assert_eq!(self_signed_names("127.0.0.1"), ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(self_signed_names("0.0.0.0"), ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(self_signed_names("[::]"), ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(self_signed_names("kinesis.test"), ["localhost", "127.0.0.1", "::1", "kinesis.test"]);
    }

    #[test]
    fn a_self_signed_acceptor_offers_h2_and_http1() {
        let acceptor = acceptor(&TlsSource::SelfSigned { names: self_signed_names("127.0.0.1") }).unwrap();
        assert_eq!(acceptor.config().alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn unreadable_files_are_named_in_the_error() {
        let missing = TlsSource::Files { cert: "/nonexistent/cert.pem".into(), key: "/nonexistent/key.pem".into() };
        let error = acceptor(&missing).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error.starts_with("cannot read TLS certificate file /nonexistent/cert.pem"), "{error}");
    }
}
