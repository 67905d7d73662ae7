//! The cycle engine: what a priced subscription bills, and when. It runs on the schedule and clocks
//! every timed change uses, so a test clock advance (or the tenant clock moving) across a period end
//! makes the invoice at the boundary's own instant, and an advance across several boundaries posts
//! each step in time order.
//!
//! The timeline of one subscription:
//!
//! - **Creation**: the first invoice (`subscription_create`) bills the licensed items for the first
//!   period in advance (metered items bill in arrears, so nothing yet). Charged automatically, it is
//!   finalized inside the create request; sent, it waits the grace period like any draft.
//! - **Each period end** `t`: a draft `subscription_cycle` invoice at `t`, billing the metered items
//!   for the period that ended (usage aggregated over `[start, t)`) and the licensed items for the
//!   next period; it finalizes one grace period later (the world's setting, one hour by default),
//!   when usage is recomputed (late events count) and credits are applied. The subscription rolls
//!   into its next period and the next end is scheduled.
//! - **Ending**: at `cancel_at`, or at the period end with `cancel_at_period_end`, a last invoice
//!   bills the metered usage not yet billed and the subscription is `canceled`. Cancelling at once
//!   bills that usage only with `invoice_now`.
//! - **Payment**: a declined charge makes the subscription `past_due`; a paid invoice makes a
//!   `past_due` one `active` again.
//!
//! Each of these invoices takes first the customer's pending invoice items in its currency made by
//! its creation (those tied to another subscription aside), newest first; credits never pay them.
//!
//! A scheduled step checks that the subscription is still where it expected it (same period end,
//! not ended), so an event left behind by a change is a no-op and nothing bills twice.

use rust_decimal::Decimal;

use super::invoice::{minor_units, BillingReason, DraftLine, LineSource, NewInvoice, Usage};
use super::priced_subscriptions::{CancellationReason, End, PricedStatus};
use super::{CollectionMethod, Event, Metadata, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// An item as its lines see it: the subscription's, or one a preview plans.
#[derive(Debug, Clone, Copy)]
pub(super) struct BilledItem {
    pub key: Key,
    pub price: Key,
    pub quantity: Option<u64>,
    pub created: Nanos,
}

/// Which items a set of lines bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bill {
    /// Licensed items, in advance, for this period.
    Licensed(Nanos, Nanos),
    /// Metered items, in arrears, for this period.
    Metered(Nanos, Nanos),
}

impl Tenant {
    /// Starts billing a subscription just created: its first invoice, and its first period end
    /// on the schedule.
    pub(super) fn start_billing(&mut self, sub: Key) {
        let Some(s) = self.priced_subscription(sub) else {
            return;
        };
        let now = self.now_for(s.customer);
        let (start, end) = (s.current_period_start, s.current_period_end);
        let charge = s.collection_method == CollectionMethod::ChargeAutomatically;
        let lines = self.subscription_lines(sub, &[Bill::Licensed(start, end)]);
        let grace = self.invoice_grace;
        let invoice = self.subscription_invoice(
            sub,
            BillingReason::SubscriptionCreate,
            (now, now),
            lines,
            now,
            grace,
        );
        if charge {
            let _ = self.finalize_invoice_at(invoice, now);
        }
        self.post_due_drafts(sub, now);
        self.schedule_cycle(sub);
    }

    /// With no grace period, a draft just made at `now` is due at once: posts what is due on the
    /// subscription's clock up to `now`, since a test clock's schedule otherwise waits for its next
    /// advance (the tenant clock's waits for the next request). Only for drafts made by a request,
    /// never inside a clock's own run.
    fn post_due_drafts(&mut self, sub: Key, now: Nanos) {
        if let Some(s) = self.priced_subscription(sub) {
            let domain = self.domain_of(s.customer);
            self.run_due(domain, now);
        }
    }

