//! `POST /v1/billing/meter_events` and `POST /v1/billing/meter_event_adjustments`: usage reported
//! against the active meter of an event name, and its cancellation. Their v2 twins,
//! `POST /v2/billing/meter_events` and `POST /v2/billing/meter_event_adjustments`, take the same
//! parameters as a JSON object (v2 times are RFC 3339 strings) and answer v2 objects; the rules
//! are the same.
//!
//! The high-throughput form: `POST /v2/billing/meter_event_session` makes a session whose
//! authentication token, for 15 minutes of the world's clock, authenticates
//! `POST /v2/billing/meter_event_stream`, which takes up to 100 v2 events at once.
//!
//! The highest-volume call there is, so everything that needs no tenant (the parameter checks,
//! copying the payload and the timestamp) happens in `parse`; `apply` looks up the meter and the
//! customer, reads the value, and leaves the rest (the clock window, the identifier, the buckets)
//! to one model command. Stripe checks some of these asynchronously and reports them later; the
//! emulator refuses them at once (see the README's choices).

use rust_decimal::Decimal;
use serde::ser::SerializeMap;
use serde::Serialize;

use super::ids;
use super::op::{pretty, Body, Expand, Input, Operation};
use crate::form::Node;
use crate::ids::Key;
use crate::model::{
    CancelError, Formula, MeterEventError, NewMeterEvent, Tenant, MAX_VALUE_DIGITS, MAX_VALUE_SCALE,
};
use crate::time::{parse_rfc3339, to_rfc3339_millis, to_secs, Nanos};
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    cannot_unset, get_int, get_obj, get_str, list_items, opt, req, timestamp, validate_at, Field,
    Spec, EXPAND,
};

const CREATE: &[Field] = &[
    req("event_name", Spec::Str(100)),
    EXPAND,
    opt("identifier", Spec::Str(100)),
    req("payload", Spec::StrMap(100)),
    opt("timestamp", Spec::Int),
];
const CREATE_V2: &[Field] = &[
    req("event_name", Spec::Str(100)),
    opt("identifier", Spec::Str(100)),
    req("payload", Spec::StrMap(100)),
    opt("timestamp", Spec::Str(100)),
];
const CANCEL: &[Field] = &[opt("identifier", Spec::Str(100))];
const ADJUST_V2: &[Field] = &[
    opt("cancel", Spec::Obj(CANCEL)),
    req("event_name", Spec::Str(100)),
    req("type", Spec::Enum(&["cancel"])),
];
const ADJUST: &[Field] = &[
    opt("cancel", Spec::Obj(CANCEL)),
    req("event_name", Spec::Str(100)),
    EXPAND,
    req("type", Spec::Enum(&["cancel"])),
];

/// `No active meter found for event name "X"`, as Stripe words it.
fn no_active_meter(event_name: &str) -> StripeError {
    StripeError::invalid(format!(
        "No active meter found for event name \"{}\"",
        shorten(event_name)
    ))
    .param("event_name")
}

/// A string parameter that, when sent, may not be `""`.
fn non_empty(s: Option<&str>, param: &str) -> StripeResult<Option<String>> {
    match s {
        Some("") => Err(cannot_unset(param)),
        other => Ok(other.map(str::to_string)),
    }
}

/// `POST /v1/billing/meter_events`.
pub struct Create {
    event_name: String,
    /// The payload as sent, in order.
    payload: Vec<(String, String)>,
    identifier: Option<String>,
    timestamp: Option<Nanos>,
}

/// What an accepted event answers: the request's own fields, and what the model decided.
pub struct Recorded {
    event_name: String,
    payload: Vec<(String, String)>,
    identifier: String,
    created: Nanos,
    timestamp: Nanos,
}

/// `billing.meter_event` (it has no id).
#[derive(Serialize)]
struct MeterEventView<'a> {
    object: &'static str,
    created: i64,
    event_name: &'a str,
    identifier: &'a str,
    livemode: bool,
    payload: Payload<'a>,
    timestamp: i64,
}

/// The payload as a JSON object, keys in the order sent.
struct Payload<'a>(&'a [(String, String)]);

