//! Binding JSON bodies the way gin binds them into Go structs, straight into typed request structs
//! (no `serde_json::Value` tree).
//!
//! A request struct is declared with `json_object!`: every field is an `Option` of what it holds,
//! and a [`Kind`] says how its JSON binds. The rules reproduced:
//!
//! - unknown fields are ignored, and a key sent twice keeps its last value (Go's decoder);
//! - `null` is the same as absent;
//! - a value of the wrong JSON type (a number for a string, `1.5` for an int, a malformed time, a
//!   non-string metadata value) fails the whole request with `Invalid request format`, whatever else
//!   the body holds. The request is still read to its end first, so that malformed JSON later in the
//!   body and nesting deeper than the limit are what is reported, as when the body was parsed whole;
//! - decimals (`credits`, rates) accept a JSON string or number, as shopspring's decimal does.
//!
//! Every value, ignored ones included, is read through `deserialize_any`, so strings, escapes, numbers
//! and nesting are checked exactly as `serde_json` checks them when it builds a `Value`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::{NativeError, NativeResult};
use crate::model::Metadata;
use crate::time::{parse_rfc3339, Nanos};

/// What one JSON value bound into a field: nothing (`null`), a value, or the wrong JSON type.
#[derive(Debug)]
pub enum Slot<T> {
    /// `null`: the field stays absent.
    Null,
    /// A value of the right type.
    Value(T),
    /// The wrong JSON type; the value was read and thrown away.
    Wrong,
}

/// How a JSON value binds into a Go field of some type.
pub trait Kind {
    /// What the field holds once bound.
    type Out;
    /// Reads one value. Errors are only those of malformed JSON; a wrong type is [`Slot::Wrong`].
    fn bind<'de, D: Deserializer<'de>>(d: D) -> Result<Slot<Self::Out>, D::Error>;
}

/// A request object: a struct made by `json_object!`.
pub trait Object: Default {
    /// The JSON keys of its fields.
    const FIELDS: &'static [&'static str];
    /// Binds the value of `key` (one of [`Object::FIELDS`]) from `map`.
    fn set<'de, A: MapAccess<'de>>(
        &mut self,
        key: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error>;
    /// Whether some field's last value had the wrong type.
    fn is_wrong(&self) -> bool;
}

/// The seed that binds one value with kind `K`.
pub struct Seed<K>(PhantomData<K>);

impl<K> Seed<K> {
    /// A seed.
    pub fn new() -> Self {
        Seed(PhantomData)
    }
}

impl<K> Default for Seed<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'de, K: Kind> DeserializeSeed<'de> for Seed<K> {
    type Value = Slot<K::Out>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        K::bind(d)
    }
}

/// The visitor methods of every JSON type a kind does not take: `null` is [`Slot::Null`]; anything
/// else is read to its end and is [`Slot::Wrong`]. Expanded inside a visitor whose `Value` is a
/// `Slot`, naming the container it leaves to the kind's own method (`seq` or `map`), if any.
macro_rules! other_types_are_wrong {
    (but seq) => {
        other_types_are_wrong!(scalars);
        other_types_are_wrong!(map);
    };
    (but map) => {
        other_types_are_wrong!(scalars);
        other_types_are_wrong!(seq);
    };
    (scalars) => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Slot::Null)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Slot::Null)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Slot::Wrong)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Slot::Wrong)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Slot::Wrong)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Slot::Wrong)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Slot::Wrong)
        }
    };
    (seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<Skip>()?.is_some() {}
            Ok(Slot::Wrong)
        }
    };
    (map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<Skip, Skip>()?.is_some() {}
            Ok(Slot::Wrong)
        }
    };
}

/// Declares a request struct bound from a JSON object: `name: Str` makes a field
/// `pub name: Option<String>` read from the key `"name"` as a Go `string`.
macro_rules! json_object {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $kind:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default)]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: Option<<$kind as $crate::native::json::Kind>::Out>, )*
            /// Keys whose last value had the wrong JSON type.
            wrong: Vec<&'static str>,
        }

        impl $crate::native::json::Object for $name {
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn set<'de, A: ::serde::de::MapAccess<'de>>(
                &mut self,
                key: &'static str,
                map: &mut A,
            ) -> Result<(), A::Error> {
                use $crate::native::json::{Seed, Slot};
                match key {
                    $(stringify!($field) => {
                        match map.next_value_seed(Seed::<$kind>::new())? {
                            Slot::Value(v) => self.$field = Some(v),
                            Slot::Null => self.$field = None,
                            Slot::Wrong => {
                                self.wrong.push(key);
                                return Ok(());
                            }
                        }
                    })*
                    _ => {
                        map.next_value::<$crate::native::json::Skip>()?;
                    }
                }
                // A later value of the right type overrides an earlier wrong one.
                if !self.wrong.is_empty() {
                    self.wrong.retain(|k| *k != key);
                }
                Ok(())
            }

            fn is_wrong(&self) -> bool {
                !self.wrong.is_empty()
            }
        }

        impl $crate::native::json::Kind for $name {
            type Out = $name;
            fn bind<'de, D: ::serde::Deserializer<'de>>(
                d: D,
            ) -> Result<$crate::native::json::Slot<$name>, D::Error> {
                $crate::native::json::bind_object::<$name, D>(d)
            }
        }
    };
}

