//! The reposerver's acceptance rules for uploaded metadata (reference/reposerver.md §3):
//! pure functions of the documents, no state, no I/O. [`super::state`] applies them.

use super::errors::ApiError;
use crate::canonical::CanonicalJson;
use crate::keys::PublicKey;
use crate::metadata::{Expires, RootRole, Signature, SignedPayload, TargetsRole};
use crate::schema::{DelegationName, HardwareId, KeyId, Sha256};
use hyper::StatusCode;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// ota-tuf's decoder for `SignedPayload[TargetsRole]` (§3.1 step 2).
pub(super) fn decode_targets(
    signatures: &[Signature],
    signed: &[u8],
) -> std::result::Result<TargetsRole, String> {
    const METHODS: [&str; 4] = ["rsassa-pss-sha256", "rsassa-pss", "ed25519", "ecPrime256v1"];
    // Key ids were checked when `doc` was decoded (`KeyId`).
    for s in signatures {
        if !METHODS.contains(&s.method.as_str()) {
            return Err(format!(
                "signatures: unknown signature method {:?}",
                s.method
            ));
        }
        if base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &s.sig).is_err() {
            return Err(format!("signatures: sig of key {} is not base64", s.keyid));
        }
    }
    let role = TargetsRole::from_slice(signed, "targets.json").map_err(|e| e.to_string())?;
    if role.version > i32::MAX as u64 {
        return Err(format!("version: {} is not an Int", role.version));
    }
    // Names and digests were checked when `role` was decoded (`TargetName`, `Sha256`).
    for (name, item) in &role.targets {
        if let Some(method) = item.hashes.keys().find(|m| *m != "sha256") {
            return Err(format!(
                "targets.{name}.hashes: unsupported hash method {method:?} (only sha256)"
            ));
        }
    }
    Ok(role)
}

/// `TufCrypto.payloadSignatureIsValid`: signatures by key id (duplicates collapse);
/// valid if at least `threshold` (> 0) verify. Errors only when that fails.
pub(super) fn threshold_errors(
    keys: &BTreeMap<KeyId, PublicKey>,
    keyids: &[KeyId],
    threshold: i64,
    signatures: &[Signature],
    message: &[u8],
) -> Vec<String> {
    let sigs: BTreeMap<&str, &Signature> =
        signatures.iter().map(|s| (s.keyid.as_str(), s)).collect();
    let mut valid = 0i64;
    let mut errors = Vec::new();
    for (id, sig) in sigs {
        match keys.get(id).filter(|_| keyids.iter().any(|k| k == id)) {
            None => errors.push(format!(
                "key {id} required for role validation not found in authoritative role"
            )),
            Some(k) if k.verify(&sig.method, message, &sig.sig) => valid += 1,
            Some(_) => errors.push(format!("Invalid signature for key {id}")),
        }
    }
    if threshold > 0 && valid >= threshold {
        Vec::new()
    } else {
        errors.push(format!(
            "Valid signature count must be >= threshold ({threshold})"
        ));
        errors
    }
}

/// `newRootIsValid`: a threshold of `signer`'s root keys must have signed `doc`.
pub(super) fn root_signature_errors(
    signer: &RootRole,
    signer_v: u64,
    new_v: u64,
    doc: &SignedPayload,
) -> Vec<String> {
    let Some(role) = signer.roles.get("root") else {
        return vec![format!("root.json version {signer_v} has no root role")];
    };
    let message = CanonicalJson::of(&doc.signed);
    let mut valid = 0i64;
    let mut errors = Vec::new();
    for id in &role.keyids {
        let sig = doc.signatures.iter().find(|s| &s.keyid == id);
        match (sig, signer.keys.get(id)) {
            (Some(s), Some(k)) if k.verify(&s.method, message.as_bytes(), &s.sig) => valid += 1,
            (Some(_), _) => errors.push(format!(
                "Invalid signature for key {id} in root.json version {new_v}"
            )),
            (None, _) => errors.push(format!(
                "No signature found for key {id} in root.json version {new_v}"
            )),
        }
    }
    if role.threshold > 0 && valid >= role.threshold {
        return Vec::new();
    }
    let mut out = vec![format!(
        "root.json version {signer_v} requires {} valid signatures for root.json version {new_v}, {valid} supplied",
        role.threshold
    )];
    out.extend(errors);
    out
}

