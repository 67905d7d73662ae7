//! Properties of the usage-billing cycle over random worlds, driven on the model directly (thousands
//! of steps a second): customers on the tenant clock and on test clocks, meters with every formula
//! and window, metered prices per unit and tiered, subscriptions, grants of every scope that become
//! effective, expire or are voided, usage and its cancellations, cancellations of subscriptions,
//! payments and voids of invoices, and clock moves crossing zero to three period boundaries. After
//! every step:
//!
//! - the credits the invoices' lines carry, less what voided invoices gave back, are exactly what
//!   the ledger's `Applied` and `InvoiceVoided` entries moved, invoice by invoice and in total, and
//!   exactly what the lots lost to invoices;
//! - no line carries more credit than its amount, a line that credits may not pay carries none, and
//!   every credit comes from a lot of the invoice's customer and currency whose scope covers the
//!   line and that could be spent when the invoice was finalized;
//! - nothing is billed twice and nothing is skipped: one cycle invoice per subscription and period
//!   end, the billed periods of each subscription follow one another without gap or overlap up to
//!   its current period, usage windows never overlap, and every draft whose `finalizes_at` has
//!   passed on its clock has been finalized;
//! - every index agrees with the objects (`Tenant::check_indexes`).

use crate::support;

use std::collections::{BTreeMap, HashMap, HashSet};

use credit_emulator::ids::Key;
use credit_emulator::model::{
    Applicability, BillingMode, BillingReason, CancellationReason, Category, CollectionMethod,
    Currency, Domain, End, EntryKind, EventTimeWindow, Formula, Interval, InvoiceStatus,
    LineSource, LotOrigin, Metadata, NewCustomer, NewItem, NewLot, NewMeter, NewMeterEvent,
    NewPrice, NewPricedSubscription, PricedUpdate, Profile, Recurring, Round, Scheme, ScopedPrice,
    Tenant, Tier, TiersMode, TransformQuantity, UsageType,
};
use credit_emulator::time::NANOS_PER_SEC;
use proptest::prelude::*;
use rust_decimal::Decimal;

const T0: i64 = support::T0 * NANOS_PER_SEC;
const S: i64 = NANOS_PER_SEC;
const HOUR: i64 = 3_600 * S;
const DAY: i64 = 24 * HOUR;

/// How long one step of a clock move is: the clock moves `steps` (0 to 2) of these and a part of
/// one more, so that it crosses 0 to 3 boundaries of the subscriptions billed at that interval (and
/// many more of those billed at a shorter one).
#[derive(Debug, Clone, Copy)]
enum Unit {
    Hour,
    Day,
    Week,
    Month,
}

impl Unit {
    fn length(self) -> i64 {
        match self {
            Unit::Hour => HOUR,
            Unit::Day => DAY,
            Unit::Week => 7 * DAY,
            // The shortest month: less than three of these never cross four month ends.
            Unit::Month => 28 * DAY,
        }
    }
}

/// A metered price of the world.
#[derive(Debug, Clone)]
struct PriceSpec {
    meter: usize,
    interval: Interval,
    scheme: Scheme,
    transform: Option<TransformQuantity>,
}

/// What a world starts with.
#[derive(Debug, Clone)]
struct WorldSpec {
    /// Invoice grace period, seconds.
    grace: i64,
    /// Per customer: the test clock it lives on (of two), and whether its payments are declined.
    customers: Vec<(Option<usize>, bool)>,
    /// Per meter: its formula and event time window.
    meters: Vec<(Formula, Option<EventTimeWindow>)>,
    prices: Vec<PriceSpec>,
    /// Subscriptions and grants made at the start ([`Op::Subscribe`], [`Op::Grant`]).
    start: Vec<Op>,
}

/// How a subscription is cancelled.
#[derive(Debug, Clone)]
enum Cancel {
    /// At once, at its customer's now, with or without a final invoice for the usage.
    Now { invoice_now: bool },
    /// At the end of the current period (or withdrawn).
    AtPeriodEnd(bool),
    /// At this many seconds from its customer's now.
    At(i64),
}

