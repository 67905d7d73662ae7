//! The credit ledger through async-stripe, unmodified but for the base URL: its types must
//! deserialise every object the emulator renders (summary, transactions, invoices, test clocks).

use crate::support;

use support::sdk::client;

use stripe_billing::billing_credit_balance_summary::{
    RetrieveForMyAccountBillingCreditBalanceSummary,
    RetrieveForMyAccountBillingCreditBalanceSummaryFilter,
    RetrieveForMyAccountBillingCreditBalanceSummaryFilterApplicabilityScope,
    RetrieveForMyAccountBillingCreditBalanceSummaryFilterApplicabilityScopePriceType,
    RetrieveForMyAccountBillingCreditBalanceSummaryFilterType,
};
use stripe_billing::billing_credit_balance_transaction::{
    ListBillingCreditBalanceTransaction, RetrieveBillingCreditBalanceTransaction,
};
use stripe_billing::billing_credit_grant::{
    CreateBillingCreditGrant, CreateBillingCreditGrantAmount,
    CreateBillingCreditGrantAmountMonetary, CreateBillingCreditGrantAmountType,
    CreateBillingCreditGrantApplicabilityConfig, CreateBillingCreditGrantApplicabilityConfigScope,
    CreateBillingCreditGrantApplicabilityConfigScopePriceType, ExpireBillingCreditGrant,
    VoidGrantBillingCreditGrant,
};
use stripe_billing::invoice::{ListInvoice, RetrieveInvoice, VoidInvoiceInvoice};
use stripe_billing::test_helpers_test_clock::{
    AdvanceTestHelpersTestClock, CreateTestHelpersTestClock,
};
use stripe_billing::{
    BillingCreditBalanceTransactionType, BillingCreditGrantsResourceBalanceCreditType,
    BillingCreditGrantsResourceBalanceDebitType, InvoiceStatus,
};
use stripe_core::customer::CreateCustomer;
use stripe_types::{Currency, Expandable, RangeQueryTs};
use support::{Emu, T0};

fn grant_request(customer: &str, value: i64) -> CreateBillingCreditGrant {
    let mut amount =
        CreateBillingCreditGrantAmount::new(CreateBillingCreditGrantAmountType::Monetary);
    amount.monetary = Some(CreateBillingCreditGrantAmountMonetary::new(
        Currency::USD,
        value,
    ));
    let mut scope = CreateBillingCreditGrantApplicabilityConfigScope::new();
    scope.price_type = Some(CreateBillingCreditGrantApplicabilityConfigScopePriceType::Metered);
    CreateBillingCreditGrant::new(
        amount,
        CreateBillingCreditGrantApplicabilityConfig::new(scope),
    )
    .customer(customer)
}

/// `(available, ledger)` in usd, through the SDK.
async fn balance(client: &stripe::Client, customer: &str) -> (i64, i64) {
    let mut filter = RetrieveForMyAccountBillingCreditBalanceSummaryFilter::new(
        RetrieveForMyAccountBillingCreditBalanceSummaryFilterType::ApplicabilityScope,
    );
    let mut scope = RetrieveForMyAccountBillingCreditBalanceSummaryFilterApplicabilityScope::new();
    scope.price_type = Some(
        RetrieveForMyAccountBillingCreditBalanceSummaryFilterApplicabilityScopePriceType::Metered,
    );
    filter.applicability_scope = Some(scope);
    let summary = RetrieveForMyAccountBillingCreditBalanceSummary::new(filter)
        .customer(customer)
        .send(client)
        .await
        .expect("summary");
    assert_eq!(summary.customer.id().as_str(), customer);
    match summary.balances.first() {
        None => (0, 0),
        Some(b) => (
            b.available_balance.monetary.as_ref().unwrap().value,
            b.ledger_balance.monetary.as_ref().unwrap().value,
        ),
    }
}

