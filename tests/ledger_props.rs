//! Ledger properties over random sequences of grants, invoices, voids, expiries and clock moves:
//! no balance goes negative, no entry is lost or changed, and every balance is the sum of entries.
//!
//! The first property drives the model directly (thousands of steps a second); the second drives a
//! real emulator over HTTP and checks the summary against the transactions it lists.

use crate::support;

use std::collections::BTreeMap;
use std::ops::Bound;

use credit_emulator::model::{
    Applicability, Category, Currency, Entry, EntryKind, Event, InvoiceList, LotOrigin, Metadata,
    NewCustomer, NewInvoiceLine, NewLot, Tenant,
};
use credit_emulator::time::NANOS_PER_SEC;
use proptest::prelude::*;
use rust_decimal::Decimal;

const T0: i64 = support::T0 * NANOS_PER_SEC;
const S: i64 = NANOS_PER_SEC;

/// `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone)]
enum Op {
    Grant {
        customer: usize,
        eur: bool,
        amount: i64,
        effective: Option<i64>,
        expires_after: Option<i64>,
        priority: i64,
        promotional: bool,
        scope: u8,
    },
    Invoice {
        customer: usize,
        eur: bool,
        lines: Vec<(i64, u8)>,
    },
    VoidInvoice(usize),
    VoidLot(usize),
    ExpireLot(usize),
    SetExpiry(usize, Option<i64>),
    TickTenant(i64),
    /// Advances the nth test clock.
    AdvanceClock(usize, i64),
    /// A new clock at the tenant's now plus this many seconds takes the customer (refusals are
    /// expected: a clock before the customer's history, a customer already on a clock).
    Attach {
        customer: usize,
        offset: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, any::<bool>(), 1..2000i64, prop::option::of(-50..300i64),
              prop::option::of(1..400i64), 0..3i64, any::<bool>(), 0..3u8)
            .prop_map(|(customer, eur, amount, effective, expires_after, priority, promotional, scope)| Op::Grant {
                customer, eur, amount, effective, expires_after, priority, promotional, scope,
            }),
        4 => (0..3usize, prop::bool::weighted(0.2), prop::collection::vec((0..1500i64, 0..3u8), 0..4))
            .prop_map(|(customer, eur, lines)| Op::Invoice { customer, eur, lines }),
        1 => any::<usize>().prop_map(Op::VoidInvoice),
        1 => any::<usize>().prop_map(Op::VoidLot),
        1 => any::<usize>().prop_map(Op::ExpireLot),
        1 => (any::<usize>(), prop::option::of(1..300i64)).prop_map(|(l, e)| Op::SetExpiry(l, e)),
        2 => (0..120i64).prop_map(Op::TickTenant),
        2 => (any::<usize>(), 1..120i64).prop_map(|(n, secs)| Op::AdvanceClock(n, secs)),
        1 => (0..3usize, -100..150i64).prop_map(|(customer, offset)| Op::Attach { customer, offset }),
    ]
}

fn scope(n: u8) -> Applicability {
    match n {
        0 => Applicability::Metered,
        1 => Applicability::Prices(vec!["price_A".into()].into()),
        _ => Applicability::Prices(vec!["price_A".into(), "price_B".into()].into()),
    }
}

fn price(n: u8) -> Option<String> {
    match n {
        0 => None,
        1 => Some("price_A".into()),
        _ => Some("price_B".into()),
    }
}

/// The key of the `n`th object (modulo how many there are), if there are any.
fn nth(keys: impl Iterator<Item = u128>, n: usize) -> Option<u128> {
    let keys: Vec<u128> = keys.collect();
    if keys.is_empty() {
        None
    } else {
        Some(keys[n % keys.len()])
    }
}

/// Every lot's key.
fn lots(t: &Tenant) -> impl Iterator<Item = u128> + '_ {
    t.lots_in(..).map(|l| l.key)
}

fn signed(e: &Entry) -> Decimal {
    if e.kind.is_credit() {
        e.amount
    } else {
        -e.amount
    }
}

