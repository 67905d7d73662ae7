//! Invoices: drafts, finalization (where credits are spent), payment, and voiding.
//!
//! An invoice is made as a draft (by a subscription's cycle, or by the caller from pending invoice
//! items) or already finalized (the emulator's one-shot helper). Finalizing recomputes usage lines
//! from their meters (late events count), applies credits to the lines they may pay, numbers the
//! invoice and, when something is due and the invoice is charged automatically, pays it as a test
//! card would (or fails, for a customer whose payment method is one of Stripe's failing test cards).

use std::cmp::Ordering;
use std::collections::{btree_set, BTreeSet};
use std::ops::{Bound, RangeBounds};

use rust_decimal::Decimal;

use super::index::values_in;
use super::{ChangeKind, Currency, Domain, EntryKind, Event, Lot, Metadata, Snapshot, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// An invoice's state.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Being prepared: lines may still change; no credits applied.
    Draft,
    /// Finalized, something still due.
    Open,
    /// Finalized and settled.
    Paid,
    /// Finalized, written off as not collectable.
    Uncollectible,
    /// Voided; its credits were reinstated.
    Void,
}

/// Why an invoice was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingReason {
    /// By the caller (one-off invoices, the emulator's helper).
    Manual,
    /// A subscription's first invoice.
    SubscriptionCreate,
    /// A subscription's period ended.
    SubscriptionCycle,
    /// A subscription changed, or ended with its usage billed at once.
    SubscriptionUpdate,
    /// A projection, never stored.
    Upcoming,
}

/// How an invoice is collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionMethod {
    /// Charged to the customer's payment method at finalization.
    #[default]
    ChargeAutomatically,
    /// Sent; paid when the customer pays (out of band, here).
    SendInvoice,
}

/// What made a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineSource {
    /// Given directly (the emulator's helper).
    Direct,
    /// A subscription item's charge for a period.
    SubscriptionItem {
        /// The subscription.
        #[serde(with = "crate::ids::text")]
        subscription: Key,
        /// The item.
        #[serde(with = "crate::ids::text")]
        item: Key,
    },
    /// A pending invoice item swept into the invoice.
    InvoiceItem(#[serde(with = "crate::ids::text")] Key),
}

/// A line billed from a meter's usage: recomputed at finalization from what the meter aggregated
/// over the line's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// The meter.
    #[serde(with = "crate::ids::text")]
    pub meter: Key,
    /// The price that turns usage into an amount.
    #[serde(with = "crate::ids::text")]
    pub price: Key,
    /// The events counted: those timestamped in `[from, to)`.
    pub window: (Nanos, Nanos),
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLine {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Amount before credits, in minor units.
    pub amount: i64,
    /// The price's id as the caller named it, matched against price-scoped lots (helper lines).
    pub price: Option<String>,
    /// The catalog price billed, if any.
    #[serde(with = "crate::ids::text::opt")]
    pub price_key: Option<Key>,
    /// That price's product.
    #[serde(with = "crate::ids::text::opt")]
    pub product: Option<Key>,
    /// Quantity billed (usage for metered lines).
    pub quantity: Decimal,
    /// Free text.
    pub description: Option<String>,
    /// The period billed, `[start, end)`.
    pub period: (Nanos, Nanos),
    /// What made it.
    pub source: LineSource,
    /// Set for metered lines: how finalization recomputes the amount.
    pub usage: Option<Usage>,
    /// Whether billing credits may pay it (metered subscription lines, and the helper's lines).
    pub creditable: bool,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// `Applied` entries that paid this line, with their amounts.
    #[serde(with = "crate::ids::text::amounts")]
    pub credits: Vec<(Key, i64)>,
}

impl InvoiceLine {
    /// The line `key` made from `draft`, with no credit yet.
    pub(super) fn from_draft(key: Key, draft: DraftLine) -> InvoiceLine {
        InvoiceLine {
            key,
            amount: draft.amount,
            price: None,
            price_key: draft.price_key,
            product: draft.product,
            quantity: draft.quantity,
            description: draft.description,
            period: draft.period,
            source: draft.source,
            usage: draft.usage,
            creditable: draft.creditable,
            metadata: draft.metadata,
            credits: Vec::new(),
        }
    }

    /// Whether a lot with scope `applicability` may pay this line.
    fn covered_by(&self, applicability: &super::Applicability) -> bool {
        self.creditable && applicability.covers(self.price.as_deref(), self.price_key)
    }
}

