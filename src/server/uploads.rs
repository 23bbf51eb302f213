//! Target file storage and the S3-style multipart upload state.
//!
//! - `targets/<sha256(filename)>`: stored target files (the name is hashed because
//!   target filenames may contain `/` and be longer than a file name may be).
//! - `uploads/tmp/`: bodies being received (streamed, never held in memory).
//! - `uploads/multipart/<uploadId>/`: `meta.json` `{"filename","fileSize"}` and one
//!   file per part, named by its number.

use super::errors::{random_hex, ApiError};
use crate::crypto::{sha256_hex, Sha256Stream};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::schema::{Sha256, TargetName};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, Incoming};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tempfile::NamedTempFile;

/// Where target files and uploads in progress are kept (see the module docs).
pub struct Storage {
    targets: PathBuf,
    tmp: PathBuf,
    multipart: PathBuf,
}

/// A body written to a temporary file.
pub struct Received {
    /// The body, synced; dropped (and so removed) unless committed.
    pub file: NamedTempFile,
    /// The SHA-256 of the body.
    pub sha256: Sha256,
    /// Its length in bytes.
    pub length: u64,
}

impl Received {
    /// The `ETag` S3 would answer for this body; ours is the quoted sha256, so
    /// `complete` can check a part against it.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.sha256)
    }
}

/// Whether `etag` (as a client sends it back, quoted or not) names a body of digest
/// `sha256`.
fn etag_matches(etag: &str, sha256: &str) -> bool {
    etag.trim_matches('"') == sha256
}

/// A body size cap. Every cap of the server (uploads, metadata, small JSON bodies)
/// answers the same `413 payload_too_large` through [`SizeLimit::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeLimit(pub u64);

impl SizeLimit {
    /// 413 when `size` (declared or received) is beyond the cap.
    pub fn check(self, size: u64) -> Result<(), ApiError> {
        if size > self.0 {
            return Err(self.too_large());
        }
        Ok(())
    }

    /// The cap for a reader that stops past it (`usize::MAX` when it does not fit).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    /// `413 payload_too_large`, naming the cap.
    pub fn too_large(self) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {} bytes", self.0),
        )
    }
}

/// A multipart upload id: 32 lower-case hex characters, as [`Storage::initiate`]
/// makes them. Checked before it names a directory, so an id from a URL or a body
/// can never point outside `uploads/multipart/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadId(String);

impl UploadId {
    const BYTES: usize = 16;

    /// A new random id.
    fn random() -> Result<UploadId> {
        random_hex(Self::BYTES).map(UploadId)
    }

    /// `s` if it is an id we could have made.
    pub fn parse(s: &str) -> Option<UploadId> {
        (s.len() == 2 * Self::BYTES && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| UploadId(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A multipart part number: 1 to 10000, S3's range. Written as at most five decimal
/// digits (no sign, no spaces); displayed without leading zeros, which is also the
/// name of the part's file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartNumber(u32);

impl PartNumber {
    /// The highest part number: S3's, as the client splits uploads.
    pub const MAX: u32 = crate::http::MAX_PARTS;

    /// `n` if it is in range.
    pub fn new(n: u64) -> Option<PartNumber> {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=Self::MAX).contains(n))
            .map(PartNumber)
    }

    /// A part number written in at most five decimal digits.
    pub fn parse(s: &str) -> Option<PartNumber> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().and_then(PartNumber::new)
    }
}

impl std::fmt::Display for PartNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// 404 `upload_not_found`: `upload_id` (as the client sent it) names no multipart
/// upload of `filename`.
pub fn unknown_upload(upload_id: &str, filename: &TargetName) -> ApiError {
    ApiError::not_found(
        "upload_not_found",
        format!("no multipart upload {upload_id:?} for {filename}"),
    )
}

/// Read and write buffer for target files and parts.
const COPY_BUFFER: usize = 64 * 1024;

impl Storage {
    /// The storage of `data_dir`, its directories created.
    pub fn new(data_dir: &Path) -> Result<Storage> {
        let s = Storage {
            targets: data_dir.join("targets"),
            tmp: data_dir.join("uploads").join("tmp"),
            multipart: data_dir.join("uploads").join("multipart"),
        };
        for d in [&s.targets, &s.tmp, &s.multipart] {
            std::fs::create_dir_all(d).with_path(d)?;
        }
        Ok(s)
    }

