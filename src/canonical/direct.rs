//! Canonical JSON written directly: from any `Serialize` type (the typed model) and
//! from received bytes, without building a `serde_json::Value` tree.
//!
//! Objects are written entry by entry straight into the output; each entry's byte
//! range is remembered and, only when the keys did not arrive in UTF-16 order (or a
//! key repeats), the object's bytes are reordered in place. Typed maps and our own
//! files are already sorted, so the common case is one pass with no copies. The
//! `Value`-based writer in the parent module is the reference; property tests compare
//! the two.

use super::{compare_keys, CanonicalJson};
use crate::error::{Error, Result};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Impossible, Serialize};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// serde_json's private struct name for numbers under `arbitrary_precision`.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";
/// serde_json's private struct name for `RawValue` (JSON kept as text).
const RAW_TOKEN: &str = "$serde_json::private::RawValue";

/// The output plus what [`super::check_interop`] would refuse, noticed on the way.
#[derive(Default)]
pub(super) struct Writer {
    pub(super) out: Vec<u8>,
    /// A string or key with a non-ASCII character, or a non-integer number, was written.
    pub(super) not_interop: bool,
    /// The entries of the objects being written, innermost last: one stack shared by
    /// all of them, so no object allocates.
    entries: Vec<Entry>,
}

impl Writer {
    fn string(&mut self, s: &str) {
        self.not_interop |= !s.is_ascii();
        write_string_fast(&mut self.out, s);
    }

    fn raw_number(&mut self, n: &str) {
        self.not_interop |= !n.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        self.out.extend_from_slice(n.as_bytes());
    }

    fn integer<I: itoa::Integer>(&mut self, n: I) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

/// Bytes that may start an escape in [`write_string_fast`]: `"`, `\\`, U+0000–U+001F,
/// U+007F and `C2` (the lead byte of U+0080–U+009F, among others).
const MAY_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t[0xc2] = true;
    t
};

/// The parent's `write_string` (circe's escapes), copying runs of bytes that need no
/// escape at once instead of char by char. In UTF-8 the C1 controls U+0080–U+009F are
/// `C2 80`–`C2 9F`; every other non-ASCII sequence is copied as is.
fn write_string_fast(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        // Skip bytes that can never start an escape (one table look-up each).
        while i < b.len() && !MAY_ESCAPE[b[i] as usize] {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let c = b[i];
        let escape: Option<&[u8]> = match c {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            _ => None,
        };
        let control = match c {
            0x00..=0x1f | 0x7f => Some((c as u32, 1)),
            0xc2 if matches!(b.get(i + 1), Some(0x80..=0x9f)) => Some((b[i + 1] as u32, 2)),
            _ => None,
        };
        if escape.is_none() && control.is_none() {
            i += 1;
            continue;
        }
        out.extend_from_slice(&b[run..i]);
        match (escape, control) {
            (Some(e), _) => {
                out.extend_from_slice(e);
                i += 1;
            }
            (None, Some((code, width))) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(code >> 4) as usize]);
                out.push(HEX[(code & 0xf) as usize]);
                i += width;
            }
            (None, None) => {}
        }
        run = i;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// Where an object's entry sits in the output: its key (quoted, as written) and the
/// end of its value.
#[derive(Clone, Copy)]
struct Entry {
    key: (usize, usize),
    end: usize,
}

/// The text of a key as written in the output (`quoted` includes the quotes).
fn key_text(quoted: &[u8]) -> Cow<'_, str> {
    let inner = &quoted[1..quoted.len() - 1];
    match std::str::from_utf8(inner) {
        Ok(text) if !inner.contains(&b'\\') => Cow::Borrowed(text),
        _ => Cow::Owned(serde_json::from_slice(quoted).unwrap_or_default()),
    }
}

/// Whether the key written as `prev_quoted` sorts strictly before `key`, in the UTF-16
/// order canonical JSON uses. UTF-8 bytes sort in code point order, which is UTF-16
/// order unless a character beyond U+FFFF (lead byte F0-F4) is involved; without
/// those, and without escapes in the written key, the bytes can be compared directly.
fn key_precedes(prev_quoted: &[u8], key: &str) -> bool {
    let prev = &prev_quoted[1..prev_quoted.len() - 1];
    let plain = |b: &[u8]| !b.iter().any(|&c| c == b'\\' || c >= 0xf0);
    if plain(prev) && plain(key.as_bytes()) {
        prev < key.as_bytes()
    } else {
        compare_keys(&key_text(prev_quoted), key) == Ordering::Less
    }
}

