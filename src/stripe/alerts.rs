//! `/v1/billing/alerts`: usage alerts (`usage_threshold`, Stripe's GA alert) and credit balance
//! alerts (`credit_balance_threshold`, from Stripe's private preview), their lifecycle (active,
//! inactive, archived for good), and the `billing.alert_triggered` object their events carry.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use super::credit_grants::{check_scope_prices, scope_param};
use super::list::{self, ListJson, PageRequest};
use super::op::{Body, Expand, Input, Null, Operation, NULL};
use super::{customers, ids};
use crate::form::{Node, Params};
use crate::ids::Key;
use crate::model::{
    Alert, AlertError, AlertRule, AlertStatus, AlertTrigger, Applicability, Currency, NewAlert,
    Tenant,
};
use crate::time::to_secs;
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    currency, get_int, get_obj, get_str, in_range, list_items, opt, req, validate, Field, Spec,
    EXPAND, LIST_FIELDS,
};

/// How many filters the schema reads before the one-filter rule is checked (so that two filters
/// get that rule's message, not a length error).
const MAX_FILTERS: usize = 20;

const USAGE_FILTER: &[Field] = &[
    opt("customer", Spec::Str(5000)),
    req("type", Spec::Enum(&["customer"])),
];
const USAGE: &[Field] = &[
    opt(
        "filters",
        Spec::Array(&Spec::Obj(USAGE_FILTER), MAX_FILTERS),
    ),
    req("gte", Spec::Int),
    req("meter", Spec::Str(5000)),
    req("recurrence", Spec::Enum(&["one_time"])),
];
const PRICE: &[Field] = &[req("id", Spec::Str(5000))];
const SCOPE: &[Field] = &[
    opt("billable_items", Spec::Unsupported),
    opt("price_type", Spec::Enum(&["metered"])),
    opt("prices", Spec::Array(&Spec::Obj(PRICE), 20)),
];
const APPLICABILITY: &[Field] = &[req("scope", Spec::Obj(SCOPE))];
const CREDIT_GRANTS: &[Field] = &[req("applicability_config", Spec::Obj(APPLICABILITY))];
const CREDIT_FILTER: &[Field] = &[
    opt("credit_grants", Spec::Obj(CREDIT_GRANTS)),
    opt("customer", Spec::Str(5000)),
    req("type", Spec::Enum(&["customer", "tenant"])),
];
const MONETARY: &[Field] = &[req("currency", Spec::Str(5000)), req("value", Spec::Int)];
const LTE: &[Field] = &[
    req(
        "balance_type",
        Spec::Enum(&["custom_pricing_unit", "monetary"]),
    ),
    opt("custom_pricing_unit", Spec::Unsupported),
    opt("monetary", Spec::Obj(MONETARY)),
];
const CREDIT: &[Field] = &[
    opt(
        "filters",
        Spec::Array(&Spec::Obj(CREDIT_FILTER), MAX_FILTERS),
    ),
    req("lte", Spec::Obj(LTE)),
];
const CREATE: &[Field] = &[
    req(
        "alert_type",
        Spec::Enum(&["credit_balance_threshold", "usage_threshold"]),
    ),
    opt("credit_balance_threshold", Spec::Obj(CREDIT)),
    EXPAND,
    req("title", Spec::Str(256)),
    opt("usage_threshold", Spec::Obj(USAGE)),
];
const LIST: &[Field] = &[
    opt(
        "alert_type",
        Spec::Enum(&["credit_balance_threshold", "usage_threshold"]),
    ),
    LIST_FIELDS[0],
    LIST_FIELDS[1],
    LIST_FIELDS[2],
    LIST_FIELDS[3],
    opt("meter", Spec::Str(5000)),
];
const ONLY_EXPAND: &[Field] = &[EXPAND];

/// What `expand[]` may name on an alert: its meter.
const EXPANDABLE: &[&str] = &["usage_threshold.meter"];
/// What `expand[]` may name on a list of alerts.
const LIST_EXPANDABLE: &[&str] = &["data.usage_threshold.meter"];

