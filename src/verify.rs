//! Signature thresholds and the root chain rule, as the ota-tuf servers and aktualizr
//! apply them (reference/reposerver.md §3.1, §3.2, §7).
//!
//! Key ids are taken as the root lists them (aktualizr never recomputes them, and some
//! real roots use other conventions). A signature with a method outside the whitelist,
//! or a key id appearing twice among the signatures, aborts the whole verification, as
//! on devices; signatures by keys the role does not list are skipped.

use crate::canonical::CanonicalJson;
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::metadata::{Signature, SignedPayload, TargetsRole};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const METHODS: [&str; 3] = ["rsassa-pss", "rsassa-pss-sha256", "ed25519"];
const MAX_THRESHOLD: i64 = 1000;

/// The keys and roles of a root, read leniently from its raw `signed` value.
pub struct TrustedRoot {
    version: u64,
    keys: KeyMap,
    roles: BTreeMap<String, (Vec<String>, i64)>,
}

impl TrustedRoot {
    /// `signed` is a root's `signed` value; `what` names it in errors.
    pub fn from_signed(signed: &Value, what: &str) -> Result<Self> {
        let t = signed.get("_type").and_then(Value::as_str).unwrap_or("");
        if !t.eq_ignore_ascii_case("root") {
            return Err(Error::invalid(
                format!("{what}: _type"),
                format!("expected \"Root\", found {t:?}"),
            ));
        }
        let version = signed
            .get("version")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                Error::invalid(format!("{what}: version"), "missing or not an integer")
            })?;
        let keys = parse_keys(signed.get("keys"), &format!("{what}: keys"))?;
        let roles = signed
            .get("roles")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::invalid(format!("{what}: roles"), "missing or not an object"))?
            .iter()
            .map(|(name, r)| (name.to_ascii_lowercase(), role_keys(r)))
            .collect();
        Ok(TrustedRoot {
            version,
            keys,
            roles,
        })
    }

    /// The keys a targets document's `delegations` block trusts for the delegated role
    /// `name` (its `keyids` and `threshold`), in the role slot `name`.
    pub fn for_delegation(delegations: &Value, name: &str, what: &str) -> Result<Self> {
        let keys = parse_keys(
            delegations.get("keys"),
            &format!("{what}: delegations.keys"),
        )?;
        let roles = delegations
            .get("roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.get("name").and_then(Value::as_str) == Some(name))
            .map(|r| (name.to_string(), role_keys(r)))
            .collect();
        Ok(TrustedRoot {
            version: 0,
            keys,
            roles,
        })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The ids root lists for `role`.
    pub fn role_key_ids(&self, role: &str) -> Vec<String> {
        self.roles
            .get(role)
            .map(|r| r.0.clone())
            .unwrap_or_default()
    }

    pub fn threshold(&self, role: &str) -> i64 {
        self.roles.get(role).map(|r| r.1).unwrap_or(0)
    }

    /// Verifies `doc` against `role`'s keys and threshold; returns the number of valid
    /// signatures by keys of the role. The error lists every reason.
    pub fn verify(&self, role: &str, doc: &SignedPayload, what: &str) -> Result<usize> {
        self.check_signatures(role, doc)
            .map_err(|(_, msg)| Error::verification(what, msg))
    }

    /// [`Self::verify`] with the device rule that failed: `signature-method`,
    /// `duplicate-signature`, `threshold` or `signatures`.
    pub fn check_signatures(
        &self,
        role: &str,
        doc: &SignedPayload,
    ) -> std::result::Result<usize, (&'static str, String)> {
        let message = CanonicalJson::of(&doc.signed);
        self.check_signature_bytes(role, &doc.signatures, message.as_bytes())
    }

    /// As [`Self::verify`], over `signatures` and the canonical bytes they sign.
    pub fn verify_bytes(
        &self,
        role: &str,
        signatures: &[Signature],
        message: &[u8],
        what: &str,
    ) -> Result<usize> {
        self.check_signature_bytes(role, signatures, message)
            .map_err(|(_, msg)| Error::verification(what, msg))
    }

    fn check_signature_bytes(
        &self,
        role: &str,
        signatures: &[Signature],
        message: &[u8],
    ) -> std::result::Result<usize, (&'static str, String)> {
        let (ids, threshold) = self
            .roles
            .get(role)
            .ok_or_else(|| ("threshold", format!("the trusted root has no {role} role")))?;
        if !(1..=MAX_THRESHOLD).contains(threshold) {
            return Err((
                "threshold",
                format!("the {role} role's threshold {threshold} is outside 1..{MAX_THRESHOLD}"),
            ));
        }
        let mut seen = BTreeSet::new();
        for s in signatures {
            if !METHODS.contains(&s.method.to_ascii_lowercase().as_str()) {
                return Err((
                    "signature-method",
                    format!("signature by key {} uses the unsupported method {:?} (devices accept only ed25519 and rsassa-pss-sha256)", s.keyid, s.method),
                ));
            }
            if !seen.insert(s.keyid.as_str()) {
                return Err((
                    "duplicate-signature",
                    format!("key {} signed more than once", s.keyid),
                ));
            }
        }
        let mut valid = 0usize;
        let mut problems = Vec::new();
        for s in signatures {
            if !ids.iter().any(|id| s.keyid == *id) {
                continue;
            }
            match self.keys.get(s.keyid.as_str()) {
                None => problems.push(format!(
                    "key {} is listed for {role} but missing from root keys",
                    s.keyid
                )),
                Some(Err(e)) => problems.push(format!("key {} cannot be used: {e}", s.keyid)),
                Some(Ok(key)) => {
                    if key.verify(&s.method.to_ascii_lowercase(), message, &s.sig) {
                        valid += 1;
                    } else {
                        problems.push(format!("invalid signature for key {}", s.keyid));
                    }
                }
            }
        }
        if valid as i64 >= *threshold {
            return Ok(valid);
        }
        let mut msg = format!(
            "{valid} valid signature(s) by {role} keys of root v{}, {threshold} required",
            self.version
        );
        if signatures
            .iter()
            .all(|s| !ids.iter().any(|id| s.keyid == *id))
        {
            msg.push_str(&format!(
                "; no signature is by a key root lists for {role} (signed by: {}; root expects: {})",
                signatures.iter().map(|s| s.keyid.as_str()).collect::<Vec<_>>().join(", "),
                ids.join(", ")
            ));
        }
        for p in problems {
            msg.push_str("; ");
            msg.push_str(&p);
        }
        Err(("signatures", msg))
    }
}

type KeyMap = BTreeMap<String, std::result::Result<PublicKey, String>>;

/// A `keys` object, each key parsed leniently (an unusable key fails only the
/// signatures made with it).
fn parse_keys(keys: Option<&Value>, what: &str) -> Result<KeyMap> {
    Ok(keys
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid(what, "missing or not an object"))?
        .iter()
        .map(|(id, v)| {
            (
                id.clone(),
                PublicKey::from_json(v, true).map_err(|e| e.to_string()),
            )
        })
        .collect())
}

