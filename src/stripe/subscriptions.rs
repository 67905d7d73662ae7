//! `/v1/subscriptions`: a customer billed every period for items, each a recurring price, in the
//! model's priced subscriptions. Create, retrieve, list, update (items, cancellation, collection,
//! metadata) and cancel (`DELETE`), and the item endpoints that change one item
//! (`POST /v1/subscription_items`, `POST`/`DELETE /v1/subscription_items/{id}`). Their invoices come from the cycle engine
//! (`model/cycles.rs`). The emulator has no payment intents and computes no prorations, so what
//! needs those is refused with a clear 400: trials, discounts, taxes, payment settings,
//! `payment_behavior` other than the default, and any change Stripe would prorate unless
//! `proration_behavior=none` says not to.

use std::ops::Bound;

use serde::Serialize;

use super::list::{self, ListJson, PageRequest, TimeRange};
use super::op::{Body, Expand, Input, Null, Operation, EMPTY_LIST, NULL};
use super::subscription_items::{items_url, ItemView};
use super::{customers, ids, search};
use crate::form::{Node, Params};
use crate::ids::Key;
use crate::model::{
    BillingMode, CancellationFeedback, CancellationReason, CollectionMethod, Currency, End,
    ItemChange, ItemProblem, Metadata, NewItem, NewPricedSubscription, PreviewChanges, PricedError,
    PricedStatus, PricedSubscription, PricedUpdate, SubscriptionItem, Tenant, MAX_ITEMS,
    MAX_OPEN_ON_CLOCK, MAX_OPEN_PER_CUSTOMER,
};
use crate::time::{to_secs, Nanos};
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    apply_metadata, currency, get_int, get_metadata, get_nullable_str, get_obj, get_str, in_range,
    list_items, new_metadata, opt, req, timestamp, validate, Field, MetadataUpdate, Spec, EXPAND,
    LIST_FIELDS,
};
use crate::wire::versions::Version;

/// Appended to "not supported by the credit emulator".
const HINT: &str = " (its subscriptions have no trials, discounts, taxes, payment settings, prorations or Accounts v2 customers)";

const FEEDBACK: &[&str] = &[
    "",
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
];
const CANCELLATION_DETAILS: &[Field] = &[
    opt("comment", Spec::Str(5000)),
    opt("feedback", Spec::Enum(FEEDBACK)),
];
const BILLING_MODE: &[Field] = &[
    opt("flexible", Spec::Unsupported),
    req("type", Spec::Enum(&["classic", "flexible"])),
];
const COLLECTION: Spec = Spec::Enum(&["charge_automatically", "send_invoice"]);
const PAYMENT_BEHAVIOR: Spec = Spec::Enum(&[
    "allow_incomplete",
    "default_incomplete",
    "error_if_incomplete",
    "pending_if_incomplete",
]);
const PRORATION: Spec = Spec::Enum(&["always_invoice", "create_prorations", "none"]);

/// An item of a new subscription.
const NEW_ITEM: &[Field] = &[
    opt("billing_thresholds", Spec::Unsupported),
    opt("discounts", Spec::Unsupported),
    opt("metadata", Spec::Metadata),
    opt("plan", Spec::Unsupported),
    req("price", Spec::Str(5000)),
    opt("price_data", Spec::Unsupported),
    opt("quantity", Spec::Int),
    opt("tax_rates", Spec::Unsupported),
];

/// An item of an update: a new one (`price`), or an existing one (`id`) changed or `deleted`.
const CHANGED_ITEM: &[Field] = &[
    opt("billing_thresholds", Spec::Unsupported),
    // Taken and ignored: it clears legacy usage records, which the emulator does not have (every
    // metered price bills a meter, where Stripe says it has no effect).
    opt("clear_usage", Spec::Bool),
    opt("deleted", Spec::Bool),
    opt("discounts", Spec::Unsupported),
    opt("id", Spec::Str(5000)),
    opt("metadata", Spec::Metadata),
    opt("plan", Spec::Unsupported),
    opt("price", Spec::Str(5000)),
    opt("price_data", Spec::Unsupported),
    opt("quantity", Spec::Int),
    opt("tax_rates", Spec::Unsupported),
];

const CREATE: &[Field] = &[
    opt("add_invoice_items", Spec::Unsupported),
    opt("application_fee_percent", Spec::Unsupported),
    opt("automatic_tax", Spec::Unsupported),
    opt("backdate_start_date", Spec::Unsupported),
    opt("billing_cycle_anchor", Spec::Int),
    opt("billing_cycle_anchor_config", Spec::Unsupported),
    opt("billing_mode", Spec::Obj(BILLING_MODE)),
    opt("billing_thresholds", Spec::Unsupported),
    opt("cancel_at", Spec::Int),
    opt("cancel_at_period_end", Spec::Bool),
    opt("collection_method", COLLECTION),
    opt("currency", Spec::Str(5000)),
    req("customer", Spec::Str(5000)),
    opt("customer_account", Spec::Unsupported),
    opt("days_until_due", Spec::Int),
    opt("default_payment_method", Spec::Unsupported),
    opt("default_source", Spec::Unsupported),
    opt("default_tax_rates", Spec::Unsupported),
    opt("description", Spec::Str(500)),
    opt("discounts", Spec::Unsupported),
    EXPAND,
    opt("invoice_settings", Spec::Unsupported),
    req("items", Spec::Array(&Spec::Obj(NEW_ITEM), MAX_ITEMS)),
    opt("metadata", Spec::Metadata),
    opt("off_session", Spec::Unsupported),
    opt("on_behalf_of", Spec::Unsupported),
    opt("payment_behavior", PAYMENT_BEHAVIOR),
    opt("payment_settings", Spec::Unsupported),
    opt("pending_invoice_item_interval", Spec::Unsupported),
    opt("proration_behavior", PRORATION),
    opt("transfer_data", Spec::Unsupported),
    opt("trial_end", Spec::Unsupported),
    opt("trial_from_plan", Spec::Unsupported),
    opt("trial_period_days", Spec::Unsupported),
    opt("trial_settings", Spec::Unsupported),
];

const UPDATE: &[Field] = &[
    opt("add_invoice_items", Spec::Unsupported),
    opt("application_fee_percent", Spec::Unsupported),
    opt("automatic_tax", Spec::Unsupported),
    opt("billing_cycle_anchor", Spec::Unsupported),
    opt("billing_thresholds", Spec::Unsupported),
    opt("cancel_at", Spec::TsOrEmpty),
    opt("cancel_at_period_end", Spec::Bool),
    opt("cancellation_details", Spec::Obj(CANCELLATION_DETAILS)),
    opt("collection_method", COLLECTION),
    // An integer, or `""` to clear it.
    opt("days_until_due", Spec::TsOrEmpty),
    opt("default_payment_method", Spec::Unsupported),
    opt("default_source", Spec::Unsupported),
    opt("default_tax_rates", Spec::Unsupported),
    opt("description", Spec::Str(500)),
    opt("discounts", Spec::Unsupported),
    EXPAND,
    opt("invoice_settings", Spec::Unsupported),
    opt("items", Spec::Array(&Spec::Obj(CHANGED_ITEM), MAX_ITEMS)),
    opt("metadata", Spec::Metadata),
    opt("off_session", Spec::Unsupported),
    opt("on_behalf_of", Spec::Unsupported),
    opt("pause_collection", Spec::Unsupported),
    opt("payment_behavior", PAYMENT_BEHAVIOR),
    opt("payment_settings", Spec::Unsupported),
    opt("pending_invoice_item_interval", Spec::Unsupported),
    opt("proration_behavior", PRORATION),
    opt("proration_date", Spec::Unsupported),
    opt("transfer_data", Spec::Unsupported),
    opt("trial_end", Spec::Unsupported),
    opt("trial_from_plan", Spec::Unsupported),
    opt("trial_settings", Spec::Unsupported),
];

const CANCEL: &[Field] = &[
    opt("cancellation_details", Spec::Obj(CANCELLATION_DETAILS)),
    EXPAND,
    opt("invoice_now", Spec::Bool),
    opt("prorate", Spec::Bool),
];

