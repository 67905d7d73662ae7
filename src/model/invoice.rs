//! Invoices that spend credits, and voiding them.
//!
//! The emulator has no billing engine: an invoice is created already finalized, with the lines the
//! caller gives, and credits are applied at once the way Stripe applies them at finalization.

use rust_decimal::Decimal;

use super::{Currency, Domain, EntryKind, Lot, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// An invoice's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        // The order does not change while the invoice is built (only balances do), so sort once.
        let order = self.lots_in_spend_order(customer, |l: &Lot| {
            l.currency == currency && l.is_spendable(now)
        });
        let mut out = Vec::with_capacity(lines.len());
        for line in lines {
            let line_key = self.next_key();
            let mut left = Decimal::from(line.amount.max(0));
            let mut credits = Vec::new();
            for &lot in &order {
                if left <= Decimal::ZERO {
                    break;
                }
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
        self.invoices.insert(
            key,
            Invoice {
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
            },
        );
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
            inv.status = InvoiceStatus::Void;
            inv.voided_at = Some(now);
        }
        Ok(())
    }
}
