//! The keyserver: the online keys (`keys/<keyid>.json`, 0600 in a 0700 directory),
//! their download and deletion, and the online signing of targets, snapshot,
//! timestamp and root (reference/reposerver.md §4): generation on first use, refresh
//! close to expiry, re-signing of the dependent roles after every change.
//!
//! A key is deleted when a pushed root stops listing it; at start, keys the latest root
//! no longer lists are removed too (a crash between the two steps heals itself).

use super::errors::ApiError;
use super::state::{
    latest_root, latest_root_role, root_path, roots_dir, write_root, Meta, State, Store, Stored,
};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::keys::{KeyType, PrivateKey};
use crate::metadata::{Expires, Hashes, RoleKeys, RootRole, SignedPayload, TargetsRole};
use crate::schema::{KeyId, Sha256, TargetName};
use chrono::{DateTime, Duration, Utc};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Initial root lifetime (§4.1) and lifetime of a refreshed root (§4.4).
pub const ROOT_EXPIRY_DAYS: i64 = 365;
/// Lifetime of generated targets/snapshot/timestamp (§4.2, `nextExpire`).
pub const ROLE_EXPIRY_DAYS: i64 = 31;
/// Refreshed targets/snapshot (§4.4).
pub const REFRESH_EXPIRY_DAYS: i64 = 30;
/// Roles expiring within this window are re-signed on GET (§4.4).
pub const REFRESH_WINDOW_SECS: i64 = 3600;

/// The roles of a new repository, each with one online key.
pub const TUF_ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// `n` days.
pub(super) fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// `t` as an `expires` value.
pub(super) fn expires_at(t: DateTime<Utc>) -> Expires {
    Expires::new(t)
}

