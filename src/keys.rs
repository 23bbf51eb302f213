//! Keys as ota-tuf stores them (reference/garage-sign.md §4.1–4.2).
//!
//! - `ED25519`: public = 64 lower-case hex (raw key), private = 128 hex (seed ‖ public).
//! - `RSA`: public = SPKI PEM (`BEGIN PUBLIC KEY`, 64 columns, trailing `\n`),
//!   private = PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`); PKCS#8 is refused like ota-tuf does.
//! - `ECPRIME256V1`: hex DER SPKI / hex DER PKCS#8; parsed, never used to sign.
//!
//! The key id is always `hex(sha256(DER SubjectPublicKeyInfo))`, the convention the
//! ota-tuf keyserver recomputes when it prunes keys after a root rotation.

use crate::canonical::to_pretty;
use crate::crypto::{self, SigningKey};
use crate::error::{Error, Result};
pub use crate::schema::KeyId;
use base64::Engine;
use der::{Decode, Encode};
use serde_json::{json, Value};
use std::fmt;
use zeroize::Zeroizing;

const OID_RSA: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_ED25519: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_EC: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// RFC 8410 SPKI prefix of an Ed25519 public key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// RSA sizes aktualizr accepts and ring can sign with.
pub const RSA_KEY_SIZES: [usize; 3] = [2048, 3072, 4096];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    Rsa,
    Ed25519,
    EcPrime256v1,
}

impl KeyType {
    /// The exact `keytype` string ota-tuf writes and (case-sensitively) reads.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::Ed25519 => "ED25519",
            KeyType::EcPrime256v1 => "ECPRIME256V1",
        }
    }

    /// Strict, as ota-tuf's decoder.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RSA" => Some(KeyType::Rsa),
            "ED25519" => Some(KeyType::Ed25519),
            "ECPRIME256V1" => Some(KeyType::EcPrime256v1),
            _ => None,
        }
    }

    /// Case-insensitive, as aktualizr reads roots (some real roots say `rsa`).
    pub fn parse_lenient(s: &str) -> Option<Self> {
        Self::parse(&s.to_ascii_uppercase())
    }

    /// The signature `method` garage-sign writes for this key type.
    pub fn signature_method(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsassa-pss-sha256",
            KeyType::Ed25519 => "ed25519",
            KeyType::EcPrime256v1 => "ecPrime256v1",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A public key, with `keyval.public` kept exactly as it was read so that re-encoding
/// a root reproduces the signed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    keytype: KeyType,
    public: String,
    spki_der: Vec<u8>,
    /// RSA: PKCS#1 `RSAPublicKey` DER; Ed25519: the 32 raw bytes; EC: the point.
    raw: Vec<u8>,
}

impl PublicKey {
    pub fn keytype(&self) -> KeyType {
        self.keytype
    }

    /// `keyval.public` as stored.
    pub fn public_value(&self) -> &str {
        &self.public
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub fn key_id(&self) -> KeyId {
        KeyId::of_spki(&self.spki_der)
    }

    /// RSA modulus size in bits, if RSA.
    pub fn rsa_bits(&self) -> Option<usize> {
        if self.keytype != KeyType::Rsa {
            return None;
        }
        rsa_modulus_bits(&self.raw).ok()
    }

    /// The length in bytes of every signature this key makes, where it is fixed:
    /// Ed25519 64, RSASSA-PSS the modulus length; `None` for ECDSA (DER, variable).
    pub fn signature_len(&self) -> Option<usize> {
        match self.keytype {
            KeyType::Ed25519 => Some(64),
            KeyType::Rsa => self.rsa_bits().map(|bits| bits.div_ceil(8)),
            _ => None,
        }
    }

    pub fn ed25519(public: [u8; 32]) -> Self {
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&public);
        PublicKey {
            keytype: KeyType::Ed25519,
            public: hex::encode(public),
            spki_der: spki,
            raw: public.to_vec(),
        }
    }

