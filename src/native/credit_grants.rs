//! `/v1/creditgrants`, the grant lists of plans and addons, and upcoming grant applications.
//!
//! A grant's request and its rules are in [`super::grant_rules`], shared with the grants given
//! inline with a plan or a subscription; this file holds the operations and their views.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;

use super::error::{NativeError, NativeResult};
use super::find;
use super::grant_rules::{
    check_references, check_storage, to_new, validate, Checked, GrantBody, GrantInput,
};
use super::ids::{self, key_of};
use super::json::{self, json_object};
use super::list::{invalid_filter, ListView, Page, Query, Rows};
use super::names;
use super::op::{Input, Operation};
use super::view::{Dec, Id, Message, SortedMap, Stamp, Time};
use crate::ids::{fnv1a64, Key};
use crate::model::periods::DurationUnit;
use crate::model::{
    Application, Cadence, ExpiryRule, GrantRule, GrantScope, GrantStatus, SkipReason,
    SubscriptionStatus, Tenant,
};
use crate::time::{parse_rfc3339, Nanos};

/// Flexprice's `CreditGrantResponse`.
#[derive(Debug, Serialize)]
pub struct GrantView<'a> {
    id: Id,
    name: &'a str,
    scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_id: Option<Id>,
    credits: Dec,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<Dec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'a str>,
    cadence: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period_count: Option<u32>,
    expiration_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_duration: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_duration_unit: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_in_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<SortedMap<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_date: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_date: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credit_grant_anchor: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_rate: Option<Dec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topup_conversion_rate: Option<Dec>,
    environment_id: &'a str,
    #[serde(flatten)]
    stamp: Stamp,
}

impl<'a> GrantView<'a> {
    /// The view of a grant rule.
    pub fn new(env: &'a str, g: &'a GrantRule) -> Self {
        let (period, period_count) = match g.cadence {
            Cadence::OneTime => (None, None),
            Cadence::Recurring { period, count } => (Some(names::period(period)), Some(count)),
        };
        let (expiration_duration, expiration_duration_unit) = match g.expiry {
            ExpiryRule::Duration { unit, count } => (Some(count), Some(names::unit(unit))),
            ExpiryRule::Never | ExpiryRule::BillingCycle => (None, None),
        };
        // A grant made with the older form is also shown in it: `amount` always, `expire_in_days`
        // when the expiry is counted in days. `currency` is shown whenever the grant has one,
        // whatever the form (the older form required it, so it never answered an empty one).
        let older = g.older_form;
        let expire_in_days = match g.expiry {
            ExpiryRule::Duration {
                unit: DurationUnit::Day,
                count,
            } if older => Some(count),
            _ => None,
        };
        GrantView {
            id: Id(ids::CREDIT_GRANT, g.key),
            name: &g.name,
            scope: names::scope(g.scope),
            plan_id: g.plan.map(|k| Id(ids::PLAN, k)),
            subscription_id: g.subscription.map(|k| Id(ids::SUBSCRIPTION, k)),
            credits: Dec(g.credits),
            amount: older.then_some(Dec(g.credits)),
            currency: g.currency.as_ref().map(|c| c.as_str()),
            cadence: names::cadence(g.cadence),
            period,
            period_count,
            expiration_type: names::expiration_type(g.expiry),
            expiration_duration,
            expiration_duration_unit,
            expire_in_days,
            priority: g.priority,
            metadata: (!g.metadata.is_empty()).then_some(SortedMap(&g.metadata)),
            start_date: g.start.map(Time),
            end_date: g.end.map(Time),
            credit_grant_anchor: g.anchor.map(Time),
            conversion_rate: g.conversion_rate.map(Dec),
            topup_conversion_rate: g.topup_conversion_rate.map(Dec),
            environment_id: env,
            stamp: Stamp::new(names::grant_status(g.status), g.created, g.updated),
        }
    }
}

/// `POST /v1/creditgrants` (201).
#[derive(Debug)]
pub struct Create {
    input: GrantInput,
    checked: Checked,
    /// What the database would say, reported after the references (step 20 comes last).
    storage: NativeResult<()>,
}

