//! Grant rules and their applications.
//!
//! A [`GrantRule`] is a *rule*, not an allotment: "give N credits, once or every period, expiring
//! so". A rule on a plan is a template; starting a subscription on the plan copies it onto the
//! subscription. A rule on a subscription produces one [`Application`] per period. When an
//! application comes due, its credits are put into the customer's wallet for the subscription's
//! currency as a [`Lot`](super::Lot) whose key is the application's key, so from then on it is spent,
//! expired and voided exactly like any other lot (a Stripe credit grant included).
//!
//! Applications are driven by the same schedule as every other timed entry: an application is an
//! [`Event::Application`](super::Event) in the customer's time domain, so moving a clock posts every
//! due application in order, each one seeing the clock at its own instant.

use rust_decimal::Decimal;

use super::periods::{add_duration, boundary, DurationUnit, Period};
use super::{
    Applicability, Category, Currency, Domain, Event, KeyIndex, LotOrigin, Metadata, NewLot,
    SubscriptionStatus, Tenant, TenantClock,
};
use crate::ids::Key;
use crate::time::Nanos;

/// What a grant rule targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantScope {
    /// A plan: a template copied onto subscriptions.
    Plan,
    /// A subscription: applied into the customer's wallet.
    Subscription,
}

/// How often a rule gives credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    /// Once, at the start.
    OneTime,
    /// Every `count` × `period`, from the start.
    Recurring {
        /// Step length.
        period: Period,
        /// Steps per application, at least 1.
        count: u32,
    },
}

/// When an application's credits expire, resolved per application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryRule {
    /// Never.
    Never,
    /// `count` units after the application's period start.
    Duration {
        /// Unit.
        unit: DurationUnit,
        /// How many, at least 1.
        count: u32,
    },
    /// At the end of the subscription's billing period that contains the period start.
    BillingCycle,
}

/// A rule's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Active.
    Published,
    /// Retired (plan rules only); subscriptions already started keep their copies.
    Archived,
}

/// A grant rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRule {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Display name.
    pub name: String,
    /// What it targets.
    pub scope: GrantScope,
    /// The plan (plan rules), or the plan it was copied from (subscription rules).
    #[serde(with = "crate::ids::text::opt")]
    pub plan: Option<Key>,
    /// The subscription (subscription rules).
    #[serde(with = "crate::ids::text::opt")]
    pub subscription: Option<Key>,
    /// Credits per application, exact.
    pub credits: Decimal,
    /// The only currency its credits may be given in; `None` means the subscription's.
    pub currency: Option<Currency>,
    /// The rule was described in the older create vocabulary (an amount and an expiry in days),
    /// so the native view keeps describing it that way too.
    pub older_form: bool,
    /// How often.
    pub cadence: Cadence,
    /// Expiry of each application's credits.
    pub expiry: ExpiryRule,
    /// Spending priority of the credits; lower spends first, `None` after every number.
    pub priority: Option<i64>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// First period start (subscription rules).
    pub start: Option<Nanos>,
    /// No application whose period would end after this is made (subscription rules).
    pub end: Option<Nanos>,
    /// The instant periods are counted from (subscription rules; the start).
    pub anchor: Option<Nanos>,
    /// Currency per credit when spending; `None` means whatever the wallet uses.
    pub conversion_rate: Option<Decimal>,
    /// Currency per credit when buying; `None` means whatever the wallet uses.
    pub topup_conversion_rate: Option<Decimal>,
    /// State.
    pub status: GrantStatus,
    /// Creation time (tenant clock).
    pub created: Nanos,
    /// Last change (tenant clock).
    pub updated: Nanos,
}

/// What a new rule is made of. The facade has checked every reference and rule of its API.
#[derive(Debug, Clone)]
pub struct NewGrantRule {
    /// See [`GrantRule`].
    pub name: String,
    /// See [`GrantRule`].
    pub scope: GrantScope,
    /// See [`GrantRule`].
    pub plan: Option<Key>,
    /// See [`GrantRule`].
    pub subscription: Option<Key>,
    /// See [`GrantRule`].
    pub credits: Decimal,
    /// See [`GrantRule`]. The facade has checked it against the subscription's.
    pub currency: Option<Currency>,
    /// See [`GrantRule`].
    pub older_form: bool,
    /// See [`GrantRule`].
    pub cadence: Cadence,
    /// See [`GrantRule`].
    pub expiry: ExpiryRule,
    /// See [`GrantRule`].
    pub priority: Option<i64>,
    /// See [`GrantRule`].
    pub metadata: Metadata,
    /// Required for subscription rules.
    pub start: Option<Nanos>,
    /// See [`GrantRule`].
    pub end: Option<Nanos>,
    /// See [`GrantRule`].
    pub conversion_rate: Option<Decimal>,
    /// See [`GrantRule`].
    pub topup_conversion_rate: Option<Decimal>,
}

