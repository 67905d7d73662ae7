//! `/v1/billing/meters`: meters, their lifecycle, and the summaries of their usage.
//!
//! A meter is immutable but for its display name. Deactivating one stops its events and frees its
//! event name; reactivating it takes the name back if no other active meter holds it. Event
//! summaries are computed from the model's hourly buckets on every request, one summary per window
//! of `value_grouping_window` (or one for the whole range), oldest first.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use super::list::{self, ListJson, PageRequest};
use super::op::{pretty, Body, Expand, Input, Operation};
use super::{customers, ids};
use crate::ids::{fnv1a64, Key};
use crate::model::{EventTimeWindow, Formula, Meter, MeterError, MeterStatus, NewMeter, Tenant};
use crate::time::{from_secs, to_secs};
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    cannot_unset, get_int, get_obj, get_str, opt, req, timestamp, validate_at, Field, Spec, EXPAND,
    LIST_FIELDS,
};
use crate::wire::versions::Change;

const CUSTOMER_MAPPING: &[Field] = &[
    req("event_payload_key", Spec::Str(100)),
    req("type", Spec::Enum(&["by_id"])),
];
const AGGREGATION: &[Field] = &[req("formula", Spec::Enum(&["count", "last", "sum"]))];
const VALUE_SETTINGS: &[Field] = &[req("event_payload_key", Spec::Str(100))];

const CREATE: &[Field] = &[
    opt("customer_mapping", Spec::Obj(CUSTOMER_MAPPING)),
    req("default_aggregation", Spec::Obj(AGGREGATION)),
    req("display_name", Spec::Str(250)),
    req("event_name", Spec::Str(100)),
    opt("event_time_window", Spec::Enum(&["day", "hour"])),
    EXPAND,
    opt("value_settings", Spec::Obj(VALUE_SETTINGS)),
];
const UPDATE: &[Field] = &[opt("display_name", Spec::Str(250)), EXPAND];
const ONLY_EXPAND: &[Field] = &[EXPAND];
const LIST: &[Field] = &[
    LIST_FIELDS[0],
    LIST_FIELDS[1],
    LIST_FIELDS[2],
    LIST_FIELDS[3],
    opt("status", Spec::Enum(&["active", "inactive"])),
];
const SUMMARIES: &[Field] = &[
    req("customer", Spec::Str(5000)),
    req("end_time", Spec::Int),
    LIST_FIELDS[2],
    EXPAND,
    LIST_FIELDS[0],
    req("start_time", Spec::Int),
    LIST_FIELDS[1],
    opt("value_grouping_window", Spec::Enum(&["day", "hour"])),
];

/// The payload keys a meter reads unless told otherwise.
const DEFAULT_CUSTOMER_KEY: &str = "stripe_customer_id";
const DEFAULT_VALUE_KEY: &str = "value";

/// A meter as Stripe shows it (`billing.meter`), field by field in Stripe's order.
#[derive(Serialize)]
pub struct MeterView<'a> {
    id: String,
    object: &'static str,
    created: i64,
    customer_mapping: CustomerMappingJson<'a>,
    default_aggregation: AggregationJson,
    display_name: &'a str,
    event_name: &'a str,
    event_time_window: Option<&'static str>,
    livemode: bool,
    status: &'static str,
    status_transitions: StatusTransitionsJson,
    updated: i64,
    value_settings: ValueSettingsJson<'a>,
}

#[derive(Serialize)]
struct CustomerMappingJson<'a> {
    event_payload_key: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct AggregationJson {
    formula: &'static str,
}

#[derive(Serialize)]
struct StatusTransitionsJson {
    deactivated_at: Option<i64>,
}

#[derive(Serialize)]
struct ValueSettingsJson<'a> {
    event_payload_key: &'a str,
}

