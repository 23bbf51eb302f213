//! The repository as a device sees it: aktualizr's acceptance rules for image-repository
//! metadata (reference/reposerver.md §6.2, §6.5, §7), applied to everything a device
//! would download, collecting every finding instead of stopping at the first.
//!
//! The walk is aktualizr's: the root chain from `1.root.json` (or a trusted root)
//! upward, then timestamp → snapshot → targets → delegations. Signature rules (method
//! whitelist, duplicate key ids, thresholds) and the root chain walk are
//! [`TrustedRoot`]'s and [`super::walk_root_chain`]'s, so the client and this check
//! agree by construction. A finding names the role, the version and the rule; an error means
//! the check could not be made (server down, unreadable input).

use super::TrustedRoot;
use crate::canonical::{check_interop, CanonicalJson};
use crate::crypto::{sha256_hex, sha512_hex};
use crate::error::{Error, Result};
use crate::metadata::SignedPayload;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

/// aktualizr's download limit for a root (`kMaxRootSize`).
pub const MAX_ROOT_SIZE: usize = 64 * 1024;
/// `kMaxTimestampSize`.
pub const MAX_TIMESTAMP_SIZE: usize = 64 * 1024;
/// `kMaxSnapshotSize`.
pub const MAX_SNAPSHOT_SIZE: usize = 64 * 1024;
/// `kMaxImageTargetsSize` (also for delegations).
pub const MAX_TARGETS_SIZE: usize = 8 * 1024 * 1024;
/// `kDelegationsMaxDepth`.
pub const MAX_DELEGATION_DEPTH: usize = 5;
/// Bound on the `N.root.json` walk against a hostile server.
const MAX_ROOT_STEPS: u64 = 10_000;
/// aktualizr ignores this placeholder URI.
const PLACEHOLDER_URI: &str = "https://example.com/";

/// Where the metadata comes from: a server or a mirror directory.
pub trait Source {
    /// The bytes at `path` (relative to the repository URL), `None` when absent.
    fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>>;
    /// Whether a device can download `targets/<filename>`.
    fn downloadable(&self, filename: &str) -> Result<bool>;
}

/// A server, through the client.
impl Source for crate::http::ReposerverClient {
    fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.get_optional(path)
    }
    fn downloadable(&self, filename: &str) -> Result<bool> {
        self.target_downloadable(filename)
    }
}

/// A directory laid out as the repository URL (`root.json`, `1.root.json`,
/// `timestamp.json`, …, `targets/<file>`).
pub struct DirSource(pub PathBuf);

impl Source for DirSource {
    fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let p = self.0.join(path);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(p, e)),
        }
    }
    fn downloadable(&self, filename: &str) -> Result<bool> {
        Ok(self.0.join("targets").join(filename).is_file())
    }
}

/// One reason a device would refuse the repository.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// The role: `root`, `timestamp`, `snapshot`, `targets` or the delegation's name.
    pub role: String,
    /// The version of the document, when it has one.
    pub version: Option<u64>,
    /// A short rule name, e.g. `expired`, `rollback`, `hash`, `hardware-ids`.
    pub rule: &'static str,
    /// What is wrong, and where.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(v) => write!(f, "{} v{}: [{}] {}", self.role, v, self.rule, self.message),
            None => write!(f, "{}: [{}] {}", self.role, self.rule, self.message),
        }
    }
}

/// What was found for one role document.
#[derive(Clone, Debug, Serialize)]
pub struct RoleState {
    /// `root`, `timestamp`, `snapshot`, `targets` or the delegation's name.
    pub role: String,
    /// `signed.version`, when it is an integer.
    pub version: Option<u64>,
    /// `signed.expires` as written.
    pub expires: Option<String>,
    /// Valid signatures by the role's keys (0 when they do not verify).
    pub valid_signatures: usize,
    pub threshold: i64,
    /// The key ids the trusting document lists for the role.
    pub key_ids: Vec<String>,
    /// Canonical size in bytes.
    pub size: usize,
    /// The most a device downloads.
    pub size_limit: usize,
    /// Number of targets (targets and delegations only).
    pub targets: Option<usize>,
}

