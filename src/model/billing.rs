//! The subscription side of a tenant's world: plans, subscriptions, grant rules, their applications
//! and wallets, with their indexes. Kept in one struct so that the tenant gains a single field.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Application, GrantRule, Plan, Subscription, Wallet};
use crate::ids::Key;

/// Plans, subscriptions, grant rules, applications and wallets of one tenant. Only the model reads
/// these fields; everyone else asks the [`super::Tenant`].
#[derive(Debug, Default)]
pub(super) struct Billing {
    /// Every plan by key.
    pub(super) plans: BTreeMap<Key, Plan>,
    /// Every subscription by key.
    pub(super) subscriptions: BTreeMap<Key, Subscription>,
    /// Subscriptions per customer.
    pub(super) subscriptions_by_customer: HashMap<Key, BTreeSet<Key>>,
    /// Every grant rule by key (keys are creation-ordered).
    pub(super) rules: BTreeMap<Key, GrantRule>,
    /// Grant rules that target (or came from) each plan.
    pub(super) rules_by_plan: HashMap<Key, BTreeSet<Key>>,
    /// Grant rules of each subscription.
    pub(super) rules_by_subscription: HashMap<Key, BTreeSet<Key>>,
    /// Every application by key; an applied application's lot has the same key.
    pub(super) applications: BTreeMap<Key, Application>,
    /// Applications per grant rule. Ordered maps here and in `lot_wallet`: one entry is added per
    /// grant, and keys are time-ordered, so an insert lands at the right edge, near the last one,
    /// where a hash table would touch a cold bucket and rehash everything as it grows.
    pub(super) applications_by_rule: BTreeMap<Key, BTreeSet<Key>>,
    /// Applications still to run (pending or failed) per subscription.
    pub(super) open_applications_by_subscription: HashMap<Key, BTreeSet<Key>>,
    /// Every wallet by key.
    pub(super) wallets: BTreeMap<Key, Wallet>,
    /// Wallets per customer, in creation order.
    pub(super) wallets_by_customer: HashMap<Key, BTreeSet<Key>>,
    /// The wallet an application's lot was put in. Lots not listed here (granted directly) belong
    /// to the customer's first wallet in their currency.
    pub(super) lot_wallet: BTreeMap<Key, Key>,
}