/// Where an application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    /// Waiting for its time.
    Pending,
    /// Its credits are in the wallet (as the lot with the application's key).
    Applied,
    /// Could not be applied (kept for fidelity; the emulator's applications do not fail).
    Failed,
    /// Passed over (its credits would already have expired).
    Skipped,
    /// Will never run (the rule ended or the subscription was cancelled).
    Cancelled,
}

impl ApplicationStatus {
    /// Still to run: pending or failed.
    pub fn is_open(self) -> bool {
        matches!(self, ApplicationStatus::Pending | ApplicationStatus::Failed)
    }
}

/// Why an application exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationReason {
    /// The only application of a one-time rule.
    OneTime,
    /// The first application of a recurring rule.
    FirstRecurring,
    /// A later application of a recurring rule.
    Recurring,
}

/// Why an application was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Its credits would have expired at `expiry`, before it ran at `at`.
    ExpiredBeforeApplication {
        /// The resolved expiry.
        expiry: Nanos,
        /// When it ran.
        at: Nanos,
    },
}

/// One period's application of a subscription rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Identity; the lot it makes has the same key.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// The rule.
    #[serde(with = "crate::ids::text")]
    pub grant: Key,
    /// The rule's subscription.
    #[serde(with = "crate::ids::text")]
    pub subscription: Key,
    /// Which period of the rule (0 is the first).
    pub index: u64,
    /// When it is due.
    pub scheduled_for: Nanos,
    /// The period it gives credits for.
    pub period_start: Nanos,
    /// End of that period (recurring rules).
    pub period_end: Option<Nanos>,
    /// State.
    pub status: ApplicationStatus,
    /// Why it exists.
    pub reason: ApplicationReason,
    /// Credits it gives.
    pub credits: Decimal,
    /// The subscription's state when the application was made.
    pub subscription_status: SubscriptionStatus,
    /// Retries so far.
    pub retry_count: u32,
    /// Why it was skipped, if it was.
    pub skip: Option<SkipReason>,
    /// When it was applied.
    pub applied_at: Option<Nanos>,
    /// When it was made (the customer's clock).
    pub created: Nanos,
    /// Last change (the customer's clock).
    pub updated: Nanos,
    #[serde(skip)]
    pending: Option<(Domain, Nanos, Key)>,
}

impl Application {
    /// The schedule's handle of this application's event while it waits (a world read back from
    /// a document finds it again in the schedule).
    pub(super) fn set_pending(&mut self, handle: Option<(Domain, Nanos, Key)>) {
        self.pending = handle;
    }
}

impl Tenant {
    /// A grant rule.
    pub fn grant_rule(&self, key: Key) -> Option<&GrantRule> {
        self.billing.rules.get(&key)
    }

    /// Every grant rule, oldest first (walk it backwards for newest first).
    pub fn grant_rules(&self) -> impl DoubleEndedIterator<Item = &GrantRule> {
        self.billing.rules.values()
    }

    /// How many grant rules there are, of any scope and status.
    pub fn grant_rule_count(&self) -> usize {
        self.billing.rules.len()
    }