    /// From PKCS#1 `RSAPublicKey` DER, encoded as BouncyCastle's JcaPEMWriter does.
    pub fn rsa_from_pkcs1(pkcs1: &[u8]) -> Result<Self> {
        let bits = rsa_modulus_bits(pkcs1)?;
        if bits < 2048 {
            return Err(Error::key(
                "RSA",
                format!("{bits}-bit RSA keys are too small; at least 2048 bits are required"),
            ));
        }
        let spki = spki::SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: OID_RSA,
                parameters: Some(der::Any::null()),
            },
            subject_public_key: der::asn1::BitString::from_bytes(pkcs1)
                .map_err(|e| Error::key("RSA", format!("cannot encode public key: {e}")))?,
        }
        .to_der()
        .map_err(|e| Error::key("RSA", format!("cannot encode public key: {e}")))?;
        let public = pem_lf("PUBLIC KEY", &spki);
        Ok(PublicKey {
            keytype: KeyType::Rsa,
            public,
            spki_der: spki,
            raw: pkcs1.to_vec(),
        })
    }

    /// Parses `keytype` + `keyval.public` as ota-tuf does (strict keytype).
    pub fn from_parts(keytype: KeyType, public: &str) -> Result<Self> {
        let bad = |m: String| Error::key(format!("{keytype} public key"), m);
        match keytype {
            KeyType::Ed25519 => {
                let bytes = hex::decode(public.trim())
                    .map_err(|_| bad("keyval.public is not hex".into()))?;
                let raw: [u8; 32] = bytes.try_into().map_err(|_| {
                    bad("keyval.public must be 32 bytes (64 hex characters); this may be a legacy 2017 ota-tuf key, which is not supported".into())
                })?;
                let mut key = PublicKey::ed25519(raw);
                key.public = public.to_string();
                Ok(key)
            }
            KeyType::Rsa => {
                let pem = pem::parse(public.as_bytes())
                    .map_err(|e| bad(format!("keyval.public is not a PEM public key: {e}")))?;
                if pem.tag() != "PUBLIC KEY" {
                    return Err(bad(format!(
                        "expected a `BEGIN PUBLIC KEY` PEM, found `BEGIN {}`",
                        pem.tag()
                    )));
                }
                let mut key = Self::from_spki_der(pem.contents())?;
                if key.keytype != KeyType::Rsa {
                    return Err(bad(format!("the PEM holds a {} key", key.keytype)));
                }
                key.public = public.to_string();
                Ok(key)
            }
            KeyType::EcPrime256v1 => {
                let der = hex::decode(public.trim())
                    .map_err(|_| bad("keyval.public is not hex DER".into()))?;
                let key = Self::from_spki_der(&der)?;
                if key.keytype != KeyType::EcPrime256v1 {
                    return Err(bad(format!("the DER holds a {} key", key.keytype)));
                }
                Ok(key)
            }
        }
    }

    /// Parses an SPKI DER: RSA (≥ 2048 bits), EC prime256v1 or Ed25519.
    pub fn from_spki_der(der_bytes: &[u8]) -> Result<Self> {
        let bad = |m: String| Error::key("SubjectPublicKeyInfo", m);
        let info = spki::SubjectPublicKeyInfoRef::from_der(der_bytes)
            .map_err(|e| bad(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
        let key_bytes = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| bad("the public key bit string is not byte aligned".into()))?;
        match info.algorithm.oid {
            OID_RSA => {
                let mut key = Self::rsa_from_pkcs1(key_bytes)?;
                // Keep the DER as given: the key id is the hash of these bytes.
                key.spki_der = der_bytes.to_vec();
                key.public = pem_lf("PUBLIC KEY", der_bytes);
                Ok(key)
            }
            OID_ED25519 => {
                let raw: [u8; 32] = key_bytes
                    .try_into()
                    .map_err(|_| bad("an Ed25519 key is 32 bytes".into()))?;
                Ok(PublicKey::ed25519(raw))
            }
            OID_EC => {
                let curve = info
                    .algorithm
                    .parameters
                    .and_then(|p| p.decode_as::<spki::ObjectIdentifier>().ok());
                if curve != Some(OID_P256) {
                    return Err(bad(
                        "only the prime256v1 (P-256) elliptic curve is supported".into(),
                    ));
                }
                Ok(PublicKey {
                    keytype: KeyType::EcPrime256v1,
                    public: hex::encode(der_bytes),
                    spki_der: der_bytes.to_vec(),
                    raw: key_bytes.to_vec(),
                })
            }
            oid => Err(bad(format!("unsupported key algorithm {oid}"))),
        }
    }

    /// Parses a PEM `BEGIN PUBLIC KEY` (`user-keys importpub`).
    pub fn from_pem(text: &str) -> Result<Self> {
        let pem = pem::parse(text.as_bytes())
            .map_err(|e| Error::key("PEM", format!("cannot parse public key: {e}")))?;
        if pem.tag() != "PUBLIC KEY" {
            return Err(Error::key(
                "PEM",
                format!("expected `BEGIN PUBLIC KEY`, found `BEGIN {}`", pem.tag()),
            ));
        }
        Self::from_spki_der(pem.contents())
    }

    /// Parses a key file or a root `keys` entry: `{"keytype": …, "keyval": {"public": …}}`.
    /// `lenient` accepts lower-case key types, as aktualizr does when reading roots.
    pub fn from_json(value: &Value, lenient: bool) -> Result<Self> {
        let keytype_str = value
            .get("keytype")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid("keytype", "missing or not a string"))?;
        let keytype = if lenient {
            KeyType::parse_lenient(keytype_str)
        } else {
            KeyType::parse(keytype_str)
        }
        .ok_or_else(|| {
            Error::invalid(
                "keytype",
                format!("unknown key type {keytype_str:?} (expected RSA, ED25519 or ECPRIME256V1)"),
            )
        })?;
        let public = value
            .pointer("/keyval/public")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid("keyval.public", "missing or not a string"))?;
        Self::from_parts(keytype, public)
    }

    /// `{"keytype": …, "keyval": {"public": …}}`.
    pub fn to_json(&self) -> Value {
        json!({"keytype": self.keytype.as_str(), "keyval": {"public": self.public}})
    }

    /// Checks `sig_b64` over `message` with this key. The method must fit the key type
    /// (`rsassa-pss` is the legacy name of `rsassa-pss-sha256`).
    pub fn verify(&self, method: &str, message: &[u8], sig_b64: &str) -> bool {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sig_b64) else {
            return false;
        };
        match (self.keytype, method) {
            (KeyType::Ed25519, "ed25519") => crypto::ed25519_verify(&self.raw, message, &sig),
            (KeyType::Rsa, "rsassa-pss-sha256" | "rsassa-pss") => {
                crypto::rsa_pss_verify(&self.raw, message, &sig)
            }
            _ => false,
        }
    }
}