    /// Puts a subscription's next step on the schedule: its period end, or its cancellation if
    /// that comes first. A step already scheduled for the same instant makes no difference (the
    /// step checks the subscription's state when it runs).
    pub(super) fn schedule_cycle(&mut self, sub: Key) {
        let Some(s) = self.priced_subscription(sub) else {
            return;
        };
        if s.status.is_ended() {
            return;
        }
        let at = match self.subscription_end_due(sub) {
            Some(end) => end.min(s.current_period_end),
            None => s.current_period_end,
        };
        let domain = self.domain_of(s.customer);
        self.schedule_event(domain, at, Event::SubscriptionCycle(sub));
    }

    /// A subscription's step due at `at`: a period end, a cancellation, or both.
    pub(super) fn run_cycle(&mut self, sub: Key, at: Nanos) {
        let Some(s) = self.priced_subscription(sub) else {
            return;
        };
        if s.status.is_ended() {
            return;
        }
        let (start, period_end) = (s.current_period_start, s.current_period_end);
        let ends_now = self.subscription_end_due(sub).is_some_and(|e| e <= at);
        if at != period_end && !ends_now {
            // Left behind by a change; the step that matters is scheduled elsewhere.
            return;
        }
        let grace = self.invoice_grace;
        if ends_now {
            let lines = self.subscription_lines(sub, &[Bill::Metered(start, at)]);
            let reason = if at == period_end {
                BillingReason::SubscriptionCycle
            } else {
                BillingReason::SubscriptionUpdate
            };
            self.subscription_invoice(sub, reason, (start, at), lines, at, grace);
            let _ = self.end_subscription(
                sub,
                End {
                    at,
                    reason: CancellationReason::CancellationRequested,
                    requested: false,
                    invoice_now: false,
                    comment: None,
                    feedback: None,
                },
            );
            return;
        }
        let Some((_, _, next_end)) = self.advance_subscription_period(sub) else {
            return;
        };
        // Usage already recorded for the new period counts towards its alerts now.
        self.check_usage_alerts_of_subscription(sub);
        let lines = self.subscription_lines(
            sub,
            &[Bill::Metered(start, at), Bill::Licensed(at, next_end)],
        );
        self.subscription_invoice(
            sub,
            BillingReason::SubscriptionCycle,
            (start, at),
            lines,
            at,
            grace,
        );
        self.schedule_cycle(sub);
    }

    /// Bills what an ending subscription has not billed yet (the metered usage of its current
    /// period up to `at`), when its cancellation asked for a final invoice (`invoice_now`).
    pub(super) fn invoice_on_end(&mut self, sub: Key, at: Nanos) {
        let Some(s) = self.priced_subscription(sub) else {
            return;
        };
        let start = s.current_period_start;
        // Usage reported at the very instant of the cancellation is billed too (the request that
        // cancels comes after it).
        let mut lines = self.subscription_lines(sub, &[Bill::Metered(start, at.saturating_add(1))]);
        for line in &mut lines {
            line.period.1 = at;
        }
        let grace = self.invoice_grace;
        self.subscription_invoice(
            sub,
            BillingReason::SubscriptionUpdate,
            (start, at),
            lines,
            at,
            grace,
        );
        self.post_due_drafts(sub, at);
    }

    /// A draft invoice for `sub` at `at`, with the customer's pending invoice items it takes (see
    /// [`Tenant::pending_item_lines`]) then `lines`, that finalizes by itself `grace` later;
    /// recorded as the subscription's latest.
    fn subscription_invoice(
        &mut self,
        sub: Key,
        reason: BillingReason,
        period: (Nanos, Nanos),
        lines: Vec<DraftLine>,
        at: Nanos,
        grace: Nanos,
    ) -> Key {
        let s = self
            .priced_subscription(sub)
            .expect("checked by the caller");
        let new = NewInvoice {
            customer: s.customer,
            currency: s.currency,
            subscription: Some(sub),
            billing_reason: reason,
            collection_method: s.collection_method,
            auto_advance: true,
            days_until_due: s.days_until_due,
            period: Some(period),
            lines,
            description: None,
            metadata: Metadata::new(),
        };
        let invoice = self.create_draft_invoice_at(new, at, grace, true);
        self.set_subscription_latest_invoice(sub, invoice);
        invoice
    }

