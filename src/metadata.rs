//! Signed metadata in ota-tuf's encoding (reference/garage-sign.md §5).
//!
//! Signing re-encodes the typed model, as garage-sign does: unknown top-level fields
//! are dropped, `custom` objects are kept verbatim (so `"uri": null` stays part of the
//! signed bytes), `expires` is always `YYYY-MM-DDTHH:MM:SSZ`. Verification, on the
//! other hand, always works on the raw `signed` value as received.

use crate::canonical::{check_interop, CanonicalJson};
use crate::crypto;
use crate::error::{Error, Result};
use crate::keys::{KeyId, PrivateKey, PublicKey};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// `{"keyid": …, "method": …, "sig": <base64>}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub keyid: String,
    pub method: String,
    pub sig: String,
}

impl Signature {
    /// `key`'s signature over `message` (canonical JSON), checked before it is returned.
    pub fn by(key: &crate::keyref::KeyHandle, message: &[u8]) -> Result<Self> {
        Ok(Signature {
            keyid: key.key_id().to_string(),
            method: key.keytype().signature_method().to_string(),
            sig: key.sign_base64(message)?,
        })
    }
}

/// `{"signatures": […], "signed": …}` with `signed` kept as raw JSON.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SignedPayload {
    pub signatures: Vec<Signature>,
    pub signed: Value,
}

impl SignedPayload {
    /// Parses a signed document; `what` (a file name or URL) prefixes errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid(
                what,
                format!("not a signed TUF document ({{\"signatures\":[…],\"signed\":{{…}}}}): {e}"),
            )
        })
    }

    /// Signs `signed` with each key, in order.
    pub fn sign(signed: Value, keys: &[&PrivateKey]) -> Result<Self> {
        let handles = keys
            .iter()
            .map(|k| crate::keyref::KeyHandle::software(k, k.key_id().as_str()))
            .collect::<Result<Vec<_>>>()?;
        Self::sign_with(signed, &handles.iter().collect::<Vec<_>>())
    }

    /// Signs `signed` with each key, in order, wherever the keys live.
    pub fn sign_with(signed: Value, keys: &[&crate::keyref::KeyHandle]) -> Result<Self> {
        let message = CanonicalJson::of(&signed);
        let signatures = keys
            .iter()
            .map(|k| Signature::by(k, message.as_bytes()))
            .collect::<Result<Vec<_>>>()?;
        Ok(SignedPayload { signatures, signed })
    }

    /// The canonical bytes of the whole document: what the server serves and hashes.
    pub fn canonical(&self) -> CanonicalJson {
        let v = serde_json::json!({"signatures": self.signatures, "signed": self.signed});
        CanonicalJson::of(&v)
    }

    /// `x-ats-role-checksum`: sha256 of the canonical whole document.
    pub fn checksum(&self) -> String {
        crypto::sha256_hex(self.canonical().as_bytes())
    }

    pub fn version(&self) -> Option<u64> {
        self.signed.get("version").and_then(Value::as_u64)
    }
}

/// An `expires` instant, whole seconds, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expires(DateTime<Utc>);

impl Expires {
    pub fn new(t: DateTime<Utc>) -> Self {
        Expires(t.trunc_subsecs(0))
    }

    pub fn now() -> Self {
        Self::new(Utc::now())
    }

    /// ISO-8601 with offset, fractions accepted (as ota-tuf's decoder), then truncated.
    pub fn parse(s: &str) -> Result<Self> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| Self::new(t.with_timezone(&Utc)))
            .map_err(|e| {
                Error::invalid(
                    format!("expires {s:?}"),
                    format!("not an ISO-8601 instant like 2030-01-01T00:00:00Z: {e}"),
                )
            })
    }

    pub fn datetime(&self) -> DateTime<Utc> {
        self.0
    }

    pub fn is_past(&self) -> bool {
        self.0 < Utc::now()
    }
}

