//! Stripe spellings of model keys.

/// Customer prefix.
pub const CUSTOMER: &str = "cus_";
/// Credit grant prefix (test mode).
pub const CREDIT_GRANT: &str = "credgr_test_";
/// Credit balance transaction prefix (test mode).
pub const TRANSACTION: &str = "cbtxn_test_";
/// Test clock prefix.
pub const TEST_CLOCK: &str = "clock_";
/// Invoice prefix.
pub const INVOICE: &str = "in_";
/// Invoice line item prefix.
pub const INVOICE_LINE: &str = "il_";
/// Subscription prefix.
pub const SUBSCRIPTION: &str = "sub_";
/// Subscription item prefix.
pub const SUBSCRIPTION_ITEM: &str = "si_";
/// Price prefix.
pub const PRICE: &str = "price_";
/// Product prefix (a product made with its own `id` keeps that one).
pub const PRODUCT: &str = "prod_";
/// Meter prefix (test mode).
pub const METER: &str = "mtr_test_";

/// Rendering an id and reading one back are the same for every API; only the prefixes differ.
pub use crate::ids::{parse as key_of, render};