pub(crate) use json_object;

/// Binds an [`Object`] from a JSON object; `null` is absent, anything else the wrong type.
pub fn bind_object<'de, T: Object, D: Deserializer<'de>>(d: D) -> Result<Slot<T>, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<'de, T: Object> Visitor<'de> for V<T> {
        type Value = Slot<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = T::default();
            while let Some(key) = map.next_key_seed(FieldKey(T::FIELDS))? {
                match key {
                    Some(k) => out.set(k, &mut map)?,
                    None => {
                        map.next_value::<Skip>()?;
                    }
                }
            }
            Ok(if out.is_wrong() {
                Slot::Wrong
            } else {
                Slot::Value(out)
            })
        }
        other_types_are_wrong!(but map);
    }
    d.deserialize_any(V(PhantomData))
}

/// Resolves a key to one of `FIELDS` without allocating (`None`: a key the struct ignores).
struct FieldKey(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldKey {
    type Value = Option<&'static str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldKey {
    type Value = Option<&'static str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|k| **k == v).copied())
    }
}

/// Any JSON value, checked and thrown away.
#[derive(Debug, Clone, Copy, Default)]
pub struct Skip;

impl<'de> serde::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor).map(|_| Skip)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(())
    }
}

/// One scalar JSON value as it was sent; arrays and objects are read and only their emptiness kept.
#[derive(Debug)]
enum Scalar<'de> {
    Null,
    Bool,
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'de, str>),
    Array { empty: bool },
    Object { empty: bool },
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut empty = true;
        while seq.next_element::<Skip>()?.is_some() {
            empty = false;
        }
        Ok(Scalar::Array { empty })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut empty = true;
        while map.next_entry::<Skip, Skip>()?.is_some() {
            empty = false;
        }
        Ok(Scalar::Object { empty })
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar<'de>, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

/// A Go `string`.
#[derive(Debug)]
pub enum Str {}

impl Kind for Str {
    type Out = String;
    fn bind<'de, D: Deserializer<'de>>(d: D) -> Result<Slot<String>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Str(s) => Slot::Value(s.into_owned()),
            Scalar::Null => Slot::Null,
            _ => Slot::Wrong,
        })
    }
}

/// A Go `int`: a JSON integer that fits in 64 bits; no fraction, no string.
#[derive(Debug)]
pub enum Int {}

impl Kind for Int {
    type Out = i64;
    fn bind<'de, D: Deserializer<'de>>(d: D) -> Result<Slot<i64>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Int(n) => Slot::Value(n),
            Scalar::UInt(n) => i64::try_from(n).map_or(Slot::Wrong, Slot::Value),
            Scalar::Null => Slot::Null,
            _ => Slot::Wrong,
        })
    }
}

/// A shopspring decimal: a JSON string or number, any width (see [`parse_decimal_any`]).
#[derive(Debug)]
pub enum Dec {}

/// A decimal as bound: the value the emulator computes with, and the exact text as shopspring
/// prints it (for error details).
#[derive(Debug, Clone, PartialEq)]
pub struct DecimalText {
    /// The value (clamped where it is beyond `Decimal`'s range).
    pub value: Decimal,
    /// The exact value as text.
    pub shown: String,
}

impl Kind for Dec {
    type Out = DecimalText;
    fn bind<'de, D: Deserializer<'de>>(d: D) -> Result<Slot<DecimalText>, D::Error> {
        let parse = |text: &str| {
            parse_decimal_any(text).map_or(Slot::Wrong, |(value, shown)| {
                Slot::Value(DecimalText { value, shown })
            })
        };
        Ok(match scalar(d)? {
            Scalar::Str(s) => parse(&s),
            // A number is read through its text, printed as `serde_json` prints a parsed number.
            Scalar::Int(n) => parse(&n.to_string()),
            Scalar::UInt(n) => parse(&n.to_string()),
            Scalar::Float(f) => match serde_json::Number::from_f64(f) {
                Some(n) => parse(&n.to_string()),
                None => Slot::Wrong,
            },
            Scalar::Null => Slot::Null,
            _ => Slot::Wrong,
        })
    }
}