impl fmt::Display for Expires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The only form aktualizr accepts: exactly 20 characters ending in Z.
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%SZ"))
    }
}

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Expires::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `{"keyids": […], "threshold": n}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: i64,
}

/// Serde adapter: root `keys` entries are ota-tuf key objects, decoded strictly.
mod key_map {
    use super::*;
    pub fn serialize<S: Serializer>(
        keys: &BTreeMap<String, PublicKey>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let m: BTreeMap<&String, Value> = keys.iter().map(|(k, v)| (k, v.to_json())).collect();
        m.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<BTreeMap<String, PublicKey>, D::Error> {
        let raw = BTreeMap::<String, Value>::deserialize(d)?;
        raw.into_iter()
            .map(|(id, v)| {
                PublicKey::from_json(&v, false)
                    .map(|k| (id.clone(), k))
                    .map_err(|e| serde::de::Error::custom(format!("keys.{id}: {e}")))
            })
            .collect()
    }
}

/// root.json's `signed` part, exactly the fields ota-tuf's encoder writes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RootRole {
    #[serde(rename = "_type")]
    pub role_type: String,
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub expires: Expires,
    #[serde(with = "key_map")]
    pub keys: BTreeMap<String, PublicKey>,
    pub roles: BTreeMap<String, RoleKeys>,
    pub version: u64,
}

/// targets.json's `signed` part.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TargetsRole {
    #[serde(rename = "_type")]
    pub role_type: String,
    pub expires: Expires,
    pub targets: BTreeMap<String, TargetItem>,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

/// One entry of `targets`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TargetItem {
    pub hashes: BTreeMap<String, String>,
    pub length: u64,
    #[serde(default)]
    pub custom: Option<Value>,
}

fn decode_role<T: serde::de::DeserializeOwned>(
    signed: &Value,
    expected: &str,
    what: &str,
) -> Result<T> {
    let t = signed.get("_type").and_then(Value::as_str).unwrap_or("");
    if !t.eq_ignore_ascii_case(expected) {
        return Err(Error::invalid(
            format!("{what}: _type"),
            format!("expected {expected:?}, found {t:?}"),
        ));
    }
    serde_json::from_value(signed.clone()).map_err(|e| Error::invalid(what, e.to_string()))
}

fn encode_role<T: Serialize>(role: &T, what: &str) -> Result<Value> {
    let v = serde_json::to_value(role)
        .map_err(|e| Error::Other(format!("{what}: cannot encode: {e}")))?;
    check_interop(&v, what)?;
    Ok(v)
}

impl RootRole {
    pub fn from_signed(signed: &Value, what: &str) -> Result<Self> {
        let mut r: RootRole = decode_role(signed, "Root", what)?;
        r.role_type = "Root".into();
        Ok(r)
    }

    /// The `signed` value to sign: ota-tuf's encoding, refusing what aktualizr would
    /// canonicalise differently.
    pub fn to_signed(&self) -> Result<Value> {
        encode_role(self, "root.json")
    }

    pub fn role(&self, name: &str) -> Result<&RoleKeys> {
        self.roles
            .get(name)
            .ok_or_else(|| Error::invalid("root.json", format!("roles.{name} is missing")))
    }

    /// The public keys of role `name`, with the ids as root lists them.
    pub fn role_keys(&self, name: &str) -> Result<Vec<(String, &PublicKey)>> {
        Ok(self
            .role(name)?
            .keyids
            .iter()
            .filter_map(|id| self.keys.get(id).map(|k| (id.clone(), k)))
            .collect())
    }

    /// Drops keys no role references, as garage-sign does after editing roles.
    pub fn prune_keys(&mut self) {
        let used: std::collections::BTreeSet<&String> =
            self.roles.values().flat_map(|r| r.keyids.iter()).collect();
        let keep: Vec<String> = self
            .keys
            .keys()
            .filter(|k| used.contains(k))
            .cloned()
            .collect();
        self.keys.retain(|k, _| keep.contains(k));
    }

    /// Adds `key` to role `name` (and to `keys`).
    pub fn add_role_key(&mut self, name: &str, key: &PublicKey) -> Result<KeyId> {
        let id = key.key_id();
        self.keys.insert(id.to_string(), key.clone());
        let role = self
            .roles
            .get_mut(name)
            .ok_or_else(|| Error::invalid("root.json", format!("roles.{name} is missing")))?;
        if !role.keyids.iter().any(|k| k == id.as_str()) {
            role.keyids.push(id.to_string());
        }
        Ok(id)
    }
}

impl TargetsRole {
    pub fn new(version: u64, expires: Expires) -> Self {
        TargetsRole {
            role_type: "Targets".into(),
            expires,
            targets: BTreeMap::new(),
            version,
            delegations: None,
            custom: None,
        }
    }

    pub fn from_signed(signed: &Value, what: &str) -> Result<Self> {
        let mut t: TargetsRole = decode_role(signed, "Targets", what)?;
        t.role_type = "Targets".into();
        Ok(t)
    }

    pub fn to_signed(&self) -> Result<Value> {
        encode_role(self, "targets.json")
    }
}

/// Target format as written in `custom.targetFormat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetFormat {
    Binary,
    Ostree,
}

impl TargetFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetFormat::Binary => "BINARY",
            TargetFormat::Ostree => "OSTREE",
        }
    }

    /// Case-insensitive, as garage-sign's `--format`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "BINARY" => Ok(TargetFormat::Binary),
            "OSTREE" => Ok(TargetFormat::Ostree),
            _ => Err(Error::Usage(format!(
                "invalid format {s:?}: use binary or ostree"
            ))),
        }
    }
}

