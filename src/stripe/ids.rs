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
/// Product prefix (a product may instead carry the id its creator chose).
pub const PRODUCT: &str = "prod_";
/// Price prefix.
pub const PRICE: &str = "price_";
/// Billing meter prefix.
pub const METER: &str = "mtr_";
/// Subscriptions.
pub const SUBSCRIPTION: &str = "sub_";
/// Subscription items.
pub const SUBSCRIPTION_ITEM: &str = "si_";
/// Invoice items.
pub const INVOICE_ITEM: &str = "ii_";
/// Lines of preview invoices.
pub const PREVIEW_LINE: &str = "il_tmp_";
/// Preview invoices, which are never stored.
pub const UPCOMING_INVOICE: &str = "upcoming_in_";
/// Meter event summary prefix (a summary is computed, never stored: its id names its window).
pub const METER_EVENT_SUMMARY: &str = "mtrusg_";

/// v2 meter event adjustment prefix.
pub const METER_EVENT_ADJUSTMENT: &str = "mtr_event_adj_";

/// v2 meter event session prefix.
pub const METER_EVENT_SESSION: &str = "mtr_sess_";

/// A meter event session's authentication token prefix (Stripe's ephemeral keys').
pub const SESSION_TOKEN: &str = "ek_test_";

/// Billing alert prefix.
pub const ALERT: &str = "alrt_";

/// Webhook endpoint prefix.
pub const WEBHOOK_ENDPOINT: &str = "we_";

/// Rendering an id and reading one back are the same for every API; only the prefixes differ.
pub use crate::ids::{parse as key_of, render, text_of, IdText};

/// Events (`evt_…`).
pub const EVENT: &str = "evt_";
