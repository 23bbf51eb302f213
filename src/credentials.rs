//! credentials.zip (reference/garage-sign.md §2) and the repository's config.json (§3).
//!
//! The archive is read fully into memory once, with limits that stop zip bombs, and
//! entries whose names would escape a directory are refused. Entries that hold secrets
//! (`targets.sec`, `client_auth.p12`, `treehub.json`) stay in zeroizing buffers.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::keys::{PrivateKey, PublicKey};
use crate::metadata::SignedPayload;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const MAX_ENTRY: u64 = 16 << 20;
const MAX_TOTAL: u64 = 64 << 20;
const MAX_ENTRIES: usize = 1000;

/// The `oauth2` object of treehub.json / the `auth` object of config.json.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct OAuth2Config {
    pub server: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default = "default_scope")]
    pub scope: String,
}

impl OAuth2Config {
    /// The object as treehub.json and config.json spell it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "server": self.server,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scope": self.scope,
        })
    }
}

fn default_scope() -> String {
    "none".into()
}

impl std::fmt::Debug for OAuth2Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the client secret, not even at debug level.
        f.debug_struct("OAuth2Config")
            .field("server", &self.server)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Drop for OAuth2Config {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.client_secret);
    }
}

/// How ota-sign authenticates to the reposerver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthConfig {
    None,
    OAuth2(OAuth2Config),
    /// Paths relative to the repository directory.
    MutualTls {
        cert_path: String,
        server_cert_path: Option<String>,
    },
}

impl AuthConfig {
    /// config.json's `auth` value: the OAuth object, `{"certPath","serverCertPath"}` or null.
    pub fn to_json(&self) -> Value {
        match self {
            AuthConfig::None => Value::Null,
            AuthConfig::OAuth2(o) => o.to_json(),
            AuthConfig::MutualTls {
                cert_path,
                server_cert_path,
            } => {
                serde_json::json!({"certPath": cert_path, "serverCertPath": server_cert_path})
            }
        }
    }

    /// Tries OAuth first, then mutual TLS, as garage-sign's decoder.
    pub fn from_json(v: &Value) -> Result<Self> {
        if v.is_null() {
            return Ok(AuthConfig::None);
        }
        if let Ok(o) = serde_json::from_value::<OAuth2Config>(v.clone()) {
            return Ok(AuthConfig::OAuth2(o));
        }
        if let Some(cert) = v.get("certPath").and_then(Value::as_str) {
            return Ok(AuthConfig::MutualTls {
                cert_path: cert.to_string(),
                server_cert_path: v
                    .get("serverCertPath")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
        Err(Error::invalid(
            "config.json: auth",
            "expected an oauth2 object (server, client_id, client_secret), {\"certPath\": …} or null",
        ))
    }
}

/// treehub.json: garage-sign reads `no_auth`, `oauth2` and `ostree` and drops the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreehubConfig {
    pub oauth2: Option<OAuth2Config>,
    pub no_auth: bool,
    pub ostree: Value,
}

impl TreehubConfig {
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(what, format!("invalid JSON: {e}")))?;
        let oauth2 = match v.get("oauth2") {
            None | Some(Value::Null) => None,
            Some(o) => Some(
                serde_json::from_value::<OAuth2Config>(o.clone()).map_err(|e| {
                    Error::invalid(
                        format!("{what}: oauth2"),
                        format!("{e} (needs server, client_id and client_secret)"),
                    )
                })?,
            ),
        };
        let no_auth = match v.get("no_auth") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(Error::invalid(
                    format!("{what}: no_auth"),
                    "must be true or false",
                ))
            }
        };
        Ok(TreehubConfig {
            oauth2,
            no_auth,
            ostree: v
                .get("ostree")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({})),
        })
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "oauth2": self.oauth2.as_ref().map(OAuth2Config::to_json),
            "no_auth": self.no_auth,
            "ostree": self.ostree,
        })
    }
}

/// A credentials.zip read into memory: the archive's bytes (kept, so that `init`
/// copies exactly what it checked) and its entries, all in zeroizing buffers.
pub struct Credentials {
    path: PathBuf,
    raw: Zeroizing<Vec<u8>>,
    entries: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Entry names only: the contents are secrets.
        f.debug_struct("Credentials")
            .field("path", &self.path)
            .field(
                "entries",
                &self.entries.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads and checks the archive at `path` (size caps, safe names).
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_bytes(fsutil::read_secret(path)?, path)
    }

