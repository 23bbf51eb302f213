//! `ota-reposerver` at the HTTP level (reference/reposerver.md §2–§5).

use crate::support::reposerver::{Auth, Options, TestServer};
use crate::support::{fixture, zip_entry, zip_names};
use chrono::{Duration, Utc};
use ota_sign::crypto::sha256_hex;
use ota_sign::keys::{PrivateKey, PublicKey};
use ota_sign::metadata::{Expires, RoleKeys, RootRole, SignedPayload};
use reqwest::blocking::Response;
use serde_json::{json, Value};

const CHECKSUM: &str = "x-ats-role-checksum";

fn custom(name: &str) -> Value {
    json!({"name": name, "version": "1.0", "hardwareIds": ["hw"], "targetFormat": "BINARY", "uri": null,
           "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z"})
}

fn targets_signed(version: u64, targets: Value, expires: &str) -> Value {
    json!({"_type": "Targets", "expires": expires, "targets": targets, "version": version})
}

fn one_target(name: &str) -> Value {
    json!({name: {"hashes": {"sha256": sha256_hex(name.as_bytes())}, "length": 3, "custom": custom(name)}})
}

fn sign(signed: Value, keys: &[&PrivateKey]) -> Vec<u8> {
    serde_json::to_vec(&SignedPayload::sign(signed, keys).unwrap()).unwrap()
}

fn error_body(r: Response) -> Value {
    let v: Value = r.json().unwrap();
    for f in ["code", "description", "cause", "errorId"] {
        assert!(v.get(f).is_some(), "error body lacks {f}: {v}");
    }
    v
}

fn push(s: &TestServer, checksum: Option<&str>, body: Vec<u8>) -> Response {
    let mut rb = s
        .put("targets")
        .header("content-type", "application/json")
        .body(body);
    if let Some(c) = checksum {
        rb = rb.header(CHECKSUM, c);
    }
    rb.send().unwrap()
}

const LATER: &str = "2030-01-01T00:00:00Z";

#[test]
fn initial_metadata_routes_and_checksums() {
    let s = TestServer::start();
    let (root, checksum, body) = s.role("root.json");
    assert_eq!(checksum, sha256_hex(&body));
    assert_eq!(
        body,
        root.canonical().into_bytes(),
        "served bytes are canonical"
    );
    let r = RootRole::from_signed(&root.signed, "root").unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(r.keys.len(), 4, "four distinct online keys");
    for role in ["root", "targets", "snapshot", "timestamp"] {
        assert_eq!(r.roles[role].threshold, 1);
    }
    assert!(r.expires.datetime() > Utc::now() + Duration::days(364));
    let trusted = ota_sign::verify::verify_self_signed_root(&root, "root").unwrap();

    let (targets, tsum, tbody) = s.role("targets.json");
    assert_eq!(tsum, sha256_hex(&tbody));
    assert_eq!(targets.version(), Some(1));
    trusted.verify("targets", &targets, "targets").unwrap();
    let exp = Expires::parse(targets.signed["expires"].as_str().unwrap()).unwrap();
    assert!(exp.datetime() > Utc::now() + Duration::days(30));
    let (snapshot, ssum, _) = s.role("snapshot.json");
    trusted.verify("snapshot", &snapshot, "snapshot").unwrap();
    assert_eq!(
        snapshot.signed["meta"]["targets.json"]["hashes"]["sha256"],
        json!(tsum)
    );
    assert_eq!(
        snapshot.signed["meta"]["targets.json"]["length"],
        json!(tbody.len())
    );
    let (timestamp, _, _) = s.role("timestamp.json");
    trusted
        .verify("timestamp", &timestamp, "timestamp")
        .unwrap();
    assert_eq!(
        timestamp.signed["meta"]["snapshot.json"]["hashes"]["sha256"],
        json!(ssum)
    );

    let r1 = s.get("1.root.json").send().unwrap();
    assert_eq!(r1.status(), 200);
    assert!(r1.headers().contains_key("x-ats-tuf-repo-id"));
    assert_eq!(r1.bytes().unwrap().to_vec(), body);
    let r2 = s.get("2.root.json").send().unwrap();
    assert_eq!(r2.status(), 404);
    let e = error_body(r2);
    assert_eq!(e["code"], "root_role_not_found");
    assert_eq!(
        e["description"],
        "root role was not found in upstream key store"
    );

    // credentials.zip as OTA Connect's quickstart writes it.
    let zip = s.credentials_zip();
    for name in [
        "treehub.json",
        "tufrepo.url",
        "root.json",
        "targets.pub",
        "targets.sec",
    ] {
        assert!(
            zip_names(&zip).contains(&name.to_string()),
            "{name} missing"
        );
    }
    assert_eq!(zip_entry(&zip, "tufrepo.url").unwrap(), s.url().as_bytes());
    assert_eq!(zip_entry(&zip, "root.json").unwrap(), body);
    let th: Value = serde_json::from_slice(&zip_entry(&zip, "treehub.json").unwrap()).unwrap();
    assert_eq!(th["no_auth"], true);
    assert_eq!(s.targets_key().key_id(), r.roles["targets"].keyids[0]);
    // Online keys: 0600 files in a 0700 directory.
    let keys = s.data_dir().join("keys");
    assert_eq!(crate::support::mode(&keys), 0o700);
    assert_eq!(crate::support::mode(&s.data_dir()), 0o700);
    for k in r.keys.keys() {
        assert_eq!(crate::support::mode(&keys.join(format!("{k}.json"))), 0o600);
    }
}