#[derive(Debug, Clone)]
enum Op {
    /// A subscription of the `customer`th customer to the `price`th metered price, with the
    /// licensed price of its interval (quantity 2) when `licensed`, charged automatically or sent.
    Subscribe {
        customer: usize,
        price: usize,
        licensed: bool,
        send_invoice: bool,
    },
    /// A grant for the `customer`th subscription's customer when `subscriber`, else for the
    /// `customer`th customer.
    Grant {
        customer: usize,
        subscriber: bool,
        amount: i64,
        eur: bool,
        /// Seconds from the customer's now.
        effective: Option<i64>,
        /// Seconds after it becomes effective.
        expires_after: Option<i64>,
        /// 0: metered; 1: the subscriber's metered price (else a price of the world); 2: a price
        /// no subscription has.
        scope: (u8, usize),
        priority: Option<i64>,
        promotional: bool,
    },
    /// Voids the `n`th lot (refused once an invoice spent from it).
    VoidGrant(usize),
    /// Expires the `n`th lot now.
    ExpireGrant(usize),
    /// Usage events for one customer and meter: those of the `target`th subscription (its first
    /// item's meter) when `subscriber`, else the `target`th customer and the `meter`th meter.
    Usage {
        target: usize,
        subscriber: bool,
        meter: usize,
        /// Each event's value, and how long before the customer's now it happened.
        events: Vec<(Decimal, Age)>,
    },
    /// The same events for every metered item of every subscription that has not ended.
    UsageAll(Vec<(Decimal, Age)>),
    /// Cancels the `n`th event sent (refused once its identifier is forgotten).
    CancelUsage(usize),
    /// Cancels the `n`th subscription.
    CancelSubscription(usize, Cancel),
    /// Pays the `n`th open invoice, out of band or by the customer's payment method.
    PayInvoice(usize, bool),
    /// Voids the `n`th open or uncollectible invoice that credits paid, or else of any.
    VoidInvoice(usize),
    /// Marks the `n`th open invoice uncollectible.
    UncollectibleInvoice(usize),
    /// Finalizes the `n`th draft before its time.
    FinalizeInvoice(usize),
    /// Deletes a customer, which cancels its subscriptions at once.
    DeleteCustomer(usize),
    /// Moves the tenant clock `steps` units and `part` thousandths of one more.
    TickTenant(Unit, u8, u16),
    /// Advances one of the test clocks likewise, as far as its subscriptions allow.
    AdvanceClock(usize, Unit, u8, u16),
    /// Moves the tenant clock and advances every test clock likewise.
    TickAll(Unit, u8, u16),
}

fn formula() -> impl Strategy<Value = Formula> {
    prop_oneof![
        Just(Formula::Sum),
        Just(Formula::Count),
        Just(Formula::Last)
    ]
}

fn window() -> impl Strategy<Value = Option<EventTimeWindow>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(EventTimeWindow::Hour)),
        1 => Just(Some(EventTimeWindow::Day)),
    ]
}

fn interval() -> impl Strategy<Value = Interval> {
    prop_oneof![
        1 => Just(Interval::Day),
        1 => Just(Interval::Week),
        3 => Just(Interval::Month),
    ]
}

/// Minor units with up to one decimal place.
fn amount() -> impl Strategy<Value = Decimal> {
    (0..3_000i64).prop_map(|n| Decimal::new(n, 1))
}

fn scheme() -> impl Strategy<Value = Scheme> {
    let tier = (
        1..40u64,
        prop::option::of(amount()),
        prop::option::of(amount()),
    );
    prop_oneof![
        amount().prop_map(|unit_amount| Scheme::PerUnit { unit_amount }),
        (
            any::<bool>(),
            prop::collection::vec(tier, 1..4),
            amount(),
            prop::option::of(amount()),
        )
            .prop_map(|(graduated, bounded, last_unit, last_flat)| {
                // Ascending bounds, the last tier unbounded.
                let mut up_to = 0;
                let mut tiers: Vec<Tier> = bounded
                    .into_iter()
                    .map(|(step, unit_amount, flat_amount)| {
                        up_to += step;
                        Tier {
                            up_to: Some(up_to),
                            unit_amount,
                            flat_amount,
                        }
                    })
                    .collect();
                tiers.push(Tier {
                    up_to: None,
                    unit_amount: Some(last_unit),
                    flat_amount: last_flat,
                });
                Scheme::Tiered {
                    mode: if graduated {
                        TiersMode::Graduated
                    } else {
                        TiersMode::Volume
                    },
                    tiers,
                }
            }),
    ]
}

fn subscribe() -> impl Strategy<Value = Op> {
    (
        0..5usize,
        any::<usize>(),
        any::<bool>(),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(customer, price, licensed, send_invoice)| Op::Subscribe {
            customer,
            price,
            licensed,
            send_invoice,
        })
}

fn grant() -> impl Strategy<Value = Op> {
    (
        (any::<usize>(), prop::bool::weighted(0.7)),
        1..5_000i64,
        prop::bool::weighted(0.1),
        prop::option::weighted(0.3, -DAY / S..40 * DAY / S),
        prop::option::weighted(0.4, HOUR / S..60 * DAY / S),
        (0..3u8, any::<usize>()),
        prop::option::of(0..3i64),
        any::<bool>(),
    )
        .prop_map(
            |(
                (customer, subscriber),
                amount,
                eur,
                effective,
                expires_after,
                scope,
                priority,
                promotional,
            )| {
                Op::Grant {
                    customer,
                    subscriber,
                    amount,
                    eur,
                    effective,
                    expires_after,
                    scope,
                    priority,
                    promotional,
                }
            },
        )
}