    /// The keys of the grant rules that target a plan or were copied from it (archived ones
    /// included), oldest first.
    pub fn grant_rule_keys_of_plan(&self, plan: Key) -> KeyIndex<'_> {
        KeyIndex::of(self.billing.rules_by_plan.get(&plan))
    }

    /// The keys of a subscription's grant rules, oldest first.
    pub fn grant_rule_keys_of_subscription(&self, subscription: Key) -> KeyIndex<'_> {
        KeyIndex::of(self.billing.rules_by_subscription.get(&subscription))
    }

    /// An application of a grant rule.
    pub fn application(&self, key: Key) -> Option<&Application> {
        self.billing.applications.get(&key)
    }

    /// The keys of a rule's applications, one per period, oldest first.
    pub fn application_keys_of_rule(&self, rule: Key) -> KeyIndex<'_> {
        KeyIndex::of(self.billing.applications_by_rule.get(&rule))
    }

    /// The keys of a subscription's applications still to run (pending or failed), oldest first.
    pub fn open_application_keys_of(&self, subscription: Key) -> KeyIndex<'_> {
        KeyIndex::of(
            self.billing
                .open_applications_by_subscription
                .get(&subscription),
        )
    }

    /// Creates a grant rule. A subscription rule schedules its first application at its start, and
    /// anything already due is applied before this returns.
    pub fn create_grant_rule(&mut self, new: NewGrantRule) -> Key {
        let key = self.next_key();
        let now = self.tenant_now();
        let grant = GrantRule {
            key,
            name: new.name,
            scope: new.scope,
            plan: new.plan,
            subscription: new.subscription,
            credits: new.credits,
            currency: new.currency,
            older_form: new.older_form,
            cadence: new.cadence,
            expiry: new.expiry,
            priority: new.priority,
            metadata: new.metadata,
            start: new.start,
            end: new.end,
            anchor: new.start,
            conversion_rate: new.conversion_rate,
            topup_conversion_rate: new.topup_conversion_rate,
            status: GrantStatus::Published,
            created: now,
            updated: now,
        };
        if let Some(plan) = grant.plan {
            self.billing
                .rules_by_plan
                .entry(plan)
                .or_default()
                .insert(key);
        }
        if let Some(sub) = grant.subscription {
            self.billing
                .rules_by_subscription
                .entry(sub)
                .or_default()
                .insert(key);
        }
        let first = match (grant.scope, grant.subscription, grant.start) {
            (GrantScope::Subscription, Some(sub), Some(start)) => Some((sub, start)),
            _ => None,
        };
        let cadence = grant.cadence;
        self.billing.rules.insert(key, grant);
        if let Some((sub, start)) = first {
            let Some(customer) = self.billing.subscriptions.get(&sub).map(|s| s.customer) else {
                return key;
            };
            let domain = self.domain_of(customer);
            let made = self.now_in(domain);
            let (end, reason) = match cadence {
                Cadence::OneTime => (None, ApplicationReason::OneTime),
                Cadence::Recurring { period, count } => (
                    boundary(start, period, count, 1),
                    ApplicationReason::FirstRecurring,
                ),
            };
            self.schedule_application(key, 0, start, end, reason, made);
            self.run_due(domain, made);
        }
        key
    }

    /// Renames a rule and/or replaces its metadata. Returns false if there is no such rule.
    pub fn update_grant_rule(
        &mut self,
        key: Key,
        name: Option<String>,
        metadata: Option<Metadata>,
    ) -> bool {
        let now = self.tenant_now();
        let Some(g) = self.billing.rules.get_mut(&key) else {
            return false;
        };
        if let Some(n) = name {
            g.name = n;
        }
        if let Some(m) = metadata {
            g.metadata = m;
        }
        g.updated = now;
        true
    }

    /// Archives a rule (what deleting a plan rule does). Returns false if there is no such rule.
    pub fn archive_grant_rule(&mut self, key: Key) -> bool {
        let now = self.tenant_now();
        let Some(g) = self.billing.rules.get_mut(&key) else {
            return false;
        };
        g.status = GrantStatus::Archived;
        g.updated = now;
        true
    }

    /// Ends a subscription rule at `end` (what deleting one does): no application is made for a
    /// period ending after it, and applications still to run that are due at or after it are
    /// cancelled. Credits already applied stay in the wallet.
    pub fn end_grant_rule(&mut self, key: Key, end: Nanos) -> bool {
        let now = self.tenant_now();
        let Some(g) = self.billing.rules.get_mut(&key) else {
            return false;
        };
        g.end = Some(end);
        g.updated = now;
        let apps: Vec<Key> = self
            .billing
            .applications_by_rule
            .get(&key)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        for a in apps {
            let app = &self.billing.applications[&a];
            if app.status.is_open() && app.scheduled_for >= end {
                self.cancel_application(a);
            }
        }
        true
    }

    /// Cancels every application of `subscription` still to run.
    pub(super) fn cancel_open_applications(&mut self, subscription: Key) {
        let open: Vec<Key> = self
            .billing
            .open_applications_by_subscription
            .get(&subscription)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        for a in open {
            self.cancel_application(a);
        }
    }

    fn cancel_application(&mut self, key: Key) {
        let Some(app) = self.billing.applications.get(&key) else {
            return;
        };
        let now = self.now_for(self.customer_of_subscription(app.subscription));
        if let Some(h) = app.pending {
            self.schedule.remove(&h);
        }
        self.set_application_status(key, ApplicationStatus::Cancelled, now);
    }

    fn customer_of_subscription(&self, sub: Key) -> Key {
        self.billing
            .subscriptions
            .get(&sub)
            .map(|s| s.customer)
            .unwrap_or_default()
    }

    fn set_application_status(&mut self, key: Key, status: ApplicationStatus, at: Nanos) {
        let Some(app) = self.billing.applications.get_mut(&key) else {
            return;
        };
        app.status = status;
        app.updated = at;
        if !matches!(status, ApplicationStatus::Pending) {
            app.pending = None;
        }
        let sub = app.subscription;
        let open = self
            .billing
            .open_applications_by_subscription
            .entry(sub)
            .or_default();
        if status.is_open() {
            open.insert(key);
        } else {
            open.remove(&key);
        }
    }

    /// Records an application for period `index` of rule `grant` and schedules it at its start.
    fn schedule_application(
        &mut self,
        grant: Key,
        index: u64,
        start: Nanos,
        end: Option<Nanos>,
        reason: ApplicationReason,
        made: Nanos,
    ) -> Option<Key> {
        let g = self.billing.rules.get(&grant)?;
        let sub_key = g.subscription?;
        let credits = g.credits;
        let sub = self.billing.subscriptions.get(&sub_key)?;
        let (customer, sub_status) = (sub.customer, sub.status);
        let key = self.next_key();
        let domain = self.domain_of(customer);
        let handle = self.schedule_event(domain, start, Event::Application(key));
        self.billing.applications.insert(
            key,
            Application {
                key,
                grant,
                subscription: sub_key,
                index,
                scheduled_for: start,
                period_start: start,
                period_end: end,
                status: ApplicationStatus::Pending,
                reason,
                credits,
                subscription_status: sub_status,
                retry_count: 0,
                skip: None,
                applied_at: None,
                created: made,
                updated: made,
                pending: Some(handle),
            },
        );
        self.billing
            .applications_by_rule
            .entry(grant)
            .or_default()
            .insert(key);
        self.set_application_status(key, ApplicationStatus::Pending, made);
        Some(key)
    }

    /// Runs a due application (called by the ledger when its event fires at `at`).
    ///
    /// An application runs at its own instant, or, if it was made later than that (a back-dated
    /// rule), at the instant it was made: that is when the credits can first be given, and when
    /// "already expired" is judged.
    pub(super) fn run_application(&mut self, key: Key, at: Nanos) {
        let Some(app) = self.billing.applications.get_mut(&key) else {
            return;
        };
        if app.status != ApplicationStatus::Pending {
            return;
        }
        app.pending = None;
        let (grant_key, sub_key, made) = (app.grant, app.subscription, app.created);
        let Some(grant) = self.billing.rules.get(&grant_key) else {
            return;
        };
        // A rule that is no longer published gives nothing; its application is left as it is.
        if grant.status != GrantStatus::Published {
            return;
        }
        let Some(sub) = self.billing.subscriptions.get(&sub_key) else {
            return;
        };
        let customer = sub.customer;
        let run_at = at.max(made);
        if sub.status == SubscriptionStatus::Cancelled {
            self.set_application_status(key, ApplicationStatus::Cancelled, run_at);
            self.cancel_open_applications(sub_key);
            return;
        }
        // Whatever this run creates is stamped with its own instant, and nothing due later runs
        // inside it: the tenant clock reads `run_at` for the duration (test clocks already do).
        let domain = self.domain_of(customer);
        let saved = self.clock;
        if domain == Domain::Tenant {
            self.clock = TenantClock::Frozen(run_at);
        }
        self.apply_or_skip(key, run_at);
        self.clock = saved;
    }

    fn apply_or_skip(&mut self, key: Key, run_at: Nanos) {
        let app = &self.billing.applications[&key];
        let grant = &self.billing.rules[&app.grant];
        let sub = &self.billing.subscriptions[&app.subscription];
        let period_start = app.period_start;
        let expiry = match grant.expiry {
            ExpiryRule::Never => None,
            ExpiryRule::Duration { unit, count } => add_duration(period_start, unit, count),
            ExpiryRule::BillingCycle => sub.period_at(period_start).map(|(_, end)| end),
        };
        if let Some(e) = expiry {
            if e < run_at {
                if let Some(a) = self.billing.applications.get_mut(&key) {
                    a.skip = Some(SkipReason::ExpiredBeforeApplication {
                        expiry: e,
                        at: run_at,
                    });
                    a.applied_at = None;
                }
                self.set_application_status(key, ApplicationStatus::Skipped, run_at);
                self.schedule_next_application(key, run_at);
                return;
            }
        }
        // A rule with its own currency gives credits only in that currency (the facades refuse a
        // rule whose currency differs from its subscription's, so the two agree in practice).
        let (customer, currency) = (sub.customer, grant.currency.unwrap_or(sub.currency));
        let (credits, priority) = (app.credits, grant.priority);
        let (name, metadata) = (grant.name.clone(), grant.metadata.clone());
        let (rate, topup) = (grant.conversion_rate, grant.topup_conversion_rate);
        let grant_key = app.grant;
        let wallet = self.wallet_for_grant(customer, currency, rate, topup, run_at);
        let wallet_rate = self.billing.wallets[&wallet].conversion_rate;
        let amount = credits_to_minor(credits, wallet_rate, currency.exponent());
        self.billing.lot_wallet.insert(key, wallet);
        self.create_lot_with_key(
            key,
            NewLot {
                customer,
                currency,
                amount,
                category: Category::Paid,
                applicability: Applicability::Metered,
                priority,
                name: Some(name),
                metadata,
                effective_at: Some(period_start),
                expires_at: expiry,
                origin: LotOrigin::Application {
                    grant: grant_key,
                    application: key,
                },
            },
        );
        if let Some(a) = self.billing.applications.get_mut(&key) {
            a.applied_at = Some(run_at);
        }
        self.set_application_status(key, ApplicationStatus::Applied, run_at);
        self.schedule_next_application(key, run_at);
    }

    /// For a recurring rule, schedules the application of the period after `key`'s, unless that
    /// period would end after the rule's end.
    fn schedule_next_application(&mut self, key: Key, made: Nanos) {
        let app = &self.billing.applications[&key];
        let grant = &self.billing.rules[&app.grant];
        let Cadence::Recurring { period, count } = grant.cadence else {
            return;
        };
        let Some(next_start) = app.period_end else {
            return;
        };
        let Some(anchor) = grant.anchor else {
            return;
        };
        let index = app.index + 1;
        let Some(next_end) = boundary(anchor, period, count, index + 1) else {
            return;
        };
        if grant.end.is_some_and(|e| next_end > e) {
            return;
        }
        let grant_key = app.grant;
        self.schedule_application(
            grant_key,
            index,
            next_start,
            Some(next_end),
            ApplicationReason::Recurring,
            made,
        );
    }
}