/// `TrustedDelegations.validate` (§3.1 step 4).
fn delegation_errors(signed: &Value) -> Vec<String> {
    let Some(d) = signed.get("delegations").filter(|d| !d.is_null()) else {
        return Vec::new();
    };
    let keys = d.get("keys").and_then(Value::as_object);
    let Some(roles) = d.get("roles").and_then(Value::as_array) else {
        return vec!["delegations: roles must be an array".into()];
    };
    let mut errors = Vec::new();
    for r in roles {
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        if DelegationName::parse(name).is_err() {
            errors.push(format!("delegated role name {name:?} is invalid"));
        }
        for id in r
            .get("keyids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = id.as_str().unwrap_or("");
            if !keys.is_some_and(|k| k.contains_key(id)) {
                errors.push(format!(
                    "delegated role {name}: key {id} is not defined in delegations.keys"
                ));
            }
        }
    }
    errors
}

/// `validatedPayloadTargets` (§3.1 step 5).
fn item_errors(targets: &TargetsRole, existing: &BTreeSet<String>) -> Vec<String> {
    let mut errors = Vec::new();
    for (name, item) in &targets.targets {
        if item.hashes.is_empty() {
            errors.push(format!(
                "target item error {name}: Invalid/Missing Checksum"
            ));
        }
        match (item.custom_value(), existing.contains(name.as_str())) {
            (None, false) => errors.push(format!(
                "target item error {name}: new offline signed target items must contain custom metadata"
            )),
            (Some(c), _) => {
                if let Err(e) = check_custom(&c) {
                    errors.push(format!("target item error {name}: {e}"));
                }
            }
            (None, true) => {}
        }
    }
    errors
}

/// ota-tuf's `TargetFormat` values, the default first.
pub(super) const TARGET_FORMATS: [&str; 2] = ["BINARY", "OSTREE"];

/// `targetCustomDecoder`.
pub(super) fn check_custom(c: &Value) -> std::result::Result<(), String> {
    let obj = c.as_object().ok_or("custom: must be an object")?;
    for f in ["name", "version"] {
        if !obj.get(f).is_some_and(Value::is_string) {
            return Err(format!("custom.{f}: missing or not a string"));
        }
    }
    let hw = obj
        .get("hardwareIds")
        .and_then(Value::as_array)
        .ok_or("custom.hardwareIds: missing or not an array")?;
    if let Some(h) = hw
        .iter()
        .find(|h| h.as_str().map_or(true, |s| HardwareId::parse(s).is_err()))
    {
        return Err(format!(
            "custom.hardwareIds: {h} is not a valid hardware id (1 to 200 characters)"
        ));
    }
    for f in ["createdAt", "updatedAt"] {
        let s = obj
            .get(f)
            .and_then(Value::as_str)
            .ok_or(format!("custom.{f}: missing or not a string"))?;
        Expires::parse(s).map_err(|_| format!("custom.{f}: {s:?} is not an ISO-8601 instant"))?;
    }
    match obj.get("targetFormat") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if TARGET_FORMATS.contains(&s.as_str()) => {}
        Some(v) => {
            return Err(format!(
                "custom.targetFormat: {v} is not BINARY, OSTREE or null"
            ))
        }
    }
    if !matches!(
        obj.get("uri"),
        None | Some(Value::Null) | Some(Value::String(_))
    ) {
        return Err("custom.uri: must be a string or null".into());
    }
    if !matches!(
        obj.get("cliUploaded"),
        None | Some(Value::Null) | Some(Value::Bool(_))
    ) {
        return Err("custom.cliUploaded: must be a boolean".into());
    }
    Ok(())
}

