//! Mutual TLS material: a CA, a server certificate (SAN `127.0.0.1`, `localhost`) and
//! a client certificate, generated with rcgen at `init-account`, plus the PKCS#12
//! files OTA Connect puts in credentials.zip (`client_auth.p12`: client key and
//! chain; `server.p12`: trust store with the CA; both with an empty password).
//!
//! Files in `<data-dir>/tls/` (0700): `ca.der`, `server.der`, `server.key.der`
//! (PKCS#8, 0600), `client.der`, `client.key.der` (PKCS#8, 0600).

use crate::error::{Error, Result};
use crate::fsutil;
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKeyChain};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

fn tls_dir(dir: &Path) -> PathBuf {
    dir.join("tls")
}

fn rc(e: rcgen::Error) -> Error {
    Error::Other(format!("certificate generation failed: {e}"))
}

fn p12(e: p12_keystore::error::Error) -> Error {
    Error::Other(format!("PKCS#12: {e}"))
}

/// Generates the CA, server and client certificates into `<dir>/tls`.
pub fn generate(dir: &Path) -> Result<()> {
    let t = tls_dir(dir);
    fsutil::create_private_dir(&t)?;
    let ca_key = KeyPair::generate().map_err(rc)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ota-reposerver CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rc)?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let server_key = KeyPair::generate().map_err(rc)?;
    let mut sp = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(rc)?;
    sp.distinguished_name.push(DnType::CommonName, "localhost");
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = sp.signed_by(&server_key, &issuer).map_err(rc)?;

    let client_key = KeyPair::generate().map_err(rc)?;
    let mut cp = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    cp.distinguished_name
        .push(DnType::CommonName, "ota-reposerver client");
    // The upstream test nginx derives the namespace from the subject's OU.
    cp.distinguished_name
        .push(DnType::OrganizationalUnitName, "default");
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = cp.signed_by(&client_key, &issuer).map_err(rc)?;

    let public =
        |name: &str, data: &[u8]| fsutil::write_atomic(&t.join(name), data, fsutil::PUBLIC_FILE);
    let private =
        |name: &str, data: &[u8]| fsutil::write_atomic(&t.join(name), data, fsutil::PRIVATE_FILE);
    public("ca.der", ca_cert.der())?;
    public("server.der", server_cert.der())?;
    private(
        "server.key.der",
        &Zeroizing::new(server_key.serialize_der()),
    )?;
    public("client.der", client_cert.der())?;
    private(
        "client.key.der",
        &Zeroizing::new(client_key.serialize_der()),
    )?;
    Ok(())
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    fsutil::read(&tls_dir(dir).join(name))
}

/// `client_auth.p12`: the client key with its certificate and the CA, password "".
pub fn client_p12(dir: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let key_der = Zeroizing::new(read(dir, "client.key.der")?);
    let cert = Certificate::from_der(&read(dir, "client.der")?).map_err(p12)?;
    let ca = Certificate::from_der(&read(dir, "ca.der")?).map_err(p12)?;
    let local_id = crate::crypto::sha256(cert.as_der()).to_vec();
    let chain = PrivateKeyChain::new(&*key_der, local_id, [cert, ca]);
    let mut ks = KeyStore::new();
    ks.add_entry("client_auth", KeyStoreEntry::PrivateKeyChain(chain));
    ks.writer("").write().map(Zeroizing::new).map_err(p12)
}

/// `server.p12`: a trust store holding the CA certificate, password "".
pub fn server_p12(dir: &Path) -> Result<Vec<u8>> {
    let ca = Certificate::from_der(&read(dir, "ca.der")?).map_err(p12)?;
    let mut ks = KeyStore::new();
    ks.add_entry("ca", KeyStoreEntry::Certificate(ca));
    ks.writer("").write().map_err(p12)
}

/// The server's rustls configuration: its certificate, and client certificates
/// issued by the CA required on every connection.
pub fn server_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    crate::crypto::install_tls_provider();
    let ca = CertificateDer::from(read(dir, "ca.der")?);
    let server = CertificateDer::from(read(dir, "server.der")?);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(read(dir, "server.key.der")?));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| Error::Other(format!("CA certificate: {e}")))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| Error::Other(format!("client certificate verifier: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server, ca], key)
        .map_err(|e| Error::Other(format!("server certificate: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p12_files_read_back() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        let client = client_p12(dir.path()).unwrap();
        let ks = KeyStore::from_pkcs12(&client, "").unwrap();
        let (_, chain) = ks.private_key_chain().expect("a key chain");
        assert_eq!(
            chain.chain()[0].as_der(),
            read(dir.path(), "client.der").unwrap()
        );
        let server = server_p12(dir.path()).unwrap();
        let ts = KeyStore::from_pkcs12(&server, "").unwrap();
        assert!(ts.entries().any(|(_, e)| matches!(e, KeyStoreEntry::Certificate(c) if c.as_der() == read(dir.path(), "ca.der").unwrap())));
        server_config(dir.path()).unwrap();
    }
}
