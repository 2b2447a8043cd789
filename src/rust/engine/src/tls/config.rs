//! Load and check a server's TLS material: a PEM certificate chain, its private key
//! (PKCS#8, PKCS#1 or SEC1), optionally a CA for client certificates; build the rustls
//! configuration (TLS 1.2 and 1.3 only, the `ring` provider). Each failure is its own
//! error naming the file and what is wrong, since a user reads it as an R error at start.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// Whether clients must present a certificate signed by the client CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates are asked for.
    None,
    /// Asked for; a client without one is still served (`SSL_CLIENT_VERIFY` is `NONE`).
    Optional,
    /// A client without a valid certificate fails the handshake.
    Required,
}

/// What the host passes at start or reload: paths of PEM files, read on each load.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA certificate(s) that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} file {path}: {source}")]
    Unreadable { what: &'static str, path: String, source: std::io::Error },
    #[error("the {what} file {path} is not PEM or holds no certificate")]
    NoCertificate { what: &'static str, path: String },
    #[error("the {what} file {path} has a malformed PEM section: {reason}")]
    BadPem { what: &'static str, path: String, reason: String },
    #[error("the key file {path} holds no private key (expected PEM: PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("the key file {path} holds a private key rustls cannot use: {reason}")]
    UnusableKey { path: String, reason: String },
    #[error("the key in {key} does not match the certificate in {cert}")]
    KeyMismatch { key: String, cert: String },
    #[error("the client_ca file {path} is unusable: {reason}")]
    ClientCa { path: String, reason: String },
    #[error("client_auth is set but no client_ca file was given")]
    NoClientCa,
    #[error("TLS configuration failed: {0}")]
    Config(String),
}

/// A loaded configuration, with what the host should warn about (an expired certificate
/// still serves: the operator may be replacing it).
pub struct Loaded {
    pub config: Arc<rustls::ServerConfig>,
    pub warnings: Vec<String>,
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Unreadable { what, path: shown(path), source })
}

/// Every certificate of a PEM file, in file order (leaf first for a chain).
pub fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| TlsError::BadPem {
        what,
        path: shown(path),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what, path: shown(path) });
    }
    Ok(certs)
}

/// The first private key of a PEM file, of any of the three kinds.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey { path: shown(path) },
        e => TlsError::BadPem { what: "key", path: shown(path), reason: e.to_string() },
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The ALPN protocols offered: `http/1.1`, and `h2` first when the server speaks HTTP/2.
pub fn alpn(alpn_h2: bool) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    if alpn_h2 {
        v.push(b"h2".to_vec());
    }
    v.push(b"http/1.1".to_vec());
    v
}

/// Read the files of `s` and build the rustls configuration.
pub fn load(s: &TlsSettings, alpn_h2: bool) -> Result<Loaded, TlsError> {
    let certs = certificates("certificate", &s.cert_file)?;
    let key = private_key(&s.key_file)?;
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::UnusableKey { path: shown(&s.key_file), reason: e.to_string() })?;
    // A mismatch would otherwise only show as every handshake failing.
    let certified = CertifiedKey::new(certs.clone(), signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => return Err(TlsError::KeyMismatch { key: shown(&s.key_file), cert: shown(&s.cert_file) }),
    }
    let mut warnings = Vec::new();
    if let Some(w) = validity_warning(&certs[0], &s.cert_file, SystemTime::now()) {
        warnings.push(w);
    }
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (s.client_auth, &s.client_ca_file) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err(TlsError::NoClientCa),
        (mode, Some(ca_path)) => {
            let ca_err = |reason: String| TlsError::ClientCa { path: shown(ca_path), reason };
            let mut roots = RootCertStore::empty();
            for ca in certificates("client_ca", ca_path)? {
                roots.add(ca).map_err(|e| ca_err(e.to_string()))?;
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            if mode == ClientAuth::Optional {
                v = v.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(v.build().map_err(|e| ca_err(e.to_string()))?)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = alpn(alpn_h2);
    Ok(Loaded { config: Arc::new(config), warnings })
}

/// A warning if `cert` is expired or not yet valid at `now`.
pub fn validity_warning(cert: &CertificateDer<'_>, path: &Path, now: SystemTime) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let v = parsed.validity();
    let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    if now > v.not_after.timestamp() {
        Some(format!("the certificate in {} expired on {}", shown(path), v.not_after))
    } else if now < v.not_before.timestamp() {
        Some(format!("the certificate in {} is not valid before {}", shown(path), v.not_before))
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