impl<'a> MeterView<'a> {
    /// The view of `m`.
    pub fn of(m: &'a Meter) -> Self {
        MeterView {
            id: ids::render(ids::METER, m.key),
            object: "billing.meter",
            created: to_secs(m.created),
            customer_mapping: CustomerMappingJson {
                event_payload_key: &m.customer_key,
                kind: "by_id",
            },
            default_aggregation: AggregationJson {
                formula: match m.formula {
                    Formula::Count => "count",
                    Formula::Last => "last",
                    Formula::Sum => "sum",
                },
            },
            display_name: &m.display_name,
            event_name: &m.event_name,
            event_time_window: m.event_time_window.map(|w| match w {
                EventTimeWindow::Day => "day",
                EventTimeWindow::Hour => "hour",
            }),
            livemode: false,
            status: match m.status {
                MeterStatus::Active => "active",
                MeterStatus::Inactive => "inactive",
            },
            status_transitions: StatusTransitionsJson {
                deactivated_at: m.deactivated_at.map(to_secs),
            },
            updated: to_secs(m.updated),
            value_settings: ValueSettingsJson {
                event_payload_key: &m.value_key,
            },
        }
    }
}

/// The meter `key` as the answer. Meters take `expand[]`, but nothing in one can be expanded.
fn respond(t: &Tenant, key: Key) -> Body {
    Body::Json(pretty(
        &MeterView::of(t.meter(key).expect("made or looked up above")),
        640,
    ))
}

/// The meter named by the path's id (404 otherwise).
fn lookup(t: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::METER)
        .filter(|k| t.meter(*k).is_some())
        .ok_or_else(|| StripeError::no_such("meter", id, "id", 404))
}

/// A string parameter that, when sent, may not be `""` (Stripe's `cannot be unset`).
fn non_empty(s: Option<&str>, param: &str) -> StripeResult<Option<String>> {
    match s {
        Some("") => Err(cannot_unset(param)),
        other => Ok(other.map(str::to_string)),
    }
}

/// The refusal of a lifecycle step, in Stripe's words where known.
fn meter_error(e: MeterError, id: &str, event_name: Option<&str>) -> StripeError {
    match e {
        MeterError::NotFound => StripeError::no_such("meter", id, "id", 404),
        MeterError::EventNameTaken { by } => StripeError::invalid(format!(
            "An active meter with event_name {} already exists: {}. Only one active meter can use an event name; deactivate that meter or choose another event_name.",
            shorten(event_name.unwrap_or_default()),
            ids::render(ids::METER, by)
        ))
        .param("event_name")
        .executed(),
        MeterError::AlreadyInactive => {
            StripeError::invalid(format!("The meter {} is already inactive.", shorten(id)))
                .executed()
        }
        MeterError::AlreadyActive => {
            StripeError::invalid(format!("The meter {} is already active.", shorten(id)))
                .executed()
        }
    }
}

/// `POST /v1/billing/meters`.
pub struct Create {
    new: NewMeter,
}

impl Operation for Create {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        let (p, version) = (input.params, input.version);
        validate_at(p, CREATE, "", version)?;
        Expand::read(p, &[], version)?;
        let formula = match get_obj(p, "default_aggregation").and_then(|a| get_str(a, "formula")) {
            Some("count") => Formula::Count,
            Some("last") if version.has(Change::LastFormula) => Formula::Last,
            Some("last") => {
                return Err(StripeError::invalid(
                    "Invalid default_aggregation[formula]: must be one of count or sum",
                )
                .param("default_aggregation[formula]"))
            }
            _ => Formula::Sum,
        };
        let display_name = non_empty(get_str(p, "display_name"), "display_name")?;
        let event_name = non_empty(get_str(p, "event_name"), "event_name")?;
        let customer_key = non_empty(
            get_obj(p, "customer_mapping").and_then(|m| get_str(m, "event_payload_key")),
            "customer_mapping[event_payload_key]",
        )?;
        let value_key = non_empty(
            get_obj(p, "value_settings").and_then(|m| get_str(m, "event_payload_key")),
            "value_settings[event_payload_key]",
        )?;
        Ok(Create {
            new: NewMeter {
                display_name: display_name.unwrap_or_default(),
                event_name: event_name.unwrap_or_default(),
                formula,
                customer_key: customer_key.unwrap_or_else(|| DEFAULT_CUSTOMER_KEY.into()),
                value_key: value_key.unwrap_or_else(|| DEFAULT_VALUE_KEY.into()),
                event_time_window: match get_str(p, "event_time_window") {
                    Some("day") => Some(EventTimeWindow::Day),
                    Some("hour") => Some(EventTimeWindow::Hour),
                    _ => None,
                },
            },
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        let name = self.new.event_name.clone();
        t.try_create_meter(self.new)
            .map_err(|e| meter_error(e, "", Some(&name)))
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key)
    }
}