fn world_spec() -> impl Strategy<Value = WorldSpec> {
    let transform =
        prop::option::of(
            (1..10u64, any::<bool>()).prop_map(|(divide_by, up)| TransformQuantity {
                divide_by,
                round: if up { Round::Up } else { Round::Down },
            }),
        );
    let price = (any::<usize>(), interval(), scheme(), transform).prop_map(
        |(meter, interval, scheme, transform)| PriceSpec {
            meter,
            interval,
            scheme,
            transform,
        },
    );
    (
        prop_oneof![Just(0i64), Just(3_600), Just(86_400)],
        prop::collection::vec(
            (
                prop::option::weighted(0.5, 0..2usize),
                prop::bool::weighted(0.25),
            ),
            2..5,
        ),
        prop::collection::vec((formula(), window()), 1..4),
        prop::collection::vec(price, 1..5),
        prop::collection::vec(subscribe(), 1..5),
        prop::collection::vec(grant(), 0..5),
    )
        .prop_map(
            |(grace, customers, meters, prices, subscriptions, grants)| WorldSpec {
                grace,
                customers,
                meters,
                prices,
                start: subscriptions.into_iter().chain(grants).collect(),
            },
        )
}

fn unit() -> impl Strategy<Value = Unit> {
    prop_oneof![
        1 => Just(Unit::Hour),
        1 => Just(Unit::Day),
        1 => Just(Unit::Week),
        2 => Just(Unit::Month),
    ]
}

/// How long before its customer's now an event happened.
#[derive(Debug, Clone, Copy)]
enum Age {
    /// This many thousandths of the time since the subscription's current period started (or since
    /// the world began, for a customer's own events).
    InPeriod(u16),
    /// This many seconds, up to a little beyond the 35 days an event may be late.
    Secs(i64),
}

/// An event's value (negative ones included: a `sum` meter takes them) and age.
fn event() -> impl Strategy<Value = (Decimal, Age)> {
    (
        -50..5_000i64,
        0..3u32,
        prop_oneof![
            3 => (0..=1_000u16).prop_map(Age::InPeriod),
            1 => (0..36 * DAY / S).prop_map(Age::Secs),
        ],
    )
        .prop_map(|(v, scale, age)| (Decimal::new(v, scale), age))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => subscribe(),
        5 => grant(),
        1 => any::<usize>().prop_map(Op::VoidGrant),
        1 => any::<usize>().prop_map(Op::ExpireGrant),
        8 => (any::<usize>(), prop::bool::weighted(0.8), any::<usize>(), prop::collection::vec(event(), 1..6))
            .prop_map(|(target, subscriber, meter, events)| Op::Usage {
                target, subscriber, meter, events,
            }),
        6 => prop::collection::vec(event(), 1..4).prop_map(Op::UsageAll),
        1 => any::<usize>().prop_map(Op::CancelUsage),
        2 => (any::<usize>(), prop_oneof![
                any::<bool>().prop_map(|invoice_now| Cancel::Now { invoice_now }),
                any::<bool>().prop_map(Cancel::AtPeriodEnd),
                (1..60 * DAY / S).prop_map(Cancel::At),
            ])
            .prop_map(|(n, how)| Op::CancelSubscription(n, how)),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(n, oob)| Op::PayInvoice(n, oob)),
        3 => any::<usize>().prop_map(Op::VoidInvoice),
        1 => any::<usize>().prop_map(Op::UncollectibleInvoice),
        1 => any::<usize>().prop_map(Op::FinalizeInvoice),
        1 => (0..5usize).prop_map(Op::DeleteCustomer),
        4 => (unit(), 0..3u8, 0..1_000u16).prop_map(|(u, n, part)| Op::TickTenant(u, n, part)),
        4 => (0..2usize, unit(), 0..3u8, 0..1_000u16)
            .prop_map(|(c, u, n, part)| Op::AdvanceClock(c, u, n, part)),
        3 => (unit(), 0..3u8, 0..1_000u16).prop_map(|(u, n, part)| Op::TickAll(u, n, part)),
    ]
}

/// A world being driven, and the names its objects were made with.
struct World {
    t: Tenant,
    customers: Vec<Key>,
    clocks: Vec<Key>,
    meters: Vec<Key>,
    /// The metered prices, and one licensed price per interval.
    metered: Vec<Key>,
    licensed: Vec<(Interval, Key)>,
    /// Identifiers of the usage events sent so far, with their meter's event name.
    events: Vec<(String, String)>,
}