/// One target as a device would match it.
#[derive(Clone, Debug, Serialize)]
pub struct TargetView {
    /// The key in `targets`.
    pub filename: String,
    /// `targets` or the delegation that lists it.
    pub role: String,
    /// `custom.hardwareIds`.
    pub hardware_ids: Vec<String>,
    /// `length`, when it is a non-negative integer.
    pub length: Option<u64>,
    /// `BINARY` or `OSTREE`, as aktualizr decides it.
    pub format: &'static str,
}

/// The outcome: accepted when there are no findings.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Every reason a device would refuse the repository.
    pub findings: Vec<Finding>,
    /// A row per role document that was read.
    pub roles: Vec<RoleState>,
    /// Every target of targets.json and the delegations.
    pub targets: Vec<TargetView>,
}

impl Report {
    /// A device would accept the repository: no findings.
    pub fn accepted(&self) -> bool {
        self.findings.is_empty()
    }

    /// The targets a device with `hardware_id` could install (none when rejected).
    pub fn installable(&self, hardware_id: &str) -> Vec<&TargetView> {
        if !self.accepted() {
            return vec![];
        }
        self.targets
            .iter()
            .filter(|t| t.hardware_ids.iter().any(|h| h == hardware_id))
            .collect()
    }

    /// The row of role `name` (`root`, `targets`, a delegation, ...).
    pub fn role(&self, name: &str) -> Option<&RoleState> {
        self.roles.iter().find(|r| r.role == name)
    }
}

/// Checks the repository behind `source` as of `at`; `trusted_root` (the bytes of a
/// root.json) replaces `1.root.json` as the trust anchor.
pub fn check(
    source: &dyn Source,
    trusted_root: Option<&[u8]>,
    at: DateTime<Utc>,
) -> Result<Report> {
    let mut c = Checker {
        source,
        at,
        report: Report::default(),
    };
    if let Some(root) = c.root_chain(trusted_root)? {
        c.top_level(&root)?;
    }
    Ok(c.report)
}

/// A fetched, parsed document.
struct Doc {
    label: String,
    value: Value,
    doc: SignedPayload,
    version: Option<u64>,
    expires: Option<DateTime<Utc>>,
    expires_text: Option<String>,
    size: usize,
    size_limit: usize,
}

impl Doc {
    fn meta(&self, entry: &str) -> Option<&Value> {
        self.doc.signed.get("meta").and_then(|m| m.get(entry))
    }
}

struct Checker<'a> {
    source: &'a dyn Source,
    at: DateTime<Utc>,
    report: Report,
}

