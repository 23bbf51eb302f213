//! The OTA Connect offline-keys procedure (reference/ota-connect-offline-keys.txt),
//! verbatim, against ota-reposerver; authentication; trust failures; retries.

use crate::support::reposerver::{inject_forged_root, Auth, Options, TestServer};
use crate::support::steps::{add_delegated_target, assert_moved_offline, sign_delegation};
use crate::support::{read_json, zip_entry, Workspace};
use ota_sign::metadata::SignedPayload;
use ota_sign::verify::TrustedRoot;
use serde_json::{json, Value};

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
    let repo = ws.open("myimagerepo");
    let root_v2 = assert_moved_offline(server, &repo, &root_v1, key_type);
    let mytargets = repo.key_id("mytargets");
    assert_eq!(root_v2.signed["roles"]["root"]["threshold"], 1);
    // Signed by the new and the old root key (the chain holds, checked above).
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
        repo.key_id("origroot"),
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
        std::fs::read_to_string(repo.file("roles/targets.json.checksum")).unwrap(),
        checksum
    );

    // offline-credentials.zip carries the offline targets key and root v2.
    let offline = ws.path().join("offline-credentials.zip");
    assert_eq!(
        zip_entry(&offline, "targets.sec").unwrap(),
        std::fs::read(repo.file("keys/mytargets.sec")).unwrap()
    );
    let exported_root =
        SignedPayload::parse(&zip_entry(&offline, "root.json").unwrap(), "root.json").unwrap();
    assert_eq!(exported_root.signed, root_v2.signed);

    // pull → sign → push → sign → push works without another pull.
    repo.sign_targets("mytargets").push();
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
    let r = ws.init_from("r", server.credentials_zip());
    ws.edit_config("r", |c| c["auth"]["client_secret"] = json!("wrong-secret"));
    let before = r.snapshot();
    let err = r.ota(&["targets", "pull"]).fast_retries().fails(3);
    assert!(err.contains("refused"), "{err}");
    assert!(
        !err.contains("wrong-secret"),
        "the secret must not be printed: {err}"
    );
    assert_eq!(before, r.snapshot());
}

#[test]
fn mutual_tls_with_and_without_a_client_certificate() {
    let server = TestServer::with(server_opts("ed25519", Auth::Mtls));
    let ws = Workspace::new();
    let r = ws.init_from("r", server.credentials_zip());
    assert!(r.json("config.json")["reposerver"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    r.pull();
    r.key_generate("mytargets", "ed25519");
    r.key_generate("myroot", "ed25519");
    r.move_offline();
    r.sign_targets("mytargets");
    r.push();

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
    let pull = || r.ota(&["targets", "pull", "--cacert", ca_path.to_str().unwrap()]);
    pull().fast_retries().fails(3);
    // With the certificate restored it works again (the CA file alone was not the problem).
    ws.edit_config("r", |c| {
        c["auth"] = json!({"certPath": "client_auth.p12", "serverCertPath": null})
    });
    pull().fast_retries().ok();
}

#[test]
fn forged_root_is_refused_by_root_pull() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    let r = ws.init_from("r", server.credentials_zip());
    r.ok(&["root", "pull"]);
    inject_forged_root(&mut server);
    let before = r.snapshot();
    let err = r
        .ota(&["root", "pull"])
        .fast_retries()
        .run()
        .failure()
        .stderr();
    assert!(
        err.contains("2.root.json") && err.contains("root v1"),
        "{err}"
    );
    assert_eq!(before, r.snapshot());
}

#[test]
fn rolled_back_targets_are_refused_by_targets_pull() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    let r = ws.init_from("r", server.credentials_zip());
    r.pull();
    let metadata = server.data_dir().join("repo/metadata.json");
    let old_state = std::fs::read(&metadata).unwrap();
    // Sign with the (online) targets key from the zip and push version 2.
    r.sign_targets("targets");
    r.push();
    assert_eq!(server.role("targets.json").0.signed["version"], 2);
    // The server goes back to version 1.
    server.stop();
    std::fs::write(&metadata, old_state).unwrap();
    server.restart();
    assert_eq!(server.role("targets.json").0.signed["version"], 1);
    let before = r.snapshot();
    let err = r.ota(&["targets", "pull"]).fast_retries().fails(1);
    assert!(err.contains("rollback"), "{err}");
    assert_eq!(before, r.snapshot());
}

#[test]
fn transient_failures_are_retried_and_a_dead_server_is_reported() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    let r = ws.init_from("r", server.credentials_zip());
    server.add_fault(json!({"method": "GET", "path": "/api/v1/user_repo/targets.json", "count": 2, "kind": "status", "status": 503}));
    server.add_fault(json!({"method": "GET", "path": "/api/v1/user_repo/targets.json", "count": 1, "kind": "reset"}));
    r.ota(&["targets", "pull"]).fast_retries().ok();
    assert!(r.file("roles/targets.json.checksum").exists());

    // A 503 on PUT targets is not resent blindly: targets.json is read back, still
    // has the pulled checksum, so the push is sent again.
    r.sign_targets("targets");
    server.add_fault(json!({"method": "PUT", "path": "/api/v1/user_repo/targets", "count": 1, "kind": "status", "status": 503}));
    r.ota(&["targets", "push"]).fast_retries().ok();
    assert_eq!(server.role("targets.json").0.signed["version"], 2);

    server.stop();
    let before = r.snapshot();
    let err = r.ota(&["targets", "pull"]).fast_retries().fails(3);
    assert!(
        err.contains("127.0.0.1") && err.contains("targets.json"),
        "{err}"
    );
    assert_eq!(before, r.snapshot());
}