/// Every status a list may ask for.
const STATUSES: &[&str] = &[
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
];

const LIST: &[Field] = &[
    opt("automatic_tax", Spec::Unsupported),
    opt("collection_method", COLLECTION),
    opt("created", Spec::Range),
    opt("current_period_end", Spec::Unsupported),
    opt("current_period_start", Spec::Unsupported),
    opt("customer", Spec::Str(5000)),
    opt("customer_account", Spec::Unsupported),
    LIST_FIELDS[2],
    LIST_FIELDS[3],
    LIST_FIELDS[0],
    opt("plan", Spec::Unsupported),
    opt("price", Spec::Str(5000)),
    LIST_FIELDS[1],
    opt("status", Spec::Enum(STATUSES)),
    opt("test_clock", Spec::Str(5000)),
];

const RETRIEVE: &[Field] = &[EXPAND];
/// Paths `expand[]` accepts on a subscription.
pub const EXPANDABLE: &[&str] = &["customer", "latest_invoice", "test_clock"];
const LIST_EXPANDABLE: &[&str] = &["data.customer", "data.latest_invoice", "data.test_clock"];
/// The list `url`.
const URL: &str = "/v1/subscriptions";

// ---- views ----

/// A subscription as Stripe's `subscription` object (as the newest version shows it: periods on
/// the items, not on the subscription), fields in Stripe's order.
#[derive(Serialize)]
pub struct SubscriptionView<'a> {
    id: String,
    object: &'static str,
    application: Null,
    application_fee_percent: Null,
    automatic_tax: AutomaticTax,
    billing_cycle_anchor: i64,
    billing_cycle_anchor_config: Null,
    billing_mode: BillingModeView,
    billing_schedules: [(); 0],
    billing_thresholds: Null,
    cancel_at: Option<i64>,
    cancel_at_period_end: bool,
    canceled_at: Option<i64>,
    cancellation_details: CancellationView<'a>,
    collection_method: &'static str,
    created: i64,
    currency: &'a str,
    customer: String,
    customer_account: Null,
    days_until_due: Option<u32>,
    default_payment_method: Null,
    default_source: Null,
    default_tax_rates: [(); 0],
    description: Option<&'a str>,
    discounts: [(); 0],
    ended_at: Option<i64>,
    invoice_settings: InvoiceSettings,
    items: ItemsList<'a>,
    latest_invoice: Option<String>,
    livemode: bool,
    metadata: &'a Metadata,
    next_pending_invoice_item_invoice: Null,
    on_behalf_of: Null,
    pause_collection: Null,
    payment_settings: PaymentSettings,
    pending_invoice_item_interval: Null,
    pending_setup_intent: Null,
    pending_update: Null,
    schedule: Null,
    start_date: i64,
    status: &'static str,
    test_clock: Option<String>,
    transfer_data: Null,
    trial_end: Null,
    trial_settings: TrialSettings,
    trial_start: Null,
}

/// The items a subscription embeds: all of them (at most 20), as a list whose `url` pages
/// through the same items.
#[derive(Serialize)]
struct ItemsList<'a> {
    object: &'static str,
    data: Vec<ItemView<'a>>,
    has_more: bool,
    url: String,
}

#[derive(Serialize)]
struct AutomaticTax {
    disabled_reason: Null,
    enabled: bool,
    liability: Null,
}

#[derive(Serialize)]
struct BillingModeView {
    /// `null` for `classic`: nullable fields are always present.
    flexible: Option<Flexible>,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Flexible {
    proration_discounts: &'static str,
}

#[derive(Serialize)]
struct CancellationView<'a> {
    comment: Option<&'a str>,
    feedback: Option<&'static str>,
    reason: Option<&'static str>,
}

#[derive(Serialize)]
struct InvoiceSettings {
    account_tax_ids: Null,
    custom_fields: Null,
    description: Null,
    footer: Null,
    issuer: Issuer,
}

#[derive(Serialize)]
struct Issuer {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct PaymentSettings {
    payment_method_options: Null,
    payment_method_types: Null,
    save_default_payment_method: &'static str,
}

#[derive(Serialize)]
struct TrialSettings {
    end_behavior: EndBehavior,
}

#[derive(Serialize)]
struct EndBehavior {
    missing_payment_method: &'static str,
}

/// Stripe's name of a status.
fn status_name(s: PricedStatus) -> &'static str {
    match s {
        PricedStatus::Incomplete => "incomplete",
        PricedStatus::IncompleteExpired => "incomplete_expired",
        PricedStatus::Trialing => "trialing",
        PricedStatus::Active => "active",
        PricedStatus::PastDue => "past_due",
        PricedStatus::Unpaid => "unpaid",
        PricedStatus::Paused => "paused",
        PricedStatus::Canceled => "canceled",
    }
}

const FEEDBACKS: [(CancellationFeedback, &str); 8] = [
    (CancellationFeedback::CustomerService, "customer_service"),
    (CancellationFeedback::LowQuality, "low_quality"),
    (CancellationFeedback::MissingFeatures, "missing_features"),
    (CancellationFeedback::Other, "other"),
    (CancellationFeedback::SwitchedService, "switched_service"),
    (CancellationFeedback::TooComplex, "too_complex"),
    (CancellationFeedback::TooExpensive, "too_expensive"),
    (CancellationFeedback::Unused, "unused"),
];

fn feedback_name(f: CancellationFeedback) -> &'static str {
    FEEDBACKS
        .iter()
        .find(|(v, _)| *v == f)
        .map_or("other", |(_, name)| name)
}

impl<'a> SubscriptionView<'a> {
    /// The view of `s`, its items read from `t`.
    pub fn of(t: &'a Tenant, s: &'a PricedSubscription) -> Self {
        Self::with_items(t, s, t.priced_subscription_items(s.key))
    }

    /// The view of `s` with `items` (a copy of the subscription as it was, say).
    pub fn with_items(
        t: &'a Tenant,
        s: &'a PricedSubscription,
        items: impl Iterator<Item = &'a crate::model::SubscriptionItem>,
    ) -> Self {
        let id = ids::render(ids::SUBSCRIPTION, s.key);
        let items: Vec<ItemView> = items.map(|i| ItemView::of(t, i)).collect();
        let secs = |t: Option<Nanos>| t.map(to_secs);
        let details = &s.cancellation_details;
        SubscriptionView {
            object: "subscription",
            application: NULL,
            application_fee_percent: NULL,
            automatic_tax: AutomaticTax {
                disabled_reason: NULL,
                enabled: false,
                liability: NULL,
            },
            billing_cycle_anchor: to_secs(s.billing_cycle_anchor),
            billing_cycle_anchor_config: NULL,
            billing_mode: match s.billing_mode {
                BillingMode::Classic => BillingModeView {
                    flexible: None,
                    kind: "classic",
                },
                BillingMode::Flexible => BillingModeView {
                    flexible: Some(Flexible {
                        proration_discounts: "included",
                    }),
                    kind: "flexible",
                },
            },
            billing_schedules: EMPTY_LIST,
            billing_thresholds: NULL,
            cancel_at: secs(s.cancel_at),
            cancel_at_period_end: s.cancel_at_period_end,
            canceled_at: secs(s.canceled_at),
            cancellation_details: CancellationView {
                comment: details.comment.as_deref(),
                feedback: details.feedback.map(feedback_name),
                reason: details.reason.map(|r| match r {
                    CancellationReason::CancellationRequested => "cancellation_requested",
                    CancellationReason::PaymentFailed => "payment_failed",
                    CancellationReason::PaymentDisputed => "payment_disputed",
                }),
            },
            collection_method: match s.collection_method {
                CollectionMethod::ChargeAutomatically => "charge_automatically",
                CollectionMethod::SendInvoice => "send_invoice",
            },
            created: to_secs(s.created),
            currency: s.currency.as_str(),
            customer: ids::render(ids::CUSTOMER, s.customer),
            customer_account: NULL,
            days_until_due: s.days_until_due,
            default_payment_method: NULL,
            default_source: NULL,
            default_tax_rates: EMPTY_LIST,
            description: s.description.as_deref(),
            discounts: EMPTY_LIST,
            ended_at: secs(s.ended_at),
            invoice_settings: InvoiceSettings {
                account_tax_ids: NULL,
                custom_fields: NULL,
                description: NULL,
                footer: NULL,
                issuer: Issuer { kind: "self" },
            },
            items: ItemsList {
                object: "list",
                data: items,
                has_more: false,
                url: items_url(&id),
            },
            latest_invoice: s.latest_invoice.map(|k| ids::render(ids::INVOICE, k)),
            livemode: false,
            metadata: &s.metadata,
            next_pending_invoice_item_invoice: NULL,
            on_behalf_of: NULL,
            pause_collection: NULL,
            payment_settings: PaymentSettings {
                payment_method_options: NULL,
                payment_method_types: NULL,
                save_default_payment_method: "off",
            },
            pending_invoice_item_interval: NULL,
            pending_setup_intent: NULL,
            pending_update: NULL,
            schedule: NULL,
            start_date: to_secs(s.start_date),
            status: status_name(s.status),
            test_clock: s.test_clock.map(|k| ids::render(ids::TEST_CLOCK, k)),
            transfer_data: NULL,
            trial_end: NULL,
            trial_settings: TrialSettings {
                end_behavior: EndBehavior {
                    missing_payment_method: "create_invoice",
                },
            },
            trial_start: NULL,
            id,
        }
    }
}