impl Operation for Create {
    const STATUS: u16 = 201;
    type Done<'t> = &'t GrantRule;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        let input = GrantInput::required(input.body::<GrantBody>()?)?;
        let checked = validate(&input)?;
        let storage = check_storage(&input, &checked);
        Ok(Create {
            input,
            checked,
            storage,
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<&GrantRule> {
        let refs = check_references(t, &self.input, &self.checked, None, None)?;
        self.storage?;
        let key = t.create_grant_rule(to_new(self.input, &self.checked, refs));
        Ok(t.grant_rule(key).expect("looked up above"))
    }

    fn render<'a>(g: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        GrantView::new(env, g)
    }
}

/// `GET /v1/creditgrants/{id}`: any status.
#[derive(Debug)]
pub struct Retrieve {
    id: String,
}

impl Operation for Retrieve {
    type Done<'t> = &'t GrantRule;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(Retrieve {
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<&GrantRule> {
        let key = find::grant(t, &self.id)?;
        Ok(t.grant_rule(key).expect("looked up above"))
    }

    fn render<'a>(g: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        GrantView::new(env, g)
    }
}

/// The now a rule lives by: its customer's clock for a subscription rule, the tenant's otherwise.
fn now_of(t: &Tenant, g: &GrantRule) -> Nanos {
    match g.subscription.and_then(|s| t.subscription(s)) {
        Some(sub) => t.now_for(sub.customer),
        None => t.tenant_now(),
    }
}

json_object! {
    /// `UpdateCreditGrantRequest`.
    pub struct UpdateBody {
        /// A new name.
        name: json::Str,
        /// The metadata, replaced whole.
        metadata: json::Map,
        /// Ends the rule at that date (the delete logic).
        end_date: json::Time,
    }
}

/// `PUT /v1/creditgrants/{id}`: `name`, `metadata` (replaced whole), `end_date` (runs the delete
/// logic at that date). Answers the rule as it was before that delete step, as upstream does.
#[derive(Debug)]
pub struct Update {
    id: String,
    body: UpdateBody,
}

impl Operation for Update {
    /// The rule as it was answered: before the delete step that `end_date` runs.
    type Done<'t> = GrantRule;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(Update {
            id: input.id.to_string(),
            body: input.body()?,
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<GrantRule> {
        let UpdateBody {
            name,
            metadata,
            end_date: end,
            ..
        } = self.body;
        // The end date is judged before the rule is looked up, at the rule's own now if it
        // exists.
        let existing = key_of(&self.id, ids::CREDIT_GRANT).and_then(|k| t.grant_rule(k));
        let now = existing.map_or_else(|| t.tenant_now(), |g| now_of(t, g));
        if let Some(e) = end.filter(|e| *e < now) {
            return Err(NativeError::validation("Please provide a valid end date")
                .details(vec![("end_date", json!(Time(e)))]));
        }
        let key = find::grant(t, &self.id)?;
        if name.as_deref() == Some("") {
            return Err(NativeError::validation(
                "Please provide a name for the credit grant",
            ));
        }
        t.update_grant_rule(key, name, metadata);
        let snapshot = t.grant_rule(key).expect("looked up above").clone();
        if let Some(e) = end {
            end_grant(t, key, &self.id, Some(e))?;
        }
        Ok(snapshot)
    }

    fn render<'a>(g: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        GrantView::new(env, g)
    }
}

json_object! {
    /// The optional body of `DELETE /v1/creditgrants/{id}`.
    pub struct DeleteBody {
        /// When a subscription rule ends (default now).
        effective_date: json::Time,
    }
}

/// `DELETE /v1/creditgrants/{id}`: a plan rule is archived; a subscription rule ends at
/// `effective_date` (default now) and stays published.
#[derive(Debug)]
pub struct Delete {
    id: String,
    effective: Option<Nanos>,
}

impl Operation for Delete {
    type Done<'t> = ();

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        let body: DeleteBody = input.optional_body()?;
        Ok(Delete {
            id: input.id.to_string(),
            effective: body.effective_date,
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<()> {
        let key = find::grant(t, &self.id)?;
        end_grant(t, key, &self.id, self.effective)
    }

    fn render<'a>(_: &'a Self::Done<'_>, _: &'a str) -> impl Serialize + 'a {
        Message {
            message: "credit grant deleted successfully",
        }
    }
}

/// What deleting a rule does: a plan rule is archived, a subscription rule ends at `effective`
/// (default: its now). An archived rule cannot be deleted again.
fn end_grant(t: &mut Tenant, key: Key, id: &str, effective: Option<Nanos>) -> NativeResult<()> {
    let g = t.grant_rule(key).expect("looked up above");
    if g.status != GrantStatus::Published {
        return Err(
            NativeError::validation("Credit grant is already archived").details(vec![
                ("credit_grant_id", json!(id)),
                ("status", json!(names::grant_status(g.status))),
            ]),
        );
    }
    match g.scope {
        GrantScope::Plan => {
            t.archive_grant_rule(key);
        }
        GrantScope::Subscription => {
            let at = effective.unwrap_or_else(|| now_of(t, g));
            t.end_grant_rule(key, at);
        }
    }
    Ok(())
}

/// A column of the grants table, which lists sort on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Id,
    CreatedAt,
    UpdatedAt,
    /// `tenant_id`, `environment_id`, `created_by`, `updated_by`: one value in a tenant.
    Constant,
    Status,
    Name,
    Scope,
    PlanId,
    SubscriptionId,
    AddonId,
    Credits,
    Currency,
    ConversionRate,
    TopupConversionRate,
    Cadence,
    Period,
    PeriodCount,
    ExpirationType,
    ExpirationDuration,
    ExpirationDurationUnit,
    Priority,
    Metadata,
    StartDate,
    EndDate,
    CreditGrantAnchor,
}

