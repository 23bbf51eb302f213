//! Persistent repository state: the root chain, targets/snapshot/timestamp,
//! delegations and the online keys (reference/reposerver.md §3, §4).
//!
//! One mutex guards the whole state, so every read-modify-write (the checksum
//! compare-and-swap of `PUT targets` above all) is atomic. A mutation builds the new
//! documents first, writes them with one atomic rename (`repo/metadata.json` holds
//! targets, snapshot, timestamp and delegations together, so they never disagree on
//! disk), and only then publishes them in memory.
//!
//! Files (below the data directory):
//! - `repo/roots/<N>.root.json`: every root version, canonical JSON.
//! - `repo/metadata.json`: `{"targets","snapshot","timestamp","delegations"}`, the
//!   signed documents with their `signed` part verbatim.
//! - `keys/<keyid>.json` (0600, directory 0700): online key pairs. A key is deleted
//!   when a pushed root stops listing it; at start, keys the latest root no longer
//!   lists are removed too (a crash between the two steps heals itself).

use super::errors::ApiError;
use crate::canonical::CanonicalJson;
use crate::crypto::sha256_hex;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::keys::{KeyType, PrivateKey, PublicKey};
use crate::metadata::{Expires, RoleKeys, RootRole, Signature, Signed, SignedPayload, TargetsRole};
use hyper::body::Bytes;
use serde_json::value::RawValue;
use std::sync::Arc;

/// A signed document as received: the signatures decoded, `signed` kept as its bytes.
#[derive(serde::Deserialize)]
struct RawSigned<'a> {
    signatures: Vec<Signature>,
    #[serde(borrow)]
    signed: &'a RawValue,
}
use super::rules::{
    decode_targets, delegation_errors, item_errors, root_signature_errors, threshold_errors,
};
use crate::schema::{DelegationName, KeyId, Sha256, TargetName};
use chrono::{DateTime, Duration, Utc};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use zeroize::Zeroizing;

/// Initial root lifetime (§4.1) and lifetime of a refreshed root (§4.4).
pub const ROOT_EXPIRY_DAYS: i64 = 365;
/// Lifetime of generated targets/snapshot/timestamp (§4.2, `nextExpire`).
pub const ROLE_EXPIRY_DAYS: i64 = 31;
/// Refreshed targets/snapshot (§4.4).
pub const REFRESH_EXPIRY_DAYS: i64 = 30;
/// Roles expiring within this window are re-signed on GET (§4.4).
pub const REFRESH_WINDOW_SECS: i64 = 3600;

pub const TUF_ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// A signed document with its served bytes and checksum.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Shared, so that copying the repository state never copies documents.
    pub doc: Arc<SignedPayload>,
    /// Canonical JSON of the whole document: exactly the GET body.
    pub bytes: Bytes,
    /// `x-ats-role-checksum` = sha256(bytes).
    pub checksum: String,
}

impl Stored {
    pub fn new(doc: SignedPayload) -> Self {
        let bytes = doc.canonical();
        Self::encoded(doc, bytes)
    }

    /// `doc` with its canonical whole-document bytes, already computed.
    fn encoded(doc: SignedPayload, canonical: CanonicalJson) -> Self {
        let bytes = Bytes::from(canonical.into_bytes());
        let checksum = sha256_hex(&bytes);
        Stored {
            doc: Arc::new(doc),
            bytes,
            checksum,
        }
    }

    pub fn version(&self) -> u64 {
        self.doc.version().unwrap_or(0)
    }

    fn expires(&self) -> Option<Expires> {
        self.doc
            .signed
            .get("expires")
            .and_then(Value::as_str)
            .and_then(|s| Expires::parse(s).ok())
    }

    /// The entry snapshot/timestamp keep for this document.
    fn meta(&self) -> Value {
        json!({"hashes": {"sha256": self.checksum}, "length": self.bytes.len(), "version": self.version()})
    }
}

/// Non-root metadata, replaced as a whole on every change.
#[derive(Clone, Default)]
struct Meta {
    targets: Option<Stored>,
    snapshot: Option<Stored>,
    timestamp: Option<Stored>,
    delegations: BTreeMap<String, Stored>,
}

struct State {
    roots: Vec<Stored>,
    meta: Meta,
    keys: BTreeMap<String, PrivateKey>,
}

