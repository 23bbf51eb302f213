//! Shared test setup: binaries, temporary homes, fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod reposerver;

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

/// The shared upstream fixtures (`../shared/fixtures` beside the checkout).
pub fn fixtures() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = root.join("../shared/fixtures");
    assert!(p.is_dir(), "fixtures not found at {}", p.display());
    p
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
    let z = zip::ZipArchive::new(f).unwrap();
    z.file_names()
        .filter_map(|n| n.ok().map(|n| n.to_string()))
        .collect()
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
