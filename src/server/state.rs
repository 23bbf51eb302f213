//! The repository's state and its persistence: the root chain, targets/snapshot/
//! timestamp and delegations (reference/reposerver.md §3), and the uploads of metadata
//! that change them. The online keys and online signing are the keyserver's
//! ([`super::keyserver`]); the acceptance rules are pure ([`super::rules`]).
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
//! - `keys/<keyid>.json`: the keyserver's online key pairs.

use super::errors::ApiError;
use super::keyserver::{
    self, days, expires_at, resign_dependents, ROLE_EXPIRY_DAYS, ROOT_EXPIRY_DAYS,
};
use super::rules::{
    checksum_precondition, decode_targets, delegated_role, listed_key_ids, root_signature_errors,
    targets_errors, targets_version_bump, threshold_errors,
};
use crate::canonical::CanonicalJson;
use crate::crypto::sha256_hex;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::keys::PrivateKey;
use crate::metadata::{Expires, RootRole, Signature, Signed, SignedPayload, TargetsRole};
use crate::schema::{DelegationName, RoleName};
use chrono::{DateTime, Utc};
use hyper::body::Bytes;
use hyper::StatusCode;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A signed document as received: the signatures decoded, `signed` kept as its bytes.
#[derive(serde::Deserialize)]
struct RawSigned<'a> {
    signatures: Vec<Signature>,
    #[serde(borrow)]
    signed: &'a RawValue,
}

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
    /// `doc` with its canonical bytes and checksum.
    pub fn new(doc: SignedPayload) -> Self {
        let bytes = doc.canonical();
        Self::encoded(doc, bytes)
    }

    /// `doc` with its canonical whole-document bytes, already computed.
    pub(super) fn encoded(doc: SignedPayload, canonical: CanonicalJson) -> Self {
        let bytes = Bytes::from(canonical.into_bytes());
        let checksum = sha256_hex(&bytes);
        Stored {
            doc: Arc::new(doc),
            bytes,
            checksum,
        }
    }

    /// `signed.version` (0 when absent).
    pub fn version(&self) -> u64 {
        self.doc.version().unwrap_or(0)
    }

    /// `signed.expires`, when present and valid.
    pub(super) fn expires(&self) -> Option<Expires> {
        self.doc
            .signed
            .get("expires")
            .and_then(Value::as_str)
            .and_then(|s| Expires::parse(s).ok())
    }

    /// The entry snapshot/timestamp keep for this document.
    pub(super) fn meta(&self) -> Value {
        json!({"hashes": {"sha256": self.checksum}, "length": self.bytes.len(), "version": self.version()})
    }
}

/// Non-root metadata, replaced as a whole on every change.
#[derive(Clone, Default)]
pub(super) struct Meta {
    /// `targets.json`, once generated or uploaded.
    pub(super) targets: Option<Stored>,
    /// `snapshot.json`, signed online.
    pub(super) snapshot: Option<Stored>,
    /// `timestamp.json`, signed online.
    pub(super) timestamp: Option<Stored>,
    /// Uploaded delegated targets roles, by name.
    pub(super) delegations: BTreeMap<String, Stored>,
}

impl Meta {
    /// `targets.json`'s `targets` object, once there is a targets role.
    pub(super) fn target_items(&self) -> Option<&serde_json::Map<String, Value>> {
        self.targets
            .as_ref()
            .and_then(|t| t.doc.signed.get("targets"))
            .and_then(Value::as_object)
    }
}

/// Everything the mutex guards.
pub(super) struct State {
    /// Every root version, `roots[i]` being version `i + 1`; never empty.
    pub(super) roots: Vec<Stored>,
    /// The non-root metadata.
    pub(super) meta: Meta,
    /// The keyserver's online keys, by computed key id.
    pub(super) keys: BTreeMap<String, PrivateKey>,
}

/// A repository: its data directory and its state behind one mutex.
pub struct Store {
    /// The data directory.
    pub(super) dir: PathBuf,
    /// The state; see [`Store::lock`].
    pub(super) state: Mutex<State>,
}

/// `repo/roots/` of `dir`.
pub(super) fn roots_dir(dir: &Path) -> PathBuf {
    dir.join("repo").join("roots")
}

