//! Priced subscriptions: a customer billed every period for a list of items, each a recurring
//! [`Price`] (licensed: a quantity, billed in advance; metered: what a meter aggregated, billed in
//! arrears). This is Stripe's subscription; the native API's plan subscription, which carries
//! grant rules and no prices, is [`super::Subscription`] in `subscriptions.rs`.
//!
//! **Periods.** Every item of a subscription shares its interval (all recurring prices of one
//! subscription have the same `interval` and `interval_count`, and one currency), so every item
//! has the subscription's current period `[current_period_start, current_period_end)`. Boundaries
//! come from the billing cycle anchor with [`super::periods::boundary`]: days and weeks are exact,
//! months and years keep the anchor's day of month, clamped to shorter months (an anchor on Jan 31
//! bills on Feb 28, then Mar 31), and keep the anchor's time of day to the second. A subscription
//! created with a future anchor starts with a short first period `[start_date, anchor)`.
//!
//! **Nothing here moves on its own.** Periods do not roll and scheduled cancellations
//! (`cancel_at`, `cancel_at_period_end`) are not carried out by this module: the billing cycle
//! engine does that, at the instants [`Tenant::subscription_period`] and
//! [`Tenant::subscription_end_due`] name, with [`Tenant::advance_subscription_period`] and
//! [`Tenant::end_subscription`]; it records the invoices it makes with
//! [`Tenant::set_subscription_latest_invoice`] and payment outcomes with
//! [`Tenant::set_subscription_status`].
//!
//! **Lists.** Subscriptions are grouped by customer, by test clock (and those on no clock), by
//! price and by status, each group a [`KeyIndex`] in creation order for paging.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::periods::{boundary, period_containing, Period};
use super::{CollectionMethod, Currency, Interval, KeyIndex, Metadata, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// Most items one subscription may have.
pub const MAX_ITEMS: usize = 20;
/// Most subscriptions one customer may have that have not ended.
pub const MAX_OPEN_PER_CUSTOMER: usize = 500;
/// Most subscriptions that have not ended one customer on a test clock may have.
pub const MAX_OPEN_ON_CLOCK: usize = 3;

/// Where a subscription stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PricedStatus {
    /// Its first payment has not succeeded yet.
    Incomplete,
    /// Its first payment never succeeded; it is over.
    IncompleteExpired,
    /// In a trial.
    Trialing,
    /// Running.
    Active,
    /// A renewal payment failed; still running.
    PastDue,
    /// Payments failed past retrying; still running.
    Unpaid,
    /// Collection paused.
    Paused,
    /// Ended.
    Canceled,
}

impl PricedStatus {
    /// Whether the subscription is over (it counts towards no limit and changes no more, except
    /// its metadata and cancellation details).
    pub fn is_ended(self) -> bool {
        matches!(
            self,
            PricedStatus::Canceled | PricedStatus::IncompleteExpired
        )
    }
}

/// How changes within a period are billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingMode {
    /// The older rules.
    Classic,
    /// The newer rules (the default).
    Flexible,
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    /// Someone asked for it.
    CancellationRequested,
    /// Payments failed.
    PaymentFailed,
    /// A payment was disputed.
    PaymentDisputed,
}

/// The customer's own reason for cancelling, as they chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationFeedback {
    /// Service was poor.
    CustomerService,
    /// Quality was poor.
    LowQuality,
    /// Something was missing.
    MissingFeatures,
    /// Something else.
    Other,
    /// Went elsewhere.
    SwitchedService,
    /// Too hard to use.
    TooComplex,
    /// Too costly.
    TooExpensive,
    /// Not used.
    Unused,
}

/// Why a subscription was (or will be) cancelled; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancellationDetails {
    /// Free text.
    pub comment: Option<String>,
    /// The customer's reason.
    pub feedback: Option<CancellationFeedback>,
    /// What caused it.
    pub reason: Option<CancellationReason>,
}

/// A priced subscription.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricedSubscription {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Who pays.
    #[serde(with = "crate::ids::text")]
    pub customer: Key,
    /// The customer's test clock when the subscription was made. A customer with subscriptions
    /// cannot move to a clock, so this never changes.
    #[serde(with = "crate::ids::text::opt")]
    pub test_clock: Option<Key>,
    /// Where it stands.
    pub status: PricedStatus,
    /// How its invoices are paid.
    pub collection_method: CollectionMethod,
    /// Days to pay a sent invoice (only with [`CollectionMethod::SendInvoice`]).
    pub days_until_due: Option<u32>,
    /// How changes within a period are billed.
    pub billing_mode: BillingMode,
    /// The instant the cycle's boundaries are counted from.
    pub billing_cycle_anchor: Nanos,
    /// The currency of every item's price.
    pub currency: Currency,
    /// The interval of every item's price.
    pub interval: Interval,
    /// Intervals per period.
    pub interval_count: u32,
    /// Whether it ends when the current period does.
    pub cancel_at_period_end: bool,
    /// When it is to end, if that was set.
    pub cancel_at: Option<Nanos>,
    /// When its cancellation was asked for (it may end later).
    pub canceled_at: Option<Nanos>,
    /// When it ended.
    pub ended_at: Option<Nanos>,
    /// Why it was cancelled.
    pub cancellation_details: CancellationDetails,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// Free text.
    pub description: Option<String>,
    /// Creation time (the customer's clock).
    pub created: Nanos,
    /// When it started (its creation).
    pub start_date: Nanos,
    /// The latest invoice the billing side made for it.
    #[serde(with = "crate::ids::text::opt")]
    pub latest_invoice: Option<Key>,
    /// Start of the current period.
    pub current_period_start: Nanos,
    /// End of the current period (exclusive).
    pub current_period_end: Nanos,
    /// Its items, in the order they were added.
    #[serde(with = "crate::ids::text::list")]
    pub items: Vec<Key>,
}

/// One item of a subscription: a price, and for a licensed price a quantity.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionItem {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Whose item it is.
    #[serde(with = "crate::ids::text")]
    pub subscription: Key,
    /// What it bills.
    #[serde(with = "crate::ids::text")]
    pub price: Key,
    /// Units of a licensed price; `None` for a metered one (usage decides).
    pub quantity: Option<u64>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// Creation time (the customer's clock).
    pub created: Nanos,
    /// Start of the item's current period (the subscription's).
    pub current_period_start: Nanos,
    /// End of the item's current period (the subscription's).
    pub current_period_end: Nanos,
}

/// A new item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewItem {
    /// The price.
    pub price: Key,
    /// As sent: refused for a metered price, 1 by default for a licensed one.
    pub quantity: Option<u64>,
    /// Key–value metadata.
    pub metadata: Metadata,
}