impl Checker<'_> {
    fn find(&mut self, role: &str, version: Option<u64>, rule: &'static str, message: String) {
        self.report.findings.push(Finding {
            role: role.to_string(),
            version,
            rule,
            message,
        });
    }

    /// Fetches and parses `path` (or takes `given`), applying the rules every role
    /// shares: size limit, envelope, `_type`, integer version, 20-character UTC
    /// `expires`, one canonical form for aktualizr and ota-tuf.
    fn load(
        &mut self,
        label: &str,
        path: &str,
        expected_type: &str,
        size_limit: usize,
        given: Option<&[u8]>,
    ) -> Result<Option<Doc>> {
        let bytes = match given {
            Some(b) => b.to_vec(),
            None => match self.source.fetch(path)? {
                Some(b) => b,
                None => {
                    let msg = format!("{path} is not on the server; a device cannot update");
                    self.find(label, None, "missing", msg);
                    return Ok(None);
                }
            },
        };
        if bytes.len() > size_limit {
            let msg = format!(
                "{path} is {} bytes, over the {size_limit} bytes a device downloads",
                bytes.len()
            );
            self.find(label, None, "size-limit", msg);
            return Ok(None);
        }
        let parsed = serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| format!("{path} is not JSON: {e}"))
            .and_then(|v| {
                serde_json::from_value::<SignedPayload>(v.clone())
                    .map(|d| (v, d))
                    .map_err(|e| format!("{path} is not a signed document ({{\"signatures\":[…],\"signed\":{{…}}}}): {e}"))
            });
        match parsed {
            Ok((value, doc)) => Ok(Some(self.doc_rules(
                label,
                path,
                expected_type,
                size_limit,
                value,
                doc,
            ))),
            Err(msg) => {
                self.find(label, None, "format", msg);
                Ok(None)
            }
        }
    }

    /// The rules of [`Self::load`] that look inside the document.
    fn doc_rules(
        &mut self,
        label: &str,
        path: &str,
        expected_type: &str,
        size_limit: usize,
        value: Value,
        doc: SignedPayload,
    ) -> Doc {
        let field = |k: &str| doc.signed.get(k).and_then(Value::as_str);
        let version = doc.signed.get("version").and_then(Value::as_u64);
        if version.is_none() {
            let msg = format!("{path}: signed.version is missing or not a non-negative integer");
            self.find(label, None, "version", msg);
        }
        let t = field("_type").unwrap_or("");
        let type_ok = if expected_type == "Root" {
            t.eq_ignore_ascii_case("root")
        } else {
            t == expected_type
        };
        if !type_ok {
            let msg = format!("_type is {t:?}; a device requires exactly {expected_type:?}");
            self.find(label, version, "type", msg);
        }
        let expires_text = field("expires").map(str::to_string);
        let expires = expires_text.as_deref().and_then(parse_timestamp);
        if expires.is_none() {
            self.find(label, version, "timestamp-format", format!(
                "expires {:?} is not exactly YYYY-MM-DDTHH:MM:SSZ (20 characters, UTC); a device rejects it as an invalid timestamp",
                expires_text.as_deref().unwrap_or("(missing)")
            ));
        }
        if let Err(e) = check_interop(&value, path) {
            self.find(label, version, "canonical-form", e.to_string());
        }
        Doc {
            label: label.to_string(),
            size: CanonicalJson::of(&value).as_bytes().len(),
            value,
            doc,
            version,
            expires,
            expires_text,
            size_limit,
        }
    }

    fn expiry(&mut self, d: &Doc) {
        if let Some(e) = d.expires {
            if e <= self.at {
                let label = d.label.clone();
                self.find(
                    &label,
                    d.version,
                    "expired",
                    format!(
                        "expired at {} (judged as of {})",
                        d.expires_text.as_deref().unwrap_or(""),
                        self.at.format("%Y-%m-%dT%H:%M:%SZ")
                    ),
                );
            }
        }
    }

    /// Signatures of `d` by `role`'s keys in `trusting`; records the role's row.
    fn signatures(&mut self, d: &Doc, trusting: &TrustedRoot, role: &str, targets: Option<usize>) {
        let valid = match trusting.check_signatures(role, &d.doc) {
            Ok(n) => n,
            Err((rule, msg)) => {
                let label = d.label.clone();
                self.find(&label, d.version, rule, msg);
                0
            }
        };
        self.report.roles.push(RoleState {
            role: d.label.clone(),
            version: d.version,
            expires: d.expires_text.clone(),
            valid_signatures: valid,
            threshold: trusting.threshold(role),
            key_ids: trusting.role_key_ids(role),
            size: d.size,
            size_limit: d.size_limit,
            targets,
        });
    }

    /// The root chain; `None` when no root can be trusted.
    fn root_chain(&mut self, trusted_root: Option<&[u8]>) -> Result<Option<TrustedRoot>> {
        let Some(first) = self.load("root", "1.root.json", "Root", MAX_ROOT_SIZE, trusted_root)?
        else {
            return Ok(None);
        };
        self.key_types(&first);
        let anchor = match TrustedRoot::from_signed(&first.doc.signed, "root") {
            Ok(r) => r,
            Err(e) => {
                self.find("root", first.version, "format", e.to_string());
                return Ok(None);
            }
        };
        if let Err((rule, msg)) = anchor.check_signatures("root", &first.doc) {
            let msg = format!("the trusted root is not signed by its own root keys: {msg}");
            self.find("root", first.version, rule, msg);
            return Ok(None);
        }
        // The walk and its rule are the client's (`walk_root_chain`); each new root also
        // goes through the rules every document gets.
        let anchor_doc = first.doc.clone();
        let mut docs = vec![first];
        let mut unreadable = false;
        let walked = super::walk_root_chain(&anchor_doc, "root", MAX_ROOT_STEPS, |v| {
            let path = format!("{v}.root.json");
            let Some(bytes) = self.source.fetch(&path)? else {
                return Ok(None);
            };
            match self.load("root", &path, "Root", MAX_ROOT_SIZE, Some(&bytes))? {
                Some(d) => {
                    self.key_types(&d);
                    let doc = d.doc.clone();
                    docs.push(d);
                    Ok(Some(doc))
                }
                None => {
                    unreadable = true;
                    Err(Error::Other(format!("{path} is unreadable")))
                }
            }
        });
        match walked {
            Ok(_) => {}
            Err(_) if unreadable => return Ok(None),
            Err(e @ Error::Verification { .. }) => {
                let last = docs.last().and_then(|d| d.version).unwrap_or(1);
                self.find("root", Some(last), "root-chain", format!(
                    "{e}; a device that trusts the root before it stops here and refuses every update"
                ));
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let Some(latest) = docs.pop() else {
            return Ok(None);
        };
        let trusted = TrustedRoot::from_signed(&latest.doc.signed, "root")?;
        self.expiry(&latest);
        self.signatures(&latest, &trusted, "root", None);
        Ok(Some(trusted))
    }

    /// aktualizr refuses a whole root with a key type other than RSA or Ed25519.
    fn key_types(&mut self, d: &Doc) {
        let keys = d.doc.signed.get("keys").and_then(Value::as_object);
        for (id, k) in keys.into_iter().flatten() {
            let t = k.get("keytype").and_then(Value::as_str).unwrap_or("");
            if !matches!(t.to_ascii_lowercase().as_str(), "rsa" | "ed25519") {
                let label = d.label.clone();
                self.find(&label, d.version, "key-type", format!("key {id} has keytype {t:?}; a device accepts only RSA and ED25519 and rejects the whole root"));
            }
        }
    }

    fn top_level(&mut self, root: &TrustedRoot) -> Result<()> {
        let Some(snap) = self.timestamp_and_snapshot(root)? else {
            return Ok(());
        };
        let Some(targets) =
            self.load("targets", "targets.json", "Targets", MAX_TARGETS_SIZE, None)?
        else {
            return Ok(());
        };
        let metas = snap
            .doc
            .signed
            .get("meta")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        match metas.get("targets.json") {
            Some(m) => {
                self.hash_link(&snap, m, &targets, false);
                self.version_link(&describe(&snap), m, &targets);
            }
            None => {
                let msg = "meta has no \"targets.json\" entry".to_string();
                self.find("snapshot", snap.version, "meta", msg);
            }
        }
        self.signatures(&targets, root, "targets", target_count(&targets));
        self.expiry(&targets);
        self.items(&targets)?;
        self.delegations(&targets, (&describe(&snap), &metas), 1)
    }

    /// timestamp.json, then the snapshot.json it names; the snapshot when both load.
    fn timestamp_and_snapshot(&mut self, root: &TrustedRoot) -> Result<Option<Doc>> {
        let ts_path = "timestamp.json";
        let Some(ts) = self.load("timestamp", ts_path, "Timestamp", MAX_TIMESTAMP_SIZE, None)?
        else {
            return Ok(None);
        };
        self.signatures(&ts, root, "timestamp", None);
        self.expiry(&ts);
        let snap_meta = match ts.meta("snapshot.json").cloned() {
            Some(m)
                if m.get("hashes").is_some_and(Value::is_object)
                    && m.get("length").is_some_and(Value::is_u64)
                    && m.get("version").is_some_and(Value::is_u64) =>
            {
                m
            }
            _ => {
                self.find("timestamp", ts.version, "meta", "meta[\"snapshot.json\"] must have a hashes object and integer length and version".into());
                return Ok(None);
            }
        };
        let snap_path = "snapshot.json";
        let Some(snap) = self.load("snapshot", snap_path, "Snapshot", MAX_SNAPSHOT_SIZE, None)?
        else {
            return Ok(None);
        };
        self.hash_link(&ts, &snap_meta, &snap, true);
        self.signatures(&snap, root, "snapshot", None);
        self.version_link(&describe(&ts), &snap_meta, &snap);
        let metas = snap.doc.signed.get("meta").and_then(Value::as_object);
        let unversioned: Vec<String> = metas
            .into_iter()
            .flatten()
            .filter(|(_, m)| !m.get("version").is_some_and(Value::is_u64))
            .map(|(name, _)| name.clone())
            .collect();
        for name in unversioned {
            let msg = format!("meta[{name:?}] has no integer version");
            self.find("snapshot", snap.version, "meta", msg);
        }
        self.expiry(&snap);
        Ok(Some(snap))
    }

    /// `to`'s canonical form matches the hashes `from` records (sha256/sha512).
    fn hash_link(&mut self, from: &Doc, meta: &Value, to: &Doc, required: bool) {
        let from_name = describe(from);
        let canonical = CanonicalJson::of(&to.value);
        let hashes = meta.get("hashes").and_then(Value::as_object);
        let mut checked = 0;
        for (method, expected) in hashes.into_iter().flatten() {
            let actual = match method.as_str() {
                "sha256" => sha256_hex(canonical.as_bytes()),
                "sha512" => sha512_hex(canonical.as_bytes()),
                _ => continue,
            };
            checked += 1;
            if expected.as_str().map(str::to_ascii_lowercase) != Some(actual.clone()) {
                let label = to.label.clone();
                self.find(&label, to.version, "hash", format!(
                    "{from_name} records {method} {expected} for it, but its canonical form hashes to {actual}"
                ));
            }
        }
        if checked == 0 && required {
            let label = from.label.clone();
            self.find(
                &label,
                from.version,
                "hash",
                format!("records no sha256 or sha512 hash of {}", to.label),
            );
        }
    }

    /// `to`'s version is the one `from` names: lower is a rollback.
    fn version_link(&mut self, from: &str, meta: &Value, to: &Doc) {
        let (Some(expected), Some(actual)) =
            (meta.get("version").and_then(Value::as_u64), to.version)
        else {
            return;
        };
        let label = to.label.clone();
        let named = format!("{from} names version {expected}");
        if actual < expected {
            self.find(
                &label,
                Some(actual),
                "rollback",
                format!("{named}; the served version {actual} is older (rolled back)"),
            );
        } else if actual != expected {
            self.find(
                &label,
                Some(actual),
                "version-mismatch",
                format!("{named}; the served version is {actual}"),
            );
        }
    }

    /// Every target: hashes and length well-formed, hardwareIds present, BINARY
    /// targets downloadable.
    fn items(&mut self, d: &Doc) -> Result<()> {
        let label = d.label.clone();
        let Some(targets) = d.doc.signed.get("targets").and_then(Value::as_object) else {
            let msg = "signed.targets is missing or not an object".to_string();
            self.find(&label, d.version, "format", msg);
            return Ok(());
        };
        for (name, item) in targets {
            let view = self.item(&label, d.version, name, item)?;
            self.report.targets.push(view);
        }
        Ok(())
    }

    /// One target of `label` v`version`.
    fn item(
        &mut self,
        label: &str,
        version: Option<u64>,
        name: &str,
        item: &Value,
    ) -> Result<TargetView> {
        for problem in hash_problems(item.get("hashes")) {
            self.find(
                label,
                version,
                "target-hashes",
                format!("target {name}: {problem}"),
            );
        }
        let length = item.get("length").and_then(Value::as_u64);
        if length.is_none() {
            let msg = format!("target {name}: length is missing or not a non-negative integer");
            self.find(label, version, "target-length", msg);
        }
        let custom = |k: &str| item.get("custom").and_then(|c| c.get(k));
        let hw: Option<Vec<String>> = custom("hardwareIds")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|h| h.as_str().map(str::to_string)).collect());
        let hardware_ids = match hw {
            Some(h) if !h.is_empty() => h,
            _ => {
                self.find(label, version, "hardware-ids", format!(
                    "target {name} has no non-empty custom.hardwareIds; no device can match it and installs are refused (TargetMismatch)"
                ));
                vec![]
            }
        };
        let format = match custom("targetFormat").and_then(Value::as_str) {
            Some(f) if f.eq_ignore_ascii_case("OSTREE") => "OSTREE",
            Some(_) => "BINARY",
            None if length == Some(0) => "OSTREE",
            None => "BINARY",
        };
        if format == "BINARY" {
            let uri = custom("uri").and_then(Value::as_str);
            let has_uri = uri.is_some_and(|u| !u.is_empty() && u != PLACEHOLDER_URI);
            if !has_uri && !self.source.downloadable(name)? {
                self.find(label, version, "download", format!(
                    "BINARY target {name} has no custom.uri and the server does not have targets/{name}: a device cannot fetch it and reports a misleading hash mismatch. Upload it (publish --upload, targets upload) or give its URL"
                ));
            }
        }
        Ok(TargetView {
            filename: name.to_string(),
            role: label.to_string(),
            hardware_ids,
            length,
            format,
        })
    }

    fn delegations(
        &mut self,
        parent: &Doc,
        snapshot: (&str, &serde_json::Map<String, Value>),
        depth: usize,
    ) -> Result<()> {
        let Some(block) = parent.doc.signed.get("delegations") else {
            return Ok(());
        };
        let names: Vec<String> = block
            .get("roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        if depth > MAX_DELEGATION_DEPTH && !names.is_empty() {
            let label = parent.label.clone();
            self.find(
                &label,
                parent.version,
                "delegation-depth",
                format!(
                    "delegations nest deeper than {MAX_DELEGATION_DEPTH}; a device ignores them"
                ),
            );
            return Ok(());
        }
        for name in names {
            let trusting = match TrustedRoot::for_delegation(block, &name, &parent.label) {
                Ok(t) => t,
                Err(e) => {
                    let label = parent.label.clone();
                    self.find(&label, parent.version, "delegation-keys", e.to_string());
                    continue;
                }
            };
            let path = format!("delegations/{name}.json");
            let Some(d) = self.load(&name, &path, "Targets", MAX_TARGETS_SIZE, None)? else {
                continue;
            };
            if let Some(m) = snapshot.1.get(&format!("{name}.json")) {
                self.version_link(snapshot.0, m, &d);
            }
            self.signatures(&d, &trusting, &name, target_count(&d));
            self.expiry(&d);
            self.items(&d)?;
            self.delegations(&d, snapshot, depth + 1)?;
        }
        Ok(())
    }
}