fn rsa_modulus_bits(pkcs1: &[u8]) -> Result<usize> {
    let key = pkcs1::RsaPublicKey::from_der(pkcs1)
        .map_err(|e| Error::key("RSA", format!("not a PKCS#1 RSAPublicKey: {e}")))?;
    let m = key.modulus.as_bytes();
    let lead = m.first().copied().unwrap_or(0);
    Ok(m.len() * 8 - lead.leading_zeros() as usize)
}

/// PEM with LF line endings and 64-column lines, as BouncyCastle writes it.
fn pem_lf(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The size `--keysize` asks for, checked for a new key of `keytype`: RSA 2048
/// (default), 3072 or 4096; Ed25519 256. ECPRIME256V1 keys are never generated.
pub fn checked_key_size(keytype: KeyType, bits: Option<usize>) -> Result<usize> {
    match keytype {
        KeyType::Ed25519 => match bits {
            Some(b) if b != 256 => Err(Error::Usage(format!(
                "Ed25519 keys are 256 bits; --keysize {b} is not valid for ed25519"
            ))),
            _ => Ok(256),
        },
        KeyType::Rsa => match bits.unwrap_or(2048) {
            b if RSA_KEY_SIZES.contains(&b) => Ok(b),
            b => Err(Error::Usage(format!(
                "--keysize {b} is not supported for RSA: use 2048, 3072 or 4096 (the sizes aktualizr accepts)"
            ))),
        },
        KeyType::EcPrime256v1 => Err(Error::Usage(
            "ECPRIME256V1 keys cannot be generated: ota-tuf cannot verify their signatures and aktualizr rejects them".into(),
        )),
    }
}

/// A private key with its public half. The secret bytes (Ed25519 seed, RSA PKCS#1 DER)
/// live in a `Zeroizing` buffer and are wiped on drop; `Debug` never prints them.
pub struct PrivateKey {
    secret: Zeroizing<Vec<u8>>,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({} {})",
            self.public.keytype,
            self.public.key_id()
        )
    }
}

