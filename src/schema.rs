//! Validated-once names and digests of the metadata model (tough's `schema` style).
//!
//! Each rule lives here once: a value of one of these types has been checked, whether
//! it came from a file (`Deserialize`), the command line (`FromStr`) or a server route
//! (`parse`). Everything else passes the typed value around instead of re-checking a
//! `String`.

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

/// 64 lower-case hex digits: a SHA-256 digest as ota-tuf writes and compares it.
fn is_lower_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A target filename the reposerver accepts (ota-tuf's `ValidTargetFilename`:
/// non-empty, shorter than 254 bytes, no `..`) that is also a safe URL path: no
/// control characters and no empty or `.` path segments.
fn target_name_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() >= 254 || s.contains("..") {
        Some("a target filename must be non-empty, shorter than 254 characters and must not contain \"..\"")
    } else if s.chars().any(char::is_control) || s.split('/').any(|p| p.is_empty() || p == ".") {
        Some(
            "a target filename must not contain control characters or empty or \".\" path segments",
        )
    } else {
        None
    }
}

/// ota-tuf's `DelegatedRoleName`: 1–50 of `[a-zA-Z0-9_.-]`, not starting with `.`.
fn delegation_name_problem(s: &str) -> Option<&'static str> {
    let ok = !s.is_empty()
        && s.len() <= 50
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    (!ok).then_some("a delegated role name is 1 to 50 of [a-zA-Z0-9_.-], not starting with '.'")
}

/// ota-tuf's `HardwareIdentifier`: 1–200 characters.
fn hardware_id_problem(s: &str) -> Option<&'static str> {
    let n = s.chars().count();
    (n == 0 || n > 200).then_some("a hardware id must be 1 to 200 characters")
}

macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $what:literal, $problem:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `s`; the error names the value and the rule.
            pub fn parse(s: &str) -> Result<Self> {
                Self::try_from(s.to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                let problem: fn(&str) -> Option<&'static str> = $problem;
                match problem(&s) {
                    None => Ok($name(s)),
                    Some(rule) => Err(Error::invalid(format!(concat!($what, " {:?}"), s), rule)),
                }
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<String> for $name {
            fn borrow(&self) -> &String {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::try_from(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_string!(
    /// A key id: `hex(sha256(DER SubjectPublicKeyInfo))`, 64 lower-case hex digits.
    KeyId,
    "key id",
    |s| (!is_lower_hex64(s)).then_some("a key id is 64 lower-case hex characters")
);

validated_string!(
    /// A SHA-256 digest in lower-case hex (target hashes, role checksums).
    Sha256,
    "sha256",
    |s| (!is_lower_hex64(s)).then_some("a sha256 is 64 lower-case hex characters")
);

validated_string!(
    /// A target filename (`<name>-<version>` for garage-sign targets).
    TargetName,
    "target filename",
    target_name_problem
);

validated_string!(
    /// The name of a delegated targets role.
    DelegationName,
    "delegated role name",
    delegation_name_problem
);

validated_string!(
    /// An ECU hardware identifier (`custom.hardwareIds`).
    HardwareId,
    "hardware id",
    hardware_id_problem
);

impl KeyId {
    /// The key id of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        KeyId(crate::crypto::sha256_hex(spki_der))
    }
}

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Sha256(crate::crypto::sha256_hex(bytes))
    }
}

/// The four top-level roles of an image repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleName {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl RoleName {
    pub const ALL: [RoleName; 4] = [
        RoleName::Root,
        RoleName::Targets,
        RoleName::Snapshot,
        RoleName::Timestamp,
    ];

    /// The lower-case name used in `roles`, file names and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Root => "root",
            RoleName::Targets => "targets",
            RoleName::Snapshot => "snapshot",
            RoleName::Timestamp => "timestamp",
        }
    }

    /// The `_type` value ota-tuf writes (`Root`, `Targets`, ...).
    pub fn type_name(self) -> &'static str {
        match self {
            RoleName::Root => "Root",
            RoleName::Targets => "Targets",
            RoleName::Snapshot => "Snapshot",
            RoleName::Timestamp => "Timestamp",
        }
    }
}

impl FromStr for RoleName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RoleName::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    format!("role {s:?}"),
                    "a role is one of root, targets, snapshot, timestamp",
                )
            })
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digests_are_lower_case_64() {
        let ok = "a".repeat(64);
        assert!(KeyId::parse(&ok).is_ok());
        assert!(Sha256::parse(&ok).is_ok());
        assert!(Sha256::parse(&"A".repeat(64)).is_err());
        assert!(KeyId::parse(&"a".repeat(63)).is_err());
        assert!(serde_json::from_str::<KeyId>("\"xyz\"").is_err());
        assert_eq!(Sha256::of(b"").as_str().len(), 64);
    }

    #[test]
    fn target_names() {
        for ok in ["a-1", "dir/file-1.0", "x".repeat(253).as_str()] {
            assert!(TargetName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            "/a",
            "a//b",
            "a/",
            "./a",
            "a\nb",
            &"x".repeat(254),
        ] {
            assert!(TargetName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn delegation_names() {
        assert!(DelegationName::parse("team-a_1.x").is_ok());
        assert!(DelegationName::parse(&"a".repeat(50)).is_ok());
        for bad in ["", ".hidden", "a/b", "é", &"a".repeat(51)] {
            assert!(DelegationName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hardware_ids_and_roles() {
        assert!(HardwareId::parse("raspberrypi4").is_ok());
        assert!(HardwareId::parse("").is_err());
        assert!(HardwareId::parse(&"h".repeat(201)).is_err());
        assert_eq!("snapshot".parse::<RoleName>().unwrap(), RoleName::Snapshot);
        assert!("Root".parse::<RoleName>().is_err());
    }
}
