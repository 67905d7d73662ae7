//! Pretty JSON as the APIs answer it: two spaces per level, `"name": value`, empty arrays and
//! objects as `[]` and `{}`. The same bytes as `serde_json::to_writer_pretty`, written faster;
//! and compact JSON, as the native API answers, the same bytes as `serde_json::to_writer`
//! ([`to_vec_compact`]).
//!
//! Every answer is pretty, so this is on every request's path. [`to_vec`] writes with its own
//! serializer (`Writer`): serde_json checks each byte of each name and string for escapes, one
//! at a time, and writes a line's indentation as one two-byte write per level, which together were
//! most of the cost of rendering an answer. Here strings are checked eight bytes at a time and a
//! line break with its indentation is one write. What the serializer does not write itself (a map
//! key that is not a string or an integer, say) makes it give up, and serde_json, with the
//! `Pretty` formatter, writes the value instead: the bytes are the same either way.

use std::fmt::{self, Display};
use std::io::{self, Write};

use serde::ser::{self, Serialize};
use serde_json::ser::{Formatter, Serializer};

/// Writes `value` at the end of `out` with serde_json, laid out as `layout` lays it out.
fn write(out: &mut Vec<u8>, value: &impl Serialize, layout: Pretty) -> serde_json::Result<()> {
    let mut ser = Serializer::with_formatter(out, layout);
    value.serialize(&mut ser)
}

/// `value` as pretty JSON, in a buffer of `capacity` bytes to start with.
pub fn to_vec(value: &impl Serialize, capacity: usize) -> Vec<u8> {
    to_vec_as(value, capacity, Pretty::default())
}

/// `value` as compact JSON (no spaces, no line breaks), in a buffer of `capacity` bytes to start
/// with.
pub fn to_vec_compact(value: &impl Serialize, capacity: usize) -> Vec<u8> {
    to_vec_as(
        value,
        capacity,
        Pretty {
            compact: true,
            ..Pretty::default()
        },
    )
}

fn to_vec_as(value: &impl Serialize, capacity: usize, layout: Pretty) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    let mut writer = Writer {
        out: &mut out,
        layout: layout.clone(),
    };
    if value.serialize(&mut writer).is_err() {
        out.clear();
        // Writing to a Vec fails only if `Serialize` does; the views serialized here never do.
        let _ = write(&mut out, value, layout);
    }
    out
}

/// A line break and the indentation of the deepest level written in one piece; deeper levels
/// (none of the APIs' objects) take more writes.
const BREAK: &[u8] = b"\n                                                                ";

/// The layout of what is written: pretty, or compact (`compact`: no line breaks, and `:` alone
/// between a name and its value).
#[derive(Default, Clone)]
struct Pretty {
    /// The level being written (0 outside any array or object).
    level: usize,
    /// Whether the array or object being closed has a value (`[]` stays on one line).
    has_value: bool,
    /// Compact rather than pretty.
    compact: bool,
}

impl Pretty {
    /// What goes between a name and its value.
    fn colon(&self) -> &'static [u8] {
        if self.compact {
            b":"
        } else {
            b": "
        }
    }

    fn new_line<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        if self.compact {
            return Ok(());
        }
        let mut spaces = self.level * 2;
        let first = spaces.min(BREAK.len() - 1);
        w.write_all(&BREAK[..1 + first])?;
        spaces -= first;
        while spaces > 0 {
            let n = spaces.min(BREAK.len() - 1);
            w.write_all(&BREAK[1..1 + n])?;
            spaces -= n;
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.new_line(w)?;
        }
        w.write_all(bracket)
    }

    fn item<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.new_line(w)
    }
}

/// Numbers, strings and their escapes are written by the trait's own methods, as serde_json's
/// formatters write them.
impl Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(self.colon())
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// What [`Writer`] leaves to serde_json (see [`to_vec`]).
#[derive(Debug)]
struct GiveUp;

impl Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to serde_json")
    }
}

impl std::error::Error for GiveUp {}

impl ser::Error for GiveUp {
    fn custom<T: Display>(_: T) -> Self {
        GiveUp
    }
}

/// The serializer's methods for integers, one per `method: type` pair, each writing its value with
/// the serializer's own `integer`.
macro_rules! integers {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method(self, v: $ty) -> Result<(), GiveUp> {
                self.integer(v)
            }
        )*
    };
}

