//! Shared test setup: binaries ([`Cmd`]), temporary homes and repositories
//! ([`Workspace`], [`Repo`]), a loopback ota-reposerver ([`reposerver::TestServer`]),
//! fixtures and small file readers.
#![allow(dead_code)]

pub mod cmd;
pub mod fake_http;
pub mod reposerver;
pub mod steps;
pub mod workspace;

pub use cmd::{Cmd, Ran};
pub use workspace::{Repo, Workspace};

use std::path::{Path, PathBuf};
use std::process::Command;

/// A sha256 for targets whose content does not matter.
pub const SHA: &str = "4a2e8c7b7b6a4f6c2e3a6c4f1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e";

/// `publish` of target `app`-`version` (hardware id `hw`, 3 bytes, [`SHA`]) from `zip`.
pub fn publish_args(zip: &str, version: &str) -> Vec<String> {
    [
        "publish",
        "--credentials",
        zip,
        "--name",
        "app",
        "--version",
        version,
        "--hardwareids",
        "hw",
        "--length",
        "3",
        "--sha256",
        SHA,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `ota-sign` with a clean environment for logging.
pub fn ota_sign() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_ota-sign"));
    cmd.env_remove("RUST_LOG").env_remove("OTA_SIGN_LOG");
    cmd
}

/// `ota-reposerver`, as a std Command (servers are spawned, not awaited).
pub fn ota_reposerver_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ota-reposerver"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// The shared upstream fixtures (`../shared/fixtures` beside the checkout, or beside
/// a directory holding it, as for git worktrees).
pub fn fixtures() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = root
        .ancestors()
        .skip(1)
        .map(|a| a.join("shared/fixtures"))
        .find(|p| p.is_dir());
    found.unwrap_or_else(|| panic!("no shared/fixtures beside {} or above", root.display()))
}

pub fn fixture(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

/// Reads one entry of a zip archive.
pub fn zip_entry(zip_path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(zip_path).ok()?;
    let mut z = zip::ZipArchive::new(f).ok()?;
    let mut e = z.by_name(name).ok()?;
    let mut out = Vec::new();
    e.read_to_end(&mut out).ok()?;
    Some(out)
}

/// Names of the entries of a zip archive, in order.
pub fn zip_names(zip_path: &Path) -> Vec<String> {
    let f = std::fs::File::open(zip_path).unwrap();
    let mut z = zip::ZipArchive::new(f).unwrap();
    (0..z.len())
        .map(|i| z.by_index(i).unwrap().name().to_string())
        .collect()
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads the JSON file at `path`, applies `edit` and writes it back.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v = read_json(path);
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The row of `role` in the `roles` of a `verify --json` or `status --json` report.
pub fn role_row<'a>(report: &'a serde_json::Value, role: &str) -> &'a serde_json::Value {
    report["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("no roles in {report:#}"))
        .iter()
        .find(|r| r["role"] == role)
        .unwrap_or_else(|| panic!("no {role} row: {report:#}"))
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file below `dir` with its content: compare before/after to prove a failing
/// command changed nothing.
pub fn tree_snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| {
            let data = if e.file_type().is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                b"<dir>".to_vec()
            };
            (e.path().to_path_buf(), data)
        })
        .collect()
}

/// The upstream credentials fixtures' root.json files do not verify (edited after
/// signing, see fixtures/README.md), and `init` refuses such a trust anchor. This copy
/// of fixture `zip` (written to `dir`) has a root whose root role is a fresh Ed25519
/// key, signed by it; every other key, role and entry is unchanged. Made once per `dir`.
pub fn fixture_with_valid_root(zip: &str, dir: &Path) -> PathBuf {
    use ota_sign::keys::{KeyType, PrivateKey};
    use std::io::Write;
    let src = fixture(&format!("ota-tuf/cli/src/test/resources/{zip}"));
    let out = dir.join(format!("valid-root-{zip}"));
    if out.exists() {
        return out;
    }
    let names = zip_names(&src);
    if !names.iter().any(|n| n == "root.json") {
        std::fs::copy(&src, &out).unwrap();
        return out;
    }
    let mut root =
        serde_json::from_slice::<serde_json::Value>(&zip_entry(&src, "root.json").unwrap())
            .unwrap()["signed"]
            .clone();
    let key = PrivateKey::generate(KeyType::Ed25519, None).unwrap();
    let id = key.key_id().to_string();
    let old: Vec<String> = root["roles"]["root"]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let keys = root["keys"].as_object_mut().unwrap();
    for k in &old {
        keys.remove(k);
    }
    keys.insert(id.clone(), key.public().to_json());
    root["roles"]["root"] = serde_json::json!({"keyids": [id], "threshold": 1});
    let signed = ota_sign::metadata::SignedPayload::sign(root, &[&key]).unwrap();
    let mut w = zip::ZipWriter::new(std::fs::File::create(&out).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    for name in names {
        let data = if name == "root.json" {
            serde_json::to_vec(&signed).unwrap()
        } else {
            zip_entry(&src, &name).unwrap_or_default()
        };
        if name.ends_with('/') {
            w.add_directory(name, opts).unwrap();
        } else {
            w.start_file(name, opts).unwrap();
            w.write_all(&data).unwrap();
        }
    }
    w.finish().unwrap();
    out
}