    /// Where target `filename` is (or would be) stored.
    pub fn path_for(&self, filename: &TargetName) -> PathBuf {
        self.targets.join(sha256_hex(filename.as_bytes()))
    }

    /// Whether target `filename` has been uploaded.
    pub fn exists(&self, filename: &TargetName) -> bool {
        self.path_for(filename).is_file()
    }

    /// Streams `body` into a temporary file, at most `limit` bytes (413 beyond). The
    /// file writes, hashing and fsync run on the blocking pool, fed chunk by chunk.
    pub async fn receive(
        &self,
        mut body: Incoming,
        limit: SizeLimit,
    ) -> Result<Received, ApiError> {
        let file = NamedTempFile::new_in(&self.tmp).with_path(&self.tmp)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let writer = tokio::task::spawn_blocking(move || write_received(file, rx));
        let mut length = 0u64;
        let mut failed = None;
        while let Some(frame) = body.frame().await {
            let data = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Err(e) => {
                    failed = Some(ApiError::invalid_entity(format!(
                        "reading the body failed: {e}"
                    )));
                    break;
                }
            };
            length += data.len() as u64;
            if let Err(e) = limit.check(length) {
                failed = Some(e);
                break;
            }
            if tx.send(data).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        drop(tx);
        let received = writer
            .await
            .map_err(|e| ApiError::internal(format!("the upload writer failed: {e}")))?;
        match failed {
            // The temporary file is removed when `received` is dropped.
            Some(e) => Err(e),
            None => Ok(received?),
        }
    }

    /// Moves a received file into place as target `filename`.
    pub fn commit(&self, received: Received, filename: &TargetName) -> Result<()> {
        let dest = self.path_for(filename);
        persist(received.file, &dest)?;
        Ok(())
    }

    fn upload_dir(&self, upload_id: &UploadId) -> PathBuf {
        self.multipart.join(upload_id.as_str())
    }

    /// Starts a multipart upload; returns its id.
    pub fn initiate(&self, filename: &TargetName, file_size: u64) -> Result<UploadId> {
        let id = UploadId::random()?;
        let dir = self.upload_dir(&id);
        std::fs::create_dir_all(&dir).with_path(&dir)?;
        let meta = json!({"filename": filename, "fileSize": file_size});
        fsutil::write_atomic(
            &dir.join("meta.json"),
            meta.to_string().as_bytes(),
            fsutil::PUBLIC_FILE,
        )?;
        Ok(id)
    }