fn usd() -> Currency {
    Currency::parse("usd").expect("a currency")
}

/// The key of the `n`th of `keys` (modulo how many there are), if there are any.
fn nth(keys: impl Iterator<Item = Key>, n: usize) -> Option<Key> {
    let keys: Vec<Key> = keys.collect();
    (!keys.is_empty()).then(|| keys[n % keys.len()])
}

/// The id a price scope names a catalog price by.
fn price_id(key: Key) -> String {
    format!("price_{key}")
}

impl World {
    fn new(spec: &WorldSpec, seed: u64) -> World {
        let mut t = Tenant::new("sk_test_cycle_props", Some(seed));
        t.freeze_clock(T0).expect("a fresh world starts anywhere");
        t.set_invoice_grace(spec.grace * S);
        let clocks = vec![t.create_test_clock(T0, None), t.create_test_clock(T0, None)];
        let customers = spec
            .customers
            .iter()
            .map(|&(clock, declines)| {
                let mut profile = Profile::default();
                if declines {
                    profile.invoice_settings.default_payment_method =
                        Some("pm_card_chargeDeclined".into());
                }
                let new = NewCustomer {
                    test_clock: clock.map(|c| clocks[c]),
                    ..NewCustomer::default()
                };
                t.create_customer_with(new, profile)
            })
            .collect();
        let meters: Vec<Key> = spec
            .meters
            .iter()
            .enumerate()
            .map(|(i, &(formula, event_time_window))| {
                t.create_meter(NewMeter {
                    display_name: format!("Meter {i}"),
                    event_name: format!("event_{i}"),
                    formula,
                    customer_key: "stripe_customer_id".into(),
                    value_key: "value".into(),
                    event_time_window,
                })
            })
            .collect();
        let product = t.create_product("Usage".into(), Metadata::new());
        let price = |t: &mut Tenant, recurring: Recurring, scheme: Scheme, transform| {
            t.create_price(NewPrice {
                product,
                active: true,
                currency: usd(),
                recurring: Some(recurring),
                scheme,
                transform_quantity: transform,
                lookup_key: None,
                nickname: None,
                metadata: Metadata::new(),
            })
        };
        let metered = spec
            .prices
            .iter()
            .map(|p| {
                let recurring = Recurring {
                    interval: p.interval,
                    interval_count: 1,
                    usage_type: UsageType::Metered,
                    meter: Some(meters[p.meter % meters.len()]),
                };
                price(&mut t, recurring, p.scheme.clone(), p.transform)
            })
            .collect();
        let licensed = [Interval::Day, Interval::Week, Interval::Month]
            .into_iter()
            .map(|interval| {
                let recurring = Recurring {
                    interval,
                    interval_count: 1,
                    usage_type: UsageType::Licensed,
                    meter: None,
                };
                let scheme = Scheme::PerUnit {
                    unit_amount: Decimal::from(700),
                };
                (interval, price(&mut t, recurring, scheme, None))
            })
            .collect();
        let mut world = World {
            t,
            customers,
            clocks,
            meters,
            metered,
            licensed,
            events: Vec::new(),
        };
        for op in &spec.start {
            world.apply(op);
        }
        world
    }

    /// Sends `events` for customer `c` to `meter`, ages in a period counted from `since`.
    fn report(&mut self, c: Key, meter: Key, since: i64, events: &[(Decimal, Age)]) {
        let t = &mut self.t;
        for &(value, age) in events {
            let now = t.now_for(c);
            let ago = match age {
                Age::InPeriod(permille) => (now - since).max(0) / 1_000 * i64::from(permille),
                Age::Secs(secs) => secs * S,
            };
            let identifier = format!("event-{}", self.events.len());
            let recorded = t.record_meter_event(NewMeterEvent {
                meter,
                customer: c,
                value,
                timestamp: Some(now - ago),
                identifier: Some(&identifier),
            });
            if recorded.is_ok() {
                let name = t.meter(meter).expect("made").event_name.clone();
                self.events.push((name, identifier));
            }
        }
    }

    fn customer(&self, n: usize) -> Key {
        self.customers[n % self.customers.len()]
    }