/// An object being written: where its bytes start, where its entries start on the
/// writer's stack, and whether the keys so far arrived in canonical order.
struct Object {
    start: usize,
    first: usize,
    in_order: bool,
}

impl Object {
    fn open(w: &mut Writer) -> Self {
        w.out.push(b'{');
        Object {
            start: w.out.len(),
            first: w.entries.len(),
            in_order: true,
        }
    }

    /// Writes `"key":` (with a separating comma) and remembers where the entry began.
    fn key(&mut self, w: &mut Writer, key: &str) {
        let n = w.entries.len();
        if n > self.first {
            w.out.push(b',');
        }
        let at = w.out.len();
        w.string(key);
        let key_end = w.out.len();
        w.out.push(b':');
        if self.in_order && n > self.first {
            let (from, to) = w.entries[n - 1].key;
            self.in_order = key_precedes(&w.out[from..to], key);
        }
        w.entries.push(Entry {
            key: (at, key_end),
            end: 0,
        });
    }

    /// Marks the end of the current entry's value.
    fn value_done(&mut self, w: &mut Writer) {
        if w.entries.len() > self.first {
            if let Some(last) = w.entries.last_mut() {
                last.end = w.out.len();
            }
        }
    }

    fn close(self, w: &mut Writer) {
        if !self.in_order {
            self.reorder(w);
        }
        w.entries.truncate(self.first);
        w.out.push(b'}');
    }

    /// Sorts the entries by key (a repeated key keeps its last value, as a parse into
    /// `Value` does) and rewrites the object's bytes.
    fn reorder(&self, w: &mut Writer) {
        let body = w.out.split_off(self.start);
        let base = self.start;
        let mut entries: Vec<(Cow<str>, usize, usize)> = w.entries[self.first..]
            .iter()
            .map(|e| {
                let key = key_text(&body[e.key.0 - base..e.key.1 - base]);
                (key, e.key.0 - base, e.end - base)
            })
            .collect();
        // Stable: among equal keys, the last written stays last.
        entries.sort_by(|a, b| compare_keys(&a.0, &b.0));
        let mut kept: Vec<&(Cow<str>, usize, usize)> = Vec::with_capacity(entries.len());
        for e in &entries {
            match kept.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => kept.push(e),
            }
        }
        for (i, (_, from, to)) in kept.into_iter().enumerate() {
            if i > 0 {
                w.out.push(b',');
            }
            w.out.extend_from_slice(&body[*from..*to]);
        }
    }
}

/// Canonical bytes of anything serde can encode, written directly.
pub(super) fn of_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Writer> {
    of_serialize_after(Vec::with_capacity(4096), value)
}

/// As [`of_serialize`], written after the bytes already in `out`.
pub(super) fn of_serialize_after<T: Serialize + ?Sized>(out: Vec<u8>, value: &T) -> Result<Writer> {
    let mut w = Writer {
        out,
        ..Writer::default()
    };
    value
        .serialize(&mut w)
        .map_err(|e| Error::Other(format!("cannot encode JSON: {e}")))?;
    Ok(w)
}

/// Canonical bytes of the JSON document `bytes`, transcoded without a `Value` tree.
pub(super) fn of_slice(bytes: &[u8]) -> std::result::Result<Writer, serde_json::Error> {
    let mut w = Writer {
        out: Vec::with_capacity(bytes.len()),
        ..Writer::default()
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Transcode(&mut w).deserialize(&mut de)?;
    de.end()?;
    Ok(w)
}

// ---------------------------------------------------------------------------------
// Serializer: typed model -> canonical bytes.

#[derive(Debug)]
pub(super) struct SerError(String);

impl fmt::Display for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerError(msg.to_string())
    }
}

