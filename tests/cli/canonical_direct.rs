//! The direct canonical writers (typed model -> bytes, received bytes -> bytes) against
//! the `Value`-based reference writer, on random metadata and on every fixture.

use crate::support::fixtures;
use ota_sign::canonical::{pretty_from_canonical, to_pretty, CanonicalJson};
use ota_sign::metadata::{Expires, Hashes, RawJson, Signature, Signed, TargetItem, TargetsRole};
use proptest::prelude::*;
use serde_json::Value;

/// Characters where canonical forms usually go wrong: escapes, C0 and C1 controls
/// (U+007F–U+009F), `/`, non-ASCII, BMP private use and astral (surrogate pairs).
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 _./-]{0,8}",
        "[\"\\\\/\u{0}-\u{1f}\u{7f}-\u{a0}a\u{e9}\u{2028}\u{e000}\u{ff21}\u{10000}\u{1f600}]{0,8}",
        any::<String>(),
    ]
}

/// Numbers by spelling: large integers (beyond u64), negative, decimals, exponents.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "-?[1-9][0-9]{19,40}",
        "-?(0|[1-9][0-9]{0,5})\\.[0-9]{1,4}",
        "-?[1-9][0-9]{0,3}(\\.[0-9]{1,3})?[eE][+-]?[0-9]{1,2}",
    ]
    .prop_map(|s| serde_json::from_str::<Value>(&s).unwrap())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        tricky_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(tricky_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn target_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_]{1,6}(/[a-z0-9]{1,4})?-[0-9]{1,3}(\\.[0-9]{1,2})?"
}

fn targets_role() -> impl Strategy<Value = TargetsRole> {
    let item = ("[0-9a-f]{64}", any::<u64>(), prop::option::of(json_value())).prop_map(
        |(sha, length, custom)| TargetItem {
            hashes: Hashes::from([("sha256".to_string(), sha.parse().unwrap())]),
            length,
            custom: custom.map(|c| RawJson::from_value(&c).unwrap()),
        },
    );
    (
        prop::collection::btree_map(target_name(), item, 0..8),
        any::<u32>(),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
    )
        .prop_map(|(targets, version, delegations, custom)| {
            let mut role = TargetsRole::new(
                u64::from(version),
                Expires::parse("2031-02-03T04:05:06Z").unwrap(),
            );
            role.targets = targets
                .into_iter()
                .map(|(k, v)| (k.parse().unwrap(), v))
                .collect();
            role.delegations = delegations;
            role.custom = custom;
            role
        })
}