fn metadata_path(dir: &Path) -> PathBuf {
    dir.join("repo").join("metadata.json")
}

/// `repo/roots/<N>.root.json` of `dir`.
pub(super) fn root_path(dir: &Path, version: u64) -> PathBuf {
    roots_dir(dir).join(format!("{version}.root.json"))
}

/// Writes `repo/roots/<N>.root.json` atomically.
pub(super) fn write_root(dir: &Path, root: &Stored) -> Result<()> {
    let path = root_path(dir, root.version());
    fsutil::write_atomic(&path, &root.bytes, fsutil::PUBLIC_FILE)
}

fn parse_doc(bytes: &[u8], what: &str) -> Result<Stored> {
    Ok(Stored::new(SignedPayload::parse(bytes, what)?))
}

/// Every root version, 1 up to the first one missing; a directory without root v1
/// holds no repository (the error says how to make one).
fn load_roots(dir: &Path) -> Result<Vec<Stored>> {
    let mut roots = Vec::new();
    loop {
        let path = root_path(dir, roots.len() as u64 + 1);
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
    Ok(roots)
}

/// `repo/metadata.json` (empty before the first targets are generated); a document
/// that does not decode is an error naming it.
fn load_meta(path: &Path) -> Result<Meta> {
    let mut meta = Meta::default();
    if !path.exists() {
        return Ok(meta);
    }
    let v: Value = fsutil::read_json(path)?;
    let doc = |key: String, d: &Value| -> Result<Stored> {
        let p: SignedPayload = serde_json::from_value(d.clone())
            .map_err(|e| Error::invalid(format!("{}: {key}", path.display()), e.to_string()))?;
        Ok(Stored::new(p))
    };
    let role = |key: &str| match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(d) => doc(key.to_string(), d).map(Some),
    };
    meta.targets = role("targets")?;
    meta.snapshot = role("snapshot")?;
    meta.timestamp = role("timestamp")?;
    if let Some(Value::Object(d)) = v.get("delegations") {
        for (name, d) in d {
            meta.delegations
                .insert(name.clone(), doc(format!("delegations.{name}"), d)?);
        }
    }
    Ok(meta)
}

impl Store {
    /// Loads the repository of `dir` (created by [`create`]).
    pub fn open(dir: &Path) -> Result<Store> {
        let roots = load_roots(dir)?;
        let meta = load_meta(&metadata_path(dir))?;
        let keys = keyserver::load_keys(dir)?;
        let store = Store {
            dir: dir.to_path_buf(),
            state: Mutex::new(State { roots, meta, keys }),
        };
        {
            // A crash between a root upload and its key deletions heals here.
            let mut st = store.lock();
            let listed = listed_key_ids(&latest_root(&st).doc.signed);
            store.keep_only_keys(&mut st, &listed)?;
        }
        Ok(store)
    }

    /// The state locked, with the root refreshed if due and targets/snapshot/timestamp
    /// generated if not yet there: what every read or online change of a role starts
    /// from (§4.2, §4.4).
    pub(super) fn lock_current(&self) -> Result<(MutexGuard<'_, State>, DateTime<Utc>), ApiError> {
        let mut st = self.lock();
        let now = Utc::now();
        self.fresh_root(&mut st, now)?;
        self.ensure_generated(&mut st, now)?;
        Ok((st, now))
    }

