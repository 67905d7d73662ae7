//! Wallets: `GET /v1/customers/{id}/wallets`, `GET /v1/wallets/{id}`,
//! `GET /v1/wallets/{id}/balance/real-time`, `GET /v1/wallets/{id}/transactions`.
//!
//! A wallet is a view of the ledger (see `model::wallets`): its balance is what remains of its lots,
//! its transactions are the ledger entries of those lots. Amounts are rendered as Flexprice does:
//! `amount`/`balance` in major units of the currency (ledger minor units / 10^exponent), credits
//! in credits (that / the wallet's conversion rate), all as decimal strings.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use super::error::NativeResult;
use super::find;
use super::ids;
use super::list::{Page, Rows};
use super::op::{Input, Operation};
use super::view::{Dec, Id, Stamp, Time};
use crate::model::{
    minor_to_credits, Balance, Category, Entry, EntryKind, Lot, LotOrigin, Metadata, Tenant, Wallet,
};

/// The Stripe spelling of a lot that came from a Stripe credit grant (shown in transaction
/// metadata, so a native reader can find the grant through the other API).
const STRIPE_GRANT: &str = "credgr_test_";

fn major(minor: Decimal, w: &Wallet) -> Decimal {
    minor_to_credits(minor, Decimal::ONE, w.currency.exponent())
}

fn credits(minor: Decimal, w: &Wallet) -> Decimal {
    minor_to_credits(minor, w.conversion_rate, w.currency.exponent())
}

/// `config`: what a wallet's credits may pay for.
#[derive(Debug, Serialize)]
struct WalletConfig {
    allowed_price_types: [&'static str; 1],
}

/// An empty JSON object (`metadata: {}`).
#[derive(Debug, Serialize)]
struct Empty {}

/// Flexprice's `WalletResponse`, with the real-time fields of the balance route when `live` is set.
#[derive(Debug, Serialize)]
pub struct WalletView<'a> {
    id: Id,
    customer_id: Id,
    currency: &'a str,
    balance: Dec,
    credit_balance: Dec,
    wallet_status: &'static str,
    name: String,
    description: &'static str,
    metadata: Empty,
    wallet_type: &'static str,
    config: WalletConfig,
    conversion_rate: Dec,
    topup_conversion_rate: Dec,
    environment_id: &'a str,
    alert_state: &'static str,
    #[serde(flatten)]
    stamp: Stamp,
    #[serde(flatten)]
    live: Option<RealTime>,
}

/// What `GET /v1/wallets/{id}/balance/real-time` adds.
#[derive(Debug, Serialize)]
struct RealTime {
    real_time_balance: Dec,
    real_time_credit_balance: Dec,
    balance_updated_at: Time,
    current_period_usage: &'static str,
    unpaid_invoices_amount: &'static str,
}

impl<'a> WalletView<'a> {
    /// A wallet whose ledger balance is `ledger` (minor units).
    fn new(env: &'a str, w: &'a Wallet, ledger: Decimal) -> Self {
        WalletView {
            id: Id(ids::WALLET, w.key),
            customer_id: Id(ids::CUSTOMER, w.customer),
            currency: w.currency.as_str(),
            balance: Dec(major(ledger, w)),
            credit_balance: Dec(credits(ledger, w)),
            wallet_status: "active",
            name: format!("Prepaid Wallet - {}", w.currency.as_str().to_uppercase()),
            description: "",
            metadata: Empty {},
            wallet_type: "PRE_PAID",
            config: WalletConfig {
                allowed_price_types: ["USAGE"],
            },
            conversion_rate: Dec(w.conversion_rate),
            topup_conversion_rate: Dec(w.topup_conversion_rate),
            environment_id: env,
            alert_state: "ok",
            stamp: Stamp::new("published", w.created, w.updated),
            live: None,
        }
    }

    /// The view of a wallet, its balance read from the ledger.
    pub fn of(env: &'a str, t: &Tenant, w: &'a Wallet) -> Self {
        Self::new(env, w, t.wallet_balance(w.key).ledger)
    }
}

/// `GET /v1/customers/{id}/wallets`: a JSON array, oldest wallet first.
#[derive(Debug)]
pub struct OfCustomer {
    id: String,
}

