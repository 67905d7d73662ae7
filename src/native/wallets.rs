//! Wallets: `GET /v1/customers/{id}/wallets`, `GET /v1/wallets/{id}`,
//! `GET /v1/wallets/{id}/balance/real-time`, `GET /v1/wallets/{id}/transactions`.
//!
//! A wallet is a view of the ledger (see `model::wallets`): its balance is what remains of its lots,
//! its transactions are the ledger entries of those lots. Amounts are rendered as Flexprice does:
//! `amount`/`balance` in major units of the currency (ledger minor units / 10^exponent), credits
//! in credits (that / the wallet's conversion rate), all as decimal strings.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::error::{NativeError, NativeResult};
use super::ids::{self, key_of, render as id};
use super::json::{dec, ts, Obj};
use super::list::Page;
use super::{base, customers, Ctx};
use crate::ids::Key;
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

/// The fields every wallet answer shares; `ledger` is the wallet's ledger balance in minor units.
fn wallet_fields(env: &str, w: &Wallet, ledger: Decimal) -> Obj {
    Obj::new()
        .put("id", id(ids::WALLET, w.key))
        .put("customer_id", id(ids::CUSTOMER, w.customer))
        .put("currency", w.currency.as_str())
        .put("balance", dec(major(ledger, w)))
        .put("credit_balance", dec(credits(ledger, w)))
        .put("wallet_status", "active")
        .put(
            "name",
            format!("Prepaid Wallet - {}", w.currency.as_str().to_uppercase()),
        )
        .put("description", "")
        .put("metadata", json!({}))
        .put("wallet_type", "PRE_PAID")
        .put("config", json!({"allowed_price_types": ["USAGE"]}))
        .put("conversion_rate", dec(w.conversion_rate))
        .put("topup_conversion_rate", dec(w.topup_conversion_rate))
        .put("environment_id", env)
        .put("alert_state", "ok")
}

/// Renders a wallet as Flexprice's `WalletResponse`.
pub fn render(env: &str, t: &Tenant, w: &Wallet) -> Value {
    let o = wallet_fields(env, w, t.wallet_balance(w.key).ledger);
    base(o, "published", w.created, w.updated).done()
}

fn lookup(t: &Tenant, id_: &str) -> NativeResult<Key> {
    key_of(id_, ids::WALLET)
        .filter(|k| t.wallet(*k).is_some())
        .ok_or_else(|| {
            NativeError::not_found(format!("Wallet with ID {id_} was not found"))
                .details(vec![("wallet_id", json!(id_))])
        })
}

/// `GET /v1/customers/{id}/wallets`: a JSON array, oldest wallet first.
pub fn of_customer(ctx: &mut Ctx, customer_id: &str) -> NativeResult<Value> {
    let customer = customers::lookup(ctx.tenant, customer_id)?;
    ctx.tenant.ensure_wallets(customer);
    let t = &*ctx.tenant;
    let items: Vec<Value> = t
        .wallets_of(customer)
        .into_iter()
        .filter_map(|k| t.wallet(k))
        .map(|w| render(&ctx.env, t, w))
        .collect();
    Ok(Value::Array(items))
}

/// `GET /v1/wallets/{id}`.
pub fn retrieve(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    let key = lookup(ctx.tenant, id_)?;
    let t = &*ctx.tenant;
    Ok(render(&ctx.env, t, t.wallet(key).expect("looked up above")))
}