/// A Go `time.Time`: an RFC 3339 string (see [`parse_rfc3339`]).
#[derive(Debug)]
pub enum Time {}

impl Kind for Time {
    type Out = Nanos;
    fn bind<'de, D: Deserializer<'de>>(d: D) -> Result<Slot<Nanos>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Str(s) => parse_rfc3339(&s).map_or(Slot::Wrong, Slot::Value),
            Scalar::Null => Slot::Null,
            _ => Slot::Wrong,
        })
    }
}

/// A Go `map[string]string`, in the order keys were first sent; a `null` value is `""`.
#[derive(Debug)]
pub enum Map {}

impl Kind for Map {
    type Out = Metadata;
    fn bind<'de, D: Deserializer<'de>>(d: D) -> Result<Slot<Metadata>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Slot<Metadata>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // Each key in the place it was first sent, with its last value; `None` where that
                // value is not a string (the whole map is then wrong). Gathered in a hash map, so
                // that a body of many keys costs time in proportion to its size.
                let mut pairs: indexmap::IndexMap<String, Option<String>> =
                    indexmap::IndexMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = match scalar_of(&mut map)? {
                        Scalar::Str(s) => Some(s.into_owned()),
                        // Go leaves a null map value as the empty string.
                        Scalar::Null => Some(String::new()),
                        _ => None,
                    };
                    pairs.insert(key, value);
                }
                if pairs.values().any(Option::is_none) {
                    return Ok(Slot::Wrong);
                }
                Ok(Slot::Value(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k, v.unwrap_or_default()))
                        .collect(),
                ))
            }
            other_types_are_wrong!(but map);
        }
        d.deserialize_any(V)
    }
}

/// The next value of `map` as a [`Scalar`].
fn scalar_of<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Scalar<'de>, A::Error> {
    struct S;
    impl<'de> DeserializeSeed<'de> for S {
        type Value = Scalar<'de>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            scalar(d)
        }
    }
    map.next_value_seed(S)
}

/// A Go slice of structs: a JSON array of objects (a `null` item is an empty struct).
#[derive(Debug)]
pub struct List<T>(PhantomData<T>);

impl<T: Object + Kind<Out = T>> Kind for List<T> {
    type Out = Vec<T>;
    fn bind<'de, D: Deserializer<'de>>(d: D) -> Result<Slot<Vec<T>>, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Object + Kind<Out = T>> Visitor<'de> for V<T> {
            type Value = Slot<Vec<T>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON array of objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                let mut wrong = false;
                while let Some(item) = seq.next_element_seed(Seed::<T>::new())? {
                    match item {
                        Slot::Value(v) => out.push(v),
                        Slot::Null => out.push(T::default()),
                        Slot::Wrong => wrong = true,
                    }
                }
                Ok(if wrong { Slot::Wrong } else { Slot::Value(out) })
            }
            other_types_are_wrong!(but seq);
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// What was sent for a field the emulator does not model, whatever its type: enough to tell an
/// empty value from a given one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// A string.
    Str {
        /// `""`.
        empty: bool,
    },
    /// An array.
    Array {
        /// `[]`.
        empty: bool,
    },
    /// An object.
    Object {
        /// `{}`.
        empty: bool,
    },
    /// A number or a boolean.
    Other,
}

/// Any JSON value, kept as its [`Sent`] shape.
#[derive(Debug)]
pub enum Any {}

impl Kind for Any {
    type Out = Sent;
    fn bind<'de, D: Deserializer<'de>>(d: D) -> Result<Slot<Sent>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Null => Slot::Null,
            Scalar::Str(s) => Slot::Value(Sent::Str {
                empty: s.is_empty(),
            }),
            Scalar::Array { empty } => Slot::Value(Sent::Array { empty }),
            Scalar::Object { empty } => Slot::Value(Sent::Object { empty }),
            Scalar::Bool | Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_) => {
                Slot::Value(Sent::Other)
            }
        })
    }
}