/// An invoice.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Who is billed.
    #[serde(with = "crate::ids::text")]
    pub customer: Key,
    /// The customer's test clock, if any.
    #[serde(with = "crate::ids::text::opt")]
    pub test_clock: Option<Key>,
    /// The subscription that made it, if one did.
    #[serde(with = "crate::ids::text::opt")]
    pub subscription: Option<Key>,
    /// Why it was made.
    pub billing_reason: BillingReason,
    /// How it is collected.
    pub collection_method: CollectionMethod,
    /// Whether it finalizes and is collected without being asked.
    pub auto_advance: bool,
    /// When a draft finalizes by itself.
    pub finalizes_at: Option<Nanos>,
    /// Days after finalization it is due (`send_invoice`).
    pub days_until_due: Option<u32>,
    /// Currency of every line.
    pub currency: Currency,
    /// Creation time (the customer's now).
    pub created: Nanos,
    /// Start of the billed period.
    pub period_start: Nanos,
    /// End of the billed period; grant eligibility is judged at this instant.
    pub period_end: Nanos,
    /// Lines in order.
    pub lines: Vec<InvoiceLine>,
    /// State.
    pub status: InvoiceStatus,
    /// Set at finalization: the customer's prefix and sequence.
    pub number: Option<String>,
    /// When it was finalized.
    pub finalized_at: Option<Nanos>,
    /// When it was paid.
    pub paid_at: Option<Nanos>,
    /// When it was marked uncollectible.
    pub uncollectible_at: Option<Nanos>,
    /// When it was voided.
    pub voided_at: Option<Nanos>,
    /// When payment is due.
    pub due_date: Option<Nanos>,
    /// Payment attempts made.
    pub attempt_count: u32,
    /// What was paid, in minor units.
    pub amount_paid: i64,
    /// The customer's name, email and phone as they were at finalization (Stripe copies them onto
    /// the invoice then); `None` while a draft, which shows the customer's current ones.
    pub customer_details: Option<CustomerDetails>,
    /// Free text.
    pub description: Option<String>,
    /// Key–value metadata.
    pub metadata: Metadata,
}

impl Invoice {
    /// The draft `key` that `new` describes (its lines aside), made at `created` on `test_clock`,
    /// finalizing by itself at `finalizes_at`.
    pub(super) fn draft(
        key: Key,
        new: NewInvoice,
        test_clock: Option<Key>,
        created: Nanos,
        finalizes_at: Option<Nanos>,
        lines: Vec<InvoiceLine>,
    ) -> Invoice {
        let (period_start, period_end) = new.period.unwrap_or((created, created));
        Invoice {
            key,
            customer: new.customer,
            test_clock,
            subscription: new.subscription,
            billing_reason: new.billing_reason,
            collection_method: new.collection_method,
            auto_advance: new.auto_advance,
            finalizes_at,
            days_until_due: new.days_until_due,
            currency: new.currency,
            created,
            period_start,
            period_end,
            lines,
            status: InvoiceStatus::Draft,
            number: None,
            finalized_at: None,
            paid_at: None,
            uncollectible_at: None,
            voided_at: None,
            due_date: None,
            attempt_count: 0,
            amount_paid: 0,
            customer_details: None,
            description: new.description,
            metadata: new.metadata,
        }
    }

    /// Sum of the lines before credits.
    pub fn subtotal(&self) -> i64 {
        // Saturating: a sum past i64 (lines at their ceiling) must not wrap to a negative total.
        self.lines
            .iter()
            .fold(0i64, |sum, l| sum.saturating_add(l.amount))
    }

    /// Sum of credits applied.
    pub fn credited(&self) -> i64 {
        self.lines
            .iter()
            .flat_map(|l| l.credits.iter())
            .fold(0i64, |sum, c| sum.saturating_add(c.1))
    }

    /// What the customer owes once credits are applied.
    pub fn amount_due(&self) -> i64 {
        self.subtotal().saturating_sub(self.credited()).max(0)
    }

    /// What is still owed.
    pub fn amount_remaining(&self) -> i64 {
        match self.status {
            InvoiceStatus::Void => 0,
            _ => self.amount_due().saturating_sub(self.amount_paid).max(0),
        }
    }
}

/// One of the lists invoices are paged through, each kept in order of `(created, key)`.
///
/// Stripe's unfiltered list leaves out what belongs to a test clock, and its filters combine a
/// customer and a status; every combination is its own ordered run of the tenant's invoice lists,
/// so a page is a range walk whatever the filters (see [`Tenant::invoices_listed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InvoiceList {
    /// Invoices written outside any test clock; all of them (`None`) or those in one status.
    Unclocked(Option<InvoiceStatus>),
    /// One customer's invoices, clock or not; all of them or those in one status.
    Customer(Key, Option<InvoiceStatus>),
    /// One subscription's invoices; all of them or those in one status.
    Subscription(Key, Option<InvoiceStatus>),
}

/// A position in the tenant's invoice lists: the list, then the invoice's `(created, key)`.
pub(super) type InvoiceListEntry = (InvoiceList, Nanos, Key);

impl Invoice {
    /// The list positions this invoice holds in its current status.
    pub(super) fn list_entries(&self) -> impl Iterator<Item = InvoiceListEntry> {
        self.lists_of(None).chain(self.status_entries())
    }

    /// The positions that depend on its status: in the lists of one status.
    fn status_entries(&self) -> impl Iterator<Item = InvoiceListEntry> {
        self.lists_of(Some(self.status))
    }

    /// Its positions in the lists of `status` (`None`: of every status).
    fn lists_of(&self, status: Option<InvoiceStatus>) -> impl Iterator<Item = InvoiceListEntry> {
        let (created, key) = (self.created, self.key);
        [
            Some(InvoiceList::Customer(self.customer, status)),
            self.test_clock
                .is_none()
                .then_some(InvoiceList::Unclocked(status)),
            self.subscription
                .map(|sub| InvoiceList::Subscription(sub, status)),
        ]
        .into_iter()
        .flatten()
        .map(move |list| (list, created, key))
    }
}

/// The customer fields an invoice keeps from its finalization on.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerDetails {
    /// Name.
    pub name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
}