/// A sortable value; `None` sorts after every value ascending (Postgres' NULLS LAST).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortVal {
    Int(i64),
    Text(String),
    Dec(Decimal),
}

impl Column {
    /// The column named `name`; anything else is an SQL error upstream.
    fn parse(name: &str) -> Option<Column> {
        use Column::*;
        Some(match name {
            "id" => Id,
            "created_at" => CreatedAt,
            "updated_at" => UpdatedAt,
            "tenant_id" | "environment_id" | "created_by" | "updated_by" => Constant,
            "status" => Status,
            "name" => Name,
            "scope" => Scope,
            "plan_id" => PlanId,
            "subscription_id" => SubscriptionId,
            "addon_id" => AddonId,
            "credits" => Credits,
            "currency" => Currency,
            "conversion_rate" => ConversionRate,
            "topup_conversion_rate" => TopupConversionRate,
            "cadence" => Cadence,
            "period" => Period,
            "period_count" => PeriodCount,
            "expiration_type" => ExpirationType,
            "expiration_duration" => ExpirationDuration,
            "expiration_duration_unit" => ExpirationDurationUnit,
            "priority" => Priority,
            "metadata" => Metadata,
            "start_date" => StartDate,
            "end_date" => EndDate,
            "credit_grant_anchor" => CreditGrantAnchor,
            _ => return None,
        })
    }

    /// Creation order is key order, so these sorts are walks of the ordered map.
    fn is_key_order(self) -> bool {
        matches!(self, Column::Id | Column::CreatedAt)
    }

    /// `g`'s value in this column (`None` for SQL NULL).
    fn value(self, g: &GrantRule) -> Option<SortVal> {
        use SortVal::*;
        let text = |s: &str| Some(Text(s.to_string()));
        match self {
            Column::Id => text(&ids::render(ids::CREDIT_GRANT, g.key)),
            Column::CreatedAt => Some(Int(g.created)),
            Column::UpdatedAt => Some(Int(g.updated)),
            Column::Constant => text(""),
            Column::Status => text(names::grant_status(g.status)),
            Column::Name => text(&g.name),
            Column::Scope => text(names::scope(g.scope)),
            Column::PlanId => g.plan.map(|k| Text(ids::render(ids::PLAN, k))),
            Column::SubscriptionId => g
                .subscription
                .map(|k| Text(ids::render(ids::SUBSCRIPTION, k))),
            Column::AddonId => None,
            Column::Credits => Some(Dec(g.credits)),
            Column::Currency => g.currency.map(|c| Text(c.as_str().to_string())),
            Column::ConversionRate => g.conversion_rate.map(Dec),
            Column::TopupConversionRate => g.topup_conversion_rate.map(Dec),
            Column::Cadence => text(names::cadence(g.cadence)),
            Column::Period => match g.cadence {
                Cadence::Recurring { period, .. } => text(names::period(period)),
                Cadence::OneTime => None,
            },
            Column::PeriodCount => match g.cadence {
                Cadence::Recurring { count, .. } => Some(Int(i64::from(count))),
                Cadence::OneTime => None,
            },
            Column::ExpirationType => text(names::expiration_type(g.expiry)),
            Column::ExpirationDuration => match g.expiry {
                ExpiryRule::Duration { count, .. } => Some(Int(i64::from(count))),
                _ => None,
            },
            Column::ExpirationDurationUnit => match g.expiry {
                ExpiryRule::Duration { unit, .. } => text(names::unit(unit)),
                _ => None,
            },
            Column::Priority => g.priority.map(Int),
            Column::Metadata => (!g.metadata.is_empty())
                .then(|| serde_json::to_string(&g.metadata).ok().map(Text))
                .flatten(),
            Column::StartDate => g.start.map(Int),
            Column::EndDate => g.end.map(Int),
            Column::CreditGrantAnchor => g.anchor.map(Int),
        }
    }
}

