//! PKCS#12 key stores from credentials.zip (reference/garage-sign.md §6.2): the client
//! identity `client_auth.p12` and the optional trust store `server.p12`, both with the
//! empty password garage-sign uses. rustls cannot read PKCS#12, so p12-keystore
//! decodes them and the key travels to reqwest as PEM in a zeroizing buffer.

use crate::error::{Error, Result};
use p12_keystore::{KeyStore, KeyStoreEntry, PrivateKeyChain};
use zeroize::Zeroizing;

/// garage-sign opens both key stores with the empty password.
const PASSWORD: &str = "";

fn open(data: &[u8], what: &str) -> Result<KeyStore> {
    KeyStore::from_pkcs12(data, PASSWORD).map_err(|e| {
        Error::invalid(
            what,
            format!("not a PKCS#12 key store readable with the empty password: {e}"),
        )
    })
}

fn pem_block(tag: &str, der: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(pem::encode(&pem::Pem::new(tag, der.to_vec())))
}

/// The client certificate (leaf first, then the rest of its chain) and its private
/// key, as a reqwest identity. The key store pairs keys with certificates by their
/// local key id; a key without its certificate is not usable.
pub fn identity(data: &[u8], what: &str) -> Result<reqwest::Identity> {
    let store = open(data, what)?;
    let chain: &PrivateKeyChain = store
        .entries()
        .find_map(|(_, e)| match e {
            KeyStoreEntry::PrivateKeyChain(c) if !c.chain().is_empty() => Some(c),
            _ => None,
        })
        .ok_or_else(|| {
            Error::invalid(
                what,
                "holds no private key with its certificate (expected the client key and certificate)",
            )
        })?;
    let mut pem = Zeroizing::new(String::new());
    for c in chain.chain() {
        pem.push_str(&pem_block("CERTIFICATE", c.as_der()));
    }
    pem.push_str(&pem_block("PRIVATE KEY", chain.key()));
    reqwest::Identity::from_pem(pem.as_bytes()).map_err(|e| {
        Error::invalid(
            what,
            format!("the client key or certificate cannot be used for TLS: {e}"),
        )
    })
}

/// Every trusted certificate of a trust store, to become the trusted roots.
pub fn trusted_roots(data: &[u8], what: &str) -> Result<Vec<reqwest::Certificate>> {
    let store = open(data, what)?;
    let certs: Vec<_> = store
        .entries()
        .filter_map(|(_, e)| match e {
            KeyStoreEntry::Certificate(c) => Some(c),
            KeyStoreEntry::PrivateKeyChain(_) => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::invalid(
            what,
            "holds no trusted certificate (a Java trust store entry)",
        ));
    }
    certs
        .iter()
        .map(|c| {
            reqwest::Certificate::from_der(c.as_der())
                .map_err(|e| Error::invalid(what, format!("unusable certificate: {e}")))
        })
        .collect()
}

/// A PEM bundle of extra CA certificates (`--cacert`, `OTA_SIGN_CACERT`).
pub fn ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>> {
    let bytes = crate::fsutil::read(path)?;
    let what = path.display().to_string();
    let certs = reqwest::Certificate::from_pem_bundle(&bytes)
        .map_err(|e| Error::invalid(&what, format!("not a PEM certificate bundle: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid(what, "holds no PEM CERTIFICATE block"));
    }
    Ok(certs)
}