/// What a new subscription is made of; the facade has checked the shapes, the model checks the
/// rest (the customer, the prices, their agreement, the anchor, the limits).
#[derive(Debug, Clone)]
pub struct NewPricedSubscription {
    /// The customer, live.
    pub customer: Key,
    /// At least one item.
    pub items: Vec<NewItem>,
    /// How its invoices are paid.
    pub collection_method: CollectionMethod,
    /// With [`CollectionMethod::SendInvoice`] only.
    pub days_until_due: Option<u32>,
    /// How changes within a period are billed.
    pub billing_mode: BillingMode,
    /// A future instant, at most one period away; `None` anchors the cycle at creation.
    pub billing_cycle_anchor: Option<Nanos>,
    /// See [`PricedSubscription`].
    pub cancel_at_period_end: bool,
    /// A future instant at which it is to end.
    pub cancel_at: Option<Nanos>,
    /// See [`PricedSubscription`].
    pub metadata: Metadata,
    /// See [`PricedSubscription`].
    pub description: Option<String>,
}

/// One change to a subscription's items.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemChange {
    /// A new item.
    Add(NewItem),
    /// An existing item changes; what is `None` stays.
    Update {
        /// The item.
        item: Key,
        /// Another price.
        price: Option<Key>,
        /// Another quantity (refused for a metered price).
        quantity: Option<u64>,
        /// The item's whole metadata, replaced.
        metadata: Option<Metadata>,
    },
    /// An item goes away (it is forgotten: a later retrieve does not find it).
    Remove(Key),
}

/// An item as a change would leave it: its key if it exists already, its price, its quantity
/// (`None` for a metered price) and its metadata.
pub(super) type PlannedItem = (Option<Key>, Key, Option<u64>, Metadata);

/// What an update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PricedUpdate {
    /// Item changes, in the order sent (an error names the change's place).
    pub items: Vec<ItemChange>,
    /// The whole metadata, replaced.
    pub metadata: Option<Metadata>,
    /// Set or cleared.
    pub description: Option<Option<String>>,
    /// Set or cleared.
    pub cancel_at_period_end: Option<bool>,
    /// Set (a future instant) or cleared.
    pub cancel_at: Option<Option<Nanos>>,
    /// Set or cleared.
    pub cancellation_comment: Option<Option<String>>,
    /// Set or cleared.
    pub cancellation_feedback: Option<Option<CancellationFeedback>>,
    /// Another collection method.
    pub collection_method: Option<CollectionMethod>,
    /// Set or cleared.
    pub days_until_due: Option<Option<u32>>,
}

/// How a subscription ends ([`Tenant::end_subscription`]).
#[derive(Debug, Clone, PartialEq)]
pub struct End {
    /// The instant it ends.
    pub at: Nanos,
    /// Why.
    pub reason: CancellationReason,
    /// Whether this is the cancellation request itself (its instant becomes `canceled_at`, and a
    /// cancellation scheduled earlier is withdrawn), or a cancellation asked for earlier being
    /// carried out (`canceled_at` stays the request's, `cancel_at` and `cancel_at_period_end`
    /// say how it was asked for).
    pub requested: bool,
    /// Whether a final invoice is to bill what the period has not billed yet (see
    /// `Tenant::invoice_on_end`).
    pub invoice_now: bool,
    /// Set when given.
    pub comment: Option<String>,
    /// Set when given.
    pub feedback: Option<CancellationFeedback>,
}

/// What is wrong with one item of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemProblem {
    /// No price has this key.
    NoSuchPrice,
    /// The price cannot be used for new subscriptions.
    InactivePrice,
    /// A one-time price.
    NotRecurring,
    /// A quantity for a metered price.
    QuantityOnMetered,
    /// The price is already another item's.
    DuplicatePrice(Key),
    /// Another currency than the subscription's.
    CurrencyMismatch,
    /// Another interval than the subscription's.
    IntervalMismatch,
    /// No item of this subscription has this key.
    NoSuchItem,
    /// A licensed item's quantity times its price is more than [`MAX_ITEM_AMOUNT`] a period.
    AmountTooLarge(Currency),
}

/// The most a licensed item may cost a period, in minor units: the most Stripe charges at once
/// (999,999.99 in a two-decimal currency).
pub const MAX_ITEM_AMOUNT: i64 = 99_999_999;

/// Why the model refused a subscription command. Nothing has changed when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PricedError {
    /// No such subscription.
    NotFound,
    /// No live customer has this key.
    NoSuchCustomer,
    /// The item at this place in the request.
    Item(usize, ItemProblem),
    /// A subscription needs at least one item.
    NoItems,
    /// More than [`MAX_ITEMS`] items.
    TooManyItems(usize),
    /// The subscription has ended: only its metadata and cancellation details change.
    Ended,
    /// The customer has [`MAX_OPEN_PER_CUSTOMER`] subscriptions that have not ended.
    CustomerLimit,
    /// The customer lives on this test clock and has [`MAX_OPEN_ON_CLOCK`] subscriptions.
    ClockLimit(Key),
    /// The anchor is not after the customer's now.
    AnchorNotFuture,
    /// The anchor is after the first natural boundary, this one.
    AnchorTooLate(Nanos),
    /// `cancel_at` is not after the customer's now.
    CancelAtNotFuture,
    /// `days_until_due` with automatic collection.
    DaysWithAutomaticCollection,
    /// Sent invoices need `days_until_due`.
    DaysMissing,
}

/// The priced subscriptions of one tenant and their indexes.
#[derive(Debug, Default)]
pub(super) struct PricedBilling {
    /// Every subscription by key.
    pub(super) subscriptions: BTreeMap<Key, PricedSubscription>,
    /// Every live item by key.
    pub(super) items: BTreeMap<Key, SubscriptionItem>,
    /// Subscriptions per customer.
    pub(super) by_customer: HashMap<Key, BTreeSet<Key>>,
    /// Subscriptions per test clock.
    pub(super) by_clock: HashMap<Key, BTreeSet<Key>>,
    /// Subscriptions of customers on no test clock.
    pub(super) unclocked: BTreeSet<Key>,
    /// Subscriptions per price of one of their items (a subscription has each price once).
    pub(super) by_price: HashMap<Key, BTreeSet<Key>>,
    /// Subscriptions per status.
    pub(super) by_status: HashMap<PricedStatus, BTreeSet<Key>>,
}

/// The calendar step of a price interval.
fn period_of(interval: Interval) -> Period {
    match interval {
        Interval::Day => Period::Daily,
        Interval::Week => Period::Weekly,
        Interval::Month => Period::Monthly,
        Interval::Year => Period::Annual,
    }
}

/// The first boundary of a cycle of `count` × `interval` anchored at `anchor` that is after `t`.
fn next_boundary(anchor: Nanos, interval: Interval, count: u32, t: Nanos) -> Option<Nanos> {
    if t < anchor {
        return Some(anchor);
    }
    period_containing(anchor, period_of(interval), count, None, t).map(|(_, end)| end)
}

/// The end of the period after the one ending at `end`.
pub(super) fn next_period_end(s: &PricedSubscription, end: Nanos) -> Option<Nanos> {
    next_boundary(s.billing_cycle_anchor, s.interval, s.interval_count, end)
}

