//! The native API's spellings of the model's enums (Flexprice's UPPERCASE enums and lower-case
//! statuses), both ways where requests name them.

use crate::model::periods::{DurationUnit, Period};
use crate::model::{
    ApplicationReason, ApplicationStatus, BillingCadence, Cadence, ExpiryRule, GrantScope,
    GrantStatus, PlanStatus, SubscriptionStatus,
};

/// The scopes a grant request may name, as upstream lists them in its error.
pub const SCOPES: &str = "[PLAN SUBSCRIPTION ADDON]";
/// The cadences a grant request may name.
pub const CADENCES: &str = "[ONETIME RECURRING]";
/// The expiry types a grant request may name.
pub const EXPIRY_TYPES: &str = "[NEVER DURATION BILLING_CYCLE]";
/// The periods a grant request may name.
pub const PERIODS: &str = "[DAILY WEEKLY MONTHLY ANNUAL QUARTERLY HALF_YEARLY]";
/// The duration units a grant request may name.
pub const UNITS: &str = "[DAY WEEK MONTH YEAR]";

/// A period from its native spelling.
pub fn parse_period(s: &str) -> Option<Period> {
    Some(match s {
        "DAILY" => Period::Daily,
        "WEEKLY" => Period::Weekly,
        "MONTHLY" => Period::Monthly,
        "ANNUAL" => Period::Annual,
        "QUARTERLY" => Period::Quarterly,
        "HALF_YEARLY" => Period::HalfYearly,
        _ => return None,
    })
}

/// The native spelling of a period.
pub fn period(p: Period) -> &'static str {
    match p {
        Period::Daily => "DAILY",
        Period::Weekly => "WEEKLY",
        Period::Monthly => "MONTHLY",
        Period::Annual => "ANNUAL",
        Period::Quarterly => "QUARTERLY",
        Period::HalfYearly => "HALF_YEARLY",
    }
}

/// A duration unit from its native spelling.
pub fn parse_unit(s: &str) -> Option<DurationUnit> {
    Some(match s {
        "DAY" => DurationUnit::Day,
        "WEEK" => DurationUnit::Week,
        "MONTH" => DurationUnit::Month,
        "YEAR" => DurationUnit::Year,
        _ => return None,
    })
}

/// The native spelling of a duration unit.
pub fn unit(u: DurationUnit) -> &'static str {
    match u {
        DurationUnit::Day => "DAY",
        DurationUnit::Week => "WEEK",
        DurationUnit::Month => "MONTH",
        DurationUnit::Year => "YEAR",
    }
}

/// The native spelling of a grant's scope.
pub fn scope(s: GrantScope) -> &'static str {
    match s {
        GrantScope::Plan => "PLAN",
        GrantScope::Subscription => "SUBSCRIPTION",
    }
}

/// The native spelling of a grant's status.
pub fn grant_status(s: GrantStatus) -> &'static str {
    match s {
        GrantStatus::Published => "published",
        GrantStatus::Archived => "archived",
    }
}

/// The native spelling of a grant's cadence.
pub fn cadence(c: Cadence) -> &'static str {
    match c {
        Cadence::OneTime => "ONETIME",
        Cadence::Recurring { .. } => "RECURRING",
    }
}

/// The native spelling of a grant's expiry type.
pub fn expiration_type(e: ExpiryRule) -> &'static str {
    match e {
        ExpiryRule::Never => "NEVER",
        ExpiryRule::BillingCycle => "BILLING_CYCLE",
        ExpiryRule::Duration { .. } => "DURATION",
    }
}

/// The native spelling of an application's status.
pub fn application_status(s: ApplicationStatus) -> &'static str {
    match s {
        ApplicationStatus::Pending => "pending",
        ApplicationStatus::Applied => "applied",
        ApplicationStatus::Failed => "failed",
        ApplicationStatus::Skipped => "skipped",
        ApplicationStatus::Cancelled => "cancelled",
    }
}

/// The native spelling of why an application was made.
pub fn application_reason(r: ApplicationReason) -> &'static str {
    match r {
        ApplicationReason::OneTime => "onetime_credit_grant",
        ApplicationReason::FirstRecurring => "first_time_recurring_credit_grant",
        ApplicationReason::Recurring => "recurring_credit_grant",
    }
}

/// The native spelling of a subscription's status.
pub fn subscription_status(s: SubscriptionStatus) -> &'static str {
    match s {
        SubscriptionStatus::Active => "active",
        SubscriptionStatus::Cancelled => "cancelled",
    }
}

/// The native spelling of a subscription's billing cadence.
pub fn billing_cadence(c: BillingCadence) -> &'static str {
    match c {
        BillingCadence::Recurring => "RECURRING",
        BillingCadence::OneTime => "ONETIME",
    }
}

/// The native spelling of a plan's status.
pub fn plan_status(s: PlanStatus) -> &'static str {
    match s {
        PlanStatus::Published => "published",
        PlanStatus::Archived => "archived",
    }
}