/// `GET /v1/wallets/{id}/balance/real-time`: the wallet plus what can be spent now.
pub fn balance(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    let key = lookup(ctx.tenant, id_)?;
    let t = &*ctx.tenant;
    let w = t.wallet(key).expect("looked up above");
    let Balance { ledger, available } = t.wallet_balance(key);
    let o = wallet_fields(&ctx.env, w, ledger);
    let o = base(o, "published", w.created, w.updated)
        .put("real_time_balance", dec(major(available, w)))
        .put("real_time_credit_balance", dec(credits(available, w)))
        .put("balance_updated_at", ts(t.now_for(w.customer)))
        .put("current_period_usage", "0")
        .put("unpaid_invoices_amount", "0");
    Ok(o.done())
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
            m.insert("cga_id".into(), id(ids::APPLICATION, application));
            m.insert("grant_id".into(), id(ids::CREDIT_GRANT, grant));
            if let Some(a) = t.application(application) {
                m.insert(
                    "subscription_id".into(),
                    id(ids::SUBSCRIPTION, a.subscription),
                );
            }
        }
        LotOrigin::Direct => {
            m.insert("credit_grant_id".into(), id(STRIPE_GRANT, lot.key));
        }
    }
    m
}

fn render_transaction(
    env: &str,
    t: &Tenant,
    w: &Wallet,
    e: &Entry,
    before: Decimal,
    after: Decimal,
) -> Value {
    let lot = t.lot(e.lot).expect("an entry's lot exists");
    let credit = e.kind.is_credit();
    let (reference_type, reference_id) = match e.invoice {
        Some((invoice, _)) => ("INVOICE", id(ids::INVOICE, invoice)),
        None => match lot.origin {
            LotOrigin::Application { application, .. } => {
                ("REQUEST", id(ids::APPLICATION, application))
            }
            LotOrigin::Direct => ("EXTERNAL", id(STRIPE_GRANT, lot.key)),
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
    let idempotency = match (e.kind, lot.origin) {
        (EntryKind::Granted, LotOrigin::Application { application, .. }) => {
            id(ids::APPLICATION, application)
        }
        _ => id(ids::TRANSACTION, e.key),
    };
    let available = if e.kind == EntryKind::Granted {
        credits(lot.remaining, w)
    } else {
        Decimal::ZERO
    };
    let o = Obj::new()
        .put("id", id(ids::TRANSACTION, e.key))
        .put("wallet_id", id(ids::WALLET, w.key))
        .put("customer_id", id(ids::CUSTOMER, e.customer))
        .put("type", if credit { "credit" } else { "debit" })
        .put("amount", dec(major(e.amount, w)))
        .put("credit_amount", dec(credits(e.amount, w)))
        .put("credit_balance_before", dec(before))
        .put("credit_balance_after", dec(after))
        .put("transaction_status", "completed")
        .put("reference_type", reference_type)
        .put("reference_id", reference_id)
        .put("description", "")
        .put("metadata", sorted(&metadata))
        .put(
            "expiry_date",
            if credit {
                lot.expires_at.map_or(Value::Null, ts)
            } else {
                Value::Null
            },
        )
        .put("credits_available", dec(available))
        .put("transaction_reason", reason(e.kind, lot))
        .put(
            "priority",
            if credit {
                lot.priority.map_or(Value::Null, |p| json!(p))
            } else {
                Value::Null
            },
        )
        .put("currency", e.currency.as_str())
        .put("conversion_rate", dec(w.conversion_rate))
        .put("topup_conversion_rate", dec(w.topup_conversion_rate))
        .put("idempotency_key", idempotency)
        .put("environment_id", env);
    base(o, "published", e.created, e.created).done()
}

/// Go marshals a map with its keys sorted.
fn sorted(m: &Metadata) -> Value {
    let mut pairs: Vec<(&String, &String)> = m.iter().collect();
    pairs.sort();
    let mut out = Map::new();
    for (k, v) in pairs {
        out.insert(k.clone(), Value::String(v.clone()));
    }
    Value::Object(out)
}

/// `GET /v1/wallets/{id}/transactions`: the ledger entries of the wallet's lots, newest first (or
/// oldest first with `order=asc`), each with the wallet's credit balance before and after it.
pub fn transactions(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    let page = Page::read(&ctx.query)?;
    let key = lookup(ctx.tenant, id_)?;
    let t = &*ctx.tenant;
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
        rows.push((e, before, running));
    }
    if !page.ascending {
        rows.reverse();
    }
    Ok(page.render_rows(rows, |(e, before, after)| {
        render_transaction(&ctx.env, t, w, e, before, after)
    }))
}