    /// Applies one step as a facade would (it checks what the model trusts it to); refusals are
    /// part of the game and change nothing.
    fn apply(&mut self, op: &Op) {
        let t = &mut self.t;
        match op {
            Op::Subscribe {
                customer,
                price,
                licensed,
                send_invoice,
            } => {
                let c = self.customers[*customer % self.customers.len()];
                let price = self.metered[*price % self.metered.len()];
                let interval = t
                    .price(price)
                    .and_then(|p| p.recurring)
                    .map(|r| r.interval)
                    .expect("a recurring price");
                let mut items = vec![NewItem {
                    price,
                    ..NewItem::default()
                }];
                if *licensed {
                    let (_, l) = self
                        .licensed
                        .iter()
                        .find(|(i, _)| *i == interval)
                        .expect("one per interval");
                    items.push(NewItem {
                        price: *l,
                        quantity: Some(2),
                        ..NewItem::default()
                    });
                }
                let (collection_method, days_until_due) = if *send_invoice {
                    (CollectionMethod::SendInvoice, Some(30))
                } else {
                    (CollectionMethod::ChargeAutomatically, None)
                };
                let _ = t.create_priced_subscription(NewPricedSubscription {
                    customer: c,
                    items,
                    collection_method,
                    days_until_due,
                    billing_mode: BillingMode::Flexible,
                    billing_cycle_anchor: None,
                    cancel_at_period_end: false,
                    cancel_at: None,
                    metadata: Metadata::new(),
                    description: None,
                });
            }
            Op::Grant {
                customer,
                subscriber,
                amount,
                eur,
                effective,
                expires_after,
                scope: (scope, price),
                priority,
                promotional,
            } => {
                // Mostly for a subscriber, naming a price it is billed for.
                let subscribed = nth(subscriptions(t, &self.customers).into_iter(), *customer)
                    .filter(|_| *subscriber)
                    .and_then(|sub| {
                        let s = t.priced_subscription(sub)?;
                        let item = t.subscription_item(*s.items.first()?)?;
                        Some((s.customer, item.price))
                    });
                let (c, price) = subscribed.unwrap_or((
                    self.customers[*customer % self.customers.len()],
                    self.metered[*price % self.metered.len()],
                ));
                if t.live_customer(c).is_none() {
                    return;
                }
                let now = t.now_for(c);
                let effective_at = effective.map(|o| now + o * S);
                let start = effective_at.unwrap_or(now);
                let applicability = match scope {
                    0 => Applicability::Metered,
                    1 => {
                        let key = price;
                        Applicability::Prices(
                            vec![ScopedPrice {
                                id: price_id(key),
                                key: Some(key),
                            }]
                            .into(),
                        )
                    }
                    _ => Applicability::Prices(vec![ScopedPrice::from("price_elsewhere")].into()),
                };
                t.create_lot(NewLot {
                    customer: c,
                    currency: Currency::parse(if *eur { "eur" } else { "usd" })
                        .expect("a currency"),
                    amount: Decimal::from(*amount),
                    category: if *promotional {
                        Category::Promotional
                    } else {
                        Category::Paid
                    },
                    applicability,
                    priority: *priority,
                    name: None,
                    metadata: Metadata::new(),
                    effective_at,
                    expires_at: expires_after.map(|d| start + d * S),
                    origin: LotOrigin::Direct,
                });
            }
            Op::VoidGrant(n) => {
                if let Some(k) = nth(t.lots_in(..).map(|l| l.key), *n) {
                    let _ = t.void_lot(k);
                }
            }
            Op::ExpireGrant(n) => {
                if let Some(k) = nth(t.lots_in(..).map(|l| l.key), *n) {
                    let _ = t.expire_lot(k);
                }
            }
            Op::Usage {
                target,
                subscriber,
                meter,
                events,
            } => {
                let of_subscription = nth(subscriptions(t, &self.customers).into_iter(), *target)
                    .filter(|_| *subscriber)
                    .and_then(|sub| {
                        let s = t.priced_subscription(sub)?;
                        let item = t.subscription_item(*s.items.first()?)?;
                        Some((
                            s.customer,
                            t.price(item.price)?.meter()?,
                            s.current_period_start,
                        ))
                    });
                let (c, meter, since) = of_subscription.unwrap_or((
                    self.customers[*target % self.customers.len()],
                    self.meters[*meter % self.meters.len()],
                    T0,
                ));
                self.report(c, meter, since, events);
            }
            Op::UsageAll(events) => {
                let mut targets = Vec::new();
                for sub in subscriptions(t, &self.customers) {
                    let s = t.priced_subscription(sub).expect("listed");
                    if s.status.is_ended() {
                        continue;
                    }
                    for item in t.priced_subscription_items(sub) {
                        if let Some(meter) = t.price(item.price).and_then(|p| p.meter()) {
                            targets.push((s.customer, meter, s.current_period_start));
                        }
                    }
                }
                for (c, meter, since) in targets {
                    self.report(c, meter, since, events);
                }
            }
            Op::CancelUsage(n) => {
                if !self.events.is_empty() {
                    let (name, identifier) = &self.events[n % self.events.len()];
                    let _ = t.cancel_meter_event(name, identifier);
                }
            }
            Op::CancelSubscription(n, how) => {
                let Some(sub) = nth(subscriptions(t, &self.customers).into_iter(), *n) else {
                    return;
                };
                let customer = t.priced_subscription(sub).expect("listed").customer;
                let now = t.now_for(customer);
                let _ = match how {
                    Cancel::Now { invoice_now } => t.end_subscription(
                        sub,
                        End {
                            at: now,
                            reason: CancellationReason::CancellationRequested,
                            requested: true,
                            invoice_now: *invoice_now,
                            comment: None,
                            feedback: None,
                        },
                    ),
                    Cancel::AtPeriodEnd(on) => t.update_priced_subscription(
                        sub,
                        PricedUpdate {
                            cancel_at_period_end: Some(*on),
                            ..PricedUpdate::default()
                        },
                    ),
                    Cancel::At(secs) => t.update_priced_subscription(
                        sub,
                        PricedUpdate {
                            cancel_at: Some(Some(now + secs * S)),
                            ..PricedUpdate::default()
                        },
                    ),
                };
            }
            Op::PayInvoice(n, out_of_band) => {
                if let Some(k) = nth(invoices(t, &[InvoiceStatus::Open]), *n) {
                    let _ = t.pay_invoice(k, *out_of_band, None);
                }
            }
            Op::VoidInvoice(n) => {
                // One that credits paid when there is one: its credits go back to their lots.
                let voidable = [InvoiceStatus::Open, InvoiceStatus::Uncollectible];
                let credited = invoices(t, &voidable)
                    .filter(|k| t.invoice(*k).is_some_and(|i| i.credited() > 0));
                if let Some(k) = nth(credited, *n).or_else(|| nth(invoices(t, &voidable), *n)) {
                    let _ = t.void_invoice(k);
                }
            }
            Op::UncollectibleInvoice(n) => {
                if let Some(k) = nth(invoices(t, &[InvoiceStatus::Open]), *n) {
                    let _ = t.mark_invoice_uncollectible(k);
                }
            }
            Op::FinalizeInvoice(n) => {
                if let Some(k) = nth(invoices(t, &[InvoiceStatus::Draft]), *n) {
                    let _ = t.finalize_invoice(k);
                }
            }
            Op::DeleteCustomer(n) => {
                let c = self.customer(*n);
                self.t.delete_customer(c);
            }
            Op::TickTenant(unit, steps, part) => {
                let to = t.tenant_now() + by(*unit, *steps, *part);
                t.freeze_clock(to).expect("forward is always allowed");
            }
            Op::AdvanceClock(n, unit, steps, part) => {
                advance(
                    t,
                    self.clocks[n % self.clocks.len()],
                    by(*unit, *steps, *part),
                );
            }
            Op::TickAll(unit, steps, part) => {
                let step = by(*unit, *steps, *part);
                let to = t.tenant_now() + step;
                t.freeze_clock(to).expect("forward is always allowed");
                for &clock in &self.clocks {
                    advance(t, clock, step);
                }
            }
        }
    }
}

