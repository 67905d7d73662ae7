//! Subscriptions: a customer on a plan, in one currency, billed every `count` × `period` from its
//! start (anniversary billing). Starting one copies the plan's published grant rules onto it; a rule
//! bound to a currency keeps it, so a subscription in another currency is refused by the facade
//! before it is made (see [`Tenant::plan_rule_in_other_currency`]).

use super::periods::{boundary, period_containing, Period};
use super::{GrantRule, GrantScope, GrantStatus, KeyIndex, Metadata, NewGrantRule, Tenant};
use crate::ids::Key;
use crate::model::Currency;
use crate::time::Nanos;

/// A subscription's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Running: its grant rules apply.
    Active,
    /// Ended: nothing more is applied.
    Cancelled,
}

/// Whether the subscription bills repeatedly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingCadence {
    /// Every period.
    Recurring,
    /// Once.
    OneTime,
}

/// A subscription.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Who subscribes.
    #[serde(with = "crate::ids::text")]
    pub customer: Key,
    /// To what.
    #[serde(with = "crate::ids::text")]
    pub plan: Key,
    /// Currency of its credits and bills.
    pub currency: Currency,
    /// Whether it bills repeatedly.
    pub cadence: BillingCadence,
    /// Billing period step.
    pub period: Period,
    /// Steps per billing period.
    pub period_count: u32,
    /// When it starts (the billing anchor).
    pub start: Nanos,
    /// When it ends, if it does.
    pub end: Option<Nanos>,
    /// State.
    pub status: SubscriptionStatus,
    /// When it was cancelled.
    pub cancelled_at: Option<Nanos>,
    /// The caller's own handle for it.
    pub lookup_key: Option<String>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// Creation time (the customer's clock).
    pub created: Nanos,
    /// Last change (the customer's clock).
    pub updated: Nanos,
}

impl Subscription {
    /// The billing period `[start, end)` containing `t`, cut off at the subscription's end.
    pub fn period_at(&self, t: Nanos) -> Option<(Nanos, Nanos)> {
        period_containing(self.start, self.period, self.period_count, self.end, t)
    }

    /// The billing period at `now`; before the start, the first period.
    pub fn current_period(&self, now: Nanos) -> (Nanos, Nanos) {
        if let Some(p) = self.period_at(now) {
            return p;
        }
        if now < self.start {
            let end = boundary(self.start, self.period, self.period_count, 1).unwrap_or(Nanos::MAX);
            return (self.start, self.end.map_or(end, |e| end.min(e)));
        }
        // At or after the end: the last period.
        let end = self.end.unwrap_or(now);
        match self.period_at(end.saturating_sub(1)) {
            Some(p) => p,
            None => (self.start, end),
        }
    }
}

/// What a new subscription starts with; the facade has checked the customer, plan and dates.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// See [`Subscription`].
    pub customer: Key,
    /// See [`Subscription`].
    pub plan: Key,
    /// See [`Subscription`].
    pub currency: Currency,
    /// See [`Subscription`].
    pub cadence: BillingCadence,
    /// See [`Subscription`].
    pub period: Period,
    /// See [`Subscription`].
    pub period_count: u32,
    /// Defaults to the customer's now.
    pub start: Option<Nanos>,
    /// See [`Subscription`].
    pub end: Option<Nanos>,
    /// See [`Subscription`].
    pub lookup_key: Option<String>,
    /// See [`Subscription`].
    pub metadata: Metadata,
    /// Grant rules to start it with instead of the plan's. Their subscription is filled in, and
    /// their start and end default to the subscription's.
    pub grants: Option<Vec<NewGrantRule>>,
}

impl Tenant {
    /// A subscription.
    pub fn subscription(&self, key: Key) -> Option<&Subscription> {
        self.billing.subscriptions.get(&key)
    }

    /// Every subscription, oldest first (walk it backwards for newest first).
    pub fn subscriptions(&self) -> impl DoubleEndedIterator<Item = &Subscription> {
        self.billing.subscriptions.values()
    }