/// Binds a request body as gin's `ShouldBindJSON` does. Empty or malformed bodies, non-objects, a
/// field of the wrong type, and nesting deeper than `max_depth` fail; a literal `null` binds
/// nothing (every field absent).
pub fn bind<T: Object + Kind<Out = T>>(bytes: &[u8], max_depth: usize) -> NativeResult<T> {
    let too_deep = || {
        NativeError::validation(format!(
            "Invalid request format: the emulator accepts JSON nested at most {max_depth} levels deep"
        ))
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let bound = Seed::<T>::new()
        .deserialize(&mut de)
        .and_then(|slot| de.end().map(|()| slot));
    let slot = match bound {
        Ok(slot) => slot,
        // The parser gives up past 128 levels on its own; that is the same limit being hit.
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => return Err(too_deep()),
        Err(_) => return Err(NativeError::invalid_format()),
    };
    if depth(bytes) > max_depth {
        return Err(too_deep());
    }
    match slot {
        Slot::Value(t) => Ok(t),
        Slot::Null => Ok(T::default()),
        Slot::Wrong => Err(NativeError::invalid_format()),
    }
}

/// How deeply arrays and objects nest in `bytes`, which hold well-formed JSON (`{}` is 1).
pub fn depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A decimal in any of the spellings shopspring accepts (`12`, `12.50`, `-3`, `1e3`).
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Decimal::from_str(s)
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
}

/// Any decimal shopspring accepts, which has no range limit, as a value the emulator can compute
/// with and its exact text. Values beyond `Decimal`'s range keep what validation looks at: a huge one
/// becomes `±Decimal::MAX` (still "not positive" or "too wide to store"), a tiny one `±1e-28` (still
/// positive or negative, and stored as 0 like any value under the column's 8 decimals).
pub fn parse_decimal_any(s: &str) -> Option<(Decimal, String)> {
    let t = s.trim();
    let (negative, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    // shopspring reads the exponent as an int32, and refuses a value whose exponent (after the
    // fraction's digits are taken off) leaves that range.
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], i64::from(body[i + 1..].parse::<i32>().ok()?)),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // value = digits × 10^exponent
    let digits: String = format!("{int}{frac}");
    let exponent = exp.checked_sub(frac.len() as i64)?;
    if i32::try_from(exponent).is_err() {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return Some((Decimal::ZERO, "0".to_string()));
    }
    let shown = plain(negative, trimmed, exponent);
    // Beyond 28 decimals `Decimal` rounds; a value that rounds to zero keeps its sign as ±1e-28.
    if let Some(d) = parse_decimal(&shown).filter(|d| !d.is_zero()) {
        return Some((d, shown));
    }
    let integer_digits = (trimmed.len() as i64).saturating_add(exponent);
    let magnitude = if integer_digits > 28 {
        Decimal::MAX
    } else {
        Decimal::new(1, 28)
    };
    Some((if negative { -magnitude } else { magnitude }, shown))
}