fn keys_dir(dir: &Path) -> PathBuf {
    dir.join("keys")
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

/// Creates a repository: four online keys (one per role, threshold 1) and root v1,
/// valid for 365 days (§4.1). Targets/snapshot/timestamp are generated lazily on the
/// first GET (§4.2), so a first `PUT targets` needs no checksum, as upstream.
pub fn create(dir: &Path, key_type: KeyType) -> Result<()> {
    fsutil::create_private_dir(dir)?;
    std::fs::create_dir_all(roots_dir(dir)).with_path(roots_dir(dir))?;
    fsutil::create_private_dir(&keys_dir(dir))?;
    if root_path(dir, 1).exists() {
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

/// The online key pairs of `dir`, by computed key id.
pub(super) fn load_keys(dir: &Path) -> Result<BTreeMap<String, PrivateKey>> {
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
            let key = key.map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
            keys.insert(key.key_id().to_string(), key);
        }
    }
    Ok(keys)
}

impl Store {
    /// Deletes every online key (file, then memory) whose id is not in `keep`.
    pub(super) fn keep_only_keys(&self, st: &mut State, keep: &BTreeSet<String>) -> Result<()> {
        let stale: Vec<String> = st
            .keys
            .keys()
            .filter(|id| !keep.contains(*id))
            .cloned()
            .collect();
        for id in stale {
            self.remove_key_file(&id)?;
            st.keys.remove(&id);
            log::info!("deleted online key {id}: the latest root no longer lists it");
        }
        Ok(())
    }

    fn remove_key_file(&self, id: &str) -> Result<()> {
        let p = key_path(&self.dir, id);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&p, e)),
            _ => Ok(()),
        }
    }

    /// Re-signs the latest root online (version+1, 365 days) when it expires within the
    /// hour and its keys are online (§4.4); otherwise leaves it as it is.
    pub(super) fn fresh_root(&self, st: &mut State, now: DateTime<Utc>) -> Result<(), ApiError> {
        // A root whose expiry does not parse is not ours to fix: served as it is.
        if !refresh_due(latest_root(st), now).unwrap_or(false) {
            return Ok(());
        }
        let Ok(mut role) = latest_root_role(st) else {
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

    /// Generates targets (v1, empty) and signs snapshot/timestamp over it on first use (§4.2).
    pub(super) fn ensure_generated(
        &self,
        st: &mut State,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
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

    /// Re-signs targets/snapshot/timestamp online when close to expiry, and the roles
    /// that depend on a re-signed one (§4.4); a role whose key is offline stays as it is.
    pub(super) fn refresh(&self, st: &mut State, now: DateTime<Utc>) -> Result<(), ApiError> {
        // A role whose expiry does not parse is re-signed with a valid one.
        let soon = |s: &Option<Stored>| {
            s.as_ref()
                .is_some_and(|s| refresh_due(s, now).unwrap_or(true))
        };
        let refreshed = expires_at(now + days(REFRESH_EXPIRY_DAYS));
        let mut m = st.meta.clone();
        let mut targets_changed = false;
        if let Some(t) = m.targets.as_ref().filter(|_| soon(&m.targets)) {
            let mut signed = t.doc.signed.clone();
            signed["version"] = Value::from(t.version().saturating_add(1));
            signed["expires"] = Value::from(refreshed.to_string());
            targets_changed = resign_into(st, "targets", signed, &mut m.targets);
        }
        let snapshot_changed = (targets_changed || soon(&m.snapshot)) && {
            let signed = snapshot_signed(st, &m, next_version(&m.snapshot), refreshed);
            resign_into(st, "snapshot", signed, &mut m.snapshot)
        };
        let timestamp_changed = (snapshot_changed || soon(&m.timestamp)) && {
            let signed =
                timestamp_signed(&m, next_version(&m.timestamp), expires_at(now + days(1)));
            resign_into(st, "timestamp", signed, &mut m.timestamp)
        };
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

    /// `GET root/private_keys/{id}`: the key pair JSON.
    pub fn private_key(&self, id: &KeyId) -> Result<Zeroizing<String>, ApiError> {
        let st = self.lock();
        st.keys
            .get(id.as_str())
            .map(PrivateKey::to_key_pair_json)
            .ok_or_else(keypair_not_found)
    }

    /// `DELETE root/private_keys/{id}`.
    pub fn delete_private_key(&self, id: &KeyId) -> Result<(), ApiError> {
        let mut st = self.lock();
        if !st.keys.contains_key(id.as_str()) {
            return Err(keypair_not_found());
        }
        self.remove_key_file(id.as_str())?;
        st.keys.remove(id.as_str());
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
        let (mut st, now) = self.lock_current()?;
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
                hashes: Hashes::from([("sha256".to_string(), sha256.clone())]),
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

fn keypair_not_found() -> ApiError {
    ApiError::not_found("keypair_not_found", "key pair not found in keyserver")
}

/// Whether `s` expires within [`REFRESH_WINDOW_SECS`] of `now` (§4.4); `None` when its
/// `expires` does not parse.
fn refresh_due(s: &Stored, now: DateTime<Utc>) -> Option<bool> {
    s.expires()
        .map(|e| e.datetime() <= now + Duration::seconds(REFRESH_WINDOW_SECS))
}

/// Signs `signed` with every key of `role` in the latest root, as the keyserver does;
/// 412 `role_key_not_found` if one of them is offline.
pub(super) fn sign_role(st: &State, role: &str, signed: Value) -> Result<SignedPayload, ApiError> {
    let no_keys = || ApiError::not_found("role_keys_not_found", format!("no keys for role {role}"));
    let root = latest_root_role(st)?;
    let ids = &root.roles.get(role).ok_or_else(no_keys)?.keyids;
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
        return Err(no_keys());
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

/// The version after `s`'s (1 for a role not yet there).
fn next_version(s: &Option<Stored>) -> u64 {
    s.as_ref()
        .map(Stored::version)
        .unwrap_or(0)
        .saturating_add(1)
}

/// Signs `signed` online as `role` into `slot`; `false` (and `slot` unchanged) while
/// one of the role's keys is offline.
fn resign_into(st: &State, role: &str, signed: Value, slot: &mut Option<Stored>) -> bool {
    match sign_role(st, role, signed) {
        Ok(doc) => {
            *slot = Some(Stored::new(doc));
            true
        }
        Err(_) => false,
    }
}

/// Snapshot and timestamp with version+1 over the documents in `m`.
pub(super) fn resign_dependents(
    st: &State,
    m: &mut Meta,
    snapshot_exp: Expires,
    timestamp_exp: Expires,
) -> Result<(), ApiError> {
    let signed = snapshot_signed(st, m, next_version(&m.snapshot), snapshot_exp);
    m.snapshot = Some(Stored::new(sign_role(st, "snapshot", signed)?));
    let signed = timestamp_signed(m, next_version(&m.timestamp), timestamp_exp);
    m.timestamp = Some(Stored::new(sign_role(st, "timestamp", signed)?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_close_to_expiry_is_resigned_while_its_key_is_online() {
        let (_dir, d, store) = crate::server::state::tests::new_store();
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
        assert!(root_path(&d, 2).exists());
        // With the root key offline, the expiring root is served unchanged.
        store.delete_private_key(&root_id).unwrap();
        drop(store);
        std::fs::remove_file(root_path(&d, 2)).unwrap();
        let store = Store::open(&d).unwrap();
        assert_eq!(store.root().unwrap().checksum, soon.checksum);
    }
}
