//! Signed metadata in ota-tuf's encoding (reference/garage-sign.md §5).
//!
//! Signing re-encodes the typed model, as garage-sign does: unknown top-level fields
//! are dropped, `custom` objects are kept verbatim (so `"uri": null` stays part of the
//! signed bytes), `expires` is always `YYYY-MM-DDTHH:MM:SSZ`. Verification, on the
//! other hand, always works on the raw `signed` value as received.

use crate::canonical::{check_interop, CanonicalJson};
use crate::crypto;
use crate::error::{Error, Result};
use crate::keys::{PrivateKey, PublicKey};
use crate::schema::{HardwareId, KeyId, Sha256, TargetName};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

mod halves;

/// `{"keyid": …, "method": …, "sig": <base64>}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub keyid: KeyId,
    pub method: String,
    pub sig: String,
}

impl Signature {
    /// `key`'s signature over `message` (canonical JSON), checked before it is returned.
    pub fn by(key: &crate::keyref::KeyHandle, message: &[u8]) -> Result<Self> {
        let unchecked = key.sign_unchecked(message)?;
        unchecked.check(message)?;
        Ok(Signature::unchecked(&unchecked))
    }

    /// The signature object of a signature whose check is still to run.
    pub fn unchecked(s: &crate::keyref::UncheckedSignature) -> Self {
        Signature {
            keyid: s.key_id(),
            method: s.method().to_string(),
            sig: s.sig().to_string(),
        }
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
        // `{signatures, signed}` is already in canonical key order; written directly
        // (no copy of `signed` into a new tree). Encoding these types cannot fail.
        CanonicalJson::of_serialize(self).unwrap_or_else(|_| {
            let v = serde_json::json!({"signatures": self.signatures, "signed": self.signed});
            CanonicalJson::of(&v)
        })
    }

    /// `x-ats-role-checksum`: sha256 of the canonical whole document.
    pub fn checksum(&self) -> String {
        crypto::sha256_hex(self.canonical().as_bytes())
    }

    pub fn version(&self) -> Option<u64> {
        self.signed.get("version").and_then(Value::as_u64)
    }
}

/// A signed document in its encoded form: the canonical bytes of `signed`, encoded once
/// and reused for the signatures, the whole document (checksum, PUT body) and the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Signed {
    pub signatures: Vec<Signature>,
    signed: CanonicalJson,
}

impl Signed {
    /// `signed` (canonical bytes) with these signatures.
    pub fn new(signed: CanonicalJson, signatures: Vec<Signature>) -> Self {
        Signed { signatures, signed }
    }

    /// Signs the canonical bytes `signed` with each key, in order.
    pub fn sign(signed: CanonicalJson, keys: &[&crate::keyref::KeyHandle]) -> Result<Self> {
        let signatures = keys
            .iter()
            .map(|k| Signature::by(k, signed.as_bytes()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Signed { signatures, signed })
    }

    /// The canonical bytes that were signed.
    pub fn signed_bytes(&self) -> &CanonicalJson {
        &self.signed
    }

    /// The canonical whole document, `{"signatures":[…],"signed":…}`, joined from the
    /// already encoded parts.
    pub fn canonical(&self) -> CanonicalJson {
        CanonicalJson::join(&self.parts(&self.signatures_canonical()))
    }

    /// The length of [`Self::canonical`], without joining.
    pub fn canonical_len(&self) -> usize {
        self.parts(&self.signatures_canonical())
            .iter()
            .map(|p| p.len())
            .sum()
    }

    /// garage-sign's file layout of the whole document, without joining it first.
    pub fn pretty(&self) -> Vec<u8> {
        crate::canonical::pretty_from_parts(&self.parts(&self.signatures_canonical()))
    }

    /// [`Self::pretty`] streamed into `w` (no copy of the file in memory).
    pub fn write_pretty(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        crate::canonical::write_pretty_parts(w, &self.parts(&self.signatures_canonical()))
    }

    /// The start of [`Self::pretty`], up to where the signed part begins: its length
    /// depends only on the signatures' key ids, methods and lengths.
    pub fn pretty_head(&self) -> Vec<u8> {
        Self::pretty_head_for(&self.signatures)
    }

    /// [`Self::pretty_head`] of a document with these signatures.
    pub fn pretty_head_for(signatures: &[Signature]) -> Vec<u8> {
        let sigs = signatures_canonical(signatures);
        crate::canonical::pretty_from_parts(&[
            b"{\"signatures\":",
            sigs.as_bytes(),
            b",\"signed\":",
        ])
    }

    /// The rest of [`Self::pretty`] after [`Self::pretty_head`], for the document that
    /// signs `signed`: it does not depend on the signatures, so it can be written
    /// before they exist.
    pub fn write_pretty_body(
        signed: &CanonicalJson,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        crate::canonical::PrettyLayout::at_depth(1).write(w, &[signed.as_bytes(), b"}"])
    }

    fn signatures_canonical(&self) -> CanonicalJson {
        signatures_canonical(&self.signatures)
    }

    fn parts<'a>(&'a self, sigs: &'a CanonicalJson) -> [&'a [u8]; 5] {
        [
            b"{\"signatures\":",
            sigs.as_bytes(),
            b",\"signed\":",
            self.signed.as_bytes(),
            b"}",
        ]
    }