/// What `targets add` / `add-uploaded` / `publish` know about a new target.
#[derive(Clone, Debug)]
pub struct NewTarget {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub length: u64,
    pub hardware_ids: Vec<String>,
    pub format: TargetFormat,
    pub url: Option<String>,
    pub cli_uploaded: bool,
    /// UP's `--customMeta`: deep-merged into `custom` last.
    pub custom_meta: Option<serde_json::Map<String, Value>>,
}

/// Fields `--customMeta` may not override (uptane-sign's rule).
const RESERVED_CUSTOM: [&str; 6] = [
    "name",
    "version",
    "hardwareIds",
    "targetFormat",
    "uri",
    "cliUploaded",
];

impl NewTarget {
    /// `<name>-<version>`, garage-sign's target filename.
    pub fn filename(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    pub fn validate(&self) -> Result<()> {
        let filename = self.filename();
        if filename.len() >= 254
            || filename.contains("..")
            || self.name.is_empty()
            || self.version.is_empty()
        {
            return Err(Error::invalid(
                format!("target {filename:?}"),
                "a target filename (<name>-<version>) must be non-empty, shorter than 254 characters and must not contain \"..\"",
            ));
        }
        if !is_sha256_hex(&self.sha256) {
            return Err(Error::invalid(
                "--sha256",
                format!("{:?} is not 64 lower-case hex characters", self.sha256),
            ));
        }
        if self.hardware_ids.is_empty() {
            return Err(Error::invalid(
                "--hardwareids",
                "at least one hardware id is required; devices refuse targets without one",
            ));
        }
        if let Some(h) = self
            .hardware_ids
            .iter()
            .find(|h| h.len() > 200 || h.is_empty())
        {
            return Err(Error::invalid(
                "--hardwareids",
                format!("hardware id {h:?} must be 1 to 200 characters"),
            ));
        }
        if let Some(url) = &self.url {
            if url.len() > 2000 {
                return Err(Error::invalid(
                    "--url",
                    "the URL is longer than 2000 characters, which the reposerver refuses",
                ));
            }
        }
        if let Some(meta) = &self.custom_meta {
            if let Some(k) = meta.keys().find(|k| RESERVED_CUSTOM.contains(&k.as_str())) {
                return Err(Error::invalid(
                    "--customMeta",
                    format!("may not set the reserved field {k:?}"),
                ));
            }
        }
        Ok(())
    }

    /// The entry for `targets`. `createdAt` is kept from `existing_custom` (garage-sign
    /// 0.7.7) and other existing `custom` fields are preserved.
    pub fn item(&self, existing_custom: Option<&Value>, now: Expires) -> Result<TargetItem> {
        self.validate()?;
        let filename = self.filename();
        let mut custom = match existing_custom {
            Some(Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        };
        let created = custom
            .get("createdAt")
            .and_then(Value::as_str)
            .and_then(|s| Expires::parse(s).ok())
            .unwrap_or(now);
        let mut set = |k: &str, v: Value| {
            custom.insert(k.to_string(), v);
        };
        set("name", Value::from(self.name.clone()));
        set("version", Value::from(self.version.clone()));
        set("hardwareIds", Value::from(self.hardware_ids.clone()));
        set("targetFormat", Value::from(self.format.as_str()));
        set(
            "uri",
            self.url.clone().map(Value::from).unwrap_or(Value::Null),
        );
        set("cliUploaded", Value::from(self.cli_uploaded));
        set("createdAt", Value::from(created.to_string()));
        set("updatedAt", Value::from(now.to_string()));
        let mut custom = Value::Object(custom);
        if let Some(meta) = &self.custom_meta {
            deep_merge(&mut custom, &Value::Object(meta.clone()));
        }
        let item = TargetItem {
            hashes: BTreeMap::from([("sha256".to_string(), self.sha256.clone())]),
            length: self.length,
            custom: Some(custom),
        };
        // garage-sign 0.7.7 refuses code points above 0x7F in the filename and item.
        check_interop(&Value::from(filename.clone()), "target filename")?;
        check_interop(
            &crate::error::to_json_value(&item, &format!("target {filename}"))?,
            &format!("target {filename}"),
        )?;
        Ok(item)
    }

    /// Adds or replaces this target in `role`.
    pub fn apply(&self, role: &mut TargetsRole, now: Expires) -> Result<()> {
        let filename = self.filename();
        let item = self.item(
            role.targets.get(&filename).and_then(|t| t.custom.as_ref()),
            now,
        )?;
        role.targets.insert(filename, item);
        Ok(())
    }
}

/// Deep-merges `patch` into `base` (objects recursively, everything else replaced).
pub fn deep_merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// A sha256 as TUF metadata spells it: 64 lower-case hex characters.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