pub struct Store {
    dir: PathBuf,
    state: Mutex<State>,
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn expires_at(t: DateTime<Utc>) -> Expires {
    Expires::new(t)
}

fn roots_dir(dir: &Path) -> PathBuf {
    dir.join("repo").join("roots")
}

fn keys_dir(dir: &Path) -> PathBuf {
    dir.join("keys")
}

fn metadata_path(dir: &Path) -> PathBuf {
    dir.join("repo").join("metadata.json")
}

fn key_path(dir: &Path, id: &str) -> PathBuf {
    keys_dir(dir).join(format!("{id}.json"))
}

fn write_key(dir: &Path, key: &PrivateKey) -> Result<()> {
    let pair = key.to_key_pair_json();
    fsutil::write_atomic(
        &key_path(dir, key.key_id().as_str()),
        pair.as_bytes(),
        fsutil::PRIVATE_FILE,
    )
}

fn write_root(dir: &Path, root: &Stored) -> Result<()> {
    let path = roots_dir(dir).join(format!("{}.root.json", root.version()));
    fsutil::write_atomic(&path, &root.bytes, fsutil::PUBLIC_FILE)
}

/// Creates a repository: four online keys (one per role, threshold 1) and root v1,
/// valid for 365 days (§4.1). Targets/snapshot/timestamp are generated lazily on the
/// first GET (§4.2), so a first `PUT targets` needs no checksum, as upstream.
pub fn create(dir: &Path, key_type: KeyType) -> Result<()> {
    fsutil::create_private_dir(dir)?;
    std::fs::create_dir_all(roots_dir(dir)).with_path(roots_dir(dir))?;
    fsutil::create_private_dir(&keys_dir(dir))?;
    if roots_dir(dir).join("1.root.json").exists() {
        return Err(Error::Usage(format!(
            "{} already holds a repository",
            dir.display()
        )));
    }
    let mut keys = Vec::new();
    let mut root = RootRole {
        role_type: "Root".into(),
        consistent_snapshot: false,
        expires: expires_at(Utc::now() + days(ROOT_EXPIRY_DAYS)),
        keys: BTreeMap::new(),
        roles: BTreeMap::new(),
        version: 1,
    };
    for role in TUF_ROLES {
        let key = PrivateKey::generate(key_type, None)?;
        let id = key.key_id();
        root.keys.insert(id.clone(), key.public().clone());
        root.roles.insert(
            role.to_string(),
            RoleKeys {
                keyids: vec![id],
                threshold: 1,
            },
        );
        write_key(dir, &key)?;
        keys.push(key);
    }
    let doc = SignedPayload::sign(root.to_signed()?, &[&keys[0]])?;
    write_root(dir, &Stored::new(doc))
}

fn parse_doc(bytes: &[u8], what: &str) -> Result<Stored> {
    Ok(Stored::new(SignedPayload::parse(bytes, what)?))
}

impl Store {
    /// Loads the repository of `dir` (created by [`create`]).
    pub fn open(dir: &Path) -> Result<Store> {
        let mut roots = Vec::new();
        loop {
            let path = roots_dir(dir).join(format!("{}.root.json", roots.len() + 1));
            if !path.exists() {
                break;
            }
            roots.push(parse_doc(
                &fsutil::read(&path)?,
                &path.display().to_string(),
            )?);
        }
        if roots.is_empty() {
            return Err(Error::Usage(format!(
                "{} holds no repository; run `ota-reposerver init-account --data-dir {}` first",
                dir.display(),
                dir.display()
            )));
        }
        let mut meta = Meta::default();
        let mpath = metadata_path(dir);
        if mpath.exists() {
            let v: Value = fsutil::read_json(&mpath)?;
            let what = mpath.display().to_string();
            let doc = |k: &str| -> Result<Option<Stored>> {
                match v.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(d) => Ok(Some(Stored::new(
                        serde_json::from_value(d.clone())
                            .map_err(|e| Error::invalid(format!("{what}: {k}"), e.to_string()))?,
                    ))),
                }
            };
            meta.targets = doc("targets")?;
            meta.snapshot = doc("snapshot")?;
            meta.timestamp = doc("timestamp")?;
            if let Some(Value::Object(d)) = v.get("delegations") {
                for (name, doc) in d {
                    let p: SignedPayload = serde_json::from_value(doc.clone()).map_err(|e| {
                        Error::invalid(format!("{what}: delegations.{name}"), e.to_string())
                    })?;
                    meta.delegations.insert(name.clone(), Stored::new(p));
                }
            }
        }
        let mut keys = BTreeMap::new();
        let kdir = keys_dir(dir);
        if kdir.is_dir() {
            for entry in std::fs::read_dir(&kdir).with_path(&kdir)? {
                let path = entry.with_path(&kdir)?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let text = Zeroizing::new(fsutil::read(&path)?);
                let value: Value = serde_json::from_slice(&text)
                    .map_err(|_| Error::invalid(path.display().to_string(), "invalid JSON"))?;
                let key = PrivateKey::from_json(&value, None);
                crate::credentials::wipe(value);
                let key =
                    key.map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
                keys.insert(key.key_id().to_string(), key);
            }
        }
        let store = Store {
            dir: dir.to_path_buf(),
            state: Mutex::new(State { roots, meta, keys }),
        };
        {
            let mut st = store.lock();
            let listed = listed_key_ids(st.roots.last().map(|r| &r.doc.signed));
            let stale: Vec<String> = st
                .keys
                .keys()
                .filter(|id| !listed.contains(*id))
                .cloned()
                .collect();
            for id in stale {
                store.remove_key_file(&id)?;
                st.keys.remove(&id);
            }
        }
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the last committed state intact.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove_key_file(&self, id: &str) -> Result<()> {
        let p = key_path(&self.dir, id);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&p, e)),
            _ => Ok(()),
        }
    }

    fn save_meta(&self, m: &Meta) -> Result<()> {
        /// metadata.json, written from references (no copy of the documents).
        #[derive(serde::Serialize)]
        struct MetaFile<'a> {
            delegations: BTreeMap<&'a String, &'a SignedPayload>,
            snapshot: Option<&'a SignedPayload>,
            targets: Option<&'a SignedPayload>,
            timestamp: Option<&'a SignedPayload>,
        }
        let file = MetaFile {
            delegations: m.delegations.iter().map(|(k, v)| (k, &*v.doc)).collect(),
            snapshot: m.snapshot.as_ref().map(|s| &*s.doc),
            targets: m.targets.as_ref().map(|s| &*s.doc),
            timestamp: m.timestamp.as_ref().map(|s| &*s.doc),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| Error::Other(e.to_string()))?;
        fsutil::write_atomic(&metadata_path(&self.dir), &bytes, fsutil::PUBLIC_FILE)
    }

    /// Latest root, refreshed first if it expires within the hour and its keys are
    /// online (keyserver `findFreshAndPersist`, §4.4).
    pub fn root(&self) -> Result<Stored, ApiError> {
        let mut st = self.lock();
        self.fresh_root(&mut st, Utc::now())?;
        Ok(latest_root(&st).clone())
    }

    /// Root version `n` (404 `root_role_not_found` past the last).
    pub fn root_version(&self, n: u64) -> Result<Stored, ApiError> {
        let st = self.lock();
        usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| st.roots.get(i))
            .cloned()
            .ok_or_else(root_not_found)
    }

    /// `GET root`: the latest root unsigned, version+1, expires now+365d.
    pub fn unsigned_root(&self) -> Result<Value, ApiError> {
        let st = self.lock();
        let mut signed = latest_root(&st).doc.signed.clone();
        let v = latest_root(&st).version().saturating_add(1);
        signed["version"] = Value::from(v);
        signed["expires"] =
            Value::from(expires_at(Utc::now() + days(ROOT_EXPIRY_DAYS)).to_string());
        Ok(signed)
    }

    /// targets.json, snapshot.json or timestamp.json; generated on first use and
    /// refreshed when close to expiry (§4.2, §4.4).
    pub fn role(&self, name: &str) -> Result<Stored, ApiError> {
        let mut st = self.lock();
        let now = Utc::now();
        self.fresh_root(&mut st, now)?;
        self.ensure_generated(&mut st, now)?;
        self.refresh(&mut st, now)?;
        let s = match name {
            "targets" => st.meta.targets.clone(),
            "snapshot" => st.meta.snapshot.clone(),
            "timestamp" => st.meta.timestamp.clone(),
            _ => None,
        };
        s.ok_or_else(|| ApiError::not_found("role_not_found", format!("role {name} not found")))
    }

    fn fresh_root(&self, st: &mut State, now: DateTime<Utc>) -> Result<(), ApiError> {
        let latest = latest_root(st);
        let soon = latest
            .expires()
            .map(|e| e.datetime() <= now + Duration::seconds(REFRESH_WINDOW_SECS))
            .unwrap_or(false);
        if !soon {
            return Ok(());
        }
        let Ok(mut role) = RootRole::from_signed(&latest.doc.signed, "root.json") else {
            return Ok(());
        };
        role.version += 1;
        role.expires = expires_at(now + days(ROOT_EXPIRY_DAYS));
        let signed = role.to_signed()?;
        // With the root key offline the expired root is served unchanged.
        let Ok(doc) = sign_role(st, "root", signed) else {
            return Ok(());
        };
        let stored = Stored::new(doc);
        write_root(&self.dir, &stored)?;
        log::info!("re-signed root.json online: version {}", stored.version());
        st.roots.push(stored);
        Ok(())
    }

    fn ensure_generated(&self, st: &mut State, now: DateTime<Utc>) -> Result<(), ApiError> {
        if st.meta.targets.is_some() && st.meta.snapshot.is_some() && st.meta.timestamp.is_some() {
            return Ok(());
        }
        let mut m = st.meta.clone();
        let exp = expires_at(now + days(ROLE_EXPIRY_DAYS));
        if m.targets.is_none() {
            let signed = TargetsRole::new(1, exp).to_signed()?;
            m.targets = Some(Stored::new(sign_role(st, "targets", signed)?));
        }
        resign_dependents(st, &mut m, exp, exp)?;
        self.save_meta(&m)?;
        st.meta = m;
        Ok(())
    }

    fn refresh(&self, st: &mut State, now: DateTime<Utc>) -> Result<(), ApiError> {
        let next_version = |s: &Option<Stored>| {
            s.as_ref()
                .map(Stored::version)
                .unwrap_or(0)
                .saturating_add(1)
        };
        let limit = now + Duration::seconds(REFRESH_WINDOW_SECS);
        let soon = |s: &Option<Stored>| {
            s.as_ref()
                .map(|s| s.expires().map(|e| e.datetime() <= limit).unwrap_or(true))
                .unwrap_or(false)
        };
        let mut m = st.meta.clone();
        let mut targets_changed = false;
        if soon(&m.targets) {
            if let Some(t) = &m.targets {
                let mut signed = t.doc.signed.clone();
                signed["version"] = Value::from(t.version().saturating_add(1));
                signed["expires"] =
                    Value::from(expires_at(now + days(REFRESH_EXPIRY_DAYS)).to_string());
                if let Ok(doc) = sign_role(st, "targets", signed) {
                    m.targets = Some(Stored::new(doc));
                    targets_changed = true;
                }
            }
        }
        let mut snapshot_changed = false;
        if targets_changed || soon(&m.snapshot) {
            let v = next_version(&m.snapshot);
            let signed = snapshot_signed(st, &m, v, expires_at(now + days(REFRESH_EXPIRY_DAYS)));
            if let Ok(doc) = sign_role(st, "snapshot", signed) {
                m.snapshot = Some(Stored::new(doc));
                snapshot_changed = true;
            }
        }
        let mut timestamp_changed = false;
        if snapshot_changed || soon(&m.timestamp) {
            let v = next_version(&m.timestamp);
            let signed = timestamp_signed(&m, v, expires_at(now + days(1)));
            if let Ok(doc) = sign_role(st, "timestamp", signed) {
                m.timestamp = Some(Stored::new(doc));
                timestamp_changed = true;
            }
        }
        if targets_changed || snapshot_changed || timestamp_changed {
            self.save_meta(&m)?;
            log::info!(
                "re-signed online close to expiry: targets {} snapshot {} timestamp {}",
                targets_changed,
                snapshot_changed,
                timestamp_changed
            );
            st.meta = m;
        }
        Ok(())
    }

    /// `PUT targets` (§3.1). Returns the new checksum.
    pub fn put_targets(
        &self,
        checksum_header: Option<&str>,
        body: &[u8],
    ) -> Result<String, ApiError> {
        let mut st = self.lock();
        // 1. checksum precondition; a malformed header counts as absent.
        if let Some(current) = &st.meta.targets {
            match checksum_header.filter(|c| Sha256::parse(c).is_ok()) {
                None => {
                    return Err(ApiError::new(
                        StatusCode::PRECONDITION_REQUIRED,
                        "role_checksum_not_provided",
                        "A targets role already exists, but no previous checksum was sent",
                    ))
                }
                Some(c) if c != current.checksum => {
                    return Err(ApiError::new(
                        StatusCode::PRECONDITION_FAILED,
                        "role_checksum_mismatch",
                        "Provided checksum of previous role does not match current checksum",
                    ))
                }
                Some(_) => {}
            }
        }
        // 2. decoding: the typed role and the canonical bytes straight from the body,
        // each once; the canonical `signed` is what the signatures cover and, joined with
        // them, the stored document and its checksum.
        let raw: RawSigned<'_> =
            serde_json::from_slice(body).map_err(|e| ApiError::invalid_entity(e.to_string()))?;
        let signed_bytes = raw.signed.get().as_bytes();
        let targets =
            decode_targets(&raw.signatures, signed_bytes).map_err(ApiError::invalid_entity)?;
        let message = CanonicalJson::from_slice(signed_bytes, "targets.json")?;
        let doc = SignedPayload {
            signatures: raw.signatures,
            signed: serde_json::from_slice(signed_bytes)
                .map_err(|e| ApiError::invalid_entity(e.to_string()))?,
        };
        // 3.–5. signatures, delegations block, target items: all errors together.
        let root = latest_root_role(&st)?;
        let mut errors = match root.roles.get("targets") {
            Some(r) => threshold_errors(
                &root.keys,
                &r.keyids,
                r.threshold,
                &doc.signatures,
                message.as_bytes(),
            ),
            None => vec!["root.json has no targets role".to_string()],
        };
        errors.extend(delegation_errors(&doc.signed));
        let existing: BTreeSet<String> = st
            .meta
            .targets
            .as_ref()
            .and_then(|t| t.doc.signed.get("targets"))
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        errors.extend(item_errors(&targets, &existing));
        if !errors.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_offline_targets",
                "Invalid offline targets",
            )
            .with_cause(Value::from(errors)));
        }
        // 6. dependent roles expire with the pushed targets.
        let mut m = st.meta.clone();
        let whole = Signed::new(message, doc.signatures.clone()).canonical();
        let new_targets = Stored::encoded(doc, whole);
        if let Some(old) = &st.meta.targets {
            // 7. version bump
            if new_targets.version() != old.version().saturating_add(1) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "invalid_version_bump",
                    format!(
                        "Cannot bump version from {} to {}",
                        old.version(),
                        new_targets.version()
                    ),
                ));
            }
        }
        m.targets = Some(new_targets);
        resign_dependents(&st, &mut m, targets.expires, targets.expires)?;
        self.save_meta(&m)?;
        let checksum = m
            .targets
            .as_ref()
            .map(|t| t.checksum.clone())
            .unwrap_or_default();
        st.meta = m;
        Ok(checksum)
    }

    /// `POST root` (§3.2).
    pub fn post_root(&self, body: &[u8]) -> Result<(), ApiError> {
        let doc: SignedPayload =
            serde_json::from_slice(body).map_err(|e| ApiError::invalid_entity(e.to_string()))?;
        let invalid = |causes: Vec<String>| {
            ApiError::remote(
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_root_role",
                    "Invalid user signed root",
                )
                .with_cause(Value::from(causes)),
            )
        };
        let new_root = RootRole::from_signed(&doc.signed, "root.json")
            .map_err(|e| invalid(vec![e.to_string()]))?;
        // rawJsonIsValid: the root must survive a decode/encode round trip.
        let reencoded =
            serde_json::to_value(&new_root).map_err(|e| ApiError::internal(e.to_string()))?;
        if CanonicalJson::of(&reencoded) != CanonicalJson::of(&doc.signed) {
            return Err(invalid(vec![
                "an incompatible encoder was used to encode root.json".into(),
            ]));
        }
        let mut st = self.lock();
        let old_root = latest_root_role(&st)?;
        let (old_v, new_v) = (old_root.version, new_root.version);
        let mut causes = Vec::new();
        if new_v != old_v + 1 {
            causes.push(format!("Invalid version bump from {old_v} to {new_v}"));
        }
        causes.extend(root_signature_errors(&old_root, old_v, new_v, &doc));
        causes.extend(root_signature_errors(&new_root, new_v, new_v, &doc));
        if !causes.is_empty() {
            return Err(invalid(causes));
        }
        let stored = Stored::new(doc);
        write_root(&self.dir, &stored)?;
        st.roots.push(stored);
        // persistAndKeepRepoKeys: drop every online key the new root does not list.
        let keep: BTreeSet<String> = new_root
            .keys
            .values()
            .map(|k| k.key_id().to_string())
            .collect();
        let stale: Vec<String> = st
            .keys
            .keys()
            .filter(|id| !keep.contains(*id))
            .cloned()
            .collect();
        for id in stale {
            self.remove_key_file(&id)?;
            st.keys.remove(&id);
            log::info!("deleted online key {id}: the new root no longer lists it");
        }
        Ok(())
    }

    /// `GET root/private_keys/{id}`: the key pair JSON.
    pub fn private_key(&self, id: &str) -> Result<Zeroizing<String>, ApiError> {
        let st = self.lock();
        st.keys
            .get(id)
            .map(PrivateKey::to_key_pair_json)
            .ok_or_else(keypair_not_found)
    }

    /// `DELETE root/private_keys/{id}`.
    pub fn delete_private_key(&self, id: &str) -> Result<(), ApiError> {
        let mut st = self.lock();
        if !st.keys.contains_key(id) {
            return Err(keypair_not_found());
        }
        self.remove_key_file(id)?;
        st.keys.remove(id);
        log::info!("deleted online key {id} on request");
        Ok(())
    }

    /// Ids of the online keys (for tests and diagnostics; never the secrets).
    pub fn online_key_ids(&self) -> Vec<String> {
        self.lock().keys.keys().cloned().collect()
    }

    /// `(targets.pub, targets.sec)` file contents of `role`'s first key while online.
    pub fn role_key_files(&self, role: &str) -> Option<(String, Zeroizing<String>)> {
        let st = self.lock();
        let root = latest_root_role(&st).ok()?;
        let id = root.roles.get(role)?.keyids.first()?;
        let computed = root.keys.get(id)?.key_id();
        let key = st.keys.get(computed.as_str())?;
        Some((key.to_pub_file(), key.to_sec_file()))
    }

    /// `PUT delegations/{name}.json`.
    pub fn put_delegation(&self, name: &str, body: &[u8]) -> Result<(), ApiError> {
        if DelegationName::parse(name).is_err() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_delegation_role_name",
                format!("invalid delegated role name {name:?}"),
            ));
        }
        let mut st = self.lock();
        let now = Utc::now();
        self.ensure_generated(&mut st, now)?;
        let targets = st
            .meta
            .targets
            .as_ref()
            .map(|t| t.doc.signed.clone())
            .unwrap_or(Value::Null);
        let delegations = targets.get("delegations").cloned().unwrap_or(Value::Null);
        let role = delegations
            .get("roles")
            .and_then(Value::as_array)
            .and_then(|roles| {
                roles
                    .iter()
                    .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
            })
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "delegations_not_defined",
                    "Delegations are not defined for this repository",
                )
            })?;
        let doc: SignedPayload =
            serde_json::from_slice(body).map_err(|e| ApiError::invalid_entity(e.to_string()))?;
        TargetsRole::from_signed(&doc.signed, "delegation")
            .map_err(|e| ApiError::invalid_entity(e.to_string()))?;
        let mut keys = BTreeMap::new();
        if let Some(obj) = delegations.get("keys").and_then(Value::as_object) {
            for (id, k) in obj {
                if let (Ok(id), Ok(k)) = (KeyId::parse(id), PublicKey::from_json(k, true)) {
                    keys.insert(id, k);
                }
            }
        }
        let keyids: Vec<KeyId> = role
            .get("keyids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().and_then(|s| KeyId::parse(s).ok()))
                    .collect()
            })
            .unwrap_or_default();
        let threshold = role.get("threshold").and_then(Value::as_i64).unwrap_or(0);
        let message = CanonicalJson::of(&doc.signed);
        let errors = threshold_errors(
            &keys,
            &keyids,
            threshold,
            &doc.signatures,
            message.as_bytes(),
        );
        if !errors.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "payload_signature_invalid",
                "Invalid payload signature",
            )
            .with_cause(Value::from(errors)));
        }
        let mut m = st.meta.clone();
        m.delegations.insert(name.to_string(), Stored::new(doc));
        let exp = expires_at(now + days(ROLE_EXPIRY_DAYS));
        resign_dependents(&st, &mut m, exp, exp)?;
        self.save_meta(&m)?;
        st.meta = m;
        Ok(())
    }

    /// `GET delegations/{name}.json`.
    pub fn delegation(&self, name: &str) -> Result<Stored, ApiError> {
        self.lock()
            .meta
            .delegations
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::not_found("delegations_not_found", "delegations not found"))
    }

    /// The current `targets[filename]` entry, if any (no generation, no refresh).
    pub fn target_item(&self, filename: &str) -> Option<Value> {
        self.lock()
            .meta
            .targets
            .as_ref()
            .and_then(|t| t.doc.signed.get("targets"))
            .and_then(|t| t.get(filename))
            .cloned()
    }

    /// Adds (or replaces) a target signed online, as `PUT targets/{file}` does:
    /// targets, snapshot and timestamp get version+1 and expire in 31 days (§4.3).
    /// 412 `role_keys_not_found` when the targets key is offline.
    pub fn add_target_online(
        &self,
        filename: &TargetName,
        sha256: &Sha256,
        length: u64,
        custom: Value,
    ) -> Result<(), ApiError> {
        let mut st = self.lock();
        let now = Utc::now();
        self.fresh_root(&mut st, now)?;
        self.ensure_generated(&mut st, now)?;
        let current = st
            .meta
            .targets
            .clone()
            .ok_or_else(|| ApiError::internal("targets.json missing"))?;
        let mut role = TargetsRole::from_signed(&current.doc.signed, "targets.json")?;
        let exp = expires_at(now + days(ROLE_EXPIRY_DAYS));
        role.version = current.version().saturating_add(1);
        role.expires = exp;
        role.targets.insert(
            filename.clone(),
            crate::metadata::TargetItem {
                hashes: BTreeMap::from([("sha256".to_string(), sha256.clone())]),
                length,
                custom: Some(crate::metadata::RawJson::from_value(&custom)?),
            },
        );
        let signed = serde_json::to_value(&role).map_err(|e| ApiError::internal(e.to_string()))?;
        let doc = sign_role(&st, "targets", signed).map_err(|e| {
            if e.code == "role_key_not_found" {
                ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "role_keys_not_found",
                    "role keys not found: the targets key is offline",
                )
            } else {
                e
            }
        })?;
        let mut m = st.meta.clone();
        m.targets = Some(Stored::new(doc));
        resign_dependents(&st, &mut m, exp, exp)?;
        self.save_meta(&m)?;
        st.meta = m;
        Ok(())
    }
}

