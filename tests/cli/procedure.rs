//! The OTA Connect offline-keys procedure (reference/ota-connect-offline-keys.txt),
//! verbatim, against ota-reposerver; authentication; trust failures; retries.

use crate::support::reposerver::{inject_forged_root, Auth, Options, TestServer};
use crate::support::{read_json, tree_snapshot, zip_entry, Workspace};
use ota_sign::keys::PublicKey;
use ota_sign::metadata::SignedPayload;
use ota_sign::verify::TrustedRoot;
use serde_json::{json, Value};

/// Retries stay fast in tests; the policy itself is unchanged.
fn fast(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.cmd()
        .env("OTA_SIGN_HTTP_RETRY_DELAY_MS", "20")
        .args(args)
        .output()
        .unwrap()
}

fn key_id(ws: &Workspace, repo: &str, name: &str) -> String {
    let v = read_json(&ws.repo(repo).join(format!("keys/{name}.pub")));
    PublicKey::from_json(&v, false)
        .unwrap()
        .key_id()
        .to_string()
}

fn server_opts(key_type: &'static str, auth: Auth) -> Options {
    Options {
        key_type,
        auth,
        ..Options::default()
    }
}

/// Runs the procedure exactly as the OTA Connect page prints it.
fn run_procedure(server: &TestServer, key_type: &str) {
    let ws = Workspace::new();
    let zip = server.credentials_zip();
    let (root_v1, _, _) = server.role("root.json");
    let old_root_ids: Vec<String> =
        serde_json::from_value(root_v1.signed["roles"]["root"]["keyids"].clone()).unwrap();
    let old_targets_ids: Vec<String> =
        serde_json::from_value(root_v1.signed["roles"]["targets"]["keyids"].clone()).unwrap();

    ws.ok(&[
        "init",
        "--repo",
        "myimagerepo",
        "--credentials",
        zip.to_str().unwrap(),
    ]);
    ws.ok(&[
        "key",
        "generate",
        "--repo",
        "myimagerepo",
        "--name",
        "myroot",
        "--type",
        key_type,
    ]);
    ws.ok(&[
        "key",
        "generate",
        "--repo",
        "myimagerepo",
        "--name",
        "mytargets",
        "--type",
        key_type,
    ]);
    ws.ok(&["targets", "pull", "--repo", "myimagerepo"]);
    ws.ok(&[
        "move-offline",
        "--repo",
        "myimagerepo",
        "--old-root-alias",
        "origroot",
        "--new-root",
        "myroot",
        "--new-targets",
        "mytargets",
    ]);
    ws.ok(&[
        "targets",
        "sign",
        "--repo",
        "myimagerepo",
        "--key-name",
        "mytargets",
    ]);
    ws.ok(&["targets", "push", "--repo", "myimagerepo"]);
    ws.ok(&[
        "export-credentials",
        "--repo",
        "myimagerepo",
        "--target-key-name",
        "mytargets",
        "--to",
        "offline-credentials.zip",
    ]);

    // The server's root v2 lists only the new root and targets keys.
    let myroot = key_id(&ws, "myimagerepo", "myroot");
    let mytargets = key_id(&ws, "myimagerepo", "mytargets");
    let (root_v2, _, _) = server.role("root.json");
    assert_eq!(root_v2.signed["version"], 2);
    assert_eq!(root_v2.signed["roles"]["root"]["keyids"], json!([myroot]));
    assert_eq!(
        root_v2.signed["roles"]["targets"]["keyids"],
        json!([mytargets])
    );
    assert_eq!(root_v2.signed["roles"]["root"]["threshold"], 1);
    let key_type_upper = key_type.to_ascii_uppercase();
    assert_eq!(
        root_v2.signed["keys"][&myroot]["keytype"],
        key_type_upper.as_str()
    );
    // Signed by the new and the old root key, and the chain holds.
    let v1 = TrustedRoot::from_signed(&root_v1.signed, "v1").unwrap();
    ota_sign::verify::verify_root_update(&v1, &root_v2, "v2").unwrap();
    assert_eq!(root_v2.signatures.len(), 2);

    // The old online root and targets keys are gone from the server.
    for id in old_root_ids.iter().chain(&old_targets_ids) {
        let r = server
            .get(&format!("root/private_keys/{id}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 404, "online key {id} is still on the server");
    }
    // The old root key now lives offline under the alias.
    assert_eq!(
        key_id(&ws, "myimagerepo", "origroot"),
        old_root_ids.last().unwrap().as_str()
    );

    // The pushed targets.json verifies with the new key only.
    let (targets, checksum, body) = server.role("targets.json");
    assert_eq!(targets.signed["version"], 2);
    assert_eq!(targets.signatures.len(), 1);
    assert_eq!(targets.signatures[0].keyid, mytargets);
    TrustedRoot::from_signed(&root_v2.signed, "v2")
        .unwrap()
        .verify("targets", &targets, "targets.json")
        .unwrap();
    assert_eq!(checksum, ota_sign::crypto::sha256_hex(&body));
    // The checksum returned by the push was stored.
    assert_eq!(
        std::fs::read_to_string(ws.repo("myimagerepo").join("roles/targets.json.checksum"))
            .unwrap(),
        checksum
    );

    // offline-credentials.zip carries the offline targets key and root v2.
    let offline = ws.path().join("offline-credentials.zip");
    assert_eq!(
        zip_entry(&offline, "targets.sec").unwrap(),
        std::fs::read(ws.repo("myimagerepo").join("keys/mytargets.sec")).unwrap()
    );
    let exported_root =
        SignedPayload::parse(&zip_entry(&offline, "root.json").unwrap(), "root.json").unwrap();
    assert_eq!(exported_root.signed, root_v2.signed);

    // pull → sign → push → sign → push works without another pull.
    ws.ok(&[
        "targets",
        "sign",
        "--repo",
        "myimagerepo",
        "--key-name",
        "mytargets",
    ]);
    ws.ok(&["targets", "push", "--repo", "myimagerepo"]);
    assert_eq!(server.role("targets.json").0.signed["version"], 3);
}

#[test]
fn procedure_verbatim_with_rsa_keys() {
    let server = TestServer::with(server_opts("rsa", Auth::None));
    run_procedure(&server, "rsa");
}

#[test]
fn procedure_verbatim_with_ed25519_keys() {
    let server = TestServer::with(server_opts("ed25519", Auth::None));
    run_procedure(&server, "ed25519");
}

#[test]
fn procedure_over_oauth2_and_a_refused_secret() {
    let server = TestServer::with(server_opts("ed25519", Auth::OAuth2));
    run_procedure(&server, "ed25519");

    let ws = Workspace::new();
    ws.ok(&[
        "init",
        "--repo",
        "r",
        "--credentials",
        server.credentials_zip().to_str().unwrap(),
    ]);
    ws.edit_config("r", |c| c["auth"]["client_secret"] = json!("wrong-secret"));
    let before = tree_snapshot(&ws.repo("r"));
    let out = fast(&ws, &["targets", "pull", "--repo", "r"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{err}");
    assert!(
        !err.contains("wrong-secret"),
        "the secret must not be printed: {err}"
    );
    assert_eq!(before, tree_snapshot(&ws.repo("r")));
}

#[test]
fn mutual_tls_with_and_without_a_client_certificate() {
    let server = TestServer::with(server_opts("ed25519", Auth::Mtls));
    let ws = Workspace::new();
    ws.ok(&[
        "init",
        "--repo",
        "r",
        "--credentials",
        server.credentials_zip().to_str().unwrap(),
    ]);
    assert!(read_json(&ws.repo("r").join("config.json"))["reposerver"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    ws.ok(&["targets", "pull", "--repo", "r"]);
    ws.ok(&[
        "key",
        "generate",
        "--repo",
        "r",
        "--name",
        "mytargets",
        "--type",
        "ed25519",
    ]);
    ws.ok(&[
        "key", "generate", "--repo", "r", "--name", "myroot", "--type", "ed25519",
    ]);
    ws.ok(&crate::support::MOVE_OFFLINE);
    ws.ok(&["targets", "sign", "--repo", "r", "--key-name", "mytargets"]);
    ws.ok(&["targets", "push", "--repo", "r"]);

    // Trusting the server's CA (--cacert) but without the client certificate, the
    // TLS handshake is refused.
    let server_p12 = zip_entry(&server.credentials_zip(), "server.p12").unwrap();
    let store = p12_keystore::KeyStore::from_pkcs12(&server_p12, "").unwrap();
    let ca: String = store
        .entries()
        .filter_map(|(_, e)| match e {
            p12_keystore::KeyStoreEntry::Certificate(c) => Some(pem::encode(&pem::Pem::new(
                "CERTIFICATE",
                c.as_der().to_vec(),
            ))),
            _ => None,
        })
        .collect();
    let ca_path = ws.path().join("ca.pem");
    std::fs::write(&ca_path, ca).unwrap();
    ws.edit_config("r", |c| c["auth"] = Value::Null);
    let out = fast(
        &ws,
        &[
            "targets",
            "pull",
            "--repo",
            "r",
            "--cacert",
            ca_path.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the certificate restored it works again (the CA file alone was not the problem).
    ws.edit_config("r", |c| {
        c["auth"] = json!({"certPath": "client_auth.p12", "serverCertPath": null})
    });
    let out = fast(
        &ws,
        &[
            "targets",
            "pull",
            "--repo",
            "r",
            "--cacert",
            ca_path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn forged_root_is_refused_by_root_pull() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    ws.ok(&[
        "init",
        "--repo",
        "r",
        "--credentials",
        server.credentials_zip().to_str().unwrap(),
    ]);
    ws.ok(&["root", "pull", "--repo", "r"]);
    inject_forged_root(&mut server);
    let before = tree_snapshot(&ws.repo("r"));
    let out = fast(&ws, &["root", "pull", "--repo", "r"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2.root.json") && err.contains("root v1"),
        "{err}"
    );
    assert_eq!(before, tree_snapshot(&ws.repo("r")));
}

#[test]
fn rolled_back_targets_are_refused_by_targets_pull() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    ws.ok(&[
        "init",
        "--repo",
        "r",
        "--credentials",
        server.credentials_zip().to_str().unwrap(),
    ]);
    ws.ok(&["targets", "pull", "--repo", "r"]);
    let metadata = server.data_dir().join("repo/metadata.json");
    let old_state = std::fs::read(&metadata).unwrap();
    // Sign with the (online) targets key from the zip and push version 2.
    ws.ok(&["targets", "sign", "--repo", "r", "--key-name", "targets"]);
    ws.ok(&["targets", "push", "--repo", "r"]);
    assert_eq!(server.role("targets.json").0.signed["version"], 2);
    // The server goes back to version 1.
    server.stop();
    std::fs::write(&metadata, old_state).unwrap();
    server.restart();
    assert_eq!(server.role("targets.json").0.signed["version"], 1);
    let before = tree_snapshot(&ws.repo("r"));
    let out = fast(&ws, &["targets", "pull", "--repo", "r"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rollback"));
    assert_eq!(before, tree_snapshot(&ws.repo("r")));
}

#[test]
fn transient_failures_are_retried_and_a_dead_server_is_reported() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    ws.ok(&[
        "init",
        "--repo",
        "r",
        "--credentials",
        server.credentials_zip().to_str().unwrap(),
    ]);
    server.add_fault(json!({"method": "GET", "path": "/api/v1/user_repo/targets.json", "count": 2, "kind": "status", "status": 503}));
    server.add_fault(json!({"method": "GET", "path": "/api/v1/user_repo/targets.json", "count": 1, "kind": "reset"}));
    let out = fast(&ws, &["targets", "pull", "--repo", "r"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ws.repo("r").join("roles/targets.json.checksum").exists());

    // A 503 on PUT targets is not resent blindly: targets.json is read back, still
    // has the pulled checksum, so the push is sent again.
    ws.ok(&["targets", "sign", "--repo", "r", "--key-name", "targets"]);
    server.add_fault(json!({"method": "PUT", "path": "/api/v1/user_repo/targets", "count": 1, "kind": "status", "status": 503}));
    let out = fast(&ws, &["targets", "push", "--repo", "r"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.role("targets.json").0.signed["version"], 2);

    server.stop();
    let before = tree_snapshot(&ws.repo("r"));
    let out = fast(&ws, &["targets", "pull", "--repo", "r"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("127.0.0.1") && err.contains("targets.json"),
        "{err}"
    );
    assert_eq!(before, tree_snapshot(&ws.repo("r")));
}

#[test]
fn push_conflicts_exit_2() {
    let server = TestServer::start();
    let a = Workspace::new();
    let b = Workspace::new();
    for ws in [&a, &b] {
        ws.ok(&[
            "init",
            "--repo",
            "r",
            "--credentials",
            server.credentials_zip().to_str().unwrap(),
        ]);
        ws.ok(&["targets", "pull", "--repo", "r"]);
        ws.ok(&["targets", "sign", "--repo", "r", "--key-name", "targets"]);
    }
    a.ok(&["targets", "push", "--repo", "r"]);
    let err = b.fails(2, &["targets", "push", "--repo", "r"]);
    assert!(err.contains("targets pull"), "{err}");
}

#[test]
fn upload_then_add_uploaded() {
    let server = TestServer::start();
    let ws = Workspace::new();
    ws.ok(&[
        "init",
        "--repo",
        "r",
        "--credentials",
        server.credentials_zip().to_str().unwrap(),
    ]);
    let image = ws.path().join("fw.bin");
    let content: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&image, &content).unwrap();
    ws.ok(&[
        "targets",
        "upload",
        "--repo",
        "r",
        "--input",
        image.to_str().unwrap(),
        "--name",
        "fw",
        "--version",
        "1",
    ]);
    ws.ok(&["targets", "pull", "--repo", "r"]);
    ws.ok(&[
        "targets",
        "add-uploaded",
        "--repo",
        "r",
        "--input",
        image.to_str().unwrap(),
        "--name",
        "fw",
        "--version",
        "1",
        "--hardwareids",
        "ecu",
    ]);
    ws.ok(&["targets", "sign", "--repo", "r", "--key-name", "targets"]);
    ws.ok(&["targets", "push", "--repo", "r"]);
    let (targets, _, _) = server.role("targets.json");
    let item = &targets.signed["targets"]["fw-1"];
    assert_eq!(item["length"], content.len());
    assert_eq!(
        item["hashes"]["sha256"],
        ota_sign::crypto::sha256_hex(&content)
    );
    assert_eq!(item["custom"]["cliUploaded"], true);
    // Devices download the uploaded bytes.
    let r = server.get("targets/fw-1").send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().to_vec(), content);
}

#[test]
fn delegations_push_and_pull() {
    let server = TestServer::start();
    let ws = Workspace::new();
    ws.ok(&[
        "init",
        "--repo",
        "r",
        "--credentials",
        server.credentials_zip().to_str().unwrap(),
    ]);
    ws.ok(&[
        "user-keys",
        "gen",
        "--key-name",
        "supplier",
        "--type",
        "ed25519",
    ]);
    let supplier_pub = ws.home().join("user-keys/supplier.pub");
    // The image repository delegates supplier01* to the supplier's key.
    ws.ok(&["targets", "pull", "--repo", "r"]);
    ws.ok(&[
        "targets",
        "delegations",
        "add",
        "--repo",
        "r",
        "--name",
        "supplier01",
        "--prefix",
        "supplier01*",
        "--key",
        supplier_pub.to_str().unwrap(),
    ]);
    let unsigned = read_json(&ws.repo("r").join("roles/unsigned/targets.json"));
    assert_eq!(
        unsigned["delegations"]["roles"][0]["paths"],
        json!(["supplier01*"])
    );
    assert_eq!(unsigned["delegations"]["roles"][0]["terminating"], true);
    ws.ok(&["targets", "sign", "--repo", "r", "--key-name", "targets"]);
    ws.ok(&["targets", "push", "--repo", "r"]);
    // The supplier signs its own targets file.
    let file = ws.path().join("supplier01.json");
    std::fs::write(&file, ws.ok(&["delegations", "init"])).unwrap();
    ws.ok(&[
        "delegations",
        "add-target",
        "--input",
        file.to_str().unwrap(),
        "--inplace",
        "--name",
        "supplier01-fw",
        "--version",
        "1",
        "--length",
        "3",
        "--sha256",
        &"ab".repeat(32),
        "--hardwareids",
        "ecu",
    ]);
    let signed = ws.path().join("supplier01.signed.json");
    std::fs::write(
        &signed,
        ws.ok(&[
            "delegations",
            "sign",
            "--input",
            file.to_str().unwrap(),
            "--key-name",
            "supplier",
        ]),
    )
    .unwrap();
    ws.ok(&[
        "delegations",
        "push",
        "--repo",
        "r",
        "--name",
        "supplier01",
        "--input",
        signed.to_str().unwrap(),
    ]);
    let pulled = ws.path().join("pulled.json");
    ws.ok(&[
        "delegations",
        "pull",
        "--repo",
        "r",
        "--name",
        "supplier01",
        "--output",
        pulled.to_str().unwrap(),
    ]);
    assert_eq!(read_json(&pulled), read_json(&signed));
    // A delegation the top-level targets.json does not define is refused.
    let err = ws.fails(
        3,
        &[
            "delegations",
            "push",
            "--repo",
            "r",
            "--name",
            "other",
            "--input",
            signed.to_str().unwrap(),
        ],
    );
    assert!(err.contains("delegations_not_defined"), "{err}");
}

#[test]
fn import_client_cert_switches_to_mutual_tls() {
    let server = TestServer::with(server_opts("ed25519", Auth::Mtls));
    let ws = Workspace::new();
    ws.ok(&[
        "init",
        "--repo",
        "r",
        "--credentials",
        server.credentials_zip().to_str().unwrap(),
    ]);
    let config_path = ws.repo("r").join("config.json");
    ws.edit_config("r", |c| c["auth"] = Value::Null);
    std::fs::remove_file(ws.repo("r").join("client_auth.p12")).unwrap();
    std::fs::remove_file(ws.repo("r").join("server.p12")).unwrap();
    let out = fast(&ws, &["targets", "pull", "--repo", "r"]);
    assert_eq!(out.status.code(), Some(3));

    let client = ws.path().join("client.p12");
    let server_p12 = ws.path().join("server.p12");
    std::fs::write(
        &client,
        zip_entry(&server.credentials_zip(), "client_auth.p12").unwrap(),
    )
    .unwrap();
    std::fs::write(
        &server_p12,
        zip_entry(&server.credentials_zip(), "server.p12").unwrap(),
    )
    .unwrap();
    // A broken store is refused before anything changes.
    let junk = ws.path().join("junk.p12");
    std::fs::write(&junk, b"not pkcs12").unwrap();
    let before = tree_snapshot(&ws.repo("r"));
    ws.fails(
        3,
        &[
            "import-client-cert",
            "--repo",
            "r",
            "--client-cert",
            junk.to_str().unwrap(),
        ],
    );
    assert_eq!(before, tree_snapshot(&ws.repo("r")));

    ws.ok(&[
        "import-client-cert",
        "--repo",
        "r",
        "--client-cert",
        client.to_str().unwrap(),
        "--server-cert",
        server_p12.to_str().unwrap(),
    ]);
    assert_eq!(
        read_json(&config_path)["auth"],
        json!({"certPath": "client_auth.p12", "serverCertPath": "server.p12"})
    );
    assert_eq!(
        crate::support::mode(&ws.repo("r").join("client_auth.p12")),
        0o600
    );
    ws.ok(&["targets", "pull", "--repo", "r"]);
}

/// meta-updater's `IMAGE_CMD:garagesign` (reference/yocto.md §1.3) with ota-sign as
/// `GARAGE_SIGN_TOOL`: the same words, `--home-dir` after the sub-command and
/// `--key-name=targets`.
#[test]
fn meta_updater_garagesign_sequence() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let repo_dir = ws.path().join("garage_sign_repo");
    let home = repo_dir.to_str().unwrap();
    let creds = server.credentials_zip();
    let hash = "a".repeat(64);
    ws.ok(&[
        "init",
        "--repo",
        "tufrepo",
        "--home-dir",
        home,
        "--credentials",
        creds.to_str().unwrap(),
    ]);
    ws.ok(&["targets", "pull", "--repo", "tufrepo", "--home-dir", home]);
    ws.ok(&[
        "targets",
        "add",
        "--repo",
        "tufrepo",
        "--home-dir",
        home,
        "--name",
        "qemux86-64-lmp",
        "--format",
        "OSTREE",
        "--version",
        &hash,
        "--length",
        "0",
        "--url",
        "https://example.com/ostree",
        "--sha256",
        &hash,
        "--hardwareids",
        "qemux86-64",
    ]);
    ws.ok(&[
        "targets",
        "sign",
        "--repo",
        "tufrepo",
        "--home-dir",
        home,
        "--expire-after",
        "1M",
        "--key-name=targets",
    ]);
    ws.ok(&["targets", "push", "--repo", "tufrepo", "--home-dir", home]);
    let (targets, _, _) = server.role("targets.json");
    let item = &targets.signed["targets"][format!("qemux86-64-lmp-{hash}")];
    assert_eq!(item["length"], 0);
    assert_eq!(item["custom"]["targetFormat"], "OSTREE");
    assert_eq!(item["custom"]["uri"], "https://example.com/ostree");
    assert!(repo_dir
        .join("tufrepo/roles/targets.json.checksum")
        .exists());
}
