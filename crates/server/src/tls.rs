//! HTTPS for client connections: the rustls server configuration (aws-lc-rs, the workspace's
//! one crypto provider), the certificate that follows its files on disk, client-certificate
//! verification, and the self-signed CA + leaf of `--tls-self-signed`.
//!
//! - **Reloading**: [`FileCert`] is the configuration's certificate resolver. On every
//!   handshake it compares the files' stamps (modification time, size, inode: two `stat`
//!   calls) with those of the certificate it holds and, when one changed, reads and parses
//!   both files again (a pair that does not parse or does not match is logged and the previous
//!   certificate kept, so a half-finished rotation serves the old one until it is complete).
//!   The next connection therefore gets the new certificate; open connections keep the
//!   session they negotiated. No watcher task, no polling interval.
//! - **HTTP/2** is offered through ALPN (`h2`, then `http/1.1`); `conn.rs` serves whichever the
//!   client picked (hyper-util's auto builder reads the preface).
//! - **Client certificates** (`--tls-client-ca`): every client must present a certificate
//!   that chains to one of the file's CAs (rustls' webpki verifier); others fail the handshake.
//! - **Self-signed** (`--tls-self-signed`): a CA (`<data dir>/tls/ca.pem`, kept across
//!   restarts so a client trusts it once) signs a fresh ECDSA P-256 leaf at every start for
//!   `localhost`, `127.0.0.1`, `::1`, the listen address and the public URL's host.

use crate::keys::write_private_file;
pub use crate::settings::TlsSource;
use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {path}: {message}")]
    File { flag: &'static str, path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("--tls-self-signed: {0}")]
    Generate(String),
}

/// The files `--tls-self-signed` writes in the data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSignedFiles {
    /// The CA certificate clients are told to trust.
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl SelfSignedFiles {
    pub fn in_data_dir(data_dir: &Path) -> SelfSignedFiles {
        let dir = data_dir.join("tls");
        SelfSignedFiles {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// The TLS side of the listener: what `conn.rs` hands each accepted connection to.
#[derive(Clone)]
pub struct ServerTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// With `--tls-self-signed`: the CA file to trust.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("ca_file", &self.ca_file).finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the server side of TLS for `source`, or `None` for plain HTTP. `names` are the
/// extra host names or addresses a self-signed leaf is issued for (the public URL's host).
pub fn server_tls(
    source: &TlsSource,
    client_ca: Option<&Path>,
    data_dir: &Path,
    listen: SocketAddr,
    names: &[String],
) -> Result<Option<ServerTls>, TlsError> {
    let (cert, key, ca_file) = match source {
        TlsSource::Off => {
            if client_ca.is_some() {
                return Err(TlsError::Config(
                    "--tls-client-ca needs TLS: add --tls-cert and --tls-key, or --tls-self-signed".into(),
                ));
            }
            return Ok(None);
        }
        TlsSource::Files { cert, key } => (cert.clone(), key.clone(), None),
        TlsSource::SelfSigned => {
            let files = SelfSignedFiles::in_data_dir(data_dir);
            generate_self_signed(&files, listen, names)?;
            (files.cert, files.key, Some(files.ca_cert))
        }
    };
    let provider = provider();
    let resolver = Arc::new(FileCert::load(cert, key, provider.clone())?);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let file_err =
                |message: String| TlsError::File { flag: "--tls-client-ca", path: path.to_path_buf(), message };
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(path).map_err(|e| file_err(e.to_string()))? {
                roots.add(c.map_err(|e| file_err(e.to_string()))?).map_err(|e| file_err(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(file_err("no CERTIFICATE in the file".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| file_err(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(ServerTls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca_file }))
}

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp { modified: m.modified().ok(), len: m.len(), ino: m.ino() })
}

/// The server certificate read from `cert` and `key`, re-read when either file changes.
struct FileCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// The stamps of the files the current certificate was read from (or last failed to read).
    seen: Mutex<(Option<Stamp>, Option<Stamp>)>,
}

impl std::fmt::Debug for FileCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCert").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

impl FileCert {
    fn load(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> Result<FileCert, TlsError> {
        let stamps = (stamp(&cert), stamp(&key));
        let current = read_pair(&cert, &key, &provider)?;
        Ok(FileCert { cert, key, provider, current: ArcSwap::from_pointee(current), seen: Mutex::new(stamps) })
    }

    /// Re-reads the files if they changed since they were last read.
    fn refresh(&self) {
        let now = (stamp(&self.cert), stamp(&self.key));
        let Ok(mut seen) = self.seen.lock() else { return };
        if *seen == now {
            return;
        }
        *seen = now;
        match read_pair(&self.cert, &self.key, &self.provider) {
            Ok(ck) => {
                self.current.store(Arc::new(ck));
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate files changed but cannot be used; serving the previous certificate")
            }
        }
    }
}

impl ResolvesServerCert for FileCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(self.current.load_full())
    }
}

/// Reads a certificate chain and its private key and checks that they belong together.
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_err = |message: String| TlsError::File { flag: "--tls-cert", path: cert.to_path_buf(), message };
    let key_err = |message: String| TlsError::File { flag: "--tls-key", path: key.to_path_buf(), message };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| key_err(format!("no usable private key: {e}")))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| key_err(format!("does not fit the certificate: {e}")))
}

/// The CA's fixed parameters: the same at every start, so a stored CA key issues leaves whose
/// issuer is the stored CA certificate.
fn ca_params() -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, "Tollgate local CA");
    p.distinguished_name.push(rcgen::DnType::OrganizationName, "Tollgate (--tls-self-signed)");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2045, 1, 1);
    p
}

/// Creates the CA (unless both its files exist) and a new leaf for the listen address.
pub fn generate_self_signed(files: &SelfSignedFiles, listen: SocketAddr, names: &[String]) -> Result<(), TlsError> {
    let gen_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let io_err = |path: &Path, e: std::io::Error| TlsError::Generate(format!("{}: {e}", path.display()));
    if let Some(dir) = files.ca_cert.parent() {
        crate::keys::create_private_dir(dir).map_err(|e| TlsError::Generate(e.to_string()))?;
    }
    let ca_key = if files.ca_cert.exists() && files.ca_key.exists() {
        let pem = std::fs::read_to_string(&files.ca_key).map_err(|e| io_err(&files.ca_key, e))?;
        rcgen::KeyPair::from_pem(&pem).map_err(gen_err)?
    } else {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
        let cert = ca_params().self_signed(&key).map_err(gen_err)?;
        write_private_file(&files.ca_key, &key.serialize_pem()).map_err(|e| TlsError::Generate(e.to_string()))?;
        std::fs::write(&files.ca_cert, cert.pem()).map_err(|e| io_err(&files.ca_cert, e))?;
        key
    };
    let issuer = rcgen::Issuer::new(ca_params(), ca_key);
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !listen.ip().is_unspecified() {
        sans.push(listen.ip().to_string());
    }
    sans.extend(names.iter().cloned());
    sans.sort();
    sans.dedup();
    let mut leaf = rcgen::CertificateParams::new(sans).map_err(gen_err)?;
    leaf.distinguished_name.push(rcgen::DnType::CommonName, "tollgate");
    leaf.use_authority_key_identifier_extension = true;
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = rcgen::date_time_ymd(2025, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
    let cert = leaf.signed_by(&key, &issuer).map_err(gen_err)?;
    write_private_file(&files.key, &key.serialize_pem()).map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::write(&files.cert, cert.pem()).map_err(|e| io_err(&files.cert, e))?;
    Ok(())
}
