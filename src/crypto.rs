//! The only module that touches cryptographic backends. Swapping ring for another
//! backend changes this file and nothing else.
//!
//! ring does all signing, verifying and hashing. ring cannot generate RSA keys
//! (briansmith/ring#219), so RSA *key generation* uses the `rsa` crate (0.10, the
//! release with the constant-time rewrite). We chose `rsa` over aws-lc-rs because the
//! project is asked to sign with ring: `rsa` is used for nothing but producing a fresh
//! PKCS#1 key on the operator's machine, which ring then loads and signs with; there
//! is no decryption and no network timing oracle, so the Marvin advisory does not
//! apply, and we avoid carrying a second C crypto library in the build.

use crate::error::{Error, Result};
use ring::rand::SecureRandom;
use ring::signature::{self, KeyPair};
use zeroize::Zeroizing;

/// Makes ring the process-wide rustls crypto provider (reqwest is built with
/// `rustls-no-provider`, and the server uses tokio-rustls). Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Lower-case hex SHA-256, the form of key ids, role checksums and target hashes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// Lower-case hex SHA-512 (snapshot and timestamp may record it; aktualizr checks it).
pub fn sha512_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA512, data).as_ref())
}

/// Streaming SHA-256, for files of any size in constant memory.
pub struct Sha256Stream(ring::digest::Context);

impl Default for Sha256Stream {
    fn default() -> Self {
        Sha256Stream(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl Sha256Stream {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data)
    }
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::Other("the system random number generator failed".into()))
}

/// A fresh Ed25519 key: (seed, public key).
pub fn ed25519_generate() -> Result<(Zeroizing<[u8; 32]>, [u8; 32])> {
    let mut seed = Zeroizing::new([0u8; 32]);
    fill_random(&mut seed[..])?;
    let public = ed25519_public_from_seed(&seed)?;
    Ok((seed, public))
}

pub fn ed25519_public_from_seed(seed: &[u8; 32]) -> Result<[u8; 32]> {
    let pair = signature::Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|e| Error::Other(format!("invalid Ed25519 seed: {e}")))?;
    let mut public = [0u8; 32];
    public.copy_from_slice(pair.public_key().as_ref());
    Ok(public)
}

/// A fresh RSA key of `bits` bits as PKCS#1 `RSAPrivateKey` DER.
pub fn rsa_generate(bits: usize) -> Result<Zeroizing<Vec<u8>>> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
        .map_err(|e| Error::Other(format!("RSA-{bits} key generation failed: {e}")))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|e| Error::Other(format!("cannot encode RSA key: {e}")))?;
    Ok(Zeroizing::new(der.as_bytes().to_vec()))
}

/// A key ready to sign. ring's key objects are opaque and never expose the secret;
/// the encoded forms we read them from are held in `Zeroizing` buffers by the caller.
pub enum SigningKey {
    Ed25519(signature::Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
}

impl SigningKey {
    /// Loads an Ed25519 key and checks that `public` belongs to `seed`.
    pub fn ed25519(seed: &[u8; 32], public: &[u8; 32]) -> Result<Self> {
        signature::Ed25519KeyPair::from_seed_and_public_key(seed, public)
            .map(SigningKey::Ed25519)
            .map_err(|_| {
                Error::Other("the Ed25519 public key does not belong to the private key".into())
            })
    }

    /// Loads an RSA key from PKCS#1 `RSAPrivateKey` DER (2048 to 4096 bits).
    pub fn rsa_pkcs1(der: &[u8]) -> Result<Self> {
        signature::RsaKeyPair::from_der(der)
            .map(SigningKey::Rsa)
            .map_err(|e| {
                Error::Other(format!(
                    "unusable RSA private key ({e}); keys of 2048 to 4096 bits are supported"
                ))
            })
    }

    /// For RSA, the PKCS#1 `RSAPublicKey` DER; for Ed25519 the 32 raw bytes.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(k) => k.public_key().as_ref().to_vec(),
            SigningKey::Rsa(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// Ed25519, or RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt
    /// (ring's RSA_PSS_SHA256 uses salt length = digest length, as BouncyCastle).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match self {
            SigningKey::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            SigningKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PSS_SHA256,
                    &ring::rand::SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .map_err(|_| Error::Other("RSA signing failed".into()))?;
                Ok(sig)
            }
        }
    }
}