/// Every direct path gives the reference bytes for `v`.
fn assert_same(v: &Value) -> Result<(), TestCaseError> {
    let reference = CanonicalJson::of(v);
    prop_assert_eq!(CanonicalJson::of_serialize(v).unwrap(), reference.clone());
    let compact = serde_json::to_vec(v).unwrap();
    prop_assert_eq!(
        CanonicalJson::from_slice(&compact, "t").unwrap(),
        reference.clone()
    );
    let pretty = serde_json::to_vec_pretty(v).unwrap();
    prop_assert_eq!(
        CanonicalJson::from_slice(&pretty, "t").unwrap(),
        reference.clone()
    );
    prop_assert_eq!(
        String::from_utf8(pretty_from_canonical(&reference)).unwrap(),
        to_pretty(v)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn direct_writers_equal_the_reference_on_random_json(v in json_value()) {
        assert_same(&v)?;
    }

    #[test]
    fn signed_documents_joined_from_parts_equal_the_reference(v in json_value(), n in 0usize..3) {
        let sigs: Vec<Signature> = (0..n)
            .map(|i| Signature {
                keyid: format!("{i:064x}").parse().unwrap(),
                method: "ed25519".into(),
                sig: format!("c2ln{i}=="),
            })
            .collect();
        let whole = serde_json::json!({"signatures": sigs, "signed": v});
        let doc = Signed::new(CanonicalJson::of(&v), sigs);
        prop_assert_eq!(doc.canonical(), CanonicalJson::of(&whole));
        prop_assert_eq!(doc.canonical_len(), CanonicalJson::of(&whole).as_bytes().len());
        prop_assert_eq!(String::from_utf8(doc.pretty()).unwrap(), to_pretty(&whole));
        // Laid out in two pieces, the signed part first, the same file.
        let mut pieces = doc.pretty_head();
        Signed::write_pretty_body(&CanonicalJson::of(&v), &mut pieces).unwrap();
        prop_assert_eq!(pieces, doc.pretty());
    }

    #[test]
    fn typed_targets_written_directly_equal_the_reference(role in targets_role()) {
        let reference = CanonicalJson::of(&serde_json::to_value(&role).unwrap());
        prop_assert_eq!(CanonicalJson::of_serialize(&role).unwrap(), reference.clone());
        // The interop check refuses exactly what the Value-based check refuses.
        let v = role.to_signed();
        let direct = CanonicalJson::of_serialize_interop(&role, "targets.json");
        prop_assert_eq!(v.is_ok(), direct.is_ok());
        if let (Err(a), Err(b)) = (v, direct) {
            prop_assert_eq!(a.to_string(), b.to_string());
        }
    }
}

/// `role` with `extra` more targets, enough for the two-core encoding.
fn padded(mut role: TargetsRole, extra: usize) -> TargetsRole {
    for i in 0..extra {
        let custom = serde_json::json!({"z": i, "name": format!("n\"{i}"), "a": [null, {"y": 1, "b": "\u{1f}"}]});
        role.targets.insert(
            format!("pad/{}-{i}", i % 97).parse().unwrap(),
            TargetItem {
                hashes: Hashes::from([(
                    "sha256".to_string(),
                    format!("{i:064x}").parse().unwrap(),
                )]),
                length: i as u64,
                custom: Some(RawJson::from_value(&custom).unwrap()),
            },
        );
    }
    role
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn targets_encoded_on_two_cores_equal_the_one_core_encoding(role in targets_role()) {
        let role = padded(role, 4100);
        let one = role.canonical();
        let two = role.clone().into_canonical();
        prop_assert_eq!(one.is_ok(), two.is_ok());
        match (one, two) {
            (Ok(one), Ok((two, targets))) => {
                prop_assert_eq!(&two, &one);
                prop_assert_eq!(one, CanonicalJson::of(&serde_json::to_value(&role).unwrap()));
                prop_assert_eq!(targets, role.targets);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            _ => unreachable!(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn large_files_decoded_on_two_cores_equal_the_role(role in targets_role()) {
        let role = padded(role, 12_000);
        // garage-sign's layout, as roles/unsigned/targets.json is written.
        let file = to_pretty(&serde_json::to_value(&role).unwrap()).into_bytes();
        prop_assert!(file.len() >= 4 << 20, "{} bytes: too small for two cores", file.len());
        prop_assert_eq!(TargetsRole::from_vec(file.clone(), "t").unwrap(), role.clone());
        prop_assert_eq!(TargetsRole::from_slice(&file, "t").unwrap(), role);
    }
}

#[test]
fn repeated_keys_keep_the_last_value_like_a_value_parse() {
    let raw = br#"{"b":1,"a":{"y":1,"x":2,"y":3},"b":[2]}"#;
    let v: Value = serde_json::from_slice(raw).unwrap();
    assert_eq!(
        CanonicalJson::from_slice(raw, "t").unwrap(),
        CanonicalJson::of(&v)
    );
    assert_eq!(
        CanonicalJson::from_slice(raw, "t").unwrap().as_str(),
        r#"{"a":{"x":2,"y":3},"b":[2]}"#
    );
    assert!(CanonicalJson::from_slice(b"{\"a\":1} x", "t").is_err());
}

#[test]
fn every_fixture_canonicalises_the_same_directly() {
    let mut seen = 0;
    for entry in walkdir::WalkDir::new(fixtures()) {
        let entry = entry.unwrap();
        if entry.path().extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            assert!(CanonicalJson::from_slice(&bytes, "t").is_err());
            continue;
        };
        let what = entry.path().display().to_string();
        let reference = CanonicalJson::of(&v);
        assert_eq!(
            CanonicalJson::from_slice(&bytes, &what).unwrap(),
            reference,
            "{what}"
        );
        assert_eq!(
            CanonicalJson::of_serialize(&v).unwrap(),
            reference,
            "{what}"
        );
        assert_eq!(
            String::from_utf8(pretty_from_canonical(&reference)).unwrap(),
            to_pretty(&v),
            "{what}"
        );
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} JSON fixtures found");
}