/// Ids (computed from the keys, §6.3) of every key a root lists.
pub(super) fn listed_key_ids(signed: &Value) -> BTreeSet<String> {
    signed
        .get("keys")
        .and_then(Value::as_object)
        .map(|o| {
            o.values()
                .filter_map(|k| PublicKey::from_json(k, true).ok())
                .map(|k| k.key_id().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `PUT targets` step 1: with a targets role stored (its checksum `current`), the
/// upload must name it in `x-ats-role-checksum`; a malformed header counts as absent.
pub(super) fn checksum_precondition(
    current: Option<&str>,
    header: Option<&str>,
) -> Result<(), ApiError> {
    let Some(current) = current else {
        return Ok(());
    };
    match header.filter(|c| Sha256::parse(c).is_ok()) {
        None => Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "role_checksum_not_provided",
            "A targets role already exists, but no previous checksum was sent",
        )),
        Some(c) if c != current => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "role_checksum_mismatch",
            "Provided checksum of previous role does not match current checksum",
        )),
        Some(_) => Ok(()),
    }
}

/// `PUT targets` step 7: an uploaded targets role replaces version `old` with exactly
/// `old + 1` (any version when none is stored).
pub(super) fn targets_version_bump(old: Option<u64>, new: u64) -> Result<(), ApiError> {
    match old {
        Some(old) if new != old.saturating_add(1) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_version_bump",
            format!("Cannot bump version from {old} to {new}"),
        )),
        _ => Ok(()),
    }
}

/// `PUT targets` steps 3–5, every error together: a threshold of `root`'s targets keys
/// signed `message`, the delegations block is valid and so is every new or changed
/// item (`existing`: the names the stored targets role holds).
pub(super) fn targets_errors(
    root: &RootRole,
    existing: &BTreeSet<String>,
    targets: &TargetsRole,
    doc: &SignedPayload,
    message: &[u8],
) -> Vec<String> {
    let mut errors = match root.roles.get("targets") {
        Some(r) => threshold_errors(&root.keys, &r.keyids, r.threshold, &doc.signatures, message),
        None => vec!["root.json has no targets role".to_string()],
    };
    errors.extend(delegation_errors(&doc.signed));
    errors.extend(item_errors(targets, existing));
    errors
}

/// A delegated role as the targets role defines it: its keys, key ids and threshold.
pub(super) struct DelegatedRole {
    /// `delegations.keys`, those that decode.
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// The role's `keyids`, those that are key ids.
    pub keyids: Vec<KeyId>,
    /// The role's `threshold` (0 when absent, so nothing verifies).
    pub threshold: i64,
}