/// What an invoice update changes ([`Tenant::update_invoice`]); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvoiceUpdate {
    /// Whether it finalizes (a draft) and is collected without being asked.
    pub auto_advance: Option<bool>,
    /// When a draft finalizes by itself (a future instant).
    pub finalizes_at: Option<Nanos>,
    /// How a draft is collected.
    pub collection_method: Option<CollectionMethod>,
    /// A draft's days until due, set or cleared.
    pub days_until_due: Option<Option<u32>>,
    /// A draft's description, set or cleared.
    pub description: Option<Option<String>>,
    /// The whole metadata, replaced.
    pub metadata: Option<Metadata>,
}

/// Why an invoice refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceError {
    /// No such invoice.
    NotFound,
    /// Only open (or uncollectible) invoices can be voided; this one is in the given status.
    NotOpen(InvoiceStatus),
    /// Only drafts can be finalized or deleted; this one is in the given status.
    NotDraft(InvoiceStatus),
    /// Only open invoices can be paid; this one is in the given status.
    NotPayable(InvoiceStatus),
    /// Only one-off drafts can be deleted; a subscription's must be voided once finalized.
    FromSubscription,
    /// The customer's payment method declined the charge (the invoice stays open).
    PaymentFailed,
    /// Only invoices collected by sending them (`send_invoice`) can be sent.
    NotSendInvoice,
    /// A void invoice cannot be sent.
    NotSendable(InvoiceStatus),
}

/// A line to bill.
#[derive(Debug, Clone)]
pub struct NewInvoiceLine {
    /// Minor units, not negative.
    pub amount: i64,
    /// See [`InvoiceLine`].
    pub price: Option<String>,
    /// See [`InvoiceLine`].
    pub description: Option<String>,
}

/// A line of a new draft; quantities and amounts as the caller worked them out.
#[derive(Debug, Clone)]
pub struct DraftLine {
    /// See [`InvoiceLine`].
    pub amount: i64,
    /// See [`InvoiceLine`].
    pub price_key: Option<Key>,
    /// See [`InvoiceLine`].
    pub product: Option<Key>,
    /// See [`InvoiceLine`].
    pub quantity: Decimal,
    /// See [`InvoiceLine`].
    pub description: Option<String>,
    /// See [`InvoiceLine`].
    pub period: (Nanos, Nanos),
    /// See [`InvoiceLine`].
    pub source: LineSource,
    /// See [`InvoiceLine`].
    pub usage: Option<Usage>,
    /// See [`InvoiceLine`].
    pub creditable: bool,
    /// See [`InvoiceLine`].
    pub metadata: Metadata,
}

/// A new draft invoice.
#[derive(Debug, Clone)]
pub struct NewInvoice {
    /// See [`Invoice`].
    pub customer: Key,
    /// See [`Invoice`].
    pub currency: Currency,
    /// See [`Invoice`].
    pub subscription: Option<Key>,
    /// See [`Invoice`].
    pub billing_reason: BillingReason,
    /// See [`Invoice`].
    pub collection_method: CollectionMethod,
    /// See [`Invoice`].
    pub auto_advance: bool,
    /// See [`Invoice`].
    pub days_until_due: Option<u32>,
    /// See [`Invoice`]; defaults to the creation time.
    pub period: Option<(Nanos, Nanos)>,
    /// See [`Invoice`].
    pub lines: Vec<DraftLine>,
    /// See [`Invoice`].
    pub description: Option<String>,
    /// See [`Invoice`].
    pub metadata: Metadata,
}

/// Payment methods that decline every charge: Stripe's test cards for a failing customer.
const FAILING_PAYMENT_METHODS: &[&str] = &[
    "pm_card_chargeCustomerFail",
    "pm_card_visa_chargeDeclined",
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
];

/// Whether `payment_method` is one of the test payment methods whose charges are declined.
pub fn declines(payment_method: &str) -> bool {
    FAILING_PAYMENT_METHODS.contains(&payment_method)
}

impl Tenant {
    /// An invoice.
    pub fn invoice(&self, key: Key) -> Option<&Invoice> {
        self.invoices.get(&key)
    }

    /// The invoices whose keys are in `range`, oldest first (walk it backwards for newest first).
    pub fn invoices_in(
        &self,
        range: impl RangeBounds<Key>,
    ) -> impl DoubleEndedIterator<Item = &Invoice> {
        values_in(&self.invoices, range)
    }

    /// Creates and finalizes an invoice at the customer's now and spends eligible credits on it, line
    /// by line in order (see [`Tenant::finalize_invoice`] for the rules). It stays `open`, whatever
    /// is due: the emulator's one-shot invoice, which a test voids or reads.
    pub fn create_invoice(
        &mut self,
        customer: Key,
        currency: Currency,
        lines: Vec<NewInvoiceLine>,
    ) -> Key {
        let domain = self.domain_of(customer);
        let now = self.now_in(domain);
        self.run_due(domain, now);
        let key = self.next_key();
        let lines = lines
            .into_iter()
            .map(|l| {
                let draft = DraftLine {
                    amount: l.amount,
                    price_key: None,
                    product: None,
                    quantity: Decimal::ONE,
                    description: l.description,
                    period: (now, now),
                    source: LineSource::Direct,
                    usage: None,
                    creditable: true,
                    metadata: Metadata::new(),
                };
                InvoiceLine {
                    price: l.price,
                    ..InvoiceLine::from_draft(self.next_key(), draft)
                }
            })
            .collect();
        let new = NewInvoice {
            customer,
            currency,
            subscription: None,
            billing_reason: BillingReason::Manual,
            collection_method: CollectionMethod::ChargeAutomatically,
            auto_advance: false,
            days_until_due: None,
            period: None,
            lines: Vec::new(),
            description: None,
            metadata: Metadata::new(),
        };
        let invoice = Invoice::draft(key, new, clock_of(domain), now, None, lines);
        self.insert_invoice(invoice);
        self.record_invoice(ChangeKind::Created, key, now, None);
        self.keep_customer_details(key);
        self.apply_credits(key, now);
        self.set_invoice_status(key, InvoiceStatus::Open);
        if let Some(inv) = self.invoices.get_mut(&key) {
            inv.finalized_at = Some(now);
        }
        self.record_invoice(ChangeKind::Finalized, key, now, None);
        key
    }

