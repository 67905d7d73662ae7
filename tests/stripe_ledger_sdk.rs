//! The credit ledger through async-stripe, unmodified but for the base URL: its types must
//! deserialise every object the emulator renders (summary, transactions, invoices, test clocks).

mod common;

use common::{Emu, T0};
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
use stripe_billing::invoice::{RetrieveInvoice, VoidInvoiceInvoice};
use stripe_billing::test_helpers_test_clock::{
    AdvanceTestHelpersTestClock, CreateTestHelpersTestClock,
};
use stripe_billing::{
    BillingCreditBalanceTransactionType, BillingCreditGrantsResourceBalanceCreditType,
    BillingCreditGrantsResourceBalanceDebitType, InvoiceStatus,
};
use stripe_core::customer::CreateCustomer;
use stripe_types::{Currency, Expandable};

fn client(emu: &Emu, key: &str) -> stripe::Client {
    stripe::ClientBuilder::new(key)
        .url(emu.running.url())
        .build()
        .expect("client builds")
}

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