impl Serialize for Payload<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Operation for Create {
    type Output = Recorded;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, CREATE, "", input.version)?;
        Expand::read(p, &[], input.version)?;
        let timestamp = get_int(p, "timestamp")
            .map(|s| timestamp(s, "timestamp"))
            .transpose()?;
        Create::read(input, timestamp)
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Recorded> {
        let (meter, customer, value) = {
            let meter = t
                .active_meter_named(&self.event_name)
                .ok_or_else(|| no_active_meter(&self.event_name))?;
            let key_param = |key: &str| format!("payload[{}]", shorten(key));
            let customer_id = self.field(&meter.customer_key).ok_or_else(|| {
                StripeError::invalid(format!(
                    "Customer mapping key {} not found in payload.",
                    shorten(&meter.customer_key)
                ))
                .param(key_param(&meter.customer_key))
            })?;
            let customer = ids::key_of(customer_id, ids::CUSTOMER)
                .filter(|k| t.live_customer(*k).is_some())
                .ok_or_else(|| {
                    StripeError::no_such(
                        "customer",
                        customer_id,
                        &key_param(&meter.customer_key),
                        400,
                    )
                })?;
            let value = match meter.formula {
                // A count ignores the value key, whatever it holds.
                Formula::Count => Decimal::ONE,
                Formula::Sum | Formula::Last => {
                    let text = self.field(&meter.value_key).ok_or_else(|| {
                        StripeError::invalid(format!(
                            "Value key {} not found in payload.",
                            shorten(&meter.value_key)
                        ))
                        .param(key_param(&meter.value_key))
                    })?;
                    parse_value(text).ok_or_else(|| {
                        StripeError::invalid(format!("Invalid decimal: {}", shorten(text)))
                            .param(key_param(&meter.value_key))
                    })?
                }
            };
            (meter.key, customer, value)
        };
        let recorded = t.record_meter_event(NewMeterEvent {
            meter,
            customer,
            value,
            timestamp: self.timestamp,
            identifier: self.identifier.as_deref(),
        });
        let recorded = match recorded {
            Ok(r) => r,
            Err(e) => return Err(self.refusal(e, t, meter)),
        };
        let identifier = match (self.identifier, recorded.generated_identifier) {
            (Some(given), _) => given,
            (None, Some(made)) => made,
            (None, None) => String::new(),
        };
        Ok(Recorded {
            event_name: self.event_name,
            payload: self.payload,
            identifier,
            created: recorded.created,
            timestamp: recorded.timestamp,
        })
    }

    fn render(r: Recorded, _: &Tenant) -> Body {
        Body::Json(pretty(
            &MeterEventView {
                object: "billing.meter_event",
                created: to_secs(r.created),
                event_name: &r.event_name,
                identifier: &r.identifier,
                livemode: false,
                payload: Payload(&r.payload),
                timestamp: to_secs(r.timestamp),
            },
            320,
        ))
    }
}

