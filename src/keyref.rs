//! Key references: every command that signs names its keys the same way, and
//! [`resolve_signing_key`] turns the name into a [`KeyHandle`] wherever the key lives:
//!
//! - a `pkcs11:` URI (RFC 7512): the key on a PKCS#11 token ([`crate::pkcs11`]);
//! - a name with a `keys/<name>.pkcs11` alias: the URI in that file (never a PIN);
//! - any other name: `keys/<name>.sec`, checked against `keys/<name>.pub`.
//!
//! A [`KeyHandle`] signs through [`crate::crypto::Signer`] and checks each signature
//! against its public key before handing it out, so a faulty token (or a `.pub` that
//! does not match) can never produce metadata that devices reject.

use crate::crypto::Signer;
use crate::error::{Error, Result};
use crate::fsutil::{self, PUBLIC_FILE};
use crate::keys::{KeyId, KeyType, PrivateKey, PublicKey};
use crate::pkcs11::{self, Pkcs11Uri, TokenKey};
use crate::repo::check_name;
use base64::Engine;
use std::fmt;
use std::path::{Path, PathBuf};

/// File extension of a token key alias in a keys directory.
pub const ALIAS_EXT: &str = "pkcs11";
/// The credentials zip entry that names a token targets key in place of
/// `targets.sec`: one line, the `pkcs11:` URI without any PIN.
pub const TOKEN_ENTRY: &str = "targets.pkcs11";

/// A key that can sign, in memory or on a token.
pub struct KeyHandle {
    public: PublicKey,
    signer: Box<dyn Signer>,
    /// The key name or token URI (never a PIN), for error messages.
    origin: String,
}

impl fmt::Debug for KeyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyHandle({} {} {})",
            self.origin,
            self.public.keytype(),
            self.public.key_id()
        )
    }
}

impl KeyHandle {
    /// A software key (the ring key object is built once, here).
    pub fn software(key: &PrivateKey, origin: &str) -> Result<Self> {
        Ok(KeyHandle {
            public: key.public().clone(),
            signer: Box::new(key.signing_key()?),
            origin: origin.to_string(),
        })
    }

    /// The private key a `pkcs11:` URI names, opened and logged in.
    pub fn token(uri: &Pkcs11Uri) -> Result<Self> {
        let key = TokenKey::open(uri)?;
        Ok(KeyHandle {
            public: key.public().clone(),
            origin: uri.to_string(),
            signer: Box::new(key),
        })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }

    pub fn keytype(&self) -> KeyType {
        self.public.keytype()
    }

    /// Signs `message` and returns the base64 signature, checked against the public key.
    pub fn sign_base64(&self, message: &[u8]) -> Result<String> {
        let unchecked = self.sign_unchecked(message)?;
        unchecked.check(message)?;
        Ok(unchecked.sig)
    }

    /// Signs `message`; the check against the public key is left to the caller
    /// ([`UncheckedSignature::check`]), who must run it before anything signed is kept.
    pub fn sign_unchecked(&self, message: &[u8]) -> Result<UncheckedSignature> {
        Ok(UncheckedSignature {
            public: self.public.clone(),
            origin: self.origin.clone(),
            sig: base64::engine::general_purpose::STANDARD.encode(self.signer.sign(message)?),
        })
    }

