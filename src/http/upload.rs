//! `targets upload` (reference/garage-sign.md §6.5): the S3 multipart flow, and the
//! `PUT uploads/<file>` fallback for servers that answer `not_implemented`.
//!
//! Files of any size are sent in constant memory: each part is read twice from disk
//! (once for its MD5, once as the streamed request body), never buffered whole.

use super::transport::{Replay, SMALL_BODY_CAP};
use super::{ReposerverClient, METADATA_CAP};
use crate::error::{Error, IoContext, Result};
use base64::Engine;
use indicatif::ProgressBar;
use md5::{Digest, Md5};
use reqwest::blocking::Body;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};
use serde::Deserialize;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// S3 allows at most 10 000 parts (the local server's storage takes the same).
pub const MAX_PARTS: u32 = 10_000;
const READ_BUF: usize = 64 << 10;

/// How a target was uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    /// S3 multipart upload in `parts` parts.
    Multipart { parts: u64 },
    /// `PUT uploads/<file>`; `redirected` when the body went to a `Location` URL.
    Direct { redirected: bool },
}

/// Whether an upload replaces a file the server already has for the target
/// (`force=true`, which the server needs to accept it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// Never: a 409 is an error (`targets upload`).
    Never,
    /// Always: the caller knows the file is its own (the target is published).
    Always,
    /// Only after a 409: a file left by an interrupted upload of an unpublished target.
    Leftover,
}

/// A byte progress bar for uploads (see [`crate::progress::bar`]).
pub fn progress_bar(len: u64) -> ProgressBar {
    crate::progress::bar(len, "uploading")
}

