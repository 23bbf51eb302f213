//! `ota-sign status` (issue 11): one row per role, whose keys sign it, and next actions
//! that can be copied and run.

use crate::support::reposerver::TestServer;
use crate::support::steps::{in_days, move_offline, publish_uploaded, push_targets_expiring};
use crate::support::{role_row, Workspace};
use serde_json::Value;

fn status_json(ws: &Workspace, args: &[&str]) -> Value {
    ws.ota(&["status"])
        .args(args)
        .arg("--json")
        .run()
        .success()
        .json()
}

#[test]
fn fresh_server_from_its_credentials() {
    let server = TestServer::start();
    let ws = Workspace::new();
    publish_uploaded(&ws, &server, "app");
    let zip = server.credentials_zip();
    let s = status_json(&ws, &["--credentials", zip.to_str().unwrap()]);
    let (root, _, _) = server.role("root.json");
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let r = role_row(&s, role);
        assert_eq!(r["valid_signatures"], 1, "{role}");
        assert_eq!(r["threshold"], 1, "{role}");
        let ids: Vec<String> =
            serde_json::from_value(root.signed["roles"][role]["keyids"].clone()).unwrap();
        let shown: Vec<&str> = r["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        assert_eq!(shown, ids, "{role}");
        assert!(r["seconds_left"].as_i64().unwrap() > 29 * 86400, "{role}");
    }
    let targets = role_row(&s, "targets");
    assert_eq!(targets["targets"], 1);
    assert_eq!(targets["size_limit"], 8_286_208);
    assert_eq!(
        targets["size"].as_u64().unwrap(),
        server.role("targets.json").2.len() as u64
    );
    assert!(targets["keys"][0]["place"]
        .as_str()
        .unwrap()
        .contains("targets.sec in"));
    assert_eq!(
        role_row(&s, "snapshot")["keys"][0]["place"],
        "online (server)"
    );
    assert_eq!(s["next"], serde_json::json!([]), "{s:#}");
}

#[test]
fn offline_repository_suggests_the_refresh_command_that_fixes_it() {
    let server = TestServer::start();
    let ws = Workspace::new();
    move_offline(&ws, &server);
    push_targets_expiring(&ws, &in_days(5));

    let s = status_json(&ws, &["--repo", "r"]);
    assert_eq!(role_row(&s, "root")["version"], 2);
    assert_eq!(
        role_row(&s, "root")["keys"][0]["place"],
        "offline here (keys/myroot)"
    );
    assert_eq!(
        role_row(&s, "targets")["keys"][0]["place"],
        "offline here (keys/mytargets)"
    );
    let next = s["next"].as_array().unwrap();
    assert_eq!(next.len(), 1, "{s:#}");
    assert!(next[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("targets.json expires in"));
    let command = next[0]["command"].as_str().unwrap();
    assert_eq!(command, "ota-sign refresh --repo r --key-name mytargets");

    // The table names every role, and the command runs as printed.
    let table = ws.ok(&["status", "--repo", "r"]);
    for role in ["root", "timestamp", "snapshot", "targets"] {
        assert!(table.lines().any(|l| l.starts_with(role)), "{table}");
    }
    assert!(table.contains(&format!("run `{command}`")), "{table}");
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    ws.ok(&args);
    let after = status_json(&ws, &["--repo", "r"]);
    assert_eq!(after["next"], serde_json::json!([]), "{after:#}");
}

/// Every command `ota-sign --help` lists has a row in README's command table.
#[test]
fn readme_command_table_lists_every_command() {
    let help = Workspace::new().ok(&["--help"]);
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for c in ["verify", "status", "refresh", "publish", "init"] {
        assert!(
            commands.contains(&c),
            "{c} missing from --help: {commands:?}"
        );
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table: Vec<&str> = readme
        .split("## Command reference")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect();
    for c in commands {
        assert!(
            table.iter().any(|row| {
                let first = row.split(" | ").next().unwrap();
                first.contains(&format!("`{c}`")) || first.contains(&format!("`{c} "))
            }),
            "README's command table has no row for `{c}`"
        );
    }
}