/// The subscription `key` as the answer, with `expand`.
fn respond(t: &Tenant, key: Key, expand: Expand) -> Body {
    let s = t.priced_subscription(key).expect("made or looked up above");
    Body::of(
        &SubscriptionView::of(t, s),
        expand,
        4096 + 3072 * s.items.len(),
    )
}

/// The subscription named `id` in parameter `subscription` (400 when there is none), as an
/// invoice, an invoice item or a new subscription item names it.
pub fn param_lookup<'t>(t: &'t Tenant, id: &str) -> StripeResult<&'t PricedSubscription> {
    ids::key_of(id, ids::SUBSCRIPTION)
        .and_then(|k| t.priced_subscription(k))
        .ok_or_else(|| StripeError::no_such("subscription", id, "subscription", 400))
}

/// The subscription named in the path (404 when there is none).
fn lookup(t: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::SUBSCRIPTION)
        .filter(|k| t.priced_subscription(*k).is_some())
        .ok_or_else(|| StripeError::no_such("subscription", id, "id", 404))
}

/// The price named `id` in parameter `param` (400 when there is none).
fn price_key(t: &Tenant, id: &str, param: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::PRICE)
        .filter(|k| t.price(*k).is_some())
        .ok_or_else(|| StripeError::no_such("price", id, param, 400))
}

/// Whether a price is billed in advance for a quantity: a change to it within a period is one
/// Stripe would prorate.
fn licensed(t: &Tenant, price: Key) -> bool {
    t.price(price)
        .is_some_and(|p| p.recurring.is_some() && !p.is_metered())
}

/// Stripe would prorate what `param` asks for, and the emulator computes no prorations.
fn proration_refused(param: &str, what: &str, behavior: &str) -> StripeError {
    StripeError::invalid(format!(
        "Proration is not supported by the credit emulator: {what} would be prorated. Send {behavior}=none to make the change without prorations."
    ))
    .param(param)
}

/// `payment_behavior`: only the default, since there are no payment intents to leave pending.
fn check_payment_behavior(p: &Params) -> StripeResult<()> {
    match get_str(p, "payment_behavior") {
        Some(v) if v != "allow_incomplete" => Err(StripeError::invalid(format!(
            "payment_behavior={v} is not supported by the credit emulator: subscriptions are made and changed as with allow_incomplete, the default (a declined first payment leaves the subscription incomplete)."
        ))
        .param("payment_behavior")),
        _ => Ok(()),
    }
}

fn days_error() -> StripeError {
    StripeError::invalid(
        "Invalid days_until_due: it can only be set when collection_method is send_invoice.",
    )
    .param("days_until_due")
}

/// `days_until_due`, at least 0.
fn read_days(p: &Params) -> StripeResult<Option<u32>> {
    get_int(p, "days_until_due")
        .map(|n| in_range(n, 0, u32::MAX as i64, "days_until_due").map(|n| n as u32))
        .transpose()
}

fn collection_of(p: &Params) -> Option<CollectionMethod> {
    get_str(p, "collection_method").map(|v| match v {
        "send_invoice" => CollectionMethod::SendInvoice,
        _ => CollectionMethod::ChargeAutomatically,
    })
}

/// `items[N][quantity]`, at least 0; `name` spells the parameter.
fn read_quantity(item: &Params, name: &str) -> StripeResult<Option<u64>> {
    get_int(item, "quantity")
        .map(|q| in_range(q, 0, i64::MAX, name).map(|q| q as u64))
        .transpose()
}

/// `cancellation_details[…]`: `(comment, feedback)`, each `None` when absent and `Some(None)`
/// when cleared.
type DetailsChange = (Option<Option<String>>, Option<Option<CancellationFeedback>>);

fn read_details(p: &Params) -> DetailsChange {
    let Some(d) = get_obj(p, "cancellation_details") else {
        return (None, None);
    };
    let feedback = get_str(d, "feedback").map(|f| {
        FEEDBACKS
            .iter()
            .find(|(_, name)| *name == f)
            .map(|(v, _)| *v)
    });
    (get_nullable_str(d, "comment"), feedback)
}

/// The message of a refused command, worded as Stripe words it where it is known, with the
/// parameter that caused it. `item_param(i, field)` names a field of the request's `i`-th item.
fn priced_error(
    e: PricedError,
    customer: &str,
    item_param: impl Fn(usize, &str) -> String,
) -> StripeError {
    match e {
        PricedError::NotFound => StripeError::invalid("No such subscription").status(404),
        PricedError::NoSuchCustomer => StripeError::no_such("customer", customer, "customer", 400),
        PricedError::Item(i, problem) => item_error(i, problem, &item_param),
        PricedError::NoItems => StripeError::invalid(
            "A subscription must keep at least one item. To end it, cancel it (DELETE /v1/subscriptions/{id}).",
        )
        .param("items")
        .executed(),
        PricedError::TooManyItems(n) => StripeError::invalid(format!(
            "A subscription can have at most {MAX_ITEMS} items, but this one would have {n}."
        ))
        .param("items")
        .executed(),
        PricedError::Ended => StripeError::invalid(
            "A canceled subscription can only update its cancellation_details and metadata.",
        )
        .executed(),
        PricedError::CustomerLimit => StripeError::invalid(format!(
            "The customer {} already has {MAX_OPEN_PER_CUSTOMER} subscriptions that have not ended, the most one customer can have.",
            shorten(customer)
        ))
        .param("customer")
        .executed(),
        PricedError::ClockLimit(clock) => StripeError::invalid(format!(
            "The customer {} is on test clock {}, and a customer on a test clock can have at most {MAX_OPEN_ON_CLOCK} subscriptions that have not ended.",
            shorten(customer),
            ids::render(ids::TEST_CLOCK, clock)
        ))
        .param("customer")
        .executed(),
        PricedError::AnchorNotFuture => {
            StripeError::invalid("Invalid billing_cycle_anchor: it must be a time in the future.")
                .param("billing_cycle_anchor")
        }
        PricedError::AnchorTooLate(natural) => StripeError::invalid(format!(
            "billing_cycle_anchor cannot be later than next natural billing date ({}) for plan",
            to_secs(natural)
        ))
        .param("billing_cycle_anchor"),
        PricedError::CancelAtNotFuture => {
            StripeError::invalid("Invalid cancel_at: it must be a time in the future.")
                .param("cancel_at")
        }
        PricedError::DaysWithAutomaticCollection => days_error(),
        PricedError::DaysMissing => StripeError::missing_param("days_until_due"),
    }
}