    /// The `Value` form, for code that inspects the document generically.
    pub fn to_payload(&self) -> Result<SignedPayload> {
        let signed = serde_json::from_slice(self.signed.as_bytes())
            .map_err(|e| Error::Other(format!("cannot decode signed metadata: {e}")))?;
        Ok(SignedPayload {
            signatures: self.signatures.clone(),
            signed,
        })
    }
}

fn signatures_canonical(signatures: &[Signature]) -> CanonicalJson {
    CanonicalJson::of_serialize(signatures).unwrap_or_else(|_| {
        CanonicalJson::of(&serde_json::to_value(signatures).unwrap_or(Value::Null))
    })
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
    pub keyids: Vec<KeyId>,
    pub threshold: i64,
}

/// Serde adapter: root `keys` entries are ota-tuf key objects, decoded strictly.
mod key_map {
    use super::*;
    pub fn serialize<S: Serializer>(
        keys: &BTreeMap<KeyId, PublicKey>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let m: BTreeMap<&KeyId, Value> = keys.iter().map(|(k, v)| (k, v.to_json())).collect();
        m.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<BTreeMap<KeyId, PublicKey>, D::Error> {
        let raw = BTreeMap::<KeyId, Value>::deserialize(d)?;
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
    pub keys: BTreeMap<KeyId, PublicKey>,
    pub roles: BTreeMap<String, RoleKeys>,
    pub version: u64,
}

/// targets.json's `signed` part.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TargetsRole {
    #[serde(rename = "_type")]
    pub role_type: String,
    pub expires: Expires,
    #[serde(deserialize_with = "sorted_map")]
    pub targets: BTreeMap<TargetName, TargetItem>,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

/// A JSON object into a `BTreeMap`, built in one go from its entries: files list their
/// targets in key order, so this skips a search per insert. A repeated key keeps its
/// last value, as inserting does.
fn sorted_map<'de, D, K, V>(d: D) -> std::result::Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
{
    struct Entries<K, V>(std::marker::PhantomData<(K, V)>);
    impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> serde::de::Visitor<'de>
        for Entries<K, V>
    {
        type Value = BTreeMap<K, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries.into_iter().collect())
        }
    }
    d.deserialize_map(Entries(std::marker::PhantomData))
}

/// One entry of `targets`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TargetItem {
    pub hashes: Hashes,
    pub length: u64,
    #[serde(default)]
    pub custom: Option<RawJson>,
}

/// A target's `hashes`, method -> digest in key order. A sorted `Vec` (one entry in
/// practice) instead of a `BTreeMap`, whose node alone is ~0.5 KiB per target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hashes(Vec<(String, Sha256)>);

impl Hashes {
    /// The digest for `method` (`"sha256"`).
    pub fn get(&self, method: &str) -> Option<&Sha256> {
        self.0.iter().find(|(m, _)| m == method).map(|(_, h)| h)
    }

    /// The methods, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(m, _)| m)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, Sha256)> for Hashes {
    /// Sorted by method; a repeated method keeps its last digest (as a map does).
    fn from_iter<I: IntoIterator<Item = (String, Sha256)>>(iter: I) -> Self {
        let mut v: Vec<(String, Sha256)> = Vec::with_capacity(1);
        for (m, h) in iter {
            match v.binary_search_by(|(x, _)| x.as_str().cmp(m.as_str())) {
                Ok(i) => v[i].1 = h,
                Err(i) => v.insert(i, (m, h)),
            }
        }
        Hashes(v)
    }
}