/// A serializer writing JSON into a buffer, the way serde_json with [`Pretty`] does: the brackets,
/// commas, line breaks and colons are [`Pretty`]'s own, pretty or compact.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    layout: Pretty,
}

impl<'a> Writer<'a> {
    #[cfg(test)]
    fn new(out: &'a mut Vec<u8>) -> Self {
        Writer {
            out,
            layout: Pretty::default(),
        }
    }

    /// What goes between a name and its value.
    fn colon(&mut self) {
        self.out.extend_from_slice(self.layout.colon());
    }

    // Writing to a Vec cannot fail: the layout's `io::Result`s are always `Ok`.

    fn open(&mut self, bracket: &[u8]) {
        let _ = self.layout.open(self.out, bracket);
    }

    fn close(&mut self, bracket: &[u8]) {
        let _ = self.layout.close(self.out, bracket);
    }

    fn item(&mut self, first: bool) {
        let _ = self.layout.item(self.out, first);
    }

    fn integer(&mut self, value: impl itoa::Integer) -> Result<(), GiveUp> {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        Ok(())
    }

    fn string(&mut self, value: &str) {
        write_string(self.out, value);
    }
}

/// The escape of each byte that has one in a JSON string, as serde_json writes it: `u` for
/// `\u00XX`, the letter of a short escape otherwise, 0 for a byte written as it is.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Whether any of the eight bytes of `chunk` is a control character, `"` or `\`.
fn any_to_escape(chunk: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below n sets its high bit in (x - n) & !x, as long as n is at most 0x80; a byte
    // equal to c is a zero byte of x ^ c.
    let below_space = chunk.wrapping_sub(ONES * 0x20) & !chunk;
    let quote = chunk ^ (ONES * b'"' as u64);
    let backslash = chunk ^ (ONES * b'\\' as u64);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    (below_space | zero(quote) | zero(backslash)) & HIGH != 0
}

/// `value` as a JSON string, quoted and escaped, at the end of `out`.
fn write_string(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if clean(bytes) {
        out.extend_from_slice(bytes);
    } else {
        write_escaped(out, bytes);
    }
    out.push(b'"');
}

/// Whether nothing in `bytes` is to be escaped: eight bytes at a time, the last eight (which may
/// overlap the ones before) for the rest; byte by byte only below eight.
fn clean(bytes: &[u8]) -> bool {
    let chunk = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    if bytes.len() < 8 {
        return bytes.iter().all(|&b| ESCAPE[b as usize] == 0);
    }
    let mut at = 0;
    while at + 8 < bytes.len() {
        if any_to_escape(chunk(at)) {
            return false;
        }
        at += 8;
    }
    !any_to_escape(chunk(bytes.len() - 8))
}

/// `bytes` escaped as serde_json escapes them, at the end of `out`.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (at, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..at]);
        start = at + 1;
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.push(b'\\');
            out.push(escape);
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// An array or object being written by [`Writer`].
struct Compound<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
}

