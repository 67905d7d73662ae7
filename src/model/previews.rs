//! Previews: the invoice a customer would get next, worked out and never stored. A preview may
//! imagine changes first (`create_preview`'s `subscription_details` and `invoice_items`): a
//! subscription's items changed or its end moved, a subscription not yet made, one-off charges
//! not yet added. Nothing of them is kept; the objects a preview imagines are named by the keys
//! the next objects of the world would get ([`Tenant::peek_keys`]).
//!
//! A preview bills what the invoice it imagines would bill, with the rules the cycle engine uses
//! (`cycles.rs`): a subscription's next invoice bills the metered usage of its current period so
//! far and its licensed items for the next period, or only that usage when the subscription ends
//! by then; a new subscription's first invoice bills its licensed items for the first period. The
//! customer's pending invoice items come first, the charges the preview adds before them (they
//! are the newest). Credits are projected onto the lines they would pay, without touching the
//! lots.

use std::collections::HashMap;

use rust_decimal::Decimal;

use super::cycles::{Bill, BilledItem};
use super::invoice::{minor_units, BillingReason, DraftLine, LineSource, NewInvoice};
use super::priced_subscriptions::{next_period_end, Checked};
use super::{
    Currency, Domain, Invoice, InvoiceLine, ItemChange, Metadata, NewInvoiceItem,
    NewPricedSubscription, PricedError, Tenant,
};
use crate::ids::Key;
use crate::time::Nanos;

/// What a preview of a subscription's next invoice imagines first; the default imagines nothing.
#[derive(Debug, Clone, Default)]
pub struct PreviewChanges {
    /// Item changes, checked as an update checks them.
    pub items: Vec<ItemChange>,
    /// Set or cleared.
    pub cancel_at_period_end: Option<bool>,
    /// Set (a future instant) or cleared.
    pub cancel_at: Option<Option<Nanos>>,
    /// The subscription ends now: the preview is its last invoice, the usage of its period so far.
    pub cancel_now: bool,
    /// One-off charges, in the order sent (the last is the newest).
    pub charges: Vec<NewInvoiceItem>,
}

