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
    let too_deep = || {
        NativeError::validation(format!(
            "Invalid request format: the emulator accepts JSON nested at most {max_depth} levels deep"
        ))
    };
    // The parser gives up past 128 levels on its own; that is the same limit being hit.
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            too_deep()
        } else {
            NativeError::invalid_format()
        }
    })?;
    if depth(&value) > max_depth {
        return Err(too_deep());
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

    /// A decimal field, from a JSON string or number (see [`parse_decimal_any`] for values beyond
    /// the emulator's range).
    pub fn decimal(&self, name: &str) -> NativeResult<Option<Decimal>> {
        Ok(self.decimal_shown(name)?.map(|(d, _)| d))
    }

    /// A decimal field and its text as shopspring prints it (for error details).
    pub fn decimal_shown(&self, name: &str) -> NativeResult<Option<(Decimal, String)>> {
        let text = match self.get(name) {
            None => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(NativeError::invalid_format()),
        };
        parse_decimal_any(&text)
            .map(Some)
            .ok_or_else(NativeError::invalid_format)
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
}
