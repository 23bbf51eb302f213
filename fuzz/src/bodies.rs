//! Fuzz bodies: each takes arbitrary bytes and must never panic. Some also check a
//! property (canonical JSON is a fixed point; a parsed key writes back to itself).
//! Used by the cargo-fuzz targets (fuzz/fuzz_targets/*.rs) and replayed over the
//! committed corpus by `tests/cli/hostile_fuzz.rs`.
#![allow(dead_code)]

use ota_sign::canonical::{to_pretty, CanonicalJson};
use ota_sign::credentials::Credentials;
use ota_sign::keys::{KeyType, PrivateKey, PublicKey};
use ota_sign::metadata::{RootRole, SignedPayload, TargetsRole};
use ota_sign::schema::RoleName;
use ota_sign::server::keyserver;
use ota_sign::server::state::Store;
use ota_sign::verify::{self, TrustedRoot};
use serde_json::Value;
use std::path::Path;

/// Canonical JSON writer: any JSON value canonicalises to JSON that parses and is a
/// fixed point; the pretty writer does not panic.
pub fn canonical(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let c = CanonicalJson::of(&v);
    let back: Value = serde_json::from_slice(c.as_bytes()).expect("canonical JSON parses back");
    assert_eq!(
        CanonicalJson::of(&back),
        c,
        "canonical JSON is a fixed point"
    );
    let pretty = to_pretty(&v);
    let again: Value = serde_json::from_slice(pretty.as_bytes()).expect("pretty JSON parses back");
    assert_eq!(
        CanonicalJson::of(&again),
        c,
        "pretty JSON has the same content"
    );
}

/// Metadata parsing and verification: signed envelopes, root and targets roles,
/// trust from a root, signature checks.
pub fn metadata(data: &[u8]) {
    let Ok(doc) = SignedPayload::parse(data, "fuzz.json") else {
        return;
    };
    let _ = doc.canonical();
    let _ = doc.version();
    if let Ok(root) = RootRole::from_signed(&doc.signed, "fuzz.json") {
        let _ = root.to_signed();
        let _ = root.role_keys("root");
    }
    if let Ok(t) = TargetsRole::from_signed(&doc.signed, "fuzz.json") {
        let _ = t.to_signed();
    }
    if let Ok(trusted) = TrustedRoot::from_signed(&doc.signed, "fuzz.json") {
        let _ = trusted.verify("root", &doc, "fuzz.json");
        let _ = verify::verified_targets(&trusted, &doc);
        let _ = verify::verify_root_update(&trusted, &doc, "fuzz.json");
    }
}

/// Key files: `.pub`/`.sec` JSON and PEM public keys. A private key that parses
/// writes a `.sec` file that parses back to the same key.
pub fn key_files(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = PublicKey::from_pem(s);
    }
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let public = PublicKey::from_json(&v, false);
    let _ = PublicKey::from_json(&v, true);
    let _ = PrivateKey::from_json(&v, public.as_ref().ok());
    if let Ok(key) = PrivateKey::from_json(&v, None) {
        let sec: Value = serde_json::from_str(&key.to_sec_file()).expect(".sec is JSON");
        let back = PrivateKey::from_json(&sec, Some(key.public())).expect(".sec parses back");
        assert_eq!(back.key_id(), key.key_id());
        let _ = key.sign(b"fuzz");
    }
}

/// The credentials.zip reader and everything init reads from it.
pub fn credentials_zip(data: &[u8]) {
    let Ok(c) = Credentials::from_bytes(
        zeroize::Zeroizing::new(data.to_vec()),
        Path::new("fuzz.zip"),
    ) else {
        return;
    };
    let _ = c.treehub();
    let _ = c.auth();
    let _ = c.verified_root();
    let _ = c.targets_key();
    let _ = c.server_url("tufrepo.url");
    let _ = c.can_sign_offline();
}

/// A reposerver store for [`server_request`], in a temporary directory.
pub struct ServerStore {
    _dir: tempfile::TempDir,
    store: Store,
}

impl ServerStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join("repo");
        keyserver::create(&data, KeyType::Ed25519).expect("create store");
        let store = Store::open(&data).expect("open store");
        ServerStore { _dir: dir, store }
    }
}

impl Default for ServerStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The server's request decoding: the first byte picks the `Content-Encoding`, the
/// rest is the body of `PUT targets`, `POST root` and `PUT delegations/fuzz.json`.
pub fn server_request(s: &ServerStore, data: &[u8]) {
    let Some((enc, body)) = data.split_first() else {
        return;
    };
    let encoding = match enc % 4 {
        0 => None,
        1 => Some("gzip"),
        2 => Some("deflate"),
        _ => Some("identity"),
    };
    let Ok(body) = ota_sign::server::routes::decode_metadata_body(
        encoding,
        hyper::body::Bytes::copy_from_slice(body),
    ) else {
        return;
    };
    let checksum = s.store.role(RoleName::Targets).ok().map(|t| t.checksum);
    let _ = s.store.put_targets(checksum.as_deref(), &body);
    let _ = s.store.post_root(&body);
    let _ = s.store.put_delegation("fuzz", &body);
    if let Ok(text) = std::str::from_utf8(&body) {
        let _ = ota_sign::server::routes::percent_decode(text, true);
    }
}