/// The delegated role `name` of the targets role `targets_signed`, if it defines one.
pub(super) fn delegated_role(targets_signed: &Value, name: &str) -> Option<DelegatedRole> {
    let delegations = targets_signed.get("delegations")?;
    let role = delegations
        .get("roles")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("name").and_then(Value::as_str) == Some(name))?;
    let keys = delegations
        .get("keys")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(id, k)| Some((KeyId::parse(id).ok()?, PublicKey::from_json(k, true).ok()?)))
        .collect();
    let keyids = role
        .get("keyids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().and_then(|s| KeyId::parse(s).ok()))
        .collect();
    let threshold = role.get("threshold").and_then(Value::as_i64).unwrap_or(0);
    Some(DelegatedRole {
        keys,
        keyids,
        threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn custom_rules() {
        let ok = json!({"name":"a","version":"1","hardwareIds":["x"],"createdAt":"2025-01-01T00:00:00Z","updatedAt":"2025-01-01T00:00:00Z","targetFormat":null,"uri":null});
        assert!(check_custom(&ok).is_ok());
        let mut bad = ok.clone();
        bad.as_object_mut().unwrap().remove("createdAt");
        assert!(check_custom(&bad).unwrap_err().contains("createdAt"));
        let mut bad = ok.clone();
        bad["targetFormat"] = json!("ZIP");
        assert!(check_custom(&bad).is_err());
    }

    fn targets_doc(targets: Value) -> (SignedPayload, Vec<u8>) {
        let signed = json!({"_type": "Targets", "expires": "2030-01-01T00:00:00Z",
                            "targets": targets, "version": 2});
        let bytes = serde_json::to_vec(&signed).unwrap();
        (
            SignedPayload {
                signatures: vec![],
                signed,
            },
            bytes,
        )
    }

    #[test]
    fn decode_refuses_other_hash_methods_and_signature_methods() {
        let (_, bytes) = targets_doc(json!({"a-1": {"hashes": {"sha512": "00"}, "length": 1}}));
        assert!(decode_targets(&[], &bytes).is_err());
        let (_, bytes) =
            targets_doc(json!({"a-1": {"hashes": {"sha256": "0".repeat(64)}, "length": 1}}));
        let role = decode_targets(&[], &bytes).unwrap();
        assert_eq!(role.version, 2);
        let sig = Signature {
            keyid: KeyId::parse(&"a".repeat(64)).unwrap(),
            method: "md5".into(),
            sig: "AA==".into(),
        };
        assert!(decode_targets(&[sig], &bytes)
            .unwrap_err()
            .contains("unknown signature method"));
    }

    #[test]
    fn threshold_counts_valid_signatures_by_listed_keys_only() {
        let key = crate::keys::PrivateKey::generate(crate::keys::KeyType::Ed25519, None).unwrap();
        let handle = crate::keyref::KeyHandle::software(&key, "test").unwrap();
        let (doc, _) = targets_doc(json!({}));
        let message = CanonicalJson::of(&doc.signed);
        let sigs = [Signature::by(&handle, message.as_bytes()).unwrap()];
        let keys = BTreeMap::from([(key.key_id(), key.public().clone())]);
        let ids = [key.key_id()];
        assert!(threshold_errors(&keys, &ids, 1, &sigs, message.as_bytes()).is_empty());
        assert!(!threshold_errors(&keys, &ids, 2, &sigs, message.as_bytes()).is_empty());
        assert!(!threshold_errors(&keys, &ids, 1, &sigs, b"other").is_empty());
        assert!(!threshold_errors(&keys, &[], 1, &sigs, message.as_bytes()).is_empty());
    }

    #[test]
    fn delegations_and_items() {
        let d = json!({"delegations": {"keys": {}, "roles": [{"name": ".bad", "keyids": ["x"]}]}});
        let errors = delegation_errors(&d);
        assert_eq!(errors.len(), 2, "{errors:?}");
        let (_, bytes) =
            targets_doc(json!({"new-1": {"hashes": {"sha256": "0".repeat(64)}, "length": 1}}));
        let role = decode_targets(&[], &bytes).unwrap();
        assert!(item_errors(&role, &BTreeSet::new())[0].contains("must contain custom metadata"));
        assert!(item_errors(&role, &BTreeSet::from(["new-1".to_string()])).is_empty());
    }

    #[test]
    fn checksum_and_version_preconditions() {
        let c = "a".repeat(64);
        assert!(checksum_precondition(None, None).is_ok());
        assert!(checksum_precondition(Some(&c), Some(&c)).is_ok());
        let e = checksum_precondition(Some(&c), None).unwrap_err();
        assert_eq!(e.status, StatusCode::PRECONDITION_REQUIRED);
        let e = checksum_precondition(Some(&c), Some("not-hex")).unwrap_err();
        assert_eq!(e.code, "role_checksum_not_provided");
        let e = checksum_precondition(Some(&c), Some(&"b".repeat(64))).unwrap_err();
        assert_eq!(e.code, "role_checksum_mismatch");
        assert!(targets_version_bump(None, 7).is_ok());
        assert!(targets_version_bump(Some(1), 2).is_ok());
        assert_eq!(
            targets_version_bump(Some(1), 3).unwrap_err().status,
            StatusCode::CONFLICT
        );
        assert!(targets_version_bump(Some(2), 2).is_err());
    }

    #[test]
    fn delegated_roles_and_listed_keys() {
        let key = crate::keys::PrivateKey::generate(crate::keys::KeyType::Ed25519, None).unwrap();
        let id = key.key_id().to_string();
        let public = key.public().to_json();
        let targets = json!({"delegations": {"keys": {id.clone(): public.clone(), "zz": public},
            "roles": [{"name": "team", "keyids": [id.clone(), 5], "threshold": 1}]}});
        let role = delegated_role(&targets, "team").unwrap();
        assert_eq!(role.keys.len(), 1);
        assert_eq!(role.keyids, vec![key.key_id()]);
        assert_eq!(role.threshold, 1);
        assert!(delegated_role(&targets, "other").is_none());
        assert!(delegated_role(&json!({}), "team").is_none());
        let root = json!({"keys": {"whatever": key.public().to_json(), "x": 1}});
        assert_eq!(listed_key_ids(&root), BTreeSet::from([id]));
        assert!(listed_key_ids(&json!({})).is_empty());
    }
}