/// Credits to ledger amount: `credits × rate` in major units of the currency, times `10^exponent`.
pub fn credits_to_minor(credits: Decimal, rate: Decimal, exponent: u32) -> Decimal {
    (credits * rate * Decimal::from(10i64.pow(exponent))).normalize()
}

/// Ledger amount to credits: minor units to major, divided by `rate`.
pub fn minor_to_credits(minor: Decimal, rate: Decimal, exponent: u32) -> Decimal {
    let major = minor / Decimal::from(10i64.pow(exponent));
    if rate.is_zero() {
        return major.normalize();
    }
    (major / rate).normalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::periods::{DurationUnit, Period};
    use crate::model::{
        BillingCadence, Currency, NewCustomer, NewInvoiceLine, NewPlan, NewSubscription,
    };
    use crate::time::{parse_rfc3339, NANOS_PER_SEC};

    const DAY: i64 = 86_400 * NANOS_PER_SEC;

    fn at(s: &str) -> Nanos {
        parse_rfc3339(s).unwrap()
    }

    fn usd() -> Currency {
        Currency::parse("usd").unwrap()
    }

    /// A tenant frozen at 2033-05-18 with one customer subscribed monthly to a plan.
    fn world() -> (Tenant, Key, Key, Nanos) {
        let mut t = Tenant::new("sk_test_model", Some(7));
        let t0 = at("2033-05-18T00:00:00Z");
        t.freeze_clock(t0).unwrap();
        let customer = t.create_customer(NewCustomer::default());
        let plan = t.create_plan(NewPlan {
            name: "Pro".into(),
            ..NewPlan::default()
        });
        (t, customer, plan, t0)
    }

    fn subscribe(t: &mut Tenant, customer: Key, plan: Key, start: Option<Nanos>) -> Key {
        t.create_subscription(NewSubscription {
            customer,
            plan,
            currency: usd(),
            cadence: BillingCadence::Recurring,
            period: Period::Monthly,
            period_count: 1,
            start,
            end: None,
            lookup_key: None,
            metadata: Metadata::new(),
            grants: None,
        })
    }

    fn rule(credits: &str, cadence: Cadence, expiry: ExpiryRule) -> NewGrantRule {
        NewGrantRule {
            name: "Included".into(),
            scope: GrantScope::Plan,
            plan: None,
            subscription: None,
            credits: credits.parse().unwrap(),
            currency: None,
            older_form: false,
            cadence,
            expiry,
            priority: Some(1),
            metadata: Metadata::new(),
            start: None,
            end: None,
            conversion_rate: None,
            topup_conversion_rate: None,
        }
    }

    /// The customer's available balance and the sum of its wallets' real-time balances, in minor
    /// units: they must always be equal.
    fn both_views(t: &mut Tenant, customer: Key) -> (Decimal, Decimal) {
        t.ensure_wallets(customer);
        let by_customer = t
            .balances(customer, |_| true)
            .get(&usd())
            .map(|b| b.available)
            .unwrap_or_default();
        let by_wallets = t
            .wallets_of(customer)
            .into_iter()
            .map(|w| t.wallet_balance(w).available)
            .sum();
        (by_customer, by_wallets)
    }

    #[test]
    fn conversions_hold_at_the_extremes_the_api_admits() {
        // 12 integer digits and 8 decimals of credits, a 5-digit rate, a 3-decimal currency.
        let credits: Decimal = "999999999999.99999999".parse().unwrap();
        let rate: Decimal = "99999.99999".parse().unwrap();
        let minor = credits_to_minor(credits, rate, 3);
        assert!(minor > Decimal::from(10i64.pow(18)));
        let back = minor_to_credits(minor, rate, 3);
        assert_eq!(back.round_dp(6), credits.round_dp(6));
        assert_eq!(
            minor_to_credits(Decimal::from(1050), Decimal::ONE, 2),
            "10.5".parse().unwrap()
        );
        assert_eq!(
            minor_to_credits(Decimal::from(7), Decimal::ZERO, 0),
            Decimal::from(7)
        );
    }

    #[test]
    fn recurring_rule_applies_every_period_and_expires_with_the_cycle() {
        let (mut t, customer, plan, t0) = world();
        t.create_grant_rule(NewGrantRule {
            plan: Some(plan),
            ..rule(
                "10",
                Cadence::Recurring {
                    period: Period::Monthly,
                    count: 1,
                },
                ExpiryRule::BillingCycle,
            )
        });
        let sub = subscribe(&mut t, customer, plan, None);
        let rules: Vec<Key> = t.billing.rules_by_subscription[&sub]
            .iter()
            .copied()
            .collect();
        assert_eq!(
            rules.len(),
            1,
            "the plan rule is copied onto the subscription"
        );
        assert_eq!(both_views(&mut t, customer), (1000.into(), 1000.into()));

        // Three months later: three applications applied, each expired at its cycle's end, and the
        // fourth waiting for its time.
        t.freeze_clock(t0 + 92 * DAY).unwrap();
        let apps: Vec<&Application> = t.billing.applications_by_rule[&rules[0]]
            .iter()
            .map(|k| &t.billing.applications[k])
            .collect();
        let statuses: Vec<ApplicationStatus> = apps.iter().map(|a| a.status).collect();
        assert_eq!(
            statuses,
            vec![
                ApplicationStatus::Applied,
                ApplicationStatus::Applied,
                ApplicationStatus::Applied,
                ApplicationStatus::Applied,
                ApplicationStatus::Pending
            ]
        );
        assert_eq!(apps[1].period_start, at("2033-06-18T00:00:00Z"));
        assert_eq!(apps[1].applied_at, Some(at("2033-06-18T00:00:00Z")));
        assert_eq!(apps[1].reason, ApplicationReason::Recurring);
        let lot = &t.lots[&apps[1].key];
        assert_eq!(lot.expires_at, Some(at("2033-07-18T00:00:00Z")));
        assert_eq!(lot.created, at("2033-06-18T00:00:00Z"));
        assert_eq!(both_views(&mut t, customer), (1000.into(), 1000.into()));
        let wallets = t.wallets_of(customer);
        assert_eq!(wallets.len(), 1);
        // 4 grants and 3 expiries.
        assert_eq!(t.wallet_entries(wallets[0]).len(), 7);
    }

    #[test]
    fn spending_voids_and_expiry_move_both_views_together() {
        let (mut t, customer, plan, t0) = world();
        // A lot of $5 granted directly (priority 50) and a one-time plan rule of 12.5 credits
        // (priority 1) that expires after 10 days.
        t.create_lot(crate::model::NewLot {
            customer,
            currency: usd(),
            amount: 500.into(),
            category: Category::Paid,
            applicability: Applicability::Metered,
            priority: Some(50),
            name: None,
            metadata: Metadata::new(),
            effective_at: None,
            expires_at: None,
            origin: LotOrigin::Direct,
        });
        t.create_grant_rule(NewGrantRule {
            plan: Some(plan),
            ..rule(
                "12.5",
                Cadence::OneTime,
                ExpiryRule::Duration {
                    unit: DurationUnit::Day,
                    count: 10,
                },
            )
        });
        subscribe(&mut t, customer, plan, None);
        assert_eq!(both_views(&mut t, customer), (1750.into(), 1750.into()));

        // $20 of usage: the rule's credits (priority 1) go first, then $7.50 of the direct lot.
        let line = || NewInvoiceLine {
            amount: 2000,
            price: None,
            description: None,
        };
        let invoice = t.create_invoice(customer, usd(), vec![line()]);
        assert_eq!(t.invoices[&invoice].credited(), 1750);
        assert_eq!(both_views(&mut t, customer), (0.into(), 0.into()));
        let _ = t.void_invoice(invoice);
        assert_eq!(both_views(&mut t, customer), (1750.into(), 1750.into()));

        // $3 of usage, then the rule's credits expire: only the direct lot is left.
        let small = t.create_invoice(
            customer,
            usd(),
            vec![NewInvoiceLine {
                amount: 300,
                price: None,
                description: None,
            }],
        );
        assert_eq!(t.invoices[&small].credited(), 300);
        assert_eq!(both_views(&mut t, customer), (1450.into(), 1450.into()));
        t.freeze_clock(t0 + 10 * DAY).unwrap();
        assert_eq!(both_views(&mut t, customer), (500.into(), 500.into()));

        // Expiring the direct lot (it was spent from, so it cannot be voided) empties both views.
        let direct_lot = t
            .lots
            .values()
            .find(|l| l.origin == LotOrigin::Direct)
            .unwrap()
            .key;
        assert_eq!(
            t.void_lot(direct_lot),
            Err(crate::model::LotError::AppliedToInvoice)
        );
        t.expire_lot(direct_lot).unwrap();
        assert_eq!(both_views(&mut t, customer), (0.into(), 0.into()));
    }

    #[test]
    fn back_dated_rule_skips_what_already_expired_and_applies_the_rest() {
        let (mut t, customer, plan, t0) = world();
        let sub = subscribe(&mut t, customer, plan, Some(t0 - 70 * DAY));
        let key = t.create_grant_rule(NewGrantRule {
            scope: GrantScope::Subscription,
            subscription: Some(sub),
            start: Some(t0 - 70 * DAY),
            ..rule(
                "3",
                Cadence::Recurring {
                    period: Period::Monthly,
                    count: 1,
                },
                ExpiryRule::Duration {
                    unit: DurationUnit::Day,
                    count: 40,
                },
            )
        });
        let apps: Vec<&Application> = t.billing.applications_by_rule[&key]
            .iter()
            .map(|k| &t.billing.applications[k])
            .collect();
        let statuses: Vec<ApplicationStatus> = apps.iter().map(|a| a.status).collect();
        // Period 1 (70 days ago) would have expired 30 days ago; periods 2 and 3 apply now.
        assert_eq!(
            statuses,
            vec![
                ApplicationStatus::Skipped,
                ApplicationStatus::Applied,
                ApplicationStatus::Applied,
                ApplicationStatus::Pending
            ]
        );
        assert!(matches!(
            apps[0].skip,
            Some(SkipReason::ExpiredBeforeApplication { at, .. }) if at == t0
        ));
        assert_eq!(apps[1].applied_at, Some(t0));
        assert_eq!(both_views(&mut t, customer), (600.into(), 600.into()));
    }

    #[test]
    fn a_rule_bound_to_a_currency_is_copied_with_it_and_named_when_it_does_not_fit() {
        let (mut t, customer, plan, _) = world();
        let eur = Currency::parse("eur").unwrap();
        let bound = t.create_grant_rule(NewGrantRule {
            plan: Some(plan),
            currency: Some(usd()),
            older_form: true,
            ..rule("3", Cadence::OneTime, ExpiryRule::Never)
        });
        t.create_grant_rule(NewGrantRule {
            plan: Some(plan),
            ..rule("1", Cadence::OneTime, ExpiryRule::Never)
        });
        assert_eq!(t.plan_rule_in_other_currency(plan, usd()), None);
        assert_eq!(
            t.plan_rule_in_other_currency(plan, eur).map(|g| g.key),
            Some(bound)
        );
        let sub = subscribe(&mut t, customer, plan, None);
        let copies: Vec<&GrantRule> = t.billing.rules_by_subscription[&sub]
            .iter()
            .map(|k| &t.billing.rules[k])
            .collect();
        assert_eq!(copies[0].currency, Some(usd()));
        assert!(copies[0].older_form);
        assert_eq!(copies[1].currency, None);
        assert_eq!(both_views(&mut t, customer), (400.into(), 400.into()));
        // An archived rule is not copied, so it no longer stands in the way.
        t.archive_grant_rule(bound);
        assert_eq!(t.plan_rule_in_other_currency(plan, eur), None);
    }

    #[test]
    fn a_conversion_rate_gets_its_own_wallet_and_ending_a_rule_cancels_what_is_left() {
        let (mut t, customer, plan, t0) = world();
        let sub = subscribe(&mut t, customer, plan, None);
        let key = t.create_grant_rule(NewGrantRule {
            scope: GrantScope::Subscription,
            subscription: Some(sub),
            start: Some(t0),
            conversion_rate: Some(2.into()),
            ..rule(
                "10",
                Cadence::Recurring {
                    period: Period::Weekly,
                    count: 1,
                },
                ExpiryRule::Never,
            )
        });
        t.create_grant_rule(NewGrantRule {
            scope: GrantScope::Subscription,
            subscription: Some(sub),
            start: Some(t0),
            ..rule("1", Cadence::OneTime, ExpiryRule::Never)
        });
        // The rate-less rule joins the first wallet of the currency, which has rate 2.
        let wallets = t.wallets_of(customer);
        assert_eq!(wallets.len(), 1);
        assert_eq!(
            t.billing.wallets[&wallets[0]].conversion_rate,
            Decimal::from(2)
        );
        assert_eq!(both_views(&mut t, customer), (2200.into(), 2200.into()));
        assert_eq!(
            minor_to_credits(t.wallet_balance(wallets[0]).available, 2.into(), 2),
            Decimal::from(11)
        );
        t.end_grant_rule(key, t0 + 3 * DAY);
        t.freeze_clock(t0 + 30 * DAY).unwrap();
        let statuses: Vec<ApplicationStatus> = t.billing.applications_by_rule[&key]
            .iter()
            .map(|k| t.billing.applications[k].status)
            .collect();
        assert_eq!(
            statuses,
            vec![ApplicationStatus::Applied, ApplicationStatus::Cancelled]
        );
        assert_eq!(both_views(&mut t, customer), (2200.into(), 2200.into()));
    }

    mod agreement {
        //! Random sequences of grants, rules, invoices, voids, expiries and clock moves: after every
        //! step the customer's balance and its wallets' balances are equal.
        use super::*;
        use crate::model::{LotOrigin, NewLot};
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            DirectLot {
                cents: i64,
                priority: Option<i64>,
                expires_days: Option<i64>,
            },
            SubscriptionRule {
                credits_cents: i64,
                cadence: u8,
                expiry: u8,
                rate: Option<i64>,
            },
            Invoice {
                cents: i64,
            },
            VoidInvoice(usize),
            VoidLot(usize),
            ExpireLot(usize),
            Advance {
                hours: i64,
            },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (
                    1i64..5000,
                    proptest::option::of(0i64..100),
                    proptest::option::of(1i64..40)
                )
                    .prop_map(|(cents, priority, expires_days)| Op::DirectLot {
                        cents,
                        priority,
                        expires_days
                    }),
                (1i64..10_000, 0u8..3, 0u8..3, proptest::option::of(1i64..3)).prop_map(
                    |(credits_cents, cadence, expiry, rate)| Op::SubscriptionRule {
                        credits_cents,
                        cadence,
                        expiry,
                        rate
                    }
                ),
                (0i64..6000).prop_map(|cents| Op::Invoice { cents }),
                (0usize..8).prop_map(Op::VoidInvoice),
                (0usize..8).prop_map(Op::VoidLot),
                (0usize..8).prop_map(Op::ExpireLot),
                (1i64..24 * 20).prop_map(|hours| Op::Advance { hours }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn both_views_agree_after_every_step(ops in proptest::collection::vec(op(), 1..40)) {
                let (mut t, customer, plan, _) = world();
                let sub = subscribe(&mut t, customer, plan, None);
                let mut invoices = Vec::new();
                for op in ops {
                    match op {
                        Op::DirectLot { cents, priority, expires_days } => {
                            let now = t.now_for(customer);
                            t.create_lot(NewLot {
                                customer,
                                currency: usd(),
                                amount: cents.into(),
                                category: Category::Paid,
                                applicability: Applicability::Metered,
                                priority,
                                name: None,
                                metadata: Metadata::new(),
                                effective_at: None,
                                expires_at: expires_days.map(|d| now + d * DAY),
                                origin: LotOrigin::Direct,
                            });
                        }
                        Op::SubscriptionRule { credits_cents, cadence, expiry, rate } => {
                            let now = t.now_for(customer);
                            let cadence = match cadence {
                                0 => Cadence::OneTime,
                                1 => Cadence::Recurring { period: Period::Weekly, count: 1 },
                                _ => Cadence::Recurring { period: Period::Monthly, count: 1 },
                            };
                            let expiry = match expiry {
                                0 => ExpiryRule::Never,
                                1 => ExpiryRule::Duration { unit: DurationUnit::Day, count: 9 },
                                _ => ExpiryRule::BillingCycle,
                            };
                            t.create_grant_rule(NewGrantRule {
                                scope: GrantScope::Subscription,
                                subscription: Some(sub),
                                start: Some(now),
                                conversion_rate: rate.map(Decimal::from),
                                ..rule(&(Decimal::new(credits_cents, 2)).to_string(), cadence, expiry)
                            });
                        }
                        Op::Invoice { cents } => {
                            invoices.push(t.create_invoice(customer, usd(), vec![NewInvoiceLine {
                                amount: cents, price: None, description: None,
                            }]));
                        }
                        Op::VoidInvoice(i) => {
                            if let Some(k) = invoices.get(i) {
                                let _ = t.void_invoice(*k);
                            }
                        }
                        Op::VoidLot(i) => {
                            let nth = t.lots.keys().nth(i).copied();
                            if let Some(k) = nth {
                                let _ = t.void_lot(k);
                            }
                        }
                        Op::ExpireLot(i) => {
                            let nth = t.lots.keys().nth(i).copied();
                            if let Some(k) = nth {
                                let _ = t.expire_lot(k);
                            }
                        }
                        Op::Advance { hours } => {
                            let to = t.tenant_now() + hours * 3600 * NANOS_PER_SEC;
                            t.freeze_clock(to).unwrap();
                        }
                    }
                    let (by_customer, by_wallets) = both_views(&mut t, customer);
                    prop_assert_eq!(by_customer, by_wallets);
                    prop_assert!(by_customer >= Decimal::ZERO);
                    prop_assert_eq!(t.check_indexes(), Ok(()));
                }
            }
        }
    }
}