/// What the checks of a new subscription found ([`Tenant::check_new_subscription`]).
pub(super) struct Checked {
    /// The customer's test clock.
    pub test_clock: Option<Key>,
    /// The items' currency.
    pub currency: Currency,
    /// The items' interval.
    pub interval: Interval,
    /// Intervals a period.
    pub interval_count: u32,
    /// Each item's quantity, in order (`None` for a metered price).
    pub quantities: Vec<Option<u64>>,
    /// The customer's now.
    pub now: Nanos,
    /// The billing cycle anchor.
    pub anchor: Nanos,
    /// The end of the first period.
    pub period_end: Nanos,
}

/// The price facts an item needs checked: its currency and interval.
type PriceFacts = (Currency, Interval, u32, bool);

impl Tenant {
    /// A priced subscription.
    pub fn priced_subscription(&self, key: Key) -> Option<&PricedSubscription> {
        self.priced.subscriptions.get(&key)
    }

    /// A subscription item (removed items are gone).
    pub fn subscription_item(&self, key: Key) -> Option<&SubscriptionItem> {
        self.priced.items.get(&key)
    }

    /// A subscription's items, in the order they were added.
    pub fn priced_subscription_items(
        &self,
        key: Key,
    ) -> impl DoubleEndedIterator<Item = &SubscriptionItem> {
        self.priced
            .subscriptions
            .get(&key)
            .map_or(&[][..], |s| &s.items[..])
            .iter()
            .filter_map(|k| self.priced.items.get(k))
    }