    /// Creates a draft at `now` (the customer's now, or a clock's instant while it is being
    /// advanced). With `auto_advance`, it finalizes by itself `grace` later (at once when `grace`
    /// is zero). With `take_pending`, the customer's pending invoice items it may take come first
    /// (see `Tenant::pending_item_lines`).
    pub(super) fn create_draft_invoice_at(
        &mut self,
        new: NewInvoice,
        now: Nanos,
        grace: Nanos,
        take_pending: bool,
    ) -> Key {
        let domain = self.domain_of(new.customer);
        let key = self.next_key();
        let mut new = new;
        let items = if take_pending {
            self.take_pending_items(new.customer, new.currency, new.subscription, key, now)
        } else {
            Vec::new()
        };
        // Stripe's order: pending invoice items, then what the invoice was made for.
        let lines = items
            .into_iter()
            .chain(std::mem::take(&mut new.lines))
            .map(|l| InvoiceLine::from_draft(self.next_key(), l))
            .collect();
        let finalizes_at = new.auto_advance.then(|| now.saturating_add(grace));
        let invoice = Invoice::draft(key, new, clock_of(domain), now, finalizes_at, lines);
        self.insert_invoice(invoice);
        self.record_invoice(ChangeKind::Created, key, now, None);
        if let Some(at) = finalizes_at {
            self.schedule_event(domain, at, Event::FinalizeInvoice(key));
        }
        key
    }

    /// A copy of the invoice `key`, if it exists.
    fn invoice_snapshot(&self, key: Key) -> Option<Snapshot> {
        let inv = self.invoices.get(&key)?;
        Some(Snapshot::Invoice(Box::new(inv.clone())))
    }

    /// Records a change of `kind` of the invoice `key` at `at`, as it is now.
    fn record_invoice(&mut self, kind: ChangeKind, key: Key, at: Nanos, before: Option<Snapshot>) {
        if let Some(after) = self.invoice_snapshot(key) {
            self.record(kind, at, after, before);
        }
    }

    /// Copies the customer's name, email and phone onto the invoice `key`, which shows them from
    /// then on (Stripe does so at finalization).
    fn keep_customer_details(&mut self, key: Key) {
        let Some(customer) = self.invoices.get(&key).map(|i| i.customer) else {
            return;
        };
        let details = self
            .customers
            .get(&customer)
            .filter(|c| !c.deleted)
            .map(|c| CustomerDetails {
                name: c.name.clone(),
                email: c.email.clone(),
                phone: c.phone.clone(),
            })
            .unwrap_or_default();
        if let Some(inv) = self.invoices.get_mut(&key) {
            inv.customer_details = Some(details);
        }
    }

    fn insert_invoice(&mut self, invoice: Invoice) {
        self.invoice_lists.extend(invoice.list_entries());
        self.invoices.insert(invoice.key, invoice);
    }

    /// Moves an invoice to `status`, keeping its list positions in step: only its places in the
    /// lists of one status move (the cycle engine makes two moves per invoice it finalizes).
    fn set_invoice_status(&mut self, key: Key, status: InvoiceStatus) {
        if let Some(inv) = self.invoices.get_mut(&key) {
            for entry in inv.status_entries() {
                self.invoice_lists.remove(&entry);
            }
            inv.status = status;
            self.invoice_lists.extend(inv.status_entries());
        }
    }

    /// Finalizes a draft at the customer's now (see `Tenant::finalize_invoice_at`).
    pub fn finalize_invoice(&mut self, key: Key) -> Result<(), InvoiceError> {
        let inv = self.invoices.get(&key).ok_or(InvoiceError::NotFound)?;
        let now = self.caught_up_for(inv.customer);
        self.finalize_invoice_at(key, now)
    }

    /// Finalizes a draft at `now`:
    /// 1. metered lines are recomputed from their meters over their periods (late usage counts);
    /// 2. credits are applied to the lines they may pay, line by line in order, each line drawing
    ///    from lots in spending order (a lot is eligible when it is in the invoice's currency,
    ///    effective and unexpired at `period_end`, not voided, has something left, and its scope
    ///    covers the line);
    /// 3. the invoice is numbered and becomes `open`;
    /// 4. nothing due: `paid`; charged automatically: paid by the customer's payment method, or
    ///    left open with one more attempt when that method declines (and its subscription goes
    ///    `past_due`); sent: open, due `days_until_due` later.
    pub(super) fn finalize_invoice_at(&mut self, key: Key, now: Nanos) -> Result<(), InvoiceError> {
        self.finalize_draft(key, now)?;
        let inv = &self.invoices[&key];
        if inv.amount_due() == 0 {
            self.mark_paid(key, now, Payment::Succeeded);
        } else if inv.collection_method == CollectionMethod::ChargeAutomatically {
            let _ = self.attempt_payment(key, now, None);
        }
        Ok(())
    }