fn nulls_last(a: &Option<SortVal>, b: &Option<SortVal>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The filters of `GET /v1/creditgrants`.
#[derive(Debug, Default)]
struct GrantFilter {
    /// Created at or after.
    from: Option<Nanos>,
    /// Created at or before.
    to: Option<Nanos>,
    /// `plan_ids` (ids that do not parse match nothing).
    plans: Option<Vec<Key>>,
    /// `subscription_ids`.
    subscriptions: Option<Vec<Key>>,
    /// `credit_grant_ids`.
    grants: Option<Vec<Key>>,
    /// `addon_ids` given: the emulator has no addon grants, so nothing matches.
    addons: bool,
    /// `scope`.
    scope: Option<String>,
}

impl GrantFilter {
    fn read(q: &Query) -> NativeResult<GrantFilter> {
        let time = |name: &str| -> NativeResult<Option<Nanos>> {
            match q.first(name).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => parse_rfc3339(s).map(Some).ok_or_else(invalid_filter),
            }
        };
        let keys = |name: &str, prefix: &str| -> Option<Vec<Key>> {
            let v = q.all(name);
            (!v.is_empty()).then(|| v.iter().filter_map(|s| key_of(s, prefix)).collect())
        };
        Ok(GrantFilter {
            from: time("start_time")?,
            to: time("end_time")?,
            plans: keys("plan_ids", ids::PLAN),
            subscriptions: keys("subscription_ids", ids::SUBSCRIPTION),
            grants: keys("credit_grant_ids", ids::CREDIT_GRANT),
            addons: !q.all("addon_ids").is_empty(),
            scope: q
                .first("scope")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }

    fn is_empty(&self) -> bool {
        !self.addons
            && self.scope.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.plans.is_none()
            && self.subscriptions.is_none()
            && self.grants.is_none()
    }

    fn keeps(&self, g: &GrantRule, status: Option<&str>) -> bool {
        status.is_none_or(|s| s == names::grant_status(g.status))
            && !self.addons
            && self
                .scope
                .as_deref()
                .is_none_or(|s| s == names::scope(g.scope))
            && self.from.is_none_or(|f| g.created >= f)
            && self.to.is_none_or(|e| g.created <= e)
            && self
                .plans
                .as_ref()
                .is_none_or(|v| g.plan.is_some_and(|p| v.contains(&p)))
            && self
                .subscriptions
                .as_ref()
                .is_none_or(|v| g.subscription.is_some_and(|s| v.contains(&s)))
            && self.grants.as_ref().is_none_or(|v| v.contains(&g.key))
    }
}

/// `GET /v1/creditgrants`: filters, sort, offset pagination (see [`super::list`]).
#[derive(Debug)]
pub struct List {
    page: Page,
    filter: GrantFilter,
    sort: Column,
}

impl Operation for List {
    type Done<'t> = Rows<&'t GrantRule>;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        let q = input.query;
        let page = Page::read(q)?;
        let filter = GrantFilter::read(q)?;
        // Every column of the table can be sorted on; anything else is an SQL error upstream.
        let sort = Column::parse(&page.sort)
            .ok_or_else(|| NativeError::database("Failed to list credit grants"))?;
        Ok(List { page, filter, sort })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<Rows<&GrantRule>> {
        let t = &*t;
        let List { page, filter, sort } = self;
        // With no filter, a key-ordered page costs O(offset + limit) and the total is the map's
        // size.
        if sort.is_key_order() && page.status.is_none() && filter.is_empty() {
            let walk: Box<dyn Iterator<Item = &GrantRule>> = if page.ascending {
                Box::new(t.grant_rules())
            } else {
                Box::new(t.grant_rules().rev())
            };
            let rows: Vec<&GrantRule> = match page.needed() {
                Some(n) => walk.take(n).collect(),
                None => walk.collect(),
            };
            return Ok(page.cut(rows, t.grant_rule_count()));
        }
        let candidates: Box<dyn Iterator<Item = &GrantRule>> =
            match (&filter.grants, &filter.plans, &filter.subscriptions) {
                (Some(v), _, _) => Box::new(
                    v.iter()
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .filter_map(|k| t.grant_rule(*k))
                        .collect::<Vec<_>>()
                        .into_iter(),
                ),
                (None, Some(v), _) => Box::new(union(t, v, |p| t.grant_rule_keys_of_plan(*p))),
                (None, None, Some(v)) => {
                    Box::new(union(t, v, |s| t.grant_rule_keys_of_subscription(*s)))
                }
                (None, None, None) => Box::new(t.grant_rules()),
            };
        let status = page.status.as_deref();
        let mut rows: Vec<&GrantRule> = candidates.filter(|g| filter.keeps(g, status)).collect();
        let directed = |ord: Ordering| if page.ascending { ord } else { ord.reverse() };
        if sort.is_key_order() {
            rows.sort_by(|a, b| directed(a.key.cmp(&b.key)));
        } else {
            // Each row's sort value is computed once, not on every comparison.
            let mut valued: Vec<(Option<SortVal>, &GrantRule)> =
                rows.into_iter().map(|g| (sort.value(g), g)).collect();
            valued.sort_by(|(x, a), (y, b)| directed(nulls_last(x, y).then(a.key.cmp(&b.key))));
            rows = valued.into_iter().map(|(_, g)| g).collect();
        }
        Ok(page.rows(rows))
    }

    fn render<'a>(rows: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        rows.view(|g| GrantView::new(env, g))
    }
}

fn union<'a>(
    t: &'a Tenant,
    targets: &[Key],
    index: impl Fn(&Key) -> crate::model::KeyIndex<'a>,
) -> std::vec::IntoIter<&'a GrantRule> {
    let mut keys = BTreeSet::new();
    for k in targets {
        keys.extend(index(k));
    }
    keys.into_iter()
        .filter_map(|k| t.grant_rule(k))
        .collect::<Vec<_>>()
        .into_iter()
}

