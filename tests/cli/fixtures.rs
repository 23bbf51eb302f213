//! Upstream fixtures: verification outcomes recorded in expected.json, the SPKI key-id
//! rule, the worked Ed25519 vector of reference/reposerver.md §6.6, and RSA keys from
//! the ota-tuf test resources.

use crate::support::{fixture, fixtures, zip_entry};
use ota_sign::canonical::CanonicalJson;
use ota_sign::credentials::Credentials;
use ota_sign::keys::{PrivateKey, PublicKey};
use ota_sign::metadata::{Expires, NewTarget, SignedPayload, TargetFormat, TargetsRole};
use ota_sign::verify::{verify_self_signed_root, TrustedRoot};
use serde_json::{json, Value};
use std::path::Path;

fn load(entry: &Value) -> Vec<u8> {
    let file = fixture(entry["file"].as_str().unwrap());
    match entry.get("zip_entry").and_then(Value::as_str) {
        Some(name) => zip_entry(&file, name).unwrap(),
        None => std::fs::read(&file).unwrap(),
    }
}

/// The root a non-root fixture is checked against: root.json beside it.
fn sibling_root(entry: &Value) -> Option<SignedPayload> {
    let file = fixture(entry["file"].as_str().unwrap());
    let root = file.parent()?.join("root.json");
    root.exists()
        .then(|| SignedPayload::parse(&std::fs::read(&root).unwrap(), "root.json").unwrap())
}

/// The key id by the sha256(SPKI) rule; for the 2017 legacy keys that we cannot
/// parse, the public value *is* hex DER SPKI, so the rule is applied to it directly.
fn spki_key_id(key: &Value) -> String {
    match PublicKey::from_json(key, true) {
        Ok(k) => k.key_id().to_string(),
        Err(_) => {
            let public = key["keyval"]["public"].as_str().unwrap();
            assert!(
                public.len() > 64,
                "only the legacy DER keys may fail to parse: {key}"
            );
            ota_sign::crypto::sha256_hex(&hex::decode(public).unwrap())
        }
    }
}

fn check_key_ids(expected: &[Value], keys: &Value, what: &str) {
    for k in expected {
        let id = k["keyid"].as_str().unwrap();
        let key = &keys[id];
        assert!(key.is_object(), "{what}: key {id} not found");
        let computed = spki_key_id(key);
        assert_eq!(
            computed,
            k["spki_keyid"].as_str().unwrap(),
            "{what}: SPKI key id of {id}"
        );
        assert_eq!(
            computed == id,
            k["keyid_is_spki"].as_bool().unwrap(),
            "{what}: keyid_is_spki of {id}"
        );
    }
}

