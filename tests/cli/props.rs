//! Property tests: canonical JSON and key files.

use ota_sign::canonical::{compare_keys, CanonicalJson};
use ota_sign::keys::{KeyType, PrivateKey, PublicKey};
use proptest::prelude::*;
use serde_json::{json, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Any Unicode, including controls, U+007F–U+009F, quotes, backslashes, astral.
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Keys drawn where UTF-16 and UTF-8 orders disagree (BMP private use vs astral).
fn tricky_key() -> impl Strategy<Value = String> {
    "[a-c \\-\u{e000}\u{ff21}\u{10000}\u{1f600}]{0,4}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonical_output_parses_back_to_the_same_value(v in json_value()) {
        let c = CanonicalJson::of(&v);
        let back: Value = serde_json::from_slice(c.as_bytes()).unwrap();
        prop_assert_eq!(&back, &v);
        // Canonical of canonical is a fixed point.
        prop_assert_eq!(CanonicalJson::of(&back), c.clone());
        // No raw control characters ever reach the output.
        prop_assert!(!c.as_str().chars().any(|ch| ch.is_control()));
    }

    #[test]
    fn object_keys_come_out_in_utf16_order(keys in prop::collection::btree_set(tricky_key(), 0..8)) {
        let obj: serde_json::Map<String, Value> = keys.iter().enumerate().map(|(i, k)| (k.clone(), json!(i))).collect();
        let v = Value::Object(obj.clone());
        let mut sorted: Vec<&String> = obj.keys().collect();
        sorted.sort_by(|a, b| compare_keys(a, b));
        let expected = format!(
            "{{{}}}",
            sorted.iter().map(|k| format!("{}:{}", serde_json::to_string(k).unwrap(), obj[*k])).collect::<Vec<_>>().join(",")
        );
        let c = CanonicalJson::of(&v);
        prop_assert_eq!(c.as_str(), expected.as_str());
        // Java's order: compare UTF-16 code units.
        for w in sorted.windows(2) {
            let a: Vec<u16> = w[0].encode_utf16().collect();
            let b: Vec<u16> = w[1].encode_utf16().collect();
            prop_assert!(a < b);
        }
    }

    #[test]
    fn ed25519_key_files_round_trip(seed in any::<[u8; 32]>()) {
        let public = ota_sign::crypto::ed25519_public_from_seed(&seed).unwrap();
        let sec = json!({"keytype": "ED25519", "keyval": {"private": format!("{}{}", hex::encode(seed), hex::encode(public))}});
        let key = PrivateKey::from_json(&sec, None).unwrap();
        // .sec and .pub files decode to the same key and encode to the same text.
        let sec_text = key.to_sec_file();
        let again = PrivateKey::from_json(&serde_json::from_str(&sec_text).unwrap(), Some(key.public())).unwrap();
        prop_assert_eq!(&*again.to_sec_file(), &*sec_text);
        let pub_value: Value = serde_json::from_str(&key.to_pub_file()).unwrap();
        let pub_again = PublicKey::from_json(&pub_value, false).unwrap();
        prop_assert_eq!(&pub_again, key.public());
        prop_assert_eq!(pub_value["keyval"]["public"].as_str().unwrap(), hex::encode(public));
        prop_assert_eq!(pub_again.key_id(), key.key_id());
    }
}

#[test]
fn rsa_key_files_round_trip() {
    for bits in [2048, 3072] {
        let key = PrivateKey::generate(KeyType::Rsa, Some(bits)).unwrap();
        let sec_text = key.to_sec_file();
        let sec: Value = serde_json::from_str(&sec_text).unwrap();
        assert!(sec["keyval"]["private"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let again = PrivateKey::from_json(&sec, Some(key.public())).unwrap();
        assert_eq!(&*again.to_sec_file(), &*sec_text);
        let pub_value: Value = serde_json::from_str(&key.to_pub_file()).unwrap();
        assert_eq!(
            PublicKey::from_json(&pub_value, false).unwrap(),
            *key.public()
        );
        // The PEM carries the SPKI DER whose hash is the key id.
        let pem = pub_value["keyval"]["public"].as_str().unwrap();
        let der = pem::parse(pem).unwrap().into_contents();
        assert_eq!(ota_sign::crypto::sha256_hex(&der), key.key_id().to_string());
    }
}

#[test]
fn mismatched_pairs_and_pkcs8_are_refused() {
    let a = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
    let b = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
    let sec: Value = serde_json::from_str(&a.to_sec_file()).unwrap();
    let err = PrivateKey::from_json(&sec, Some(b.public()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not belong"), "{err}");
    let pkcs8 = json!({"keytype": "RSA", "keyval": {"private": "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"}});
    assert!(PrivateKey::from_json(&pkcs8, None)
        .unwrap_err()
        .to_string()
        .contains("PKCS#1"));
    let ec = json!({"keytype": "ECPRIME256V1", "keyval": {"private": "00"}});
    assert!(PrivateKey::from_json(&ec, None).is_err());
}