    /// The state, locked for one read-modify-write.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the last committed state intact.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `m` as `repo/metadata.json` in one atomic rename.
    pub(super) fn save_meta(&self, m: &Meta) -> Result<()> {
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
    pub fn role(&self, name: RoleName) -> Result<Stored, ApiError> {
        let (mut st, now) = self.lock_current()?;
        self.refresh(&mut st, now)?;
        let s = match name {
            RoleName::Targets => st.meta.targets.clone(),
            RoleName::Snapshot => st.meta.snapshot.clone(),
            RoleName::Timestamp => st.meta.timestamp.clone(),
            RoleName::Root => None,
        };
        s.ok_or_else(|| ApiError::not_found("role_not_found", format!("role {name} not found")))
    }

    /// `PUT targets` (§3.1). Returns the new checksum.
    pub fn put_targets(
        &self,
        checksum_header: Option<&str>,
        body: &[u8],
    ) -> Result<String, ApiError> {
        let mut st = self.lock();
        // 1. checksum precondition.
        checksum_precondition(
            st.meta.targets.as_ref().map(|t| t.checksum.as_str()),
            checksum_header,
        )?;
        // 2. decoding.
        let (targets, message, doc) = decode_upload(body)?;
        // 3.–5. signatures, delegations block, target items: all errors together.
        let existing: BTreeSet<String> = st
            .meta
            .target_items()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let errors = targets_errors(
            &latest_root_role(&st)?,
            &existing,
            &targets,
            &doc,
            message.as_bytes(),
        );
        refuse_if_any(errors, "invalid_offline_targets", "Invalid offline targets")?;
        // 6. dependent roles expire with the pushed targets.
        let mut m = st.meta.clone();
        let whole = Signed::new(message, doc.signatures.clone()).canonical();
        let new_targets = Stored::encoded(doc, whole);
        // 7. version bump
        targets_version_bump(
            st.meta.targets.as_ref().map(Stored::version),
            new_targets.version(),
        )?;
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
        self.keep_only_keys(&mut st, &keep)?;
        Ok(())
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
        let role = st
            .meta
            .targets
            .as_ref()
            .and_then(|t| delegated_role(&t.doc.signed, name))
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
        let message = CanonicalJson::of(&doc.signed);
        let errors = threshold_errors(
            &role.keys,
            &role.keyids,
            role.threshold,
            &doc.signatures,
            message.as_bytes(),
        );
        refuse_if_any(
            errors,
            "payload_signature_invalid",
            "Invalid payload signature",
        )?;
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
            .target_items()
            .and_then(|t| t.get(filename))
            .cloned()
    }
}

fn root_not_found() -> ApiError {
    ApiError::not_found(
        "root_role_not_found",
        "root role was not found in upstream key store",
    )
}

/// `PUT targets` step 2: the typed role and the canonical bytes straight from the
/// body, each once; the canonical `signed` is what the signatures cover and, joined
/// with them, the stored document and its checksum.
fn decode_upload(body: &[u8]) -> Result<(TargetsRole, CanonicalJson, SignedPayload), ApiError> {
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
    Ok((targets, message, doc))
}

/// 400 `code` with every one of `errors` as its cause, if there are any.
fn refuse_if_any(errors: Vec<String>, code: &str, description: &str) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(StatusCode::BAD_REQUEST, code, description).with_cause(Value::from(errors)))
}

/// The latest root version.
pub(super) fn latest_root(st: &State) -> &Stored {
    // `open` refuses a repository without roots, and roots are only ever added.
    &st.roots[st.roots.len() - 1]
}

/// The latest root, decoded.
pub(super) fn latest_root_role(st: &State) -> Result<RootRole, ApiError> {
    RootRole::from_signed(&latest_root(st).doc.signed, "root.json").map_err(ApiError::from)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::keys::KeyType;

    /// A new Ed25519 repository: its temporary directory, data directory and store.
    pub(in crate::server) fn new_store() -> (tempfile::TempDir, PathBuf, Store) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        keyserver::create(&d, KeyType::Ed25519).unwrap();
        let store = Store::open(&d).unwrap();
        (dir, d, store)
    }

    #[test]
    fn store_round_trip_and_cas() {
        let (_dir, d, store) = new_store();
        let t1 = store.role(RoleName::Targets).unwrap();
        assert_eq!(t1.version(), 1);
        let snap = store.role(RoleName::Snapshot).unwrap();
        assert_eq!(
            snap.doc.signed["meta"]["targets.json"]["hashes"]["sha256"],
            json!(t1.checksum)
        );
        assert!(
            store.put_targets(None, b"{}").unwrap_err().status == StatusCode::PRECONDITION_REQUIRED
        );
        drop(store);
        let again = Store::open(&d).unwrap();
        assert_eq!(again.role(RoleName::Targets).unwrap().checksum, t1.checksum);
        assert_eq!(again.online_key_ids().len(), 4);
    }
}