    /// Checks an archive already in memory; `path` only names it in errors.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>, path: &Path) -> Result<Self> {
        let entries = Self::unpack(&bytes, path)?;
        Ok(Credentials {
            path: path.to_path_buf(),
            raw: bytes,
            entries,
        })
    }

    /// The archive exactly as read and checked.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    fn unpack(bytes: &[u8], path: &Path) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>> {
        let what = path.display().to_string();
        let bad = |m: String| Error::invalid(what.clone(), m);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| bad(format!("not a readable zip archive: {e}")))?;
        // The zip reader keeps one entry per name; the end-of-central-directory record
        // says how many there were.
        if declared_entries(bytes).is_some_and(|n| n > archive.len()) {
            return Err(bad(
                "has entries that appear more than once; which one counts is ambiguous".into(),
            ));
        }
        if archive.len() > MAX_ENTRIES {
            return Err(bad(format!(
                "has {} entries, more than credentials.zip ever holds",
                archive.len()
            )));
        }
        let mut entries = Vec::new();
        let mut total = 0u64;
        for i in 0..archive.len() {
            let mut f = archive
                .by_index(i)
                .map_err(|e| bad(format!("entry {i}: {e}")))?;
            let name = f.name().to_string();
            if f.enclosed_name().is_none() || name.starts_with('/') || name.contains('\\') {
                return Err(bad(format!(
                    "entry {name:?} has an unsafe path (absolute, or leaving the archive with ..)"
                )));
            }
            if f.is_symlink() {
                return Err(bad(format!(
                    "entry {name:?} is a symbolic link; credentials.zip holds plain files only"
                )));
            }
            if f.is_dir() {
                continue;
            }
            // Sized up front (within the cap) so that no reallocation leaves a copy.
            let mut data = Zeroizing::new(Vec::with_capacity(f.size().min(MAX_ENTRY) as usize + 1));
            (&mut f)
                .take(MAX_ENTRY + 1)
                .read_to_end(&mut data)
                .map_err(|e| bad(format!("entry {name:?}: {e}")))?;
            if data.len() as u64 > MAX_ENTRY {
                return Err(bad(format!(
                    "entry {name:?} is larger than {} MiB",
                    MAX_ENTRY >> 20
                )));
            }
            total += data.len() as u64;
            if total > MAX_TOTAL {
                return Err(bad(format!("unpacks to more than {} MiB", MAX_TOTAL >> 20)));
            }
            entries.push((name, data));
        }
        Ok(entries)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entry(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_slice())
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, d)| (n.as_str(), d.as_slice()))
    }

    fn what(&self, entry: &str) -> String {
        format!("{}: {entry}", self.path.display())
    }

    pub fn treehub(&self) -> Result<TreehubConfig> {
        let data = self.entry("treehub.json").ok_or_else(|| {
            Error::invalid(
                self.path.display().to_string(),
                "Missing file from credentials.zip: treehub.json",
            )
        })?;
        TreehubConfig::parse(data, &self.what("treehub.json"))
    }

    /// `tufrepo.url` (or `api_gateway.url` for director repos), trimmed, without a
    /// trailing slash (garage-sign would otherwise request `//api/...`).
    pub fn server_url(&self, entry: &str) -> Result<String> {
        let data = self.entry(entry).ok_or_else(|| {
            Error::invalid(
                self.path.display().to_string(),
                format!("Missing file from credentials.zip: {entry}"),
            )
        })?;
        let url = std::str::from_utf8(data)
            .map_err(|_| Error::invalid(self.what(entry), "is not UTF-8 text"))?
            .trim()
            .trim_end_matches('/')
            .to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::invalid(
                self.what(entry),
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        Ok(url)
    }

    /// Auth as garage-sign selects it: client_auth.p12 → mutual TLS; no_auth → none;
    /// otherwise oauth2 is required.
    pub fn auth(&self) -> Result<AuthConfig> {
        if self.entry("client_auth.p12").is_some() {
            return Ok(AuthConfig::MutualTls {
                cert_path: "client_auth.p12".into(),
                server_cert_path: self.entry("server.p12").map(|_| "server.p12".into()),
            });
        }
        let treehub = self.treehub()?;
        if treehub.no_auth {
            return Ok(AuthConfig::None);
        }
        treehub.oauth2.map(AuthConfig::OAuth2).ok_or_else(|| {
            Error::invalid(
                self.what("treehub.json"),
                "auth required with no_auth: false (no oauth2 object and no client_auth.p12)",
            )
        })
    }

    /// `root.json`, parsed but not checked.
    pub fn root(&self) -> Result<Option<SignedPayload>> {
        self.entry("root.json")
            .map(|d| SignedPayload::parse(d, &self.what("root.json")))
            .transpose()
    }

    /// `root.json`, which must be signed by a threshold of its own root keys: it becomes
    /// the trust anchor of every later pull. `None` only when the entry is absent.
    pub fn verified_root(&self) -> Result<Option<SignedPayload>> {
        let Some(root) = self.root()? else {
            return Ok(None);
        };
        crate::verify::verify_self_signed_root(&root, &self.what("root.json"))?;
        Ok(Some(root))
    }

    /// `targets.pub` + `targets.sec`, checked to be one usable pair. `None` when both
    /// are absent; one without the other, an unreadable entry, a weak or unknown key
    /// type are [`Error::Invalid`]; a pair that does not match is an [`Error::Key`].
    pub fn targets_key(&self) -> Result<Option<PrivateKey>> {
        let (public, secret) = match (self.entry("targets.pub"), self.entry("targets.sec")) {
            (None, None) => return Ok(None),
            (Some(p), Some(s)) => (p, s),
            // A token-backed zip names its key in targets.pkcs11 (crate::keyref).
            (Some(_), None) if self.entry(crate::keyref::TOKEN_ENTRY).is_some() => return Ok(None),
            (Some(_), None) => {
                return Err(Error::invalid(
                    self.what("targets.pub"),
                    "has no targets.sec beside it: the archive's key pair is incomplete",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    self.what("targets.sec"),
                    "has no targets.pub beside it: the archive's key pair is incomplete",
                ))
            }
        };
        let public_json: Value = serde_json::from_slice(public)
            .map_err(|e| Error::invalid(self.what("targets.pub"), format!("invalid JSON: {e}")))?;
        let public = PublicKey::from_json(&public_json, false)
            .map_err(|e| Error::invalid(self.what("targets.pub"), e.to_string()))?;
        let secret_value: Value = serde_json::from_slice(secret)
            .map_err(|_| Error::invalid(self.what("targets.sec"), "invalid JSON"))?;
        let key = PrivateKey::from_json(&secret_value, None);
        wipe(secret_value);
        let key = key.map_err(|e| Error::invalid(self.what("targets.sec"), e.to_string()))?;
        if key.public() != &public {
            return Err(Error::key(
                self.what("targets.sec"),
                format!(
                    "does not belong to targets.pub ({} vs {}): the archive's key pair is broken",
                    key.key_id(),
                    public.key_id()
                ),
            ));
        }
        Ok(Some(key))
    }

    /// meta-updater's and aktualizr's `CanSignOffline()`: all four entries present.
    pub fn can_sign_offline(&self) -> bool {
        ["root.json", "targets.pub", "targets.sec", "tufrepo.url"]
            .iter()
            .all(|e| self.entry(e).is_some())
    }
}

