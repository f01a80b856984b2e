//! A throwaway certificate authority for TLS tests: it issues server certificates (for
//! `--tls-cert`/`--tls-key`) and client certificates (for `--tls-client-ca`), as PEM files in
//! a temp dir. Generated with rcgen on aws-lc-rs, like the gateway's `--tls-self-signed`.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// A CA and the directory its files are written to.
#[derive(Debug)]
pub struct TestPki {
    dir: tempfile::TempDir,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The CA certificate file.
    pub ca_file: PathBuf,
}

/// A certificate and its key, in PEM and as files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// DER of the certificate (to compare with what a server presented).
    pub cert_der: Vec<u8>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestPki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<TestPki> {
        let dir = tempfile::tempdir()?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem())?;
        Ok(TestPki { ca_pem: cert.pem(), ca_file, issuer: rcgen::Issuer::new(params, key), dir })
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate for `127.0.0.1` and `localhost`, written to `<stem>.pem` and
    /// `<stem>.key`.
    pub fn server(&self, stem: &str) -> anyhow::Result<Issued> {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
        params.distinguished_name.push(rcgen::DnType::CommonName, stem);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        self.issue(params, stem)
    }

    /// A client certificate for `name`.
    pub fn client(&self, name: &str) -> anyhow::Result<Issued> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        self.issue(params, name)
    }

    fn issue(&self, params: rcgen::CertificateParams, stem: &str) -> anyhow::Result<Issued> {
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer).context("signing")?;
        let cert_file = self.dir.path().join(format!("{stem}.pem"));
        let key_file = self.dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert_file, cert.pem())?;
        std::fs::write(&key_file, key.serialize_pem())?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            cert_file,
            key_file,
        })
    }
}

/// Replaces `dest` by `src` the way cert-manager's volume does: write beside, then rename
/// (so a reader never sees half a file).
pub fn swap_file(src: &Path, dest: &Path) -> anyhow::Result<()> {
    let tmp = dest.with_extension("swap");
    std::fs::copy(src, &tmp)?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}
