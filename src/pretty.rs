//! Pretty JSON as the APIs answer it: two spaces per level, `"name": value`, empty arrays and
//! objects as `[]` and `{}`. The same bytes as `serde_json::to_writer_pretty`, written faster.
//!
//! serde_json's pretty formatter writes a line's indentation as one two-byte write per level, and
//! every answer is pretty: a line break and its indentation here are one write from a buffer of
//! spaces.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};

/// Writes `value` as pretty JSON at the end of `out`.
fn write(out: &mut Vec<u8>, value: &impl Serialize) -> serde_json::Result<()> {
    let mut ser = Serializer::with_formatter(out, Pretty::default());
    value.serialize(&mut ser)
}

/// `value` as pretty JSON, in a buffer of `capacity` bytes to start with.
pub fn to_vec(value: &impl Serialize, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    // Writing to a Vec fails only if `Serialize` does; the views serialized here never do.
    let _ = write(&mut out, value);
    out
}

/// A line break and the indentation of the deepest level written in one piece; deeper levels
/// (none of the APIs' objects) take more writes.
const BREAK: &[u8] = b"\n                                                                ";

#[derive(Default)]
struct Pretty {
    /// The level being written (0 outside any array or object).
    level: usize,
    /// Whether the array or object being closed has a value (`[]` stays on one line).
    has_value: bool,
}

impl Pretty {
    fn new_line<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
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
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
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
        ] {
            let ours = super::to_vec(&value, 0);
            let theirs = serde_json::to_vec_pretty(&value).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }
}
