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
    let file = AtomicFile::create(path, mode)?;
    file.write_from(0, write)?;
    file.commit()
}

/// A file being replaced atomically: a temporary file beside `path`, created with
/// `mode`, that replaces `path` only on [`Self::commit`]. Dropped before that, it is
/// removed and `path` stays as it was. Positioned writes let several threads fill
/// different parts of it at once.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: std::path::PathBuf,
}

impl AtomicFile {
    /// A new, empty temporary file in `path`'s directory.
    pub fn create(path: &Path, mode: u32) -> Result<Self> {
        let dir = parent_dir(path);
        let tmp = tempfile::Builder::new()
            .prefix(".ota-sign-")
            .permissions(fs::Permissions::from_mode(mode))
            .tempfile_in(dir)
            .with_path(dir)?;
        // tempfile applies the mode through the umask; set it exactly.
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .with_path(tmp.path())?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// A writer that writes from `offset` on, independent of any other writer.
    pub fn writer_at(&self, offset: u64) -> PositionedWriter<'_> {
        PositionedWriter {
            file: self.tmp.as_file(),
            offset,
        }
    }

    /// Streams `write`'s output, buffered, into the file from `offset` on; the error
    /// names the final path.
    pub fn write_from(
        &self,
        offset: u64,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, self.writer_at(offset));
        write(&mut w).with_path(&self.path)?;
        w.flush().with_path(&self.path)
    }

    /// Empties the file, to write it again from the start.
    pub fn truncate(&self) -> Result<()> {
        self.tmp.as_file().set_len(0).with_path(&self.path)
    }

    /// Writes all of `bytes` at `offset`; the error names the final path.
    pub fn write_all_at(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.tmp
            .as_file()
            .write_all_at(bytes, offset)
            .with_path(&self.path)
    }

    /// Makes the content written so far durable.
    pub fn sync(&self) -> Result<()> {
        self.tmp.as_file().sync_all().with_path(&self.path)
    }

    /// Makes the content durable and puts it in place of `path`: fsync, rename, fsync
    /// of the directory.
    pub fn commit(self) -> Result<()> {
        self.sync()?;
        let AtomicFile { tmp, path } = self;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        sync_dir(parent_dir(&path))
    }
}

/// An [`std::io::Write`] into an [`AtomicFile`] from a given offset on.
pub struct PositionedWriter<'f> {
    file: &'f fs::File,
    offset: u64,
}

impl Write for PositionedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.write_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
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

/// Size of each read buffer of [`hash_file`].
const HASH_CHUNK: usize = 1 << 20;
/// Buffers in flight between [`hash_file`]'s reader and hasher.
const HASH_BUFFERS: usize = 3;

/// sha256 and length of a file in one streaming pass, with a progress bar on a
/// terminal. A reader thread fills a few 1 MiB buffers while this thread hashes the
/// previous ones, so the copy out of the page cache overlaps the hashing (constant
/// memory for images of any size).
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    use std::io::Read;
    use std::sync::mpsc::sync_channel;
    let file = fs::File::open(path).with_path(path)?;
    let len = file.metadata().with_path(path)?.len();
    let bar = crate::progress::bar(len, &format!("hashing {}", path.display()));
    let mut reader = bar.wrap_read(file);
    let (full_tx, full) = sync_channel::<std::io::Result<(Vec<u8>, usize)>>(HASH_BUFFERS);
    let (empty_tx, empty) = sync_channel::<Vec<u8>>(HASH_BUFFERS);
    for _ in 0..HASH_BUFFERS {
        let _ = empty_tx.send(vec![0u8; HASH_CHUNK]);
    }
    let mut hasher = crate::crypto::Sha256Stream::default();
    let mut total = 0u64;
    std::thread::scope(|s| {
        // Owned by this closure, so an early error return drops them and the reader,
        // waiting for an empty buffer, stops instead of blocking the scope's join.
        let (full, empty_tx) = (full, empty_tx);
        s.spawn(move || {
            // Ends when the file does, on a read error, or when the hasher stops.
            while let Ok(mut buf) = empty.recv() {
                let read = reader.read(&mut buf).map(|n| (buf, n));
                let done = !matches!(read, Ok((_, n)) if n > 0);
                if full_tx.send(read).is_err() || done {
                    break;
                }
            }
        });
        while let Ok(read) = full.recv() {
            let (buf, n) = read.with_path(path)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            let _ = empty_tx.send(buf);
        }
        Ok::<(), Error>(())
    })?;
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
    fn an_uncommitted_file_leaves_the_old_one_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.json");
        write_atomic(&path, b"old", PUBLIC_FILE).unwrap();
        let file = AtomicFile::create(&path, PUBLIC_FILE).unwrap();
        file.write_all_at(0, b"new").unwrap();
        file.sync().unwrap();
        assert_eq!(
            names(dir.path()).len(),
            2,
            "the temporary sits beside the old file"
        );
        drop(file);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["targets.json"]);
    }

    #[test]
    fn positioned_writes_fill_the_file_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.json");
        write_atomic(&path, b"old", PRIVATE_FILE).unwrap();
        let file = AtomicFile::create(&path, PUBLIC_FILE).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| file.writer_at(5).write_all(b", world").unwrap());
            file.write_all_at(0, b"hello").unwrap();
        });
        file.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello, world");
        assert_eq!(names(dir.path()), ["targets.json"]);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, PUBLIC_FILE);
    }

    #[test]
    fn hash_file_matches_a_one_shot_hash_across_buffers() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, HASH_CHUNK, HASH_CHUNK * HASH_BUFFERS + 12_345] {
            let path = dir.path().join(format!("img-{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            fs::write(&path, &data).unwrap();
            let (hex, n) = hash_file(&path).unwrap();
            assert_eq!(n, len as u64);
            assert_eq!(hex, crate::crypto::sha256_hex(&data), "length {len}");
        }
    }

    #[test]
    fn hash_file_read_errors_name_the_file_and_do_not_hang() {
        // Opening a directory works on Linux; reading it fails (EISDIR).
        let dir = tempfile::tempdir().unwrap();
        let err = hash_file(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
    }
}