    /// Fails unless this key's public half is `expected` (e.g. `keys/<name>.pub`).
    fn check_public(self, expected: &PublicKey, what: &Path) -> Result<Self> {
        if expected.spki_der() != self.public.spki_der() {
            return Err(Error::key(
                self.origin,
                format!(
                    "{} holds key {} but the token key is {}: the alias points at another key",
                    what.display(),
                    expected.key_id(),
                    self.public.key_id()
                ),
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
impl KeyHandle {
    /// A key whose signer answers with another key's signatures (a faulty token).
    pub(crate) fn faulty_for_tests() -> Self {
        Self::faulty_of_type_for_tests(KeyType::Ed25519)
    }

    /// As [`Self::faulty_for_tests`] with a public key of `keytype` (the signatures
    /// stay Ed25519 ones, so their length may not be the key type's).
    pub(crate) fn faulty_of_type_for_tests(keytype: KeyType) -> Self {
        let key = PrivateKey::generate(keytype, None).unwrap();
        let other = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
        KeyHandle {
            public: key.public().clone(),
            signer: Box::new(other.signing_key().unwrap()),
            origin: "faulty".into(),
        }
    }
}

/// A signature made by a [`KeyHandle`] and not yet checked against its public key.
/// Holding no handle, the check can run on another thread: `targets sign` runs it on
/// the second core while the file is written, and renames the file only once it passed.
#[derive(Clone, Debug)]
pub struct UncheckedSignature {
    public: PublicKey,
    origin: String,
    sig: String,
}

impl UncheckedSignature {
    /// The id of the key that signed.
    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }

    /// The signature method, from the key type.
    pub fn method(&self) -> &'static str {
        self.public.keytype().signature_method()
    }

    /// The base64 signature, to be written before the check has run.
    pub fn sig(&self) -> &str {
        &self.sig
    }

    /// Fails unless the signature verifies with the public key: a faulty key or token
    /// must never produce metadata that devices reject.
    pub fn check(&self, message: &[u8]) -> Result<()> {
        if self.public.verify(self.method(), message, &self.sig) {
            return Ok(());
        }
        Err(Error::key(
            self.origin.clone(),
            format!(
                "the signature made with this key does not verify with its public key {}; nothing was written",
                self.key_id()
            ),
        ))
    }
}

fn alias_path(keys_dir: &Path, name: &str) -> PathBuf {
    keys_dir.join(format!("{name}.{ALIAS_EXT}"))
}

/// Parses a stored token reference (an alias file or a credentials zip entry):
/// one `pkcs11:` URI, which must not carry a PIN.
pub fn parse_stored_uri(text: &str, what: &str) -> Result<Pkcs11Uri> {
    let uri = Pkcs11Uri::parse(text.trim()).map_err(|e| Error::invalid(what, e.to_string()))?;
    if uri.has_pin_value() {
        return Err(Error::invalid(
            what,
            format!("holds a pin-value: PINs are never stored; remove it and give the PIN in {} or a pin-source file", pkcs11::PIN_ENV),
        ));
    }
    Ok(uri)
}

/// A credentials zip's token targets key: the `targets.pkcs11` URI (no PIN) and
/// `targets.pub`. `None` when the zip has no `targets.pkcs11`; an error when it also
/// holds `targets.sec` or either entry is unreadable.
pub fn zip_token_reference(
    creds: &crate::credentials::Credentials,
    zip: &str,
) -> Result<Option<(Pkcs11Uri, PublicKey)>> {
    let Some(reference) = creds.entry(TOKEN_ENTRY) else {
        return Ok(None);
    };
    let what = format!("{zip}: {TOKEN_ENTRY}");
    if creds.entry("targets.sec").is_some() {
        return Err(Error::invalid(
            what,
            "the zip holds both targets.sec and a token reference: export it again",
        ));
    }
    let text =
        std::str::from_utf8(reference).map_err(|_| Error::invalid(&what, "is not UTF-8 text"))?;
    let uri = parse_stored_uri(text, &what)?;
    let pub_what = format!("{zip}: targets.pub");
    let public = creds
        .entry("targets.pub")
        .ok_or_else(|| Error::invalid(&pub_what, "is missing"))?;
    let public: serde_json::Value = serde_json::from_slice(public)
        .map_err(|e| Error::invalid(&pub_what, format!("invalid JSON: {e}")))?;
    let public = PublicKey::from_json(&public, false)
        .map_err(|e| Error::invalid(&pub_what, e.to_string()))?;
    Ok(Some((uri, public)))
}

/// The token reference `name` stands for in `keys_dir`: the URI itself, or the
/// `<name>.pkcs11` alias. `None` for a software key name.
pub fn token_reference(keys_dir: &Path, name: &str) -> Result<Option<Pkcs11Uri>> {
    if pkcs11::is_uri(name) {
        return Pkcs11Uri::parse(name).map(Some);
    }
    check_name("key", name)?;
    let path = alias_path(keys_dir, name);
    if !path.exists() {
        return Ok(None);
    }
    let sec = keys_dir.join(format!("{name}.sec"));
    if sec.exists() {
        return Err(Error::key(
            name,
            format!(
                "both {} and {} exist: remove one so it is clear where the key lives",
                path.display(),
                sec.display()
            ),
        ));
    }
    let text = fsutil::read_to_string(&path)?;
    parse_stored_uri(&text, &path.display().to_string()).map(Some)
}

/// Resolves a key name wherever a command takes one (`-k`, `--key-name`,
/// `--new-root`, ...): a `pkcs11:` URI, a `keys/<name>.pkcs11` alias, or
/// `keys/<name>.sec` (+ `.pub`). The one function every signing command calls.
pub fn resolve_signing_key(keys_dir: &Path, name: &str) -> Result<KeyHandle> {
    match token_reference(keys_dir, name)? {
        Some(uri) => {
            let key = KeyHandle::token(&uri)?;
            let public = keys_dir.join(format!("{name}.pub"));
            if !pkcs11::is_uri(name) && public.exists() {
                let expected = crate::repo::read_public_key_file(&public)?;
                return key.check_public(&expected, &public);
            }
            Ok(key)
        }
        None => KeyHandle::software(&crate::repo::read_private_key_pair(keys_dir, name)?, name),
    }
}

/// The public key a name refers to: `keys/<name>.pub`, or read from the token for a URI.
pub fn resolve_public_key(keys_dir: &Path, name: &str) -> Result<PublicKey> {
    if pkcs11::is_uri(name) {
        return Ok(KeyHandle::token(&Pkcs11Uri::parse(name)?)?.public);
    }
    check_name("key", name)?;
    crate::repo::read_public_key_file(&keys_dir.join(format!("{name}.pub")))
}

/// Writes `<name>.pub` and the `<name>.pkcs11` alias (URI without PIN) for a token
/// key. Refuses to shadow an existing `<name>.sec`.
pub fn write_token_alias(
    keys_dir: &Path,
    name: &str,
    uri: &Pkcs11Uri,
    public: &PublicKey,
) -> Result<()> {
    check_name("key", name)?;
    let sec = keys_dir.join(format!("{name}.sec"));
    if sec.exists() {
        return Err(Error::key(
            name,
            format!(
                "{} exists: choose another name for the token key",
                sec.display()
            ),
        ));
    }
    fsutil::create_private_dir(keys_dir)?;
    fsutil::write_atomic(
        &keys_dir.join(format!("{name}.pub")),
        crate::canonical::to_pretty(&public.to_json()).as_bytes(),
        PUBLIC_FILE,
    )?;
    let text = format!("{}\n", uri.without_pin());
    fsutil::write_atomic(&alias_path(keys_dir, name), text.as_bytes(), PUBLIC_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_that_does_not_verify_is_refused() {
        let key = KeyHandle::faulty_for_tests();
        let err = key.sign_base64(b"{}").unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        let unchecked = key.sign_unchecked(b"{}").unwrap();
        assert!(unchecked.check(b"{}").is_err());
    }

    #[test]
    fn a_good_signature_passes_its_check_only_for_its_message() {
        let key = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
        let handle = KeyHandle::software(&key, "good").unwrap();
        let unchecked = handle.sign_unchecked(b"{\"a\":1}").unwrap();
        unchecked.check(b"{\"a\":1}").unwrap();
        assert!(unchecked.check(b"{\"a\":2}").is_err());
        assert_eq!(unchecked.key_id(), key.key_id());
    }
}
