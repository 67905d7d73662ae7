//! Stripe spellings of model keys.

use crate::ids::{encode, parse, Key};

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

/// `prefix` + the key's 26 characters.
pub fn render(prefix: &str, key: Key) -> String {
    let mut s = String::with_capacity(prefix.len() + 26);
    s.push_str(prefix);
    s.push_str(&encode(key));
    s
}

/// The key behind a Stripe id with `prefix`, if it is well formed.
pub fn key_of(id: &str, prefix: &str) -> Option<Key> {
    parse(id, prefix)
}
