//! `ota-sign refresh` (issue 11) against ota-reposerver: re-sign an expiring
//! targets.json unchanged, no-op outside the window, concurrent pushes, foreign keys.

use crate::support::reposerver::TestServer;
use crate::support::steps::{
    in_days, move_offline, publish_uploaded, push_edited_targets, push_targets_expiring,
};
use crate::support::{Cmd, Ran, Workspace};
use crate::verify::verify;
use chrono::{Duration, Utc};
use ota_sign::canonical::CanonicalJson;
use serde_json::{json, Value};
use std::path::Path;

fn refresh(ws: &Workspace, zip: &Path, extra: &[&str]) -> (i32, Value, String) {
    let ran = ws
        .ota(&["refresh", "--credentials", zip.to_str().unwrap(), "--json"])
        .args(extra)
        .fast_retries()
        .run();
    let stderr = String::from_utf8_lossy(&ran.out.stderr).into_owned();
    (ran.exit_code().unwrap(), ran.json_or_null(), stderr)
}

fn expires(doc: &Value) -> chrono::DateTime<Utc> {
    ota_sign::metadata::Expires::parse(doc["expires"].as_str().unwrap())
        .unwrap()
        .datetime()
}

/// An offline repository whose targets.json (one target) expires in 3 days.
fn expiring(ws: &Workspace, server: &TestServer) -> std::path::PathBuf {
    publish_uploaded(ws, server, "app");
    let offline = move_offline(ws, server);
    push_targets_expiring(ws, &in_days(3));
    offline
}

#[test]
fn re_signs_an_expiring_targets_json_unchanged_then_is_a_no_op_outside_the_window() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let offline = expiring(&ws, &server);
    let (before, _, _) = server.role("targets.json");
    let v = before.version().unwrap();

    let (code, out, stderr) = refresh(&ws, &offline, &["--if-expires-within", "7D"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(out["refreshed"], true, "{out}");
    let (after, _, _) = server.role("targets.json");
    assert_eq!(after.version(), Some(v + 1));
    assert_eq!(out["targets_version"], v + 1);
    // The expiry moved to about a month from now; the targets are byte-identical.
    assert!(expires(&after.signed) > Utc::now() + Duration::days(27));
    assert_eq!(
        CanonicalJson::of(&after.signed["targets"]),
        CanonicalJson::of(&before.signed["targets"])
    );
    assert_eq!(after.signed["targets"].as_object().unwrap().len(), 1);
    let (code, report) = verify(&ws, &["--credentials", offline.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}");

    // Now the expiry is a month away: nothing to do, nothing pushed.
    let (code, out, _) = refresh(&ws, &offline, &["--if-expires-within", "7D"]);
    assert_eq!(code, 0);
    assert_eq!(out["refreshed"], false);
    assert!(out["message"].as_str().unwrap().contains("nothing to do"));
    assert_eq!(server.role("targets.json").0.version(), Some(v + 1));

    // A dry run signs but pushes nothing.
    let (code, out, _) = refresh(&ws, &offline, &["--dry-run", "--expire-after", "2M"]);
    assert_eq!(code, 0);
    assert_eq!(
        (out["refreshed"].clone(), out["dry_run"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(server.role("targets.json").0.version(), Some(v + 1));
}

#[test]
fn survives_a_concurrent_push() {
    let server = TestServer::start();
    let ws = Workspace::new();
    publish_uploaded(&ws, &server, "app");
    let zip = server.credentials_zip();
    // Hold refresh's push long enough for another push to land first.
    server.add_fault(json!({"method": "PUT", "path": "/api/v1/user_repo/targets", "kind": "delay", "delay_ms": 1500}));
    let child = Cmd::ota_sign()
        .current_dir(ws.path())
        .args(["refresh", "--credentials", zip.to_str().unwrap(), "--json"])
        .spawn();
    let handle = std::thread::spawn(move || Ran::of_child(child));
    let faults = || -> Vec<Value> {
        server
            .client()
            .get(format!("{}/_admin/faults", server.url()))
            .header("x-ota-admin-token", server.admin_token())
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !faults().is_empty() {
        assert!(std::time::Instant::now() < deadline, "refresh never pushed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // refresh's PUT is now waiting in the server: another builder pushes.
    push_edited_targets(
        &server,
        |s| s["targets"]["app-1.0"]["custom"]["note"] = json!("concurrent"),
        vec![],
    );
    let report = handle.join().unwrap().success().json();
    assert_eq!(report["refreshed"], true);
    assert_eq!(report["attempts"], 2, "{report}");
    // Both changes are on the server: the other push's edit, refresh's version.
    let (t, _, _) = server.role("targets.json");
    assert_eq!(
        t.signed["targets"]["app-1.0"]["custom"]["note"],
        "concurrent"
    );
    assert_eq!(report["targets_version"], t.signed["version"]);
}

#[test]
fn refuses_a_targets_key_the_latest_root_does_not_list() {
    let server = TestServer::start();
    let ws = Workspace::new();
    // The zip issued before move-offline carries the old online targets key.
    let old = ws.path().join("old.zip");
    std::fs::copy(server.credentials_zip(), &old).unwrap();
    move_offline(&ws, &server);
    let (before, _, _) = server.role("targets.json");
    let (code, _, stderr) = refresh(&ws, &old, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("is not a targets key of the server's root.json version 2"),
        "{stderr}"
    );
    assert_eq!(server.role("targets.json").0.signed, before.signed);
}

#[test]
fn warns_when_root_expires_within_30_days() {
    let server = TestServer::start();
    let ws = Workspace::new();
    move_offline(&ws, &server);
    let r = ws.open("r");
    let soon = in_days(10);
    r.ok(&["root", "pull"]);
    r.ok(&["root", "sign", "--key-name", "myroot", "--expires", &soon]);
    r.ok(&["root", "push"]);
    let stderr = r
        .ota(&["refresh", "--key-name", "mytargets"])
        .run()
        .success()
        .stderr();
    assert!(
        stderr.contains(&format!("root.json v3 expires at {soon}")),
        "{stderr}"
    );
    assert!(stderr.contains("ota-sign root sign --repo r"), "{stderr}");
    // The local repository holds what was pushed: sign and push go on without a pull.
    let pushed = server.role("targets.json").0;
    assert_eq!(
        ota_sign::metadata::SignedPayload::parse(
            &std::fs::read(r.file("roles/targets.json")).unwrap(),
            "roles/targets.json"
        )
        .unwrap(),
        pushed
    );
    push_targets_expiring(&ws, &in_days(20));
    assert_eq!(
        server.role("targets.json").0.version(),
        Some(pushed.version().unwrap() + 1)
    );
}