#[tokio::test]
async fn sdk_reads_the_ledger_and_voids_invoices() {
    let emu = Emu::start().await;
    let key = emu.tenant("sdk_ledger").await;
    let client = client(&emu, &key);
    let customer = CreateCustomer::new()
        .email("ada@example.com")
        .send(&client)
        .await
        .expect("customer");
    let cus = customer.id.as_str().to_string();

    let grant = grant_request(&cus, 1000)
        .send(&client)
        .await
        .expect("grant");
    assert_eq!(balance(&client, &cus).await, (1000, 1000));

    // Spend through the emulator's invoice helper, then read and void through the SDK.
    let r = emu
        .post(
            &key,
            "/_emulator/invoices",
            &format!("customer={cus}&currency=usd&lines[0][amount]=250&lines[0][price]=price_A&lines[1][amount]=100"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let invoice = RetrieveInvoice::new(r.id().as_str())
        .send(&client)
        .await
        .expect("the SDK deserialises the invoice");
    assert_eq!(invoice.amount_due, 0);
    assert_eq!(invoice.subtotal, 350);
    assert_eq!(invoice.status, Some(InvoiceStatus::Open));
    assert_eq!(invoice.lines.data.len(), 2);
    let line = &invoice.lines.data[0];
    assert_eq!(line.amount, 250);
    let credits = line.pretax_credit_amounts.as_ref().unwrap();
    assert_eq!(credits.len(), 1);
    assert_eq!(credits[0].amount, 250);
    let price = &line
        .pricing
        .as_ref()
        .unwrap()
        .price_details
        .as_ref()
        .unwrap()
        .price;
    assert_eq!(price.id().as_str(), "price_A");
    let totals = invoice.total_pretax_credit_amounts.as_ref().unwrap();
    assert_eq!(totals.iter().map(|c| c.amount).sum::<i64>(), 350);
    assert_eq!(balance(&client, &cus).await, (650, 650));

    let txn_id = credits[0]
        .credit_balance_transaction
        .as_ref()
        .unwrap()
        .id()
        .as_str()
        .to_string();
    let txn = RetrieveBillingCreditBalanceTransaction::new(txn_id.as_str())
        .expand(vec!["credit_grant".to_string()])
        .send(&client)
        .await
        .expect("transaction");
    assert_eq!(txn.type_, Some(BillingCreditBalanceTransactionType::Debit));
    let debit = txn.debit.as_ref().unwrap();
    assert_eq!(
        debit.type_,
        BillingCreditGrantsResourceBalanceDebitType::CreditsApplied
    );
    assert_eq!(debit.amount.monetary.as_ref().unwrap().value, 250);
    let applied = debit.credits_applied.as_ref().unwrap();
    assert_eq!(
        applied.invoice.id().as_ref().map(|i| i.as_str()),
        Some(r.id().as_str())
    );
    match &txn.credit_grant {
        Expandable::Object(g) => assert_eq!(g.id, grant.id),
        other => panic!("credit_grant not expanded: {other:?}"),
    }

    let voided = VoidInvoiceInvoice::new(r.id().as_str())
        .send(&client)
        .await
        .expect("void");
    assert_eq!(voided.status, Some(InvoiceStatus::Void));
    assert_eq!(balance(&client, &cus).await, (1000, 1000));

    // Voiding a grant that has been applied is refused, with Stripe's error shape.
    let refused = VoidGrantBillingCreditGrant::new(grant.id.clone())
        .send(&client)
        .await
        .expect_err("applied grants cannot be voided");
    match refused {
        stripe::StripeError::Stripe(e, 400) => {
            assert!(e
                .message
                .as_deref()
                .unwrap_or("")
                .contains("applied to an invoice"))
        }
        other => panic!("unexpected error: {other:?}"),
    }
    ExpireBillingCreditGrant::new(grant.id.clone())
        .send(&client)
        .await
        .expect("expire");
    assert_eq!(balance(&client, &cus).await, (0, 0));

    let list = ListBillingCreditBalanceTransaction::new()
        .customer(cus.as_str())
        .limit(100)
        .send(&client)
        .await
        .expect("list");
    let kinds: Vec<String> = list
        .data
        .iter()
        .rev()
        .map(|t| match (&t.credit, &t.debit) {
            (Some(c), None) => format!(
                "{:?} +{}",
                c.type_,
                c.amount.monetary.as_ref().unwrap().value
            ),
            (None, Some(d)) => format!(
                "{:?} -{}",
                d.type_,
                d.amount.monetary.as_ref().unwrap().value
            ),
            _ => panic!("a transaction is a credit or a debit"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "credits_granted +1000",
            "credits_applied -250",
            "credits_applied -100",
            "credits_application_invoice_voided +250",
            "credits_application_invoice_voided +100",
            "credits_expired -1000",
        ]
    );
    let granted = list.data.last().unwrap().credit.as_ref().unwrap();
    assert_eq!(
        granted.type_,
        BillingCreditGrantsResourceBalanceCreditType::CreditsGranted
    );
}

#[tokio::test]
async fn sdk_test_clock_advance_posts_due_entries() {
    let emu = Emu::start().await;
    let key = emu.tenant("sdk_clock").await;
    let client = client(&emu, &key);
    let clock = CreateTestHelpersTestClock::new(T0)
        .name("ledger")
        .send(&client)
        .await
        .expect("clock");
    let customer = CreateCustomer::new()
        .test_clock(clock.id.as_str())
        .send(&client)
        .await
        .expect("customer");
    let cus = customer.id.as_str().to_string();
    let grant = grant_request(&cus, 400)
        .effective_at(T0 + 100)
        .expires_at(T0 + 200)
        .send(&client)
        .await
        .expect("grant");
    assert_eq!(grant.test_clock.as_ref().unwrap().id(), &clock.id);
    assert_eq!(balance(&client, &cus).await, (0, 0));

    let advanced = AdvanceTestHelpersTestClock::new(clock.id.clone(), T0 + 150)
        .send(&client)
        .await
        .expect("advance");
    assert_eq!(advanced.frozen_time, T0 + 150);
    assert_eq!(balance(&client, &cus).await, (400, 400));
    AdvanceTestHelpersTestClock::new(clock.id.clone(), T0 + 200)
        .send(&client)
        .await
        .expect("advance");
    assert_eq!(balance(&client, &cus).await, (0, 0));

    let list = ListBillingCreditBalanceTransaction::new()
        .customer(cus.as_str())
        .credit_grant(grant.id.as_str())
        .send(&client)
        .await
        .expect("list");
    let got: Vec<(i64, i64)> = list
        .data
        .iter()
        .map(|t| (t.created, t.effective_at))
        .collect();
    assert_eq!(got, vec![(T0 + 200, T0 + 200), (T0 + 100, T0 + 100)]);
    assert!(list
        .data
        .iter()
        .all(|t| t.test_clock.as_ref().map(|c| c.id().as_str()) == Some(clock.id.as_str())));
}

#[tokio::test]
async fn sdk_lists_invoices_and_attaches_a_customer_to_a_new_clock() {
    let emu = Emu::start().await;
    let key = emu.tenant("sdk_invoice_list").await;
    let client = client(&emu, &key);
    let cus = CreateCustomer::new()
        .send(&client)
        .await
        .expect("customer")
        .id
        .as_str()
        .to_string();
    grant_request(&cus, 1000)
        .expires_at(T0 + 500)
        .send(&client)
        .await
        .expect("grant");
    let invoice = |amount: i64| {
        let (emu, key, cus) = (&emu, &key, &cus);
        async move {
            let r = emu
                .post(
                    key,
                    "/_emulator/invoices",
                    &format!("customer={cus}&currency=usd&lines[0][amount]={amount}"),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.id()
        }
    };
    let first = invoice(100).await;
    emu.freeze(&key, T0 + 100).await;
    let second = invoice(200).await;

    // Newest first, one per page, through the SDK's own query encoding of every filter.
    let list = |limit: i64| {
        ListInvoice::new()
            .customer(cus.as_str())
            .status(InvoiceStatus::Open)
            .created(RangeQueryTs::gte(T0))
            .collection_method(stripe_billing::InvoiceCollectionMethod::ChargeAutomatically)
            .limit(limit)
    };
    let page = list(1).send(&client).await.expect("first page");
    assert_eq!(page.url, "/v1/invoices");
    assert!(page.has_more);
    assert_eq!(page.data.len(), 1);
    assert_eq!(page.data[0].id.as_ref().unwrap().as_str(), second);
    let next = list(1)
        .starting_after(second.as_str())
        .send(&client)
        .await
        .expect("second page");
    assert!(!next.has_more);
    assert_eq!(next.data[0].id.as_ref().unwrap().as_str(), first);
    let exact = ListInvoice::new()
        .created(RangeQueryTs::eq(T0 + 100))
        .expand(vec!["data.customer".to_string()])
        .send(&client)
        .await
        .expect("exact second");
    assert_eq!(exact.data.len(), 1);
    match exact.data[0].customer.as_ref() {
        Some(Expandable::Object(c)) => assert_eq!(c.id.as_str(), cus),
        other => panic!("customer not expanded: {other:?}"),
    }

    // The customer moves onto a new clock, its grant's expiry with it.
    let clock = CreateTestHelpersTestClock::new(T0 + 200)
        .customer(cus.as_str())
        .name("attached")
        .send(&client)
        .await
        .expect("clock with customer");
    assert_eq!(clock.frozen_time, T0 + 200);
    assert_eq!(clock.name.as_deref(), Some("attached"));
    emu.freeze(&key, T0 + 1_000).await;
    assert_eq!(balance(&client, &cus).await, (700, 700));
    let on_clock = invoice(50).await;
    // Without `customer`, the invoice made on the clock is left out; with it, it is listed first.
    let all = ListInvoice::new().send(&client).await.expect("all");
    let ids: Vec<&str> = all
        .data
        .iter()
        .map(|i| i.id.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    let mine = ListInvoice::new()
        .customer(cus.as_str())
        .send(&client)
        .await
        .expect("customer's");
    assert_eq!(mine.data[0].id.as_ref().unwrap().as_str(), on_clock);
    assert_eq!(
        mine.data[0].test_clock.as_ref().map(|c| c.id().as_str()),
        Some(clock.id.as_str())
    );
    AdvanceTestHelpersTestClock::new(clock.id.clone(), T0 + 500)
        .send(&client)
        .await
        .expect("advance");
    assert_eq!(balance(&client, &cus).await, (0, 0));

    // A second clock cannot take it: the SDK surfaces the emulator's error.
    let err = CreateTestHelpersTestClock::new(T0 + 600)
        .customer(cus.as_str())
        .send(&client)
        .await
        .expect_err("already on a clock");
    match err {
        stripe::StripeError::Stripe(e, status) => {
            assert_eq!(status, 400);
            assert_eq!(e.param.as_deref(), Some("customer"));
        }
        other => panic!("unexpected error: {other:?}"),
    }
}
