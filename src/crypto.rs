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