    /// Steps 1 to 3 of [`Tenant::finalize_invoice_at`]: the draft becomes `open`, nothing is
    /// charged yet.
    fn finalize_draft(&mut self, key: Key, now: Nanos) -> Result<(), InvoiceError> {
        let inv = self.invoices.get(&key).ok_or(InvoiceError::NotFound)?;
        if inv.status != InvoiceStatus::Draft {
            return Err(InvoiceError::NotDraft(inv.status));
        }
        self.recompute_usage(key);
        self.apply_credits(key, now);
        self.keep_customer_details(key);
        let customer = self.invoices[&key].customer;
        let number = self.customers.get_mut(&customer).map(|c| {
            let n = format!(
                "{}-{:04}",
                c.profile.invoice_prefix, c.profile.next_invoice_sequence
            );
            c.profile.next_invoice_sequence += 1;
            n
        });
        if let Some(inv) = self.invoices.get_mut(&key) {
            inv.number = number;
            inv.finalized_at = Some(now);
            inv.finalizes_at = None;
            if inv.collection_method == CollectionMethod::SendInvoice {
                let days = inv.days_until_due.unwrap_or(30) as i64;
                inv.due_date = Some(now.saturating_add(days * NANOS_PER_DAY));
            }
        }
        self.set_invoice_status(key, InvoiceStatus::Open);
        self.record_invoice(ChangeKind::Finalized, key, now, None);
        Ok(())
    }