fn item_error(
    i: usize,
    problem: ItemProblem,
    param: &impl Fn(usize, &str) -> String,
) -> StripeError {
    let mismatch = |field: &str| {
        StripeError::invalid(format!(
            "Currency and interval fields must match across all plans on this subscription. Found mismatch in {field} field."
        ))
        .param(param(i, "price"))
    };
    match problem {
        ItemProblem::NoSuchPrice => StripeError::invalid("No such price")
            .param(param(i, "price"))
            .code("resource_missing"),
        ItemProblem::InactivePrice => StripeError::invalid(
            "The price specified is inactive. This field only accepts active prices.",
        )
        .param(param(i, "price")),
        ItemProblem::NotRecurring => StripeError::invalid(
            "The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.",
        )
        .param(param(i, "price")),
        ItemProblem::QuantityOnMetered => {
            StripeError::invalid("You cannot set the quantity for metered plans.")
                .param(param(i, "quantity"))
        }
        ItemProblem::DuplicatePrice(price) => StripeError::invalid(format!(
            "Cannot add multiple subscription items with the same plan: {}",
            ids::render(ids::PRICE, price)
        ))
        .param(param(i, "price")),
        ItemProblem::CurrencyMismatch => mismatch("currency"),
        ItemProblem::IntervalMismatch => mismatch("interval"),
        ItemProblem::AmountTooLarge(currency) => {
            // Stripe's words for the largest single charge; a two-decimal currency's figures.
            let most = match currency.as_str() {
                "usd" => "$999,999.99 USD".to_string(),
                code => format!("999,999.99 {}", code.to_uppercase()),
            };
            StripeError::invalid(format!(
                "Invalid quantity: total amount (quantity * plan amount) must be no more than {most}"
            ))
            .param(param(i, "quantity"))
        }
        ItemProblem::NoSuchItem => StripeError::invalid("No such subscription item")
            .param(param(i, "id"))
            .code("resource_missing"),
    }
}

// ---- create ----

/// An item as sent with a new subscription.
struct SentItem {
    price: String,
    quantity: Option<u64>,
    metadata: Metadata,
}

/// `POST /v1/subscriptions`: made `active` at the customer's now (its test clock's time for a
/// customer on one), its first period starting then.
pub struct Create {
    customer: String,
    items: Vec<SentItem>,
    currency: Option<Currency>,
    collection_method: CollectionMethod,
    days_until_due: Option<u32>,
    billing_mode: BillingMode,
    billing_cycle_anchor: Option<Nanos>,
    cancel_at_period_end: bool,
    cancel_at: Option<Nanos>,
    no_prorations: bool,
    metadata: Metadata,
    description: Option<String>,
    expand: Expand,
}