/// A target filename as URL path segments. The reposerver matches the rest of the
/// path, slashes included; empty, `.` and `..` segments are refused.
fn target_segments(filename: &str) -> Result<Vec<&str>> {
    crate::schema::TargetName::parse(filename)?;
    Ok(filename.split('/').collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Initiated {
    upload_id: String,
    part_size: u64,
}

#[derive(Deserialize)]
struct PartUrl {
    uri: String,
}

fn open_at(path: &Path, offset: u64) -> Result<File> {
    let mut f = File::open(path).with_path(path)?;
    f.seek(SeekFrom::Start(offset)).with_path(path)?;
    Ok(f)
}

/// base64(MD5) of `len` bytes at `offset`, for `Content-MD5`.
fn part_md5(path: &Path, offset: u64, len: u64) -> Result<String> {
    let mut r = open_at(path, offset)?.take(len);
    let mut buf = vec![0u8; READ_BUF];
    let mut h = Md5::new();
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).with_path(path)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    if n != len {
        return Err(Error::io(
            path,
            std::io::Error::other("the file became shorter during the upload"),
        ));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(h.finalize()))
}

fn is_azure(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    host.ends_with(".core.windows.net") || host.ends_with(".core.chinacloudapi.cn")
}

impl ReposerverClient {
    fn target_url(&self, prefix: &[&str], filename: &str) -> Result<Url> {
        let mut segs = prefix.to_vec();
        segs.extend(target_segments(filename)?);
        Ok(self.url(&segs))
    }

    fn upload_error(&self, method: Method, url: &Url, e: &super::ServerError) -> Error {
        let hint = match e.status {
            409 => "\na target with this name is already uploaded; choose another version",
            413 => "\nthe file is larger than the server accepts for uploads",
            _ => "",
        };
        self.http
            .http_error(&method, url, format!("{}{hint}", e.summary()))
    }

    /// Uploads `path` as target `filename`: S3 multipart, or `PUT uploads/<file>`
    /// when the server answers `not_implemented`. `progress` gets the file length and
    /// the bytes sent.
    pub fn upload_target(
        &self,
        filename: &str,
        path: &Path,
        progress: &ProgressBar,
    ) -> Result<UploadOutcome> {
        self.upload_target_replacing(filename, path, Replace::Never, progress)
    }

    /// After a 409 with [`Replace::Leftover`]: once more, replacing the file.
    fn replace_leftover(
        &self,
        filename: &str,
        path: &Path,
        progress: &ProgressBar,
    ) -> Result<UploadOutcome> {
        log::info!("the server already stores a file {filename} that no published target uses (an interrupted upload?); replacing it");
        self.upload_target_replacing(filename, path, Replace::Always, progress)
    }

    /// [`Self::upload_target`] for a publisher that owns `filename`, replacing the
    /// server's file (`force=true`) as `replace` says.
    pub fn upload_target_replacing(
        &self,
        filename: &str,
        path: &Path,
        replace: Replace,
        progress: &ProgressBar,
    ) -> Result<UploadOutcome> {
        let meta = std::fs::metadata(path).with_path(path)?;
        if !meta.is_file() {
            return Err(Error::invalid(
                path.display().to_string(),
                "is not a regular file",
            ));
        }
        let size = meta.len();
        progress.set_length(size);
        progress.set_position(0);

        let mut init = self.target_url(&["multipart", "initiate"], filename)?;
        init.query_pairs_mut()
            .append_pair("fileSize", &size.to_string());
        if replace == Replace::Always {
            init.query_pairs_mut().append_pair("force", "true");
        }
        let a = self
            .http
            .exchange(Method::POST, &init, Replay::Once, SMALL_BODY_CAP, &|rb| {
                Ok(rb)
            })?;
        if !a.status.is_success() {
            let e = a.server_error();
            if e.code() == Some("not_implemented") {
                log::info!(
                    "the server has no multipart uploads; uploading with PUT uploads/{filename}"
                );
                return self.upload_direct(filename, path, size, replace, progress);
            }
            if a.status.as_u16() == 409 && replace == Replace::Leftover {
                return self.replace_leftover(filename, path, progress);
            }
            return Err(self.upload_error(Method::POST, &init, &e));
        }
        let initiated: Initiated = serde_json::from_slice(&a.body).map_err(|e| {
            self.http.http_error(
                &Method::POST,
                &init,
                format!("the answer is not {{\"uploadId\",\"partSize\"}}: {e}"),
            )
        })?;
        let part_size = initiated.part_size;
        let parts = if size == 0 {
            1
        } else {
            size.div_ceil(part_size.max(1))
        };
        if part_size == 0 || parts > u64::from(MAX_PARTS) {
            return Err(self.http.http_error(
                &Method::POST,
                &init,
                format!("unusable partSize {part_size} for a file of {size} bytes"),
            ));
        }

        let mut etags = Vec::with_capacity(parts as usize);
        for part in 1..=parts {
            let offset = (part - 1) * part_size;
            let len = part_size.min(size - offset);
            let md5 = part_md5(path, offset, len)?;

            let mut url_req = self.target_url(&["multipart", "url"], filename)?;
            url_req
                .query_pairs_mut()
                .append_pair("part", &part.to_string())
                .append_pair("uploadId", &initiated.upload_id)
                .append_pair("md5", &md5)
                .append_pair("contentLength", &len.to_string());
            let a = self.http.exchange(
                Method::GET,
                &url_req,
                Replay::Idempotent,
                SMALL_BODY_CAP,
                &|rb| Ok(rb),
            )?;
            if !a.status.is_success() {
                return Err(self.upload_error(Method::GET, &url_req, &a.server_error()));
            }
            let target = serde_json::from_slice::<PartUrl>(&a.body)
                .ok()
                .and_then(|p| Url::parse(&p.uri).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    self.http.http_error(
                        &Method::GET,
                        &url_req,
                        "the answer is not {\"uri\": <http(s) URL>}",
                    )
                })?;

            let a = self.http.exchange(
                Method::PUT,
                &target,
                Replay::Idempotent,
                SMALL_BODY_CAP,
                &|rb| {
                    progress.set_position(offset);
                    let body = progress.wrap_read(open_at(path, offset)?.take(len));
                    Ok(rb
                        .header("Content-MD5", md5.as_str())
                        .timeout(self.http.upload_timeout)
                        .body(Body::sized(body, len)))
                },
            )?;
            if !a.status.is_success() {
                return Err(self.http.http_error(
                    &Method::PUT,
                    &target,
                    format!("part {part}/{parts}: {}", a.server_error().summary()),
                ));
            }
            let etag = a.header("etag").ok_or_else(|| {
                self.http.http_error(
                    &Method::PUT,
                    &target,
                    format!("part {part}/{parts}: no ETag in the answer"),
                )
            })?;
            etags.push(serde_json::json!({"part": part, "eTag": etag}));
            progress.set_position(offset + len);
        }

        let complete = self.target_url(&["multipart", "complete"], filename)?;
        let body = serde_json::to_vec(
            &serde_json::json!({"uploadId": initiated.upload_id, "partETags": etags}),
        )
        .map_err(|e| Error::Other(e.to_string()))?;
        let a = self.http.exchange(
            Method::PUT,
            &complete,
            Replay::Idempotent,
            SMALL_BODY_CAP,
            &|rb| {
                Ok(rb
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone()))
            },
        )?;
        if !a.status.is_success() {
            return Err(self.upload_error(Method::PUT, &complete, &a.server_error()));
        }
        Ok(UploadOutcome::Multipart { parts })
    }

    /// `PUT uploads/<file>` with the file as body; a redirect is followed by PUTting
    /// the body again to `Location` (uptane-sign's behaviour for non-Azure stores),
    /// without the bearer token unless `Location` is on the reposerver's origin.
    /// Sent once: these PUTs are not repeated after the body went out.
    fn upload_direct(
        &self,
        filename: &str,
        path: &Path,
        size: u64,
        replace: Replace,
        progress: &ProgressBar,
    ) -> Result<UploadOutcome> {
        let put = |url: &Url| {
            let build = |rb: reqwest::blocking::RequestBuilder| {
                progress.set_position(0);
                let body = progress.wrap_read(open_at(path, 0)?.take(size));
                let rb = rb
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .timeout(self.http.upload_timeout)
                    .body(Body::sized(body, size));
                Ok(if is_azure(url) {
                    rb.header("x-ms-blob-type", "BlockBlob")
                } else {
                    rb
                })
            };
            self.http
                .exchange(Method::PUT, url, Replay::Once, METADATA_CAP, &build)
        };
        let mut url = self.target_url(&["uploads"], filename)?;
        if replace == Replace::Always {
            url.query_pairs_mut().append_pair("force", "true");
        }
        let a = put(&url)?;
        if a.status.is_success() {
            return Ok(UploadOutcome::Direct { redirected: false });
        }
        if a.status.as_u16() == 409 && replace == Replace::Leftover {
            return self.replace_leftover(filename, path, progress);
        }
        if !a.status.is_redirection() {
            return Err(self.upload_error(Method::PUT, &url, &a.server_error()));
        }
        let location = self.http.redirect_target(&Method::PUT, &url, &a)?;
        let a = put(&location)?;
        if !a.status.is_success() {
            return Err(self.upload_error(Method::PUT, &location, &a.server_error()));
        }
        Ok(UploadOutcome::Direct { redirected: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames() {
        assert_eq!(target_segments("app-1.0").unwrap(), vec!["app-1.0"]);
        assert_eq!(target_segments("dir/app 1").unwrap(), vec!["dir", "app 1"]);
        for bad in ["", "a//b", "../x", "a/./b", "/abs", "x\n"] {
            assert!(target_segments(bad).is_err(), "{bad:?}");
        }
        assert!(target_segments(&"a".repeat(254)).is_err());
    }

    #[test]
    fn md5_of_a_region() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"xxhello worldyy").unwrap();
        // RFC 1321 style check: base64(md5("hello world")).
        assert_eq!(part_md5(&p, 2, 11).unwrap(), "XrY7u+Ae7tCTyyK7j1rNww==");
        assert!(part_md5(&p, 10, 11).is_err());
    }
}