    /// Recomputes every metered line of a draft from its meter.
    fn recompute_usage(&mut self, key: Key) {
        let inv = &self.invoices[&key];
        let customer = inv.customer;
        let updates: Vec<(usize, Decimal, i64, String)> = inv
            .lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let usage = l.usage?;
                let price = self.price(usage.price)?;
                let (from, to) = usage.window;
                let quantity = self.meter_usage(usage.meter, customer, from, to);
                Some((
                    i,
                    quantity,
                    minor_units(price.amount_for(quantity)),
                    price.line_description(
                        self.product(price.product).map_or("", |p| p.name.as_str()),
                        quantity,
                    ),
                ))
            })
            .collect();
        if let Some(inv) = self.invoices.get_mut(&key) {
            for (i, quantity, amount, description) in updates {
                inv.lines[i].quantity = quantity;
                inv.lines[i].amount = amount;
                inv.lines[i].description = Some(description);
            }
        }
    }

    /// Spends eligible credits on the creditable lines of `key` at `now`.
    fn apply_credits(&mut self, key: Key, now: Nanos) {
        let inv = &self.invoices[&key];
        let (customer, currency, period_end) = (inv.customer, inv.currency, inv.period_end);
        // Eligible: effective by the end of the billed period (Stripe judges grants there), and
        // still spendable now (an expired lot has been written off).
        let eligible =
            |l: &Lot| l.currency == currency && l.is_spendable(now) && l.effective_at <= period_end;
        // The order does not change while the invoice is built (only balances do). Most lines are
        // covered by the first lot, so that one is found without sorting; the whole order is sorted
        // only when a line needs more, and at most once. Sorted later, it leaves out lots emptied
        // meanwhile, which the walk would have passed over anyway (nothing left to take).
        let first = self.first_in_spend_order(customer, eligible);
        let mut rest: Option<Vec<Key>> = None;
        for index in 0..self.invoices[&key].lines.len() {
            let line = &self.invoices[&key].lines[index];
            if !line.creditable {
                continue;
            }
            let line_key = line.key;
            let mut left = Decimal::from(line.amount.max(0));
            let mut credits = Vec::new();
            let mut at = 0;
            loop {
                if left <= Decimal::ZERO {
                    break;
                }
                let lot = if at == 0 {
                    first
                } else {
                    let order = rest.get_or_insert_with(|| {
                        let mut order = self.lots_in_spend_order(customer, eligible);
                        order.retain(|k| Some(*k) != first);
                        order
                    });
                    order.get(at - 1).copied()
                };
                at += 1;
                let Some(lot) = lot else {
                    break;
                };
                let l = &self.lots[&lot];
                if !self.invoices[&key].lines[index].covered_by(&l.applicability) {
                    continue;
                }
                // Whole minor units only: a native lot may hold a fraction of a cent.
                let take = left.min(l.remaining).floor();
                if take <= Decimal::ZERO {
                    continue;
                }
                let entry = self.post(lot, EntryKind::Applied, take, now, Some((key, line_key)));
                self.lot_mut(lot).applied = true;
                left -= take;
                credits.push((entry, crate::model::money::to_minor_i64(take)));
            }
            if let Some(inv) = self.invoices.get_mut(&key) {
                inv.lines[index].credits = credits;
            }
        }
    }

    /// Marks an invoice paid: by a payment (`Payment::Succeeded`: charged, or nothing was due),
    /// which Stripe reports as `invoice.paid` then `invoice.payment_succeeded`, or outside Stripe
    /// (`Payment::OutOfBand`), which is `invoice.paid` alone.
    fn mark_paid(&mut self, key: Key, now: Nanos, payment: Payment) {
        if let Some(inv) = self.invoices.get_mut(&key) {
            inv.amount_paid = inv.amount_due();
            inv.paid_at = Some(now);
        }
        self.set_invoice_status(key, InvoiceStatus::Paid);
        self.record_invoice(ChangeKind::Paid, key, now, None);
        if payment == Payment::Succeeded {
            self.record_invoice(ChangeKind::PaymentSucceeded, key, now, None);
        }
        if let Some(sub) = self.invoices[&key].subscription {
            self.subscription_payment_settled(sub);
        }
    }

    /// Charges an open invoice to `payment_method`, or else to the customer's default one.
    fn attempt_payment(
        &mut self,
        key: Key,
        now: Nanos,
        payment_method: Option<&str>,
    ) -> Result<(), InvoiceError> {
        let inv = &self.invoices[&key];
        let declined = match payment_method {
            Some(pm) => declines(pm),
            None => self
                .customers
                .get(&inv.customer)
                .and_then(|c| c.profile.invoice_settings.default_payment_method.as_deref())
                .is_some_and(declines),
        };
        if let Some(inv) = self.invoices.get_mut(&key) {
            inv.attempt_count += 1;
        }
        if declined {
            self.record_invoice(ChangeKind::PaymentFailed, key, now, None);
            let inv = &self.invoices[&key];
            if let Some(sub) = inv.subscription {
                let first = inv.billing_reason == BillingReason::SubscriptionCreate;
                self.subscription_payment_failed(sub, first);
            }
            return Err(InvoiceError::PaymentFailed);
        }
        self.mark_paid(key, now, Payment::Succeeded);
        Ok(())
    }

    /// Pays an open invoice (a draft is finalized first): recorded as paid outside Stripe
    /// (`out_of_band`), or charged once to `payment_method`, else to the customer's default
    /// payment method.
    pub fn pay_invoice(
        &mut self,
        key: Key,
        out_of_band: bool,
        payment_method: Option<&str>,
    ) -> Result<(), InvoiceError> {
        let inv = self.invoices.get(&key).ok_or(InvoiceError::NotFound)?;
        let now = self.caught_up_for(inv.customer);
        let inv = &self.invoices[&key];
        if inv.status == InvoiceStatus::Draft {
            // Finalized without its automatic charge: this request makes the one attempt.
            self.finalize_draft(key, now)?;
            if self.invoices[&key].amount_due() == 0 {
                // Nothing due: paid by finalizing, as any $0 invoice is, whatever `out_of_band`.
                self.mark_paid(key, now, Payment::Succeeded);
                return Ok(());
            }
        }
        let inv = &self.invoices[&key];
        if !matches!(
            inv.status,
            InvoiceStatus::Open | InvoiceStatus::Uncollectible
        ) {
            return Err(InvoiceError::NotPayable(inv.status));
        }
        if out_of_band {
            self.mark_paid(key, now, Payment::OutOfBand);
            return Ok(());
        }
        self.attempt_payment(key, now, payment_method)
    }

    /// Sends a `send_invoice` invoice to its customer (nothing is mailed: the change is the
    /// `invoice.sent` event). A draft is finalized first, as by `finalize_invoice`; an open, paid
    /// or uncollectible one is sent as it is (again, if it was sent before).
    pub fn send_invoice(&mut self, key: Key) -> Result<(), InvoiceError> {
        let inv = self.invoices.get(&key).ok_or(InvoiceError::NotFound)?;
        if inv.collection_method != CollectionMethod::SendInvoice {
            return Err(InvoiceError::NotSendInvoice);
        }
        let now = self.caught_up_for(inv.customer);
        let status = self.invoices[&key].status;
        match status {
            InvoiceStatus::Void => return Err(InvoiceError::NotSendable(status)),
            InvoiceStatus::Draft => self.finalize_invoice_at(key, now)?,
            InvoiceStatus::Open | InvoiceStatus::Paid | InvoiceStatus::Uncollectible => {}
        }
        self.record_invoice(ChangeKind::Sent, key, now, None);
        Ok(())
    }

    /// Applies `update` to invoice `key` at its customer's now. A draft takes every field: turning
    /// `auto_advance` off unschedules its finalization, turning it on schedules it `grace` from
    /// now (unless it already was), and `finalizes_at` moves it (and turns `auto_advance` on). A
    /// finalized invoice takes only `metadata` and `auto_advance` (refused otherwise, nothing
    /// changed). Recorded as an update when anything changed.
    pub fn update_invoice(
        &mut self,
        key: Key,
        update: InvoiceUpdate,
        grace: Nanos,
    ) -> Result<(), InvoiceError> {
        let inv = self.invoices.get(&key).ok_or(InvoiceError::NotFound)?;
        let draft_only = update.finalizes_at.is_some()
            || update.collection_method.is_some()
            || update.days_until_due.is_some()
            || update.description.is_some();
        if inv.status != InvoiceStatus::Draft && draft_only {
            return Err(InvoiceError::NotDraft(inv.status));
        }
        let now = self.now_for(inv.customer);
        let before = self.invoice_snapshot(key);
        let domain = self.domain_of(inv.customer);
        let mut inv = inv.clone();
        if let Some(m) = update.metadata {
            inv.metadata = m;
        }
        if let Some(d) = update.description {
            inv.description = d;
        }
        if let Some(c) = update.collection_method {
            inv.collection_method = c;
            if c == CollectionMethod::ChargeAutomatically {
                inv.days_until_due = None;
            }
        }
        if let Some(days) = update.days_until_due {
            inv.days_until_due = days;
        }
        let mut schedule = None;
        if let Some(auto) = update.auto_advance {
            inv.auto_advance = auto;
        }
        if inv.status == InvoiceStatus::Draft {
            let wanted = match (update.finalizes_at, inv.auto_advance) {
                (Some(at), _) => {
                    inv.auto_advance = true;
                    Some(at)
                }
                (None, true) => Some(inv.finalizes_at.unwrap_or(now.saturating_add(grace))),
                (None, false) => None,
            };
            if wanted != inv.finalizes_at {
                inv.finalizes_at = wanted;
                schedule = wanted;
            }
        }
        let changed = before
            .as_ref()
            .is_none_or(|b| !matches!(b, Snapshot::Invoice(old) if **old == inv));
        self.invoices.insert(key, inv);
        if let Some(at) = schedule {
            // The scheduled step finalizes only a draft still due at that instant.
            self.schedule_event(domain, at, Event::FinalizeInvoice(key));
        }
        if changed {
            self.record_invoice(ChangeKind::Updated, key, now, before);
        }
        Ok(())
    }

    /// Turns a draft's automatic finalization on or off.
    pub fn set_invoice_auto_advance(&mut self, key: Key, auto: bool) {
        if let Some(inv) = self.invoices.get_mut(&key) {
            inv.auto_advance = auto;
        }
    }

    /// Marks an open invoice uncollectible.
    pub fn mark_invoice_uncollectible(&mut self, key: Key) -> Result<(), InvoiceError> {
        let inv = self.invoices.get(&key).ok_or(InvoiceError::NotFound)?;
        if inv.status != InvoiceStatus::Open {
            return Err(InvoiceError::NotPayable(inv.status));
        }
        let now = self.now_for(inv.customer);
        let before = self.invoice_snapshot(key);
        if let Some(inv) = self.invoices.get_mut(&key) {
            inv.uncollectible_at = Some(now);
        }
        self.set_invoice_status(key, InvoiceStatus::Uncollectible);
        self.record_invoice(ChangeKind::Updated, key, now, before);
        self.record_invoice(ChangeKind::MarkedUncollectible, key, now, None);
        Ok(())
    }

    /// Creates a one-off draft for `customer` at its now, with its pending invoice items in
    /// `currency` that wait for no subscription when `include_pending` (the invoice's currency is
    /// `currency`, else that of the oldest such pending item, else `fallback`).
    pub fn create_one_off_invoice(
        &mut self,
        mut new: NewInvoice,
        currency: Option<Currency>,
        fallback: Currency,
        include_pending: bool,
        grace: Nanos,
    ) -> Key {
        let now = self.now_for(new.customer);
        new.currency = currency
            .or_else(|| {
                let pending = self.invoice_items.pending.get(&new.customer)?;
                pending
                    .iter()
                    .filter_map(|k| self.invoice_items.items.get(k))
                    .find(|i| i.subscription.is_none())
                    .map(|i| i.currency)
            })
            .unwrap_or(fallback);
        self.create_draft_invoice_at(new, now, grace, include_pending)
    }

    /// Takes the line made by `source` off draft `key`; false when the invoice is not a draft.
    pub(super) fn remove_draft_line(&mut self, key: Key, source: LineSource) -> bool {
        match self.invoices.get_mut(&key) {
            Some(inv) if inv.status == InvoiceStatus::Draft => {
                inv.lines.retain(|l| l.source != source);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Deletes a one-off draft; its invoice items become pending again.
    pub fn delete_draft_invoice(&mut self, key: Key) -> Result<(), InvoiceError> {
        let inv = self.invoices.get(&key).ok_or(InvoiceError::NotFound)?;
        if inv.status != InvoiceStatus::Draft {
            return Err(InvoiceError::NotDraft(inv.status));
        }
        if inv.subscription.is_some() {
            return Err(InvoiceError::FromSubscription);
        }
        let inv = self.invoices.remove(&key).expect("found above");
        for entry in inv.list_entries() {
            self.invoice_lists.remove(&entry);
        }
        let at = self.now_for(inv.customer);
        self.record(
            ChangeKind::Deleted,
            at,
            Snapshot::Invoice(Box::new(inv.clone())),
            None,
        );
        for line in &inv.lines {
            if let LineSource::InvoiceItem(item) = line.source {
                self.release_invoice_item(item);
            }
        }
        Ok(())
    }

    /// Voids an open (or uncollectible) invoice and reinstates every credit it spent, each with its
    /// own entry. Credit returned to a lot that has expired (or been voided) meanwhile is written
    /// off at once.
    pub fn void_invoice(&mut self, key: Key) -> Result<(), InvoiceError> {
        let invoice = self.invoices.get(&key).ok_or(InvoiceError::NotFound)?;
        if !matches!(
            invoice.status,
            InvoiceStatus::Open | InvoiceStatus::Uncollectible
        ) {
            return Err(InvoiceError::NotOpen(invoice.status));
        }
        let now = self.caught_up_for(invoice.customer);
        let invoice = self.invoices[&key].clone();
        for line in &invoice.lines {
            for (entry, _) in &line.credits {
                let Some(applied) = self.entries.get(entry).cloned() else {
                    continue;
                };
                self.post(
                    applied.lot,
                    EntryKind::InvoiceVoided,
                    applied.amount,
                    now,
                    Some((key, line.key)),
                );
                let lot = &self.lots[&applied.lot];
                if lot.voided_at.is_some() {
                    self.write_off(applied.lot, EntryKind::Voided, now);
                } else if lot.is_expired(now) {
                    self.write_off(applied.lot, EntryKind::Expired, now);
                }
            }
        }
        if let Some(inv) = self.invoices.get_mut(&key) {
            inv.voided_at = Some(now);
        }
        self.set_invoice_status(key, InvoiceStatus::Void);
        self.record_invoice(ChangeKind::Voided, key, now, None);
        Ok(())
    }

    /// The invoices of `list` created in `created` (a half-open window `[from, until)`, `until`
    /// `None` for no end), strictly between the positions `after` and `before`, in list order
    /// (oldest first; walk it backwards for newest first).
    pub fn invoices_listed(
        &self,
        list: InvoiceList,
        created: (Nanos, Option<Nanos>),
        after: Bound<(Nanos, Key)>,
        before: Bound<(Nanos, Key)>,
    ) -> impl DoubleEndedIterator<Item = Key> + '_ {
        let at = |(t, k): (Nanos, Key)| (list, t, k);
        let window_lo = Bound::Included(at((created.0, Key::MIN)));
        let window_hi = match created.1 {
            Some(until) => Bound::Excluded(at((until, Key::MIN))),
            None => Bound::Included(at((Nanos::MAX, Key::MAX))),
        };
        let lo = tighter(window_lo, after.map(at), Ordering::Greater);
        let hi = tighter(window_hi, before.map(at), Ordering::Less);
        range_or_empty(&self.invoice_lists, lo, hi).map(|(_, _, k)| *k)
    }
}

/// Nanoseconds in a day.
const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The test clock of a domain.
fn clock_of(domain: Domain) -> Option<Key> {
    match domain {
        Domain::Clock(c) => Some(c),
        Domain::Tenant => None,
    }
}

/// A computed amount in whole minor units, half away from zero.
pub fn minor_units(amount: Decimal) -> i64 {
    crate::model::money::to_minor_i64(amount)
}

/// Of two bounds on one side of a range, the one that admits less: the greater lower bound
/// (`keep` = `Greater`) or the smaller upper bound (`Less`); at equal values an excluding bound.
fn tighter<T: Ord>(a: Bound<T>, b: Bound<T>, keep: Ordering) -> Bound<T> {
    fn value<T>(b: &Bound<T>) -> Option<&T> {
        match b {
            Bound::Included(v) | Bound::Excluded(v) => Some(v),
            Bound::Unbounded => None,
        }
    }
    let (va, vb) = match (value(&a), value(&b)) {
        (None, _) => return b,
        (_, None) => return a,
        (Some(x), Some(y)) => (x, y),
    };
    match va.cmp(vb) {
        Ordering::Equal if matches!(a, Bound::Excluded(_)) => a,
        Ordering::Equal => b,
        o if o == keep => a,
        _ => b,
    }
}

/// `set.range(lo, hi)`, or an empty walk where that range would be empty: `BTreeSet::range` panics
/// on a start past the end, which crossed filters and cursors can ask for.
fn range_or_empty<T: Ord + Copy>(
    set: &BTreeSet<T>,
    lo: Bound<T>,
    hi: Bound<T>,
) -> btree_set::Range<'_, T> {
    let empty = match (&lo, &hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    };
    match lo {
        // A valid range with nothing in it.
        Bound::Included(v) | Bound::Excluded(v) if empty => {
            set.range((Bound::Included(v), Bound::Excluded(v)))
        }
        _ => set.range((lo, hi)),
    }
}

