//! Time in the model: nanoseconds since the Unix epoch in an `i64` (good until 2262).
//!
//! Stripe renders whole seconds and the native API renders RFC 3339 with nanoseconds; both are views of
//! this one number. Nothing in the model reads the OS clock except through [`real_now`], which the
//! tenant clock and test clocks wrap (and which reads it through [`crate::tape`], so that a stored
//! request replays with the instants it saw).

use chrono::{DateTime, Utc};

/// A point in time, in nanoseconds since the Unix epoch.
pub type Nanos = i64;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// The operating system's clock.
pub fn real_now() -> Nanos {
    crate::tape::now()
}

/// Whole seconds (rounding towards the past), as Stripe renders times.
pub fn to_secs(t: Nanos) -> i64 {
    t.div_euclid(NANOS_PER_SEC)
}

/// Seconds to nanoseconds; `None` when outside the representable range (year 1678 to 2262).
pub fn from_secs(s: i64) -> Option<Nanos> {
    s.checked_mul(NANOS_PER_SEC)
}

/// Milliseconds, for id generation.
pub fn to_millis(t: Nanos) -> u64 {
    t.div_euclid(1_000_000).max(0) as u64
}

/// RFC 3339 in UTC with as many fractional digits as needed, as Go renders `time.Time`.
pub fn to_rfc3339(t: Nanos) -> String {
    let d = DateTime::<Utc>::from_timestamp_nanos(t);
    let mut s = d.format("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = t.rem_euclid(NANOS_PER_SEC);
    if frac != 0 {
        let digits = format!("{frac:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// RFC 3339 in UTC with exactly three fractional digits (`2026-01-01T12:00:00.000Z`), as Stripe's
/// v2 APIs render times.
pub fn to_rfc3339_millis(t: Nanos) -> String {
    DateTime::<Utc>::from_timestamp_nanos(t)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Parses RFC 3339 (any offset) into nanoseconds, as strictly as Go's `time.RFC3339` layout does: the
/// date and time are separated by `T` and UTC is `Z`, both upper case (chrono alone would also take a
/// space, `t` and `z`).
pub fn parse_rfc3339(s: &str) -> Option<Nanos> {
    if s.as_bytes().get(10) != Some(&b'T') || s.ends_with('z') {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|d| d.with_timezone(&Utc).timestamp_nanos_opt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(to_secs(-1), -1);
        assert_eq!(to_secs(1_999_999_999), 1);
        assert_eq!(from_secs(i64::MAX), None);
        let t = parse_rfc3339("2026-01-01T12:00:00Z").unwrap();
        assert_eq!(to_rfc3339(t), "2026-01-01T12:00:00Z");
        assert_eq!(to_rfc3339(t + 1_500), "2026-01-01T12:00:00.0000015Z");
        assert_eq!(to_rfc3339_millis(t), "2026-01-01T12:00:00.000Z");
        assert_eq!(
            to_rfc3339_millis(t + 12_345_678),
            "2026-01-01T12:00:00.012Z"
        );
        for loose in [
            "2026-01-01 12:00:00Z",
            "2026-01-01t12:00:00Z",
            "2026-01-01T12:00:00z",
        ] {
            assert_eq!(parse_rfc3339(loose), None, "{loose}");
        }
        assert_eq!(
            parse_rfc3339("2026-01-01T13:00:00.0000000001+01:00"),
            Some(t)
        );
    }
}
