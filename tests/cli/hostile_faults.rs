//! Server faults against the real ota-reposerver (its `/_admin/faults` mode): transient
//! 5xx, connection resets and stalls are survived by `targets pull`, `targets push`,
//! `root pull` and `publish`, each push applied exactly once; a server that stays
//! down is reported within the documented bound with nothing changed locally.

use crate::support::reposerver::TestServer;
use crate::support::{publish_args, tree_snapshot, Workspace, SHA};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const API: &str = "/api/v1/user_repo";

/// The fault kinds tried, as `/_admin/faults` rule parts. A stall outlasts the
/// client's request timeout (see [`run`]), so it is a timeout, then a retry.
fn fault_kinds() -> Vec<(&'static str, Value)> {
    vec![
        ("503", json!({"kind": "status", "status": 503, "count": 2})),
        ("500", json!({"kind": "status", "status": 500, "count": 1})),
        ("reset", json!({"kind": "reset", "count": 2})),
        (
            "stall",
            json!({"kind": "delay", "delay_ms": 1500, "count": 1}),
        ),
    ]
}

fn rule(method: &str, path: &str, kind: &Value) -> Value {
    let mut r = kind.clone();
    r["method"] = json!(method);
    r["path"] = json!(format!("{API}/{path}"));
    r
}

/// ota-sign with short retries and a 700 ms request timeout.
fn run(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.cmd()
        .env("OTA_SIGN_HTTP_RETRY_DELAY_MS", "20")
        .env("OTA_SIGN_HTTP_TIMEOUT_MS", "700")
        .args(args)
        .output()
        .unwrap()
}

fn ok(ws: &Workspace, what: &str, args: &[&str]) {
    let out = run(ws, args);
    assert!(
        out.status.success(),
        "{what}: ota-sign {args:?} exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn targets_version(server: &TestServer) -> u64 {
    server.role("targets.json").0.signed["version"]
        .as_u64()
        .unwrap()
}

fn add_and_sign(ws: &Workspace, version: &str) {
    ws.ok(&[
        "targets",
        "add",
        "--repo",
        "r",
        "--name",
        "fw",
        "--version",
        version,
        "--length",
        "3",
        "--sha256",
        SHA,
        "--hardwareids",
        "hw",
    ]);
    ws.ok(&["targets", "sign", "--repo", "r", "--key-name", "targets"]);
}

#[test]
fn pull_push_and_root_pull_survive_every_fault_kind() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let zip = server.credentials_zip();
    ws.ok(&[
        "init",
        "--repo",
        "r",
        "--credentials",
        zip.to_str().unwrap(),
    ]);
    for (i, (name, kind)) in fault_kinds().into_iter().enumerate() {
        server.add_fault(rule("GET", "targets.json", &kind));
        ok(
            &ws,
            &format!("targets pull under {name}"),
            &["targets", "pull", "--repo", "r"],
        );

        server.add_fault(rule("GET", "root.json", &kind));
        ok(
            &ws,
            &format!("root pull under {name}"),
            &["root", "pull", "--repo", "r"],
        );

        let before = targets_version(&server);
        add_and_sign(&ws, &format!("{i}"));
        server.add_fault(rule("PUT", "targets", &kind));
        ok(
            &ws,
            &format!("targets push under {name}"),
            &["targets", "push", "--repo", "r"],
        );
        assert_pushed_once(&server, before, &format!("fw-{i}"), name);
        server.clear_faults();
    }
}

/// The faulted push landed exactly once: one version up, with `target` in it.
fn assert_pushed_once(server: &TestServer, before: u64, target: &str, what: &str) {
    assert_eq!(
        targets_version(server),
        before + 1,
        "{what}: the push is applied exactly once"
    );
    let (served, _, _) = server.role("targets.json");
    assert!(served.signed["targets"][target].is_object(), "{what}");
}

#[test]
fn publish_survives_every_fault_kind() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let zip = server.credentials_zip();
    for (i, (name, kind)) in fault_kinds().into_iter().enumerate() {
        let before = targets_version(&server);
        server.add_fault(rule("GET", "targets.json", &kind));
        server.add_fault(rule("PUT", "targets", &kind));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ota-sign"))
            .current_dir(dir.path())
            .env_remove("OTA_SIGN_LOG")
            .env("OTA_SIGN_HTTP_RETRY_DELAY_MS", "20")
            .env("OTA_SIGN_HTTP_TIMEOUT_MS", "700")
            .args([
                "publish",
                "--credentials",
                zip.to_str().unwrap(),
                "--name",
                "app",
            ])
            .args([
                "--version",
                &i.to_string(),
                "--hardwareids",
                "hw",
                "--length",
                "3",
            ])
            .args(["--sha256", SHA])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "publish under {name}: exit {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_pushed_once(&server, before, &format!("app-{i}"), name);
        server.clear_faults();
    }
}

/// Default retry policy (4 retries, 0.5 s doubling, jitter): a server that stays
/// down is reported after at most 7.5 s of backoff. 20 s leaves room for a loaded
/// machine; the point is that it is bounded, not how fast it is.
#[test]
fn a_dead_server_is_reported_within_the_bound_and_nothing_changes() {
    let mut server = TestServer::start();
    let ws = Workspace::new();
    let zip = server.credentials_zip();
    ws.ok(&[
        "init",
        "--repo",
        "r",
        "--credentials",
        zip.to_str().unwrap(),
    ]);
    ws.ok(&["targets", "pull", "--repo", "r"]);
    add_and_sign(&ws, "1");
    server.stop();
    let before = tree_snapshot(&ws.home());
    let publish = publish_args(zip.to_str().unwrap(), "1");
    for args in [
        vec!["targets", "pull", "--repo", "r"],
        vec!["targets", "push", "--repo", "r"],
        vec!["root", "pull", "--repo", "r"],
        publish.iter().map(String::as_str).collect(),
    ] {
        let t = Instant::now();
        let out = ws.cmd().args(&args).output().unwrap();
        let took = t.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("cannot connect to the server"),
            "{args:?}: {err}"
        );
        assert!(err.contains("127.0.0.1"), "{args:?}: {err}");
        assert!(took < Duration::from_secs(20), "{args:?} took {took:?}");
        assert_eq!(
            before,
            tree_snapshot(&ws.home()),
            "{args:?} changed the repo"
        );
    }
}