impl Operation for OfCustomer {
    type Done<'t> = (&'t Tenant, Vec<&'t Wallet>);

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(OfCustomer {
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<(&Tenant, Vec<&Wallet>)> {
        let customer = find::customer(t, &self.id)?;
        t.ensure_wallets(customer);
        let t = &*t;
        let wallets = t
            .wallets_of(customer)
            .into_iter()
            .filter_map(|k| t.wallet(k))
            .collect();
        Ok((t, wallets))
    }

    fn render<'a>(done: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        let (t, wallets) = done;
        wallets
            .iter()
            .map(|w| WalletView::of(env, t, w))
            .collect::<Vec<_>>()
    }
}

/// `GET /v1/wallets/{id}`.
#[derive(Debug)]
pub struct Retrieve {
    id: String,
}

impl Operation for Retrieve {
    type Done<'t> = (&'t Tenant, &'t Wallet);

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(Retrieve {
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<(&Tenant, &Wallet)> {
        let t = &*t;
        let key = find::wallet(t, &self.id)?;
        Ok((t, t.wallet(key).expect("looked up above")))
    }

    fn render<'a>(done: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        WalletView::of(env, done.0, done.1)
    }
}

/// `GET /v1/wallets/{id}/balance/real-time`: the wallet plus what can be spent now.
#[derive(Debug)]
pub struct RealTimeBalance {
    id: String,
}

impl Operation for RealTimeBalance {
    type Done<'t> = (&'t Tenant, &'t Wallet);

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(RealTimeBalance {
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<(&Tenant, &Wallet)> {
        let t = &*t;
        let key = find::wallet(t, &self.id)?;
        Ok((t, t.wallet(key).expect("looked up above")))
    }

    fn render<'a>(done: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        let (t, w) = *done;
        let Balance { ledger, available } = t.wallet_balance(w.key);
        let mut view = WalletView::new(env, w, ledger);
        view.live = Some(RealTime {
            real_time_balance: Dec(major(available, w)),
            real_time_credit_balance: Dec(credits(available, w)),
            balance_updated_at: Time(t.now_for(w.customer)),
            current_period_usage: "0",
            unpaid_invoices_amount: "0",
        });
        view
    }
}

fn reason(kind: EntryKind, lot: &Lot) -> &'static str {
    match kind {
        EntryKind::Granted => match (lot.origin, lot.category) {
            (LotOrigin::Application { .. }, _) => "SUBSCRIPTION_CREDIT_GRANT",
            (LotOrigin::Direct, Category::Promotional) => "FREE_CREDIT_GRANT",
            (LotOrigin::Direct, Category::Paid) => "PURCHASED_CREDIT_DIRECT",
        },
        EntryKind::InvoiceVoided => "INVOICE_VOID_REFUND",
        EntryKind::Applied => "CREDIT_ADJUSTMENT",
        EntryKind::Expired | EntryKind::Voided => "CREDIT_EXPIRED",
    }
}

fn lot_metadata(t: &Tenant, lot: &Lot) -> Metadata {
    let mut m = Metadata::new();
    match lot.origin {
        LotOrigin::Application { grant, application } => {
            m.insert("cga_id".into(), ids::render(ids::APPLICATION, application));
            m.insert("grant_id".into(), ids::render(ids::CREDIT_GRANT, grant));
            if let Some(a) = t.application(application) {
                m.insert(
                    "subscription_id".into(),
                    ids::render(ids::SUBSCRIPTION, a.subscription),
                );
            }
        }
        LotOrigin::Direct => {
            m.insert("credit_grant_id".into(), ids::render(STRIPE_GRANT, lot.key));
        }
    }
    m
}

/// A wallet transaction (`WalletTransactionResponse`): one ledger entry of one of the wallet's
/// lots.
#[derive(Debug, Serialize)]
pub struct TransactionView<'a> {
    id: Id,
    wallet_id: Id,
    customer_id: Id,
    #[serde(rename = "type")]
    kind: &'static str,
    amount: Dec,
    credit_amount: Dec,
    credit_balance_before: Dec,
    credit_balance_after: Dec,
    transaction_status: &'static str,
    reference_type: &'static str,
    reference_id: String,
    description: &'static str,
    /// Go marshals a map with its keys sorted.
    metadata: BTreeMap<String, String>,
    expiry_date: Option<Time>,
    credits_available: Dec,
    transaction_reason: &'static str,
    priority: Option<i64>,
    currency: &'a str,
    conversion_rate: Dec,
    topup_conversion_rate: Dec,
    idempotency_key: String,
    environment_id: &'a str,
    #[serde(flatten)]
    stamp: Stamp,
}

/// One row of a wallet's transaction list: an entry and the wallet's credit balance around it.
#[derive(Debug, Clone, Copy)]
pub struct Row<'t> {
    entry: &'t Entry,
    before: Decimal,
    after: Decimal,
}