#[test]
fn push_conflicts_exit_2() {
    let server = TestServer::start();
    let a = Workspace::new();
    let b = Workspace::new();
    for ws in [&a, &b] {
        let r = ws.init_from("r", server.credentials_zip());
        r.pull();
        r.sign_targets("targets");
    }
    a.open("r").push();
    let err = b.open("r").fails(2, &["targets", "push"]);
    assert!(err.contains("targets pull"), "{err}");
}

#[test]
fn upload_then_add_uploaded() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let r = ws.init_from("r", server.credentials_zip());
    let image = ws.path().join("fw.bin");
    let content: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&image, &content).unwrap();
    r.ok(&[
        "targets",
        "upload",
        "--input",
        image.to_str().unwrap(),
        "--name",
        "fw",
        "--version",
        "1",
    ]);
    r.pull();
    r.ok(&[
        "targets",
        "add-uploaded",
        "--input",
        image.to_str().unwrap(),
        "--name",
        "fw",
        "--version",
        "1",
        "--hardwareids",
        "ecu",
    ]);
    r.sign_targets("targets");
    r.push();
    let (targets, _, _) = server.role("targets.json");
    let item = &targets.signed["targets"]["fw-1"];
    assert_eq!(item["length"], content.len());
    assert_eq!(
        item["hashes"]["sha256"],
        ota_sign::crypto::sha256_hex(&content)
    );
    assert_eq!(item["custom"]["cliUploaded"], true);
    // Devices download the uploaded bytes.
    let resp = server.get("targets/fw-1").send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().to_vec(), content);
}

#[test]
fn delegations_push_and_pull() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let r = ws.init_from("r", server.credentials_zip());
    ws.user_keys_gen("supplier", "ed25519");
    let supplier_pub = ws.home().join("user-keys/supplier.pub");
    // The image repository delegates supplier01* to the supplier's key.
    r.pull();
    r.ok(&[
        "targets",
        "delegations",
        "add",
        "--name",
        "supplier01",
        "--prefix",
        "supplier01*",
        "--key",
        supplier_pub.to_str().unwrap(),
    ]);
    let unsigned = r.json("roles/unsigned/targets.json");
    assert_eq!(
        unsigned["delegations"]["roles"][0]["paths"],
        json!(["supplier01*"])
    );
    assert_eq!(unsigned["delegations"]["roles"][0]["terminating"], true);
    r.sign_targets("targets");
    r.push();
    // The supplier signs its own targets file.
    let file = ws.path().join("supplier01.json");
    std::fs::write(&file, ws.ok(&["delegations", "init"])).unwrap();
    add_delegated_target(&ws, &file, "1", &"ab".repeat(32), "ecu");
    let signed = ws.path().join("supplier01.signed.json");
    std::fs::write(&signed, sign_delegation(&ws, &file, "supplier")).unwrap();
    r.ok(&[
        "delegations",
        "push",
        "--name",
        "supplier01",
        "--input",
        signed.to_str().unwrap(),
    ]);
    let pulled = ws.path().join("pulled.json");
    r.ok(&[
        "delegations",
        "pull",
        "--name",
        "supplier01",
        "--output",
        pulled.to_str().unwrap(),
    ]);
    assert_eq!(read_json(&pulled), read_json(&signed));
    // A delegation the top-level targets.json does not define is refused.
    let err = r.fails(
        3,
        &[
            "delegations",
            "push",
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
    let r = ws.init_from("r", server.credentials_zip());
    let config_path = r.file("config.json");
    ws.edit_config("r", |c| c["auth"] = Value::Null);
    std::fs::remove_file(r.file("client_auth.p12")).unwrap();
    std::fs::remove_file(r.file("server.p12")).unwrap();
    r.ota(&["targets", "pull"]).fast_retries().fails(3);

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
    let before = r.snapshot();
    r.fails(
        3,
        &[
            "import-client-cert",
            "--client-cert",
            junk.to_str().unwrap(),
        ],
    );
    assert_eq!(before, r.snapshot());

    r.ok(&[
        "import-client-cert",
        "--client-cert",
        client.to_str().unwrap(),
        "--server-cert",
        server_p12.to_str().unwrap(),
    ]);
    assert_eq!(
        read_json(&config_path)["auth"],
        json!({"certPath": "client_auth.p12", "serverCertPath": "server.p12"})
    );
    assert_eq!(crate::support::mode(&r.file("client_auth.p12")), 0o600);
    r.pull();
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