/// Applies one operation the way the Stripe facade would (it checks what the model trusts it to).
fn apply(t: &mut Tenant, customers: &[u128], op: &Op) {
    match op {
        Op::Grant {
            customer,
            eur,
            amount,
            effective,
            expires_after,
            priority,
            promotional,
            scope: s,
        } => {
            let c = customers[*customer];
            let now = t.now_for(c);
            let effective_at = effective.map(|o| now + o * S);
            let start = effective_at.unwrap_or(now);
            t.create_lot(NewLot {
                customer: c,
                currency: Currency::parse(if *eur { "eur" } else { "usd" }).unwrap(),
                amount: Decimal::from(*amount),
                category: if *promotional {
                    Category::Promotional
                } else {
                    Category::Paid
                },
                applicability: scope(*s),
                priority: Some(*priority),
                name: None,
                metadata: Metadata::new(),
                effective_at,
                expires_at: expires_after.map(|d| start + d * S),
                origin: LotOrigin::Direct,
            });
        }
        Op::Invoice {
            customer,
            eur,
            lines,
        } => {
            let lines = lines
                .iter()
                .map(|(amount, p)| NewInvoiceLine {
                    amount: *amount,
                    price: price(*p),
                    description: None,
                })
                .collect();
            let currency = Currency::parse(if *eur { "eur" } else { "usd" }).unwrap();
            t.create_invoice(customers[*customer], currency, lines);
        }
        Op::VoidInvoice(n) => {
            if let Some(k) = nth(t.invoices_in(..).map(|i| i.key), *n) {
                let _ = t.void_invoice(k);
            }
        }
        Op::VoidLot(n) => {
            if let Some(k) = nth(lots(t), *n) {
                let _ = t.void_lot(k);
            }
        }
        Op::ExpireLot(n) => {
            if let Some(k) = nth(lots(t), *n) {
                let _ = t.expire_lot(k);
            }
        }
        Op::SetExpiry(n, after) => {
            if let Some(k) = nth(lots(t), *n) {
                let lot = t.lot(k).unwrap();
                let at = after.map(|d| lot.effective_at + d * S);
                if lot.voided_at.is_none() {
                    let _ = t.set_lot_expiry(k, at);
                }
            }
        }
        Op::TickTenant(secs) => {
            let to = t.tenant_now() + secs * S;
            t.freeze_clock(to).expect("forward is always allowed");
        }
        Op::AdvanceClock(n, secs) => {
            if let Some(clock) = nth(t.test_clocks_in(..).map(|c| c.key), *n) {
                let to = t.test_clock(clock).unwrap().frozen_time + secs * S;
                t.advance_test_clock(clock, to)
                    .expect("forward is always allowed");
            }
        }
        Op::Attach { customer, offset } => {
            let at = t.tenant_now() + offset * S;
            let _ = t.create_test_clock_with(at, None, customers[*customer]);
        }
    }
}