/// `GET /v1/billing/meters/{id}`.
pub struct Retrieve {
    id: String,
}

impl Operation for Retrieve {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, ONLY_EXPAND, "", input.version)?;
        Expand::read(input.params, &[], input.version)?;
        Ok(Retrieve {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        lookup(t, &self.id)
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key)
    }
}

/// `POST /v1/billing/meters/{id}`: only `display_name` changes.
pub struct Update {
    id: String,
    display_name: Option<String>,
}

impl Operation for Update {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, UPDATE, "", input.version)?;
        Expand::read(p, &[], input.version)?;
        Ok(Update {
            id: input.id().to_string(),
            display_name: non_empty(get_str(p, "display_name"), "display_name")?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        let key = lookup(t, &self.id)?;
        if let Some(name) = self.display_name {
            t.rename_meter(key, name)
                .map_err(|e| meter_error(e, &self.id, None))?;
        }
        Ok(key)
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key)
    }
}

/// `POST /v1/billing/meters/{id}/deactivate`: no more events; the event name is free again.
pub struct Deactivate {
    id: String,
}

impl Operation for Deactivate {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, ONLY_EXPAND, "", input.version)?;
        Expand::read(input.params, &[], input.version)?;
        Ok(Deactivate {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        let key = lookup(t, &self.id)?;
        t.deactivate_meter(key)
            .map_err(|e| meter_error(e, &self.id, None))?;
        Ok(key)
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key)
    }
}

/// `POST /v1/billing/meters/{id}/reactivate`: refused while another active meter has its event name.
pub struct Reactivate {
    id: String,
}

impl Operation for Reactivate {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, ONLY_EXPAND, "", input.version)?;
        Expand::read(input.params, &[], input.version)?;
        Ok(Reactivate {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        let key = lookup(t, &self.id)?;
        let name = t.meter(key).map(|m| m.event_name.clone());
        t.reactivate_meter(key)
            .map_err(|e| meter_error(e, &self.id, name.as_deref()))?;
        Ok(key)
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key)
    }
}

/// `GET /v1/billing/meters`, newest first, optionally only `status=active|inactive`.
pub struct List {
    page: PageRequest,
    status: Option<MeterStatus>,
}

impl Operation for List {
    type Output = (Vec<Key>, bool);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, LIST, "", input.version)?;
        Expand::read(p, &[], input.version)?;
        Ok(List {
            page: PageRequest::read(p)?,
            status: match get_str(p, "status") {
                Some("active") => Some(MeterStatus::Active),
                Some("inactive") => Some(MeterStatus::Inactive),
                _ => None,
            },
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let t = &*t;
        let page = self.page.resolve("meter", |id| {
            ids::key_of(id, ids::METER).filter(|k| t.meter(*k).is_some())
        })?;
        Ok(match self.status {
            None => list::paginate(|a, b| t.meters_in((a, b)).map(|m| m.key), &page, |_| true),
            Some(status) => list::paginate(
                |a, b| t.meter_keys_with_status(status).range((a, b)),
                &page,
                |_| true,
            ),
        })
    }

    fn render((keys, more): Self::Output, t: &Tenant) -> Body {
        let data: Vec<MeterView> = keys
            .iter()
            .filter_map(|k| t.meter(*k))
            .map(MeterView::of)
            .collect();
        Body::Json(pretty(
            &ListJson::new(data, more, "/v1/billing/meters"),
            640 * (keys.len() + 1),
        ))
    }
}