/// `digits × 10^exponent` written out in full, without trailing fractional zeros.
fn plain(negative: bool, digits: &str, exponent: i64) -> String {
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exponent >= 0 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', exponent.min(4096) as usize));
        return out;
    }
    let shift = (-exponent).min(4096) as usize;
    let (int, frac) = if digits.len() > shift {
        digits.split_at(digits.len() - shift)
    } else {
        ("", digits)
    };
    let pad = shift.saturating_sub(digits.len());
    out.push_str(if int.is_empty() { "0" } else { int });
    let mut f = "0".repeat(pad);
    f.push_str(frac);
    let f = f.trim_end_matches('0');
    if !f.is_empty() {
        out.push('.');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(s: &str) -> Option<(String, String)> {
        parse_decimal_any(s).map(|(d, t)| (d.to_string(), t))
    }

    #[test]
    fn decimals_beyond_the_range() {
        assert_eq!(shown("12.50"), Some(("12.5".into(), "12.5".into())));
        assert_eq!(shown("-1e+30").unwrap().1, format!("-1{}", "0".repeat(30)));
        assert_eq!(shown("-1e+30").unwrap().0, (-Decimal::MAX).to_string());
        assert_eq!(shown("1e-40").unwrap().1, format!("0.{}1", "0".repeat(39)));
        assert_eq!(shown("1e-40").unwrap().0, Decimal::new(1, 28).to_string());
        assert_eq!(shown("1.5E3"), Some(("1500".into(), "1500".into())));
        assert_eq!(shown("0.000"), Some(("0".into(), "0".into())));
        assert_eq!(shown("+7"), Some(("7".into(), "7".into())));
        assert_eq!(shown("1e2147483647").unwrap().0, Decimal::MAX.to_string());
        assert_eq!(
            shown("-1e-2147483648").unwrap().0,
            (-Decimal::new(1, 28)).to_string()
        );
        for bad in [
            "",
            "-",
            ".",
            "1e",
            "e5",
            "1.2.3",
            "0x10",
            "NaN",
            "1e99999999999999999999",
            "1e9223372036854775807",
            "1e2147483648",
            "1.5e-2147483648",
        ] {
            assert_eq!(shown(bad), None, "{bad}");
        }
    }

    json_object! {
        struct Probe {
            name: Str,
            count: Int,
            credits: Dec,
            at: Time,
            metadata: Map,
            other: Any,
            items: List<Probe>,
        }
    }

    fn probe(body: &str) -> NativeResult<Probe> {
        bind::<Probe>(body.as_bytes(), 32)
    }

    fn message(body: &str) -> String {
        probe(body).map_or_else(|e| e.message, |_| "ok".to_string())
    }

    #[test]
    fn binds_as_gin_does() {
        let p = probe(r#"{"name":"a","count":3,"credits":"12.50","at":"2025-01-01T00:00:00Z","x":[1,{"y":null}]}"#)
            .unwrap();
        assert_eq!(p.name.as_deref(), Some("a"));
        assert_eq!(p.count, Some(3));
        assert_eq!(p.credits.unwrap().shown, "12.5");
        assert_eq!(p.at, Some(1_735_689_600_000_000_000));
        // null is absent; the last of repeated keys wins, even over a wrong type.
        let p = probe(r#"{"name":"a","name":null,"count":"x","count":2}"#).unwrap();
        assert_eq!((p.name, p.count), (None, Some(2)));
        assert_eq!(
            message(r#"{"count":2,"count":"x"}"#),
            "Invalid request format"
        );
        // Numbers as decimals are read through their text.
        assert_eq!(
            probe(r#"{"credits":1e3}"#).unwrap().credits.unwrap().shown,
            "1000"
        );
        assert_eq!(
            probe(r#"{"credits":0.1}"#).unwrap().credits.unwrap().shown,
            "0.1"
        );
        assert_eq!(message(r#"{"count":1.0}"#), "Invalid request format");
        assert_eq!(
            message(r#"{"count":9223372036854775808}"#),
            "Invalid request format"
        );
        assert_eq!(probe("null").unwrap().name, None);
        assert_eq!(message("[]"), "Invalid request format");
        assert_eq!(message(""), "Invalid request format");
    }

    #[test]
    fn metadata_of_many_keys_binds_in_one_pass() {
        // Every key once, then the first again: in a repacking map this would be quadratic.
        let n = 50_000;
        let mut body = String::from(r#"{"metadata":{"#);
        for i in 0..n {
            body.push_str(&format!(r#""k{i}":"v{i}","#));
        }
        body.push_str(r#""k0":"last"}}"#);
        let m = bind::<Probe>(body.as_bytes(), 32)
            .unwrap()
            .metadata
            .unwrap();
        assert_eq!(m.len(), n);
        assert_eq!(m.iter().next(), Some(("k0", "last")));
        assert_eq!(m.iter().last(), Some(("k49999", "v49999")));
    }

    #[test]
    fn metadata_keeps_first_places_and_last_values() {
        let p = probe(r#"{"metadata":{"b":"1","a":null,"b":"2","c":1,"c":"3"}}"#).unwrap();
        let m = p.metadata.unwrap();
        let pairs: Vec<(&str, &str)> = m.iter().collect();
        assert_eq!(pairs, [("b", "2"), ("a", ""), ("c", "3")]);
        assert_eq!(message(r#"{"metadata":{"a":1}}"#), "Invalid request format");
        assert_eq!(message(r#"{"metadata":[]}"#), "Invalid request format");
    }

    #[test]
    fn nested_objects_and_shapes() {
        let p = probe(r#"{"items":[{"name":"x"},null],"other":[]}"#).unwrap();
        let items = p.items.unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name.as_deref(), Some("x"));
        assert_eq!(p.other, Some(Sent::Array { empty: true }));
        assert_eq!(
            message(r#"{"items":[{"count":"x"}]}"#),
            "Invalid request format"
        );
        assert_eq!(message(r#"{"items":[1]}"#), "Invalid request format");
    }

    #[test]
    fn malformed_json_and_depth_win_over_types() {
        // Everything ignored is still checked as JSON.
        assert_eq!(message(r#"{"x":"\ud800"}"#), "Invalid request format");
        assert_eq!(message(r#"{"x":1e999}"#), "Invalid request format");
        assert_eq!(message(r#"{"x":1} x"#), "Invalid request format");
        let deep = format!("{{\"name\":1,\"x\":{}{}}}", "[".repeat(40), "]".repeat(40));
        assert!(message(&deep).contains("at most 32 levels"));
        let deeper = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(message(&deeper).contains("at most 32 levels"));
        assert_eq!(depth(br#"{"a":"[[[","b":[{}]}"#), 3);
        assert_eq!(depth(br#"["\"[", 1]"#), 1);
    }
}
