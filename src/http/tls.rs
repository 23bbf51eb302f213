//! PKCS#12 key stores from credentials.zip (reference/garage-sign.md §6.2): the client
//! identity `client_auth.p12` and the optional trust store `server.p12`, both with the
//! empty password garage-sign uses. rustls cannot read PKCS#12, so p12-keystore
//! decodes them and the key travels to reqwest as PEM in a zeroizing buffer.

use crate::error::{Error, Result};
use p12_keystore::Pkcs12Archive;
use zeroize::Zeroizing;

/// garage-sign opens both key stores with the empty password.
const PASSWORD: &str = "";

fn open(data: &[u8], what: &str) -> Result<Pkcs12Archive> {
    Pkcs12Archive::from_pkcs12(data, PASSWORD).map_err(|e| {
        Error::invalid(
            what,
            format!("not a PKCS#12 key store readable with the empty password: {e}"),
        )
    })
}

fn pem_block(tag: &str, der: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(pem::encode(&pem::Pem::new(tag, der.to_vec())))
}

/// The client certificate (leaf first, then any other certificates of the store)
/// and its private key, as a reqwest identity.
pub fn identity(data: &[u8], what: &str) -> Result<reqwest::Identity> {
    let archive = open(data, what)?;
    let key = match archive.keys.as_slice() {
        [] => {
            return Err(Error::invalid(
                what,
                "holds no private key (expected the client key and certificate)",
            ))
        }
        [k] => k,
        [k, ..] => {
            // Prefer a key that has its certificate in the store.
            archive
                .keys
                .iter()
                .find(|k| {
                    k.local_key_id.as_ref().is_some_and(|id| {
                        archive
                            .certs
                            .iter()
                            .any(|c| c.local_key_id.as_deref() == Some(id.as_ref()))
                    })
                })
                .unwrap_or(k)
        }
    };
    let leaf = archive
        .certs
        .iter()
        .position(|c| {
            key.local_key_id
                .as_ref()
                .is_some_and(|id| c.local_key_id.as_deref() == Some(id.as_ref()))
        })
        .or(if archive.certs.len() == 1 {
            Some(0)
        } else {
            None
        })
        .ok_or_else(|| Error::invalid(what, "holds no certificate for its private key"))?;

    let mut pem = Zeroizing::new(String::new());
    pem.push_str(&pem_block("CERTIFICATE", archive.certs[leaf].cert.as_der()));
    for (i, c) in archive.certs.iter().enumerate() {
        if i != leaf {
            pem.push_str(&pem_block("CERTIFICATE", c.cert.as_der()));
        }
    }
    pem.push_str(&pem_block("PRIVATE KEY", key.key.as_der()));
    reqwest::Identity::from_pem(pem.as_bytes()).map_err(|e| {
        Error::invalid(
            what,
            format!("the client key or certificate cannot be used for TLS: {e}"),
        )
    })
}

/// Every certificate of a trust store, to become the trusted roots.
pub fn trusted_roots(data: &[u8], what: &str) -> Result<Vec<reqwest::Certificate>> {
    let archive = open(data, what)?;
    if archive.certs.is_empty() {
        return Err(Error::invalid(what, "holds no certificate to trust"));
    }
    archive
        .certs
        .iter()
        .map(|c| {
            reqwest::Certificate::from_der(c.cert.as_der())
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