impl Operation for Create {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, CREATE, HINT)?;
        let expand = Expand::read(p, EXPANDABLE, Version::NEWEST)?;
        check_payment_behavior(p)?;
        let nodes = p.get("items").map(list_items).unwrap_or_default();
        if nodes.is_empty() {
            return Err(StripeError::missing_param("items"));
        }
        let mut items = Vec::with_capacity(nodes.len());
        for (i, node) in nodes.into_iter().enumerate() {
            let Node::Map(item) = node else {
                return Err(StripeError::invalid("Invalid hash").param(format!("items[{i}]")));
            };
            let metadata = new_metadata(item, "metadata", &format!("items[{i}][metadata]"))?;
            items.push(SentItem {
                price: get_str(item, "price").unwrap_or("").to_string(),
                quantity: read_quantity(item, &format!("items[{i}][quantity]"))?,
                metadata,
            });
        }
        let collection_method = collection_of(p).unwrap_or(CollectionMethod::ChargeAutomatically);
        let days_until_due = read_days(p)?;
        match (collection_method, days_until_due) {
            (CollectionMethod::ChargeAutomatically, Some(_)) => return Err(days_error()),
            (CollectionMethod::SendInvoice, None) => {
                return Err(StripeError::missing_param("days_until_due"))
            }
            _ => {}
        }
        let cancel_at_period_end = get_str(p, "cancel_at_period_end") == Some("true");
        let cancel_at = get_int(p, "cancel_at")
            .map(|s| timestamp(s, "cancel_at"))
            .transpose()?;
        if cancel_at.is_some() && cancel_at_period_end {
            return Err(StripeError::invalid(
                "You may only specify one of these parameters: cancel_at, cancel_at_period_end.",
            ));
        }
        Ok(Create {
            customer: get_str(p, "customer").unwrap_or("").to_string(),
            items,
            currency: get_str(p, "currency")
                .filter(|c| !c.is_empty())
                .map(|c| currency(c, "currency"))
                .transpose()?,
            collection_method,
            days_until_due,
            billing_mode: match get_obj(p, "billing_mode").and_then(|m| get_str(m, "type")) {
                Some("classic") => BillingMode::Classic,
                _ => BillingMode::Flexible,
            },
            billing_cycle_anchor: get_int(p, "billing_cycle_anchor")
                .map(|s| timestamp(s, "billing_cycle_anchor"))
                .transpose()?,
            cancel_at_period_end,
            cancel_at,
            no_prorations: get_str(p, "proration_behavior") == Some("none"),
            metadata: new_metadata(p, "metadata", "metadata")?,
            description: get_nullable_str(p, "description").flatten(),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let customer = customers::lookup_param(t, &self.customer, "customer")?;
        let mut items = Vec::with_capacity(self.items.len());
        for (i, sent) in self.items.into_iter().enumerate() {
            items.push(NewItem {
                price: price_key(t, &sent.price, &format!("items[{i}][price]"))?,
                quantity: sent.quantity,
                metadata: sent.metadata,
            });
        }
        if let Some(c) = self.currency {
            let first = items.first().and_then(|i| t.price(i.price));
            if let Some(p) = first.filter(|p| p.currency != c) {
                return Err(StripeError::invalid(format!(
                    "Invalid currency: {c}. The prices of this subscription are in {}, and a subscription is in the currency of its prices.",
                    p.currency
                ))
                .param("currency"));
            }
        }
        // A stub period before a future anchor, or a last period cut short by `cancel_at`, is
        // prorated for licensed prices (metered ones bill what was used).
        if !self.no_prorations && items.iter().any(|i| licensed(t, i.price)) {
            if self.billing_cycle_anchor.is_some() {
                return Err(proration_refused(
                    "billing_cycle_anchor",
                    "the period before a billing_cycle_anchor in the future of a subscription with licensed prices",
                    "proration_behavior",
                ));
            }
            if self.cancel_at.is_some() {
                return Err(proration_refused(
                    "cancel_at",
                    "the last period of a subscription with licensed prices ending at cancel_at",
                    "proration_behavior",
                ));
            }
        }
        let new = NewPricedSubscription {
            customer,
            items,
            collection_method: self.collection_method,
            days_until_due: self.days_until_due,
            billing_mode: self.billing_mode,
            billing_cycle_anchor: self.billing_cycle_anchor,
            cancel_at_period_end: self.cancel_at_period_end,
            cancel_at: self.cancel_at,
            metadata: self.metadata,
            description: self.description,
        };
        let key = t
            .create_priced_subscription(new)
            .map_err(|e| priced_error(e, &self.customer, |i, f| format!("items[{i}][{f}]")))?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

// ---- retrieve ----

/// `GET /v1/subscriptions/{id}`.
pub struct Retrieve {
    id: String,
    expand: Expand,
}

impl Operation for Retrieve {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, RETRIEVE, HINT)?;
        Ok(Retrieve {
            id: input.id().to_string(),
            expand: Expand::read(input.params, EXPANDABLE, Version::NEWEST)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        Ok((lookup(t, &self.id)?, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

// ---- update ----

/// One entry of an update's `items`, as sent.
enum SentChange {
    Add {
        price: String,
        quantity: Option<u64>,
        metadata: Option<MetadataUpdate>,
    },
    Change {
        id: String,
        price: Option<String>,
        quantity: Option<u64>,
        metadata: Option<MetadataUpdate>,
    },
    Remove {
        id: String,
    },
}

/// One item change as the request sent it, in the model's words, with what of it Stripe would
/// prorate (the parameter to name, and why). `item_of(id)` finds the item a change or removal
/// names; `param(field)` spells a field as the request named it: `items[0][price]` on a
/// subscription's update, `price` on the item endpoints. Shared by both, so that an item changes
/// the same way whichever endpoint is asked.
fn item_change<'t>(
    t: &'t Tenant,
    sent: SentChange,
    item_of: &dyn Fn(&str) -> StripeResult<&'t SubscriptionItem>,
    param: &dyn Fn(&str) -> String,
) -> StripeResult<(ItemChange, Option<(String, &'static str)>)> {
    Ok(match sent {
        SentChange::Add {
            price,
            quantity,
            metadata,
        } => {
            let price = price_key(t, &price, &param("price"))?;
            let prorates = licensed(t, price)
                .then(|| (param("price"), "adding a licensed price within a period"));
            let metadata = match metadata {
                Some(u) => apply_metadata(&Metadata::new(), u, &param("metadata"))?,
                None => Metadata::new(),
            };
            let change = ItemChange::Add(NewItem {
                price,
                quantity,
                metadata,
            });
            (change, prorates)
        }
        SentChange::Change {
            id,
            price,
            quantity,
            metadata,
        } => {
            let item = item_of(&id)?;
            let price = price
                .map(|p| price_key(t, &p, &param("price")))
                .transpose()?;
            let was_licensed = licensed(t, item.price);
            let new_price = price.filter(|p| *p != item.price);
            let prorates = if new_price.is_some_and(|p| was_licensed || licensed(t, p)) {
                Some((
                    param("price"),
                    "changing the price of a licensed item within a period",
                ))
            } else if was_licensed
                && new_price.is_none()
                && quantity.is_some_and(|q| Some(q) != item.quantity)
            {
                Some((
                    param("quantity"),
                    "changing the quantity of a licensed item within a period",
                ))
            } else {
                None
            };
            let metadata = metadata
                .map(|u| apply_metadata(&item.metadata, u, &param("metadata")))
                .transpose()?;
            let change = ItemChange::Update {
                item: item.key,
                price,
                quantity,
                metadata,
            };
            (change, prorates)
        }
        SentChange::Remove { id } => {
            let item = item_of(&id)?;
            let prorates = licensed(t, item.price)
                .then(|| (param("deleted"), "removing a licensed item within a period"));
            (ItemChange::Remove(item.key), prorates)
        }
    })
}

/// `POST /v1/subscriptions/{id}`: items added (`items[N][price]`), changed (`items[N][id]` with a
/// `price`, `quantity` or `metadata`) or removed (`items[N][id]` with `items[N][deleted]=true`),
/// cancellation asked for or withdrawn, collection, description and metadata.
pub struct Update {
    id: String,
    items: Vec<SentChange>,
    metadata: Option<MetadataUpdate>,
    description: Option<Option<String>>,
    cancel_at_period_end: Option<bool>,
    cancel_at: Option<Option<Nanos>>,
    details: DetailsChange,
    collection_method: Option<CollectionMethod>,
    days_until_due: Option<Option<u32>>,
    no_prorations: bool,
    expand: Expand,
}

/// An update's `items[]` as sent, read from `p`; `items` spells the array's name (`items`, or
/// `subscription_details[items]` on a preview).
fn read_changes(p: &Params, items: &str) -> StripeResult<Vec<SentChange>> {
    let nodes = p.get("items").map(list_items).unwrap_or_default();
    let mut out = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.into_iter().enumerate() {
        let Node::Map(item) = node else {
            return Err(StripeError::invalid("Invalid hash").param(format!("{items}[{i}]")));
        };
        let id = get_str(item, "id").filter(|s| !s.is_empty());
        let price = get_str(item, "price").filter(|s| !s.is_empty());
        let quantity = read_quantity(item, &format!("{items}[{i}][quantity]"))?;
        let metadata = get_metadata(item, "metadata");
        let deleted = get_str(item, "deleted") == Some("true");
        out.push(match (id, deleted) {
            (Some(id), true) => SentChange::Remove { id: id.to_string() },
            (None, true) => return Err(StripeError::missing_param(&format!("{items}[{i}][id]"))),
            (Some(id), false) => SentChange::Change {
                id: id.to_string(),
                price: price.map(str::to_string),
                quantity,
                metadata,
            },
            (None, false) => SentChange::Add {
                price: price
                    .ok_or_else(|| StripeError::missing_param(&format!("{items}[{i}][price]")))?
                    .to_string(),
                quantity,
                metadata,
            },
        });
    }
    Ok(out)
}

/// A part of a change Stripe would prorate: the parameter to name, and why.
type Prorated = (String, &'static str);

/// What a change to subscription `key` asks of its items, each id checked to be one of its items,
/// and the first part of it Stripe would prorate (the parameter to name, and why): an item
/// change, or `cancel_at` (`ends_early`, with the parameter that asked) inside a period of a
/// subscription with licensed prices. `param(i, field)` spells a field of the `i`-th item.
/// Shared by an update and its preview.
fn plan_changes(
    t: &Tenant,
    key: Key,
    sent: Vec<SentChange>,
    ends_early: Option<Prorated>,
    param: &dyn Fn(usize, &str) -> String,
) -> StripeResult<(Vec<ItemChange>, Option<Prorated>)> {
    let sub = t.priced_subscription(key).expect("looked up by the caller");
    let item_of = |id: &str, i: usize| {
        ids::key_of(id, ids::SUBSCRIPTION_ITEM)
            .and_then(|k| t.subscription_item(k))
            .filter(|item| item.subscription == key)
            .ok_or_else(|| StripeError::no_such("subscription item", id, &param(i, "id"), 400))
    };
    let mut changes = Vec::with_capacity(sent.len());
    let mut prorated: Option<Prorated> = None;
    for (i, sent) in sent.into_iter().enumerate() {
        let (change, prorates) = item_change(t, sent, &|id| item_of(id, i), &|f| param(i, f))?;
        if let Some(p) = prorates {
            prorated.get_or_insert(p);
        }
        changes.push(change);
    }
    let has_licensed = sub.items.iter().any(|k| {
        t.subscription_item(*k)
            .is_some_and(|item| licensed(t, item.price))
    });
    if let Some(early) = ends_early.filter(|_| has_licensed) {
        prorated.get_or_insert(early);
    }
    Ok((changes, prorated))
}

impl Operation for Update {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, UPDATE, HINT)?;
        let expand = Expand::read(p, EXPANDABLE, Version::NEWEST)?;
        check_payment_behavior(p)?;
        let items = read_changes(p, "items")?;
        let cancel_at = match get_str(p, "cancel_at") {
            None => None,
            Some("") => Some(None),
            Some(_) => Some(Some(timestamp(
                get_int(p, "cancel_at").unwrap_or(0),
                "cancel_at",
            )?)),
        };
        let cancel_at_period_end = get_str(p, "cancel_at_period_end").map(|v| v == "true");
        if matches!(cancel_at, Some(Some(_))) && cancel_at_period_end == Some(true) {
            return Err(StripeError::invalid(
                "You may only specify one of these parameters: cancel_at, cancel_at_period_end.",
            ));
        }
        let days_until_due = match get_str(p, "days_until_due") {
            None => None,
            Some("") => Some(None),
            Some(_) => Some(read_days(p)?),
        };
        Ok(Update {
            id: input.id().to_string(),
            items,
            metadata: get_metadata(p, "metadata"),
            description: get_nullable_str(p, "description"),
            cancel_at_period_end,
            cancel_at,
            details: read_details(p),
            collection_method: collection_of(p),
            days_until_due,
            no_prorations: get_str(p, "proration_behavior") == Some("none"),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup(t, &self.id)?;
        let sub = t.priced_subscription(key).expect("looked up above");
        let ends_early = matches!(self.cancel_at, Some(Some(_))).then(|| {
            (
                "cancel_at".to_string(),
                "the last period of a subscription with licensed prices ending at cancel_at",
            )
        });
        // Read every id first, and what Stripe would prorate.
        let (changes, prorated) = plan_changes(t, key, self.items, ends_early, &|i, f| {
            format!("items[{i}][{f}]")
        })?;
        let metadata = self
            .metadata
            .map(|u| apply_metadata(&sub.metadata, u, "metadata"))
            .transpose()?;
        // An ended subscription refuses the change itself before anything is said of prorations.
        if let Some((param, what)) = prorated.filter(|_| !sub.status.is_ended()) {
            if !self.no_prorations {
                return Err(proration_refused(&param, what, "proration_behavior"));
            }
        }
        let customer = ids::render(ids::CUSTOMER, sub.customer);
        let update = PricedUpdate {
            items: changes,
            metadata,
            description: self.description,
            cancel_at_period_end: self.cancel_at_period_end,
            cancel_at: self.cancel_at,
            cancellation_comment: self.details.0,
            cancellation_feedback: self.details.1,
            collection_method: self.collection_method,
            days_until_due: self.days_until_due,
        };
        t.update_priced_subscription(key, update)
            .map_err(|e| priced_error(e, &customer, |i, f| format!("items[{i}][{f}]")))?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

// ---- previews ----

/// `subscription_details[…]` of `POST /v1/invoices/create_preview`: the changes of an update a
/// preview imagines (or, without `subscription`, the items of a subscription to make).
pub(super) const PREVIEW_DETAILS: &[Field] = &[
    opt("billing_cycle_anchor", Spec::Unsupported),
    opt("billing_mode", Spec::Unsupported),
    opt("cancel_at", Spec::TsOrEmpty),
    opt("cancel_at_period_end", Spec::Bool),
    opt("cancel_now", Spec::Bool),
    opt("default_tax_rates", Spec::Unsupported),
    opt("items", Spec::Array(&Spec::Obj(CHANGED_ITEM), MAX_ITEMS)),
    opt("proration_behavior", PRORATION),
    opt("proration_date", Spec::Unsupported),
    opt("resume_at", Spec::Unsupported),
    opt("start_date", Spec::Unsupported),
    opt("trial_end", Spec::Unsupported),
];

/// `subscription_details[field]`.
fn detail(field: &str) -> String {
    format!("subscription_details[{field}]")
}

/// `subscription_details[items][i][field]`.
fn detail_item(i: usize, field: &str) -> String {
    format!("subscription_details[items][{i}][{field}]")
}

/// What a preview's `subscription_details` asks for, as sent.
pub(super) struct SentDetails {
    items: Vec<SentChange>,
    cancel_at_period_end: Option<bool>,
    cancel_at: Option<Option<Nanos>>,
    cancel_now: bool,
    no_prorations: bool,
}

impl SentDetails {
    /// Reads `subscription_details` (the table has checked its shape); `None` when absent.
    pub(super) fn read(p: &Params) -> StripeResult<Option<SentDetails>> {
        let Some(d) = get_obj(p, "subscription_details") else {
            return Ok(None);
        };
        let items = read_changes(d, "subscription_details[items]")?;
        let cancel_at = match get_str(d, "cancel_at") {
            None => None,
            Some("") => Some(None),
            Some(_) => Some(Some(timestamp(
                get_int(d, "cancel_at").unwrap_or(0),
                &detail("cancel_at"),
            )?)),
        };
        let cancel_at_period_end = get_str(d, "cancel_at_period_end").map(|v| v == "true");
        let cancel_now = get_str(d, "cancel_now") == Some("true");
        let asked: Vec<String> = [
            (matches!(cancel_at, Some(Some(_))), "cancel_at"),
            (cancel_at_period_end == Some(true), "cancel_at_period_end"),
            (cancel_now, "cancel_now"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| detail(name))
        .collect();
        if asked.len() > 1 {
            return Err(StripeError::invalid(format!(
                "You may only specify one of these parameters: {}.",
                asked.join(", ")
            )));
        }
        Ok(Some(SentDetails {
            items,
            cancel_at_period_end,
            cancel_at,
            cancel_now,
            no_prorations: get_str(d, "proration_behavior") == Some("none"),
        }))
    }

    /// Whether it names items: a preview needs a subscription or items to show.
    pub(super) fn has_items(&self) -> bool {
        !self.items.is_empty()
    }

    /// The changes it imagines on subscription `key`, checked as an update's: the items it names
    /// must be the subscription's, and a change Stripe would prorate needs
    /// `subscription_details[proration_behavior]=none`.
    pub(super) fn changes_of(self, t: &Tenant, key: Key) -> StripeResult<PreviewChanges> {
        let ends_early = if matches!(self.cancel_at, Some(Some(_))) {
            Some((
                detail("cancel_at"),
                "the last period of a subscription with licensed prices ending at cancel_at",
            ))
        } else if self.cancel_now {
            Some((
                detail("cancel_now"),
                "the unused time of the licensed prices of a subscription cancelled now",
            ))
        } else {
            None
        };
        let (changes, prorated) = plan_changes(t, key, self.items, ends_early, &detail_item)?;
        if let Some((param, what)) = prorated {
            if !self.no_prorations {
                return Err(proration_refused(
                    &param,
                    what,
                    &detail("proration_behavior"),
                ));
            }
        }
        Ok(PreviewChanges {
            items: changes,
            cancel_at_period_end: self.cancel_at_period_end,
            cancel_at: self.cancel_at,
            cancel_now: self.cancel_now,
            charges: Vec::new(),
        })
    }

    /// The subscription it imagines for `customer`: every item a new one with a price.
    pub(super) fn new_for(self, t: &Tenant, customer: Key) -> StripeResult<NewPricedSubscription> {
        if self.cancel_now {
            return Err(StripeError::invalid(
                "subscription_details[cancel_now] can only be used to preview a change to an existing subscription: send subscription.",
            )
            .param(detail("cancel_now")));
        }
        let mut items = Vec::with_capacity(self.items.len());
        for (i, sent) in self.items.into_iter().enumerate() {
            let SentChange::Add {
                price,
                quantity,
                metadata,
            } = sent
            else {
                return Err(StripeError::invalid(
                    "You cannot update a subscription item without a subscription.",
                )
                .param(detail_item(i, "id")));
            };
            let metadata = match metadata {
                Some(u) => apply_metadata(&Metadata::new(), u, &detail_item(i, "metadata"))?,
                None => Metadata::new(),
            };
            items.push(NewItem {
                price: price_key(t, &price, &detail_item(i, "price"))?,
                quantity,
                metadata,
            });
        }
        Ok(NewPricedSubscription {
            customer,
            items,
            collection_method: CollectionMethod::ChargeAutomatically,
            days_until_due: None,
            billing_mode: BillingMode::Flexible,
            billing_cycle_anchor: None,
            cancel_at_period_end: self.cancel_at_period_end.unwrap_or(false),
            cancel_at: self.cancel_at.flatten(),
            metadata: Metadata::new(),
            description: None,
        })
    }
}

/// A refusal of the model's for a preview, worded as for the update or creation it imagines,
/// naming the preview's parameters.
pub(super) fn preview_error(e: PricedError, customer: &str) -> StripeError {
    match e {
        PricedError::CancelAtNotFuture => {
            StripeError::invalid("Invalid cancel_at: it must be a time in the future.")
                .param(detail("cancel_at"))
        }
        PricedError::NoItems | PricedError::TooManyItems(_) => {
            priced_error(e, customer, detail_item).param(detail("items"))
        }
        e => priced_error(e, customer, detail_item),
    }
}

// ---- cancel ----

/// `DELETE /v1/subscriptions/{id}`: ends the subscription at once, at its customer's now, with
/// reason `cancellation_requested`. `invoice_now=true` asks the billing side for a final invoice
/// (see `Tenant::invoice_on_end`); `prorate=true` is refused.
pub struct Cancel {
    id: String,
    details: DetailsChange,
    invoice_now: bool,
    expand: Expand,
}

impl Operation for Cancel {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, CANCEL, HINT)?;
        let expand = Expand::read(p, EXPANDABLE, Version::NEWEST)?;
        if get_str(p, "prorate") == Some("true") {
            return Err(StripeError::invalid(
                "Proration is not supported by the credit emulator: prorate=true would credit the unused part of the period. Leave prorate out (or send false) to cancel without prorations.",
            )
            .param("prorate"));
        }
        Ok(Cancel {
            id: input.id().to_string(),
            details: read_details(p),
            invoice_now: get_str(p, "invoice_now") == Some("true"),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup(t, &self.id)?;
        let sub = t.priced_subscription(key).expect("looked up above");
        if sub.status.is_ended() {
            return Err(StripeError::invalid(format!(
                "The subscription {} has already been canceled.",
                shorten(&self.id)
            ))
            .executed());
        }
        let at = t.now_for(sub.customer);
        let end = End {
            at,
            reason: CancellationReason::CancellationRequested,
            requested: true,
            invoice_now: self.invoice_now,
            comment: self.details.0.flatten(),
            feedback: self.details.1.flatten(),
        };
        t.end_subscription(key, end)
            .map_err(|e| priced_error(e, "", |i, f| format!("items[{i}][{f}]")))?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

// ---- list ----

/// Which statuses a list shows.
#[derive(Debug, Clone, Copy)]
enum Statuses {
    /// Every one but `canceled` (no `status` sent).
    NotCanceled,
    /// `all`.
    All,
    /// `ended`: `canceled` and `incomplete_expired`.
    Ended,
    /// One status.
    Is(PricedStatus),
}

impl Statuses {
    fn read(p: &Params) -> Statuses {
        let one = match get_str(p, "status") {
            None => return Statuses::NotCanceled,
            Some("all") => return Statuses::All,
            Some("ended") => return Statuses::Ended,
            Some("active") => PricedStatus::Active,
            Some("canceled") => PricedStatus::Canceled,
            Some("incomplete") => PricedStatus::Incomplete,
            Some("incomplete_expired") => PricedStatus::IncompleteExpired,
            Some("past_due") => PricedStatus::PastDue,
            Some("paused") => PricedStatus::Paused,
            Some("trialing") => PricedStatus::Trialing,
            Some(_) => PricedStatus::Unpaid,
        };
        Statuses::Is(one)
    }

    fn admits(self, s: PricedStatus) -> bool {
        match self {
            Statuses::NotCanceled => s != PricedStatus::Canceled,
            Statuses::All => true,
            Statuses::Ended => s.is_ended(),
            Statuses::Is(one) => s == one,
        }
    }
}

/// `GET /v1/subscriptions`: newest first; without `status`, those not canceled. Without
/// `customer` or `test_clock`, subscriptions of customers on test clocks are left out, as
/// Stripe's unfiltered lists leave out a clock's objects.
pub struct List {
    page: PageRequest,
    customer: Option<String>,
    test_clock: Option<String>,
    price: Option<String>,
    statuses: Statuses,
    collection_method: Option<CollectionMethod>,
    created: Option<TimeRange>,
    expand: Expand,
}

impl Operation for List {
    type Output = (Vec<Key>, bool, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, LIST, HINT)?;
        let expand = Expand::read(p, LIST_EXPANDABLE, Version::NEWEST)?;
        let text = |name| {
            get_str(p, name)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(List {
            page: PageRequest::read(p)?,
            customer: text("customer"),
            test_clock: text("test_clock"),
            price: text("price"),
            statuses: Statuses::read(p),
            collection_method: collection_of(p),
            created: TimeRange::read(p, "created"),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let t = &*t;
        let page = self.page.resolve("subscription", |id| {
            ids::key_of(id, ids::SUBSCRIPTION).filter(|k| t.priced_subscription(*k).is_some())
        })?;
        let customer = match &self.customer {
            Some(id) => Some(customers::ledger_owner(t, id)?),
            None => None,
        };
        let clock = match &self.test_clock {
            Some(id) => Some(
                ids::key_of(id, ids::TEST_CLOCK)
                    .filter(|k| t.test_clock(*k).is_some())
                    .ok_or_else(|| StripeError::no_such("test clock", id, "test_clock", 400))?,
            ),
            None => None,
        };
        let price = match &self.price {
            Some(id) => Some(price_key(t, id, "price")?),
            None => None,
        };
        // The narrowest group the filters name is walked; the other filters are checked along
        // the walk.
        let index = match (customer, clock, price, self.statuses) {
            (Some(c), ..) => t.priced_subscriptions_of(c),
            (None, Some(k), ..) => t.priced_subscriptions_on_clock(k),
            (None, None, Some(p), _) => t.priced_subscriptions_with_price(p),
            (None, None, None, Statuses::Is(s)) => t.priced_subscriptions_with_status(s),
            _ => t.priced_subscriptions_off_clocks(),
        };
        let unfiltered = customer.is_none() && clock.is_none();
        let keep = |k: Key| {
            t.priced_subscription(k).is_some_and(|s| {
                self.statuses.admits(s.status)
                    && customer.is_none_or(|c| s.customer == c)
                    && clock.is_none_or(|c| s.test_clock == Some(c))
                    && !(unfiltered && s.test_clock.is_some())
                    && price.is_none_or(|p| t.priced_subscriptions_with_price(p).contains(k))
                    && self
                        .collection_method
                        .is_none_or(|m| s.collection_method == m)
                    && self.created.is_none_or(|r| r.contains(s.created))
            })
        };
        let (keys, more) = list::paginate(|a, b| index.range((a, b)), &page, keep);
        Ok((keys, more, self.expand))
    }

    fn render((keys, more, expand): Self::Output, t: &Tenant) -> Body {
        let data: Vec<SubscriptionView> = keys
            .iter()
            .filter_map(|k| t.priced_subscription(*k))
            .map(|s| SubscriptionView::of(t, s))
            .collect();
        Body::of(
            &ListJson::new(data, more, URL),
            expand,
            8192 * (keys.len() + 1),
        )
    }
}

// ---- search ----

/// `GET /v1/subscriptions/search`: by `created`, `status` and `metadata`, on test clocks or not
/// (see [`search::Search`]).
pub struct Searched;

impl search::Searchable for Searched {
    const SCHEMA: search::Schema = search::Schema {
        resource: "subscriptions",
        fields: &[
            ("created", search::Kind::Numeric),
            ("status", search::Kind::Token),
        ],
        metadata: true,
    };
    const URL: &'static str = "/v1/subscriptions/search";
    const EXPANDABLE: &'static [&'static str] = &[
        "data.customer",
        "data.latest_invoice",
        "data.test_clock",
        "total_count",
    ];

    fn newest_first(t: &Tenant, before: Bound<Key>) -> impl Iterator<Item = Key> + '_ {
        t.priced_subscriptions_in((Bound::Unbounded, before))
            .rev()
            .map(|s| s.key)
    }

    fn field<'t>(t: &'t Tenant, key: Key, f: &search::Field) -> search::Found<'t> {
        use search::Found;
        let Some(s) = t.priced_subscription(key) else {
            return Found::Missing;
        };
        match f {
            search::Field::Named("created") => Found::Num(to_secs(s.created)),
            search::Field::Named("status") => Found::Str(status_name(s.status)),
            search::Field::Named(_) => Found::Missing,
            search::Field::Metadata(k) => s.metadata.get(k).map_or(Found::Missing, Found::Str),
        }
    }

    fn render(t: &Tenant, hits: search::Hits) -> Body {
        let data: Vec<SubscriptionView> = hits
            .keys
            .iter()
            .filter_map(|k| t.priced_subscription(*k))
            .map(|s| SubscriptionView::of(t, s))
            .collect();
        hits.body(data, Self::URL, 8192)
    }
}

// ---- items ----

const ITEM_CREATE: &[Field] = &[
    opt("billing_thresholds", Spec::Unsupported),
    opt("discounts", Spec::Unsupported),
    EXPAND,
    opt("metadata", Spec::Metadata),
    opt("payment_behavior", PAYMENT_BEHAVIOR),
    opt("plan", Spec::Unsupported),
    opt("price", Spec::Str(5000)),
    opt("price_data", Spec::Unsupported),
    opt("proration_behavior", PRORATION),
    opt("proration_date", Spec::Unsupported),
    opt("quantity", Spec::Int),
    req("subscription", Spec::Str(5000)),
    opt("tax_rates", Spec::Unsupported),
];

const ITEM_UPDATE: &[Field] = &[
    opt("billing_thresholds", Spec::Unsupported),
    opt("discounts", Spec::Unsupported),
    EXPAND,
    opt("metadata", Spec::Metadata),
    opt("off_session", Spec::Unsupported),
    opt("payment_behavior", PAYMENT_BEHAVIOR),
    opt("plan", Spec::Unsupported),
    opt("price", Spec::Str(5000)),
    opt("price_data", Spec::Unsupported),
    opt("proration_behavior", PRORATION),
    opt("proration_date", Spec::Unsupported),
    opt("quantity", Spec::Int),
    opt("tax_rates", Spec::Unsupported),
];

const ITEM_DELETE: &[Field] = &[
    // Taken and ignored, as in an update's items.
    opt("clear_usage", Spec::Bool),
    opt("proration_behavior", PRORATION),
    opt("proration_date", Spec::Unsupported),
];

/// What the item endpoints read alike: `quantity` (at least 0), whether prorations are turned
/// off, and the `payment_behavior` check.
fn item_common(p: &Params) -> StripeResult<(Option<u64>, bool)> {
    check_payment_behavior(p)?;
    let quantity = get_int(p, "quantity")
        .map(|q| in_range(q, 0, i64::MAX, "quantity").map(|q| q as u64))
        .transpose()?;
    Ok((quantity, get_str(p, "proration_behavior") == Some("none")))
}

/// The item named in the path, and its subscription (404 when there is none).
fn item_lookup(t: &Tenant, id: &str) -> StripeResult<(Key, Key)> {
    ids::key_of(id, ids::SUBSCRIPTION_ITEM)
        .and_then(|k| t.subscription_item(k))
        .map(|item| (item.key, item.subscription))
        .ok_or_else(|| StripeError::no_such("subscription item", id, "id", 404))
}

/// Reads one item change sent to an item endpoint with the rules of a subscription's update
/// ([`item_change`]; fields are named without `items[N]`, a removal by its `proration_behavior`),
/// refuses what Stripe would prorate unless `no_prorations` (an ended subscription is not
/// prorated), and applies it to subscription `sub`. `item` is the item the path names, if any.
fn change_item(
    t: &mut Tenant,
    sub: Key,
    item: Option<Key>,
    sent: SentChange,
    no_prorations: bool,
) -> StripeResult<()> {
    let (change, prorates) = item_change(
        t,
        sent,
        &|id| {
            item.and_then(|k| t.subscription_item(k))
                .ok_or_else(|| StripeError::no_such("subscription item", id, "id", 404))
        },
        &|field| match field {
            "deleted" => "proration_behavior".to_string(),
            field => field.to_string(),
        },
    )?;
    let ended = t
        .priced_subscription(sub)
        .is_some_and(|s| s.status.is_ended());
    if let Some((param, what)) = prorates.filter(|_| !ended && !no_prorations) {
        return Err(proration_refused(&param, what, "proration_behavior"));
    }
    change_items(t, sub, change)
}

/// Applies one item change to subscription `sub`, as `POST /v1/subscriptions/{id}` with that one
/// change would; the item endpoints name their fields without `items[N]`.
fn change_items(t: &mut Tenant, sub: Key, change: ItemChange) -> StripeResult<()> {
    let customer = t
        .priced_subscription(sub)
        .map(|s| ids::render(ids::CUSTOMER, s.customer))
        .unwrap_or_default();
    let update = PricedUpdate {
        items: vec![change],
        ..PricedUpdate::default()
    };
    t.update_priced_subscription(sub, update)
        .map_err(|e| match e {
            // The item endpoint has no `items` parameter to name.
            PricedError::NoItems => StripeError::invalid(
                "A subscription must keep at least one item. To end it, cancel it (DELETE /v1/subscriptions/{id}).",
            )
            .executed(),
            e => priced_error(e, &customer, |_, field| field.to_string()),
        })
}

/// The answer of an item endpoint: the item as `GET /v1/subscription_items/{id}` shows it.
fn respond_item(t: &Tenant, key: Key) -> Body {
    let item = t.subscription_item(key).expect("made or looked up above");
    Body::Json(super::op::pretty(&ItemView::of(t, item), 2048))
}

/// `POST /v1/subscription_items`: a new item of `subscription`, as adding `items[N][price]` to the
/// subscription does (a licensed price needs `proration_behavior=none`); the subscription gets
/// `customer.subscription.updated`.
pub struct CreateItem {
    subscription: String,
    price: String,
    quantity: Option<u64>,
    metadata: Option<MetadataUpdate>,
    no_prorations: bool,
}

impl Operation for CreateItem {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, ITEM_CREATE, HINT)?;
        Expand::read(p, &[], Version::NEWEST)?;
        let (quantity, no_prorations) = item_common(p)?;
        let price = get_str(p, "price")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| StripeError::missing_param("price"))?;
        Ok(CreateItem {
            subscription: get_str(p, "subscription").unwrap_or_default().to_string(),
            price: price.to_string(),
            quantity,
            metadata: get_metadata(p, "metadata"),
            no_prorations,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        let found = param_lookup(t, &self.subscription)?;
        let (sub, before) = (found.key, found.items.clone());
        let sent = SentChange::Add {
            price: self.price,
            quantity: self.quantity,
            metadata: self.metadata,
        };
        change_item(t, sub, None, sent, self.no_prorations)?;
        t.priced_subscription(sub)
            .and_then(|s| s.items.iter().copied().find(|k| !before.contains(k)))
            .ok_or_else(|| StripeError::invalid("The item could not be added.").executed())
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond_item(t, key)
    }
}

/// `POST /v1/subscription_items/{id}`: another price, quantity or metadata, as
/// `items[N][id]=…` on the subscription does (a change Stripe would prorate needs
/// `proration_behavior=none`).
pub struct UpdateItem {
    id: String,
    price: Option<String>,
    quantity: Option<u64>,
    metadata: Option<MetadataUpdate>,
    no_prorations: bool,
}

impl Operation for UpdateItem {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, ITEM_UPDATE, HINT)?;
        Expand::read(p, &[], Version::NEWEST)?;
        let (quantity, no_prorations) = item_common(p)?;
        Ok(UpdateItem {
            id: input.id().to_string(),
            price: get_str(p, "price")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            quantity,
            metadata: get_metadata(p, "metadata"),
            no_prorations,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        let (key, sub) = item_lookup(t, &self.id)?;
        let sent = SentChange::Change {
            id: self.id,
            price: self.price,
            quantity: self.quantity,
            metadata: self.metadata,
        };
        change_item(t, sub, Some(key), sent, self.no_prorations)?;
        Ok(key)
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond_item(t, key)
    }
}

/// `DELETE /v1/subscription_items/{id}`: the item leaves its subscription, as
/// `items[N][deleted]=true` does (a licensed one needs `proration_behavior=none`; the last one
/// cannot go: cancel the subscription instead).
pub struct DeleteItem {
    id: String,
    no_prorations: bool,
}

impl Operation for DeleteItem {
    type Output = String;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, ITEM_DELETE, HINT)?;
        Ok(DeleteItem {
            id: input.id().to_string(),
            no_prorations: get_str(p, "proration_behavior") == Some("none"),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<String> {
        let (key, sub) = item_lookup(t, &self.id)?;
        let sent = SentChange::Remove { id: self.id };
        change_item(t, sub, Some(key), sent, self.no_prorations)?;
        Ok(ids::render(ids::SUBSCRIPTION_ITEM, key))
    }

    fn render(id: String, _: &Tenant) -> Body {
        Body::Json(super::op::pretty(
            &super::op::Deleted::new(&id, "subscription_item"),
            128,
        ))
    }
}