    /// The keys of a customer's subscriptions (cancelled ones included), oldest first.
    pub fn subscription_keys_of(&self, customer: Key) -> KeyIndex<'_> {
        KeyIndex::of(self.billing.subscriptions_by_customer.get(&customer))
    }

    /// Whether the customer has ever had a subscription (a cancelled one counts).
    pub fn has_subscriptions(&self, customer: Key) -> bool {
        !self.subscription_keys_of(customer).is_empty()
    }

    /// Starts a subscription, copies the plan's published grant rules onto it (or uses the given
    /// ones), and applies whatever is already due.
    pub fn create_subscription(&mut self, new: NewSubscription) -> Key {
        let key = self.next_key();
        self.create_subscription_with_key(key, new)
    }

    /// As [`Tenant::create_subscription`], with a key taken earlier (rules given with the
    /// subscription are checked against its id before it exists).
    pub fn create_subscription_with_key(&mut self, key: Key, new: NewSubscription) -> Key {
        let now = self.now_for(new.customer);
        let start = new.start.unwrap_or(now);
        self.billing.subscriptions.insert(
            key,
            Subscription {
                key,
                customer: new.customer,
                plan: new.plan,
                currency: new.currency,
                cadence: new.cadence,
                period: new.period,
                period_count: new.period_count.max(1),
                start,
                end: new.end,
                status: SubscriptionStatus::Active,
                cancelled_at: None,
                lookup_key: new.lookup_key,
                metadata: new.metadata,
                created: now,
                updated: now,
            },
        );
        self.billing
            .subscriptions_by_customer
            .entry(new.customer)
            .or_default()
            .insert(key);
        let rules: Vec<NewGrantRule> = match new.grants {
            Some(list) => list
                .into_iter()
                .map(|g| NewGrantRule {
                    scope: GrantScope::Subscription,
                    subscription: Some(key),
                    start: g.start.or(Some(start)),
                    end: g.end.or(new.end),
                    ..g
                })
                .collect(),
            None => self
                .copied_plan_rules(new.plan)
                .map(|g| NewGrantRule {
                    name: g.name.clone(),
                    scope: GrantScope::Subscription,
                    plan: Some(new.plan),
                    subscription: Some(key),
                    credits: g.credits,
                    currency: g.currency,
                    older_form: g.older_form,
                    cadence: g.cadence,
                    expiry: g.expiry,
                    priority: g.priority,
                    metadata: g.metadata.clone(),
                    start: Some(start),
                    end: new.end,
                    conversion_rate: g.conversion_rate,
                    topup_conversion_rate: g.topup_conversion_rate,
                })
                .collect(),
        };
        for rule in rules {
            self.create_grant_rule(rule);
        }
        key
    }

    /// The rules a subscription started on `plan` copies: its published plan rules.
    fn copied_plan_rules(&self, plan: Key) -> impl Iterator<Item = &GrantRule> {
        self.grant_rule_keys_of_plan(plan)
            .into_iter()
            .filter_map(|k| self.billing.rules.get(&k))
            .filter(|g| g.scope == GrantScope::Plan && g.status == GrantStatus::Published)
    }

    /// The first rule a subscription on `plan` in `currency` would copy although it is bound to
    /// another currency (its credits could not go into the subscription's wallets).
    pub fn plan_rule_in_other_currency(&self, plan: Key, currency: Currency) -> Option<&GrantRule> {
        self.copied_plan_rules(plan)
            .find(|g| g.currency.is_some_and(|c| c != currency))
    }

    /// Cancels a subscription now: its grant rules end here and every application still to run is
    /// cancelled; credits already applied stay. Returns false if it is not active.
    pub fn cancel_subscription(&mut self, key: Key) -> bool {
        let Some(sub) = self.billing.subscriptions.get(&key) else {
            return false;
        };
        if sub.status != SubscriptionStatus::Active {
            return false;
        }
        let now = self.now_for(sub.customer);
        let rules: Vec<Key> = self
            .billing
            .rules_by_subscription
            .get(&key)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        if let Some(s) = self.billing.subscriptions.get_mut(&key) {
            s.status = SubscriptionStatus::Cancelled;
            s.cancelled_at = Some(now);
            s.updated = now;
        }
        for r in rules {
            if self
                .billing
                .rules
                .get(&r)
                .is_some_and(|g| g.end.is_none_or(|e| e > now))
            {
                if let Some(g) = self.billing.rules.get_mut(&r) {
                    g.end = Some(now);
                }
            }
        }
        self.cancel_open_applications(key);
        true
    }
}