/// How an invoice came to be paid, which decides the events it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payment {
    /// A payment succeeded (charged, or nothing was due).
    Succeeded,
    /// Marked paid outside Stripe (`paid_out_of_band`).
    OutOfBand,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(amount: i64) -> InvoiceLine {
        InvoiceLine::from_draft(
            1,
            DraftLine {
                amount,
                price_key: None,
                product: None,
                quantity: Decimal::ONE,
                description: None,
                period: (0, 0),
                source: LineSource::Direct,
                usage: None,
                creditable: false,
                metadata: Metadata::new(),
            },
        )
    }

    #[test]
    fn sums_past_the_integer_range_saturate_instead_of_wrapping() {
        let new = NewInvoice {
            customer: 1,
            currency: super::super::Currency::parse("usd").unwrap(),
            subscription: None,
            billing_reason: BillingReason::Manual,
            collection_method: super::super::CollectionMethod::ChargeAutomatically,
            auto_advance: false,
            days_until_due: None,
            period: None,
            lines: Vec::new(),
            description: None,
            metadata: Metadata::new(),
        };
        let mut inv = Invoice::draft(9, new, None, 0, None, vec![line(i64::MAX), line(5)]);
        assert_eq!(inv.subtotal(), i64::MAX);
        inv.lines[1].credits.push((2, i64::MAX));
        inv.lines[0].credits.push((3, 7));
        assert_eq!(inv.credited(), i64::MAX);
        assert_eq!(inv.amount_due(), 0);
        assert_eq!(inv.amount_remaining(), 0);
    }
}