impl Create {
    /// The event's name, payload and identifier, once the parameters passed their table.
    fn read(input: &Input, timestamp: Option<Nanos>) -> StripeResult<Self> {
        let p = input.params;
        let event_name = non_empty(get_str(p, "event_name"), "event_name")?.unwrap_or_default();
        let payload = get_obj(p, "payload")
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| match v {
                        Node::Value(v) => Some((k.clone(), v.clone())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Create {
            event_name,
            payload,
            identifier: non_empty(get_str(p, "identifier"), "identifier")?,
            timestamp,
        })
    }

    /// The payload's value for `key` (the last one sent).
    fn field(&self, key: &str) -> Option<&str> {
        self.payload
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The model's refusal of this event for `meter`, in Stripe's words.
    fn refusal(&self, e: MeterEventError, t: &Tenant, meter: Key) -> StripeError {
        let (customer_key, value_key) = t
            .meter(meter)
            .map(|m| (m.customer_key.as_str(), m.value_key.as_str()))
            .unwrap_or_default();
        let customer_id = self.field(customer_key).unwrap_or_default();
        match e {
            MeterEventError::NotActive => no_active_meter(&self.event_name),
            MeterEventError::NoSuchCustomer => StripeError::no_such(
                "customer",
                customer_id,
                &format!("payload[{}]", shorten(customer_key)),
                400,
            ),
            MeterEventError::TooOld { now } => out_of_window(
                self.timestamp,
                "more than 35 calendar days in the past",
                customer_id,
                now,
            ),
            MeterEventError::TooFarAhead { now } => out_of_window(
                self.timestamp,
                "more than 5 minutes in the future",
                customer_id,
                now,
            ),
            MeterEventError::ValueOutOfRange => StripeError::invalid(format!(
                "Invalid decimal: {}; a meter event value can have at most {MAX_VALUE_DIGITS} digits before the decimal point and {MAX_VALUE_SCALE} after it.",
                shorten(self.field(value_key).unwrap_or_default())
            ))
            .param(format!("payload[{}]", shorten(value_key))),
            MeterEventError::Duplicate => {
                duplicate(self.identifier.as_deref().unwrap_or_default())
            }
            MeterEventError::Full => StripeError::invalid(
                "This tenant holds as many meter events as the emulator can address; reset it to go on.",
            )
            .executed(),
        }
    }
}

/// A value as Stripe's meters read it: an optional minus sign, digits, and optionally a point and
/// more digits. Anything else (`1e3`, ` 1`, `+1`, `.5`, `1.`, `NaN`) is not a number here.
fn parse_value(text: &str) -> Option<Decimal> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    text.parse().ok()
}

/// A timestamp outside the window of the customer's clock.
fn out_of_window(sent: Option<Nanos>, how: &str, customer: &str, now: Nanos) -> StripeError {
    StripeError::invalid(format!(
        "The timestamp {} is {how}. Meter event timestamps must be within the past 35 calendar days or up to 5 minutes in the future (now is {} on the clock of customer {}).",
        sent.map(to_secs).unwrap_or_default(),
        to_secs(now),
        shorten(customer)
    ))
    .param("timestamp")
}

/// `An event already exists with identifier X.`, which Stripe marks as not worth retrying.
fn duplicate(identifier: &str) -> StripeError {
    let mut e = StripeError::invalid(format!(
        "An event already exists with identifier {}.",
        shorten(identifier)
    ))
    .executed();
    e.headers.push((
        crate::http::names::STRIPE_SHOULD_RETRY.clone(),
        "false".to_string(),
    ));
    e
}

/// `POST /v1/billing/meter_event_adjustments` with `type=cancel`: the event with
/// `cancel[identifier]` stops counting.
pub struct Adjust {
    event_name: String,
    identifier: String,
}

/// `billing.meter_event_adjustment` (it has no id).
#[derive(Serialize)]
struct AdjustmentView<'a> {
    object: &'static str,
    cancel: CancelJson<'a>,
    event_name: &'a str,
    livemode: bool,
    status: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct CancelJson<'a> {
    identifier: &'a str,
}

impl Operation for Adjust {
    type Output = Adjust;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, ADJUST, "", input.version)?;
        Expand::read(p, &[], input.version)?;
        Adjust::read(input)
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Adjust> {
        self.cancel(t)?;
        Ok(self)
    }

    fn render(a: Adjust, _: &Tenant) -> Body {
        Body::Json(pretty(
            &AdjustmentView {
                object: "billing.meter_event_adjustment",
                cancel: CancelJson {
                    identifier: &a.identifier,
                },
                event_name: &a.event_name,
                livemode: false,
                status: "complete",
                kind: "cancel",
            },
            256,
        ))
    }
}

impl Adjust {
    /// The event name and the identifier to cancel, once the parameters passed their table.
    fn read(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        let event_name = non_empty(get_str(p, "event_name"), "event_name")?.unwrap_or_default();
        // `cancel` is optional in the schema, and the only adjustment there is needs it.
        let cancel = get_obj(p, "cancel").ok_or_else(|| StripeError::missing_param("cancel"))?;
        let identifier = non_empty(get_str(cancel, "identifier"), "cancel[identifier]")?
            .ok_or_else(|| StripeError::missing_param("cancel[identifier]"))?;
        Ok(Adjust {
            event_name,
            identifier,
        })
    }

