//! Writing values as Go marshals them, for the typed views of each resource: ids, decimals as
//! strings without trailing zeros, times in RFC 3339, and the fields every stored object ends with.
//! A view is a `Serialize` struct whose fields are in Go's order; a Go `omitempty` field is an
//! `Option` with `#[serde(skip_serializing_if = "Option::is_none")]`.

use std::fmt;

use bytes::Bytes;
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use super::ids;
use crate::http::Reply;
use crate::ids::Key;
use crate::model::Metadata;
use crate::time::Nanos;

/// A JSON reply of `view`, compact, as gin writes it.
pub fn reply(status: u16, view: &impl Serialize) -> Reply {
    // The same bytes as `serde_json::to_writer`, written faster (see `crate::pretty`).
    let body = crate::pretty::to_vec_compact(view, 1024);
    Reply {
        status,
        content_type: "application/json; charset=utf-8",
        headers: Vec::new(),
        body: Bytes::from(body),
    }
}

/// A native id: a prefix (see [`super::ids`]) and a model key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub &'static str, pub Key);

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ids::render(self.0, self.1))
    }
}

/// A decimal as shopspring marshals it: a JSON string without trailing zeros.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dec(pub Decimal);

impl Serialize for Dec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.normalize())
    }
}

/// A time as Go marshals `time.Time` in UTC: RFC 3339 with as many fractional digits as needed
/// (none for a whole second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub Nanos);

impl Time {
    /// Writes the time into `buf` and returns the text.
    fn write(self, buf: &mut [u8; 32]) -> &str {
        const NANOS: i64 = 1_000_000_000;
        let secs = self.0.div_euclid(NANOS);
        let mut frac = self.0.rem_euclid(NANOS);
        let (year, month, day) = civil(secs.div_euclid(86_400));
        let of_day = secs.rem_euclid(86_400);
        let mut w = Digits { buf, len: 0 };
        w.num(year, 4);
        w.byte(b'-');
        w.num(month, 2);
        w.byte(b'-');
        w.num(day, 2);
        w.byte(b'T');
        w.num(of_day / 3600, 2);
        w.byte(b':');
        w.num(of_day / 60 % 60, 2);
        w.byte(b':');
        w.num(of_day % 60, 2);
        if frac != 0 {
            w.byte(b'.');
            let mut width = 9;
            while frac % 10 == 0 {
                frac /= 10;
                width -= 1;
            }
            w.num(frac, width);
        }
        w.byte(b'Z');
        let len = w.len;
        // Every byte written is an ASCII digit or separator.
        std::str::from_utf8(&buf[..len]).unwrap_or_default()
    }
}

/// A cursor writing ASCII into a buffer long enough for any time.
struct Digits<'a> {
    buf: &'a mut [u8; 32],
    len: usize,
}

impl Digits<'_> {
    fn byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `value` (not negative) in exactly `width` digits, zero-padded.
    fn num(&mut self, value: i64, width: usize) {
        let mut v = value;
        for i in (0..width).rev() {
            self.buf[self.len + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.len += width;
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write(&mut [0; 32]))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.write(&mut [0; 32]))
    }
}

/// The fields every stored object ends with (Go's embedded `BaseModel`); flattened into a view.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stamp {
    tenant_id: &'static str,
    status: &'static str,
    created_at: Time,
    updated_at: Time,
    created_by: &'static str,
    updated_by: &'static str,
}

impl Stamp {
    /// An object in `status`, created and last updated at those times, by Flexprice's development
    /// tenant and user.
    pub fn new(status: &'static str, created: Nanos, updated: Nanos) -> Stamp {
        Stamp {
            tenant_id: ids::TENANT_ID,
            status,
            created_at: Time(created),
            updated_at: Time(updated),
            created_by: ids::TENANT_ID,
            updated_by: ids::TENANT_ID,
        }
    }
}

/// Metadata as Go marshals a `map[string]string`: its keys sorted (byte order), whatever order
/// they were sent in.
#[derive(Debug, Clone, Copy)]
pub struct SortedMap<'a>(pub &'a Metadata);

impl Serialize for SortedMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut pairs: Vec<(&str, &str)> = self.0.iter().collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        s.collect_map(pairs)
    }
}

/// `{"message": …}`, what deletes answer.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Message {
    /// The text.
    pub message: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::to_rfc3339;

    #[test]
    fn times_as_go_writes_them() {
        let mut t: i64 = i64::MIN;
        // Every step lands somewhere else in the day, the second and the fraction.
        let step = 86_400_000_000_123 * 7 + 13;
        while t < i64::MAX - step {
            assert_eq!(Time(t).to_string(), to_rfc3339(t), "{t}");
            t += step;
        }
        for t in [
            0,
            1,
            -1,
            1_000_000_000,
            1_735_689_600_000_000_000,
            i64::MAX,
            951_782_400_000_000_000,
        ] {
            assert_eq!(Time(t).to_string(), to_rfc3339(t), "{t}");
        }
        assert_eq!(Time(1_500_000_000).to_string(), "1970-01-01T00:00:01.5Z");
    }

    #[test]
    fn maps_as_go_writes_them() {
        let m: Metadata = [("b", "1"), ("a", "2"), ("B", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            serde_json::to_string(&SortedMap(&m)).ok().as_deref(),
            Some(r#"{"B":"3","a":"2","b":"1"}"#)
        );
    }

    #[test]
    fn decimals_and_ids() {
        let d: Decimal = "12.500".parse().unwrap_or_default();
        assert_eq!(
            serde_json::to_string(&Dec(d)).ok().as_deref(),
            Some(r#""12.5""#)
        );
        assert_eq!(
            serde_json::to_string(&Id(ids::PLAN, 1)).ok().as_deref(),
            Some(r#""plan_00000000000000000000000001""#)
        );
    }
}
