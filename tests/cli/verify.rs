//! `ota-sign verify` (issue 11): upstream fixtures, and ota-reposerver states built to
//! break one device rule each. Every finding must name the role and the rule.

use crate::support::reposerver::{inject_forged_root, TestServer};
use crate::support::steps::{
    move_offline, publish_uploaded, push_edited_targets, push_targets_expiring,
};
use crate::support::{edit_json, fixture, read_json, role_row, Workspace};
use ota_sign::keys::PrivateKey;
use ota_sign::metadata::SignedPayload;
use serde_json::{json, Value};
use std::path::Path;

/// `ota-sign verify <args> --json`: exit code and the report.
pub fn verify(ws: &Workspace, args: &[&str]) -> (i32, Value) {
    let ran = ws
        .ota(&["verify"])
        .args(args)
        .arg("--json")
        .fast_retries()
        .run();
    (ran.exit_code().unwrap(), ran.json_or_null())
}

/// `(role, rule)` of every finding.
pub fn findings(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|f| {
            (
                f["role"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has(report: &Value, role: &str, rule: &str) -> bool {
    findings(report).iter().any(|(r, u)| r == role && u == rule)
}

fn assert_accepted(ws: &Workspace, args: &[&str]) {
    let (code, report) = verify(ws, args);
    assert_eq!(code, 0, "verify {args:?} rejected: {report:#}");
    assert_eq!(report["accepted"], true);
}

/// Exit 1 with `(role, rule)` among the findings; returns the report.
fn assert_rejected(ws: &Workspace, args: &[&str], role: &str, rule: &str) -> Value {
    let (code, report) = verify(ws, args);
    assert_eq!(code, 1, "verify {args:?}: {report:#}");
    assert!(
        has(&report, role, rule),
        "no {role}/{rule} finding: {report:#}"
    );
    for f in report["findings"].as_array().unwrap() {
        assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    report
}

fn zip_arg(server: &TestServer) -> String {
    server.credentials_zip().to_str().unwrap().to_string()
}

/// A server with target `a-1.0` whose targets.json was pushed again with `edit` and
/// `extra` signatures: verify must reject it with `rule` for targets.
fn edited_targets_rejected(edit: impl FnOnce(&mut Value), extra: Vec<Value>, rule: &str) -> Value {
    let server = TestServer::start();
    let ws = Workspace::new();
    publish_uploaded(&ws, &server, "a");
    push_edited_targets(&server, edit, extra);
    assert_rejected(&ws, &["--credentials", &zip_arg(&server)], "targets", rule)
}

/// Rewrites the server's `repo/metadata.json` while it is stopped.
fn tamper(server: &mut TestServer, edit: impl FnOnce(&mut Value, &Path)) {
    server.stop();
    let data = server.data_dir();
    edit_json(&data.join("repo/metadata.json"), |meta| edit(meta, &data));
    server.restart();
}

/// Re-signs `doc` (a signed document as JSON) with the server's online key for `role`.
fn resign(data: &Path, role: &str, doc: &mut Value) {
    let root = read_json(&data.join("repo/roots/1.root.json"));
    let id = root["signed"]["roles"][role]["keyids"][0].as_str().unwrap();
    let pair = read_json(&data.join(format!("keys/{id}.json")));
    let key = PrivateKey::from_json(&pair, None).unwrap();
    let signed = SignedPayload::sign(doc["signed"].clone(), &[&key]).unwrap();
    *doc = serde_json::to_value(signed).unwrap();
}

fn meta_entry(doc: &Value) -> Value {
    let bytes = SignedPayload::parse(&serde_json::to_vec(doc).unwrap(), "doc")
        .unwrap()
        .canonical()
        .into_bytes();
    json!({"hashes": {"sha256": ota_sign::crypto::sha256_hex(&bytes)}, "length": bytes.len(), "version": doc["signed"]["version"]})
}

const AKT: &str = "aktualizr/tests";

#[test]
fn sample1_fixture_signatures_verify_with_aktualizr_key_ids_but_hashes_are_over_raw_bytes() {
    let ws = Workspace::new();
    let dir = fixture(&format!("{AKT}/tuf/sample1"));
    let root = dir.join("root.json");
    let report = assert_rejected(
        &ws,
        &[
            "--url",
            dir.to_str().unwrap(),
            "--trusted-root",
            root.to_str().unwrap(),
        ],
        "snapshot",
        "hash",
    );
    // Its key ids are aktualizr-style, not SPKI: every signature still verifies.
    for role in ["root", "timestamp", "snapshot", "targets"] {
        assert!(!has(&report, role, "signatures"), "{role}: {report:#}");
        let row = role_row(&report, role);
        assert_eq!(row["valid_signatures"], 1, "{role}");
    }
    // targets/file.txt carries no custom.hardwareIds; nothing expires before 2038.
    assert!(has(&report, "targets", "hardware-ids"), "{report:#}");
    assert!(!findings(&report).iter().any(|(_, rule)| rule == "expired"));
}

#[test]
fn prov_fixture_version_links_and_expiry() {
    let ws = Workspace::new();
    let dir = fixture(&format!("{AKT}/test_data/prov/metadata/repo"));
    let root = dir.join("root.json");
    let base = [
        "--url",
        dir.to_str().unwrap(),
        "--trusted-root",
        root.to_str().unwrap(),
    ];
    // Snapshot v21 refers to targets v20 and timestamp v21 to snapshot v20.
    let mut args = base.to_vec();
    args.extend(["--at", "2018-05-01T00:00:00Z"]);
    let then = assert_rejected(&ws, &args, "targets", "version-mismatch");
    assert!(has(&then, "snapshot", "version-mismatch"));
    assert!(
        !findings(&then).iter().any(|(_, rule)| rule == "expired"),
        "{then:#}"
    );
    // As of now every role has expired, each named.
    let now = assert_rejected(&ws, &base, "targets", "expired");
    for role in ["root", "timestamp", "snapshot"] {
        assert!(has(&now, role, "expired"), "{role}: {now:#}");
    }
}

#[test]
fn a_missing_server_cannot_tell_exit_3() {
    let ws = Workspace::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/user_repo", listener.local_addr().unwrap());
    drop(listener);
    let (code, _) = verify(&ws, &["--url", &url]);
    assert_eq!(code, 3);
}

#[test]
fn clean_repository_passes_before_and_after_move_offline() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let zip = zip_arg(&server);
    assert_accepted(&ws, &["--credentials", &zip]);
    publish_uploaded(&ws, &server, "app");
    assert_accepted(&ws, &["--credentials", &zip]);
    let api = server.api("");
    let (code, report) = verify(&ws, &["--url", &api, "--hardware-id", "hw-a"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["installable"], json!(["app-1.0"]));
    let (_, other) = verify(&ws, &["--url", &api, "--hardware-id", "hw-z"]);
    assert_eq!(other["installable"], json!([]));

    let offline = move_offline(&ws, &server);
    assert_accepted(&ws, &["--repo", "r"]);
    assert_accepted(&ws, &["--credentials", offline.to_str().unwrap()]);
    // From the old zip's root v1 the chain reaches v2.
    let (code, report) = verify(&ws, &["--credentials", &zip]);
    assert_eq!(code, 0, "{report:#}");
    let root = role_row(&report, "root");
    assert_eq!(root["version"], 2);
}

#[test]
fn expired_targets_are_reported() {
    let server = TestServer::start();
    let ws = Workspace::new();
    move_offline(&ws, &server);
    push_targets_expiring(&ws, "2020-01-01T00:00:00Z");
    let report = assert_rejected(&ws, &["--repo", "r"], "targets", "expired");
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["role"] == "targets" && f["rule"] == "expired")
        .unwrap();
    assert_eq!(f["version"], 3);
    // A clean repository judged after its 31 days is expired too.
    let fresh = TestServer::start();
    assert_rejected(
        &ws,
        &["--credentials", &zip_arg(&fresh), "--at", "+40D"],
        "targets",
        "expired",
    );
}

#[test]
fn rolled_back_snapshot_is_reported() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    publish_uploaded(&ws, &server, "a");
    let (old_snapshot, _, _) = server.role("snapshot.json");
    publish_uploaded(&ws, &server, "b");
    tamper(&mut server, |meta, _| {
        meta["snapshot"] = serde_json::to_value(&old_snapshot).unwrap();
    });
    let report = assert_rejected(
        &ws,
        &["--credentials", &zip_arg(&server)],
        "snapshot",
        "rollback",
    );
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "rollback")
        .unwrap();
    assert_eq!(f["version"], old_snapshot.version().unwrap());
}

#[test]
fn snapshot_with_a_wrong_targets_hash_is_reported() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    publish_uploaded(&ws, &server, "a");
    tamper(&mut server, |meta, data| {
        meta["snapshot"]["signed"]["meta"]["targets.json"]["hashes"]["sha256"] =
            json!("0".repeat(64));
        resign(data, "snapshot", &mut meta["snapshot"]);
        meta["timestamp"]["signed"]["meta"]["snapshot.json"] = meta_entry(&meta["snapshot"]);
        resign(data, "timestamp", &mut meta["timestamp"]);
    });
    let report = assert_rejected(
        &ws,
        &["--credentials", &zip_arg(&server)],
        "targets",
        "hash",
    );
    // Only that link is broken: the snapshot itself is consistent with the timestamp.
    assert_eq!(
        findings(&report),
        vec![("targets".to_string(), "hash".to_string())],
        "{report:#}"
    );
}

#[test]
fn broken_root_chain_is_reported() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    // The zip issued before the forgery (the server rewrites its zip at every start).
    let zip = ws.path().join("issued.zip");
    std::fs::copy(server.credentials_zip(), &zip).unwrap();
    inject_forged_root(&mut server);
    let report = assert_rejected(
        &ws,
        &["--credentials", zip.to_str().unwrap()],
        "root",
        "root-chain",
    );
    assert_eq!(report["findings"][0]["version"], 2);
}

