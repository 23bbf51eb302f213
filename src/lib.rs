//! # ota-sign
//!
//! A garage-sign compatible tool that signs Uptane/TUF image-repository metadata for
//! the OTA Connect / ota-tuf reposerver with offline keys.
//!
//! ## Design
//! - **Byte exactness first.** Devices (aktualizr) and the reposerver recompute the
//!   canonical JSON of what we sign; one differing byte and an update is refused.
//!   [`canonical`] owns ota-tuf's canonical form; [`metadata`] re-encodes the typed model
//!   exactly as garage-sign does before signing; [`verify`] applies the device's rules.
//! - **One crypto module.** [`crypto`] is the only code that touches ring (and `rsa`,
//!   for RSA key generation only). Swapping the backend touches one file.
//!   Keys on PKCS#11 tokens ([`pkcs11`]) sign through the same [`crypto::Signer`]
//!   interface; [`keyref`] resolves every key name (file, alias or `pkcs11:` URI) in one
//!   place, and each signature is checked against its public key before it is used.
//! - **Secrets stay secret.** Private keys live in `Zeroizing` buffers, never reach a
//!   log at any level, and are written only 0600 inside 0700 directories.
//! - **Nothing half-done.** Every file write is atomic ([`fsutil`]); commands validate
//!   everything before they write or push.
//!
//! ## Non-goals
//! - Director repositories (`--servertype director`) are parsed but not served.
//! - `ECPRIME256V1` keys are read but never used to sign: ota-tuf cannot verify such
//!   signatures and aktualizr rejects them.
//! - The legacy 2017 "ED25519" (ECDSA over curve25519) key encoding is not supported.
#![forbid(unsafe_code)]

pub mod canonical;
// The command line (clap types) and its commands: the `ota-sign` binary's, not part of
// the library's API (the signing core below is).
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod commands;
pub mod credentials;
pub mod crypto;
pub mod error;
pub mod expiry;
pub mod fsutil;
pub mod http;
pub mod keyref;
pub mod keys;
pub mod metadata;
pub mod pkcs11;
pub mod progress;
pub mod publish;
pub mod repo;
pub mod schema;
// The local ota-tuf-like reposerver behind `ota-reposerver` (feature `server`), not
// part of the signing API.
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod server;
pub mod verify;

pub use error::{Error, Result};