/// How many targets a targets document lists.
fn target_count(d: &Doc) -> Option<usize> {
    d.doc
        .signed
        .get("targets")
        .and_then(Value::as_object)
        .map(|t| t.len())
}

/// `snapshot v4`, as findings name a document.
fn describe(d: &Doc) -> String {
    match d.version {
        Some(v) => format!("{} v{v}", d.label),
        None => d.label.clone(),
    }
}

/// aktualizr's `TimeStamp`: exactly `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if s.len() != 20 || !s.ends_with('Z') {
        return None;
    }
    NaiveDateTime::parse_from_str(&s[..19], "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// A target's `hashes`: an object with a sha256 (64 hex) or sha512 (128 hex).
fn hash_problems(hashes: Option<&Value>) -> Vec<String> {
    let Some(h) = hashes.and_then(Value::as_object) else {
        return vec!["hashes is missing or not an object".into()];
    };
    let mut out = Vec::new();
    let mut known = 0;
    for (method, v) in h {
        let want = match method.as_str() {
            "sha256" => 64,
            "sha512" => 128,
            _ => continue,
        };
        known += 1;
        let ok = v
            .as_str()
            .is_some_and(|s| s.len() == want && s.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            out.push(format!("hashes.{method} is not {want} hex digits"));
        }
    }
    if known == 0 {
        out.push("hashes has no sha256 or sha512 (the only ones a device checks)".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyType, PrivateKey};
    use serde_json::json;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// An in-memory repository URL.
    struct Mem(RefCell<BTreeMap<String, Vec<u8>>>);

    impl Source for Mem {
        fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.0.borrow().get(path).cloned())
        }
        fn downloadable(&self, filename: &str) -> Result<bool> {
            Ok(self.0.borrow().contains_key(&format!("targets/{filename}")))
        }
    }

    const LATER: &str = "2099-01-01T00:00:00Z";

    fn doc(signed: Value, key: &PrivateKey) -> Value {
        serde_json::to_value(SignedPayload::sign(signed, &[key]).unwrap()).unwrap()
    }

    fn meta(d: &Value) -> Value {
        let c = CanonicalJson::of(d);
        json!({"hashes": {"sha256": sha256_hex(c.as_bytes())}, "length": c.as_bytes().len(), "version": d["signed"]["version"]})
    }

    /// A consistent repository (one key per role, a delegation `sup` with one target);
    /// `edit` changes targets' and the delegation's `signed` before signing.
    fn repo(edit: impl FnOnce(&mut Value, &mut Value)) -> Mem {
        let k: Vec<PrivateKey> = (0..5)
            .map(|_| PrivateKey::generate(KeyType::Ed25519, None).unwrap())
            .collect();
        let role = |i: usize| json!({"keyids": [k[i].key_id().to_string()], "threshold": 1});
        let keys: serde_json::Map<String, Value> = k[..4]
            .iter()
            .map(|p| (p.key_id().to_string(), p.public().to_json()))
            .collect();
        let root = doc(
            json!({"_type": "Root", "consistent_snapshot": false, "expires": LATER, "version": 1, "keys": keys,
            "roles": {"root": role(0), "targets": role(1), "snapshot": role(2), "timestamp": role(3)}}),
            &k[0],
        );
        let item = json!({"hashes": {"sha256": "ab".repeat(32)}, "length": 3, "custom": {"hardwareIds": ["hw"], "targetFormat": "BINARY"}});
        let mut delegated =
            json!({"_type": "Targets", "expires": LATER, "version": 1, "targets": {"sup-1": item}});
        let mut targets = json!({"_type": "Targets", "expires": LATER, "version": 1, "targets": {"app-1": item},
            "delegations": {"keys": {k[4].key_id().to_string(): k[4].public().to_json()},
                "roles": [{"name": "sup", "keyids": [k[4].key_id().to_string()], "threshold": 1, "paths": ["sup-*"], "terminating": false}]}});
        edit(&mut targets, &mut delegated);
        let delegated = doc(delegated, &k[4]);
        let targets = doc(targets, &k[1]);
        let snapshot = doc(
            json!({"_type": "Snapshot", "expires": LATER, "version": 1,
            "meta": {"targets.json": meta(&targets), "sup.json": meta(&delegated)}}),
            &k[2],
        );
        let timestamp = doc(
            json!({"_type": "Timestamp", "expires": LATER, "version": 1,
            "meta": {"snapshot.json": meta(&snapshot)}}),
            &k[3],
        );
        let files = [
            ("1.root.json", root),
            ("timestamp.json", timestamp),
            ("snapshot.json", snapshot),
            ("targets.json", targets),
            ("delegations/sup.json", delegated),
        ];
        let mut m: BTreeMap<String, Vec<u8>> = files
            .into_iter()
            .map(|(n, d)| (n.to_string(), serde_json::to_vec(&d).unwrap()))
            .collect();
        m.insert("targets/app-1".into(), b"abc".to_vec());
        m.insert("targets/sup-1".into(), b"abc".to_vec());
        Mem(RefCell::new(m))
    }

    fn rules(m: &Mem) -> Vec<(String, &'static str)> {
        check(m, None, Utc::now())
            .unwrap()
            .findings
            .into_iter()
            .map(|f| (f.role, f.rule))
            .collect()
    }

    #[test]
    fn a_consistent_repository_with_a_delegation_is_accepted() {
        let m = repo(|_, _| {});
        let report = check(&m, None, Utc::now()).unwrap();
        assert!(report.accepted(), "{:?}", report.findings);
        let names: Vec<&str> = report
            .installable("hw")
            .iter()
            .map(|t| t.filename.as_str())
            .collect();
        assert_eq!(names, ["app-1", "sup-1"]);
        assert_eq!(report.role("sup").unwrap().targets, Some(1));
    }

    #[test]
    fn each_rule_names_its_role() {
        type Edit = Box<dyn Fn(&mut Value, &mut Value)>;
        let cases: Vec<(Edit, &str, &str)> = vec![
            (
                Box::new(|t, _| t["expires"] = json!("2099-01-01T00:00:00.000Z")),
                "targets",
                "timestamp-format",
            ),
            (
                Box::new(|t, _| t["_type"] = json!("targets")),
                "targets",
                "type",
            ),
            (
                Box::new(|t, _| t["targets"]["app-1"]["hashes"] = json!({"md5": "00"})),
                "targets",
                "target-hashes",
            ),
            (
                Box::new(|t, _| t["targets"]["app-1"]["length"] = json!(-1)),
                "targets",
                "target-length",
            ),
            (
                Box::new(|_, d| d["expires"] = json!("2001-01-01T00:00:00Z")),
                "sup",
                "expired",
            ),
            (
                Box::new(|_, d| d["targets"]["sup-1"]["custom"]["hardwareIds"] = json!([])),
                "sup",
                "hardware-ids",
            ),
        ];
        for (edit, role, rule) in cases {
            let m = repo(|t, d| edit(t, d));
            let found = rules(&m);
            assert!(
                found.contains(&(role.to_string(), rule)),
                "{role}/{rule}: {found:?}"
            );
        }
    }

    #[test]
    fn duplicate_signatures_and_missing_files() {
        let m = repo(|_, _| {});
        let mut t: Value = serde_json::from_slice(&m.0.borrow()["targets.json"]).unwrap();
        let first = t["signatures"][0].clone();
        t["signatures"].as_array_mut().unwrap().push(first);
        m.0.borrow_mut()
            .insert("targets.json".into(), serde_json::to_vec(&t).unwrap());
        assert!(rules(&m).contains(&("targets".into(), "duplicate-signature")));
        m.0.borrow_mut().remove("delegations/sup.json");
        m.0.borrow_mut().remove("targets/app-1");
        let found = rules(&m);
        assert!(found.contains(&("sup".into(), "missing")), "{found:?}");
        assert!(found.contains(&("targets".into(), "download")), "{found:?}");
    }

    #[test]
    fn timestamps_are_exactly_twenty_characters_utc() {
        assert!(parse_timestamp("2030-01-01T00:00:00Z").is_some());
        for bad in [
            "2030-01-01T00:00:00.000Z",
            "2030-01-01T00:00:00+00:00",
            "2030-01-01 00:00:00Z",
            "2030-13-01T00:00:00Z",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
    }
}