type SerResult<T = ()> = std::result::Result<T, SerError>;

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Variant<Seq<'a>>;
    type SerializeMap = Map<'a>;
    type SerializeStruct = Struct<'a>;
    type SerializeStructVariant = Variant<Struct<'a>>;

    fn serialize_bool(self, v: bool) -> SerResult {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> SerResult {
        self.integer(v);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> SerResult {
        self.integer(v);
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> SerResult {
        self.integer(v);
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> SerResult {
        self.integer(v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> SerResult {
        self.integer(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> SerResult {
        self.integer(v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> SerResult {
        self.integer(v);
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> SerResult {
        self.integer(v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> SerResult {
        self.integer(v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> SerResult {
        self.integer(v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> SerResult {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> SerResult {
        // Spelled as serde_json spells it (through `Value`, as the reference does).
        let n = serde_json::Number::from_f64(v)
            .ok_or_else(|| SerError(format!("{v} is not a JSON number")))?;
        self.raw_number(&n.to_string());
        Ok(())
    }
    fn serialize_char(self, v: char) -> SerResult {
        self.string(v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> SerResult {
        self.string(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> SerResult {
        use ser::SerializeSeq;
        let mut s = self.serialize_seq(Some(v.len()))?;
        for b in v {
            s.serialize_element(b)?;
        }
        s.end()
    }
    fn serialize_none(self) -> SerResult {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> SerResult {
        value.serialize(self)
    }
    fn serialize_unit(self) -> SerResult {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> SerResult {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> SerResult {
        self.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> SerResult {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> SerResult {
        let mut o = Object::open(self);
        o.key(self, variant);
        value.serialize(&mut *self)?;
        o.value_done(self);
        o.close(self);
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> SerResult<Seq<'a>> {
        self.out.push(b'[');
        Ok(Seq {
            w: self,
            first: true,
        })
    }
    fn serialize_tuple(self, len: usize) -> SerResult<Seq<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> SerResult<Seq<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> SerResult<Variant<Seq<'a>>> {
        let mut o = Object::open(self);
        o.key(self, variant);
        self.out.push(b'[');
        Ok(Variant {
            outer: o,
            inner: Seq {
                w: self,
                first: true,
            },
        })
    }
    fn serialize_map(self, _: Option<usize>) -> SerResult<Map<'a>> {
        let o = Object::open(self);
        Ok(Map { w: self, o })
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> SerResult<Struct<'a>> {
        if name == NUMBER_TOKEN {
            return Ok(Struct::Number(self));
        }
        if name == RAW_TOKEN {
            return Ok(Struct::Raw(self));
        }
        let o = Object::open(self);
        Ok(Struct::Object(Map { w: self, o }))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> SerResult<Variant<Struct<'a>>> {
        let mut outer = Object::open(self);
        outer.key(self, variant);
        let o = Object::open(self);
        Ok(Variant {
            outer,
            inner: Struct::Object(Map { w: self, o }),
        })
    }
}

pub(super) struct Seq<'a> {
    w: &'a mut Writer,
    first: bool,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> SerResult {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
        v.serialize(&mut *self.w)
    }
    fn finish(self) -> SerResult {
        self.w.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> SerResult {
        self.element(v)
    }
    fn end(self) -> SerResult {
        self.finish()
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> SerResult {
        self.element(v)
    }
    fn end(self) -> SerResult {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> SerResult {
        self.element(v)
    }
    fn end(self) -> SerResult {
        self.finish()
    }
}

pub(super) struct Map<'a> {
    w: &'a mut Writer,
    o: Object,
}

impl Map<'_> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) -> SerResult {
        self.o.key(self.w, key);
        v.serialize(&mut *self.w)?;
        self.o.value_done(self.w);
        Ok(())
    }
}

impl ser::SerializeMap for Map<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> SerResult {
        let (o, w) = (&mut self.o, &mut *self.w);
        key.serialize(KeyString(|k: &str| {
            o.key(w, k);
            Ok(())
        }))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> SerResult {
        v.serialize(&mut *self.w)?;
        self.o.value_done(self.w);
        Ok(())
    }
    fn end(self) -> SerResult {
        self.o.close(self.w);
        Ok(())
    }
}

pub(super) enum Struct<'a> {
    Object(Map<'a>),
    /// serde_json's `arbitrary_precision` number: one field holding its spelling.
    Number(&'a mut Writer),
    /// A `RawValue`: one field holding JSON text, transcoded in place.
    Raw(&'a mut Writer),
}

impl ser::SerializeStruct for Struct<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> SerResult {
        match self {
            Struct::Object(m) => m.entry(key, v),
            Struct::Number(w) => v.serialize(KeyString(|spelled: &str| {
                w.raw_number(spelled);
                Ok(())
            })),
            Struct::Raw(w) => v.serialize(KeyString(|text: &str| {
                if copy_plain_raw(&mut w.out, text) {
                    return Ok(());
                }
                let mut de = serde_json::Deserializer::from_str(text);
                Transcode(w)
                    .deserialize(&mut de)
                    .and_then(|()| de.end())
                    .map_err(|e| SerError(format!("invalid raw JSON: {e}")))
            })),
        }
    }
    fn end(self) -> SerResult {
        match self {
            Struct::Object(m) => ser::SerializeMap::end(m),
            Struct::Number(_) | Struct::Raw(_) => Ok(()),
        }
    }
}

/// `{"variant": <inner>}` for enum variants with fields.
pub(super) struct Variant<I> {
    outer: Object,
    inner: I,
}

impl<'a> ser::SerializeTupleVariant for Variant<Seq<'a>> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> SerResult {
        self.inner.element(v)
    }
    fn end(self) -> SerResult {
        let Variant { mut outer, inner } = self;
        let w = inner.w;
        w.out.push(b']');
        outer.value_done(w);
        outer.close(w);
        Ok(())
    }
}

impl<'a> ser::SerializeStructVariant for Variant<Struct<'a>> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> SerResult {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, v)
    }
    fn end(self) -> SerResult {
        let Variant { mut outer, inner } = self;
        let Struct::Object(m) = inner else {
            return Err(SerError("a struct variant cannot be a number".into()));
        };
        let w = m.w;
        m.o.close(w);
        outer.value_done(w);
        outer.close(w);
        Ok(())
    }
}

/// Map keys (and `arbitrary_precision` number spellings) as strings, like serde_json's
/// key serializer: strings, chars, and integers (as their decimal text).
/// The string goes to the closure, which writes or checks it in place (no copy).
struct KeyString<F>(F);

macro_rules! key_int {
    ($($f:ident: $t:ty),*) => {$(
        fn $f(self, v: $t) -> SerResult<O> {
            (self.0)(itoa::Buffer::new().format(v))
        }
    )*};
}

impl<O, F: FnOnce(&str) -> SerResult<O>> ser::Serializer for KeyString<F> {
    type Ok = O;
    type Error = SerError;
    type SerializeSeq = Impossible<O, SerError>;
    type SerializeTuple = Impossible<O, SerError>;
    type SerializeTupleStruct = Impossible<O, SerError>;
    type SerializeTupleVariant = Impossible<O, SerError>;
    type SerializeMap = Impossible<O, SerError>;
    type SerializeStruct = Impossible<O, SerError>;
    type SerializeStructVariant = Impossible<O, SerError>;

    key_int!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128);

    fn serialize_str(self, v: &str) -> SerResult<O> {
        (self.0)(v)
    }
    fn serialize_char(self, v: char) -> SerResult<O> {
        (self.0)(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_bool(self, _: bool) -> SerResult<O> {
        Err(key_error())
    }
    fn serialize_f32(self, _: f32) -> SerResult<O> {
        Err(key_error())
    }
    fn serialize_f64(self, _: f64) -> SerResult<O> {
        Err(key_error())
    }
    fn serialize_bytes(self, _: &[u8]) -> SerResult<O> {
        Err(key_error())
    }
    fn serialize_none(self) -> SerResult<O> {
        Err(key_error())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> SerResult<O> {
        Err(key_error())
    }
    fn serialize_unit(self) -> SerResult<O> {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _: &'static str) -> SerResult<O> {
        Err(key_error())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> SerResult<O> {
        (self.0)(v)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> SerResult<O> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> SerResult<O> {
        Err(key_error())
    }
    fn serialize_seq(self, _: Option<usize>) -> SerResult<Self::SerializeSeq> {
        Err(key_error())
    }
    fn serialize_tuple(self, _: usize) -> SerResult<Self::SerializeTuple> {
        Err(key_error())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> SerResult<Self::SerializeTupleStruct> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> SerResult<Self::SerializeTupleVariant> {
        Err(key_error())
    }
    fn serialize_map(self, _: Option<usize>) -> SerResult<Self::SerializeMap> {
        Err(key_error())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> SerResult<Self::SerializeStruct> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> SerResult<Self::SerializeStructVariant> {
        Err(key_error())
    }
}

fn key_error() -> SerError {
    SerError("a JSON object key must be a string".into())
}

// ---------------------------------------------------------------------------------
// Transcoder: received bytes -> canonical bytes.

struct Transcode<'a>(&'a mut Writer);

impl<'de> DeserializeSeed<'de> for Transcode<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Transcode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<(), E> {
        self.0
            .out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<(), E> {
        self.0.integer(v);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<(), E> {
        self.0.integer(v);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<(), E> {
        let n = serde_json::Number::from_f64(v).ok_or_else(|| E::custom("not a JSON number"))?;
        self.0.raw_number(&n.to_string());
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<(), E> {
        self.0.string(v);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        self.0.out.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<(), E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let w = self.0;
        w.out.push(b'[');
        let mut first = true;
        loop {
            let at = w.out.len();
            if !first {
                w.out.push(b',');
            }
            if seq.next_element_seed(Transcode(&mut *w))?.is_none() {
                w.out.truncate(at);
                break;
            }
            first = false;
        }
        w.out.push(b']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let w = self.0;
        let Some(first) = map.next_key_seed(KeyText)? else {
            w.out.extend_from_slice(b"{}");
            return Ok(());
        };
        if first == NUMBER_TOKEN {
            // serde_json's `arbitrary_precision` number: the value is its spelling.
            let spelled: String = map.next_value()?;
            w.raw_number(&spelled);
            return Ok(());
        }
        let mut o = Object::open(w);
        let mut key = Some(first);
        while let Some(k) = key {
            o.key(w, &k);
            map.next_value_seed(Transcode(&mut *w))?;
            o.value_done(w);
            key = map.next_key_seed(KeyText)?;
        }
        o.close(w);
        Ok(())
    }
}

/// An object key, borrowed from the input where it has no escapes.
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The fast path for raw JSON (a `RawValue`, which serde_json has already checked is
/// valid JSON): appends `text` without its whitespace and returns `true` when that is
/// already its canonical form, which is the case for the usual `custom` objects: ASCII
/// strings without escapes, integers, literals, keys in order and none repeated.
/// Otherwise it leaves `out` as it was and returns `false`, and the full transcoder
/// runs (its escapes, number and interop rules stay the only ones).
fn copy_plain_raw(out: &mut Vec<u8>, text: &str) -> bool {
    let start = out.len();
    if plain_raw(out, text.as_bytes()).is_none() {
        out.truncate(start);
        return false;
    }
    true
}

/// [`copy_plain_raw`]'s scan; `None` as soon as the text needs the transcoder.
fn plain_raw(out: &mut Vec<u8>, b: &[u8]) -> Option<()> {
    // Per open container: the output range of the previous key, for objects.
    let mut open: Vec<Option<(usize, usize)>> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\n' | b'\r' | b'\t' => {}
            b'{' => {
                open.push(None);
                expect_key = true;
                out.push(c);
            }
            b'[' => {
                open.push(None);
                out.push(c);
            }
            b'}' | b']' => {
                open.pop()?;
                expect_key = false;
                out.push(c);
            }
            b',' => {
                // In an object (its last key is set) a key comes next.
                expect_key = matches!(open.last(), Some(Some(_)));
                out.push(c);
            }
            b':' => out.push(c),
            b'"' => {
                let from = out.len();
                let end = i + 1 + b[i + 1..].iter().position(|&c| c == b'"')?;
                let s = &b[i + 1..end];
                if !s.iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'\\') {
                    return None;
                }
                out.extend_from_slice(&b[i..=end]);
                if expect_key {
                    let last = open.last_mut()?;
                    if let Some((p, q)) = *last {
                        // ASCII without escapes: byte order is UTF-16 order.
                        if out[p..q] >= out[from..] {
                            return None;
                        }
                    }
                    *last = Some((from, out.len()));
                    expect_key = false;
                }
                i = end;
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let end = b[i..]
                    .iter()
                    .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                    .map_or(b.len(), |n| i + n);
                let token = &b[i..end];
                // Integers and literals only: fractions and exponents go the full way.
                let number = matches!(c, b'-' | b'0'..=b'9');
                if number && token.iter().any(|c| matches!(c, b'.' | b'e' | b'E' | b'+')) {
                    return None;
                }
                out.extend_from_slice(token);
                i = end - 1;
            }
            _ => return None,
        }
        i += 1;
    }
    open.is_empty().then_some(())
}

/// circe's `spaces2` layout (see [`super::to_pretty`]) from canonical bytes: a pure
/// re-layout, since canonical JSON has no whitespace outside strings and its strings
/// are already escaped as the pretty form writes them.
pub fn pretty_from_canonical(c: &CanonicalJson) -> Vec<u8> {
    pretty_from_parts(&[c.as_bytes()])
}

/// [`pretty_from_canonical`] of the concatenation of `parts`, which must split the
/// canonical text only between tokens (as [`CanonicalJson::join`] pieces do).
pub fn pretty_from_parts(parts: &[&[u8]]) -> Vec<u8> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(total + total / 2);
    // Writing into a Vec cannot fail.
    let _ = write_pretty_parts(&mut out, parts);
    out
}

/// The bytes [`write_pretty_parts`] lays out (outside strings) or that open a string.
const STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    let set = b"\"{}[],:";
    let mut k = 0;
    while k < set.len() {
        t[set[k] as usize] = true;
        k += 1;
    }
    t
};

/// [`pretty_from_parts`] streamed into `w` in chunks of about 64 KiB (no copy of the
/// whole layout in memory). Runs of bytes without structure are copied at once.
pub fn write_pretty_parts(w: &mut dyn std::io::Write, parts: &[&[u8]]) -> std::io::Result<()> {
    PrettyLayout::default().write(w, parts)
}

/// circe's `spaces2` layout of canonical text written in pieces: the depth carries over
/// from one [`Self::write`] to the next, so a document may be laid out a part at a
/// time, in any order of file positions (`targets sign` writes the signed part while
/// the keys are still signing, and the signatures before it afterwards).
#[derive(Clone, Copy, Debug, Default)]
pub struct PrettyLayout {
    depth: usize,
}

impl PrettyLayout {
    /// The layout state inside `depth` open objects or arrays.
    pub fn at_depth(depth: usize) -> Self {
        PrettyLayout { depth }
    }

    /// Lays out the concatenation of `parts` (split only between tokens) into `w`.
    pub fn write(&mut self, w: &mut dyn std::io::Write, parts: &[&[u8]]) -> std::io::Result<()> {
        const CHUNK: usize = 1 << 16;
        let mut out = Vec::with_capacity(CHUNK + 1024);
        for b in parts {
            let mut i = 0;
            while i < b.len() {
                let start = i;
                while i < b.len() && !STRUCTURAL[b[i] as usize] {
                    i += 1;
                }
                out.extend_from_slice(&b[start..i]);
                if i == b.len() {
                    break;
                }
                i = self.structural(&mut out, b, i) + 1;
                if out.len() >= CHUNK {
                    w.write_all(&out)?;
                    out.clear();
                }
            }
        }
        w.write_all(&out)
    }

    /// Lays out the structural byte at `b[i]` (a whole string if it opens one);
    /// returns the index of the last byte consumed.
    fn structural(&mut self, out: &mut Vec<u8>, b: &[u8], mut i: usize) -> usize {
        let c = b[i];
        match c {
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.extend_from_slice(&b[start..(i + 1).min(b.len())]);
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                if b.get(i + 1) == Some(&close) {
                    out.extend_from_slice(&[c, close]);
                    i += 1;
                } else {
                    self.depth += 1;
                    out.push(c);
                    self.newline(out);
                }
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                self.newline(out);
                out.push(c);
            }
            b',' => {
                out.push(b',');
                self.newline(out);
            }
            _ => out.extend_from_slice(b" : "),
        }
        i
    }

    fn newline(&self, out: &mut Vec<u8>) {
        const SPACES: [u8; 64] = [b' '; 64];
        out.push(b'\n');
        let mut n = self.depth * 2;
        while n > 0 {
            let k = n.min(SPACES.len());
            out.extend_from_slice(&SPACES[..k]);
            n -= k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Option<String> {
        let mut out = b"prefix".to_vec();
        let took = copy_plain_raw(&mut out, text);
        let kept = String::from_utf8(out).unwrap();
        let rest = kept.strip_prefix("prefix").unwrap().to_string();
        if took {
            // What the fast path writes is the canonical form.
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                rest,
                String::from_utf8(CanonicalJson::of(&v).0).unwrap(),
                "{text}"
            );
            Some(rest)
        } else {
            assert_eq!(rest, "", "a refused text leaves the output as it was");
            None
        }
    }

    #[test]
    fn usual_custom_objects_are_copied_without_their_whitespace() {
        let text =
            "{\n  \"a\" : [ 1, -2, true, false, null, { \"c\" : \"d/e f\" } ],\n  \"b\" : {}\n}";
        assert_eq!(
            plain(text).unwrap(),
            r#"{"a":[1,-2,true,false,null,{"c":"d/e f"}],"b":{}}"#
        );
        for scalar in ["\"x\"", "5", "[]", "{}", "null", "[\"b\",\"a\"]"] {
            assert!(plain(scalar).is_some(), "{scalar}");
        }
    }

    #[test]
    fn anything_else_goes_to_the_transcoder() {
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"y":1,"x":2}}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            "{\"a\":\"gr\u{fc}n\"}",
            "{\"gr\u{fc}n\":1}",
            "\"\u{7f}\"",
        ] {
            assert_eq!(plain(text), None, "{text}");
        }
    }
}
