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
/// Billing meter prefix.
pub const METER: &str = "mtr_";
/// Meter event summary prefix (a summary is computed, never stored: its id names its window).
pub const METER_EVENT_SUMMARY: &str = "mtrusg_";

/// Rendering an id and reading one back are the same for every API; only the prefixes differ.
pub use crate::ids::{parse as key_of, render};
