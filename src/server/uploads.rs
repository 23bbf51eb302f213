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
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, Incoming};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tempfile::NamedTempFile;

pub struct Storage {
    targets: PathBuf,
    tmp: PathBuf,
    multipart: PathBuf,
}

/// A body written to a temporary file.
pub struct Received {
    pub file: NamedTempFile,
    pub sha256: String,
    pub length: u64,
}

pub fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {limit} bytes"),
    )
}

impl Storage {
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

    pub fn path_for(&self, filename: &str) -> PathBuf {
        self.targets.join(sha256_hex(filename.as_bytes()))
    }

    pub fn exists(&self, filename: &str) -> bool {
        self.path_for(filename).is_file()
    }

    /// Streams `body` into a temporary file, at most `limit` bytes (413 beyond). The
    /// file writes, hashing and fsync run on the blocking pool, fed chunk by chunk.
    pub async fn receive(&self, mut body: Incoming, limit: u64) -> Result<Received, ApiError> {
        let file = NamedTempFile::new_in(&self.tmp).with_path(&self.tmp)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let writer = tokio::task::spawn_blocking(move || -> Result<Received> {
            let mut file = file;
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
                sha256: hash.finish_hex(),
                length,
            })
        });
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
            if length > limit {
                failed = Some(too_large(limit));
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
    pub fn commit(&self, received: Received, filename: &str) -> Result<()> {
        let dest = self.path_for(filename);
        received
            .file
            .persist(&dest)
            .map_err(|e| Error::io(&dest, e.error))?;
        Ok(())
    }

    fn upload_dir(&self, upload_id: &str) -> Option<PathBuf> {
        // Upload ids are ours: 32 lower-case hex characters.
        (upload_id.len() == 32
            && upload_id
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| self.multipart.join(upload_id))
    }

    /// Starts a multipart upload; returns its id.
    pub fn initiate(&self, filename: &str, file_size: u64) -> Result<String> {
        let id = random_hex(16)?;
        let dir = self.multipart.join(&id);
        std::fs::create_dir_all(&dir).with_path(&dir)?;
        let meta = json!({"filename": filename, "fileSize": file_size});
        fsutil::write_atomic(
            &dir.join("meta.json"),
            meta.to_string().as_bytes(),
            fsutil::PUBLIC_FILE,
        )?;
        Ok(id)
    }

    /// Checks that `upload_id` is a multipart upload of `filename`.
    pub fn check_upload(&self, upload_id: &str, filename: &str) -> Result<(), ApiError> {
        let unknown = || {
            ApiError::not_found(
                "upload_not_found",
                format!("no multipart upload {upload_id:?} for {filename}"),
            )
        };
        let dir = self.upload_dir(upload_id).ok_or_else(unknown)?;
        let meta: Value = fsutil::read_json(&dir.join("meta.json")).map_err(|_| unknown())?;
        if meta.get("filename").and_then(Value::as_str) != Some(filename) {
            return Err(unknown());
        }
        Ok(())
    }

    /// The filename of a multipart upload.
    pub fn upload_filename(&self, upload_id: &str) -> Option<String> {
        let dir = self.upload_dir(upload_id)?;
        let meta: Value = fsutil::read_json(&dir.join("meta.json")).ok()?;
        meta.get("filename")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Stores one received part; returns its ETag (quoted sha256).
    pub fn store_part(
        &self,
        upload_id: &str,
        part: u32,
        received: Received,
    ) -> Result<String, ApiError> {
        let dir = self
            .upload_dir(upload_id)
            .filter(|d| d.is_dir())
            .ok_or_else(|| ApiError::not_found("upload_not_found", "unknown multipart upload"))?;
        let dest = dir.join(part.to_string());
        received
            .file
            .persist(&dest)
            .map_err(|e| Error::io(&dest, e.error))?;
        Ok(format!("\"{}\"", received.sha256))
    }

    /// Concatenates the parts in the order given, checking every ETag, and stores the
    /// result as target `filename`.
    pub fn complete(
        &self,
        upload_id: &str,
        filename: &str,
        parts: &[(u32, String)],
    ) -> Result<(), ApiError> {
        self.check_upload(upload_id, filename)?;
        let dir = self
            .upload_dir(upload_id)
            .ok_or_else(|| ApiError::internal("upload dir"))?;
        if parts.is_empty() {
            return Err(ApiError::invalid_entity("partETags is empty"));
        }
        let mut out = NamedTempFile::new_in(&self.tmp).with_path(&self.tmp)?;
        let mut buf = vec![0u8; 64 * 1024];
        for (part, etag) in parts {
            let path = dir.join(part.to_string());
            let mut f = std::fs::File::open(&path)
                .map_err(|_| ApiError::invalid_entity(format!("part {part} was not uploaded")))?;
            let mut hash = Sha256Stream::default();
            loop {
                let n = f.read(&mut buf).with_path(&path)?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                out.write_all(&buf[..n]).with_path(out.path())?;
            }
            if hash.finish_hex() != etag.trim_matches('"') {
                return Err(ApiError::invalid_entity(format!(
                    "the ETag of part {part} does not match the uploaded part"
                )));
            }
        }
        out.as_file().sync_all().with_path(out.path())?;
        let dest = self.path_for(filename);
        out.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
        std::fs::remove_dir_all(&dir).with_path(&dir)?;
        Ok(())
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

/// Streams the file at `path` in 64 KiB chunks.
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
        let mut buf = vec![0u8; 64 * 1024];
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