/// The signing interface every key implements, wherever it lives (a ring key in
/// memory, a PKCS#11 token): the rest of the code signs through this and does not
/// care. Implementations return the raw signature: 64 bytes for Ed25519, exactly
/// the modulus length for RSASSA-PSS-SHA256 (MGF1-SHA256, 32-byte salt).
pub trait Signer {
    /// Signs `message` (the canonical JSON bytes, not a digest).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
}

impl Signer for SigningKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        SigningKey::sign(self, message)
    }
}

pub fn ed25519_verify(public: &[u8], message: &[u8], sig: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public)
        .verify(message, sig)
        .is_ok()
}

/// RSASSA-PSS-SHA256 with salt length 32; `public_pkcs1` is `RSAPublicKey` DER.
pub fn rsa_pss_verify(public_pkcs1: &[u8], message: &[u8], sig: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, public_pkcs1)
        .verify(message, sig)
        .is_ok()
}

/// Decrypts the content of a PKCS#12 `EncryptedData`: PBES2 (PBKDF2 + AES, what
/// current tools write) or the legacy PKCS#12 PBE with SHA-1 and 3DES or RC2 (keytool,
/// older openssl). `alg` is the content encryption `AlgorithmIdentifier`.
pub fn pkcs12_decrypt(
    alg: &spki::AlgorithmIdentifierOwned,
    password: &str,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, InnerIvInit, KeyIvInit};
    use der::{Decode, Encode};
    let bad = |m: String| Error::Other(format!("cannot decrypt the PKCS#12 contents: {m}"));
    if alg.oid == pkcs5::pbes2::PBES2_OID {
        let der = alg.to_der().map_err(|e| bad(e.to_string()))?;
        let scheme = pkcs5::EncryptionScheme::from_der(&der).map_err(|e| bad(e.to_string()))?;
        return scheme
            .decrypt(password, data)
            .map(Zeroizing::new)
            .map_err(|e| bad(e.to_string()));
    }
    let params: pkcs12::pbe_params::Pkcs12PbeParams = alg
        .parameters
        .as_ref()
        .ok_or_else(|| bad("no PBE parameters".into()))?
        .decode_as()
        .map_err(|e| bad(e.to_string()))?;
    let derive = |kind, len| {
        pkcs12::kdf::derive_key_utf8::<sha1::Sha1>(
            password,
            params.salt.as_bytes(),
            kind,
            params.iterations,
            len,
        )
        .map(Zeroizing::new)
        .map_err(|e| bad(e.to_string()))
    };
    let iv = derive(pkcs12::kdf::Pkcs12KeyType::Iv, 8)?;
    let key_len = match alg.oid {
        pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC => 24,
        pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC => 5,
        pkcs12::PKCS_12_PBE_WITH_SHAAND128_BIT_RC2_CBC => 16,
        other => return Err(bad(format!("unsupported encryption {other}"))),
    };
    let key = derive(pkcs12::kdf::Pkcs12KeyType::EncryptionKey, key_len)?;
    let plain = if key_len == 24 {
        cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|e| bad(e.to_string()))?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
    } else {
        let rc2 = rc2::Rc2::new_with_eff_key_len(&key, key_len * 8);
        cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(rc2, &iv)
            .map_err(|e| bad(e.to_string()))?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
    };
    plain
        .map(Zeroizing::new)
        .map_err(|_| bad("wrong password or damaged data".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_seed_vector() {
        // reference/garage-sign.md §4.2
        let public = ed25519_public_from_seed(&[1u8; 32]).unwrap();
        assert_eq!(
            hex::encode(public),
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        );
    }

    #[test]
    fn mismatched_ed25519_pair_is_refused() {
        let (_, other_public) = ed25519_generate().unwrap();
        assert!(SigningKey::ed25519(&[1u8; 32], &other_public).is_err());
    }
}
