//! Steps that several modules take, mostly against a [`TestServer`]: publish a target,
//! run the offline-keys procedure, push a targets.json that expires or was edited.

use super::reposerver::TestServer;
use super::{Cmd, Repo, Workspace};
use ota_sign::metadata::SignedPayload;
use ota_sign::verify::TrustedRoot;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `publish` of `name`-`version` for `hardware_ids` from `image`, run in `ws`.
pub fn publish_image(
    ws: &Workspace,
    zip: &Path,
    name: &str,
    version: &str,
    hardware_ids: &str,
    image: &Path,
) -> Cmd {
    ws.ota(&[
        "publish",
        "--credentials",
        zip.to_str().unwrap(),
        "--name",
        name,
        "--version",
        version,
        "--hardwareids",
        hardware_ids,
        "--image",
        image.to_str().unwrap(),
    ])
}

/// `publish` of `name` 1.0 (hardware id `hw-a`) from a small image, uploaded to the server.
pub fn publish_uploaded(ws: &Workspace, server: &TestServer, name: &str) {
    let image = ws.path().join(format!("{name}.bin"));
    std::fs::write(&image, format!("image {name}")).unwrap();
    let zip = server.credentials_zip();
    publish_image(ws, &zip, name, "1.0", "hw-a", &image)
        .arg("--upload")
        .ok();
}

/// `delegations add-target --input <file> --inplace` of `supplier01-fw`-`version`
/// (3 bytes, `sha256`) for `hardware_id`.
pub fn add_delegated_target(
    ws: &Workspace,
    file: &Path,
    version: &str,
    sha256: &str,
    hardware_id: &str,
) {
    ws.ok(&[
        "delegations",
        "add-target",
        "--input",
        file.to_str().unwrap(),
        "--inplace",
        "--name",
        "supplier01-fw",
        "--version",
        version,
        "--length",
        "3",
        "--sha256",
        sha256,
        "--hardwareids",
        hardware_id,
    ]);
}

/// `sign-json --priv-key <keys>/<key>.sec --pub-key <keys>/<key>.pub --input <input>`;
/// returns the signed document.
pub fn sign_json(ws: &Workspace, keys: &Path, key: &str, input: &Path) -> String {
    ws.ok(&[
        "sign-json",
        "--priv-key",
        keys.join(format!("{key}.sec")).to_str().unwrap(),
        "--pub-key",
        keys.join(format!("{key}.pub")).to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ])
}

/// `delegations sign --input <file> --key-name <key>` (a user key); returns the signed
/// document.
pub fn sign_delegation(ws: &Workspace, file: &Path, key: &str) -> String {
    ws.ok(&[
        "delegations",
        "sign",
        "--input",
        file.to_str().unwrap(),
        "--key-name",
        key,
    ])
}

/// The OTA Connect procedure: repository `r` from the server's zip with offline
/// Ed25519 keys `myroot`/`mytargets` (moved offline, targets signed and pushed).
pub fn offline_repo<'w>(ws: &'w Workspace, server: &TestServer) -> Repo<'w> {
    let r = ws.init_from("r", server.credentials_zip());
    r.key_generate("myroot", "ed25519")
        .key_generate("mytargets", "ed25519")
        .pull()
        .move_offline()
        .sign_targets("mytargets")
        .push();
    r
}

/// [`offline_repo`], then its offline credentials exported; returns
/// offline-credentials.zip.
pub fn move_offline(ws: &Workspace, server: &TestServer) -> PathBuf {
    offline_repo(ws, server).export_credentials("mytargets", "offline-credentials.zip")
}

/// Checks the server's root after `move-offline` in `r`: version 2, whose root and
/// targets roles list only `r`'s new `myroot`/`mytargets` keys (of `key_type`), and a
/// valid update of `root_v1`. Returns root v2.
pub fn assert_moved_offline(
    server: &TestServer,
    r: &Repo,
    root_v1: &SignedPayload,
    key_type: &str,
) -> SignedPayload {
    let (myroot, mytargets) = (r.key_id("myroot"), r.key_id("mytargets"));
    let (root_v2, _, _) = server.role("root.json");
    assert_eq!(root_v2.signed["version"], 2);
    assert_eq!(root_v2.signed["roles"]["root"]["keyids"], json!([myroot]));
    assert_eq!(
        root_v2.signed["roles"]["targets"]["keyids"],
        json!([mytargets])
    );
    assert_eq!(
        root_v2.signed["keys"][&myroot]["keytype"],
        key_type.to_ascii_uppercase().as_str()
    );
    let v1 = TrustedRoot::from_signed(&root_v1.signed, "v1").unwrap();
    ota_sign::verify::verify_root_update(&v1, &root_v2, "v2").unwrap();
    root_v2
}

/// `targets sign --expires <expires> --force` and `targets push` in repository `r`.
pub fn push_targets_expiring(ws: &Workspace, expires: &str) {
    let r = ws.open("r");
    r.ok(&[
        "targets",
        "sign",
        "--key-name",
        "mytargets",
        "--expires",
        expires,
        "--force",
    ]);
    r.push();
}

/// Now + `days`, as `expires` is written.
pub fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Pushes the server's targets.json with `edit` applied to `signed` (version + 1),
/// signed by the online targets key; `extra` signatures are appended.
pub fn push_edited_targets(server: &TestServer, edit: impl FnOnce(&mut Value), extra: Vec<Value>) {
    let (doc, checksum, _) = server.role("targets.json");
    let mut signed = doc.signed.clone();
    signed["version"] = json!(doc.version().unwrap() + 1);
    edit(&mut signed);
    let key = server.targets_key();
    let mut body = serde_json::to_value(SignedPayload::sign(signed, &[&key]).unwrap()).unwrap();
    body["signatures"].as_array_mut().unwrap().extend(extra);
    let r = server
        .put("targets")
        .header("x-ats-role-checksum", checksum)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().unwrap_or_default());
}