impl PrivateKey {
    /// A new key. `bits` applies to RSA only (default 2048); for Ed25519 only 256 is valid.
    pub fn generate(keytype: KeyType, bits: Option<usize>) -> Result<Self> {
        let bits = checked_key_size(keytype, bits)?;
        match keytype {
            KeyType::Ed25519 => {
                let (seed, public) = crypto::ed25519_generate()?;
                Ok(PrivateKey {
                    secret: Zeroizing::new(seed.to_vec()),
                    public: PublicKey::ed25519(public),
                })
            }
            _ => Self::rsa_from_pkcs1(crypto::rsa_generate(bits)?),
        }
    }

    fn rsa_from_pkcs1(der: Zeroizing<Vec<u8>>) -> Result<Self> {
        let signer = SigningKey::rsa_pkcs1(&der)
            .map_err(|e| Error::key("RSA private key", e.to_string()))?;
        let public = PublicKey::rsa_from_pkcs1(&signer.public_key_bytes())?;
        Ok(PrivateKey {
            secret: der,
            public,
        })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn keytype(&self) -> KeyType {
        self.public.keytype
    }

    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }

    /// Parses a `.sec` file value `{"keytype": …, "keyval": {"private": …}}` (a key pair
    /// object with both halves also works). `expected_public`, when given (the `.pub`
    /// file), must be the public half of this private key.
    pub fn from_json(value: &Value, expected_public: Option<&PublicKey>) -> Result<Self> {
        let keytype_str = value
            .get("keytype")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid("keytype", "missing or not a string"))?;
        let keytype = KeyType::parse(keytype_str).ok_or_else(|| {
            Error::invalid(
                "keytype",
                format!("unknown key type {keytype_str:?} (expected RSA or ED25519)"),
            )
        })?;
        let private = value
            .pointer("/keyval/private")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid("keyval.private", "missing or not a string"))?;
        let key = Self::from_parts(keytype, private)?;
        if let Some(expected) = expected_public {
            if expected.spki_der != key.public.spki_der {
                return Err(Error::key(
                    expected.key_id().to_string(),
                    format!(
                        "the private key does not belong to this public key (the private key's id is {}); the .pub and .sec files are not a pair",
                        key.key_id()
                    ),
                ));
            }
        }
        Ok(key)
    }

    fn from_parts(keytype: KeyType, private: &str) -> Result<Self> {
        match keytype {
            KeyType::Ed25519 => {
                let bytes = Zeroizing::new(hex::decode(private.trim()).map_err(|_| {
                    Error::key("ED25519 private key", "keyval.private is not hex")
                })?);
                if bytes.len() != 64 && bytes.len() != 32 {
                    return Err(Error::key(
                        "ED25519 private key",
                        "keyval.private must be 128 hex characters (seed followed by public key); this may be a legacy 2017 ota-tuf key, which is not supported",
                    ));
                }
                let mut seed = Zeroizing::new([0u8; 32]);
                seed.copy_from_slice(&bytes[..32]);
                let public = crypto::ed25519_public_from_seed(&seed)?;
                if bytes.len() == 64 && bytes[32..] != public {
                    return Err(Error::key(
                        "ED25519 private key",
                        "the public half of keyval.private does not match its seed",
                    ));
                }
                Ok(PrivateKey {
                    secret: Zeroizing::new(seed.to_vec()),
                    public: PublicKey::ed25519(public),
                })
            }
            KeyType::Rsa => {
                let pem = pem::parse(private.as_bytes())
                    .map_err(|e| Error::key("RSA private key", format!("keyval.private is not PEM: {e}")))?;
                if pem.tag() != "RSA PRIVATE KEY" {
                    return Err(Error::key(
                        "RSA private key",
                        format!("expected a PKCS#1 `BEGIN RSA PRIVATE KEY` PEM, found `BEGIN {}` (garage-sign does not read PKCS#8)", pem.tag()),
                    ));
                }
                Self::rsa_from_pkcs1(Zeroizing::new(pem.into_contents()))
            }
            KeyType::EcPrime256v1 => Err(Error::key(
                "ECPRIME256V1 private key",
                "ECPRIME256V1 keys cannot sign: ota-tuf cannot verify ecPrime256v1 signatures and aktualizr rejects them. Use an ED25519 or RSA key",
            )),
        }
    }

    /// `keyval.private` as garage-sign writes it.
    fn private_value(&self) -> Zeroizing<String> {
        match self.public.keytype {
            KeyType::Ed25519 => {
                let mut both = Zeroizing::new(self.secret.to_vec());
                both.extend_from_slice(&self.public.raw);
                Zeroizing::new(hex::encode(&*both))
            }
            _ => Zeroizing::new(pem_lf("RSA PRIVATE KEY", &self.secret)),
        }
    }

    /// The `.sec` file content (garage-sign's ` : ` layout). Built as text so that no
    /// un-zeroized JSON value ever holds the secret.
    pub fn to_sec_file(&self) -> Zeroizing<String> {
        let private = quote(&self.private_value());
        Zeroizing::new(format!(
            "{{\n  \"keytype\" : \"{}\",\n  \"keyval\" : {{\n    \"private\" : {}\n  }}\n}}",
            self.public.keytype.as_str(),
            &*private
        ))
    }

    /// The key pair object served by `GET root/private_keys/{id}` (canonical JSON).
    pub fn to_key_pair_json(&self) -> Zeroizing<String> {
        let private = quote(&self.private_value());
        Zeroizing::new(format!(
            "{{\"keytype\":\"{}\",\"keyval\":{{\"private\":{},\"public\":{}}}}}",
            self.public.keytype.as_str(),
            &*private,
            &*quote(&self.public.public)
        ))
    }

    /// The `.pub` file content.
    pub fn to_pub_file(&self) -> String {
        to_pretty(&self.public.to_json())
    }

    pub fn signing_key(&self) -> Result<SigningKey> {
        match self.public.keytype {
            KeyType::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                seed.copy_from_slice(&self.secret);
                let mut public = [0u8; 32];
                public.copy_from_slice(&self.public.raw);
                SigningKey::ed25519(&seed, &public)
            }
            _ => SigningKey::rsa_pkcs1(&self.secret),
        }
    }

    /// Signs `message` (canonical JSON bytes) and returns the raw signature bytes
    /// (the metadata layer wraps them in a `Signature`).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.signing_key()?.sign(message)
    }
}

/// A JSON string literal in a zeroizing buffer.
fn quote(s: &str) -> Zeroizing<String> {
    Zeroizing::new(crate::canonical::quote(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_key_id_vector() {
        // reference/garage-sign.md §4.2
        let public = crypto::ed25519_public_from_seed(&[1u8; 32]).unwrap();
        let key = PublicKey::ed25519(public);
        assert_eq!(
            key.key_id().as_str(),
            "fd110d301d2f077de1414b8f99f441b1403fab207b2052fbd2c065e4ee8e7dc2"
        );
    }

    #[test]
    fn rsa_public_pem_layout() {
        let key = PrivateKey::generate(KeyType::Rsa, Some(2048)).unwrap();
        let pem = key.public().public_value();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(key.public().rsa_bits(), Some(2048));
        let sec = key.to_sec_file();
        assert!(sec.contains("BEGIN RSA PRIVATE KEY"));
    }
}
