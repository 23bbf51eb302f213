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

/// Every certificate of a trust store, to become the trusted roots. keytool marks
/// trust-store entries with its trusted attribute, which p12-keystore requires; stores
/// written by other tools (as ota-tuf's test credentials) have plain certificate bags,
/// read one by one.
pub fn trusted_roots(data: &[u8], what: &str) -> Result<Vec<reqwest::Certificate>> {
    let store = open(data, what)?; // checks the password and the MAC
    let mut certs: Vec<Vec<u8>> = store
        .entries()
        .filter_map(|(_, e)| match e {
            KeyStoreEntry::Certificate(c) => Some(c.as_der().to_vec()),
            KeyStoreEntry::PrivateKeyChain(_) => None,
        })
        .collect();
    if certs.is_empty() {
        certs = certificate_bags(data).map_err(|e| Error::invalid(what, e))?;
    }
    if certs.is_empty() {
        return Err(Error::invalid(what, "holds no certificate to trust"));
    }
    certs
        .iter()
        .map(|c| {
            reqwest::Certificate::from_der(c)
                .map_err(|e| Error::invalid(what, format!("unusable certificate: {e}")))
        })
        .collect()
}

/// The X.509 certificates of every certificate bag, decrypting encrypted contents.
fn certificate_bags(data: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    use der::{Decode, Encode};
    use pkcs12::safe_bag::SafeContents;
    const ID_DATA: der::asn1::ObjectIdentifier =
        der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
    const ID_ENCRYPTED_DATA: der::asn1::ObjectIdentifier =
        der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
    let der_err = |e: der::Error| e.to_string();
    let octets = |any: &der::Any| -> std::result::Result<Vec<u8>, String> {
        let bytes = any.to_der().map_err(der_err)?;
        Ok(der::asn1::OctetString::from_der(&bytes)
            .map_err(der_err)?
            .into_bytes())
    };
    let pfx = pkcs12::pfx::Pfx::from_der(data).map_err(der_err)?;
    let safes =
        pkcs12::authenticated_safe::AuthenticatedSafe::from_der(&octets(&pfx.auth_safe.content)?)
            .map_err(der_err)?;
    let mut certs = Vec::new();
    for safe in safes {
        let contents = match safe.content_type {
            ID_DATA => Zeroizing::new(octets(&safe.content)?),
            ID_ENCRYPTED_DATA => {
                let enc = cms::encrypted_data::EncryptedData::from_der(
                    &safe.content.to_der().map_err(der_err)?,
                )
                .map_err(der_err)?
                .enc_content_info;
                let sealed = enc
                    .encrypted_content
                    .map(|c| c.into_bytes())
                    .unwrap_or_default();
                crate::crypto::pkcs12_decrypt(&enc.content_enc_alg, PASSWORD, &sealed)
                    .map_err(|e| e.to_string())?
            }
            _ => continue,
        };
        for bag in SafeContents::from_der(&contents).map_err(der_err)? {
            if bag.bag_id == pkcs12::PKCS_12_CERT_BAG_OID {
                // bagValue is [0] EXPLICIT, kept as raw TLV by pkcs12's SafeBag.
                let cert: der::asn1::ContextSpecific<pkcs12::cert_type::CertBag> =
                    der::asn1::ContextSpecific::from_der(&bag.bag_value).map_err(der_err)?;
                if cert.value.cert_id == pkcs12::PKCS_12_X509_CERT_OID {
                    certs.push(cert.value.cert_value.into_bytes());
                }
            }
        }
    }
    Ok(certs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry};

    /// ota-tuf's mutual-TLS test credentials (`../shared/fixtures` beside the checkout).
    fn fixture_zip() -> Option<crate::credentials::Credentials> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let zip = root.ancestors().skip(1).map(|a| {
            a.join(
                "shared/fixtures/ota-tuf/cli/src/test/resources/credentials_tls-auth_ed25519.zip",
            )
        });
        let zip = zip.into_iter().find(|p| p.is_file())?;
        Some(crate::credentials::Credentials::read(&zip).unwrap())
    }

    #[test]
    fn trust_store_without_keytool_attributes() {
        let creds = fixture_zip().expect("shared/fixtures not found");
        // RC2-40 encrypted certificate bags without keytool's trusted attribute.
        let server = creds.entry("server.p12").unwrap();
        assert_eq!(certificate_bags(server).unwrap().len(), 1);
        assert_eq!(trusted_roots(server, "server.p12").unwrap().len(), 1);
        identity(creds.entry("client_auth.p12").unwrap(), "client_auth.p12").unwrap();
    }

    #[test]
    fn certificate_bags_of_an_aes_store() {
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let mut ks = KeyStore::new();
        let cert = Certificate::from_der(ca.cert.der()).unwrap();
        ks.add_entry("ca", KeyStoreEntry::Certificate(cert));
        let p12 = ks.writer(PASSWORD).write().unwrap();
        assert_eq!(
            certificate_bags(&p12).unwrap(),
            vec![ca.cert.der().to_vec()]
        );
        assert!(certificate_bags(b"not a key store").is_err());
    }
}