/// The entry count of the end-of-central-directory record (`None` if not found, or
/// deferred to a ZIP64 record).
fn declared_entries(bytes: &[u8]) -> Option<usize> {
    const EOCD: &[u8] = b"PK\x05\x06";
    // The record is 22 bytes plus a comment of at most 65535 bytes, at the very end.
    let from = bytes.len().saturating_sub(22 + 0xffff);
    let at = (from..=bytes.len().checked_sub(22)?)
        .rev()
        .find(|&i| bytes[i..].starts_with(EOCD))?;
    let total = u16::from_le_bytes([bytes[at + 10], bytes[at + 11]]);
    (total != 0xffff).then_some(total as usize)
}

/// Overwrites the strings of a parsed secret before it is dropped.
pub(crate) fn wipe(mut v: Value) {
    fn walk(v: &mut Value) {
        match v {
            Value::String(s) => zeroize::Zeroize::zeroize(s),
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::Object(m) => m.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v)
}

/// Writes a zip (deflate) atomically, 0600: credentials archives hold secrets.
pub fn write_zip(path: &Path, entries: &[(&str, &[u8])]) -> Result<()> {
    let mut buf = Zeroizing::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(&mut *buf));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o600);
        for (name, data) in entries {
            w.start_file(*name, opts)
                .and_then(|_| w.write_all(data).map_err(Into::into))
                .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
        }
        w.finish()
            .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    }
    fsutil::write_atomic(path, &buf, fsutil::PRIVATE_FILE)
}

/// `<repo>/config.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoConfig {
    pub reposerver: String,
    pub auth: AuthConfig,
    pub treehub: TreehubConfig,
    pub director: bool,
}

impl RepoConfig {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "reposerver": self.reposerver,
            "auth": self.auth.to_json(),
            "treehub": self.treehub.to_json(),
            "repoServerType": if self.director { "Director" } else { "RepoServer" },
        })
    }

    pub fn from_json(v: &Value, what: &str) -> Result<Self> {
        let reposerver = v
            .get("reposerver")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::invalid(format!("{what}: reposerver"), "missing or not a string")
            })?
            .trim_end_matches('/')
            .to_string();
        let auth = AuthConfig::from_json(v.get("auth").unwrap_or(&Value::Null))?;
        let treehub = match v.get("treehub") {
            Some(t) if t.is_object() => {
                TreehubConfig::parse(t.to_string().as_bytes(), &format!("{what}: treehub"))?
            }
            _ => TreehubConfig {
                oauth2: None,
                no_auth: false,
                ostree: serde_json::json!({}),
            },
        };
        let director = match v.get("repoServerType").and_then(Value::as_str) {
            None | Some("RepoServer") => false,
            Some("Director") => true,
            Some(other) => {
                return Err(Error::invalid(
                    format!("{what}: repoServerType"),
                    format!("unknown value {other:?}"),
                ))
            }
        };
        Ok(RepoConfig {
            reposerver,
            auth,
            treehub,
            director,
        })
    }
}