impl<const N: usize> From<[(String, Sha256); N]> for Hashes {
    fn from(entries: [(String, Sha256); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl Serialize for Hashes {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(m, h)| (m, h)))
    }
}

impl<'de> Deserialize<'de> for Hashes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Hashes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of hash method to digest")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Hashes, A::Error> {
                let mut entries = Vec::with_capacity(1);
                while let Some(e) = map.next_entry::<String, Sha256>()? {
                    entries.push(e);
                }
                Ok(entries.into_iter().collect())
            }
        }
        d.deserialize_map(V)
    }
}

impl TargetItem {
    /// `custom` as a `Value` (parsed on demand: most items are only re-encoded).
    pub fn custom_value(&self) -> Option<Value> {
        self.custom.as_ref().map(RawJson::to_value)
    }
}

/// JSON kept as the text it was read as (`custom` objects: open, kept exactly, and
/// cheap to carry when there are 100,000 of them). Canonicalised when written.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(transparent)]
pub struct RawJson(Box<serde_json::value::RawValue>);

impl RawJson {
    pub fn from_value(v: &Value) -> Result<Self> {
        serde_json::value::to_raw_value(v)
            .map(RawJson)
            .map_err(|e| Error::Other(format!("cannot encode JSON: {e}")))
    }

    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get() || self.to_value() == other.to_value()
    }
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
    // Decoded from the borrowed tree: no copy of it.
    T::deserialize(signed).map_err(|e| Error::invalid(what, e.to_string()))
}

/// Decodes a role straight from the bytes of its `signed` object (no `Value` tree).
fn decode_role_bytes<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    role_type: impl Fn(&T) -> &str,
    expected: &str,
    what: &str,
) -> Result<T> {
    let role: T = serde_json::from_slice(bytes).map_err(|e| Error::invalid(what, e.to_string()))?;
    check_role_type(role_type(&role), expected, what)?;
    Ok(role)
}

