//! ota-tuf's canonical JSON (reference/garage-sign.md §4.3, reposerver.md §6.1).
//!
//! Object keys are sorted recursively by UTF-16 code units (Java `String.compareTo`),
//! arrays keep their order, output is compact with no trailing newline. Strings use
//! circe's escape set: `\"`, `\\`, `\b \f \n \r \t`, every other ISO control character
//! (U+0000–U+001F and U+007F–U+009F) as `\u00xx` in lower-case hex, `/` unescaped and
//! non-ASCII as raw UTF-8. Numbers keep the spelling they were parsed with (serde_json's
//! `arbitrary_precision`), `null`s are kept.
//!
//! No crate implements this form (olpc-cjson, JCS and gibson042 all differ), so it is
//! owned here. [`check_interop`] enforces the subset on which aktualizr's jsoncpp form
//! agrees byte for byte: printable strings without non-ASCII, integer numbers.

use crate::error::{Error, Result};
use serde_json::Value;
use std::cmp::Ordering;

mod direct;
pub use direct::{pretty_from_canonical, pretty_from_parts, write_pretty_parts, PrettyLayout};

/// The canonical form of a JSON value, as the bytes that are signed and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalJson(Vec<u8>);

impl CanonicalJson {
    /// The reference writer: canonical form of a `Value` tree.
    pub fn of(value: &Value) -> Self {
        let mut out = Vec::with_capacity(256);
        write_value(&mut out, value);
        CanonicalJson(out)
    }

    /// Canonical form of anything serde can encode (the typed model), written directly
    /// without a `Value` tree. Equal to `of(&serde_json::to_value(value)?)`.
    pub fn of_serialize<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self> {
        Ok(CanonicalJson(direct::of_serialize(value)?.out))
    }

    /// As [`Self::of_serialize`], refusing what [`check_interop`] refuses; `what` names
    /// the document in the error.
    pub fn of_serialize_interop<T: serde::Serialize + ?Sized>(
        value: &T,
        what: &str,
    ) -> Result<Self> {
        let w = direct::of_serialize(value)?;
        if w.not_interop {
            // Rare: build the tree once to name the offending field.
            let v = serde_json::to_value(value)
                .map_err(|e| Error::Other(format!("{what}: cannot encode: {e}")))?;
            check_interop(&v, what)?;
        }
        Ok(CanonicalJson(w.out))
    }

    /// The canonical bytes of a role whose object-valued field `field` is too big for
    /// one core: `shell` is the role's encoding with `field` empty (`{}`), and the
    /// field's entries are written in two halves at once, `low` on this thread and
    /// `high` on another, each a map whose keys all sort before the other's. `None`
    /// when `shell` does not end with that field and `version` (the caller then encodes
    /// the role in one piece) or when a half cannot be encoded (the one-piece encoding
    /// names the offending field).
    pub fn spliced_halves<L, H>(
        shell: CanonicalJson,
        field: &str,
        version: u64,
        low: &L,
        high: &H,
    ) -> Option<Self>
    where
        L: serde::Serialize + ?Sized,
        H: serde::Serialize + Sync + ?Sized,
    {
        // Keys sort `field` < "version" and nothing sorts after "version", so the
        // shell ends `"<field>":{},"version":<version>}`.
        let tail = format!(",\"version\":{version}}}");
        let mut head = shell.0;
        let cut = head.len().checked_sub(tail.len() + 2)?;
        if &head[cut..] != format!("{{}}{tail}").as_bytes()
            || !head[..cut].ends_with(format!("\"{field}\":").as_bytes())
        {
            return None;
        }
        head.truncate(cut);
        let (low, high) = std::thread::scope(|s| {
            let high = s.spawn(|| direct::of_serialize(high));
            let low = direct::of_serialize_after(head, low);
            (low, high.join())
        });
        let (low, high) = (low.ok()?, high.ok()?.ok()?);
        if low.not_interop || high.not_interop || high.out.len() < 2 {
            return None;
        }
        // `{low…}` + `{high…}` -> `{low…,high…}`, then the rest of the role.
        let mut out = low.out;
        out.pop();
        out.push(b',');
        out.extend_from_slice(&high.out[1..]);
        out.extend_from_slice(tail.as_bytes());
        Some(CanonicalJson(out))
    }