/// The windows a summary request covers: `[start, start + width)`, `[start + width, …)`, …, up to
/// `end`, in seconds.
#[derive(Debug, Clone, Copy)]
struct Windows {
    start: i64,
    end: i64,
    /// The width of one window: an hour, a day, or the whole range.
    width: i64,
}

impl Windows {
    /// How many windows there are.
    fn len(&self) -> i64 {
        (self.end - self.start) / self.width
    }

    /// The `i`-th window.
    fn get(&self, i: i64) -> (i64, i64) {
        let from = self.start + i * self.width;
        (from, from + self.width)
    }
}

/// The id of the summary of window `from` of a request's windows: the window's start, and a
/// hash of what else makes the summary (meter, customer, window width; and the end, for a summary
/// of a whole range), so that a cursor from another request is not taken for one of this request.
fn summary_id(meter: Key, customer: Key, windows: &Windows, from: i64) -> String {
    ids::render(
        ids::METER_EVENT_SUMMARY,
        summary_key(meter, customer, windows, from),
    )
}

fn summary_key(meter: Key, customer: Key, windows: &Windows, from: i64) -> Key {
    let mut bytes = Vec::with_capacity(48);
    bytes.extend_from_slice(&meter.to_le_bytes());
    bytes.extend_from_slice(&customer.to_le_bytes());
    bytes.extend_from_slice(&windows.width.to_le_bytes());
    if windows.width == windows.end - windows.start {
        bytes.extend_from_slice(&windows.end.to_le_bytes());
    }
    let tag = fnv1a64(0xcbf2_9ce4_8422_2325, &bytes);
    // The start, offset so that times before 1970 still sort below later ones.
    let start = (from as u64) ^ (1 << 63);
    (u128::from(start) << 64) | u128::from(tag)
}

/// `billing.meter_event_summary`.
#[derive(Serialize)]
struct SummaryView<'a> {
    id: String,
    object: &'static str,
    #[serde(serialize_with = "number")]
    aggregated_value: Decimal,
    end_time: i64,
    livemode: bool,
    meter: &'a str,
    start_time: i64,
}

/// A decimal as a JSON number: an integer when it is one, else the nearest double (read from
/// the decimal's digits, which rounds correctly where `Decimal::to_f64` may not).
fn number<S: serde::Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    match (d.fract().is_zero(), d.to_i64()) {
        (true, Some(n)) => s.serialize_i64(n),
        _ => s.serialize_f64(d.to_string().parse().unwrap_or_default()),
    }
}

/// `GET /v1/billing/meters/{id}/event_summaries`: `customer`, `start_time` (inclusive) and
/// `end_time` (exclusive) whole minutes (whole hours for `value_grouping_window=hour`, 00:00 UTC
/// for `day`), one summary per window, oldest first; cursors are summary ids.
pub struct EventSummaries {
    id: String,
    customer: String,
    windows: Windows,
    page: PageRequest,
}

/// Stripe's refusal of a time that is not on the grid a summary request needs.
fn misaligned(param: &str, unit: &str, window: Option<&str>) -> StripeError {
    let why = match window {
        None => String::new(),
        Some(w) => format!(" when value_grouping_window is {w}"),
    };
    StripeError::invalid(format!("{param} must be aligned to {unit}{why}.")).param(param)
}

/// One page of summaries: the meter, the customer, the request's windows, which of them the
/// page holds, and whether more follow.
pub struct SummaryPage {
    meter: Key,
    customer: Key,
    windows: Windows,
    range: std::ops::Range<i64>,
    more: bool,
}