#[test]
fn put_targets_status_paths() {
    let s = TestServer::start();
    let key = s.targets_key();
    let (_, sum1, _) = s.role("targets.json");
    let good = sign(targets_signed(2, one_target("a-1.0"), LATER), &[&key]);

    let r = push(&s, None, good.clone());
    assert_eq!(r.status(), 428);
    assert_eq!(error_body(r)["code"], "role_checksum_not_provided");
    let r = push(&s, Some("NOT-HEX"), good.clone());
    assert_eq!(r.status(), 428, "a malformed checksum counts as absent");
    let r = push(&s, Some(&sha256_hex(b"other")), good.clone());
    assert_eq!(r.status(), 412);
    assert_eq!(error_body(r)["code"], "role_checksum_mismatch");

    let r = push(&s, Some(&sum1), b"{not json".to_vec());
    assert_eq!(r.status(), 400);
    assert_eq!(error_body(r)["code"], "invalid_entity");
    let sha512 = json!({"x": {"hashes": {"sha512": "00"}, "length": 1, "custom": custom("x")}});
    let r = push(
        &s,
        Some(&sum1),
        sign(targets_signed(2, sha512, LATER), &[&key]),
    );
    assert_eq!(error_body(r)["code"], "invalid_entity");

    // Signed by a key outside root's targets role, and a new target without custom.
    let stranger = PrivateKey::generate(ota_sign::keys::KeyType::Ed25519, None).unwrap();
    let r = push(
        &s,
        Some(&sum1),
        sign(targets_signed(2, one_target("a-1.0"), LATER), &[&stranger]),
    );
    assert_eq!(r.status(), 400);
    let e = error_body(r);
    assert_eq!(e["code"], "invalid_offline_targets");
    let causes: Vec<String> = serde_json::from_value(e["cause"].clone()).unwrap();
    assert!(
        causes
            .iter()
            .any(|c| c.contains("not found in authoritative role")),
        "{causes:?}"
    );
    assert!(
        causes
            .iter()
            .any(|c| c.contains("Valid signature count must be >= threshold (1)")),
        "{causes:?}"
    );
    let no_custom = json!({"b": {"hashes": {"sha256": sha256_hex(b"b")}, "length": 1}});
    let r = push(
        &s,
        Some(&sum1),
        sign(targets_signed(2, no_custom, LATER), &[&key]),
    );
    let e = error_body(r);
    assert_eq!(e["code"], "invalid_offline_targets");
    assert_eq!(
        e["cause"],
        json!([
            "target item error b: new offline signed target items must contain custom metadata"
        ])
    );
    let mut bad_custom = one_target("c");
    bad_custom["c"]["custom"]
        .as_object_mut()
        .unwrap()
        .remove("createdAt");
    let e = error_body(push(
        &s,
        Some(&sum1),
        sign(targets_signed(2, bad_custom, LATER), &[&key]),
    ));
    assert!(e["cause"][0].as_str().unwrap().contains("createdAt"), "{e}");

    // Version must be old+1.
    let r = push(
        &s,
        Some(&sum1),
        sign(targets_signed(5, one_target("a-1.0"), LATER), &[&key]),
    );
    assert_eq!(r.status(), 409);
    let e = error_body(r);
    assert_eq!(e["code"], "invalid_version_bump");
    assert_eq!(e["description"], "Cannot bump version from 1 to 5");

    // Nothing above changed the state.
    assert_eq!(s.role("targets.json").1, sum1);

    let r = push(&s, Some(&sum1), good.clone());
    assert_eq!(r.status(), 204);
    let new_sum = r.headers()[CHECKSUM].to_str().unwrap().to_string();
    let (t, sum2, body) = s.role("targets.json");
    assert_eq!(new_sum, sum2);
    assert_eq!(sha256_hex(&body), sum2);
    assert_eq!(
        t.signed,
        serde_json::from_slice::<SignedPayload>(&good)
            .unwrap()
            .signed,
        "stored verbatim"
    );
    let (snap, _, _) = s.role("snapshot.json");
    assert_eq!(snap.version(), Some(2));
    assert_eq!(
        snap.signed["expires"], LATER,
        "snapshot expires with targets"
    );
    assert_eq!(
        snap.signed["meta"]["targets.json"]["hashes"]["sha256"],
        json!(sum2)
    );
    let (ts, _, _) = s.role("timestamp.json");
    assert_eq!(ts.version(), Some(2));
    assert_eq!(ts.signed["expires"], LATER);

    // The old checksum is now stale; existing targets need no custom.
    assert_eq!(push(&s, Some(&sum1), good).status(), 412);
    let mut existing = one_target("a-1.0");
    existing["a-1.0"].as_object_mut().unwrap().remove("custom");
    assert_eq!(
        push(
            &s,
            Some(&sum2),
            sign(targets_signed(3, existing, LATER), &[&key])
        )
        .status(),
        204
    );

    // Bodies are capped.
    let r = push(&s, Some(&sum2), vec![b' '; 17 << 20]);
    assert_eq!(r.status(), 413);
}