    /// A customer's priced subscriptions, ended ones included.
    pub fn priced_subscriptions_of(&self, customer: Key) -> KeyIndex<'_> {
        KeyIndex::of(self.priced.by_customer.get(&customer))
    }

    /// The priced subscriptions whose keys are in `range`, oldest first.
    pub fn priced_subscriptions_in(
        &self,
        range: impl std::ops::RangeBounds<Key>,
    ) -> impl DoubleEndedIterator<Item = &PricedSubscription> {
        super::index::values_in(&self.priced.subscriptions, range)
    }

    /// The priced subscriptions of customers on test clock `clock`.
    pub fn priced_subscriptions_on_clock(&self, clock: Key) -> KeyIndex<'_> {
        KeyIndex::of(self.priced.by_clock.get(&clock))
    }

    /// The priced subscriptions of customers on no test clock.
    pub fn priced_subscriptions_off_clocks(&self) -> KeyIndex<'_> {
        KeyIndex::of(Some(&self.priced.unclocked))
    }

    /// The priced subscriptions with an item of `price`.
    pub fn priced_subscriptions_with_price(&self, price: Key) -> KeyIndex<'_> {
        KeyIndex::of(self.priced.by_price.get(&price))
    }

    /// The priced subscriptions in `status`.
    pub fn priced_subscriptions_with_status(&self, status: PricedStatus) -> KeyIndex<'_> {
        KeyIndex::of(self.priced.by_status.get(&status))
    }

    /// How many of a customer's priced subscriptions have not ended.
    pub fn open_priced_subscriptions_of(&self, customer: Key) -> usize {
        self.priced_subscriptions_of(customer)
            .into_iter()
            .filter_map(|k| self.priced.subscriptions.get(&k))
            .filter(|s| !s.status.is_ended())
            .count()
    }

    /// A subscription's current period `[start, end)`.
    pub fn subscription_period(&self, key: Key) -> Option<(Nanos, Nanos)> {
        self.priced_subscription(key)
            .map(|s| (s.current_period_start, s.current_period_end))
    }

    /// When a subscription that has not ended is due to end because a cancellation was asked
    /// for: `cancel_at`, or the end of the current period with `cancel_at_period_end`, whichever
    /// comes first. `None` when it is to go on.
    pub fn subscription_end_due(&self, key: Key) -> Option<Nanos> {
        let s = self
            .priced_subscription(key)
            .filter(|s| !s.status.is_ended())?;
        let at_period_end = s.cancel_at_period_end.then_some(s.current_period_end);
        match (s.cancel_at, at_period_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How far test clock `clock` may be advanced in one step because of the subscriptions on
    /// it: two periods of its shortest subscription that has not ended, counted from the clock's
    /// frozen time (`None` when it has no such subscription).
    pub fn clock_advance_limit(&self, clock: Key) -> Option<Nanos> {
        let frozen = self.test_clock(clock)?.frozen_time;
        self.priced_subscriptions_on_clock(clock)
            .into_iter()
            .filter_map(|k| self.priced.subscriptions.get(&k))
            .filter(|s| !s.status.is_ended())
            .filter_map(|s| boundary(frozen, period_of(s.interval), s.interval_count, 2))
            .min()
    }

    /// The currency and interval of a price usable by a subscription item, or what is wrong
    /// with it (the last field: whether it is metered).
    fn item_price(&self, price: Key) -> Result<PriceFacts, ItemProblem> {
        let p = self.price(price).ok_or(ItemProblem::NoSuchPrice)?;
        let r = p.recurring.ok_or(ItemProblem::NotRecurring)?;
        if !p.active {
            return Err(ItemProblem::InactivePrice);
        }
        Ok((
            p.currency,
            r.interval,
            r.interval_count.max(1),
            p.is_metered(),
        ))
    }

    /// Refuses a licensed item whose period would cost more than [`MAX_ITEM_AMOUNT`].
    fn check_item_amount(&self, price: Key, quantity: Option<u64>) -> Result<(), ItemProblem> {
        let (Some(q), Some(p)) = (quantity, self.price(price)) else {
            return Ok(());
        };
        if p.amount_for(rust_decimal::Decimal::from(q))
            > rust_decimal::Decimal::from(MAX_ITEM_AMOUNT)
        {
            return Err(ItemProblem::AmountTooLarge(p.currency));
        }
        Ok(())
    }

    /// The quantity an item of a price keeps: refused for a metered price, 1 by default for a
    /// licensed one.
    fn item_quantity(metered: bool, sent: Option<u64>) -> Result<Option<u64>, ItemProblem> {
        match (metered, sent) {
            (true, Some(_)) => Err(ItemProblem::QuantityOnMetered),
            (true, None) => Ok(None),
            (false, q) => Ok(Some(q.unwrap_or(1))),
        }
    }

    /// What [`Tenant::create_priced_subscription`] checks before it makes anything, and what the
    /// checks found. Changes nothing; shared by a creation and its preview.
    pub(super) fn check_new_subscription(
        &self,
        new: &NewPricedSubscription,
    ) -> Result<Checked, PricedError> {
        let customer = self
            .live_customer(new.customer)
            .ok_or(PricedError::NoSuchCustomer)?;
        let test_clock = customer.test_clock;
        if new.items.is_empty() {
            return Err(PricedError::NoItems);
        }
        if new.items.len() > MAX_ITEMS {
            return Err(PricedError::TooManyItems(new.items.len()));
        }
        if new.collection_method == CollectionMethod::ChargeAutomatically
            && new.days_until_due.is_some()
        {
            return Err(PricedError::DaysWithAutomaticCollection);
        }
        if new.collection_method == CollectionMethod::SendInvoice && new.days_until_due.is_none() {
            return Err(PricedError::DaysMissing);
        }
        let mut first: Option<PriceFacts> = None;
        let mut quantities = Vec::with_capacity(new.items.len());
        for (i, item) in new.items.iter().enumerate() {
            let facts = self
                .item_price(item.price)
                .map_err(|p| PricedError::Item(i, p))?;
            let quantity =
                Self::item_quantity(facts.3, item.quantity).map_err(|p| PricedError::Item(i, p))?;
            self.check_item_amount(item.price, quantity)
                .map_err(|p| PricedError::Item(i, p))?;
            if new.items[..i].iter().any(|o| o.price == item.price) {
                return Err(PricedError::Item(
                    i,
                    ItemProblem::DuplicatePrice(item.price),
                ));
            }
            match first {
                None => first = Some(facts),
                Some(f) if f.0 != facts.0 => {
                    return Err(PricedError::Item(i, ItemProblem::CurrencyMismatch))
                }
                Some(f) if (f.1, f.2) != (facts.1, facts.2) => {
                    return Err(PricedError::Item(i, ItemProblem::IntervalMismatch))
                }
                Some(_) => {}
            }
            quantities.push(quantity);
        }
        let Some((currency, interval, interval_count, _)) = first else {
            return Err(PricedError::NoItems);
        };
        let now = self.now_for(new.customer);
        let natural = boundary(now, period_of(interval), interval_count, 1).unwrap_or(Nanos::MAX);
        let anchor = match new.billing_cycle_anchor {
            None => now,
            Some(a) if a <= now => return Err(PricedError::AnchorNotFuture),
            Some(a) if a > natural => return Err(PricedError::AnchorTooLate(natural)),
            Some(a) => a,
        };
        if new.cancel_at.is_some_and(|c| c <= now) {
            return Err(PricedError::CancelAtNotFuture);
        }
        let open = self.open_priced_subscriptions_of(new.customer);
        if let Some(clock) = test_clock {
            if open >= MAX_OPEN_ON_CLOCK {
                return Err(PricedError::ClockLimit(clock));
            }
        }
        if open >= MAX_OPEN_PER_CUSTOMER {
            return Err(PricedError::CustomerLimit);
        }
        let period_end = if anchor > now { anchor } else { natural };
        Ok(Checked {
            test_clock,
            currency,
            interval,
            interval_count,
            quantities,
            now,
            anchor,
            period_end,
        })
    }

    /// Creates a priced subscription at the customer's now: checks the customer, every item's
    /// price (recurring, active, one currency and one interval, each price once), the anchor and
    /// the limits, then makes it `active` with its first period.
    pub fn create_priced_subscription(
        &mut self,
        new: NewPricedSubscription,
    ) -> Result<Key, PricedError> {
        let Checked {
            test_clock,
            currency,
            interval,
            interval_count,
            quantities,
            now,
            anchor,
            period_end,
        } = self.check_new_subscription(&new)?;
        let key = self.next_key();
        let mut items = Vec::with_capacity(new.items.len());
        for (item, quantity) in new.items.into_iter().zip(quantities) {
            let item_key = self.next_key();
            self.priced.items.insert(
                item_key,
                SubscriptionItem {
                    key: item_key,
                    subscription: key,
                    price: item.price,
                    quantity,
                    metadata: item.metadata,
                    created: now,
                    current_period_start: now,
                    current_period_end: period_end,
                },
            );
            items.push(item_key);
        }
        let cancelling = new.cancel_at_period_end || new.cancel_at.is_some();
        let sub = PricedSubscription {
            key,
            customer: new.customer,
            test_clock,
            status: PricedStatus::Active,
            collection_method: new.collection_method,
            days_until_due: new.days_until_due,
            billing_mode: new.billing_mode,
            billing_cycle_anchor: anchor,
            currency,
            interval,
            interval_count,
            cancel_at_period_end: new.cancel_at_period_end,
            cancel_at: new.cancel_at,
            canceled_at: cancelling.then_some(now),
            ended_at: None,
            cancellation_details: CancellationDetails {
                reason: cancelling.then_some(CancellationReason::CancellationRequested),
                ..CancellationDetails::default()
            },
            metadata: new.metadata,
            description: new.description,
            created: now,
            start_date: now,
            latest_invoice: None,
            current_period_start: now,
            current_period_end: period_end,
            items,
        };
        self.index_priced(&sub, true);
        self.priced.subscriptions.insert(key, sub);
        if let Some(after) = self.subscription_snapshot(key) {
            self.record(super::ChangeKind::Created, now, after, None);
        }
        self.start_billing(key);
        Ok(key)
    }

    /// Applies `update` to a subscription at its customer's now. Item changes are checked in
    /// order against the items as the earlier changes left them; the result must still have one
    /// to [`MAX_ITEMS`] items, each price once, all in the subscription's currency and interval.
    /// An ended subscription takes only metadata and cancellation details.
    pub fn update_priced_subscription(
        &mut self,
        key: Key,
        update: PricedUpdate,
    ) -> Result<(), PricedError> {
        let sub = self
            .priced
            .subscriptions
            .get(&key)
            .ok_or(PricedError::NotFound)?;
        let now = self.now_for(sub.customer);
        let before = self.subscription_snapshot(key);
        let touches_billing = !update.items.is_empty()
            || update.description.is_some()
            || update.cancel_at_period_end.is_some()
            || update.cancel_at.is_some()
            || update.collection_method.is_some()
            || update.days_until_due.is_some();
        if sub.status.is_ended() && touches_billing {
            return Err(PricedError::Ended);
        }
        let collection_method = update.collection_method.unwrap_or(sub.collection_method);
        let days_until_due = match (collection_method, update.days_until_due) {
            (CollectionMethod::ChargeAutomatically, Some(Some(_))) => {
                return Err(PricedError::DaysWithAutomaticCollection)
            }
            (CollectionMethod::ChargeAutomatically, _) => None,
            (CollectionMethod::SendInvoice, Some(days)) => days,
            (CollectionMethod::SendInvoice, None) => sub.days_until_due,
        };
        if collection_method == CollectionMethod::SendInvoice && days_until_due.is_none() {
            return Err(PricedError::DaysMissing);
        }
        if update.cancel_at.flatten().is_some_and(|c| c <= now) {
            return Err(PricedError::CancelAtNotFuture);
        }
        let planned = self.plan_items(sub, &update.items)?;
        // Everything is checked: change the world.
        let Some(mut sub) = self.priced.subscriptions.get(&key).cloned() else {
            return Err(PricedError::NotFound);
        };
        self.index_priced(&sub, false);
        let mut items = Vec::with_capacity(planned.len());
        for (existing, price, quantity, metadata) in planned {
            let item_key = existing.unwrap_or_else(|| self.next_key());
            let created = self.priced.items.get(&item_key).map_or(now, |i| i.created);
            self.priced.items.insert(
                item_key,
                SubscriptionItem {
                    key: item_key,
                    subscription: key,
                    price,
                    quantity,
                    metadata,
                    created,
                    current_period_start: sub.current_period_start,
                    current_period_end: sub.current_period_end,
                },
            );
            items.push(item_key);
        }
        for gone in sub.items.iter().filter(|k| !items.contains(k)) {
            self.priced.items.remove(gone);
        }
        sub.items = items;
        if let Some(m) = update.metadata {
            sub.metadata = m;
        }
        if let Some(d) = update.description {
            sub.description = d;
        }
        if let Some(c) = update.cancellation_comment {
            sub.cancellation_details.comment = c;
        }
        if let Some(f) = update.cancellation_feedback {
            sub.cancellation_details.feedback = f;
        }
        sub.collection_method = collection_method;
        sub.days_until_due = days_until_due;
        if update.cancel_at_period_end.is_some() || update.cancel_at.is_some() {
            if let Some(v) = update.cancel_at_period_end {
                sub.cancel_at_period_end = v;
            }
            if let Some(v) = update.cancel_at {
                sub.cancel_at = v;
            }
            // A cancellation asked for (again) is dated now; withdrawn, it leaves no trace.
            if sub.cancel_at_period_end || sub.cancel_at.is_some() {
                sub.canceled_at = Some(now);
                sub.cancellation_details.reason = Some(CancellationReason::CancellationRequested);
            } else {
                sub.canceled_at = None;
                sub.cancellation_details.reason = None;
            }
        }
        self.index_priced(&sub, true);
        self.priced.subscriptions.insert(key, sub);
        self.record_subscription(key, now, before);
        self.schedule_cycle(key);
        Ok(())
    }

    /// The items `sub` would have after `changes` (each as the earlier ones left them), or why
    /// they are refused: one to [`MAX_ITEMS`] items, each price once, all in the subscription's
    /// currency and interval. Changes nothing; shared by an update and its preview.
    pub(super) fn plan_items(
        &self,
        sub: &PricedSubscription,
        changes: &[ItemChange],
    ) -> Result<Vec<PlannedItem>, PricedError> {
        let mut planned: Vec<PlannedItem> = sub
            .items
            .iter()
            .filter_map(|k| self.priced.items.get(k))
            .map(|i| (Some(i.key), i.price, i.quantity, i.metadata.clone()))
            .collect();
        let (currency, interval, count) = (sub.currency, sub.interval, sub.interval_count);
        let fits = |t: &Tenant, price: Key| -> Result<bool, ItemProblem> {
            let (c, i, n, metered) = t.item_price(price)?;
            if c != currency {
                return Err(ItemProblem::CurrencyMismatch);
            }
            if (i, n) != (interval, count) {
                return Err(ItemProblem::IntervalMismatch);
            }
            Ok(metered)
        };
        for (i, change) in changes.iter().enumerate() {
            let err = |p| PricedError::Item(i, p);
            match change {
                ItemChange::Add(item) => {
                    let metered = fits(self, item.price).map_err(err)?;
                    let quantity = Self::item_quantity(metered, item.quantity).map_err(err)?;
                    self.check_item_amount(item.price, quantity).map_err(err)?;
                    if planned.iter().any(|p| p.1 == item.price) {
                        return Err(err(ItemProblem::DuplicatePrice(item.price)));
                    }
                    planned.push((None, item.price, quantity, item.metadata.clone()));
                }
                ItemChange::Update {
                    item,
                    price,
                    quantity,
                    metadata,
                } => {
                    let at = planned
                        .iter()
                        .position(|p| p.0 == Some(*item))
                        .ok_or(err(ItemProblem::NoSuchItem))?;
                    let new_price = price.unwrap_or(planned[at].1);
                    let metered = fits(self, new_price).map_err(err)?;
                    if planned
                        .iter()
                        .enumerate()
                        .any(|(j, p)| j != at && p.1 == new_price)
                    {
                        return Err(err(ItemProblem::DuplicatePrice(new_price)));
                    }
                    let kept = match (metered, quantity, price) {
                        (true, Some(_), _) => return Err(err(ItemProblem::QuantityOnMetered)),
                        (true, None, _) => None,
                        (false, Some(q), _) => Some(*q),
                        // A licensed item keeps its quantity; one that was metered starts at 1.
                        (false, None, _) => Some(planned[at].2.unwrap_or(1)),
                    };
                    self.check_item_amount(new_price, kept).map_err(err)?;
                    let entry = &mut planned[at];
                    entry.1 = new_price;
                    entry.2 = kept;
                    if let Some(m) = metadata {
                        entry.3 = m.clone();
                    }
                }
                ItemChange::Remove(item) => {
                    let at = planned
                        .iter()
                        .position(|p| p.0 == Some(*item))
                        .ok_or(err(ItemProblem::NoSuchItem))?;
                    planned.remove(at);
                }
            }
        }
        if planned.is_empty() {
            return Err(PricedError::NoItems);
        }
        if planned.len() > MAX_ITEMS {
            return Err(PricedError::TooManyItems(planned.len()));
        }
        Ok(planned)
    }

    /// Ends a subscription at `end.at`: `canceled`, with `ended_at` and the reason set. With
    /// `end.invoice_now`, `Tenant::invoice_on_end` is called once it has ended.
    pub fn end_subscription(&mut self, key: Key, end: End) -> Result<(), PricedError> {
        let Some(mut sub) = self.priced.subscriptions.get(&key).cloned() else {
            return Err(PricedError::NotFound);
        };
        if sub.status.is_ended() {
            return Err(PricedError::Ended);
        }
        self.index_priced(&sub, false);
        sub.status = PricedStatus::Canceled;
        sub.canceled_at = match (end.requested, sub.canceled_at) {
            (false, Some(asked)) => Some(asked),
            _ => Some(end.at),
        };
        if end.requested {
            // Ended at once, not at a scheduled instant: nothing is scheduled any more.
            sub.cancel_at_period_end = false;
            sub.cancel_at = None;
        }
        sub.ended_at = Some(end.at);
        sub.cancellation_details.reason = Some(end.reason);
        if end.comment.is_some() {
            sub.cancellation_details.comment = end.comment;
        }
        if end.feedback.is_some() {
            sub.cancellation_details.feedback = end.feedback;
        }
        self.index_priced(&sub, true);
        self.priced.subscriptions.insert(key, sub);
        if let Some(after) = self.subscription_snapshot(key) {
            self.record(super::ChangeKind::Deleted, end.at, after, None);
        }
        if end.invoice_now {
            self.invoice_on_end(key, end.at);
        }
        Ok(())
    }

    /// Ends every subscription of `customer` that has not ended, at its now (a deleted customer's
    /// subscriptions are cancelled with it).
    pub(super) fn end_subscriptions_of(&mut self, customer: Key) {
        let at = self.now_for(customer);
        let open: Vec<Key> = self
            .priced_subscriptions_of(customer)
            .into_iter()
            .filter(|k| {
                self.priced
                    .subscriptions
                    .get(k)
                    .is_some_and(|s| !s.status.is_ended())
            })
            .collect();
        for key in open {
            let _ = self.end_subscription(
                key,
                End {
                    at,
                    reason: CancellationReason::CancellationRequested,
                    requested: true,
                    invoice_now: false,
                    comment: None,
                    feedback: None,
                },
            );
        }
    }

    /// Rolls a subscription into its next period: the new period starts where the current one
    /// ends and ends at the next boundary from the anchor. Returns `(old_start, old_end,
    /// new_end)`, or `None` for an unknown or ended subscription (or a boundary past the model's
    /// years).
    pub fn advance_subscription_period(&mut self, key: Key) -> Option<(Nanos, Nanos, Nanos)> {
        let sub = self
            .priced
            .subscriptions
            .get(&key)
            .filter(|s| !s.status.is_ended())?;
        let (old_start, old_end) = (sub.current_period_start, sub.current_period_end);
        let new_end = next_boundary(
            sub.billing_cycle_anchor,
            sub.interval,
            sub.interval_count,
            old_end,
        )?;
        let items = sub.items.clone();
        let before = self.subscription_snapshot(key);
        if let Some(s) = self.priced.subscriptions.get_mut(&key) {
            s.current_period_start = old_end;
            s.current_period_end = new_end;
        }
        for k in items {
            if let Some(i) = self.priced.items.get_mut(&k) {
                i.current_period_start = old_end;
                i.current_period_end = new_end;
            }
        }
        self.record_subscription(key, old_end, before);
        Some((old_start, old_end, new_end))
    }

    /// Records the latest invoice made for a subscription. Returns false if there is no such
    /// subscription.
    pub fn set_subscription_latest_invoice(&mut self, key: Key, invoice: Key) -> bool {
        let before = self.subscription_snapshot(key);
        match self.priced.subscriptions.get_mut(&key) {
            Some(s) => {
                s.latest_invoice = Some(invoice);
                let customer = s.customer;
                let at = match self.invoices.get(&invoice) {
                    Some(i) => i.created,
                    None => self.now_for(customer),
                };
                self.record_subscription(key, at, before);
                true
            }
            None => false,
        }
    }

    /// Moves a subscription that has not ended to another status that is not an ending one
    /// (`past_due` when a renewal is not paid, back to `active` when it is). Ending goes through
    /// [`Tenant::end_subscription`]. Returns false if refused.
    pub fn set_subscription_status(&mut self, key: Key, status: PricedStatus) -> bool {
        let Some(mut sub) = self.priced.subscriptions.get(&key).cloned() else {
            return false;
        };
        if sub.status.is_ended() || status.is_ended() {
            return false;
        }
        let before = self.subscription_snapshot(key);
        let at = self.now_for(sub.customer);
        self.index_priced(&sub, false);
        sub.status = status;
        self.index_priced(&sub, true);
        self.priced.subscriptions.insert(key, sub);
        self.record_subscription(key, at, before);
        true
    }

    /// Adds a subscription to (or removes it from) the groups its customer, clock, prices and
    /// status place it in. A group left empty is dropped.
    pub(super) fn index_priced(&mut self, s: &PricedSubscription, add: bool) {
        let prices: Vec<Key> = s
            .items
            .iter()
            .filter_map(|k| self.priced.items.get(k).map(|i| i.price))
            .collect();
        let p = &mut self.priced;
        place(&mut p.by_customer, s.customer, s.key, add);
        match s.test_clock {
            Some(clock) => place(&mut p.by_clock, clock, s.key, add),
            None => {
                if add {
                    p.unclocked.insert(s.key);
                } else {
                    p.unclocked.remove(&s.key);
                }
            }
        }
        place(&mut p.by_status, s.status, s.key, add);
        for price in prices {
            place(&mut p.by_price, price, s.key, add);
        }
    }

    /// Checks the priced subscriptions' indexes and items (see [`Tenant::check_indexes`]).
    pub(super) fn check_priced_indexes(&self) -> Result<(), String> {
        let p = &self.priced;
        let ensure = |holds: bool, why: &dyn Fn() -> String| {
            if holds {
                Ok(())
            } else {
                Err(why())
            }
        };
        let mut item_count = 0;
        let mut priced_places = 0;
        for s in p.subscriptions.values() {
            ensure(
                self.priced_subscriptions_of(s.customer).contains(s.key),
                &|| format!("subscription {} missing from its customer's", s.key),
            )?;
            let on_clock = match s.test_clock {
                Some(c) => self.priced_subscriptions_on_clock(c),
                None => self.priced_subscriptions_off_clocks(),
            };
            ensure(on_clock.contains(s.key), &|| {
                format!("subscription {} missing from its clock's", s.key)
            })?;
            ensure(
                self.priced_subscriptions_with_status(s.status)
                    .contains(s.key),
                &|| format!("subscription {} missing from its status's", s.key),
            )?;
            for k in &s.items {
                let item = p.items.get(k);
                ensure(
                    item.is_some_and(|i| {
                        i.subscription == s.key
                            && (i.current_period_start, i.current_period_end)
                                == (s.current_period_start, s.current_period_end)
                    }),
                    &|| format!("item {k} of subscription {} disagrees with it", s.key),
                )?;
                if let Some(i) = item {
                    ensure(
                        self.priced_subscriptions_with_price(i.price)
                            .contains(s.key),
                        &|| format!("subscription {} missing from its price's", s.key),
                    )?;
                }
                item_count += 1;
                priced_places += 1;
            }
        }
        ensure(item_count == p.items.len(), &|| {
            format!("{} items stored, {item_count} held", p.items.len())
        })?;
        let count = |m: &HashMap<Key, BTreeSet<Key>>| m.values().map(BTreeSet::len).sum::<usize>();
        let n = p.subscriptions.len();
        ensure(count(&p.by_customer) == n, &|| {
            "the customers' subscriptions name unknown ones".into()
        })?;
        ensure(count(&p.by_clock) + p.unclocked.len() == n, &|| {
            "the clocks' subscriptions name unknown ones".into()
        })?;
        ensure(
            p.by_status.values().map(BTreeSet::len).sum::<usize>() == n,
            &|| "the statuses' subscriptions name unknown ones".into(),
        )?;
        ensure(count(&p.by_price) == priced_places, &|| {
            "the prices' subscriptions name unknown ones".into()
        })
    }
}

/// Adds `key` to (or removes it from) the group `group` of `groups`, dropping a group left empty.
fn place<G: std::hash::Hash + Eq>(
    groups: &mut HashMap<G, BTreeSet<Key>>,
    group: G,
    key: Key,
    add: bool,
) {
    if add {
        groups.entry(group).or_default().insert(key);
    } else if let Some(set) = groups.get_mut(&group) {
        set.remove(&key);
        if set.is_empty() {
            groups.remove(&group);
        }
    }
}

#[cfg(test)]
impl NewPricedSubscription {
    /// A subscription of `customer` to one item of each of `prices`, charged automatically, with
    /// nothing else set: what the model's tests start from.
    pub(super) fn of(customer: Key, prices: &[Key]) -> NewPricedSubscription {
        NewPricedSubscription {
            customer,
            items: prices
                .iter()
                .map(|&price| NewItem {
                    price,
                    ..NewItem::default()
                })
                .collect(),
            collection_method: CollectionMethod::ChargeAutomatically,
            days_until_due: None,
            billing_mode: BillingMode::Flexible,
            billing_cycle_anchor: None,
            cancel_at_period_end: false,
            cancel_at: None,
            metadata: Metadata::new(),
            description: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NewCustomer, NewPrice, Recurring, Scheme, UsageType};
    use crate::time::{parse_rfc3339, to_rfc3339};

    fn at(s: &str) -> Nanos {
        parse_rfc3339(s).expect("a time")
    }

    /// A world frozen at `now` with a customer.
    fn world(now: &str) -> (Tenant, Key) {
        let mut t = Tenant::new("sk_test_priced", Some(5));
        t.freeze_clock(at(now))
            .expect("a fresh world starts anywhere");
        let customer = t.create_customer(NewCustomer::default());
        (t, customer)
    }

    fn price(t: &mut Tenant, currency: &str, interval: Interval, usage: UsageType) -> Key {
        let product = t.create_product("Pro".into(), Metadata::new());
        t.create_price(NewPrice {
            product,
            active: true,
            currency: Currency::parse(currency).expect("a currency"),
            recurring: Some(Recurring {
                interval,
                interval_count: 1,
                usage_type: usage,
                meter: None,
            }),
            scheme: Scheme::PerUnit {
                unit_amount: 100.into(),
            },
            transform_quantity: None,
            lookup_key: None,
            nickname: None,
            metadata: Metadata::new(),
        })
    }

    fn period(t: &Tenant, key: Key) -> (String, String) {
        let (a, b) = t.subscription_period(key).expect("a subscription");
        (to_rfc3339(a), to_rfc3339(b))
    }

    #[test]
    fn monthly_periods_keep_the_anchor_day_clamped_to_short_months() {
        let (mut t, c) = world("2025-01-31T10:00:00Z");
        let p = price(&mut t, "usd", Interval::Month, UsageType::Licensed);
        let s = t
            .create_priced_subscription(NewPricedSubscription::of(c, &[p]))
            .expect("made");
        let p1 = (
            "2025-01-31T10:00:00Z".to_string(),
            "2025-02-28T10:00:00Z".to_string(),
        );
        assert_eq!(period(&t, s), p1);
        let rolled = t.advance_subscription_period(s).expect("rolls");
        assert_eq!(
            rolled,
            (
                at("2025-01-31T10:00:00Z"),
                at("2025-02-28T10:00:00Z"),
                at("2025-03-31T10:00:00Z")
            )
        );
        t.advance_subscription_period(s);
        assert_eq!(
            period(&t, s),
            ("2025-03-31T10:00:00Z".into(), "2025-04-30T10:00:00Z".into())
        );
        let item = t.priced_subscription_items(s).next().expect("an item");
        assert_eq!(
            (item.current_period_start, item.quantity),
            (at("2025-03-31T10:00:00Z"), Some(1))
        );
        assert_eq!(t.check_indexes(), Ok(()));
    }

    #[test]
    fn a_future_anchor_makes_a_short_first_period() {
        let (mut t, c) = world("2025-06-15T00:00:00Z");
        let p = price(&mut t, "usd", Interval::Week, UsageType::Metered);
        let mut n = NewPricedSubscription::of(c, &[p]);
        n.billing_cycle_anchor = Some(at("2025-06-18T12:00:00Z"));
        let s = t.create_priced_subscription(n.clone()).expect("made");
        assert_eq!(
            period(&t, s),
            ("2025-06-15T00:00:00Z".into(), "2025-06-18T12:00:00Z".into())
        );
        t.advance_subscription_period(s);
        assert_eq!(
            period(&t, s),
            ("2025-06-18T12:00:00Z".into(), "2025-06-25T12:00:00Z".into())
        );
        n.billing_cycle_anchor = Some(at("2025-06-22T00:00:01Z"));
        assert_eq!(
            t.create_priced_subscription(n.clone()),
            Err(PricedError::AnchorTooLate(at("2025-06-22T00:00:00Z")))
        );
        n.billing_cycle_anchor = Some(at("2025-06-15T00:00:00Z"));
        assert_eq!(
            t.create_priced_subscription(n),
            Err(PricedError::AnchorNotFuture)
        );
    }

    #[test]
    fn items_must_agree_and_be_usable() {
        let (mut t, c) = world("2025-06-15T00:00:00Z");
        let usd = price(&mut t, "usd", Interval::Month, UsageType::Licensed);
        let metered = price(&mut t, "usd", Interval::Month, UsageType::Metered);
        let eur = price(&mut t, "eur", Interval::Month, UsageType::Licensed);
        let yearly = price(&mut t, "usd", Interval::Year, UsageType::Licensed);
        let problem = |t: &mut Tenant, prices: &[Key]| {
            t.create_priced_subscription(NewPricedSubscription::of(c, prices))
        };
        assert_eq!(
            problem(&mut t, &[usd, eur]),
            Err(PricedError::Item(1, ItemProblem::CurrencyMismatch))
        );
        assert_eq!(
            problem(&mut t, &[usd, yearly]),
            Err(PricedError::Item(1, ItemProblem::IntervalMismatch))
        );
        assert_eq!(
            problem(&mut t, &[usd, metered, usd]),
            Err(PricedError::Item(2, ItemProblem::DuplicatePrice(usd)))
        );
        assert_eq!(
            problem(&mut t, &[Key::MAX]),
            Err(PricedError::Item(0, ItemProblem::NoSuchPrice))
        );
        assert_eq!(problem(&mut t, &[]), Err(PricedError::NoItems));
        let mut n = NewPricedSubscription::of(c, &[usd, metered]);
        n.items[1].quantity = Some(2);
        assert_eq!(
            t.create_priced_subscription(n),
            Err(PricedError::Item(1, ItemProblem::QuantityOnMetered))
        );
        assert!(t.priced_subscriptions_of(c).is_empty());
        let s = problem(&mut t, &[usd, metered]).expect("made");
        let quantities: Vec<_> = t.priced_subscription_items(s).map(|i| i.quantity).collect();
        assert_eq!(quantities, [Some(1), None]);
        assert_eq!(t.priced_subscriptions_with_price(metered).len(), 1);
        assert_eq!(t.check_indexes(), Ok(()));
    }

    #[test]
    fn updates_change_items_in_order_and_keep_the_indexes() {
        let (mut t, c) = world("2025-06-15T00:00:00Z");
        let a = price(&mut t, "usd", Interval::Month, UsageType::Licensed);
        let b = price(&mut t, "usd", Interval::Month, UsageType::Metered);
        let eur = price(&mut t, "eur", Interval::Month, UsageType::Licensed);
        let s = t
            .create_priced_subscription(NewPricedSubscription::of(c, &[a]))
            .expect("made");
        let first = t.priced_subscription(s).expect("made").items[0];
        let add = |price| {
            ItemChange::Add(NewItem {
                price,
                ..NewItem::default()
            })
        };
        let refused = t.update_priced_subscription(
            s,
            PricedUpdate {
                items: vec![add(b), add(eur)],
                ..PricedUpdate::default()
            },
        );
        assert_eq!(
            refused,
            Err(PricedError::Item(1, ItemProblem::CurrencyMismatch))
        );
        assert_eq!(t.priced_subscription(s).expect("made").items, [first]);
        let removed_all = t.update_priced_subscription(
            s,
            PricedUpdate {
                items: vec![ItemChange::Remove(first)],
                ..PricedUpdate::default()
            },
        );
        assert_eq!(removed_all, Err(PricedError::NoItems));
        t.update_priced_subscription(
            s,
            PricedUpdate {
                items: vec![
                    add(b),
                    ItemChange::Update {
                        item: first,
                        price: None,
                        quantity: Some(4),
                        metadata: None,
                    },
                ],
                ..PricedUpdate::default()
            },
        )
        .expect("changed");
        let items: Vec<_> = t
            .priced_subscription_items(s)
            .map(|i| (i.price, i.quantity))
            .collect();
        assert_eq!(items, [(a, Some(4)), (b, None)]);
        t.update_priced_subscription(
            s,
            PricedUpdate {
                items: vec![ItemChange::Remove(first)],
                ..PricedUpdate::default()
            },
        )
        .expect("removed");
        assert!(t.subscription_item(first).is_none());
        assert!(t.priced_subscriptions_with_price(a).is_empty());
        assert_eq!(t.check_indexes(), Ok(()));
    }

    #[test]
    fn ending_and_the_limits() {
        let (mut t, c) = world("2025-06-15T00:00:00Z");
        let p = price(&mut t, "usd", Interval::Day, UsageType::Licensed);
        let clock = t.create_test_clock(at("2025-06-15T00:00:00Z"), None);
        let on_clock = t.create_customer(NewCustomer {
            test_clock: Some(clock),
            ..NewCustomer::default()
        });
        let subs: Vec<Key> = (0..MAX_OPEN_ON_CLOCK)
            .map(|_| {
                t.create_priced_subscription(NewPricedSubscription::of(on_clock, &[p]))
                    .expect("made")
            })
            .collect();
        assert_eq!(
            t.create_priced_subscription(NewPricedSubscription::of(on_clock, &[p])),
            Err(PricedError::ClockLimit(clock))
        );
        let end = End {
            at: at("2025-06-15T00:00:00Z"),
            reason: CancellationReason::CancellationRequested,
            requested: true,
            invoice_now: false,
            comment: Some("moving".into()),
            feedback: None,
        };
        t.end_subscription(subs[0], end.clone()).expect("ended");
        assert_eq!(t.end_subscription(subs[0], end), Err(PricedError::Ended));
        let ended = t.priced_subscription(subs[0]).expect("kept");
        assert_eq!(ended.status, PricedStatus::Canceled);
        assert_eq!(
            ended.cancellation_details.comment.as_deref(),
            Some("moving")
        );
        assert_eq!(t.subscription_end_due(subs[0]), None);
        // An ended one no longer counts.
        t.create_priced_subscription(NewPricedSubscription::of(on_clock, &[p]))
            .expect("made");
        assert_eq!(t.priced_subscriptions_on_clock(clock).len(), 4);
        assert!(t.priced_subscriptions_off_clocks().is_empty());
        let changed = t.update_priced_subscription(
            subs[0],
            PricedUpdate {
                description: Some(Some("x".into())),
                ..PricedUpdate::default()
            },
        );
        assert_eq!(changed, Err(PricedError::Ended));
        for _ in 0..MAX_OPEN_PER_CUSTOMER {
            t.create_priced_subscription(NewPricedSubscription::of(c, &[p]))
                .expect("made");
        }
        assert_eq!(
            t.create_priced_subscription(NewPricedSubscription::of(c, &[p])),
            Err(PricedError::CustomerLimit)
        );
        // Deleting the customer cancels what it still has.
        assert!(t.delete_customer(on_clock));
        assert_eq!(
            t.priced_subscriptions_with_status(PricedStatus::Canceled)
                .len(),
            4
        );
        assert_eq!(t.check_indexes(), Ok(()));
    }

    #[test]
    fn a_scheduled_cancellation_is_dated_and_due() {
        let (mut t, c) = world("2025-06-15T00:00:00Z");
        let p = price(&mut t, "usd", Interval::Month, UsageType::Licensed);
        let s = t
            .create_priced_subscription(NewPricedSubscription::of(c, &[p]))
            .expect("made");
        assert_eq!(t.subscription_end_due(s), None);
        let ask = |t: &mut Tenant, v| {
            t.update_priced_subscription(
                s,
                PricedUpdate {
                    cancel_at_period_end: Some(v),
                    ..PricedUpdate::default()
                },
            )
        };
        ask(&mut t, true).expect("asked");
        assert_eq!(t.subscription_end_due(s), Some(at("2025-07-15T00:00:00Z")));
        let sub = t.priced_subscription(s).expect("made");
        assert_eq!(sub.canceled_at, Some(at("2025-06-15T00:00:00Z")));
        ask(&mut t, false).expect("withdrawn");
        let sub = t.priced_subscription(s).expect("made");
        assert_eq!(
            (sub.canceled_at, sub.cancellation_details.reason),
            (None, None)
        );
    }

    #[test]
    fn every_priced_index_that_drifts_is_found() {
        type Break = (&'static str, fn(&mut Tenant));
        let breaks: Vec<Break> = vec![
            ("customer", |t| t.priced.by_customer.clear()),
            ("clock", |t| t.priced.unclocked.clear()),
            ("status", |t| t.priced.by_status.clear()),
            ("price", |t| t.priced.by_price.clear()),
            ("items", |t| t.priced.items.clear()),
            ("item period", |t| {
                for i in t.priced.items.values_mut() {
                    i.current_period_end += 1;
                }
            }),
        ];
        for (what, break_it) in breaks {
            let (mut t, c) = world("2025-06-15T00:00:00Z");
            let p = price(&mut t, "usd", Interval::Month, UsageType::Licensed);
            t.create_priced_subscription(NewPricedSubscription::of(c, &[p]))
                .expect("made");
            assert_eq!(t.check_indexes(), Ok(()));
            break_it(&mut t);
            assert!(t.check_indexes().is_err(), "{what} drifted unnoticed");
        }
    }
}
