//! File-system helpers: every write is atomic and durable (temp file in the same
//! directory, fsync, rename, fsync of the directory), private directories are 0700 and private files 0600 from creation on, so a
//! secret is never readable by others, not even for the instant before a chmod.

use crate::error::{Error, IoContext, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use zeroize::Zeroizing;

/// Mode of private key files.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of key and repository directories.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of public, non-secret files.
pub const PUBLIC_FILE: u32 = 0o644;

/// Writes `bytes` to `path` atomically with the given mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_with(path, mode, |w| w.write_all(bytes))
}

/// As [`write_atomic`], with the content streamed by `write` through a buffered writer
/// (no copy of a large file in memory). Nothing replaces `path` unless `write` succeeds.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    write_atomic_gated(path, mode, write, || Ok(()))
}

/// As [`write_atomic_with`]; `gate` runs once the new content is durable and before
/// it replaces `path`: if it fails, the temporary file is removed and `path` is left
/// as it was. (`targets sign` checks its signatures there, beside the write.)
pub fn write_atomic_gated(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    gate: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ota-sign-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_path(dir)?;
    // tempfile applies the mode through the umask; set it exactly.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .with_path(tmp.path())?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
        write(&mut w).with_path(path)?;
        w.flush().with_path(path)?;
    }
    tmp.as_file().sync_all().with_path(path)?;
    gate()?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(dir)
}

/// fsyncs a directory so that a rename or a new entry in it survives a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_path(dir)
}

/// Creates `path` (and parents) and makes `path` itself 0700.
pub fn create_private_dir(path: &Path) -> Result<()> {
    let existed = path.is_dir();
    fs::create_dir_all(path).with_path(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_DIR)).with_path(path)?;
    match path.parent() {
        Some(parent) if !existed && !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// Reads a whole file; the error names it.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_path(path)
}

/// Reads a file that holds secrets into a buffer that is wiped when dropped.
pub fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    let mut f = fs::File::open(path).with_path(path)?;
    let len = f.metadata().with_path(path)?.len();
    // Sized up front: a growing Vec would leave copies of the secret behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(len as usize + 1));
    f.read_to_end(&mut buf).with_path(path)?;
    Ok(buf)
}

pub fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_path(path)
}

/// Reads and parses a JSON file; parse errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(path.display().to_string(), format!("invalid JSON: {e}")))
}

/// sha256 and length of a file in one streaming pass with a 1 MiB buffer (constant
/// memory for images of any size), with a progress bar on a terminal.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    use std::io::Read;
    let file = fs::File::open(path).with_path(path)?;
    let len = file.metadata().with_path(path)?.len();
    let bar = crate::progress::bar(len, &format!("hashing {}", path.display()));
    let mut reader = bar.wrap_read(file);
    let mut hasher = crate::crypto::Sha256Stream::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).with_path(path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    bar.finish_and_clear();
    Ok((hasher.finish_hex(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_failing_gate_keeps_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.json");
        write_atomic(&path, b"old", PUBLIC_FILE).unwrap();
        let err = write_atomic_gated(
            &path,
            PUBLIC_FILE,
            |w| w.write_all(b"new"),
            || Err(Error::Other("check failed".into())),
        )
        .unwrap_err();
        assert!(err.to_string().contains("check failed"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["targets.json"]);
    }

    #[test]
    fn a_passing_gate_runs_after_the_content_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.json");
        write_atomic(&path, b"old", PUBLIC_FILE).unwrap();
        let mut temp_seen = false;
        write_atomic_gated(
            &path,
            PUBLIC_FILE,
            |w| w.write_all(b"new"),
            || {
                // The new content sits in a temporary beside the old file.
                temp_seen = names(dir.path()).len() == 2;
                assert_eq!(fs::read(&path).unwrap(), b"old");
                Ok(())
            },
        )
        .unwrap();
        assert!(temp_seen);
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["targets.json"]);
    }
}