/// Advances test clock `clock` by `step`, or as far as its subscriptions allow in one advance.
fn advance(t: &mut Tenant, clock: Key, step: i64) {
    let from = t.test_clock(clock).expect("never deleted").frozen_time;
    let mut to = from + step;
    if let Some(limit) = t.clock_advance_limit(clock) {
        to = to.min(limit);
    }
    if to > from {
        t.advance_test_clock(clock, to)
            .expect("forward is always allowed");
    }
}

/// `steps` units and `part` thousandths of one more.
fn by(unit: Unit, steps: u8, part: u16) -> i64 {
    let len = unit.length();
    i64::from(steps) * len + len / 1_000 * i64::from(part)
}

/// The invoices in one of `statuses`, oldest first.
fn invoices<'a>(t: &'a Tenant, statuses: &'a [InvoiceStatus]) -> impl Iterator<Item = Key> + 'a {
    t.invoices_in(..)
        .filter(|i| statuses.contains(&i.status))
        .map(|i| i.key)
}

/// Every subscription of `customers`, in creation order.
fn subscriptions(t: &Tenant, customers: &[Key]) -> Vec<Key> {
    let mut all: Vec<Key> = customers
        .iter()
        .flat_map(|&c| t.priced_subscriptions_of(c))
        .collect();
    all.sort_unstable();
    all
}

/// The domain an invoice's clock names.
fn domain_of_invoice(test_clock: Option<Key>) -> Domain {
    test_clock.map_or(Domain::Tenant, Domain::Clock)
}

