//! CLI tests of the offline commands against a local repository (issue 2), checked by
//! reading the files back independently (serde_json, the `rsa` crate, openssl).

use crate::support::steps::{add_delegated_target, sign_delegation, sign_json};
use crate::support::{fixture, mode, read_json, zip_entry, zip_names, Cmd, Repo, Workspace};
use serde_json::{json, Value};

const SHA: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

fn creds(name: &str) -> String {
    fixture(&format!("ota-tuf/cli/src/test/resources/{name}"))
        .display()
        .to_string()
}

fn canonical(v: &Value) -> String {
    ota_sign::canonical::CanonicalJson::of(v)
        .as_str()
        .to_string()
}

/// A repository with an Ed25519 key `k` and an unsigned targets role.
fn targets_repo(ws: &Workspace) -> Repo<'_> {
    let r = ws.init_from_fixture("r", "credentials_ed25519.zip");
    r.key_generate("k", "ed25519");
    r.ok(&[
        "targets",
        "init",
        "--version",
        "1",
        "--expires",
        "2030-01-01T00:00:00Z",
    ]);
    r
}

fn add_target(r: &Repo, name: &str, version: &str) {
    r.ok(&[
        "targets",
        "add",
        "--name",
        name,
        "--version",
        version,
        "--length",
        "3",
        "--sha256",
        SHA,
        "--hardwareids",
        "hw1,hw2",
    ]);
}

#[test]
fn init_imports_keys_root_and_config_with_private_modes() {
    let ws = Workspace::new();
    let repo = ws.init_from_fixture("r", "credentials_ed25519.zip").path();
    for d in ["", "keys", "roles", "roles/unsigned"] {
        assert_eq!(mode(&repo.join(d)), 0o700, "{d}");
    }
    assert_eq!(mode(&repo.join("keys/targets.sec")), 0o600);
    assert_eq!(mode(&repo.join("config.json")), 0o600);
    let zip = ws.fixture_zip("credentials_ed25519.zip");
    assert_eq!(
        std::fs::read(repo.join("credentials.zip")).unwrap(),
        std::fs::read(&zip).unwrap()
    );
    assert_eq!(
        std::fs::read(repo.join("roles/root.json")).unwrap(),
        zip_entry(&zip, "root.json").unwrap()
    );
    let config = read_json(&repo.join("config.json"));
    assert_eq!(config["reposerver"], "https://test-reposerver");
    assert_eq!(config["auth"]["scope"], "ota-treehub/namespace.default");
    assert_eq!(config["repoServerType"], "RepoServer");
    let sec = read_json(&repo.join("keys/targets.sec"));
    let public = read_json(&repo.join("keys/targets.pub"));
    assert_eq!(sec["keytype"], "ED25519");
    let private = sec["keyval"]["private"].as_str().unwrap();
    assert_eq!(private.len(), 128);
    assert!(private.ends_with(public["keyval"]["public"].as_str().unwrap()));
    // The role files use garage-sign's " : " layout.
    assert!(std::fs::read_to_string(repo.join("config.json"))
        .unwrap()
        .contains("\"reposerver\" : "));
}