/// `billing.alert`, fields in Stripe's order. `credit_balance_threshold` (a preview field) is shown
/// only on credit balance alerts, so that usage alerts have exactly the GA shape.
#[derive(Serialize)]
pub struct AlertView<'a> {
    id: String,
    object: &'static str,
    alert_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    credit_balance_threshold: Option<CreditJson<'a>>,
    livemode: bool,
    status: &'static str,
    title: &'a str,
    usage_threshold: Option<UsageJson>,
}

#[derive(Serialize)]
struct UsageJson {
    filters: Option<Vec<CustomerFilterJson>>,
    gte: i64,
    meter: String,
    recurrence: &'static str,
}

#[derive(Serialize)]
struct CustomerFilterJson {
    customer: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct CreditJson<'a> {
    filters: Vec<CreditFilterJson<'a>>,
    lte: LteJson,
}

#[derive(Serialize)]
struct CreditFilterJson<'a> {
    /// Shown only when the alert was made with a scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    credit_grants: Option<CreditGrantsJson<'a>>,
    customer: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct CreditGrantsJson<'a> {
    applicability_config: ApplicabilityJson<'a>,
}

#[derive(Serialize)]
struct ApplicabilityJson<'a> {
    scope: ScopeJson<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ScopeJson<'a> {
    Metered { price_type: &'static str },
    Prices { prices: Vec<PriceJson<'a>> },
}

#[derive(Serialize)]
struct PriceJson<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct LteJson {
    balance_type: &'static str,
    custom_pricing_unit: Null,
    monetary: MonetaryJson,
}

#[derive(Serialize)]
struct MonetaryJson {
    #[serde(serialize_with = "currency_code")]
    currency: Currency,
    value: i64,
}

fn currency_code<S: serde::Serializer>(c: &Currency, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.as_str())
}

impl<'a> AlertView<'a> {
    /// The view of `a`.
    pub fn of(a: &'a Alert) -> Self {
        let (alert_type, usage, credit) = match &a.rule {
            AlertRule::Usage {
                meter,
                gte,
                customer,
            } => (
                "usage_threshold",
                Some(UsageJson {
                    filters: customer.map(|c| {
                        vec![CustomerFilterJson {
                            customer: ids::render(ids::CUSTOMER, c),
                            kind: "customer",
                        }]
                    }),
                    gte: *gte,
                    meter: ids::render(ids::METER, *meter),
                    recurrence: "one_time",
                }),
                None,
            ),
            AlertRule::CreditBalance {
                customer,
                scope,
                currency,
                value,
            } => (
                "credit_balance_threshold",
                None,
                Some(CreditJson {
                    filters: vec![CreditFilterJson {
                        credit_grants: scope.as_ref().map(|s| CreditGrantsJson {
                            applicability_config: ApplicabilityJson {
                                scope: match s {
                                    Applicability::Metered => ScopeJson::Metered {
                                        price_type: "metered",
                                    },
                                    Applicability::Prices(prices) => ScopeJson::Prices {
                                        prices: prices
                                            .iter()
                                            .map(|p| PriceJson { id: &p.id })
                                            .collect(),
                                    },
                                },
                            },
                        }),
                        customer: ids::render(ids::CUSTOMER, *customer),
                        kind: "customer",
                    }],
                    lte: LteJson {
                        balance_type: "monetary",
                        custom_pricing_unit: NULL,
                        monetary: MonetaryJson {
                            currency: *currency,
                            value: *value,
                        },
                    },
                }),
            ),
        };
        AlertView {
            id: ids::render(ids::ALERT, a.key),
            object: "billing.alert",
            alert_type,
            credit_balance_threshold: credit,
            livemode: false,
            status: match a.status {
                AlertStatus::Active => "active",
                AlertStatus::Inactive => "inactive",
                AlertStatus::Archived => "archived",
            },
            title: &a.title,
            usage_threshold: usage,
        }
    }
}

/// `billing.alert_triggered`, the object of a `billing.alert.triggered` event. It has no id.
#[derive(Serialize)]
pub struct TriggeredView<'a> {
    object: &'static str,
    alert: AlertView<'a>,
    created: i64,
    customer: String,
    livemode: bool,
    #[serde(serialize_with = "number")]
    value: Decimal,
}

