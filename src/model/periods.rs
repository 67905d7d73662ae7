//! Calendar arithmetic for billing cycles and credit expiry, in UTC.
//!
//! Two families of rules live here, because two different clocks of a subscription use them:
//!
//! - **Cycle boundaries** ([`boundary`], [`period_containing`]): the k-th boundary of a cycle that
//!   started at an anchor. Month-based cycles keep the anchor's day of month, clamped to the length of
//!   each month (an anchor on the 31st gives Feb 28, then Mar 31); every boundary after the anchor
//!   keeps the anchor's time of day to the second and drops its fraction. This is anniversary billing.
//! - **Durations** ([`add_duration`]): "n days/weeks/months/years after t". Days and weeks are exact
//!   multiples of 24 hours; months and years add to the calendar fields and let an overflowing day
//!   roll into the next month (Jan 31 + 1 month = Mar 3 in a non-leap year), as Go's `AddDate` does.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Timelike, Utc};

use crate::time::Nanos;

/// The length of one cycle step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// One day.
    Daily,
    /// Seven days.
    Weekly,
    /// One calendar month.
    Monthly,
    /// Three calendar months.
    Quarterly,
    /// Six calendar months.
    HalfYearly,
    /// Twelve calendar months.
    Annual,
}

/// The unit of an expiry duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurationUnit {
    /// 24 hours.
    Day,
    /// 7 × 24 hours.
    Week,
    /// One calendar month (overflowing days roll over).
    Month,
    /// One calendar year (Feb 29 rolls over to Mar 1).
    Year,
}

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

fn to_dt(t: Nanos) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_nanos(t)
}

fn from_dt(d: DateTime<Utc>) -> Option<Nanos> {
    d.timestamp_nanos_opt()
}

/// The `k`-th boundary of a cycle of `count` × `period` anchored at `anchor` (`k = 0` is the anchor
/// itself). `None` when it falls outside the representable time range.
pub fn boundary(anchor: Nanos, period: Period, count: u32, k: u64) -> Option<Nanos> {
    if k == 0 {
        return Some(anchor);
    }
    let a = to_dt(anchor);
    let steps = u32::try_from(k).ok()?.checked_mul(count)?;
    let start = a.date_naive();
    let date = match period {
        Period::Daily => start.checked_add_days(Days::new(steps as u64))?,
        Period::Weekly => start.checked_add_days(Days::new(steps as u64 * 7))?,
        Period::Monthly => start.checked_add_months(Months::new(steps))?,
        Period::Quarterly => start.checked_add_months(Months::new(steps.checked_mul(3)?))?,
        Period::HalfYearly => start.checked_add_months(Months::new(steps.checked_mul(6)?))?,
        Period::Annual => start.checked_add_months(Months::new(steps.checked_mul(12)?))?,
    };
    let dt = date
        .and_hms_opt(a.hour(), a.minute(), a.second())?
        .and_utc();
    from_dt(dt)
}

/// The cycle step `[start, end)` that contains `t`, for a cycle anchored at `anchor` and cut off at
/// `cutoff` (the last step ends there). `None` if `t` is before the anchor or at or after the cutoff.
pub fn period_containing(
    anchor: Nanos,
    period: Period,
    count: u32,
    cutoff: Option<Nanos>,
    t: Nanos,
) -> Option<(Nanos, Nanos)> {
    if t < anchor || cutoff.is_some_and(|c| t >= c) {
        return None;
    }
    // Boundaries grow with k, so find the last k with boundary(k) <= t: double, then bisect.
    let at = |k: u64| boundary(anchor, period, count, k);
    let mut hi: u64 = 1;
    while at(hi).is_some_and(|b| b <= t) {
        hi = hi.checked_mul(2)?;
    }
    let mut lo = hi / 2;
    // Invariant: boundary(lo) <= t < boundary(hi) (or boundary(hi) unrepresentable).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if at(mid).is_some_and(|b| b <= t) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let start = at(lo)?;
    let end = at(lo + 1)?;
    let end = match cutoff {
        Some(c) => end.min(c),
        None => end,
    };
    Some((start, end))
}

/// `t` plus `n` units, with Go's `Add` (days, weeks) and `AddDate` (months, years) semantics.
pub fn add_duration(t: Nanos, unit: DurationUnit, n: u32) -> Option<Nanos> {
    match unit {
        DurationUnit::Day => t.checked_add(NANOS_PER_DAY.checked_mul(n as i64)?),
        DurationUnit::Week => t.checked_add(NANOS_PER_DAY.checked_mul(7 * n as i64)?),
        DurationUnit::Month => add_date(t, 0, n as i64),
        DurationUnit::Year => add_date(t, n as i64, 0),
    }
}