/// Every invariant of the billing cycle, checked after each step.
fn check(t: &Tenant, customers: &[Key]) -> Result<(), TestCaseError> {
    if let Err(why) = t.check_indexes() {
        prop_assert!(false, "indexes disagree: {}", why);
    }

    // What the ledger says invoices did, per invoice and in total.
    let mut applied: HashMap<Key, Decimal> = HashMap::new();
    let mut reinstated: HashMap<Key, Decimal> = HashMap::new();
    let mut by_kind: HashMap<EntryKind, Decimal> = HashMap::new();
    for e in t.entries_in(..) {
        *by_kind.entry(e.kind).or_default() += e.amount;
        let Some((invoice, _)) = e.invoice else {
            continue;
        };
        match e.kind {
            EntryKind::Applied => *applied.entry(invoice).or_default() += e.amount,
            EntryKind::InvoiceVoided => *reinstated.entry(invoice).or_default() += e.amount,
            other => prop_assert!(false, "{:?} entry names invoice {}", other, invoice),
        }
    }
    let kind = |k: EntryKind| by_kind.get(&k).copied().unwrap_or_default();

    // What the invoices say they were credited.
    let mut credited = Decimal::ZERO;
    let mut given_back = Decimal::ZERO;
    for inv in t.invoices_in(..) {
        let mut on_invoice = Decimal::ZERO;
        for line in &inv.lines {
            let on_line: i64 = line.credits.iter().map(|c| c.1).sum();
            on_invoice += Decimal::from(on_line);
            prop_assert!(
                on_line <= line.amount.max(0),
                "line {} of invoice {} credited {} for {}",
                line.key,
                inv.key,
                on_line,
                line.amount
            );
            if let LineSource::SubscriptionItem { .. } = line.source {
                // Billing credits pay metered prices that have a meter, nothing else.
                prop_assert_eq!(line.creditable, line.usage.is_some());
            }
            if !line.creditable {
                prop_assert!(line.credits.is_empty(), "non-creditable line credited");
            }
            for &(entry, amount) in &line.credits {
                prop_assert!(amount > 0, "an empty credit on invoice {}", inv.key);
                let e = t.entry(entry);
                prop_assert!(e.is_some(), "credit {} has no entry", entry);
                let e = e.expect("checked");
                prop_assert_eq!(e.kind, EntryKind::Applied);
                prop_assert_eq!(e.invoice, Some((inv.key, line.key)));
                prop_assert_eq!(e.amount, Decimal::from(amount));
                let lot = t.lot(e.lot).expect("an entry's lot exists");
                prop_assert_eq!(lot.customer, inv.customer);
                prop_assert_eq!(lot.currency, inv.currency);
                prop_assert!(
                    lot.applicability
                        .covers(line.price.as_deref(), line.price_key),
                    "lot {} does not cover line {}",
                    lot.key,
                    line.key
                );
                // Spendable when the invoice was finalized: effective by the end of the billed
                // period, neither expired nor voided by then. (Expiring a lot by hand dates its
                // expiry at that instant, which may be the instant of the finalization, after it;
                // a lot that has paid an invoice cannot be voided.)
                let finalized = inv.finalized_at.expect("only finalized invoices spend");
                prop_assert!(lot.effective_at <= inv.period_end);
                prop_assert!(lot.expires_at.is_none_or(|at| at >= finalized));
                prop_assert!(lot.voided_at.is_none());
            }
        }
        credited += on_invoice;
        let from_ledger = applied.get(&inv.key).copied().unwrap_or_default();
        prop_assert_eq!(
            on_invoice,
            from_ledger,
            "invoice {} credited, against its Applied entries",
            inv.key
        );
        let back = reinstated.get(&inv.key).copied().unwrap_or_default();
        match inv.status {
            InvoiceStatus::Void => {
                prop_assert_eq!(back, on_invoice, "voided invoice {} gave back", inv.key);
                given_back += on_invoice;
            }
            InvoiceStatus::Draft => {
                prop_assert_eq!(on_invoice, Decimal::ZERO, "draft {} credited", inv.key);
                prop_assert_eq!(back, Decimal::ZERO);
            }
            _ => prop_assert_eq!(back, Decimal::ZERO, "invoice {} gave back", inv.key),
        }
    }
    // Credits applied, less what voids gave back, are the ledger's debits for invoices…
    prop_assert_eq!(
        credited - given_back,
        kind(EntryKind::Applied) - kind(EntryKind::InvoiceVoided),
        "credited less given back, against the ledger"
    );
    // …and exactly what the lots lost to invoices: what remains is what was granted, less what
    // expired or was voided, less what invoices kept.
    let remaining: Decimal = t.lots_in(..).map(|l| l.remaining).sum();
    prop_assert_eq!(
        remaining,
        kind(EntryKind::Granted)
            - kind(EntryKind::Expired)
            - kind(EntryKind::Voided)
            - (credited - given_back),
        "what the lots hold"
    );
    for lot in t.lots_in(..) {
        prop_assert!(lot.remaining >= Decimal::ZERO, "negative lot {:?}", lot);
    }

    // Drafts finalize when their time comes, on their own clock; nothing else waits.
    for inv in t.invoices_in(..) {
        let now = t.now_in(domain_of_invoice(inv.test_clock));
        match (inv.status, inv.finalizes_at) {
            (InvoiceStatus::Draft, Some(at)) => prop_assert!(
                at > now,
                "draft {} due at {} still a draft at {}",
                inv.key,
                at,
                now
            ),
            (InvoiceStatus::Draft, None) => {}
            (_, at) => {
                prop_assert_eq!(at, None, "finalized invoice {} still scheduled", inv.key);
                prop_assert!(inv.finalized_at.is_some_and(|f| f <= now));
            }
        }
    }

    // Nothing is billed twice, nothing is skipped.
    let mut cycles: HashSet<(Key, i64)> = HashSet::new();
    let mut firsts: HashSet<Key> = HashSet::new();
    let mut endings: HashSet<Key> = HashSet::new();
    let mut billed: BTreeMap<Key, Vec<(i64, i64)>> = BTreeMap::new();
    let mut windows: HashMap<(Key, Key), Vec<(i64, i64)>> = HashMap::new();
    for inv in t.invoices_in(..) {
        let Some(sub) = inv.subscription else {
            continue;
        };
        match inv.billing_reason {
            BillingReason::SubscriptionCycle => {
                prop_assert!(
                    cycles.insert((sub, inv.period_end)),
                    "two cycle invoices for subscription {} at {}",
                    sub,
                    inv.period_end
                );
                billed
                    .entry(sub)
                    .or_default()
                    .push((inv.period_start, inv.period_end));
            }
            BillingReason::SubscriptionCreate => {
                prop_assert!(firsts.insert(sub), "two first invoices for {}", sub);
            }
            BillingReason::SubscriptionUpdate => {
                prop_assert!(endings.insert(sub), "two final invoices for {}", sub);
                billed
                    .entry(sub)
                    .or_default()
                    .push((inv.period_start, inv.period_end));
            }
            other => prop_assert!(false, "a subscription's invoice for {:?}", other),
        }
        for line in &inv.lines {
            if let (Some(usage), LineSource::SubscriptionItem { item, .. }) =
                (line.usage, line.source)
            {
                windows.entry((sub, item)).or_default().push(usage.window);
            }
        }
    }
    for ((sub, item), mut w) in windows {
        w.sort_unstable();
        for pair in w.windows(2) {
            prop_assert!(
                pair[0].1 <= pair[1].0,
                "usage of item {} of {} billed twice: {:?}",
                item,
                sub,
                pair
            );
        }
    }
    for key in subscriptions(t, customers) {
        let s = t.priced_subscription(key).expect("listed");
        prop_assert!(firsts.contains(&s.key), "no first invoice for {}", s.key);
        let now = t.now_for(s.customer);
        let mut periods = billed.remove(&s.key).unwrap_or_default();
        periods.sort_unstable();
        // The billed periods follow one another from the start.
        let mut until = s.start_date;
        for (from, to) in periods {
            prop_assert_eq!(from, until, "a gap or an overlap in what {} billed", s.key);
            until = to;
        }
        if s.status.is_ended() {
            let ended = s.ended_at.expect("an ended subscription has ended");
            prop_assert!(ended <= now);
            // Billed up to its end, or (cancelled at once without a final invoice) up to the
            // start of the period it ended in.
            prop_assert!(
                until == ended || until == s.current_period_start,
                "{} ended at {} billed until {}",
                s.key,
                ended,
                until
            );
        } else {
            // Every period that ended was billed, and the next end is still to come.
            prop_assert_eq!(until, s.current_period_start);
            prop_assert!(
                s.current_period_end > now,
                "{} missed its period end",
                s.key
            );
            if let Some(end) = t.subscription_end_due(s.key) {
                prop_assert!(end > now, "{} missed its cancellation", s.key);
            }
        }
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES raises the count for a longer run.
    #![proptest_config(support::fuzz::config(96))]

    #[test]
    fn billing_cycle_invariants(
        spec in world_spec(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut w = World::new(&spec, seed);
        check(&w.t, &w.customers)?;
        for op in &ops {
            w.apply(op);
            // What a request does first: post what is due on the tenant clock.
            w.t.catch_up();
            check(&w.t, &w.customers)?;
        }
    }
}