impl Compound<'_, '_> {
    /// Starts the next element or entry: the separator and indentation before it.
    fn next_item(&mut self) {
        self.writer.item(self.first);
        self.first = false;
    }

    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), GiveUp> {
        self.next_item();
        value.serialize(&mut *self.writer)?;
        self.writer.layout.has_value = true;
        Ok(())
    }

    fn entry<T: ?Sized + Serialize>(&mut self, key: &str, value: &T) -> Result<(), GiveUp> {
        self.next_item();
        self.writer.string(key);
        self.value(value)
    }

    fn value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), GiveUp> {
        self.writer.colon();
        value.serialize(&mut *self.writer)?;
        self.writer.layout.has_value = true;
        Ok(())
    }
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = GiveUp;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), GiveUp> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    integers! {
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128,
    }

    fn serialize_f32(self, v: f32) -> Result<(), GiveUp> {
        // Numbers with a fraction are serde_json's own (its shortest round-trip form; null when
        // not finite).
        serde_json::to_writer(&mut *self.out, &v).map_err(|_| GiveUp)
    }

    fn serialize_f64(self, v: f64) -> Result<(), GiveUp> {
        serde_json::to_writer(&mut *self.out, &v).map_err(|_| GiveUp)
    }

    fn serialize_char(self, v: char) -> Result<(), GiveUp> {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), GiveUp> {
        self.string(v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), GiveUp> {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }

    fn serialize_none(self) -> Result<(), GiveUp> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), GiveUp> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), GiveUp> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), GiveUp> {
        self.serialize_none()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), GiveUp> {
        self.string(variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), GiveUp> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), GiveUp> {
        self.open(b"{");
        let mut object = Compound {
            writer: self,
            first: true,
        };
        object.entry(variant, value)?;
        object.writer.close(b"}");
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'w, 'a>, GiveUp> {
        self.open(b"[");
        Ok(Compound {
            writer: self,
            first: true,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'a>, GiveUp> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'a>, GiveUp> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'a>, GiveUp> {
        // `{"variant": [` … `]}`: the outer object is closed in `end`.
        self.open(b"{");
        self.item(true);
        self.string(variant);
        self.colon();
        self.serialize_seq(None)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'w, 'a>, GiveUp> {
        self.open(b"{");
        Ok(Compound {
            writer: self,
            first: true,
        })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'w, 'a>, GiveUp> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'a>, GiveUp> {
        // `{"variant": {` … `}}`: the outer object is closed in `end`.
        self.open(b"{");
        self.item(true);
        self.string(variant);
        self.colon();
        self.serialize_map(None)
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = GiveUp;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), GiveUp> {
        self.element(value)
    }

    fn end(self) -> Result<(), GiveUp> {
        self.writer.close(b"]");
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = GiveUp;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), GiveUp> {
        self.element(value)
    }

    fn end(self) -> Result<(), GiveUp> {
        self.writer.close(b"]");
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = GiveUp;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), GiveUp> {
        self.element(value)
    }

    fn end(self) -> Result<(), GiveUp> {
        self.writer.close(b"]");
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = GiveUp;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), GiveUp> {
        self.element(value)
    }

    fn end(self) -> Result<(), GiveUp> {
        self.writer.close(b"]");
        self.writer.layout.has_value = true;
        self.writer.close(b"}");
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = GiveUp;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), GiveUp> {
        self.next_item();
        key.serialize(KeyWriter(&mut *self.writer.out))
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), GiveUp> {
        self.value(value)
    }

    fn end(self) -> Result<(), GiveUp> {
        self.writer.close(b"}");
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = GiveUp;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), GiveUp> {
        self.entry(key, value)
    }

    fn end(self) -> Result<(), GiveUp> {
        self.writer.close(b"}");
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = GiveUp;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), GiveUp> {
        self.entry(key, value)
    }

    fn end(self) -> Result<(), GiveUp> {
        self.writer.close(b"}");
        self.writer.layout.has_value = true;
        self.writer.close(b"}");
        Ok(())
    }
}

/// A map's key: a string, or an integer written as one. Anything else is left to serde_json.
struct KeyWriter<'o>(&'o mut Vec<u8>);

impl KeyWriter<'_> {
    fn integer(self, value: impl itoa::Integer) -> Result<(), GiveUp> {
        self.0.push(b'"');
        self.0
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.0.push(b'"');
        Ok(())
    }
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = GiveUp;
    type SerializeSeq = ser::Impossible<(), GiveUp>;
    type SerializeTuple = ser::Impossible<(), GiveUp>;
    type SerializeTupleStruct = ser::Impossible<(), GiveUp>;
    type SerializeTupleVariant = ser::Impossible<(), GiveUp>;
    type SerializeMap = ser::Impossible<(), GiveUp>;
    type SerializeStruct = ser::Impossible<(), GiveUp>;
    type SerializeStructVariant = ser::Impossible<(), GiveUp>;

    fn serialize_str(self, v: &str) -> Result<(), GiveUp> {
        write_string(self.0, v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), GiveUp> {
        write_string(self.0, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), GiveUp> {
        write_string(self.0, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), GiveUp> {
        value.serialize(self)
    }

    integers! {
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
    }

    fn serialize_bool(self, _v: bool) -> Result<(), GiveUp> {
        Err(GiveUp)
    }

    fn serialize_f32(self, _v: f32) -> Result<(), GiveUp> {
        Err(GiveUp)
    }

    fn serialize_f64(self, _v: f64) -> Result<(), GiveUp> {
        Err(GiveUp)
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<(), GiveUp> {
        Err(GiveUp)
    }

    fn serialize_none(self) -> Result<(), GiveUp> {
        Err(GiveUp)
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> Result<(), GiveUp> {
        Err(GiveUp)
    }

    fn serialize_unit(self) -> Result<(), GiveUp> {
        Err(GiveUp)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), GiveUp> {
        Err(GiveUp)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), GiveUp> {
        Err(GiveUp)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, GiveUp> {
        Err(GiveUp)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn writes_what_serde_json_writes() {
        let deep = (0..40).fold(
            json!({"leaf": [1, {}], "empty": []}),
            |inner, i| json!({ "level": i, "inner": inner, "list": [[], null, "a\"b\n"] }),
        );
        for value in [
            json!(null),
            json!([]),
            json!({}),
            json!({"a": [], "b": {}, "c": [[]], "d": [{}]}),
            json!({"id": "cgrant_1", "amount": {"monetary": {"currency": "usd", "value": 1000}}, "metadata": {}, "x": 1.5}),
            deep,
            json!({"escapes": "q\"b\\s/\u{0}\u{1f}\u{7f}\u{8}\t\n\u{c}\r é ✓ 😀 long enough to take chunks \"x\"",
                   "Ünïcode kéy \"q\"": [1, -2, 18446744073709551615u64, -9223372036854775808i64, 0.1, -1e300, 2.0],
                   "nested": [[[{}]], [{"a": [null, true, false]}]]}),
        ] {
            let ours = super::to_vec(&value, 0);
            let theirs = serde_json::to_vec_pretty(&value).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
            let ours = super::to_vec_compact(&value, 0);
            let theirs = serde_json::to_vec(&value).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
            // Written by the serializer here, not left to serde_json, in both layouts.
            let mut out = Vec::new();
            let mut writer = super::Writer::new(&mut out);
            assert!(serde::Serialize::serialize(&value, &mut writer).is_ok());
            let mut out = Vec::new();
            let mut writer = super::Writer::new(&mut out);
            writer.layout.compact = true;
            assert!(serde::Serialize::serialize(&value, &mut writer).is_ok());
        }
    }

    /// Enum variants, keys that are not strings (integers are written, the rest left to
    /// serde_json) and floats, as serde_json writes them.
    #[test]
    fn variants_keys_and_numbers() {
        use std::collections::BTreeMap;

        #[derive(serde::Serialize)]
        enum Shape {
            Unit,
            Newtype(u8),
            Tuple(i32, &'static str),
            EmptyTuple(),
            Struct { a: u8, b: Vec<u8> },
            EmptyStruct {},
        }
        #[derive(serde::Serialize)]
        struct All {
            shapes: Vec<Shape>,
            by_int: BTreeMap<i64, &'static str>,
            by_bool: BTreeMap<bool, u8>,
            float: f64,
            nan: f64,
            small: f32,
            wide: i128,
            ch: char,
            bytes: serde_bytes_like::Bytes,
            unit: (),
            tuple: (u8, (), Option<u8>),
        }
        mod serde_bytes_like {
            pub struct Bytes(pub Vec<u8>);
            impl serde::Serialize for Bytes {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_bytes(&self.0)
                }
            }
        }
        let all = |by_bool: BTreeMap<bool, u8>| All {
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(7),
                Shape::Tuple(-1, "t"),
                Shape::EmptyTuple(),
                Shape::Struct { a: 1, b: vec![] },
                Shape::EmptyStruct {},
            ],
            by_int: BTreeMap::from([(-3, "minus"), (10, "ten")]),
            by_bool,
            float: 1.25,
            nan: f64::NAN,
            small: 0.1,
            wide: -170141183460469231731687303715884105728,
            ch: '"',
            bytes: serde_bytes_like::Bytes(vec![0, 255]),
            unit: (),
            tuple: (1, (), None),
        };
        for value in [all(BTreeMap::new()), all(BTreeMap::from([(true, 1)]))] {
            let ours = super::to_vec(&value, 0);
            let theirs = serde_json::to_vec_pretty(&value).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
            // A key left to serde_json is written compact there too.
            let ours = super::to_vec_compact(&value, 0);
            let theirs = serde_json::to_vec(&value).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }

    /// Any string, as serde_json writes it (escapes found eight bytes at a time must not miss
    /// one, or find one that is not there).
    #[test]
    fn any_string_as_serde_json_writes_it() {
        use proptest::prelude::*;
        let ch = prop_oneof![
            3 => prop::char::range('\u{0}', '\u{7f}'),
            1 => any::<char>(),
        ];
        proptest!(|(chars in prop::collection::vec(ch, 0..40))| {
            let s: String = chars.into_iter().collect();
            let ours = super::to_vec(&s, 0);
            prop_assert_eq!(ours, serde_json::to_vec_pretty(&s).unwrap());
        });
    }
}