#[test]
fn every_fixture_verifies_exactly_as_recorded() {
    let expected: Vec<Value> =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    assert!(
        expected.len() >= 18,
        "expected.json lists {} files",
        expected.len()
    );
    let (mut valid, mut invalid, mut undecidable) = (0, 0, 0);
    for entry in &expected {
        let what = format!(
            "{} {}",
            entry["file"],
            entry.get("zip_entry").unwrap_or(&Value::Null)
        );
        let bytes = load(entry);
        let role = entry["role"].as_str().unwrap();
        let recorded = entry["signatures_valid"].as_bool();

        if let Some(vector) = entry.get("vector") {
            // The file is a bare `signed` body; the signature lives in aktualizr's test code.
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            let message = CanonicalJson::of(&body);
            assert_eq!(
                message.as_bytes().len() as u64,
                vector["message_length"].as_u64().unwrap(),
                "{what}"
            );
            assert_eq!(
                ota_sign::crypto::sha256_hex(message.as_bytes()),
                vector["message_sha256"].as_str().unwrap()
            );
            let raw: [u8; 32] = hex::decode(vector["public_key_hex"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            let key = PublicKey::ed25519(raw);
            let good = key.verify(
                "ed25519",
                message.as_bytes(),
                vector["signature_base64"].as_str().unwrap(),
            );
            assert_eq!(Some(good), recorded, "{what}");
            assert!(!key.verify(
                "ed25519",
                message.as_bytes(),
                vector["bad_signature_base64"].as_str().unwrap()
            ));
            assert!(
                !key.verify(
                    "ed25519",
                    &bytes,
                    vector["signature_base64"].as_str().unwrap()
                ),
                "raw bytes must not verify"
            );
            valid += 1;
            continue;
        }

        let doc = SignedPayload::parse(&bytes, &what).unwrap();
        let outcome = if role == "root" {
            Some(verify_self_signed_root(&doc, &what).map(|_| ()))
        } else {
            sibling_root(entry).map(|root| {
                TrustedRoot::from_signed(&root.signed, "sibling root")
                    .unwrap()
                    .verify(role, &doc, &what)
                    .map(|_| ())
            })
        };
        match (recorded, outcome) {
            (Some(true), Some(r)) => {
                r.unwrap_or_else(|e| panic!("{what} must verify: {e}"));
                valid += 1;
            }
            (Some(false), Some(r)) => {
                assert!(r.is_err(), "{what} must NOT verify");
                invalid += 1;
            }
            (None, None) => {
                // No trusting root exists anywhere: the signer's key is in no fixture.
                for s in &doc.signatures {
                    assert_eq!(s.method, "rsassa-pss-sha256");
                }
                undecidable += 1;
            }
            (r, o) => panic!(
                "{what}: recorded {r:?} but a trusting root was {}found",
                if o.is_some() { "" } else { "not " }
            ),
        }

        if let Some(keys) = entry.get("keys").and_then(Value::as_array) {
            check_key_ids(keys, &doc.signed["keys"], &what);
        }
        if let Some(keys) = entry.get("delegation_keys").and_then(Value::as_array) {
            check_key_ids(keys, &doc.signed["delegations"]["keys"], &what);
        }
    }
    assert!(
        valid >= 12 && invalid >= 4 && undecidable >= 1,
        "valid {valid}, invalid {invalid}, undecidable {undecidable}"
    );
}

#[test]
fn spki_key_ids_of_the_credentials_keys() {
    let dir = fixture("ota-tuf/cli/src/test/resources");
    // Ed25519 targets key of credentials_ed25519.zip = root's targets key (README).
    let ed = Credentials::read(&dir.join("credentials_ed25519.zip"))
        .unwrap()
        .targets_key()
        .unwrap()
        .unwrap();
    assert!(ed.key_id().as_str().starts_with("5959a686"));
    let root = SignedPayload::parse(
        &zip_entry(&dir.join("credentials_ed25519.zip"), "root.json").unwrap(),
        "root",
    )
    .unwrap();
    assert!(root.signed["roles"]["targets"]["keyids"]
        .as_array()
        .unwrap()
        .contains(&json!(ed.key_id().as_str())));
    let rsa = Credentials::read(&dir.join("credentials_rsa.zip"))
        .unwrap()
        .targets_key()
        .unwrap()
        .unwrap();
    assert_eq!(
        rsa.key_id().as_str(),
        "2a65c0523fd844e15d58cee221891ab51618f18f8110add928c6e4c09d446e39"
    );
    for (pem, id) in [
        (
            "valid-public-RSA.pem",
            "3f9d6a024bdedc1b3c968e6bb74be97437da9a3d2fb720c39fc8bc0019d73db1",
        ),
        (
            "valid-public-Ed25519.pem",
            "8dbf4f718b6163c70d57030bf656718b53c91f2ec12738cad7880e4c5aec95c6",
        ),
        (
            "valid-public-EcPrime256.pem",
            "b93f16bed33746291689ac3fc505a8c8ec918f5149f75a822b2fc68a3c01d491",
        ),
    ] {
        let text = std::fs::read_to_string(dir.join("pem-files").join(pem)).unwrap();
        assert_eq!(
            PublicKey::from_pem(&text).unwrap().key_id().as_str(),
            id,
            "{pem}"
        );
    }
    let bad = std::fs::read_to_string(dir.join("pem-files/invalid-public-RSA.pem")).unwrap();
    assert!(PublicKey::from_pem(&bad).is_err());
}

/// reference/reposerver.md §6.6, byte for byte.
#[test]
fn worked_ed25519_vector() {
    let public = ota_sign::crypto::ed25519_public_from_seed(&[1u8; 32]).unwrap();
    let sec = json!({"keytype": "ED25519", "keyval": {"private": format!("{}{}", "01".repeat(32), hex::encode(public))}});
    let key = PrivateKey::from_json(&sec, None).unwrap();
    assert_eq!(
        key.key_id().as_str(),
        "fd110d301d2f077de1414b8f99f441b1403fab207b2052fbd2c065e4ee8e7dc2"
    );

    let mut role = TargetsRole::new(2, Expires::parse("2030-01-01T00:00:00Z").unwrap());
    let target = NewTarget {
        name: "myapp".into(),
        version: "1.0.0".into(),
        sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
            .parse()
            .unwrap(),
        length: 3,
        hardware_ids: vec!["raspberrypi4-64".parse().unwrap()],
        format: TargetFormat::Binary,
        url: None,
        cli_uploaded: false,
        custom_meta: None,
    };
    target
        .apply(&mut role, Expires::parse("2025-01-01T00:00:00Z").unwrap())
        .unwrap();
    let signed = role.to_signed().unwrap();
    assert_eq!(
        CanonicalJson::of(&signed).as_str(),
        r#"{"_type":"Targets","expires":"2030-01-01T00:00:00Z","targets":{"myapp-1.0.0":{"custom":{"cliUploaded":false,"createdAt":"2025-01-01T00:00:00Z","hardwareIds":["raspberrypi4-64"],"name":"myapp","targetFormat":"BINARY","updatedAt":"2025-01-01T00:00:00Z","uri":null,"version":"1.0.0"},"hashes":{"sha256":"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"},"length":3}},"version":2}"#
    );
    let payload = SignedPayload::sign(signed, &[&key]).unwrap();
    assert_eq!(
        payload.signatures[0].sig,
        "liuq06sC3BXFkiTVjy96ttZTO5UN52kBeR3hEG3VVzQOSCJf71GnllHp17vmPjHXSUKuFysz3+XPckaUCyi2DQ=="
    );
    assert_eq!(payload.signatures[0].method, "ed25519");
    assert_eq!(payload.canonical().as_bytes().len(), 612);
    assert_eq!(
        payload.checksum(),
        "33ddfa09524de2c81f2f7052d177c09426e0863eed66b54f6df4f4bec63c4470"
    );
}

/// Verifies an RSA-PSS signature with RustCrypto's `rsa` (salt length exactly 32),
/// an implementation independent of ring, which produced it.
fn independent_pss_verify(public: &PublicKey, message: &[u8], sig_b64: &str) -> bool {
    use base64::Engine;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let key = rsa::RsaPublicKey::from_public_key_der(public.spki_der()).unwrap();
    let verifier = rsa::pss::VerifyingKey::<rsa::sha2::Sha256>::new_with_salt_len(key, 32);
    let sig_bytes = base64::engine::general_purpose::STANDARD
        .decode(sig_b64)
        .unwrap();
    let Ok(sig) = rsa::pss::Signature::try_from(sig_bytes.as_slice()) else {
        return false;
    };
    verifier.verify(message, &sig).is_ok()
}

#[test]
fn rsa_pss_signatures_verify_independently_with_salt_32() {
    let fixture_key = Credentials::read(&fixture(
        "ota-tuf/cli/src/test/resources/credentials_rsa.zip",
    ))
    .unwrap()
    .targets_key()
    .unwrap()
    .expect("credentials_rsa.zip has an RSA targets key");
    let mut keys = vec![fixture_key];
    for bits in [2048, 3072, 4096] {
        keys.push(PrivateKey::generate(ota_sign::keys::KeyType::Rsa, Some(bits)).unwrap());
    }
    let message = CanonicalJson::of(&json!({"_type": "Targets", "version": 7})).into_bytes();
    for key in &keys {
        use base64::Engine;
        let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(&message).unwrap());
        assert_eq!(key.keytype().signature_method(), "rsassa-pss-sha256");
        assert!(
            independent_pss_verify(key.public(), &message, &sig),
            "{} bits",
            key.public().rsa_bits().unwrap()
        );
        assert!(key.public().verify("rsassa-pss-sha256", &message, &sig));
        assert!(!independent_pss_verify(
            key.public(),
            b"other message",
            &sig
        ));
    }
}

#[test]
fn rsa_fixture_root_key_signs_like_aktualizr_fixture() {
    // priv.key in the tls-auth archive is the root key of aktualizr's rsassa-pss-sha256 root.
    let zip = fixture("ota-tuf/cli/src/test/resources/credentials_tls-auth_ed25519.zip");
    let pem = String::from_utf8(zip_entry(&zip, "priv.key").unwrap()).unwrap();
    let key = PrivateKey::from_json(&json!({"keytype": "RSA", "keyval": {"private": pem}}), None)
        .unwrap();
    assert_eq!(
        key.key_id().as_str(),
        "6cee5216bb273ab4967e22edf95ac97f1457fdbe69619351b41a5474642221ce"
    );
    let root = SignedPayload::parse(
        &std::fs::read(fixture("aktualizr/tests/tuf/rsassa-pss-sha256/root.json")).unwrap(),
        "root",
    )
    .unwrap();
    let resigned = SignedPayload::sign(root.signed.clone(), &[&key]).unwrap();
    // Same key, aktualizr's key id for it: re-label and the root accepts our signature.
    let mut relabelled = resigned.clone();
    relabelled.signatures[0].keyid = root.signatures[0].keyid.clone();
    verify_self_signed_root(&relabelled, "re-signed root").unwrap();
    assert!(Path::new(&zip).exists());
}
