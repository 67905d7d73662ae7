//! Invoices that spend credits, and voiding them.
//!
//! The emulator has no billing engine: an invoice is created already finalized, with the lines the
//! caller gives, and credits are applied at once the way Stripe applies them at finalization.

use std::cmp::Ordering;
use std::collections::{btree_set, BTreeSet};
use std::ops::{Bound, RangeBounds};

use rust_decimal::Decimal;

use super::index::values_in;
use super::{Currency, Domain, EntryKind, Lot, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// An invoice's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InvoiceStatus {
    /// Finalized, not paid.
    Open,
    /// Voided; its credits were reinstated.
    Void,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLine {
    /// Identity.
    pub key: Key,
    /// Amount before credits, in minor units.
    pub amount: i64,
    /// Price id, matched against price-scoped lots.
    pub price: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// `Applied` entries that paid this line, with their amounts.
    pub credits: Vec<(Key, i64)>,
}

/// A finalized invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    /// Identity.
    pub key: Key,
    /// Who is billed.
    pub customer: Key,
    /// The customer's test clock, if any.
    pub test_clock: Option<Key>,
    /// Currency of every line.
    pub currency: Currency,
    /// Creation and finalization time (the customer's now).
    pub created: Nanos,
    /// Start of the billed period (the creation time: the emulator bills no subscription periods).
    pub period_start: Nanos,
    /// End of the billed period (the creation time); grant eligibility is judged at this instant.
    pub period_end: Nanos,
    /// Lines in order.
    pub lines: Vec<InvoiceLine>,
    /// State.
    pub status: InvoiceStatus,
    /// When it was voided.
    pub voided_at: Option<Nanos>,
}

impl Invoice {
    /// Sum of the lines before credits.
    pub fn subtotal(&self) -> i64 {
        self.lines.iter().map(|l| l.amount).sum()
    }

    /// Sum of credits applied.
    pub fn credited(&self) -> i64 {
        self.lines
            .iter()
            .flat_map(|l| l.credits.iter())
            .map(|c| c.1)
            .sum()
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
}

/// A position in the tenant's invoice lists: the list, then the invoice's `(created, key)`.
pub(super) type InvoiceListEntry = (InvoiceList, Nanos, Key);

impl Invoice {
    /// The list positions this invoice holds in its current status.
    pub(super) fn list_entries(&self) -> Vec<InvoiceListEntry> {
        let mut lists = vec![
            InvoiceList::Customer(self.customer, None),
            InvoiceList::Customer(self.customer, Some(self.status)),
        ];
        if self.test_clock.is_none() {
            lists.push(InvoiceList::Unclocked(None));
            lists.push(InvoiceList::Unclocked(Some(self.status)));
        }
        lists
            .into_iter()
            .map(|l| (l, self.created, self.key))
            .collect()
    }
}

/// Why an invoice refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceError {
    /// No such invoice.
    NotFound,
    /// Only open invoices can be voided; this one is not open.
    NotOpen,
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
    /// by line in order, each line drawing from lots in spending order. A lot is eligible when it is
    /// in the invoice's currency, effective and unexpired at `period_end`, not voided, has something
    /// left, and its scope covers the line's price.
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
        let eligible = |l: &Lot| l.currency == currency && l.is_spendable(now);
        // The order does not change while the invoice is built (only balances do). Most lines are
        // covered by the first lot, so that one is found without sorting; the whole order is sorted
        // only when a line needs more, and at most once. Sorted later, it leaves out lots emptied
        // meanwhile, which the walk would have passed over anyway (nothing left to take).
        let first = self.first_in_spend_order(customer, eligible);
        let mut rest: Option<Vec<Key>> = None;
        let mut out = Vec::with_capacity(lines.len());
        for line in lines {
            let line_key = self.next_key();
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
                if !l.applicability.covers(line.price.as_deref()) {
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
            out.push(InvoiceLine {
                key: line_key,
                amount: line.amount,
                price: line.price,
                description: line.description,
                credits,
            });
        }
        let invoice = Invoice {
            key,
            customer,
            test_clock: match domain {
                Domain::Clock(c) => Some(c),
                Domain::Tenant => None,
            },
            currency,
            created: now,
            period_start: now,
            period_end: now,
            lines: out,
            status: InvoiceStatus::Open,
            voided_at: None,
        };
        self.invoice_lists.extend(invoice.list_entries());
        self.invoices.insert(key, invoice);
        key
    }

    /// Voids an open invoice and reinstates every credit it spent, each with its own entry. Credit
    /// returned to a lot that has expired (or been voided) meanwhile is written off at once.
    pub fn void_invoice(&mut self, key: Key) -> Result<(), InvoiceError> {
        let invoice = self.invoices.get(&key).ok_or(InvoiceError::NotFound)?;
        if invoice.status != InvoiceStatus::Open {
            return Err(InvoiceError::NotOpen);
        }
        let domain = self.domain_of(invoice.customer);
        let now = self.now_in(domain);
        self.run_due(domain, now);
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
            for entry in inv.list_entries() {
                self.invoice_lists.remove(&entry);
            }
            inv.status = InvoiceStatus::Void;
            inv.voided_at = Some(now);
            self.invoice_lists.extend(inv.list_entries());
        }
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
