//! Native spellings of model keys: Flexprice's prefixes in front of the same 26 characters the
//! Stripe facade uses, so `cus_X` (Stripe) and `cust_X` (native) name one customer, and a grant
//! application `cga_X` is the Stripe credit grant `credgr_test_X`.

/// Credit grant (rule).
pub const CREDIT_GRANT: &str = "cg_";
/// Credit grant application.
pub const APPLICATION: &str = "cga_";
/// Customer.
pub const CUSTOMER: &str = "cust_";
/// Plan.
pub const PLAN: &str = "plan_";
/// Subscription.
pub const SUBSCRIPTION: &str = "subs_";
/// Wallet.
pub const WALLET: &str = "wallet_";
/// Wallet transaction (a ledger entry).
pub const TRANSACTION: &str = "wtxn_";
/// Invoice.
pub const INVOICE: &str = "inv_";
/// Environment.
pub const ENVIRONMENT: &str = "env_";

/// The tenant and user every native object is stamped with (Flexprice's development tenant).
pub const TENANT_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Rendering an id and reading one back are the same for every API; only the prefixes differ.
pub use crate::ids::{parse as key_of, render};

use crate::ids::fnv1a64;

/// The environment a key is bound to: derived from the key string, so it is stable across restarts
/// and different for every tenant.
pub fn environment_of(api_key: &str) -> String {
    let hi = fnv1a64(0xcbf2_9ce4_8422_2325, api_key.as_bytes()) as u128;
    let lo = fnv1a64(0x8422_2325_cbf2_9ce4, api_key.as_bytes()) as u128;
    // Keep the top bits clear so the text parses back like any other id.
    render(ENVIRONMENT, ((hi << 64) | lo) >> 2)
}