impl<'a> TriggeredView<'a> {
    /// The view of the firing `t`.
    pub fn of(t: &'a AlertTrigger) -> Self {
        TriggeredView {
            object: "billing.alert_triggered",
            alert: AlertView::of(&t.alert),
            created: to_secs(t.at),
            customer: ids::render(ids::CUSTOMER, t.customer),
            livemode: false,
            value: t.value,
        }
    }
}

/// A decimal as a JSON number: an integer when it is whole, else the nearest double.
fn number<S: serde::Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    match (d.fract().is_zero(), d.to_i64()) {
        (true, Some(n)) => s.serialize_i64(n),
        _ => s.serialize_f64(d.to_string().parse().unwrap_or_default()),
    }
}

fn lookup(t: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::ALERT)
        .filter(|k| t.alert(*k).is_some())
        .ok_or_else(|| StripeError::no_such("billing alert", id, "id", 404))
}

/// What one alert's operations answer: the alert, with what `expand[]` asked for.
pub struct Answer {
    key: Key,
    expand: Expand,
}

fn respond(out: Answer, t: &Tenant) -> Body {
    match t.alert(out.key) {
        Some(a) => Body::of(&AlertView::of(a), out.expand, 512),
        None => Body::Json(b"{}".to_vec()),
    }
}

/// What a create asks for, once parsed: the rule with its ids still as sent.
enum Rule {
    Usage {
        meter: String,
        gte: i64,
        customer: Option<String>,
    },
    Credit {
        customer: String,
        scope: Option<Applicability>,
        currency: Currency,
        value: i64,
    },
}

/// `POST /v1/billing/alerts`.
pub struct Create {
    title: String,
    rule: Rule,
    expand: Expand,
}

/// The filters of `hash` (`usage_threshold` or `credit_balance_threshold`): at most one.
fn filters<'p>(hash: &'p Params, param: &str) -> StripeResult<Vec<&'p Params>> {
    let items: Vec<&Params> = hash
        .get("filters")
        .map(list_items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| match n {
            Node::Map(m) => Some(m),
            _ => None,
        })
        .collect();
    if items.len() > 1 {
        return Err(
            StripeError::invalid("You may only specify one filter on an alert.")
                .param(format!("{param}[filters]")),
        );
    }
    Ok(items)
}

/// The `customer` of the filter `f`, required with `type=customer`.
fn filter_customer(f: &Params, param: &str) -> StripeResult<String> {
    get_str(f, "customer")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| StripeError::missing_param(&format!("{param}[filters][0][customer]")))
}

/// The usage alert `usage_threshold` describes.
fn usage_rule(u: &Params) -> StripeResult<Rule> {
    const P: &str = "usage_threshold";
    let gte = in_range(
        get_int(u, "gte").unwrap_or(0),
        1,
        i64::MAX,
        "usage_threshold[gte]",
    )?;
    let customer = match filters(u, P)?.first() {
        Some(f) => Some(filter_customer(f, P)?),
        None => None,
    };
    Ok(Rule::Usage {
        meter: get_str(u, "meter").unwrap_or_default().to_string(),
        gte,
        customer,
    })
}

/// The credit balance alert `credit_balance_threshold` describes.
fn credit_rule(c: &Params) -> StripeResult<Rule> {
    const P: &str = "credit_balance_threshold";
    let Some(filter) = filters(c, P)?.first().copied() else {
        return Err(
            StripeError::invalid("You must specify a customer filter at this time.")
                .param("credit_balance_threshold[filters]"),
        );
    };
    if get_str(filter, "type") == Some("tenant") {
        return Err(StripeError::invalid(
            "A filter of type tenant is not supported by the credit emulator: a credit balance alert watches one customer.",
        )
        .param("credit_balance_threshold[filters][0][type]"));
    }
    let customer = filter_customer(filter, P)?;
    let scope = match get_obj(filter, "credit_grants") {
        None => None,
        Some(g) => Some(scope_param(
            get_obj(g, "applicability_config").and_then(|a| get_obj(a, "scope")),
            "credit_balance_threshold[filters][0][credit_grants][applicability_config][scope]",
        )?),
    };
    let lte = get_obj(c, "lte");
    if lte.and_then(|l| get_str(l, "balance_type")) == Some("custom_pricing_unit") {
        return Err(StripeError::invalid(
            "Credit balance alerts on custom pricing units are not supported by the credit emulator; use balance_type=monetary.",
        )
        .param("credit_balance_threshold[lte][balance_type]"));
    }
    let monetary = lte
        .and_then(|l| get_obj(l, "monetary"))
        .ok_or_else(|| StripeError::missing_param("credit_balance_threshold[lte][monetary]"))?;
    let currency = currency(
        get_str(monetary, "currency").unwrap_or_default(),
        "credit_balance_threshold[lte][monetary][currency]",
    )?;
    let value = in_range(
        get_int(monetary, "value").unwrap_or(0),
        0,
        i64::MAX,
        "credit_balance_threshold[lte][monetary][value]",
    )?;
    Ok(Rule::Credit {
        customer,
        scope,
        currency,
        value,
    })
}