    /// Canonical form of the JSON document `bytes`, transcoded without a `Value` tree.
    /// Equal to `of(&serde_json::from_slice(bytes)?)`; `what` names the document.
    pub fn from_slice(bytes: &[u8], what: &str) -> Result<Self> {
        direct::of_slice(bytes)
            .map(|w| CanonicalJson(w.out))
            .map_err(|e| Error::invalid(what, format!("not valid JSON: {e}")))
    }

    /// Joins pieces that together are canonical JSON (canonical parts and the
    /// punctuation between them, keys in canonical order).
    pub fn join(parts: &[&[u8]]) -> Self {
        CanonicalJson(parts.concat())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from `&str` pieces and ASCII punctuation.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Java `String.compareTo`: UTF-16 code unit order.
pub fn compare_keys(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| compare_keys(a.0, b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k);
                out.push(b':');
                write_value(out, v);
            }
            out.push(b'}');
        }
    }
}

/// `s` as a JSON string literal with circe's escapes.
pub fn quote(s: &str) -> String {
    // Worst case 6 bytes per input byte: no reallocation leaves copies of secrets behind.
    let mut out = Vec::with_capacity(s.len() * 6 + 2);
    write_string(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut buf = [0u8; 4];
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if c.is_control() => {
                // Rust's is_control is Unicode Cc = U+0000–U+001F and U+007F–U+009F,
                // exactly Java's Character.isISOControl.
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out.push(b'"');
}

/// Refuses what aktualizr would canonicalise differently: non-ASCII characters in any
/// string or key, and non-integer numbers. `what` names the document in the error,
/// which also gives the JSON path of the first offending value.
pub fn check_interop(value: &Value, what: &str) -> Result<()> {
    fn walk(v: &Value, path: &mut String, what: &str) -> Result<()> {
        match v {
            Value::String(s) => check_str(s, path, what),
            Value::Number(n) => {
                let text = n.to_string();
                if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        format!("{what}: {path}"),
                        format!("number {text} is not an integer; aktualizr canonicalises non-integer numbers differently, so devices would reject the signature"),
                    ))
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(item, path, what)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    check_str(k, path, what)?;
                    walk(item, path, what)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Null | Value::Bool(_) => Ok(()),
        }
    }
    fn check_str(s: &str, path: &str, what: &str) -> Result<()> {
        match s.chars().find(|c| !c.is_ascii()) {
            None => Ok(()),
            Some(c) => Err(Error::invalid(
                format!("{what}: {}", if path.is_empty() { "$" } else { path }),
                format!(
                    "contains the non-ASCII character {c:?} (U+{:04X}); aktualizr hashes non-ASCII metadata differently, so devices would reject it. Use ASCII only",
                    c as u32
                ),
            )),
        }
    }
    let mut path = String::new();
    walk(value, &mut path, what)
}

/// circe's `spaces2` layout with ` : ` separators, which garage-sign uses for the files
/// it keeps in the local repository (roles, keys, config.json). Not a signed form.
pub fn to_pretty(value: &Value) -> String {
    let mut out = Vec::new();
    write_pretty(&mut out, value, 0);
    String::from_utf8(out).unwrap_or_default()
}

fn write_pretty(out: &mut Vec<u8>, value: &Value, depth: usize) {
    let indent = |out: &mut Vec<u8>, d: usize| out.extend(std::iter::repeat(b' ').take(d * 2));
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.extend_from_slice(b"[\n");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b",\n");
                }
                indent(out, depth + 1);
                write_pretty(out, item, depth + 1);
            }
            out.push(b'\n');
            indent(out, depth);
            out.push(b']');
        }
        Value::Object(map) if !map.is_empty() => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| compare_keys(a.0, b.0));
            out.extend_from_slice(b"{\n");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b",\n");
                }
                indent(out, depth + 1);
                write_string(out, k);
                out.extend_from_slice(b" : ");
                write_pretty(out, v, depth + 1);
            }
            out.push(b'\n');
            indent(out, depth);
            out.push(b'}');
        }
        other => write_value(out, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_like_circe() {
        let v = json!({"s": "a\"b\\c/\u{8}\u{c}\n\r\t\u{1}\u{7f}\u{9f}é\u{a0}"});
        assert_eq!(
            CanonicalJson::of(&v).as_str(),
            "{\"s\":\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\\u007f\\u009fé\u{a0}\"}"
        );
    }

    #[test]
    fn sorts_by_utf16_not_bytes() {
        // U+FF21 (fullwidth A) is one UTF-16 unit 0xFF21; U+1F600 is a surrogate pair
        // starting 0xD83D, so Java puts the emoji first although its UTF-8 is larger.
        let v = json!({"\u{ff21}": 1, "\u{1f600}": 2, "a": 3, "a b": 4});
        assert_eq!(
            CanonicalJson::of(&v).as_str(),
            "{\"a\":3,\"a b\":4,\"\u{1f600}\":2,\"\u{ff21}\":1}"
        );
    }

    #[test]
    fn keeps_number_spelling_and_nulls() {
        let v: Value = serde_json::from_str(r#"{"b":1.0,"a":null,"c":[3,-7,1.50]}"#).unwrap();
        assert_eq!(
            CanonicalJson::of(&v).as_str(),
            r#"{"a":null,"b":1.0,"c":[3,-7,1.50]}"#
        );
    }

    #[test]
    fn interop_refuses_non_ascii_and_floats() {
        assert!(check_interop(&json!({"a": ["x", {"b": "é"}]}), "t").is_err());
        let f: Value = serde_json::from_str(r#"{"a":1.5}"#).unwrap();
        let err = check_interop(&f, "targets.json").unwrap_err().to_string();
        assert!(err.contains("targets.json: .a"), "{err}");
        assert!(check_interop(&json!({"a": [1, -2, "plain ascii ~"]}), "t").is_ok());
    }

    #[test]
    fn pretty_uses_spaced_colons() {
        let v = json!({"b": [1], "a": {"c": true}, "e": {}});
        assert_eq!(
            to_pretty(&v),
            "{\n  \"a\" : {\n    \"c\" : true\n  },\n  \"b\" : [\n    1\n  ],\n  \"e\" : {}\n}"
        );
    }

    #[test]
    fn halves_are_spliced_into_the_shell() {
        let low: std::collections::BTreeMap<&str, Value> =
            [("a", json!({"y": 1, "b": [2]})), ("m", json!("x"))].into();
        let high: std::collections::BTreeMap<&str, Value> =
            [("n", json!(null)), ("z", json!({"targets": {}}))].into();
        let shell = CanonicalJson::of(&json!(
            {"_type": "Targets", "custom": {"targets": {}}, "targets": {}, "version": 7}
        ));
        let spliced = CanonicalJson::spliced_halves(shell, "targets", 7, &low, &high).unwrap();
        let mut all = low.clone();
        all.extend(high.clone());
        let whole =
            json!({"_type": "Targets", "custom": {"targets": {}}, "targets": all, "version": 7});
        assert_eq!(spliced, CanonicalJson::of(&whole));
    }

    #[test]
    fn halves_are_not_spliced_into_a_shell_of_another_shape() {
        let half: std::collections::BTreeMap<&str, Value> = [("a", json!(1))].into();
        for shell in [
            json!({"targets": {}, "version": 8}),
            json!({"targets": {"a": 1}, "version": 7}),
            json!({"other": {}, "version": 7}),
            json!({"targets": {}, "version": 7, "zzz": 1}),
        ] {
            let shell = CanonicalJson::of(&shell);
            assert!(CanonicalJson::spliced_halves(shell, "targets", 7, &half, &half).is_none());
        }
        // A half that aktualizr would encode differently: the caller's one-piece
        // encoding names it.
        let odd: std::collections::BTreeMap<&str, Value> = [("b", json!("gr\u{fc}n"))].into();
        let shell = CanonicalJson::of(&json!({"targets": {}, "version": 7}));
        assert!(CanonicalJson::spliced_halves(shell, "targets", 7, &half, &odd).is_none());
    }
}
