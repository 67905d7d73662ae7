//! async-stripe, the official Rust client, pointed at a test emulator.

use stripe::{Client, ClientBuilder};
use stripe_billing::billing_credit_grant::{
    CreateBillingCreditGrant, CreateBillingCreditGrantAmount,
    CreateBillingCreditGrantAmountMonetary, CreateBillingCreditGrantAmountType,
    CreateBillingCreditGrantApplicabilityConfig, CreateBillingCreditGrantApplicabilityConfigScope,
    CreateBillingCreditGrantApplicabilityConfigScopePriceType,
};

use super::Emu;

/// A client for `key`, with only the base URL changed.
pub fn client(emu: &Emu, key: &str) -> Client {
    ClientBuilder::new(key)
        .url(emu.running.url())
        .build()
        .expect("client")
}

/// The create request for a grant of `value` cents of USD, scoped to metered prices.
pub fn metered_usd(value: i64) -> CreateBillingCreditGrant {
    let mut amount =
        CreateBillingCreditGrantAmount::new(CreateBillingCreditGrantAmountType::Monetary);
    amount.monetary = Some(CreateBillingCreditGrantAmountMonetary::new(
        stripe_types::Currency::USD,
        value,
    ));
    let mut scope = CreateBillingCreditGrantApplicabilityConfigScope::new();
    scope.price_type = Some(CreateBillingCreditGrantApplicabilityConfigScopePriceType::Metered);
    CreateBillingCreditGrant::new(
        amount,
        CreateBillingCreditGrantApplicabilityConfig::new(scope),
    )
}