    /// Cancels the event in `t`, or says why it cannot.
    fn cancel(&self, t: &mut Tenant) -> StripeResult<()> {
        match t.cancel_meter_event(&self.event_name, &self.identifier) {
            Ok(()) => Ok(()),
            Err(CancelError::NotFound) => Err(StripeError::invalid(format!(
                "No meter event with identifier {} was found for event name \"{}\". Only events received in the last 24 hours can be cancelled.",
                shorten(&self.identifier),
                shorten(&self.event_name)
            ))
            .param("cancel[identifier]")),
            Err(CancelError::AlreadyCancelled) => Err(StripeError::invalid(format!(
                "The meter event with identifier {} has already been cancelled.",
                shorten(&self.identifier)
            ))
            .param("cancel[identifier]")
            .executed()),
        }
    }
}

/// `POST /v2/billing/meter_events`: [`Create`] with a JSON body, an RFC 3339 `timestamp` and no
/// `expand`.
pub struct CreateV2(Create);

/// `v2.billing.meter_event` (it has no id; its times are RFC 3339 strings).
#[derive(Serialize)]
struct MeterEventV2View<'a> {
    object: &'static str,
    created: String,
    livemode: bool,
    identifier: &'a str,
    event_name: &'a str,
    timestamp: String,
    payload: Payload<'a>,
}

impl Operation for CreateV2 {
    type Output = Recorded;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, CREATE_V2, "", input.version)?;
        let timestamp = match get_str(p, "timestamp") {
            None => None,
            Some(text) => Some(parse_rfc3339(text).ok_or_else(|| {
                StripeError::invalid(format!(
                    "Invalid timestamp: {}; must be an RFC 3339 date-time such as 2026-01-01T00:00:00.000Z",
                    shorten(text)
                ))
                .param("timestamp")
            })?),
        };
        Create::read(input, timestamp).map(CreateV2)
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Recorded> {
        self.0.apply(t)
    }

    fn render(r: Recorded, _: &Tenant) -> Body {
        Body::Json(pretty(
            &MeterEventV2View {
                object: "v2.billing.meter_event",
                created: to_rfc3339_millis(r.created),
                livemode: false,
                identifier: &r.identifier,
                event_name: &r.event_name,
                timestamp: to_rfc3339_millis(r.timestamp),
                payload: Payload(&r.payload),
            },
            320,
        ))
    }
}

/// `POST /v2/billing/meter_event_adjustments`: [`Adjust`] with a JSON body. A v2 adjustment has
/// an id and a creation time.
pub struct AdjustV2(Adjust);

/// What a v2 cancellation answers: the adjustment, its key and when it was made.
pub struct AdjustedV2 {
    adjust: Adjust,
    key: Key,
    created: Nanos,
}

/// `v2.billing.meter_event_adjustment`.
#[derive(Serialize)]
struct AdjustmentV2View<'a> {
    object: &'static str,
    id: String,
    livemode: bool,
    created: String,
    status: &'static str,
    event_name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    cancel: CancelJson<'a>,
}

impl Operation for AdjustV2 {
    type Output = AdjustedV2;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, ADJUST_V2, "", input.version)?;
        Adjust::read(input).map(AdjustV2)
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<AdjustedV2> {
        let adjust = self.0;
        let key = t.try_with_next_key(|t, key| adjust.cancel(t).map(|()| key))?;
        Ok(AdjustedV2 {
            adjust,
            key,
            created: t.tenant_now(),
        })
    }

    fn render(a: AdjustedV2, _: &Tenant) -> Body {
        Body::Json(pretty(
            &AdjustmentV2View {
                object: "v2.billing.meter_event_adjustment",
                id: ids::render(ids::METER_EVENT_ADJUSTMENT, a.key),
                livemode: false,
                created: to_rfc3339_millis(a.created),
                status: "complete",
                event_name: &a.adjust.event_name,
                kind: "cancel",
                cancel: CancelJson {
                    identifier: &a.adjust.identifier,
                },
            },
            320,
        ))
    }
}

/// How long a meter event session's token is accepted: 15 minutes.
pub const SESSION_LIFETIME: Nanos = 15 * 60 * 1_000_000_000;

/// `POST /v2/billing/meter_event_session`: a session whose token authenticates the meter event
/// stream. The pipeline remembers the token and its world (`crate::meter_sessions`) once the
/// answer is made.
pub struct SessionCreate {
    token: String,
}

/// A session made: its key, token and creation time on the world's clock.
pub struct Session {
    key: Key,
    token: String,
    created: Nanos,
}