impl<'a> TransactionView<'a> {
    fn new(env: &'a str, t: &'a Tenant, w: &'a Wallet, row: &Row<'a>) -> Self {
        let e = row.entry;
        let lot = t.lot(e.lot).expect("an entry's lot exists");
        let credit = e.kind.is_credit();
        let (reference_type, reference_id) = match e.invoice {
            Some((invoice, _)) => ("INVOICE", ids::render(ids::INVOICE, invoice)),
            None => match lot.origin {
                LotOrigin::Application { application, .. } => {
                    ("REQUEST", ids::render(ids::APPLICATION, application))
                }
                LotOrigin::Direct => ("EXTERNAL", ids::render(STRIPE_GRANT, lot.key)),
            },
        };
        let mut metadata = if e.kind == EntryKind::Granted {
            lot_metadata(t, lot)
        } else {
            Metadata::new()
        };
        if e.kind == EntryKind::Voided {
            metadata.insert("void".into(), "true".into());
        }
        let idempotency_key = match (e.kind, lot.origin) {
            (EntryKind::Granted, LotOrigin::Application { application, .. }) => {
                ids::render(ids::APPLICATION, application)
            }
            // A lot is written off once: Flexprice's expiry debit is keyed by the lot it empties
            // (the lot's credit transaction). A void is written the same way.
            (EntryKind::Expired | EntryKind::Voided, _) => {
                let lot_tx = t.entry_keys_of_lot(lot.key).iter().next().unwrap_or(e.key);
                ids::render(ids::TRANSACTION, lot_tx)
            }
            _ => ids::render(ids::TRANSACTION, e.key),
        };
        let credit_amount = credits(e.amount, w);
        // A top-up is priced at the wallet's top-up rate; what is spent or written off, at the
        // rate credits are consumed at.
        let amount = if e.kind == EntryKind::Granted {
            credit_amount * w.topup_conversion_rate
        } else {
            major(e.amount, w)
        };
        let available = if e.kind == EntryKind::Granted {
            credits(lot.remaining, w)
        } else {
            Decimal::ZERO
        };
        TransactionView {
            id: Id(ids::TRANSACTION, e.key),
            wallet_id: Id(ids::WALLET, w.key),
            customer_id: Id(ids::CUSTOMER, e.customer),
            kind: if credit { "credit" } else { "debit" },
            amount: Dec(amount),
            credit_amount: Dec(credit_amount),
            credit_balance_before: Dec(row.before),
            credit_balance_after: Dec(row.after),
            transaction_status: "completed",
            reference_type,
            reference_id,
            description: "",
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            expiry_date: if credit {
                lot.expires_at.map(Time)
            } else {
                None
            },
            credits_available: Dec(available),
            transaction_reason: reason(e.kind, lot),
            priority: if credit { lot.priority } else { None },
            currency: e.currency.as_str(),
            conversion_rate: Dec(w.conversion_rate),
            topup_conversion_rate: Dec(w.topup_conversion_rate),
            idempotency_key,
            environment_id: env,
            stamp: Stamp::new("published", e.created, e.created),
        }
    }
}

/// `GET /v1/wallets/{id}/transactions`: the ledger entries of the wallet's lots, newest first (or
/// oldest first with `order=asc`), each with the wallet's credit balance before and after it.
#[derive(Debug)]
pub struct Transactions {
    id: String,
    page: Page,
}

/// A wallet's transactions to show.
#[derive(Debug)]
pub struct Ledger<'t> {
    t: &'t Tenant,
    wallet: &'t Wallet,
    rows: Rows<Row<'t>>,
}

impl Operation for Transactions {
    type Done<'t> = Ledger<'t>;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(Transactions {
            page: Page::read(input.query)?,
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<Ledger<'_>> {
        let t = &*t;
        let key = find::wallet(t, &self.id)?;
        let w = t.wallet(key).expect("looked up above");
        let mut running = Decimal::ZERO;
        let mut rows = Vec::new();
        for k in t.wallet_entries(key) {
            let Some(e) = t.entry(k) else { continue };
            let before = running;
            let delta = credits(e.amount, w);
            running = if e.kind.is_credit() {
                running + delta
            } else {
                running - delta
            };
            rows.push(Row {
                entry: e,
                before,
                after: running,
            });
        }
        if !self.page.ascending {
            rows.reverse();
        }
        Ok(Ledger {
            t,
            wallet: w,
            rows: self.page.rows(rows),
        })
    }

    fn render<'a>(done: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        done.rows
            .view(|row| TransactionView::new(env, done.t, done.wallet, row))
    }
}
