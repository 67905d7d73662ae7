//! Reading JSON bodies the way gin binds them into Go structs, and writing values the way Go
//! marshals them.
//!
//! Binding rules reproduced: unknown fields are ignored; `null` is the same as absent; a value of the
//! wrong JSON type (a number for a string, `1.5` for an int, a malformed time) fails the whole request
//! with `Invalid request format`. Decimals (`credits`, rates) accept a JSON string or number, as
//! shopspring's decimal does.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::error::{NativeError, NativeResult};
use crate::model::Metadata;
use crate::time::{parse_rfc3339, to_rfc3339, Nanos};

/// A request body: a JSON object.
#[derive(Debug, Default)]
pub struct Body(Map<String, Value>);

/// Parses a body. Empty or malformed bodies, non-objects, and nesting deeper than `max_depth` fail
/// as gin's binding does. A literal `null` binds nothing (an empty object).
pub fn parse_body(bytes: &[u8], max_depth: usize) -> NativeResult<Body> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| NativeError::invalid_format())?;
    if depth(&value) > max_depth {
        return Err(NativeError::validation(format!(
            "Invalid request format: the emulator accepts JSON nested at most {max_depth} levels deep"
        )));
    }
    match value {
        Value::Object(m) => Ok(Body(m)),
        Value::Null => Ok(Body::default()),
        _ => Err(NativeError::invalid_format()),
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

impl Body {
    /// Wraps an object (an item of an array field).
    pub fn from_map(m: Map<String, Value>) -> Body {
        Body(m)
    }

    /// The raw value, `None` when absent or `null`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A string field.
    pub fn str(&self, name: &str) -> NativeResult<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(NativeError::invalid_format()),
        }
    }

    /// A string field, `""` when absent (a Go `string`).
    pub fn string(&self, name: &str) -> NativeResult<String> {
        Ok(self.str(name)?.unwrap_or_default())
    }

    /// An integer field (a Go `int`: no fraction, no string).
    pub fn int(&self, name: &str) -> NativeResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(NativeError::invalid_format),
            Some(_) => Err(NativeError::invalid_format()),
        }
    }

    /// A decimal field, from a JSON string or number.
    pub fn decimal(&self, name: &str) -> NativeResult<Option<Decimal>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => parse_decimal(s)
                .map(Some)
                .ok_or_else(NativeError::invalid_format),
            Some(Value::Number(n)) => parse_decimal(&n.to_string())
                .map(Some)
                .ok_or_else(NativeError::invalid_format),
            Some(_) => Err(NativeError::invalid_format()),
        }
    }

    /// An RFC 3339 time field.
    pub fn time(&self, name: &str) -> NativeResult<Option<Nanos>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => parse_rfc3339(s)
                .map(Some)
                .ok_or_else(NativeError::invalid_format),
            Some(_) => Err(NativeError::invalid_format()),
        }
    }

    /// A `map[string]string` field.
    pub fn metadata(&self, name: &str) -> NativeResult<Option<Metadata>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => {
                let mut out = Metadata::new();
                for (k, v) in m {
                    match v {
                        Value::String(s) => {
                            out.insert(k.clone(), s.clone());
                        }
                        // Go leaves a null map value as the empty string.
                        Value::Null => {
                            out.insert(k.clone(), String::new());
                        }
                        _ => return Err(NativeError::invalid_format()),
                    }
                }
                Ok(Some(out))
            }
            Some(_) => Err(NativeError::invalid_format()),
        }
    }

    /// An array of objects field.
    pub fn objects(&self, name: &str) -> NativeResult<Option<Vec<Body>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(Body(m.clone())),
                    Value::Null => Ok(Body::default()),
                    _ => Err(NativeError::invalid_format()),
                })
                .collect::<NativeResult<Vec<Body>>>()
                .map(Some),
            Some(_) => Err(NativeError::invalid_format()),
        }
    }

    /// Whether a field is present with a non-null value.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
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

/// A decimal as shopspring renders it: a JSON string without trailing zeros.
pub fn dec(d: Decimal) -> Value {
    Value::String(d.normalize().to_string())
}

/// A time as Go renders `time.Time`: RFC 3339 in UTC with as many fractional digits as needed.
pub fn ts(t: Nanos) -> Value {
    Value::String(to_rfc3339(t))
}

/// Metadata as a JSON object.
pub fn metadata_value(m: &Metadata) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Builds a JSON object field by field, leaving out `omitempty` fields that are empty.
#[derive(Debug, Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    /// An empty object.
    pub fn new() -> Obj {
        Obj(Map::new())
    }

    /// Always present.
    pub fn put(mut self, name: &str, v: impl Into<Value>) -> Obj {
        self.0.insert(name.to_string(), v.into());
        self
    }

    /// Present only when `Some` (a Go pointer with `omitempty`).
    pub fn opt(self, name: &str, v: Option<impl Into<Value>>) -> Obj {
        match v {
            Some(v) => self.put(name, v),
            None => self,
        }
    }

    /// The object.
    pub fn done(self) -> Value {
        Value::Object(self.0)
    }
}
