//! Decoding a large targets.json `signed` part on two cores.
//!
//! garage-sign's file layout (two-space indentation, one entry per line) puts every
//! target of `targets` at the same indentation, and a raw newline can only stand
//! outside a string. So near the middle of the file, the bytes
//! `\n    },\n    "` can only be the boundary between two targets — or, in a file laid
//! out differently, something that the check below rejects. At that boundary the
//! buffer is patched in place (no copy of the file) into two complete documents:
//!
//! ```text
//! …"a" : {…\n    },\n    "b" : {…}\n  },\n  "version" : 1\n}
//! …"a" : {…\n  }}}{"":{ "b" : {…}\n  },\n  "version" : 1\n}
//!  low half ends ^^^ ^^^^^^ the high half begins
//! ```
//!
//! and each half is decoded on its own thread. The patch can only parse if the
//! boundary really was between two targets: a closing brace too many or too few and
//! either half fails. Whenever anything fails, the buffer is restored and the caller
//! decodes it in one piece, which gives the usual result or error.

use super::{Expires, TargetItem, TargetsRole};
use crate::schema::TargetName;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Below this size one core decodes the role.
const MIN_BYTES: usize = 1 << 22;
/// The boundary between two targets in garage-sign's layout.
const BOUNDARY: &[u8] = b"\n    },\n    \"";
/// Where the `,` sits in [`BOUNDARY`].
const COMMA: usize = 6;
// The patches fill the boundary's bytes exactly: `\n` + LOW_END + HIGH_START + `"`.
const _: () = assert!(BOUNDARY[COMMA] == b',' && LOW_END.len() + 1 == COMMA);
const _: () = assert!(COMMA + HIGH_START.len() + 1 == BOUNDARY.len());
/// The end of the low half, written over `    }` (the first brace still closes the
/// target before the boundary).
const LOW_END: &[u8] = b"  }}}";
/// The start of the high half, written over `,\n    `: `targets` under the key `""`.
const HIGH_START: &[u8] = b"{\"\":{ ";

/// One half of the role: the top-level fields it happens to hold.
#[derive(Deserialize)]
struct Half {
    #[serde(rename = "_type")]
    role_type: Option<String>,
    expires: Option<Expires>,
    #[serde(alias = "", deserialize_with = "super::sorted_map")]
    targets: BTreeMap<TargetName, TargetItem>,
    version: Option<u64>,
    delegations: Option<Value>,
    custom: Option<Value>,
}

/// The role in `bytes` (left as it was), decoded on two cores; `None` when the file
/// is small, laid out otherwise, or anything about it fails.
pub(super) fn decode(bytes: &mut [u8]) -> Option<TargetsRole> {
    if bytes.len() < MIN_BYTES {
        return None;
    }
    let at = boundary(bytes)?;
    // `at` is the `,` after the low half's last target.
    let (low_from, high_to) = (at - LOW_END.len(), at + HIGH_START.len());
    let saved = bytes[low_from..high_to].to_vec();
    bytes[low_from..at].copy_from_slice(LOW_END);
    bytes[at..high_to].copy_from_slice(HIGH_START);
    let (low, high) = bytes.split_at(at);
    let (low, high) = std::thread::scope(|s| {
        let high = s.spawn(|| serde_json::from_slice::<Half>(high).ok());
        (
            serde_json::from_slice::<Half>(low).ok(),
            high.join().ok().flatten(),
        )
    });
    bytes[low_from..high_to].copy_from_slice(&saved);
    merge(low?, high?)
}

/// The `,` of a boundary between two targets near the middle of `bytes`.
fn boundary(bytes: &[u8]) -> Option<usize> {
    let mid = bytes.len() / 2;
    let found = bytes[mid..]
        .windows(BOUNDARY.len())
        .position(|w| w == BOUNDARY)?;
    Some(mid + found + COMMA)
}

/// The role from its halves; `None` if a field is in both or a required one in
/// neither (the one-piece decode then reports it).
fn merge(low: Half, high: Half) -> Option<TargetsRole> {
    fn one<T>(a: Option<T>, b: Option<T>) -> Option<Option<T>> {
        match (a, b) {
            (Some(_), Some(_)) => None,
            (a, b) => Some(a.or(b)),
        }
    }
    let mut targets = low.targets;
    let mut later = high.targets;
    targets.append(&mut later);
    Some(TargetsRole {
        role_type: one(low.role_type, high.role_type)??,
        expires: one(low.expires, high.expires)??,
        targets,
        version: one(low.version, high.version)??,
        delegations: one(low.delegations, high.delegations)?,
        custom: one(low.custom, high.custom)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{pretty_from_canonical, CanonicalJson};
    use serde_json::json;

    /// A role of `n` targets, laid out as garage-sign writes roles/unsigned/targets.json.
    fn role_and_file(n: usize, custom: Option<Value>) -> (TargetsRole, Vec<u8>) {
        let mut v = json!({"_type": "Targets", "expires": "2030-01-01T00:00:00Z", "version": 7});
        let mut targets = serde_json::Map::new();
        for i in 0..n {
            targets.insert(
                format!("image-{}-{i}", i % 13),
                json!({"hashes": {"sha256": format!("{i:064x}")}, "length": i,
                       "custom": {"name": "image", "hardwareIds": ["a", "b"], "uri": null,
                                  "nested": {"deep": {"x": i}}}}),
            );
        }
        v["targets"] = Value::Object(targets);
        if let Some(c) = custom {
            v["custom"] = c;
        }
        let file = pretty_from_canonical(&CanonicalJson::of(&v));
        let role = TargetsRole::from_slice(&file, "t").unwrap();
        (role, file)
    }

    #[test]
    fn a_large_file_decodes_in_halves_to_the_same_role_and_is_left_as_it_was() {
        let (role, file) = role_and_file(20_000, Some(json!({"a": {"b": 1}})));
        assert!(file.len() >= MIN_BYTES);
        let mut bytes = file.clone();
        assert_eq!(decode(&mut bytes), Some(role));
        assert_eq!(bytes, file);
    }

    #[test]
    fn files_the_halves_cannot_take_are_left_to_the_one_piece_decode() {
        // Compact: no boundary to find.
        let (_, file) = role_and_file(20_000, None);
        let compact = serde_json::to_vec(&serde_json::from_slice::<Value>(&file).unwrap()).unwrap();
        let mut bytes = compact.clone();
        assert_eq!(decode(&mut bytes), None);
        assert_eq!(bytes, compact);

        // The middle falls inside a big top-level `custom` laid out like targets.
        let big: serde_json::Map<String, Value> = (0..40_000)
            .map(|i| (format!("k{i:05}"), json!({"v": i})))
            .collect();
        let (role, file) = role_and_file(10, Some(Value::Object(big)));
        let mut bytes = file.clone();
        assert_eq!(decode(&mut bytes), None);
        assert_eq!(bytes, file);
        assert_eq!(TargetsRole::from_vec(file, "t").unwrap(), role);

        // A field twice, once in each half: refused in one piece, so not merged.
        let (_, file) = role_and_file(20_000, None);
        let mut twice = file[..file.len() - 2].to_vec();
        twice.extend_from_slice(b",\n  \"expires\" : \"2031-01-01T00:00:00Z\"\n}");
        let mut bytes = twice.clone();
        assert_eq!(decode(&mut bytes), None);
        assert_eq!(bytes, twice);
        let err = TargetsRole::from_vec(twice, "t").unwrap_err();
        assert!(
            err.to_string().contains("duplicate field `expires`"),
            "{err}"
        );
    }
}