impl Operation for Create {
    type Output = Answer;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, CREATE, "")?;
        let expand = Expand::read(p, EXPANDABLE, input.version)?;
        let usage = get_obj(p, "usage_threshold");
        let credit = get_obj(p, "credit_balance_threshold");
        let rule = match get_str(p, "alert_type") {
            Some("usage_threshold") => {
                if credit.is_some() {
                    return Err(StripeError::invalid(
                        "You may not specify credit_balance_threshold when alert_type is usage_threshold.",
                    )
                    .param("credit_balance_threshold"));
                }
                usage_rule(usage.ok_or_else(|| StripeError::missing_param("usage_threshold"))?)?
            }
            _ => {
                if usage.is_some() {
                    return Err(StripeError::invalid(
                        "You may not specify usage_threshold when alert_type is credit_balance_threshold.",
                    )
                    .param("usage_threshold"));
                }
                credit_rule(
                    credit.ok_or_else(|| StripeError::missing_param("credit_balance_threshold"))?,
                )?
            }
        };
        Ok(Create {
            title: get_str(p, "title").unwrap_or_default().to_string(),
            rule,
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Answer> {
        let rule = match self.rule {
            Rule::Usage {
                meter,
                gte,
                customer,
            } => {
                let meter_key = ids::key_of(&meter, ids::METER)
                    .filter(|k| t.meter(*k).is_some())
                    .ok_or_else(|| {
                        StripeError::no_such("billing meter", &meter, "usage_threshold[meter]", 400)
                    })?;
                let customer = match customer {
                    Some(id) => Some(customers::lookup_param(
                        t,
                        &id,
                        "usage_threshold[filters][0][customer]",
                    )?),
                    None => None,
                };
                AlertRule::Usage {
                    meter: meter_key,
                    gte,
                    customer,
                }
            }
            Rule::Credit {
                customer,
                scope,
                currency,
                value,
            } => {
                let customer = customers::lookup_param(
                    t,
                    &customer,
                    "credit_balance_threshold[filters][0][customer]",
                )?;
                if let Some(scope) = &scope {
                    check_scope_prices(
                        t,
                        scope,
                        "credit_balance_threshold[filters][0][credit_grants][applicability_config][scope]",
                    )?;
                }
                AlertRule::CreditBalance {
                    customer,
                    scope,
                    currency,
                    value,
                }
            }
        };
        let key = t
            .create_alert(NewAlert {
                title: self.title,
                rule,
            })
            .map_err(|e| alert_error(e, ""))?;
        Ok(Answer {
            key,
            expand: self.expand,
        })
    }

    fn render(out: Answer, t: &Tenant) -> Body {
        respond(out, t)
    }
}

/// The refusal of an alert command, for the alert `id`.
fn alert_error(e: AlertError, id: &str) -> StripeError {
    match e {
        AlertError::NotFound => StripeError::no_such("billing alert", id, "id", 404),
        AlertError::NoSuchMeter => StripeError::invalid("No such billing meter.")
            .param("usage_threshold[meter]")
            .code("resource_missing"),
        AlertError::NoSuchCustomer => StripeError::invalid("No such customer.")
            .param("customer")
            .code("resource_missing"),
        AlertError::Archived => StripeError::invalid(format!(
            "The alert {} is archived: an archived alert cannot be activated, deactivated or archived again.",
            shorten(id)
        )),
    }
}

/// `GET /v1/billing/alerts/{id}` (archived alerts too).
pub struct Retrieve {
    id: String,
    expand: Expand,
}

impl Operation for Retrieve {
    type Output = Answer;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, ONLY_EXPAND, "")?;
        Ok(Retrieve {
            id: input.id().to_string(),
            expand: Expand::read(input.params, EXPANDABLE, input.version)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Answer> {
        Ok(Answer {
            key: lookup(t, &self.id)?,
            expand: self.expand,
        })
    }

    fn render(out: Answer, t: &Tenant) -> Body {
        respond(out, t)
    }
}

/// `POST /v1/billing/alerts/{id}/activate`, `…/deactivate` and `…/archive`: the status
/// `STATUS` (0 active, 1 inactive, 2 archived).
pub struct SetStatus<const STATUS: u8> {
    id: String,
    expand: Expand,
}

/// `POST /v1/billing/alerts/{id}/activate`.
pub type Activate = SetStatus<0>;
/// `POST /v1/billing/alerts/{id}/deactivate`.
pub type Deactivate = SetStatus<1>;
/// `POST /v1/billing/alerts/{id}/archive`.
pub type Archive = SetStatus<2>;

impl<const STATUS: u8> Operation for SetStatus<STATUS> {
    type Output = Answer;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, ONLY_EXPAND, "")?;
        Ok(SetStatus {
            id: input.id().to_string(),
            expand: Expand::read(input.params, EXPANDABLE, input.version)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Answer> {
        let key = lookup(t, &self.id)?;
        let status = match STATUS {
            0 => AlertStatus::Active,
            1 => AlertStatus::Inactive,
            _ => AlertStatus::Archived,
        };
        t.set_alert_status(key, status)
            .map_err(|e| alert_error(e, &self.id))?;
        Ok(Answer {
            key,
            expand: self.expand,
        })
    }

    fn render(out: Answer, t: &Tenant) -> Body {
        respond(out, t)
    }
}

/// `GET /v1/billing/alerts`: active and inactive alerts, newest first; `alert_type` and `meter`
/// filters.
pub struct List {
    page: PageRequest,
    usage: Option<bool>,
    meter: Option<String>,
    expand: Expand,
}

/// A page of alerts and what `expand[]` asked for.
pub struct AlertPage {
    keys: Vec<Key>,
    more: bool,
    expand: Expand,
}

impl Operation for List {
    type Output = AlertPage;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, LIST, "")?;
        Ok(List {
            page: PageRequest::read(p)?,
            usage: get_str(p, "alert_type").map(|t| t == "usage_threshold"),
            meter: get_str(p, "meter")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            expand: Expand::read(p, LIST_EXPANDABLE, input.version)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<AlertPage> {
        let t = &*t;
        let page = self.page.resolve("billing alert", |id| {
            ids::key_of(id, ids::ALERT).filter(|k| t.alert(*k).is_some())
        })?;
        // A meter id that names no meter matches no alert (`Some(None)`).
        let meter = self.meter.as_deref().map(|m| ids::key_of(m, ids::METER));
        let keep = |k: Key| {
            let Some(a) = t.alert(k) else { return false };
            let is_usage = matches!(a.rule, AlertRule::Usage { .. });
            if self.usage.is_some_and(|u| u != is_usage) {
                return false;
            }
            match meter {
                None => true,
                Some(m) => matches!(a.rule, AlertRule::Usage { meter, .. } if Some(meter) == m),
            }
        };
        let (keys, more) = list::paginate(|a, b| t.listed_alert_keys().range((a, b)), &page, keep);
        Ok(AlertPage {
            keys,
            more,
            expand: self.expand,
        })
    }

    fn render(page: AlertPage, t: &Tenant) -> Body {
        let data: Vec<AlertView> = page
            .keys
            .iter()
            .filter_map(|k| t.alert(*k))
            .map(AlertView::of)
            .collect();
        Body::of(
            &ListJson::new(data, page.more, "/v1/billing/alerts"),
            page.expand,
            512 * (page.keys.len() + 1),
        )
    }
}