/// `{"keyids": […], "threshold": n}`, leniently (a bad threshold fails verification).
fn role_keys(r: &Value) -> (Vec<String>, i64) {
    let ids = r
        .get("keyids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (ids, r.get("threshold").and_then(Value::as_i64).unwrap_or(0))
}

/// A root that is signed by a threshold of its own root keys.
pub fn verify_self_signed_root(doc: &SignedPayload, what: &str) -> Result<TrustedRoot> {
    let root = TrustedRoot::from_signed(&doc.signed, what)?;
    root.verify("root", doc, what)?;
    Ok(root)
}

/// The chain rule: `new` must have version old+1 and be signed by a threshold of the
/// old root's root keys and a threshold of its own root keys.
pub fn verify_root_update(
    old: &TrustedRoot,
    new: &SignedPayload,
    what: &str,
) -> Result<TrustedRoot> {
    let next = TrustedRoot::from_signed(&new.signed, what)?;
    if next.version != old.version + 1 {
        return Err(Error::verification(
            what,
            format!(
                "root version {} does not follow trusted version {} (must be exactly +1)",
                next.version, old.version
            ),
        ));
    }
    old.verify(
        "root",
        new,
        &format!("{what} (against the keys of root v{})", old.version),
    )?;
    next.verify("root", new, &format!("{what} (against its own root keys)"))?;
    Ok(next)
}

/// Walks a server's root chain from `trusted` as aktualizr does: fetch version v+1,
/// v+2, … until the server has none (`fetch` returns `None`), checking every step with
/// [`verify_root_update`]. Returns the roots that were accepted, oldest first (empty
/// when `trusted` is already the latest). `max_steps` bounds a hostile server.
pub fn walk_root_chain(
    trusted: &SignedPayload,
    what: &str,
    max_steps: u64,
    mut fetch: impl FnMut(u64) -> Result<Option<SignedPayload>>,
) -> Result<Vec<SignedPayload>> {
    let mut current = TrustedRoot::from_signed(&trusted.signed, what)?;
    let mut accepted = Vec::new();
    for _ in 0..max_steps {
        let next_version = current.version() + 1;
        let Some(next) = fetch(next_version)? else {
            return Ok(accepted);
        };
        current = verify_root_update(&current, &next, &format!("{next_version}.root.json"))?;
        accepted.push(next);
    }
    Err(Error::verification(
        what,
        format!("the server offers more than {max_steps} new root versions; refusing to follow"),
    ))
}

/// A pulled targets.json, checked against root's targets role and decoded. Failure is
/// garage-sign's `TargetsPullError` (exit 1).
pub fn verified_targets(trusted: &TrustedRoot, payload: &SignedPayload) -> Result<TargetsRole> {
    trusted.verify("targets", payload, "targets.json").map_err(|e| {
        Error::Explained(format!(
            "TargetsPullError: the server's targets.json is not signed by a threshold of root's targets keys: {e}"
        ))
    })?;
    TargetsRole::from_signed(&payload.signed, "targets.json")
}

pub mod device;