/// `GET /v1/plans/{id}/creditgrants`: the plan's published rules, newest first, unpaginated; an
/// unknown plan is an empty list, not a 404.
#[derive(Debug)]
pub struct OfPlan {
    plan: Option<Key>,
}

impl Operation for OfPlan {
    type Done<'t> = Vec<&'t GrantRule>;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(OfPlan {
            plan: key_of(input.id, ids::PLAN),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<Vec<&GrantRule>> {
        let t = &*t;
        Ok(self
            .plan
            .map(|p| t.grant_rule_keys_of_plan(p))
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|k| t.grant_rule(k))
            .filter(|g| g.scope == GrantScope::Plan && g.status == GrantStatus::Published)
            .collect())
    }

    fn render<'a>(grants: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        ListView::all(grants.iter().map(|g| GrantView::new(env, g)).collect())
    }
}

/// `GET /v1/addons/{id}/creditgrants`: the emulator has no addons, so always empty.
#[derive(Debug)]
pub struct OfAddon;

impl Operation for OfAddon {
    type Done<'t> = ();

    fn parse(_: &Input<'_>) -> NativeResult<Self> {
        Ok(OfAddon)
    }

    fn apply(self, _: &mut Tenant) -> NativeResult<()> {
        Ok(())
    }

    fn render<'a>(_: &'a Self::Done<'_>, _: &'a str) -> impl Serialize + 'a {
        ListView::<GrantView<'a>>::all(Vec::new())
    }
}

/// Flexprice's `CreditGrantApplicationResponse`.
#[derive(Debug, Serialize)]
pub struct ApplicationView<'a> {
    id: Id,
    credit_grant_id: Id,
    subscription_id: Id,
    scheduled_for: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    applied_at: Option<Time>,
    period_start: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    period_end: Option<Time>,
    application_status: &'static str,
    credits: Dec,
    application_reason: &'static str,
    subscription_status_at_application: &'static str,
    retry_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    idempotency_key: String,
    environment_id: &'a str,
    #[serde(flatten)]
    stamp: Stamp,
}