impl Tenant {
    /// The invoice subscription `sub` would get next, as of its customer's now, had `changes`
    /// been made: at its period end, or when it ends if that comes first. Refused as an update
    /// with the same changes would be.
    pub fn preview_subscription_invoice(
        &self,
        sub: Key,
        changes: &PreviewChanges,
    ) -> Result<Invoice, PricedError> {
        let s = self.priced_subscription(sub).ok_or(PricedError::NotFound)?;
        if s.status.is_ended() {
            return Err(PricedError::Ended);
        }
        let now = self.now_for(s.customer);
        if changes.cancel_at.flatten().is_some_and(|c| c <= now) {
            return Err(PricedError::CancelAtNotFuture);
        }
        let planned = self.plan_items(s, &changes.items)?;
        let new_items = planned.iter().filter(|p| p.0.is_none()).count();
        let mut keys = self
            .peek_keys(new_items + changes.charges.len())
            .into_iter();
        let items = planned
            .iter()
            .map(|(existing, price, quantity, _)| {
                let (key, created) = match existing.and_then(|k| self.subscription_item(k)) {
                    Some(item) => (item.key, item.created),
                    None => (keys.next().unwrap_or_default(), now),
                };
                BilledItem {
                    key,
                    price: *price,
                    quantity: *quantity,
                    created,
                }
            })
            .collect();
        let (start, end) = (s.current_period_start, s.current_period_end);
        let at_period_end = changes
            .cancel_at_period_end
            .unwrap_or(s.cancel_at_period_end)
            .then_some(end);
        let cancel_at = changes.cancel_at.unwrap_or(s.cancel_at);
        let ends = if changes.cancel_now {
            Some(now)
        } else {
            match (cancel_at, at_period_end) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        .filter(|e| *e <= end);
        let (bills, created, period) = match ends {
            // Usage reported at the very instant of a cancellation now is billed too.
            Some(at) if changes.cancel_now => (
                vec![Bill::Metered(start, at.saturating_add(1))],
                at,
                (start, at),
            ),
            Some(at) => (vec![Bill::Metered(start, at)], at.max(now), (start, at)),
            None => {
                let next_end = next_period_end(s, end).unwrap_or(end);
                (
                    vec![Bill::Metered(start, end), Bill::Licensed(end, next_end)],
                    end.max(now),
                    (start, end),
                )
            }
        };
        let mut lines = self.item_lines(sub, s.customer, items, &bills);
        if changes.cancel_now {
            for line in &mut lines {
                line.period.1 = now;
            }
        }
        let new = NewInvoice {
            customer: s.customer,
            currency: s.currency,
            subscription: Some(sub),
            billing_reason: BillingReason::Upcoming,
            collection_method: s.collection_method,
            auto_advance: false,
            days_until_due: s.days_until_due,
            period: Some(period),
            lines: Vec::new(),
            description: None,
            metadata: Metadata::new(),
        };
        Ok(self.assemble_preview(
            sub,
            new,
            Some(sub),
            &changes.charges,
            &mut keys,
            created,
            now,
            lines,
        ))
    }

    /// The first invoice a subscription made of `new` would get now (its licensed items for the
    /// first period), with `charges` added; refused as the creation would be. It is named by the
    /// key the next object would get.
    pub fn preview_new_subscription(
        &self,
        new: &NewPricedSubscription,
        charges: &[NewInvoiceItem],
    ) -> Result<Invoice, PricedError> {
        let Checked {
            currency,
            quantities,
            now,
            period_end,
            ..
        } = self.check_new_subscription(new)?;
        let mut keys = self
            .peek_keys(1 + new.items.len() + charges.len())
            .into_iter();
        let sub = keys.next().unwrap_or_default();
        let items = new
            .items
            .iter()
            .zip(quantities)
            .map(|(item, quantity)| BilledItem {
                key: keys.next().unwrap_or_default(),
                price: item.price,
                quantity,
                created: now,
            })
            .collect();
        let lines = self.item_lines(sub, new.customer, items, &[Bill::Licensed(now, period_end)]);
        let invoice = NewInvoice {
            customer: new.customer,
            currency,
            subscription: Some(sub),
            billing_reason: BillingReason::Upcoming,
            collection_method: new.collection_method,
            auto_advance: false,
            days_until_due: new.days_until_due,
            period: Some((now, now)),
            lines: Vec::new(),
            description: None,
            metadata: Metadata::new(),
        };
        Ok(self.assemble_preview(sub, invoice, None, charges, &mut keys, now, now, lines))
    }

    /// The one-off invoice `customer` would get now from `charges` and its pending invoice items
    /// in `currency` (by default the newest charge's, else the newest pending item's); `None` when
    /// there is nothing to bill.
    pub fn preview_one_off_invoice(
        &self,
        customer: Key,
        currency: Option<Currency>,
        charges: &[NewInvoiceItem],
    ) -> Option<Invoice> {
        let now = self.now_for(customer);
        let currency = currency
            .or_else(|| charges.last().map(|c| c.currency))
            .or_else(|| self.newest_pending_currency(customer))?;
        let mut keys = self.peek_keys(1 + charges.len()).into_iter();
        let key = keys.next().unwrap_or_default();
        let new = NewInvoice {
            customer,
            currency,
            subscription: None,
            billing_reason: BillingReason::Upcoming,
            collection_method: super::CollectionMethod::ChargeAutomatically,
            auto_advance: false,
            days_until_due: None,
            period: Some((now, now)),
            lines: Vec::new(),
            description: None,
            metadata: Metadata::new(),
        };
        let invoice =
            self.assemble_preview(key, new, None, charges, &mut keys, now, now, Vec::new());
        (!invoice.lines.is_empty()).then_some(invoice)
    }

    /// A preview keyed `key` of `new` with, in order, `charges` (newest first), the customer's
    /// pending items in its currency (those of `subscription`, or of no subscription) and `lines`;
    /// each line keyed by the item that makes it, and its credits projected.
    #[allow(clippy::too_many_arguments)]
    fn assemble_preview(
        &self,
        key: Key,
        new: NewInvoice,
        subscription: Option<Key>,
        charges: &[NewInvoiceItem],
        keys: &mut impl Iterator<Item = Key>,
        created: Nanos,
        now: Nanos,
        lines: Vec<DraftLine>,
    ) -> Invoice {
        // Each charge is named as the invoice item it would be.
        let charge_lines: Vec<(Key, DraftLine)> = charges
            .iter()
            .map(|c| {
                let key = keys.next().unwrap_or_default();
                let line = DraftLine {
                    amount: minor_units(c.unit_amount.saturating_mul(Decimal::from(c.quantity))),
                    price_key: c.price,
                    product: c.product,
                    quantity: Decimal::from(c.quantity),
                    description: c.description.clone(),
                    period: (now, created),
                    source: LineSource::InvoiceItem(key),
                    usage: None,
                    // Billing credits never pay one-off charges.
                    creditable: false,
                    metadata: c.metadata.clone(),
                };
                (key, line)
            })
            .collect();
        let pending = self
            .pending_item_lines(new.customer, new.currency, subscription, now)
            .into_iter()
            .map(|(k, mut l)| {
                l.period.1 = created;
                (k, l)
            });
        // The newest first: the charges (the last sent is the newest), then the pending items.
        let lines = charge_lines
            .into_iter()
            .rev()
            .chain(pending)
            .chain(lines.into_iter().map(|l| {
                let k = match l.source {
                    LineSource::SubscriptionItem { item, .. } => item,
                    LineSource::InvoiceItem(item) => item,
                    LineSource::Direct => 0,
                };
                (k, l)
            }))
            .map(|(k, l)| InvoiceLine::from_draft(k, l))
            .collect();
        let test_clock = match self.domain_of(new.customer) {
            Domain::Clock(c) => Some(c),
            Domain::Tenant => None,
        };
        let mut invoice = Invoice::draft(key, new, test_clock, created, None, lines);
        self.project_credits(&mut invoice, now);
        invoice
    }

    /// Fills a projected invoice's line credits with what its customer's lots would pay at `now`,
    /// in the spending order finalization uses, without touching the lots.
    fn project_credits(&self, invoice: &mut Invoice, now: Nanos) {
        let (currency, period_end) = (invoice.currency, invoice.period_end);
        let order = self.lots_in_spend_order(invoice.customer, |l| {
            l.currency == currency && l.is_spendable(now) && l.effective_at <= period_end
        });
        let mut used: HashMap<Key, Decimal> = HashMap::new();
        for line in invoice.lines.iter_mut().filter(|l| l.creditable) {
            let mut left = Decimal::from(line.amount.max(0));
            for &lot_key in &order {
                if left <= Decimal::ZERO {
                    break;
                }
                let Some(lot) = self.lot(lot_key) else {
                    continue;
                };
                if !lot
                    .applicability
                    .covers(line.price.as_deref(), line.price_key)
                {
                    continue;
                }
                let spent = used.entry(lot_key).or_default();
                let take = left.min(lot.remaining - *spent).floor();
                if take <= Decimal::ZERO {
                    continue;
                }
                *spent += take;
                left -= take;
                line.credits
                    .push((lot_key, crate::model::money::to_minor_i64(take)));
            }
        }
    }
}
