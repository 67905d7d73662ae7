//! The subscription side of a tenant's world: plans, subscriptions, grant rules, their applications
//! and wallets, with their indexes. Kept in one struct so that the tenant gains a single field.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Application, GrantRule, Plan, Subscription, Wallet};
use crate::ids::Key;

/// Plans, subscriptions, grant rules, applications and wallets of one tenant.
#[derive(Debug, Default)]
pub struct Billing {
    /// Every plan by key.
    pub plans: BTreeMap<Key, Plan>,
    /// Every subscription by key.
    pub subscriptions: BTreeMap<Key, Subscription>,
    /// Subscriptions per customer.
    pub subscriptions_by_customer: HashMap<Key, BTreeSet<Key>>,
    /// Every grant rule by key (keys are creation-ordered).
    pub grants: BTreeMap<Key, GrantRule>,
    /// Grant rules that target (or came from) each plan.
    pub grants_by_plan: HashMap<Key, BTreeSet<Key>>,
    /// Grant rules of each subscription.
    pub grants_by_subscription: HashMap<Key, BTreeSet<Key>>,
    /// Every application by key; an applied application's lot has the same key.
    pub applications: BTreeMap<Key, Application>,
    /// Applications per grant rule.
    pub applications_by_grant: HashMap<Key, BTreeSet<Key>>,
    /// Applications still to run (pending or failed) per subscription.
    pub open_applications_by_subscription: HashMap<Key, BTreeSet<Key>>,
    /// Every wallet by key.
    pub wallets: BTreeMap<Key, Wallet>,
    /// Wallets per customer, in creation order.
    pub wallets_by_customer: HashMap<Key, BTreeSet<Key>>,
    /// The wallet an application's lot was put in. Lots not listed here (Stripe grants) belong to the
    /// customer's first wallet in their currency.
    pub lot_wallet: HashMap<Key, Key>,
    /// Customers by their caller-given identifier (unique among live customers).
    pub customers_by_external_id: HashMap<String, Key>,
}