    /// The filename of a multipart upload, `None` if there is no such upload.
    fn upload_filename(&self, upload_id: &UploadId) -> Option<String> {
        let meta: Value = fsutil::read_json(&self.upload_dir(upload_id).join("meta.json")).ok()?;
        meta.get("filename")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Checks that `upload_id` is a multipart upload of `filename`.
    pub fn check_upload(
        &self,
        upload_id: &UploadId,
        filename: &TargetName,
    ) -> Result<(), ApiError> {
        if self.upload_filename(upload_id).as_deref() != Some(filename.as_str()) {
            return Err(unknown_upload(upload_id.as_str(), filename));
        }
        Ok(())
    }

    /// Stores one received part; returns its ETag.
    pub fn store_part(
        &self,
        upload_id: &UploadId,
        part: PartNumber,
        received: Received,
    ) -> Result<String, ApiError> {
        let dir = self.upload_dir(upload_id);
        if !dir.is_dir() {
            return Err(ApiError::not_found(
                "upload_not_found",
                "unknown multipart upload",
            ));
        }
        let etag = received.etag();
        let dest = dir.join(part.to_string());
        persist(received.file, &dest)?;
        Ok(etag)
    }

    /// Concatenates the parts in the order given, checking every ETag, and stores the
    /// result as target `filename`.
    pub fn complete(
        &self,
        upload_id: &UploadId,
        filename: &TargetName,
        parts: &[(PartNumber, String)],
    ) -> Result<(), ApiError> {
        self.check_upload(upload_id, filename)?;
        let dir = self.upload_dir(upload_id);
        if parts.is_empty() {
            return Err(ApiError::invalid_entity("partETags is empty"));
        }
        let mut out = NamedTempFile::new_in(&self.tmp).with_path(&self.tmp)?;
        for (part, etag) in parts {
            let sha256 = append_part(&mut out, &dir.join(part.to_string()), *part)?;
            if !etag_matches(etag, &sha256) {
                return Err(ApiError::invalid_entity(format!(
                    "the ETag of part {part} does not match the uploaded part"
                )));
            }
        }
        out.as_file().sync_all().with_path(out.path())?;
        let dest = self.path_for(filename);
        persist(out, &dest)?;
        std::fs::remove_dir_all(&dir).with_path(&dir)?;
        Ok(())
    }
}

/// Renames a synced temporary file into place (same file system: `uploads/tmp/` and
/// the destinations are all below the data directory).
fn persist(file: NamedTempFile, dest: &Path) -> Result<()> {
    file.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    Ok(())
}

/// The blocking half of [`Storage::receive`]: writes and hashes the chunks as they
/// arrive, then syncs the file, so a committed body is on disk.
fn write_received(
    mut file: NamedTempFile,
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> Result<Received> {
    let mut hash = Sha256Stream::default();
    let mut length = 0u64;
    while let Some(data) = rx.blocking_recv() {
        length += data.len() as u64;
        hash.update(&data);
        file.write_all(&data).with_path(file.path())?;
    }
    file.as_file().sync_all().with_path(file.path())?;
    Ok(Received {
        file,
        sha256: Sha256::parse(&hash.finish_hex())?,
        length,
    })
}

/// Appends the part file at `path` to `out`; returns the part's sha256 (what its
/// ETag must name).
fn append_part(out: &mut NamedTempFile, path: &Path, part: PartNumber) -> Result<String, ApiError> {
    let mut f = std::fs::File::open(path)
        .map_err(|_| ApiError::invalid_entity(format!("part {part} was not uploaded")))?;
    let mut hash = Sha256Stream::default();
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = f.read(&mut buf).with_path(path)?;
        if n == 0 {
            return Ok(hash.finish_hex());
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n]).with_path(out.path())?;
    }
}

/// A response body fed by a blocking reader thread.
pub struct ChannelBody(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// Streams the file at `path` in [`COPY_BUFFER`] chunks, read on the blocking pool.
pub fn file_body(path: PathBuf) -> ChannelBody {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut buf = vec![0u8; COPY_BUFFER];
        loop {
            match f.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    ChannelBody(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers_are_one_to_ten_thousand_in_digits() {
        assert_eq!(PartNumber::parse("1"), PartNumber::new(1));
        assert_eq!(
            PartNumber::parse("0042").map(|p| p.to_string()),
            Some("42".into())
        );
        assert!(PartNumber::new(10_000).is_some());
        for n in [0, 10_001, u64::from(u32::MAX) + 1] {
            assert_eq!(PartNumber::new(n), None, "{n}");
        }
        for s in [
            "", "0", "10001", "+1", "-1", " 1", "1 ", "1.0", "0x10", "999999",
        ] {
            assert_eq!(PartNumber::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn upload_ids_are_ours_only() {
        let id = UploadId::random().unwrap();
        assert_eq!(UploadId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(id.as_str().len(), 32);
        for s in [
            "",
            "0123456789abcdef",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdeg",
            "../../../../../../../../../../../",
            "0123456789abcdef0123456789abcdef0",
        ] {
            assert_eq!(UploadId::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn one_size_rule() {
        let limit = SizeLimit(10);
        assert!(limit.check(10).is_ok());
        let e = limit.check(11).unwrap_err();
        assert_eq!(
            (e.status, e.code.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        );
        assert!(e.description.contains("10 bytes"));
        assert_eq!(SizeLimit(u64::MAX).as_usize(), usize::MAX);
    }

    #[test]
    fn etags_are_quoted_digests() {
        let digest = "ab".repeat(32);
        assert!(etag_matches(&format!("\"{digest}\""), &digest));
        assert!(etag_matches(&digest, &digest));
        assert!(!etag_matches(&format!("\"{}\"", "cd".repeat(32)), &digest));
    }
}