    /// The lines billing `sub`'s items as `bills` say, newest item first (Stripe's order for an
    /// invoice's subscription lines; items made together, newest key first, which is the last one
    /// listed in the request), each item's lines in `bills` order. Credits apply to lines in this
    /// order. A metered line's amount is what its meter counted so far (finalization counts
    /// again); a licensed line bills its quantity.
    fn subscription_lines(&self, sub: Key, bills: &[Bill]) -> Vec<DraftLine> {
        let Some(s) = self.priced_subscription(sub) else {
            return Vec::new();
        };
        let items: Vec<_> = s
            .items
            .iter()
            .filter_map(|&k| self.subscription_item(k))
            .map(|i| BilledItem {
                key: i.key,
                price: i.price,
                quantity: i.quantity,
                created: i.created,
            })
            .collect();
        self.item_lines(sub, s.customer, items, bills)
    }

    /// The lines billing `items` of subscription `sub` (of `customer`) as `bills` say, newest
    /// item first; see [`Tenant::subscription_lines`].
    pub(super) fn item_lines(
        &self,
        sub: Key,
        customer: Key,
        mut items: Vec<BilledItem>,
        bills: &[Bill],
    ) -> Vec<DraftLine> {
        items.sort_by_key(|i| std::cmp::Reverse((i.created, i.key)));
        let mut lines = Vec::new();
        for item in items {
            let item_key = item.key;
            for bill in bills {
                let Some(price) = self.price(item.price) else {
                    continue;
                };
                let (period, quantity, usage) = match (*bill, price.meter()) {
                    (Bill::Metered(from, to), Some(meter)) if price.is_metered() => {
                        let q = self.meter_usage(meter, customer, from, to);
                        (
                            (from, to),
                            q,
                            Some(Usage {
                                meter,
                                price: price.key,
                                window: (from, to),
                            }),
                        )
                    }
                    (Bill::Licensed(from, to), _) if !price.is_metered() => {
                        ((from, to), Decimal::from(item.quantity.unwrap_or(1)), None)
                    }
                    _ => continue,
                };
                lines.push(DraftLine {
                    amount: minor_units(price.amount_for(quantity)),
                    price_key: Some(price.key),
                    product: Some(price.product),
                    quantity,
                    description: Some(price.line_description(
                        self.product(price.product).map_or("", |p| p.name.as_str()),
                        quantity,
                    )),
                    period,
                    source: LineSource::SubscriptionItem {
                        subscription: sub,
                        item: item_key,
                    },
                    // Billing credits pay metered prices that have a meter, nothing else.
                    creditable: usage.is_some(),
                    usage,
                    metadata: Metadata::new(),
                });
            }
        }
        lines
    }

    /// An invoice of `subscription` was paid: an `incomplete` or `past_due` subscription is
    /// `active` again.
    pub(super) fn subscription_payment_settled(&mut self, subscription: Key) {
        if self
            .priced_subscription(subscription)
            .is_some_and(|s| matches!(s.status, PricedStatus::PastDue | PricedStatus::Incomplete))
        {
            self.set_subscription_status(subscription, PricedStatus::Active);
        }
    }

    /// A payment of an invoice of `subscription` was declined: it is `incomplete` when that was
    /// its first invoice (Stripe's `allow_incomplete`), `past_due` otherwise.
    pub(super) fn subscription_payment_failed(&mut self, subscription: Key, first: bool) {
        if self
            .priced_subscription(subscription)
            .is_some_and(|s| s.status == PricedStatus::Active)
        {
            let status = if first {
                PricedStatus::Incomplete
            } else {
                PricedStatus::PastDue
            };
            self.set_subscription_status(subscription, status);
        }
    }
}

impl Tenant {
    /// The subscription a customer's next invoice comes from: of those that have not ended, the
    /// one whose period ends first.
    pub fn next_invoicing_subscription(&self, customer: Key) -> Option<Key> {
        self.priced_subscriptions_of(customer)
            .into_iter()
            .filter_map(|k| self.priced_subscription(k))
            .filter(|s| !s.status.is_ended())
            .min_by_key(|s| (s.current_period_end, s.key))
            .map(|s| s.key)
    }
}