fn root_not_found() -> ApiError {
    ApiError::not_found(
        "root_role_not_found",
        "root role was not found in upstream key store",
    )
}

fn keypair_not_found() -> ApiError {
    ApiError::not_found("keypair_not_found", "key pair not found in keyserver")
}

fn latest_root(st: &State) -> &Stored {
    // `open` refuses a repository without roots, and roots are only ever added.
    &st.roots[st.roots.len() - 1]
}

fn latest_root_role(st: &State) -> Result<RootRole, ApiError> {
    RootRole::from_signed(&latest_root(st).doc.signed, "root.json").map_err(ApiError::from)
}

/// Ids (computed from the keys, §6.3) of every key a root lists.
fn listed_key_ids(signed: Option<&Value>) -> BTreeSet<String> {
    signed
        .and_then(|s| s.get("keys"))
        .and_then(Value::as_object)
        .map(|o| {
            o.values()
                .filter_map(|k| PublicKey::from_json(k, true).ok())
                .map(|k| k.key_id().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Signs `signed` with every key of `role` in the latest root, as the keyserver does;
/// 412 `role_key_not_found` if one of them is offline.
fn sign_role(st: &State, role: &str, signed: Value) -> Result<SignedPayload, ApiError> {
    let root = latest_root_role(st)?;
    let ids = &root
        .roles
        .get(role)
        .ok_or_else(|| {
            ApiError::not_found("role_keys_not_found", format!("no keys for role {role}"))
        })?
        .keyids;
    let mut keys = Vec::new();
    for id in ids {
        // Look up by the computed id: that is what the key files are named after.
        let computed = root
            .keys
            .get(id)
            .map(|k| k.key_id().to_string())
            .unwrap_or_default();
        match st.keys.get(&computed) {
            Some(k) => keys.push(k),
            None => {
                return Err(ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "role_key_not_found",
                    format!("role key not found in keyserver for role {role}"),
                ))
            }
        }
    }
    if keys.is_empty() {
        return Err(ApiError::not_found(
            "role_keys_not_found",
            format!("no keys for role {role}"),
        ));
    }
    SignedPayload::sign(signed, &keys).map_err(ApiError::from)
}

fn snapshot_signed(st: &State, m: &Meta, version: u64, expires: Expires) -> Value {
    let mut meta = serde_json::Map::new();
    meta.insert("root.json".into(), latest_root(st).meta());
    if let Some(t) = &m.targets {
        meta.insert("targets.json".into(), t.meta());
    }
    for (name, d) in &m.delegations {
        meta.insert(format!("{name}.json"), d.meta());
    }
    json!({"_type": "Snapshot", "expires": expires.to_string(), "meta": meta, "version": version})
}

fn timestamp_signed(m: &Meta, version: u64, expires: Expires) -> Value {
    let meta = m.snapshot.as_ref().map(Stored::meta).unwrap_or(Value::Null);
    json!({"_type": "Timestamp", "expires": expires.to_string(), "meta": {"snapshot.json": meta}, "version": version})
}

/// Snapshot and timestamp with version+1 over the documents in `m`.
fn resign_dependents(
    st: &State,
    m: &mut Meta,
    snapshot_exp: Expires,
    timestamp_exp: Expires,
) -> Result<(), ApiError> {
    let v = m
        .snapshot
        .as_ref()
        .map(Stored::version)
        .unwrap_or(0)
        .saturating_add(1);
    m.snapshot = Some(Stored::new(sign_role(
        st,
        "snapshot",
        snapshot_signed(st, m, v, snapshot_exp),
    )?));
    let v = m
        .timestamp
        .as_ref()
        .map(Stored::version)
        .unwrap_or(0)
        .saturating_add(1);
    m.timestamp = Some(Stored::new(sign_role(
        st,
        "timestamp",
        timestamp_signed(m, v, timestamp_exp),
    )?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_close_to_expiry_is_resigned_while_its_key_is_online() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        create(&d, KeyType::Ed25519).unwrap();
        let store = Store::open(&d).unwrap();
        let v1 = store.root().unwrap();
        let mut role = RootRole::from_signed(&v1.doc.signed, "root").unwrap();
        role.expires = expires_at(Utc::now() + Duration::minutes(10));
        let root_id = role.roles["root"].keyids[0].clone();
        let soon = {
            let st = store.lock();
            Stored::new(
                SignedPayload::sign(role.to_signed().unwrap(), &[&st.keys[root_id.as_str()]])
                    .unwrap(),
            )
        };
        write_root(&d, &soon).unwrap();
        drop(store);
        let store = Store::open(&d).unwrap();
        let fresh = store.root().unwrap();
        assert_eq!(fresh.version(), 2);
        assert!(fresh.expires().unwrap().datetime() > Utc::now() + days(364));
        let old = crate::verify::TrustedRoot::from_signed(&soon.doc.signed, "v1").unwrap();
        crate::verify::verify_root_update(&old, &fresh.doc, "v2").unwrap();
        assert!(roots_dir(&d).join("2.root.json").exists());
        // With the root key offline, the expiring root is served unchanged.
        store.delete_private_key(&root_id).unwrap();
        drop(store);
        std::fs::remove_file(roots_dir(&d).join("2.root.json")).unwrap();
        let store = Store::open(&d).unwrap();
        assert_eq!(store.root().unwrap().checksum, soon.checksum);
    }

    #[test]
    fn store_round_trip_and_cas() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        create(&d, KeyType::Ed25519).unwrap();
        let store = Store::open(&d).unwrap();
        let t1 = store.role("targets").unwrap();
        assert_eq!(t1.version(), 1);
        let snap = store.role("snapshot").unwrap();
        assert_eq!(
            snap.doc.signed["meta"]["targets.json"]["hashes"]["sha256"],
            json!(t1.checksum)
        );
        assert!(
            store.put_targets(None, b"{}").unwrap_err().status == StatusCode::PRECONDITION_REQUIRED
        );
        drop(store);
        let again = Store::open(&d).unwrap();
        assert_eq!(again.role("targets").unwrap().checksum, t1.checksum);
        assert_eq!(again.online_key_ids().len(), 4);
    }
}