impl Operation for EventSummaries {
    type Output = SummaryPage;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, SUMMARIES, "", input.version)?;
        Expand::read(p, &[], input.version)?;
        let customer = customers::ledger_owner_id(get_str(p, "customer"))?.to_string();
        let start = get_int(p, "start_time").unwrap_or(0);
        let end = get_int(p, "end_time").unwrap_or(0);
        timestamp(start, "start_time")?;
        timestamp(end, "end_time")?;
        let window = get_str(p, "value_grouping_window");
        let (grid, unit) = match window {
            Some("hour") => (3_600, "an hour boundary (a multiple of 3600)"),
            Some("day") => (86_400, "00:00 UTC (a multiple of 86400)"),
            _ => (60, "a minute boundary (a multiple of 60)"),
        };
        if start.rem_euclid(grid) != 0 {
            return Err(misaligned("start_time", unit, window));
        }
        if end.rem_euclid(grid) != 0 {
            return Err(misaligned("end_time", unit, window));
        }
        if start >= end {
            return Err(
                StripeError::invalid("start_time must be before end_time.").param("start_time")
            );
        }
        Ok(EventSummaries {
            id: input.id().to_string(),
            customer,
            windows: Windows {
                start,
                end,
                width: if window.is_some() { grid } else { end - start },
            },
            page: PageRequest::read(p)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<SummaryPage> {
        let meter = lookup(t, &self.id)?;
        let customer = customers::ledger_owner(t, &self.customer)?;
        let w = self.windows;
        // A cursor is the summary of one of this request's windows; it resolves to its place.
        let page = self.page.resolve("meter event summary", |id| {
            let key = ids::key_of(id, ids::METER_EVENT_SUMMARY)?;
            let from = ((key >> 64) as u64 ^ (1 << 63)) as i64;
            let on_grid = from >= w.start && from < w.end && (from - w.start) % w.width == 0;
            (on_grid && summary_key(meter, customer, &w, from) == key)
                .then(|| ((from - w.start) / w.width) as Key)
        })?;
        // Oldest first: `starting_after` pages forward, `ending_before` pages back.
        let (n, limit) = (w.len(), page.limit as i64);
        let (first, last) = match (page.starting_after, page.ending_before) {
            (Some(after), _) => (after as i64 + 1, (after as i64 + 1 + limit).min(n)),
            (None, Some(before)) => ((before as i64 - limit).max(0), before as i64),
            (None, None) => (0, limit.min(n)),
        };
        let more = match page.ending_before {
            Some(_) if page.starting_after.is_none() => first > 0,
            _ => last < n,
        };
        Ok(SummaryPage {
            meter,
            customer,
            windows: w,
            range: first..last,
            more,
        })
    }

    fn render(out: SummaryPage, t: &Tenant) -> Body {
        let meter_id = ids::render(ids::METER, out.meter);
        let data: Vec<SummaryView> = out
            .range
            .clone()
            .map(|i| {
                let (from, to) = out.windows.get(i);
                SummaryView {
                    id: summary_id(out.meter, out.customer, &out.windows, from),
                    object: "billing.meter_event_summary",
                    aggregated_value: match (from_secs(from), from_secs(to)) {
                        (Some(a), Some(b)) => t.meter_usage(out.meter, out.customer, a, b),
                        _ => Decimal::ZERO,
                    },
                    end_time: to,
                    livemode: false,
                    meter: &meter_id,
                    start_time: from,
                }
            })
            .collect();
        let url = format!("/v1/billing/meters/{meter_id}/event_summaries");
        Body::Json(pretty(
            &ListJson::new(data, out.more, &url),
            256 * (data_len(&out.range) + 1),
        ))
    }
}

fn data_len(range: &std::ops::Range<i64>) -> usize {
    (range.end - range.start).max(0) as usize
}