/// Every invariant of the ledger, checked after each step.
fn check(
    t: &Tenant,
    customers: &[u128],
    before: &BTreeMap<u128, Entry>,
) -> Result<(), TestCaseError> {
    // Nothing lost, nothing changed.
    for (k, e) in before {
        prop_assert_eq!(t.entry(*k), Some(e), "entry {} lost or changed", k);
    }
    // Every index holds exactly the objects it indexes: the entries of each customer and lot, the
    // invoice lists, and the rest.
    if let Err(why) = t.check_indexes() {
        prop_assert!(false, "indexes disagree: {}", why);
    }
    for e in t.entries_in(..) {
        prop_assert!(e.amount > Decimal::ZERO, "empty entry {:?}", e);
    }
    // Lists are in key order, newest first: keys and `created` must agree, per customer.
    for c in t.customers() {
        let keys = t.entry_keys_of(c.key);
        let created: Vec<i64> = keys.iter().map(|k| t.entry(k).unwrap().created).collect();
        prop_assert!(
            created.windows(2).all(|w| w[0] <= w[1]),
            "created goes backwards in key order: {:?}",
            created
        );
    }
    // Each lot: never negative, and exactly the sum of its entries.
    for lot in t.lots_in(..) {
        let sum: Decimal = t
            .entry_keys_of_lot(lot.key)
            .iter()
            .map(|k| signed(t.entry(k).unwrap()))
            .sum();
        prop_assert!(lot.remaining >= Decimal::ZERO, "negative lot {:?}", lot);
        prop_assert_eq!(lot.remaining, sum);
        prop_assert!(lot.remaining <= lot.amount);
        let now = t.now_for(lot.customer);
        // Write-offs are posted as soon as they are due, so nothing sits on a dead lot.
        if lot.voided_at.is_some() || lot.is_expired(now) || !lot.granted {
            prop_assert_eq!(
                lot.remaining,
                Decimal::ZERO,
                "dead lot holds credit: {:?}",
                lot
            );
        }
    }
    // Each customer: the ledger balance is the sum of entries, per currency; the available balance
    // never exceeds it (and equals it, since expiries are posted synchronously).
    for &c in customers {
        let mut sums: BTreeMap<Currency, Decimal> = BTreeMap::new();
        for k in t.entry_keys_of(c) {
            let e = t.entry(k).unwrap();
            *sums.entry(e.currency).or_default() += signed(e);
        }
        for (currency, b) in t.balances(c, |_| true) {
            let sum = sums.get(&currency).copied().unwrap_or_default();
            prop_assert_eq!(b.ledger, sum, "ledger of {} in {}", c, currency);
            prop_assert!(b.available >= Decimal::ZERO);
            prop_assert_eq!(b.available, b.ledger);
        }
        // The running sums behind the metered balance summary agree with visiting the lots.
        let metered = |l: &credit_emulator::model::Lot| {
            l.applicability
                .intersects(&credit_emulator::model::Applicability::Metered)
        };
        prop_assert_eq!(t.metered_balances(c), t.balances(c, metered));
    }
    // Invoices: never more credit than a line's amount, and exactly what their entries say.
    for inv in t.invoices_in(..) {
        for line in &inv.lines {
            let credited: i64 = line.credits.iter().map(|c| c.1).sum();
            prop_assert!(credited <= line.amount);
            for (entry, amount) in &line.credits {
                let e = t.entry(*entry).unwrap();
                prop_assert_eq!(e.kind, EntryKind::Applied);
                prop_assert_eq!(e.amount, Decimal::from(*amount));
                prop_assert_eq!(e.currency, inv.currency);
            }
        }
    }
    // Nothing due is left unposted in any clock's schedule.
    for (domain, at, _) in t.scheduled() {
        prop_assert!(
            at > t.now_in(domain),
            "{:?} event due at {} left",
            domain,
            at
        );
    }
    // A lot lives where its owner lives, and so do the events it still has due.
    for lot in t.lots_in(..) {
        prop_assert_eq!(lot.test_clock, t.customer(lot.customer).unwrap().test_clock);
    }
    for (domain, _, e) in t.scheduled() {
        if let Event::Effective(l) | Event::Expire(l) = e {
            prop_assert_eq!(domain, t.domain_of(t.lot(*l).unwrap().customer), "{:?}", e);
        }
    }
    // Every invoice is in exactly the lists its customer, clock and status place it in.
    for inv in t.invoices_in(..) {
        let mut lists = vec![
            InvoiceList::Customer(inv.customer, None),
            InvoiceList::Customer(inv.customer, Some(inv.status)),
        ];
        if inv.test_clock.is_none() {
            lists.extend([
                InvoiceList::Unclocked(None),
                InvoiceList::Unclocked(Some(inv.status)),
            ]);
        }
        let that_instant = (inv.created, Some(inv.created.saturating_add(1)));
        for l in lists {
            let listed = t
                .invoices_listed(l, that_instant, Bound::Unbounded, Bound::Unbounded)
                .any(|k| k == inv.key);
            prop_assert!(listed, "invoice {} missing from {:?}", inv.key, l);
        }
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES raises the count for a longer run.
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn model_ledger_invariants(ops in prop::collection::vec(op(), 1..60)) {
        let mut t = Tenant::new("sk_test_props", Some(7));
        t.freeze_clock(T0).unwrap();
        let clock = t.create_test_clock(T0, None);
        let customers = [
            t.create_customer(NewCustomer::default()),
            t.create_customer(NewCustomer::default()),
            t.create_customer(NewCustomer { test_clock: Some(clock), ..NewCustomer::default() }),
        ];
        for op in &ops {
            let before: BTreeMap<u128, Entry> =
                t.entries_in(..).map(|e| (e.key, e.clone())).collect();
            apply(&mut t, &customers, op);
            // What a request does first: post what is due on the tenant clock.
            t.catch_up();
            check(&t, &customers, &before)?;
        }
    }
}

// ---- over HTTP ----

#[derive(Debug, Clone)]
enum HttpOp {
    Grant {
        amount: i64,
        expires_after: Option<i64>,
        effective_after: Option<i64>,
    },
    Invoice(Vec<i64>),
    VoidInvoice(usize),
    VoidGrant(usize),
    ExpireGrant(usize),
    Tick(i64),
}

fn http_op() -> impl Strategy<Value = HttpOp> {
    prop_oneof![
        3 => (1..1000i64, prop::option::of(1..100i64), prop::option::of(1..50i64))
            .prop_map(|(amount, expires_after, effective_after)| HttpOp::Grant { amount, expires_after, effective_after }),
        3 => prop::collection::vec(0..800i64, 1..3).prop_map(HttpOp::Invoice),
        1 => any::<usize>().prop_map(HttpOp::VoidInvoice),
        1 => any::<usize>().prop_map(HttpOp::VoidGrant),
        1 => any::<usize>().prop_map(HttpOp::ExpireGrant),
        2 => (1..60i64).prop_map(HttpOp::Tick),
    ]
}

async fn http_case(ops: Vec<HttpOp>) -> Result<(), TestCaseError> {
    let emu = support::Emu::start().await;
    let key = emu.tenant("props").await;
    let cus = emu.customer(&key, "").await;
    let mut now = support::T0;
    let mut grants: Vec<String> = Vec::new();
    let mut invoices: Vec<String> = Vec::new();
    for op in ops {
        match op {
            HttpOp::Grant {
                amount,
                expires_after,
                effective_after,
            } => {
                let effective = now + effective_after.unwrap_or(0);
                let mut extra = format!("effective_at={effective}");
                if let Some(e) = expires_after {
                    extra.push_str(&format!("&expires_at={}", effective + e));
                }
                grants.push(emu.grant(&key, &cus, amount, &extra).await);
            }
            HttpOp::Invoice(lines) => {
                let mut form = format!("customer={cus}&currency=usd");
                for (i, a) in lines.iter().enumerate() {
                    form.push_str(&format!("&lines[{i}][amount]={a}"));
                }
                let r = emu.post(&key, "/_emulator/invoices", &form).await;
                prop_assert_eq!(r.status, 200, "{}", r.text);
                prop_assert!(r.body["amount_due"].as_i64().unwrap() >= 0);
                invoices.push(r.id());
            }
            HttpOp::VoidInvoice(n) if !invoices.is_empty() => {
                let id = &invoices[n % invoices.len()];
                let r = emu.post(&key, &format!("/v1/invoices/{id}/void"), "").await;
                prop_assert!(r.status == 200 || r.status == 400, "{}", r.text);
            }
            HttpOp::VoidGrant(n) if !grants.is_empty() => {
                let id = &grants[n % grants.len()];
                let r = emu
                    .post(&key, &format!("/v1/billing/credit_grants/{id}/void"), "")
                    .await;
                prop_assert!(r.status == 200 || r.status == 400, "{}", r.text);
            }
            HttpOp::ExpireGrant(n) if !grants.is_empty() => {
                let id = &grants[n % grants.len()];
                let r = emu
                    .post(&key, &format!("/v1/billing/credit_grants/{id}/expire"), "")
                    .await;
                prop_assert!(r.status == 200 || r.status == 400, "{}", r.text);
            }
            HttpOp::Tick(secs) => {
                now += secs;
                emu.freeze(&key, now).await;
            }
            _ => {}
        }
        // After every step: the summary equals the sum of the listed transactions, in total and per
        // grant, and nothing is negative.
        let txns = list_all(&emu, &key, &format!("customer={cus}")).await?;
        let (available, ledger) = summary(&emu, &key, &format!("customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered")).await?;
        prop_assert_eq!(ledger, sum(&txns));
        prop_assert_eq!(available, ledger);
        prop_assert!(ledger >= 0);
        for g in &grants {
            let (_, one) = summary(
                &emu,
                &key,
                &format!("customer={cus}&filter[type]=credit_grant&filter[credit_grant]={g}"),
            )
            .await?;
            let of_grant: Vec<serde_json::Value> = txns
                .iter()
                .filter(|t| t["credit_grant"] == g.as_str())
                .cloned()
                .collect();
            prop_assert_eq!(one, sum(&of_grant));
            prop_assert!(one >= 0);
        }
    }
    Ok(())
}

async fn list_all(
    emu: &support::Emu,
    key: &str,
    query: &str,
) -> Result<Vec<serde_json::Value>, TestCaseError> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = emu
            .get(
                key,
                &format!("/v1/billing/credit_balance_transactions?{query}&limit=7{cursor}"),
            )
            .await;
        prop_assert_eq!(r.status, 200, "{}", r.text);
        let data = r.body["data"].as_array().unwrap().clone();
        if let Some(last) = data.last() {
            cursor = format!("&starting_after={}", last["id"].as_str().unwrap());
        }
        out.extend(data);
        if r.body["has_more"] != true {
            return Ok(out);
        }
    }
}

async fn summary(emu: &support::Emu, key: &str, query: &str) -> Result<(i64, i64), TestCaseError> {
    let r = emu
        .get(key, &format!("/v1/billing/credit_balance_summary?{query}"))
        .await;
    prop_assert_eq!(r.status, 200, "{}", r.text);
    Ok(match r.body["balances"].as_array().unwrap().first() {
        None => (0, 0),
        Some(b) => (
            b["available_balance"]["monetary"]["value"]
                .as_i64()
                .unwrap(),
            b["ledger_balance"]["monetary"]["value"].as_i64().unwrap(),
        ),
    })
}

fn sum(txns: &[serde_json::Value]) -> i64 {
    txns.iter()
        .map(|t| {
            if t["type"] == "credit" {
                t["credit"]["amount"]["monetary"]["value"].as_i64().unwrap()
            } else {
                -t["debit"]["amount"]["monetary"]["value"].as_i64().unwrap()
            }
        })
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    #[test]
    fn http_summary_equals_sum_of_transactions(ops in prop::collection::vec(http_op(), 1..25)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(http_case(ops))?;
    }
}