#[test]
fn init_handles_every_credentials_shape() {
    let ws = Workspace::new();
    let legacy = ws.init_from_fixture("legacy", "credentials_auth_plus_legacy.zip");
    let c = legacy.json("config.json");
    assert_eq!(c["auth"]["scope"], "none", "missing scope defaults to none");
    assert_eq!(
        c["auth"]["server"],
        "https://ota-test.auth.eu-west-1.amazoncognito.com"
    );
    assert!(legacy.json("keys/targets.pub")["keyval"]["public"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(!legacy.file("roles/root.json").exists());

    // 2017 legacy targets keys ("ED25519" that is really ECDSA) are present but
    // unusable: an error naming the entry, and nothing written.
    let noauth = ws.fixture_zip("credentials_no_auth_ed25519.zip");
    let err = ws
        .open("noauth")
        .fails(3, &["init", "--credentials", noauth.to_str().unwrap()]);
    assert!(err.contains("targets.pub"), "{err}");
    assert!(!ws.repo("noauth").exists());

    let notargets = ws.init_from_fixture("notargets", "credentials_no_targets.zip");
    assert!(!notargets.file("keys/targets.pub").exists());

    let tls = ws.init_from_fixture("tls", "credentials_tls-auth_ed25519.zip");
    let c = tls.json("config.json");
    assert_eq!(
        c["auth"],
        json!({"certPath": "client_auth.p12", "serverCertPath": "server.p12"})
    );
    assert_eq!(mode(&tls.file("client_auth.p12")), 0o600);
    assert!(tls.file("server.p12").exists());
    assert_eq!(c["reposerver"], "https://localhost:8181");

    ws.ok(&[
        "init",
        "--repo",
        "override",
        "--credentials",
        &creds("credentials_rsa.zip"),
        "--reposerver",
        "http://127.0.0.1:9/x/",
    ]);
    assert_eq!(
        read_json(&ws.repo("override").join("config.json"))["reposerver"],
        "http://127.0.0.1:9/x"
    );

    let err = ws.fails(
        3,
        &[
            "init",
            "--repo",
            "x",
            "--credentials",
            &creds("credentials_no_tufrepo_ed25519.zip"),
        ],
    );
    assert!(err.contains("tufrepo.url"), "{err}");
    assert!(
        !ws.repo("x").exists(),
        "a failed init leaves nothing behind"
    );
}

#[test]
fn init_refuses_corrupt_zip_and_existing_repo_without_changes() {
    let ws = Workspace::new();
    let bad = ws.path().join("bad.zip");
    std::fs::write(&bad, b"PK\x03\x04 definitely not a zip").unwrap();
    let r = ws.open("r");
    let err = r.fails(3, &["init", "--credentials", bad.to_str().unwrap()]);
    assert!(err.contains("bad.zip") && err.contains("zip"), "{err}");
    assert!(!ws.repo("r").exists());

    let r = ws.init_from_fixture("r", "credentials_ed25519.zip");
    let before = r.snapshot();
    let err = r.fails(3, &["init", "--credentials", &creds("credentials_rsa.zip")]);
    assert!(err.contains("RepoAlreadyInitialized"), "{err}");
    assert_eq!(before, r.snapshot());
}

#[test]
fn key_generate_writes_garage_sign_key_files() {
    let ws = Workspace::new();
    let r = ws.init_from_fixture("r", "credentials_no_targets.zip");
    r.key_generate("ed", "Ed25519");
    ws.ok(&[
        "key",
        "generate",
        "-r",
        "r",
        "-n",
        "rsa3072",
        "-t",
        "RSA",
        "--keysize",
        "3072",
    ]);
    ws.ok(&["key", "generate", "--repo=r", "--name=default"]);
    let keys = r.file("keys");
    assert_eq!(mode(&keys), 0o700);
    for name in ["ed", "rsa3072", "default"] {
        assert_eq!(mode(&keys.join(format!("{name}.sec"))), 0o600, "{name}");
    }
    let ed_pub = read_json(&keys.join("ed.pub"));
    let ed_pub_hex = ed_pub["keyval"]["public"].as_str().unwrap();
    assert_eq!(ed_pub["keytype"], "ED25519");
    assert!(
        ed_pub_hex.len() == 64
            && ed_pub_hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // garage-sign 0.7.7's default is RSA-2048; the PEM is SPKI with 64-column lines.
    let def = read_json(&keys.join("default.pub"));
    assert_eq!(def["keytype"], "RSA");
    let pem_text = def["keyval"]["public"].as_str().unwrap();
    assert!(
        pem_text.ends_with("-----END PUBLIC KEY-----\n") && pem_text.lines().all(|l| l.len() <= 64)
    );
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts as _;
    let spki = pem::parse(pem_text).unwrap();
    assert_eq!(
        rsa::RsaPublicKey::from_public_key_der(spki.contents())
            .unwrap()
            .n()
            .bits(),
        2048
    );
    let sec = read_json(&keys.join("rsa3072.sec"));
    let private =
        rsa::RsaPrivateKey::from_pkcs1_pem(sec["keyval"]["private"].as_str().unwrap()).unwrap();
    assert_eq!(private.n().bits(), 3072);

    let before = r.snapshot();
    let err = r.fails(255, &["key", "generate", "--name", "x", "--type", "dsa"]);
    assert!(err.contains("Invalid keytype"), "{err}");
    // A key size for Ed25519, an RSA key below 2048 bits.
    for (key_type, size) in [("ed25519", "2048"), ("rsa", "1024")] {
        let args = ["key", "generate", "--name", "x", "--type", key_type];
        r.fails(255, &[&args[..], &["--keysize", size]].concat());
    }
    r.fails(255, &["key", "generate", "--name", "../escape"]);
    assert_eq!(before, r.snapshot());
}

#[test]
fn user_keys_gen_id_and_importpub() {
    let ws = Workspace::new();
    let dir = ws.user_keys_gen("supplier", "ed25519");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("supplier.sec")), 0o600);
    let id = ws.ok(&[
        "user-keys",
        "id",
        "--input",
        dir.join("supplier.pub").to_str().unwrap(),
    ]);
    // Independently: sha256 of the RFC 8410 SPKI.
    let raw = hex::decode(
        read_json(&dir.join("supplier.pub"))["keyval"]["public"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut spki = hex::decode("302a300506032b6570032100").unwrap();
    spki.extend(raw);
    assert_eq!(
        id,
        ota_sign::crypto::sha256_hex(&spki),
        "no trailing newline either"
    );

    let r = ws.init_from_fixture("r", "credentials_no_targets.zip");
    let pems = fixture("ota-tuf/cli/src/test/resources/pem-files");
    for (file, keytype) in [
        ("valid-public-RSA.pem", "RSA"),
        ("valid-public-Ed25519.pem", "ED25519"),
        ("valid-public-EcPrime256.pem", "ECPRIME256V1"),
    ] {
        r.ok(&[
            "user-keys",
            "importpub",
            "--key-name",
            keytype,
            "--input",
            pems.join(file).to_str().unwrap(),
        ]);
        assert_eq!(r.json(&format!("keys/{keytype}.pub"))["keytype"], keytype);
    }
    let err = ws.fails(
        3,
        &[
            "user-keys",
            "importpub",
            "-r",
            "r",
            "-k",
            "bad",
            "-i",
            pems.join("invalid-public-RSA.pem").to_str().unwrap(),
        ],
    );
    assert!(err.contains("Cannot parse public key"), "{err}");
    assert!(!r.file("keys/bad.pub").exists());
}

#[test]
fn targets_add_delete_get_unsigned_and_increment() {
    let ws = Workspace::new();
    let r = targets_repo(&ws);
    add_target(&r, "app", "1.0");
    let unsigned = r.json("roles/unsigned/targets.json");
    let custom = &unsigned["targets"]["app-1.0"]["custom"];
    assert_eq!(custom["hardwareIds"], json!(["hw1", "hw2"]));
    assert_eq!(custom["uri"], Value::Null);
    assert_eq!(custom["targetFormat"], "BINARY");
    assert_eq!(custom["cliUploaded"], false);
    assert_eq!(
        unsigned["targets"]["app-1.0"]["hashes"],
        json!({"sha256": SHA})
    );
    let created = custom["createdAt"].clone();
    assert_eq!(created.as_str().unwrap().len(), 20);

    // Re-adding keeps createdAt (garage-sign 0.7.7) and the OSTree format is upper-cased.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    r.ok(&[
        "targets",
        "add",
        "--name",
        "app",
        "--version",
        "1.0",
        "--length",
        "0",
        "--sha256",
        SHA,
        "--hardwareids",
        "hw1",
        "--format",
        "ostree",
        "--url",
        "https://cdn.example.com/app",
    ]);
    let unsigned = r.json("roles/unsigned/targets.json");
    let custom = &unsigned["targets"]["app-1.0"]["custom"];
    assert_eq!(custom["createdAt"], created);
    assert_ne!(custom["updatedAt"], created);
    assert_eq!(custom["targetFormat"], "OSTREE");
    assert_eq!(custom["uri"], "https://cdn.example.com/app");

    let printed = r.ok(&["targets", "get-unsigned"]);
    assert_eq!(
        printed,
        canonical(&unsigned),
        "get-unsigned prints canonical JSON, no newline"
    );

    r.ok(&["targets", "increment-version"]);
    assert_eq!(r.json("roles/unsigned/targets.json")["version"], 2);

    r.ok(&["targets", "delete", "--filename", "app-1.0"]);
    assert_eq!(r.json("roles/unsigned/targets.json")["targets"], json!({}));
    let before = r.snapshot();
    r.fails(3, &["targets", "delete", "--filename", "app-1.0"]);
    let err = r.fails(
        3,
        &[
            "targets",
            "add",
            "--name",
            "caf\u{e9}",
            "--version",
            "1",
            "--length",
            "3",
            "--sha256",
            SHA,
            "--hardwareids",
            "hw",
        ],
    );
    assert!(err.contains("non-ASCII"), "{err}");
    r.fails(
        3,
        &[
            "targets",
            "add",
            "--name",
            "a",
            "--version",
            "1",
            "--length",
            "3",
            "--sha256",
            "ABC",
            "--hardwareids",
            "hw",
        ],
    );
    assert_eq!(before, r.snapshot());
}

#[test]
fn targets_sign_bumps_version_and_signs_verifiably() {
    let ws = Workspace::new();
    let r = targets_repo(&ws);
    add_target(&r, "app", "1.0");
    r.sign_targets("k");
    let signed = r.json("roles/targets.json");
    assert_eq!(signed["signed"]["version"], 2);
    assert_eq!(
        signed["signed"]["expires"], "2030-01-01T00:00:00Z",
        "a later previous expiry is kept"
    );
    // Independent check: Ed25519 over canonical(signed) with the key from the .pub file.
    let public = hex::decode(r.json("keys/k.pub")["keyval"]["public"].as_str().unwrap()).unwrap();
    let sig = &signed["signatures"][0];
    assert_eq!(sig["method"], "ed25519");
    use base64::Engine;
    let sig_bytes = base64::engine::general_purpose::STANDARD
        .decode(sig["sig"].as_str().unwrap())
        .unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
        .verify(canonical(&signed["signed"]).as_bytes(), &sig_bytes)
        .expect("signature verifies");
    // The unsigned file is not bumped: signing again produces the same version.
    r.ok(&["targets", "sign", "--key-name", "k", "--version", "9"]);
    assert_eq!(r.json("roles/targets.json")["signed"]["version"], 9);
    assert_eq!(r.json("roles/unsigned/targets.json")["version"], 1);
}

#[test]
fn expiry_rules() {
    let ws = Workspace::new();
    let r = targets_repo(&ws);
    let now = chrono::Utc::now();
    let expires = |role: &str| {
        let s = r.json(&format!("roles/{role}.json"))["signed"]["expires"]
            .as_str()
            .unwrap()
            .to_string();
        chrono::DateTime::parse_from_rfc3339(&s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // --expire-after uses calendar arithmetic.
    r.ok(&["targets", "sign", "--key-name", "k", "--expire-after", "1Y"]);
    let e = expires("targets");
    assert!(
        e > now + chrono::Duration::days(364) && e < now + chrono::Duration::days(367),
        "{e}"
    );
    r.ok(&["targets", "sign", "--key-name", "k", "--expire-after", "2W"]);
    let e = expires("targets");
    assert!(
        e > now + chrono::Duration::days(13) && e < now + chrono::Duration::days(15),
        "{e}"
    );
    // Default: max(previous, now + 31 days). An old previous expiry gives now + 31 d.
    r.ok(&[
        "targets",
        "init",
        "--version",
        "1",
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    r.sign_targets("k");
    let e = expires("targets");
    assert!(
        e > now + chrono::Duration::days(30) && e < now + chrono::Duration::days(32),
        "{e}"
    );
    // A date in the past: exit 1, nothing written; --force accepts it.
    let before = r.snapshot();
    let err = r.fails(
        1,
        &[
            "targets",
            "sign",
            "--key-name",
            "k",
            "--expires",
            "2021-01-01T00:00:00Z",
        ],
    );
    assert!(err.contains("--force"), "{err}");
    r.fails(
        1,
        &[
            "targets",
            "sign",
            "--key-name",
            "k",
            "--expire-after",
            "-1D",
        ],
    );
    assert_eq!(before, r.snapshot());
    r.fails(
        255,
        &[
            "targets",
            "sign",
            "--key-name",
            "k",
            "--expires",
            "2031-01-01T00:00:00Z",
            "--expire-after",
            "1M",
        ],
    );
    r.ok(&[
        "targets",
        "sign",
        "--key-name",
        "k",
        "--expires",
        "2021-01-01T00:00:00Z",
        "--force",
    ]);
    assert_eq!(
        r.json("roles/targets.json")["signed"]["expires"],
        "2021-01-01T00:00:00Z"
    );
    // Root: default now + 365 days.
    r.key_generate("root2", "ed25519");
    r.ok(&["root", "key", "add", "--key-name", "root2"]);
    r.ok(&["root", "sign", "--key-name", "root2"]);
    let e = expires("root");
    assert!(
        e > now + chrono::Duration::days(364) && e < now + chrono::Duration::days(366),
        "{e}"
    );
}

/// increment-version → get-unsigned → sign elsewhere (openssl) → sign --signatures.
#[test]
fn external_signature_flow_with_openssl() {
    let ws = Workspace::new();
    let r = ws.init_from_fixture("r", "credentials_rsa.zip");
    r.ok(&[
        "targets",
        "init",
        "--version",
        "4",
        "--expires",
        "2030-01-01T00:00:00Z",
    ]);
    add_target(&r, "app", "1.0");
    r.ok(&["targets", "increment-version"]);
    let unsigned = r.ok(&["targets", "get-unsigned"]);
    let msg = ws.path().join("msg.json");
    std::fs::write(&msg, &unsigned).unwrap();
    let key_pem = ws.path().join("key.pem");
    std::fs::write(
        &key_pem,
        r.json("keys/targets.sec")["keyval"]["private"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let sig_bytes = Cmd::program("openssl")
        .hint("(apt-get install openssl)")
        .args([
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-sign",
        ])
        .arg(&key_pem)
        .arg(&msg)
        .run()
        .success()
        .out
        .stdout;
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD.encode(&sig_bytes);

    // A wrong signature is refused and nothing is written.
    let before = r.snapshot();
    let wrong = base64::engine::general_purpose::STANDARD.encode(vec![7u8; sig_bytes.len()]);
    let err = r.fails(
        3,
        &[
            "targets",
            "sign",
            "--signatures",
            &format!("targets={wrong}"),
        ],
    );
    assert!(err.contains("Wrong signature"), "{err}");
    r.fails(
        255,
        &[
            "targets",
            "sign",
            "--signatures",
            &format!("targets={sig}"),
            "--version",
            "8",
        ],
    );
    assert_eq!(before, r.snapshot());

    r.ok(&["targets", "sign", "--signatures", &format!("targets={sig}")]);
    let signed = r.json("roles/targets.json");
    assert_eq!(
        signed["signed"]["version"], 5,
        "external signatures change neither version nor expiry"
    );
    assert_eq!(signed["signed"]["expires"], "2030-01-01T00:00:00Z");
    assert_eq!(canonical(&signed["signed"]), unsigned);
    assert_eq!(signed["signatures"][0]["method"], "rsassa-pss-sha256");
    assert_eq!(
        signed["signatures"][0]["keyid"],
        "2a65c0523fd844e15d58cee221891ab51618f18f8110add928c6e4c09d446e39"
    );
    // ota-sign's own verifier agrees.
    let sec = r.json("keys/targets.pub");
    let public = ota_sign::keys::PublicKey::from_json(&sec, false).unwrap();
    assert!(public.verify("rsassa-pss-sha256", unsigned.as_bytes(), &sig));
}

#[test]
fn root_key_edits_threshold_and_sign() {
    let ws = Workspace::new();
    let r = ws.init_from_fixture("r", "credentials_ed25519.zip");
    let original = r.json("roles/root.json");
    // get-unsigned falls back to the signed root and re-encodes it.
    let printed = r.ok(&["root", "get-unsigned"]);
    assert_eq!(printed, canonical(&original["signed"]));

    r.key_generate("newroot", "ed25519");
    r.key_generate("newtargets", "rsa");
    r.ok(&["root", "key", "add", "--key-name", "newroot"]);
    r.ok(&["root", "targets-key", "add", "--key-name", "newtargets"]);
    let unsigned = r.json("roles/unsigned/root.json");
    let newroot_id = r.key_id("newroot");
    assert_eq!(
        unsigned["roles"]["root"]["keyids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(unsigned["keys"][&newroot_id].is_object());
    assert_eq!(
        unsigned["roles"]["targets"]["keyids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    r.ok(&["root", "set-threshold", "--threshold", "2"]);
    let before = r.snapshot();
    let err = r.fails(3, &["root", "key", "remove", "--key-name", "newroot"]);
    assert!(err.contains("threshold"), "{err}");
    r.fails(255, &["root", "set-threshold", "--threshold", "3"]);
    r.fails(255, &["root", "key", "remove"]);
    assert_eq!(before, r.snapshot());
    r.ok(&["root", "set-threshold", "--threshold", "1"]);

    // Remove the old root key by id and the old targets key by name.
    let old_root_id = original["signed"]["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_string();
    r.ok(&["root", "key", "remove", "--key-id", &old_root_id]);
    r.ok(&["root", "targets-key", "remove", "--key-name", "targets"]);
    let unsigned = r.json("roles/unsigned/root.json");
    assert_eq!(unsigned["roles"]["root"]["keyids"], json!([newroot_id]));
    assert!(
        unsigned["keys"].get(&old_root_id).is_none(),
        "unreferenced keys are pruned"
    );

    r.ok(&["root", "increment-version"]);
    assert_eq!(r.json("roles/unsigned/root.json")["version"], 4);
    r.ok(&["root", "sign", "--key-name", "newroot"]);
    let signed = r.json("roles/root.json");
    assert_eq!(signed["signed"]["version"], 5);
    assert_eq!(signed["signed"]["consistent_snapshot"], false);
    let out = ws.ok(&[
        "verify-root",
        "--input",
        r.file("roles/root.json").to_str().unwrap(),
    ]);
    assert!(out.contains("version 5"), "{out}");
    r.fails(
        255,
        &[
            "root",
            "sign",
            "--key-name",
            "newroot",
            "--old-root-alias",
            "targets",
        ],
    );
}

#[test]
fn export_credentials_with_both_spellings() {
    let ws = Workspace::new();
    let r = ws.init_from_fixture("r", "credentials_ed25519.zip");
    r.key_generate("mytargets", "ed25519");
    let out = ws.path().join("offline.zip");
    r.ok(&[
        "export-credentials",
        "--target-key-name",
        "mytargets",
        "--to",
        out.to_str().unwrap(),
    ]);
    let names = zip_names(&out);
    assert_eq!(
        &names[..5],
        [
            "treehub.json",
            "tufrepo.url",
            "targets.pub",
            "targets.sec",
            "root.json"
        ]
    );
    for carried in ["autoprov.url", "autoprov_credentials.p12"] {
        assert!(names.contains(&carried.to_string()), "{names:?}");
    }
    assert_eq!(names.iter().filter(|n| *n == "targets.pub").count(), 1);
    assert_eq!(mode(&out), 0o600);
    assert_eq!(
        zip_entry(&out, "targets.sec").unwrap(),
        std::fs::read(r.file("keys/mytargets.sec")).unwrap()
    );
    assert_eq!(
        zip_entry(&out, "tufrepo.url").unwrap(),
        b"https://test-reposerver"
    );
    assert_eq!(
        zip_entry(&out, "root.json").unwrap(),
        std::fs::read(r.file("roles/root.json")).unwrap()
    );
    let treehub: Value = serde_json::from_slice(&zip_entry(&out, "treehub.json").unwrap()).unwrap();
    assert_eq!(
        treehub["oauth2"]["client_id"],
        "8f505046-bf38-4e17-a0bc-8a289bbd1403"
    );
    assert_eq!(treehub["no_auth"], false);

    // The exported zip initialises a new repository that can sign offline.
    let out2 = ws.path().join("offline2.zip");
    ws.ok(&[
        "export-credentials",
        "-r",
        "r",
        "-k",
        "mytargets",
        "-o",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(
        zip_entry(&out2, "targets.sec"),
        zip_entry(&out, "targets.sec")
    );
    let again = ws.init_from("again", &out);
    assert_eq!(again.json("keys/targets.pub"), r.json("keys/mytargets.pub"));

    let missing = ws.path().join("missing.zip");
    r.fails(
        3,
        &[
            "export-credentials",
            "--key-name",
            "nokey",
            "--output",
            missing.to_str().unwrap(),
        ],
    );
    assert!(!missing.exists());
}

#[test]
fn mismatched_key_pair_is_refused_everywhere() {
    let ws = Workspace::new();
    let r = targets_repo(&ws);
    r.key_generate("other", "ed25519");
    let keys = r.file("keys");
    std::fs::copy(keys.join("other.pub"), keys.join("k.pub")).unwrap();
    let before = r.snapshot();
    let err = r.fails(3, &["targets", "sign", "--key-name", "k"]);
    assert!(
        err.contains("not a pair") || err.contains("does not belong"),
        "{err}"
    );
    r.fails(
        3,
        &["export-credentials", "--key-name", "k", "--output", "x.zip"],
    );
    assert_eq!(before, r.snapshot());
    // A key of the wrong type: an ECPRIME256V1 public key cannot sign.
    let ec = fixture("ota-tuf/cli/src/test/resources/pem-files/valid-public-EcPrime256.pem");
    r.ok(&[
        "user-keys",
        "importpub",
        "--key-name",
        "ec",
        "--input",
        ec.to_str().unwrap(),
    ]);
    let err = r.fails(3, &["targets", "sign", "--key-name", "ec"]);
    assert!(err.contains("ec"), "{err}");
}

#[test]
fn delegations_and_sign_json() {
    let ws = Workspace::new();
    ws.user_keys_gen("supplier", "rsa");
    let init = ws.ok(&["delegations", "init"]);
    let role: Value = serde_json::from_str(&init).unwrap();
    assert_eq!(role["_type"], "Targets");
    assert_eq!(role["version"], 1);
    let file = ws.path().join("deleg.json");
    std::fs::write(&file, &init).unwrap();
    add_delegated_target(&ws, &file, "2", SHA, "ecu1");
    let unsigned = read_json(&file);
    assert_eq!(unsigned["targets"]["supplier01-fw-2"]["length"], 3);
    let signed_text = sign_delegation(&ws, &file, "supplier");
    let signed: Value = serde_json::from_str(&signed_text).unwrap();
    assert_eq!(
        signed["signed"], unsigned,
        "the raw input is signed as it is"
    );
    let signed_file = ws.path().join("signed.json");
    std::fs::write(&signed_file, &signed_text).unwrap();
    ws.fails(
        3,
        &[
            "delegations",
            "sign",
            "--input",
            signed_file.to_str().unwrap(),
            "--key-name",
            "supplier",
        ],
    );

    // sign-json keeps number spelling; verify-json checks it.
    let raw = ws.path().join("raw.json");
    std::fs::write(&raw, br#"{"b": 1.0, "a": "x"}"#).unwrap();
    let keys = ws.home().join("user-keys");
    let out = sign_json(&ws, &keys, "supplier", &raw);
    assert!(out.contains(r#""signed":{"a":"x","b":1.0}"#), "{out}");
    let sj = ws.path().join("sj.json");
    std::fs::write(&sj, &out).unwrap();
    let verdict = ws.ok(&[
        "verify-json",
        "--pub-key",
        keys.join("supplier.pub").to_str().unwrap(),
        "--input",
        sj.to_str().unwrap(),
    ]);
    assert!(verdict.starts_with("Valid signatures"), "{verdict}");
    let tampered = out.replace(r#""a":"x""#, r#""a":"y""#);
    std::fs::write(&sj, tampered).unwrap();
    let stdout = ws
        .ota(&[
            "verify-json",
            "--pub-key",
            keys.join("supplier.pub").to_str().unwrap(),
            "--input",
            sj.to_str().unwrap(),
        ])
        .run()
        .failure()
        .stdout();
    assert!(stdout.contains("Invalid signatures"), "{stdout}");
}

#[test]
fn help_and_exit_codes() {
    let ws = Workspace::new();
    let help = ws.ok(&["--help"]);
    for cmd in [
        "init",
        "key",
        "targets",
        "root",
        "move-offline",
        "export-credentials",
        "publish",
    ] {
        assert!(help.contains(cmd), "--help lists {cmd}");
    }
    assert!(ws
        .ok(&["targets", "sign", "--help"])
        .contains("--expire-after"));
    ws.fails(255, &["no-such-command"]);
    ws.fails(255, &["init", "--repo", "x"]);
    // Running without a command prints help and exits 0.
    ws.ok::<&str>(&[]);
}

/// Root external signatures: increment-version → get-unsigned → sign elsewhere
/// (here `sign-json`, which signs the canonical bytes it is given) → root sign --signatures.
#[test]
fn root_external_signatures_with_old_root_alias() {
    let ws = Workspace::new();
    let r = ws.init_from_fixture("r", "credentials_ed25519.zip");
    r.key_generate("newroot", "ed25519");
    r.key_generate("oldroot", "rsa");
    r.ok(&["root", "key", "add", "--key-name", "newroot"]);
    r.ok(&["root", "increment-version"]);
    let unsigned = r.ok(&["root", "get-unsigned"]);
    let msg = ws.path().join("unsigned-root.json");
    std::fs::write(&msg, &unsigned).unwrap();
    let keys = r.file("keys");
    let signed = sign_json(&ws, &keys, "newroot", &msg);
    let sig = serde_json::from_str::<Value>(&signed).unwrap()["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_string();
    r.ok(&[
        "root",
        "sign",
        "--old-root-alias",
        "oldroot",
        "--signatures",
        &format!("newroot={sig}"),
    ]);
    let root = r.json("roles/root.json");
    assert_eq!(
        canonical(&root["signed"]),
        unsigned,
        "no version or expiry change"
    );
    assert_eq!(root["signed"]["version"], 4);
    assert_eq!(
        root["signatures"][0]["method"], "rsassa-pss-sha256",
        "the old root alias signs first"
    );
    assert_eq!(
        root["signatures"][1]["method"], "ed25519",
        "Ed25519 external signatures get their own method"
    );
    // targets set-threshold edits the targets role of the unsigned root.
    r.ok(&["root", "targets-key", "add", "--key-name", "newroot"]);
    r.ok(&["targets", "set-threshold", "--threshold", "2"]);
    assert_eq!(
        r.json("roles/unsigned/root.json")["roles"]["targets"]["threshold"],
        2
    );
    r.fails(255, &["targets", "set-threshold", "--threshold", "3"]);
}

#[test]
fn init_refuses_a_mismatched_targets_pair_in_the_zip() {
    let ws = Workspace::new();
    let original =
        ota_sign::credentials::Credentials::read(&ws.fixture_zip("credentials_ed25519.zip"))
            .unwrap();
    let other =
        ota_sign::keys::PrivateKey::generate(ota_sign::keys::KeyType::Ed25519, None).unwrap();
    let other_pub = other.to_pub_file();
    let mut entries: Vec<(&str, &[u8])> = original
        .entries()
        .filter(|(n, _)| *n != "targets.pub")
        .collect();
    entries.push(("targets.pub", other_pub.as_bytes()));
    let zip = ws.path().join("mismatched.zip");
    ota_sign::credentials::write_zip(&zip, &entries).unwrap();
    let r = ws.open("r");
    let err = r.fails(3, &["init", "--credentials", zip.to_str().unwrap()]);
    assert!(
        err.contains("targets.sec") && err.contains("does not belong"),
        "{err}"
    );
    assert!(!ws.repo("r").exists());
}