/// `v2.billing.meter_event_session`.
#[derive(Serialize)]
struct SessionView<'a> {
    id: String,
    object: &'static str,
    authentication_token: &'a str,
    created: String,
    expires_at: String,
    livemode: bool,
}

impl Operation for SessionCreate {
    type Output = Session;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, &[], "", input.version)?;
        Ok(SessionCreate {
            token: crate::ids::random_id(ids::SESSION_TOKEN, 48),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Session> {
        let key = t.try_with_next_key(|_, key| Ok::<_, StripeError>(key))?;
        Ok(Session {
            key,
            token: self.token,
            created: t.tenant_now(),
        })
    }

    fn render(s: Session, _: &Tenant) -> Body {
        Body::Json(pretty(
            &SessionView {
                id: ids::render(ids::METER_EVENT_SESSION, s.key),
                object: "v2.billing.meter_event_session",
                authentication_token: &s.token,
                created: to_rfc3339_millis(s.created),
                expires_at: to_rfc3339_millis(s.created + SESSION_LIFETIME),
                livemode: false,
            },
            320,
        ))
    }
}

const STREAM: &[Field] = &[req("events", Spec::Array(&Spec::Obj(CREATE_V2), 100))];

/// `POST /v2/billing/meter_event_stream`: up to 100 v2 events, each read and recorded as
/// `POST /v2/billing/meter_events` would, authenticated by a session's token. The events are
/// recorded in order; the first one refused stops the stream there, and the answer names it
/// (`events[3][timestamp]`): those before it stay recorded.
pub struct StreamCreate {
    /// When the session expires, on the world's clock (checked before anything else).
    expires_at: Option<Nanos>,
    /// The events, or the refusal of the first one that could not be read.
    events: StripeResult<Vec<Create>>,
}

impl Operation for StreamCreate {
    type Output = ();

    fn parse(input: &Input) -> StripeResult<Self> {
        Ok(StreamCreate {
            expires_at: input.session_expires_at(),
            events: read_events(input),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<()> {
        if self.expires_at.is_some_and(|end| t.tenant_now() >= end) {
            return Err(crate::wire::keys::session_expired());
        }
        for (i, event) in self.events?.into_iter().enumerate() {
            event.apply(t).map_err(|e| in_event(e, i))?;
        }
        Ok(())
    }

    fn render((): (), _: &Tenant) -> Body {
        Body::Json(b"{}".to_vec())
    }
}

/// The stream's events, each checked as `POST /v2/billing/meter_events` checks its body.
fn read_events(input: &Input) -> StripeResult<Vec<Create>> {
    let p = input.params;
    validate_at(p, STREAM, "", input.version)?;
    let items = p.get("events").map(list_items).unwrap_or_default();
    if items.is_empty() {
        return Err(StripeError::invalid(
            "Invalid array: events must hold between 1 and 100 meter events.",
        )
        .param("events"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, node)| match node {
            Node::Map(event) => CreateV2::parse(&input.with_params(event))
                .map(|e| e.0)
                .map_err(|e| in_event(e, i)),
            _ => Err(StripeError::invalid("Invalid object").param(format!("events[{i}]"))),
        })
        .collect()
}

/// `e`, a refusal of one event, naming its place in the stream: `timestamp` becomes
/// `events[3][timestamp]`, `payload[customer]` `events[3][payload][customer]`.
fn in_event(mut e: StripeError, i: usize) -> StripeError {
    e.param = Some(match e.param.take() {
        Some(param) => match param.split_once('[') {
            Some((head, rest)) => format!("events[{i}][{head}][{rest}"),
            None => format!("events[{i}][{param}]"),
        },
        None => format!("events[{i}]"),
    });
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_plain_decimals() {
        assert_eq!(parse_value("25"), Some(Decimal::from(25)));
        assert_eq!(parse_value("-0.50"), Some(Decimal::new(-50, 2)));
        for bad in [
            "", "-", "1e3", " 1", "1 ", "+1", ".5", "1.", "NaN", "1.2.3", "١",
        ] {
            assert_eq!(parse_value(bad), None, "{bad:?}");
        }
        // Beyond the decimal type's 28 digits: not a number the emulator can hold.
        assert_eq!(parse_value(&"9".repeat(40)), None);
    }
}