fn rfc3339_seconds(t: Nanos) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(t)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A stable key for one period of one rule (upstream hashes the same three values).
fn idempotency_key(a: &Application) -> String {
    let period_end = a.period_end.unwrap_or(i64::MIN);
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&a.grant.to_le_bytes());
    bytes[16..24].copy_from_slice(&a.period_start.to_le_bytes());
    bytes[24..].copy_from_slice(&period_end.to_le_bytes());
    let h = fnv1a64(0xcbf2_9ce4_8422_2325, &bytes);
    let g = fnv1a64(0x8422_2325_cbf2_9ce4, &bytes);
    format!("{h:016x}{g:016x}")
}

impl<'a> ApplicationView<'a> {
    /// The view of an application.
    pub fn new(env: &'a str, a: &Application) -> Self {
        let failure_reason = a.skip.map(|s| match s {
            SkipReason::ExpiredBeforeApplication { expiry, at } => format!(
                "Credit grant expired before application. Expiry date: {}, Current time: {}",
                rfc3339_seconds(expiry),
                rfc3339_seconds(at)
            ),
        });
        ApplicationView {
            id: Id(ids::APPLICATION, a.key),
            credit_grant_id: Id(ids::CREDIT_GRANT, a.grant),
            subscription_id: Id(ids::SUBSCRIPTION, a.subscription),
            scheduled_for: Time(a.scheduled_for),
            applied_at: a.applied_at.map(Time),
            period_start: Time(a.period_start),
            period_end: a.period_end.map(Time),
            application_status: names::application_status(a.status),
            credits: Dec(a.credits),
            application_reason: names::application_reason(a.reason),
            subscription_status_at_application: names::subscription_status(a.subscription_status),
            retry_count: a.retry_count,
            failure_reason,
            idempotency_key: idempotency_key(a),
            environment_id: env,
            stamp: Stamp::new("published", a.created, a.updated),
        }
    }
}

/// The open applications of `subscriptions`, soonest first.
fn upcoming<'t>(t: &'t Tenant, subscriptions: &[Key]) -> Vec<&'t Application> {
    let mut apps: Vec<&Application> = subscriptions
        .iter()
        .flat_map(|s| t.open_application_keys_of(*s))
        .filter_map(|k| t.application(k))
        .collect();
    apps.sort_by_key(|a| (a.scheduled_for, a.key));
    apps
}

fn render_upcoming<'a>(apps: &[&Application], env: &'a str) -> ListView<ApplicationView<'a>> {
    ListView::all(apps.iter().map(|a| ApplicationView::new(env, a)).collect())
}

/// `GET /v1/subscriptions/{id}/grants/upcoming`: pending and failed applications of an active
/// subscription, soonest first.
#[derive(Debug)]
pub struct UpcomingOfSubscription {
    id: String,
}

impl Operation for UpcomingOfSubscription {
    type Done<'t> = Vec<&'t Application>;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(UpcomingOfSubscription {
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<Vec<&Application>> {
        let t = &*t;
        let key = key_of(&self.id, ids::SUBSCRIPTION)
            .filter(|k| {
                t.subscription(*k)
                    .is_some_and(|s| s.status == SubscriptionStatus::Active)
            })
            .ok_or_else(|| {
                NativeError::not_found("Please verify the subscription ID is correct")
            })?;
        Ok(upcoming(t, &[key]))
    }

    fn render<'a>(apps: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        render_upcoming(apps, env)
    }
}

/// `GET /v1/customers/{id}/grants/upcoming`: the same over the customer's active subscriptions.
#[derive(Debug)]
pub struct UpcomingOfCustomer {
    id: String,
}

impl Operation for UpcomingOfCustomer {
    type Done<'t> = Vec<&'t Application>;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(UpcomingOfCustomer {
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<Vec<&Application>> {
        let t = &*t;
        let customer = find::customer(t, &self.id)?;
        let subs: Vec<Key> = t
            .subscription_keys_of(customer)
            .iter()
            .filter(|k| {
                t.subscription(*k)
                    .is_some_and(|s| s.status == SubscriptionStatus::Active)
            })
            .collect();
        Ok(upcoming(t, &subs))
    }

    fn render<'a>(apps: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        render_upcoming(apps, env)
    }
}
