//! The official Rust client, `async-stripe`, driving the grant lifecycle against a real emulator and
//! deserialising every response into its own types.

use crate::support;

use support::sdk::{client, metered_usd};

use stripe::StripeError;
use stripe_billing::billing_credit_grant::{
    CreateBillingCreditGrant, CreateBillingCreditGrantAmount,
    CreateBillingCreditGrantAmountMonetary, CreateBillingCreditGrantAmountType,
    CreateBillingCreditGrantApplicabilityConfig, CreateBillingCreditGrantApplicabilityConfigScope,
    CreateBillingCreditGrantApplicabilityConfigScopePrices, ExpireBillingCreditGrant,
    ListBillingCreditGrant, RetrieveBillingCreditGrant, UpdateBillingCreditGrant,
    VoidGrantBillingCreditGrant,
};
use stripe_core::customer::{
    CreateCustomer, DeleteCustomer, ListCustomer, RetrieveCustomer, RetrieveCustomerReturned,
};
use support::{Emu, T0};

#[tokio::test]
async fn grant_lifecycle_through_async_stripe() {
    let emu = Emu::start().await;
    let key = emu.tenant("async_stripe").await;
    let c = client(&emu, &key);

    let customer = CreateCustomer::new()
        .email("ada@example.com")
        .name("Ada")
        .send(&c)
        .await
        .expect("create customer");
    assert_eq!(customer.email.as_deref(), Some("ada@example.com"));
    let fetched = RetrieveCustomer::new(customer.id.clone())
        .send(&c)
        .await
        .expect("retrieve customer");
    match fetched {
        RetrieveCustomerReturned::Customer(c) => assert_eq!(c.id, customer.id),
        RetrieveCustomerReturned::DeletedCustomer(_) => panic!("customer is not deleted"),
    }
    let listed = ListCustomer::new().send(&c).await.expect("list customers");
    assert_eq!(listed.data.len(), 1);

    let grant = metered_usd(1_000)
        .customer(customer.id.as_str())
        .name("Purchased credits")
        .expires_at(T0 + 3_600)
        .send(&c)
        .await
        .expect("create grant");
    assert_eq!(grant.amount.monetary.as_ref().map(|m| m.value), Some(1_000));
    assert_eq!(grant.priority, Some(50));
    assert_eq!(grant.expires_at, Some(T0 + 3_600));
    assert!(grant.id.as_str().starts_with("credgr_test_"));

    // A price-scoped grant round-trips its price list (of metered prices: only those may be named).
    let price_a = emu.metered_price(&key, "calls_a").await;
    let price_b = emu.metered_price(&key, "calls_b").await;
    let mut amount =
        CreateBillingCreditGrantAmount::new(CreateBillingCreditGrantAmountType::Monetary);
    amount.monetary = Some(CreateBillingCreditGrantAmountMonetary::new(
        stripe_types::Currency::EUR,
        250,
    ));
    let mut scope = CreateBillingCreditGrantApplicabilityConfigScope::new();
    scope.prices = Some(vec![
        CreateBillingCreditGrantApplicabilityConfigScopePrices::new(price_a.as_str()),
        CreateBillingCreditGrantApplicabilityConfigScopePrices::new(price_b.as_str()),
    ]);
    let scoped = CreateBillingCreditGrant::new(
        amount,
        CreateBillingCreditGrantApplicabilityConfig::new(scope),
    )
    .customer(customer.id.as_str())
    .send(&c)
    .await
    .expect("create price-scoped grant");
    let prices: Vec<String> = scoped
        .applicability_config
        .scope
        .prices
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.id.map(|id| id.as_str().to_string()))
        .collect();
    assert_eq!(prices, [price_a, price_b]);

    let retrieved = RetrieveBillingCreditGrant::new(grant.id.clone())
        .send(&c)
        .await
        .expect("retrieve");
    assert_eq!(retrieved.name.as_deref(), Some("Purchased credits"));

    let updated = UpdateBillingCreditGrant::new(grant.id.clone())
        .expires_at(T0 + 7_200)
        .send(&c)
        .await
        .expect("update");
    assert_eq!(updated.expires_at, Some(T0 + 7_200));

    let page = ListBillingCreditGrant::new()
        .customer(customer.id.as_str())
        .limit(1)
        .send(&c)
        .await
        .expect("list");
    assert_eq!(page.data.len(), 1);
    assert!(page.has_more);
    assert_eq!(page.data[0].id, scoped.id, "newest first");

    let expired = ExpireBillingCreditGrant::new(grant.id.clone())
        .send(&c)
        .await
        .expect("expire");
    assert_eq!(expired.expires_at, Some(T0));
    let voided = VoidGrantBillingCreditGrant::new(scoped.id.clone())
        .send(&c)
        .await
        .expect("void");
    assert_eq!(voided.voided_at, Some(T0));

    // Errors come back as Stripe errors with Stripe's fields.
    match RetrieveBillingCreditGrant::new("credgr_test_missing")
        .send(&c)
        .await
    {
        Err(StripeError::Stripe(e, status)) => {
            assert_eq!(status, 404);
            assert_eq!(e.param.as_deref(), Some("id"));
            assert_eq!(
                e.message.as_deref(),
                Some("No such credit grant: 'credgr_test_missing'")
            );
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    match metered_usd(5).customer("cus_missing").send(&c).await {
        Err(StripeError::Stripe(e, status)) => {
            assert_eq!(status, 400);
            assert_eq!(e.param.as_deref(), Some("customer"));
        }
        other => panic!("expected a 400, got {other:?}"),
    }

    let deleted = DeleteCustomer::new(customer.id.clone())
        .send(&c)
        .await
        .expect("delete");
    assert_eq!(deleted.id, customer.id);
    // Retrieving a deleted customer answers the deleted stub, which the client decodes as such.
    match RetrieveCustomer::new(customer.id.clone())
        .send(&c)
        .await
        .expect("retrieve deleted")
    {
        RetrieveCustomerReturned::DeletedCustomer(d) => assert_eq!(d.id, customer.id),
        RetrieveCustomerReturned::Customer(_) => panic!("expected the deleted stub"),
    }
}