#[test]
fn target_without_hardware_ids_is_reported() {
    edited_targets_rejected(
        |s| s["targets"]["a-1.0"]["custom"]["hardwareIds"] = json!([]),
        vec![],
        "hardware-ids",
    );
}

#[test]
fn non_ascii_custom_value_is_reported() {
    let report = edited_targets_rejected(
        |s| s["targets"]["a-1.0"]["custom"]["note"] = json!("caf\u{e9}"),
        vec![],
        "canonical-form",
    );
    assert!(report.to_string().contains("U+00E9"), "{report:#}");
}

#[test]
fn unknown_signature_method_is_reported() {
    let stranger = json!({"keyid": "ab".repeat(32), "method": "ecPrime256v1", "sig": "AAAA"});
    edited_targets_rejected(|_| {}, vec![stranger], "signature-method");
}

#[test]
fn binary_target_the_server_does_not_have_is_reported() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let zip = zip_arg(&server);
    for (name, url) in [
        ("with-url", Some("https://cdn.example.org/x.bin")),
        ("nowhere", None),
    ] {
        let mut args = vec![
            "publish",
            "--credentials",
            &zip,
            "--name",
            name,
            "--version",
            "1",
            "--hardwareids",
            "hw",
            "--sha256",
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
            "--length",
            "3",
        ];
        if let Some(u) = url {
            args.extend(["--url", u]);
        }
        ws.ok(&args);
    }
    let report = assert_rejected(&ws, &["--credentials", &zip], "targets", "download");
    let downloads: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "download")
        .collect();
    assert_eq!(downloads.len(), 1, "{report:#}");
    assert!(downloads[0]["message"]
        .as_str()
        .unwrap()
        .contains("nowhere-1"));
}