/// Adds years and months to the calendar fields, then normalises an overflowing day into the
/// following month, keeping the time of day (nanoseconds included).
fn add_date(t: Nanos, years: i64, months: i64) -> Option<Nanos> {
    let d = to_dt(t);
    let total = (d.year() as i64)
        .checked_add(years)?
        .checked_mul(12)?
        .checked_add(d.month0() as i64)?
        .checked_add(months)?;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month0 = total.rem_euclid(12) as u32;
    let first = NaiveDate::from_ymd_opt(year, month0 + 1, 1)?;
    let date = first.checked_add_days(Days::new(d.day() as u64 - 1))?;
    let dt = date
        .and_hms_nano_opt(d.hour(), d.minute(), d.second(), d.nanosecond())?
        .and_utc();
    from_dt(dt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{parse_rfc3339, to_rfc3339};

    fn t(s: &str) -> Nanos {
        parse_rfc3339(s).unwrap()
    }

    fn b(anchor: &str, p: Period, count: u32, k: u64) -> String {
        to_rfc3339(boundary(t(anchor), p, count, k).unwrap())
    }

    #[test]
    fn monthly_keeps_the_anchor_day_clamped() {
        let a = "2025-01-31T10:20:30.5Z";
        assert_eq!(b(a, Period::Monthly, 1, 0), "2025-01-31T10:20:30.5Z");
        assert_eq!(b(a, Period::Monthly, 1, 1), "2025-02-28T10:20:30Z");
        assert_eq!(b(a, Period::Monthly, 1, 2), "2025-03-31T10:20:30Z");
        assert_eq!(b(a, Period::Monthly, 2, 1), "2025-03-31T10:20:30Z");
        assert_eq!(b(a, Period::Quarterly, 1, 1), "2025-04-30T10:20:30Z");
        assert_eq!(b(a, Period::HalfYearly, 1, 1), "2025-07-31T10:20:30Z");
    }

    #[test]
    fn annual_leap_day_and_short_cycles() {
        assert_eq!(
            b("2024-02-29T00:00:00Z", Period::Annual, 1, 1),
            "2025-02-28T00:00:00Z"
        );
        assert_eq!(
            b("2024-02-29T00:00:00Z", Period::Annual, 1, 4),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            b("2025-06-15T08:00:00Z", Period::Daily, 3, 2),
            "2025-06-21T08:00:00Z"
        );
        assert_eq!(
            b("2025-06-15T08:00:00Z", Period::Weekly, 1, 2),
            "2025-06-29T08:00:00Z"
        );
    }

    #[test]
    fn finds_the_containing_period() {
        let a = t("2025-01-31T00:00:00Z");
        let p = |s: &str, cutoff: Option<Nanos>| {
            period_containing(a, Period::Monthly, 1, cutoff, t(s))
                .map(|(x, y)| (to_rfc3339(x), to_rfc3339(y)))
        };
        assert_eq!(p("2025-01-30T00:00:00Z", None), None);
        assert_eq!(
            p("2025-01-31T00:00:00Z", None),
            Some(("2025-01-31T00:00:00Z".into(), "2025-02-28T00:00:00Z".into()))
        );
        assert_eq!(
            p("2025-03-30T23:00:00Z", None),
            Some(("2025-02-28T00:00:00Z".into(), "2025-03-31T00:00:00Z".into()))
        );
        assert_eq!(
            p("2030-07-01T00:00:00Z", None),
            Some(("2030-06-30T00:00:00Z".into(), "2030-07-31T00:00:00Z".into()))
        );
        let cut = Some(t("2025-03-10T00:00:00Z"));
        assert_eq!(
            p("2025-03-01T00:00:00Z", cut),
            Some(("2025-02-28T00:00:00Z".into(), "2025-03-10T00:00:00Z".into()))
        );
        assert_eq!(p("2025-03-10T00:00:00Z", cut), None);
    }

    #[test]
    fn durations_follow_go() {
        let d = |s: &str, u: DurationUnit, n: u32| to_rfc3339(add_duration(t(s), u, n).unwrap());
        assert_eq!(
            d("2025-01-31T01:02:03.000000004Z", DurationUnit::Month, 1),
            "2025-03-03T01:02:03.000000004Z"
        );
        assert_eq!(
            d("2024-02-29T00:00:00Z", DurationUnit::Year, 1),
            "2025-03-01T00:00:00Z"
        );
        assert_eq!(
            d("2025-12-15T00:00:00Z", DurationUnit::Month, 14),
            "2027-02-15T00:00:00Z"
        );
        assert_eq!(
            d("2025-06-15T00:00:00Z", DurationUnit::Week, 2),
            "2025-06-29T00:00:00Z"
        );
        assert_eq!(
            d("2025-06-15T00:00:00Z", DurationUnit::Day, 1),
            "2025-06-16T00:00:00Z"
        );
        assert_eq!(add_duration(i64::MAX - 5, DurationUnit::Day, 1), None);
    }
}