/// Builds root v(N+1) from the served root with `targets` as the targets key,
/// signed by `signers`.
fn rotated_root(s: &TestServer, targets: &PublicKey, signers: &[&PrivateKey]) -> Vec<u8> {
    let (root, _, _) = s.role("root.json");
    let mut r = RootRole::from_signed(&root.signed, "root").unwrap();
    r.version += 1;
    let id = targets.key_id();
    r.keys.insert(id.clone(), targets.clone());
    r.roles.insert(
        "targets".into(),
        RoleKeys {
            keyids: vec![id],
            threshold: 1,
        },
    );
    r.prune_keys();
    sign(r.to_signed().unwrap(), signers)
}

fn online_root_key(s: &TestServer) -> PrivateKey {
    let (root, _, _) = s.role("root.json");
    let id = root.signed["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.get(&format!("root/private_keys/{id}")).send().unwrap();
    assert_eq!(r.status(), 200);
    PrivateKey::from_json(&r.json().unwrap(), None).unwrap()
}

const PROV: &str = "aktualizr/tests/test_data/prov/metadata/repo";

#[test]
fn upstream_fixtures_signed_by_foreign_keys_are_refused() {
    let s = TestServer::start();
    let (_, sum1, _) = s.role("targets.json");
    // A real ota-tuf targets.json, signed by a key our root does not list.
    let foreign = std::fs::read(fixture(&format!("{PROV}/targets.json"))).unwrap();
    let r = push(&s, Some(&sum1), foreign);
    assert_eq!(r.status(), 400);
    let e = error_body(r);
    assert_eq!(e["code"], "invalid_offline_targets");
    assert_eq!(
        e["cause"],
        json!([
            "key 848a526d39328aaece8c8fd933b8c5b9418361c3e515bfd4d84342f35b0efcc0 required for role validation not found in authoritative role",
            "Valid signature count must be >= threshold (1)"
        ])
    );
    // aktualizr's sample1 lists sha512 hashes, which ota-tuf's decoder refuses.
    let sample = std::fs::read(fixture("aktualizr/tests/tuf/sample1/targets.json")).unwrap();
    let r = push(&s, Some(&sum1), sample);
    assert_eq!(r.status(), 400);
    assert_eq!(error_body(r)["code"], "invalid_entity");
}

#[test]
fn upstream_fixture_is_accepted_once_root_trusts_its_key() {
    let s = TestServer::start();
    // The fixture's targets key becomes root's targets key (no targets role exists yet,
    // so neither a checksum nor a version bump is required, as upstream).
    let prov_root: Value = crate::support::read_json(&fixture(&format!("{PROV}/root.json")));
    let kid = prov_root["signed"]["roles"]["targets"]["keyids"][0]
        .as_str()
        .unwrap();
    let fixture_key = PublicKey::from_json(&prov_root["signed"]["keys"][kid], false).unwrap();
    assert_eq!(fixture_key.key_id().as_str(), kid);
    let root_key = online_root_key(&s);
    let r = s
        .post("root")
        .body(rotated_root(&s, &fixture_key, &[&root_key]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let raw = std::fs::read(fixture(&format!("{PROV}/targets.json"))).unwrap();
    let doc = SignedPayload::parse(&raw, "fixture").unwrap();
    let r = push(&s, None, raw);
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()[CHECKSUM].to_str().unwrap(), doc.checksum());
    let (t, sum, body) = s.role("targets.json");
    assert_eq!(sum, doc.checksum());
    assert_eq!(body, doc.canonical().into_bytes());
    assert_eq!(
        t.version(),
        Some(21),
        "expired and offline-signed: served unchanged"
    );
}

#[test]
fn reference_vector_after_moving_the_targets_key() {
    let s = TestServer::start();
    let (_, sum1, _) = s.role("targets.json");

    // Move the targets role to the reference key (seed 32×0x01, reposerver.md §6.6).
    let vector_key = PrivateKey::from_json(
        &json!({"keytype": "ED25519", "keyval": {"private": "01".repeat(32)}}),
        None,
    )
    .unwrap();
    assert_eq!(
        vector_key.key_id().as_str(),
        "fd110d301d2f077de1414b8f99f441b1403fab207b2052fbd2c065e4ee8e7dc2"
    );
    let old_targets_id = s.targets_key().key_id().to_string();
    let root_key = online_root_key(&s);
    let r = s
        .post("root")
        .header("content-type", "application/json")
        .body(rotated_root(&s, vector_key.public(), &[&root_key]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    assert_eq!(s.role("root.json").0.version(), Some(2));
    assert_eq!(s.get("2.root.json").send().unwrap().status(), 200);
    // The old targets key is gone from the server.
    let r = s
        .get(&format!("root/private_keys/{old_targets_id}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_body(r)["code"], "keypair_not_found");
    assert!(!s
        .data_dir()
        .join("keys")
        .join(format!("{old_targets_id}.json"))
        .exists());

    // The reference targets.json (version 2) is accepted with the reference checksum.
    let canonical = r#"{"_type":"Targets","expires":"2030-01-01T00:00:00Z","targets":{"myapp-1.0.0":{"custom":{"cliUploaded":false,"createdAt":"2025-01-01T00:00:00Z","hardwareIds":["raspberrypi4-64"],"name":"myapp","targetFormat":"BINARY","updatedAt":"2025-01-01T00:00:00Z","uri":null,"version":"1.0.0"},"hashes":{"sha256":"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"},"length":3}},"version":2}"#;
    let signed: Value = serde_json::from_str(canonical).unwrap();
    let doc = SignedPayload::sign(signed, &[&vector_key]).unwrap();
    assert_eq!(
        doc.signatures[0].sig,
        "liuq06sC3BXFkiTVjy96ttZTO5UN52kBeR3hEG3VVzQOSCJf71GnllHp17vmPjHXSUKuFysz3+XPckaUCyi2DQ=="
    );
    let expected = "33ddfa09524de2c81f2f7052d177c09426e0863eed66b54f6df4f4bec63c4470";
    let r = push(&s, Some(&sum1), serde_json::to_vec(&doc).unwrap());
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()[CHECKSUM], expected);
    let (_, sum, body) = s.role("targets.json");
    assert_eq!((sum.as_str(), body.len()), (expected, 612));
}

#[test]
fn post_root_failures_are_502_invalid_root_role() {
    let s = TestServer::start();
    let root_key = online_root_key(&s);
    let stranger = PrivateKey::generate(ota_sign::keys::KeyType::Ed25519, None).unwrap();
    let t = s.targets_key();
    let post = |body: Vec<u8>| {
        s.post("root")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    let check = |r: Response, needle: &str| {
        assert_eq!(r.status(), 502);
        let e = error_body(r);
        assert_eq!(e["code"], "invalid_root_role");
        assert_eq!(
            e["cause"]["code"], "invalid_root_role",
            "nested keyserver error: {e}"
        );
        let causes: Vec<String> = serde_json::from_value(e["cause"]["cause"].clone()).unwrap();
        assert!(
            causes.iter().any(|c| c.contains(needle)),
            "{needle:?} not in {causes:?}"
        );
    };
    // Signed by a key the old root does not trust.
    check(
        post(rotated_root(&s, t.public(), &[&stranger])),
        "root.json version 1 requires 1 valid signatures for root.json version 2, 0 supplied",
    );
    // Wrong version.
    let (root, _, _) = s.role("root.json");
    let mut r = RootRole::from_signed(&root.signed, "root").unwrap();
    r.version = 3;
    check(
        post(sign(r.to_signed().unwrap(), &[&root_key])),
        "Invalid version bump from 1 to 3",
    );
    // An encoding ota-tuf would not reproduce.
    let mut signed = root.signed.clone();
    signed["version"] = json!(2);
    signed["extra"] = json!(1);
    check(
        post(sign(signed, &[&root_key])),
        "an incompatible encoder was used to encode root.json",
    );
    assert_eq!(
        s.get("2.root.json").send().unwrap().status(),
        404,
        "nothing stored"
    );
    // Unsigned root for editing.
    let unsigned: Value = s.get("root").send().unwrap().json().unwrap();
    assert_eq!(unsigned["version"], 2);
}

#[test]
fn private_key_routes() {
    let s = TestServer::start();
    let (root, _, _) = s.role("root.json");
    let id = root.signed["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let key = online_root_key(&s);
    assert_eq!(key.key_id().as_str(), id);
    assert_eq!(
        s.delete(&format!("root/private_keys/{id}"))
            .send()
            .unwrap()
            .status(),
        204
    );
    let r = s.get(&format!("root/private_keys/{id}")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_body(r)["code"], "keypair_not_found");
    assert_eq!(
        s.get("root/private_keys/NOTAKEY").send().unwrap().status(),
        404
    );
    let t = s.targets_key();
    let pair: Value = serde_json::from_str(&t.to_key_pair_json()).unwrap();
    let secret = pair["keyval"]["private"].as_str().unwrap();
    assert!(
        s.log().contains("GET /api/v1/user_repo/root/private_keys/"),
        "one line per request"
    );
    assert!(
        !s.log().contains(&secret[..64]),
        "no key material in the log"
    );
}

#[test]
fn concurrent_pushes_exactly_one_wins() {
    let s = TestServer::start();
    let key = s.targets_key();
    let (_, sum1, _) = s.role("targets.json");
    let bodies: Vec<Vec<u8>> = (0..16)
        .map(|i| {
            sign(
                targets_signed(2, one_target(&format!("t{i}")), LATER),
                &[&key],
            )
        })
        .collect();
    let barrier = std::sync::Barrier::new(16);
    let results: Vec<(u16, Option<String>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (s, barrier, sum1) = (&s, &barrier, &sum1);
                scope.spawn(move || {
                    let client = s.client();
                    barrier.wait();
                    let r = client
                        .put(s.api("targets"))
                        .header(CHECKSUM, sum1.as_str())
                        .body(b.clone())
                        .send()
                        .unwrap();
                    let c = r
                        .headers()
                        .get(CHECKSUM)
                        .map(|v| v.to_str().unwrap().to_string());
                    (r.status().as_u16(), c, i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<_> = results.iter().filter(|r| r.0 == 204).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(
        results.iter().filter(|r| r.0 == 412).count(),
        15,
        "{results:?}"
    );
    let (t, sum, _) = s.role("targets.json");
    assert_eq!(Some(sum.clone()), winners[0].1);
    assert_eq!(t.version(), Some(2));
    let won = format!("t{}", winners[0].2);
    assert_eq!(
        t.signed["targets"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec![&won]
    );
    let (snap, _, _) = s.role("snapshot.json");
    assert_eq!(snap.version(), Some(2));
    assert_eq!(
        snap.signed["meta"]["targets.json"]["hashes"]["sha256"],
        json!(sum)
    );
}

#[test]
fn restart_keeps_state_and_checksums() {
    let mut s = TestServer::start();
    let key = s.targets_key();
    let (_, sum1, _) = s.role("targets.json");
    assert_eq!(
        push(
            &s,
            Some(&sum1),
            sign(targets_signed(2, one_target("a"), LATER), &[&key])
        )
        .status(),
        204
    );
    let before: Vec<(String, Vec<u8>)> = [
        "root.json",
        "targets.json",
        "snapshot.json",
        "timestamp.json",
    ]
    .iter()
    .map(|p| {
        let (_, c, b) = s.role(p);
        (c, b)
    })
    .collect();
    let url = s.url().to_string();
    s.restart();
    assert_eq!(s.url(), url, "same port after restart");
    let after: Vec<(String, Vec<u8>)> = [
        "root.json",
        "targets.json",
        "snapshot.json",
        "timestamp.json",
    ]
    .iter()
    .map(|p| {
        let (_, c, b) = s.role(p);
        (c, b)
    })
    .collect();
    assert_eq!(before, after);
    // The compare-and-swap continues from the persisted checksum.
    assert_eq!(
        push(
            &s,
            Some(&after[1].0),
            sign(targets_signed(3, one_target("a"), LATER), &[&key])
        )
        .status(),
        204
    );
    assert_eq!(
        s.targets_key().key_id(),
        key.key_id(),
        "online keys survive"
    );
}

#[test]
fn oauth2_requires_a_bearer_token() {
    let s = TestServer::with(Options {
        auth: Auth::OAuth2,
        ..Default::default()
    });
    let th: Value =
        serde_json::from_slice(&zip_entry(&s.credentials_zip(), "treehub.json").unwrap()).unwrap();
    assert_eq!(th["oauth2"]["server"], format!("{}/token", s.url()));
    assert!(th["oauth2"]["client_secret"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    // It serves no Treehub, so the zip names none.
    assert!(th.get("ostree").is_none(), "{th}");
    let plain = s.client();
    let r = plain.get(s.api("targets.json")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_body(r)["code"], "unauthorized");
    let r = plain
        .get(s.api("root.json"))
        .bearer_auth("made-up")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = plain
        .post(format!("{}/token", s.url()))
        .basic_auth(th["oauth2"]["client_id"].as_str().unwrap(), Some("wrong"))
        .body("grant_type=client_credentials")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        s.get("root.json").send().unwrap().status(),
        200,
        "with a token from /token"
    );
}

#[test]
fn mtls_requires_a_client_certificate() {
    let s = TestServer::with(Options {
        auth: Auth::Mtls,
        ..Default::default()
    });
    assert!(s.url().starts_with("https://127.0.0.1:"), "{}", s.url());
    let zip = s.credentials_zip();
    for name in [
        "client_auth.p12",
        "server.p12",
        "root.json",
        "tufrepo.url",
        "treehub.json",
    ] {
        assert!(
            zip_names(&zip).contains(&name.to_string()),
            "{name} missing"
        );
    }
    let p12 = zip_entry(&zip, "client_auth.p12").unwrap();
    let ks = p12_keystore::KeyStore::from_pkcs12(&p12, "").unwrap();
    assert!(
        ks.private_key_chain().is_some(),
        "client key with its certificate, empty password"
    );
    assert!(
        s.client_without_identity()
            .get(s.api("root.json"))
            .send()
            .is_err(),
        "no client certificate, no answer"
    );
    assert!(
        s.log().contains("TLS handshake with"),
        "refused in the handshake:\n{}",
        s.log()
    );
    assert_eq!(s.get("root.json").send().unwrap().status(), 200);
}

#[test]
fn faults_answer_reset_or_delay() {
    let s = TestServer::start();
    s.add_fault(json!({"method": "GET", "path": "/api/v1/user_repo/targets.json", "count": 2, "kind": "status", "status": 503}));
    assert_eq!(s.get("targets.json").send().unwrap().status(), 503);
    assert_eq!(
        s.get("root.json").send().unwrap().status(),
        200,
        "other routes unaffected"
    );
    assert_eq!(s.get("targets.json").send().unwrap().status(), 503);
    assert_eq!(s.get("targets.json").send().unwrap().status(), 200);
    s.add_fault(json!({"path": "/api/v1/user_repo/*", "kind": "reset"}));
    assert!(s.get("snapshot.json").send().is_err(), "connection reset");
    assert_eq!(s.get("snapshot.json").send().unwrap().status(), 200);
    s.add_fault(json!({"path": "/api/v1/user_repo/root.json", "kind": "delay", "delay_ms": 10}));
    s.add_fault(
        json!({"path": "/api/v1/user_repo/timestamp.json", "kind": "status", "status": 500}),
    );
    assert_eq!(
        s.get("root.json").send().unwrap().status(),
        200,
        "delayed, then answered"
    );
    let remaining = || -> Value {
        let r = s.client().get(format!("{}/_admin/faults", s.url()));
        r.header("x-ota-admin-token", s.admin_token())
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let expected = json!([{"path": "/api/v1/user_repo/timestamp.json", "count": 1, "kind": "status", "status": 500}]);
    assert_eq!(remaining(), expected, "the delay rule was used up");
    s.clear_faults();
    assert_eq!(remaining(), json!([]));
    assert_eq!(s.get("timestamp.json").send().unwrap().status(), 200);
    let r = s
        .client()
        .get(format!("{}/_admin/faults", s.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "admin routes need the admin token");
}

#[test]
fn online_resigning_close_to_expiry() {
    let s = TestServer::start();
    let key = s.targets_key();
    let (_, sum1, _) = s.role("targets.json");
    let soon = Expires::new(Utc::now() + Duration::minutes(10)).to_string();
    assert_eq!(
        push(
            &s,
            Some(&sum1),
            sign(targets_signed(2, one_target("a"), &soon), &[&key])
        )
        .status(),
        204
    );
    // The targets key is still online: the next GET re-signs targets, snapshot, timestamp.
    let (t, _, _) = s.role("targets.json");
    assert_eq!(t.version(), Some(3));
    let exp = Expires::parse(t.signed["expires"].as_str().unwrap()).unwrap();
    assert!(exp.datetime() > Utc::now() + Duration::days(29));
    assert_eq!(t.signed["targets"], one_target("a"));
    let root = ota_sign::verify::verify_self_signed_root(&s.role("root.json").0, "root").unwrap();
    root.verify("targets", &t, "targets").unwrap();
    let (snap, _, _) = s.role("snapshot.json");
    assert_eq!(snap.signed["meta"]["targets.json"]["version"], 3);

    // With the key offline, the expiring role is served unchanged.
    let (_, sum3, _) = s.role("targets.json");
    assert_eq!(
        s.delete(&format!("root/private_keys/{}", key.key_id()))
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        push(
            &s,
            Some(&sum3),
            sign(targets_signed(4, one_target("a"), &soon), &[&key])
        )
        .status(),
        204
    );
    let (t, _, _) = s.role("targets.json");
    assert_eq!(
        (t.version(), t.signed["expires"].as_str()),
        (Some(4), Some(soon.as_str()))
    );
}

#[test]
fn target_uploads_and_downloads() {
    let s = TestServer::with(Options {
        part_size: Some(4),
        ..Default::default()
    });
    // Raw body to targets/<file>: stored and added online.
    let r = s
        .put("targets/app-1.0?name=app&version=1.0&hardwareIds=hw1,hw2")
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let (t, _, _) = s.role("targets.json");
    let item = &t.signed["targets"]["app-1.0"];
    assert_eq!(item["hashes"]["sha256"], sha256_hex(b"hello"));
    assert_eq!(item["custom"]["hardwareIds"], json!(["hw1", "hw2"]));
    assert_eq!(
        s.get("targets/app-1.0")
            .send()
            .unwrap()
            .bytes()
            .unwrap()
            .as_ref(),
        b"hello"
    );
    let r = s.get("targets/missing").send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_body(r)["code"], "target_not_found");

    // PUT uploads/<file> redirects to a storage URL that takes the bytes.
    let r = s.put("uploads/big-1.0").body("0123456789").send().unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(s.url()));
    assert_eq!(
        s.client()
            .put(&loc)
            .body("0123456789")
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        s.client()
            .put(loc.replace("token=", "token=x"))
            .body("x")
            .send()
            .unwrap()
            .status(),
        403
    );

    // `GET uploads/<file>` (verify-uploaded) redirects to the stored bytes.
    let r = s.get("uploads/big-1.0").send().unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let got = s.client().get(&loc).send().unwrap().bytes().unwrap();
    assert_eq!(got.as_ref(), b"0123456789");
    assert_eq!(s.get("uploads/none-1").send().unwrap().status(), 404);

    // Multipart, as garage-sign does it against S3.
    let init: Value = s
        .post("multipart/initiate/mp-1.0?fileSize=6")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(init["partSize"], 4);
    let id = init["uploadId"].as_str().unwrap();
    let mut etags = Vec::new();
    for (n, chunk) in [(1, "abcd"), (2, "ef")] {
        let u: Value = s
            .get(&format!(
                "multipart/url/mp-1.0?part={n}&uploadId={id}&md5=x&contentLength=4"
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let r = s
            .client()
            .put(u["uri"].as_str().unwrap())
            .body(chunk)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        etags.push(json!({"part": n, "eTag": r.headers()["etag"].to_str().unwrap()}));
    }
    let r = s
        .put("multipart/complete/mp-1.0")
        .json(&json!({"uploadId": id, "partETags": etags}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.post("multipart/initiate/mp-1.0?fileSize=6")
            .send()
            .unwrap()
            .status(),
        409,
        "already uploaded"
    );

    // The uploaded files are served once the targets name them.
    let key = s.targets_key();
    let (cur, sum, _) = s.role("targets.json");
    let mut targets = cur.signed["targets"].clone();
    for (name, data) in [("big-1.0", "0123456789"), ("mp-1.0", "abcdef")] {
        let mut c = custom(name);
        c["cliUploaded"] = json!(true);
        targets[name] = json!({"hashes": {"sha256": sha256_hex(data.as_bytes())}, "length": data.len(), "custom": c});
    }
    let v = cur.version().unwrap() + 1;
    assert_eq!(
        push(
            &s,
            Some(&sum),
            sign(targets_signed(v, targets, LATER), &[&key])
        )
        .status(),
        204
    );
    assert_eq!(
        s.get("targets/big-1.0")
            .send()
            .unwrap()
            .bytes()
            .unwrap()
            .as_ref(),
        b"0123456789"
    );
    assert_eq!(
        s.get("targets/mp-1.0")
            .send()
            .unwrap()
            .bytes()
            .unwrap()
            .as_ref(),
        b"abcdef"
    );

    let off = TestServer::with(Options {
        multipart: false,
        ..Default::default()
    });
    let r = off
        .post("multipart/initiate/x-1?fileSize=3")
        .send()
        .unwrap();
    assert_eq!(r.status(), 501);
    assert_eq!(error_body(r)["code"], "not_implemented");
}

#[test]
fn delegations_push_and_pull() {
    let s = TestServer::start();
    let key = s.targets_key();
    let delegate = PrivateKey::generate(ota_sign::keys::KeyType::Ed25519, None).unwrap();
    let deleg_doc =
        |signer: &PrivateKey| sign(targets_signed(1, one_target("d-1"), LATER), &[signer]);
    let r = s
        .put("delegations/team.json")
        .body(deleg_doc(&delegate))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_body(r)["code"], "delegations_not_defined");

    let (_, sum, _) = s.role("targets.json");
    let mut signed = targets_signed(2, json!({}), LATER);
    let did = delegate.key_id().to_string();
    signed["delegations"] = json!({"keys": {did.clone(): delegate.public().to_json()},
        "roles": [{"name": "team", "keyids": [did], "threshold": 1, "paths": ["d-*"], "terminating": false}]});
    assert_eq!(push(&s, Some(&sum), sign(signed, &[&key])).status(), 204);

    let r = s
        .put("delegations/team.json")
        .body(deleg_doc(&key))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_body(r)["code"], "payload_signature_invalid");
    assert_eq!(
        s.put("delegations/team.json")
            .body(deleg_doc(&delegate))
            .send()
            .unwrap()
            .status(),
        204
    );
    let (d, dsum, _) = s.role("delegations/team.json");
    assert_eq!(d.signed["targets"], one_target("d-1"));
    let (snap, _, _) = s.role("snapshot.json");
    assert_eq!(
        snap.signed["meta"]["team.json"]["hashes"]["sha256"],
        json!(dsum)
    );
    let r = s.get("delegations/other.json").send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_body(r)["code"], "delegations_not_found");
}

#[test]
fn rsa_repository() {
    let s = TestServer::with(Options {
        key_type: "rsa",
        ..Default::default()
    });
    let (root, _, _) = s.role("root.json");
    assert!(root.signed["keys"]
        .as_object()
        .unwrap()
        .values()
        .all(|k| k["keytype"] == "RSA"));
    assert_eq!(root.signatures[0].method, "rsassa-pss-sha256");
    let key = s.targets_key();
    let (_, sum, _) = s.role("targets.json");
    assert_eq!(
        push(
            &s,
            Some(&sum),
            sign(targets_signed(2, one_target("r"), LATER), &[&key])
        )
        .status(),
        204
    );
}

#[test]
fn first_push_gzip_and_repo_id_routes() {
    let s = TestServer::start();
    let key = s.targets_key();
    // No targets role yet: neither a checksum nor a version bump is required.
    let huge = sign(targets_signed(1 << 40, one_target("a"), LATER), &[&key]);
    assert_eq!(error_body(push(&s, None, huge))["code"], "invalid_entity");
    assert_eq!(
        push(
            &s,
            None,
            sign(targets_signed(7, one_target("a"), LATER), &[&key])
        )
        .status(),
        204
    );
    let (t, sum, _) = s.role("targets.json");
    assert_eq!(t.version(), Some(7));
    assert_eq!(s.role("snapshot.json").0.version(), Some(1));

    // gzip request bodies are decoded (garage-sign gzips large pushes).
    let body = sign(targets_signed(8, one_target("b"), LATER), &[&key]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &body).unwrap();
    let r = s
        .put("targets")
        .header(CHECKSUM, sum)
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.role("targets.json").0.version(), Some(8));

    // `/api/v1/repo/{repoId}/…` serves the same repository, and only ours.
    let r = s.get("root.json").send().unwrap();
    let id = r.headers()["x-ats-tuf-repo-id"]
        .to_str()
        .unwrap()
        .to_string();
    let url = format!("{}/api/v1/repo/{id}/root.json", s.url());
    assert_eq!(
        s.client().get(url).send().unwrap().bytes().unwrap(),
        r.bytes().unwrap()
    );
    let other = format!(
        "{}/api/v1/repo/00000000-0000-4000-8000-000000000000/root.json",
        s.url()
    );
    assert_eq!(s.client().get(other).send().unwrap().status(), 403);
    let r = s.get("no/such/route").send().unwrap();
    assert_eq!(r.status(), 404);
    error_body(r);
}

/// Blocking work (concatenating parts, hashing, fsync) runs off the async runtime: while
/// two large multipart uploads are being completed, `/health` and `GET targets.json` are
/// answered before either complete returns (ordering, not a time limit).
#[test]
fn health_and_targets_answer_while_uploads_complete() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let s = TestServer::with(Options {
        part_size: Some(48 << 20),
        ..Options::default()
    });
    let part: Vec<u8> = (0..48u32 << 20).map(|i| (i % 251) as u8).collect();
    // targets.json exists before the completes start: the GET below then only reads
    // (its first GET would generate and fsync metadata.json, which the kernel may queue
    // behind the completes' 96 MiB of writeback on a loaded machine).
    assert_eq!(s.get("targets.json").send().unwrap().status(), 200);
    let mut uploads = Vec::new();
    for name in ["big-a-1", "big-b-1"] {
        let init: Value = s
            .post(&format!(
                "multipart/initiate/{name}?fileSize={}",
                2 * part.len()
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let id = init["uploadId"].as_str().unwrap().to_string();
        let mut etags = Vec::new();
        for n in 1..=2 {
            let u: Value = s
                .get(&format!(
                    "multipart/url/{name}?part={n}&uploadId={id}&md5=x&contentLength={}",
                    part.len()
                ))
                .send()
                .unwrap()
                .json()
                .unwrap();
            let r = s
                .client()
                .put(u["uri"].as_str().unwrap())
                .body(part.clone())
                .send()
                .unwrap();
            assert_eq!(r.status(), 200);
            etags.push(json!({"part": n, "eTag": r.headers()["etag"].to_str().unwrap()}));
        }
        uploads.push((name, json!({"uploadId": id, "partETags": etags})));
    }
    let tmp = s.data_dir().join("uploads/tmp");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    let completes: Vec<_> = uploads
        .into_iter()
        .map(|(name, body)| {
            let done = Arc::new(AtomicBool::new(false));
            let req = s.put(&format!("multipart/complete/{name}")).json(&body);
            let flag = done.clone();
            let t = std::thread::spawn(move || {
                let status = req.send().unwrap().status();
                flag.store(true, Ordering::SeqCst);
                status
            });
            (done, t)
        })
        .collect();
    // Both completes are under way once both concatenations have their temporary file.
    let mut waited = 0;
    while std::fs::read_dir(&tmp).unwrap().count() < 2 {
        assert!(
            completes.iter().all(|(d, _)| !d.load(Ordering::SeqCst)),
            "a complete returned before both had started; make the parts larger"
        );
        assert!(waited < 120_000, "the completes never started");
        std::thread::sleep(std::time::Duration::from_millis(1));
        waited += 1;
    }
    let health = s
        .client()
        .get(format!("{}/health", s.url()))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    let targets = s.get("targets.json").send().unwrap();
    assert_eq!(targets.status(), 200);
    assert!(
        completes.iter().all(|(d, _)| !d.load(Ordering::SeqCst)),
        "/health and targets.json were answered only after a complete had finished"
    );
    for (_, t) in completes {
        assert_eq!(t.join().unwrap(), 200);
    }
}