/// A role's `_type`, compared as ota-tuf does (any case).
fn check_role_type(t: &str, expected: &str, what: &str) -> Result<()> {
    if !t.eq_ignore_ascii_case(expected) {
        return Err(Error::invalid(
            format!("{what}: _type"),
            format!("expected {expected:?}, found {t:?}"),
        ));
    }
    Ok(())
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

    /// The canonical bytes to sign, written directly from the typed model.
    pub fn canonical(&self) -> Result<CanonicalJson> {
        CanonicalJson::of_serialize_interop(self, "root.json")
    }

    pub fn role(&self, name: &str) -> Result<&RoleKeys> {
        self.roles
            .get(name)
            .ok_or_else(|| Error::invalid("root.json", format!("roles.{name} is missing")))
    }

    /// The public keys of role `name`, with the ids as root lists them.
    pub fn role_keys(&self, name: &str) -> Result<Vec<(KeyId, &PublicKey)>> {
        Ok(self
            .role(name)?
            .keyids
            .iter()
            .filter_map(|id| self.keys.get(id).map(|k| (id.clone(), k)))
            .collect())
    }

    /// Drops keys no role references, as garage-sign does after editing roles.
    pub fn prune_keys(&mut self) {
        let used: std::collections::BTreeSet<KeyId> = self
            .roles
            .values()
            .flat_map(|r| r.keyids.iter().cloned())
            .collect();
        self.keys.retain(|k, _| used.contains(k));
    }

    /// Adds `key` to role `name` (and to `keys`).
    pub fn add_role_key(&mut self, name: &str, key: &PublicKey) -> Result<KeyId> {
        let id = key.key_id();
        self.keys.insert(id.clone(), key.clone());
        let role = self
            .roles
            .get_mut(name)
            .ok_or_else(|| Error::invalid("root.json", format!("roles.{name} is missing")))?;
        if !role.keyids.contains(&id) {
            role.keyids.push(id.clone());
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

    /// As [`Self::from_slice`], from a buffer it may patch while decoding (it is left
    /// as it was): a large file in garage-sign's layout is decoded on two cores.
    pub fn from_vec(mut bytes: Vec<u8>, what: &str) -> Result<Self> {
        match halves::decode(&mut bytes) {
            Some(mut t) => {
                check_role_type(&t.role_type, "Targets", what)?;
                t.role_type = "Targets".into();
                Ok(t)
            }
            None => Self::from_slice(&bytes, what),
        }
    }

    /// Decodes targets.json's `signed` part directly from its bytes.
    pub fn from_slice(bytes: &[u8], what: &str) -> Result<Self> {
        let mut t: TargetsRole =
            decode_role_bytes(bytes, |t: &TargetsRole| &t.role_type, "Targets", what)?;
        t.role_type = "Targets".into();
        Ok(t)
    }

    /// The canonical bytes to sign, written directly from the typed model; refuses what
    /// aktualizr would canonicalise differently (as [`Self::to_signed`]).
    pub fn canonical(&self) -> Result<CanonicalJson> {
        CanonicalJson::of_serialize_interop(self, "targets.json")
    }

    /// [`Self::canonical`] of a role the caller owns, on two cores when it has many
    /// targets (half of them encoded on each, see [`CanonicalJson::spliced_halves`]).
    /// The targets come back so the caller decides when to free them.
    pub fn into_canonical(mut self) -> Result<(CanonicalJson, BTreeMap<TargetName, TargetItem>)> {
        let targets = std::mem::take(&mut self.targets);
        if targets.len() >= TWO_CORE_TARGETS {
            let shell = self.canonical()?;
            if let Some(mid) = targets.keys().nth(targets.len() / 2) {
                let low = Entries(targets.range::<TargetName, _>(..mid));
                let high = Entries(targets.range::<TargetName, _>(mid..));
                let version = self.version;
                if let Some(c) =
                    CanonicalJson::spliced_halves(shell, "targets", version, &low, &high)
                {
                    return Ok((c, targets));
                }
            }
        }
        self.targets = targets;
        let c = self.canonical()?;
        Ok((c, std::mem::take(&mut self.targets)))
    }
}

/// From this many targets on, [`TargetsRole::into_canonical`] uses two cores.
const TWO_CORE_TARGETS: usize = 4096;

/// Map entries serialized as a JSON object.
struct Entries<I>(I);

impl<'a, I> Serialize for Entries<I>
where
    I: Iterator<Item = (&'a TargetName, &'a TargetItem)> + Clone,
{
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.clone())
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
    pub sha256: Sha256,
    pub length: u64,
    pub hardware_ids: Vec<HardwareId>,
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

    /// [`Self::filename`], checked.
    pub fn target_name(&self) -> Result<TargetName> {
        if self.name.is_empty() || self.version.is_empty() {
            return Err(Error::invalid(
                "target",
                "a target needs a non-empty name and version",
            ));
        }
        TargetName::try_from(self.filename())
    }

    pub fn validate(&self) -> Result<()> {
        self.target_name()?;
        if self.hardware_ids.is_empty() {
            return Err(Error::invalid(
                "--hardwareids",
                "at least one hardware id is required; devices refuse targets without one",
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
        let filename = self.target_name()?;
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
        set(
            "hardwareIds",
            Value::from_iter(self.hardware_ids.iter().map(|h| h.as_str())),
        );
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
            hashes: Hashes::from([("sha256".to_string(), self.sha256.clone())]),
            length: self.length,
            custom: Some(RawJson::from_value(&custom)?),
        };
        // garage-sign 0.7.7 refuses code points above 0x7F in the filename and item.
        check_interop(&Value::from(filename.as_str()), "target filename")?;
        check_interop(
            &crate::error::to_json_value(&item, &format!("target {filename}"))?,
            &format!("target {filename}"),
        )?;
        Ok(item)
    }

    /// Adds or replaces this target in `role`.
    pub fn apply(&self, role: &mut TargetsRole, now: Expires) -> Result<()> {
        let filename = self.target_name()?;
        let item = self.item(
            role.targets
                .get(&filename)
                .and_then(TargetItem::custom_value)
                .as_ref(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_in_any_order_decode_to_the_same_map_and_a_repeated_one_keeps_its_last_value() {
        let item = |len: u64| {
            format!(
                r#"{{"hashes":{{"sha256":"{}"}},"length":{len}}}"#,
                "a".repeat(64)
            )
        };
        let doc = format!(
            r#"{{"_type":"Targets","expires":"2030-01-01T00:00:00Z","version":1,
               "targets":{{"b":{},"a":{},"c":{},"a":{}}}}}"#,
            item(1),
            item(2),
            item(3),
            item(4)
        );
        let role = TargetsRole::from_slice(doc.as_bytes(), "t").unwrap();
        let lengths: Vec<(&str, u64)> = role
            .targets
            .iter()
            .map(|(k, v)| (k.as_str(), v.length))
            .collect();
        assert_eq!(lengths, [("a", 4), ("b", 1), ("c", 3)]);
    }
}
