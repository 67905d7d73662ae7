//! `/v1/plans`: name, lookup key, description, metadata, and grant rules given inline.

use serde::Serialize;

use super::error::{self, request_validation_failed, NativeResult};
use super::find;
use super::grant_rules::{self, GrantBody, GrantInput};
use super::ids;
use super::json::{self, json_object, Sent};
use super::list::{Page, Rows};
use super::names;
use super::op::{with_next_key, Input, Operation};
use super::view::{Id, Message, SortedMap, Stamp};
use crate::model::{NewPlan, Plan, Tenant};

/// Flexprice's `PlanResponse` (without expansions).
#[derive(Debug, Serialize)]
pub struct PlanView<'a> {
    id: Id,
    name: &'a str,
    lookup_key: &'a str,
    description: &'a str,
    environment_id: &'a str,
    metadata: SortedMap<'a>,
    display_order: u32,
    #[serde(flatten)]
    stamp: Stamp,
}

impl<'a> PlanView<'a> {
    /// The view of a plan.
    pub fn new(env: &'a str, p: &'a Plan) -> Self {
        PlanView {
            id: Id(ids::PLAN, p.key),
            name: &p.name,
            lookup_key: p.lookup_key.as_deref().unwrap_or_default(),
            description: p.description.as_deref().unwrap_or_default(),
            environment_id: env,
            metadata: SortedMap(&p.metadata),
            display_order: 0,
            stamp: Stamp::new(names::plan_status(p.status), p.created, p.updated),
        }
    }
}

json_object! {
    /// `CreatePlanRequest`.
    pub struct CreateBody {
        /// Required.
        name: json::Str,
        /// `lookup_key`.
        lookup_key: json::Str,
        /// `description`.
        description: json::Str,
        /// `metadata`.
        metadata: json::Map,
        /// Grant rules made with the plan (scope PLAN).
        credit_grants: json::List<GrantBody>,
        /// Documented, not modelled.
        prices: json::Any,
        /// Documented, not modelled.
        entitlements: json::Any,
        /// Documented, not modelled.
        addons: json::Any,
    }
}

/// `POST /v1/plans` (201). Grant rules in `credit_grants` are checked like `POST /v1/creditgrants`
/// (scope PLAN, this plan) before anything is created, so a bad rule creates nothing.
#[derive(Debug)]
pub struct Create {
    plan: NewPlan,
    grants: Vec<GrantInput>,
}

impl Operation for Create {
    const STATUS: u16 = 201;
    type Done<'t> = &'t Plan;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        // gin binds the whole body, nested grants included, before any rule runs.
        let body: CreateBody = input.body()?;
        for (field, sent) in [
            ("prices", body.prices),
            ("entitlements", body.entitlements),
            ("addons", body.addons),
        ] {
            // An empty array is as good as absent.
            if sent.is_some_and(|s| s != Sent::Array { empty: true }) {
                return Err(error::unsupported(
                    field,
                    "plans support name, lookup_key, description, metadata and credit_grants",
                ));
            }
        }
        let name = body.name.unwrap_or_default();
        if name.is_empty() {
            return Err(request_validation_failed(vec![(
                "Name",
                error::required("CreatePlanRequest", "Name"),
            )]));
        }
        let lookup_key = body.lookup_key.unwrap_or_default();
        let description = body.description.unwrap_or_default();
        Ok(Create {
            plan: NewPlan {
                name,
                lookup_key: (!lookup_key.is_empty()).then_some(lookup_key),
                description: (!description.is_empty()).then_some(description),
                metadata: body.metadata.unwrap_or_default(),
            },
            grants: body
                .credit_grants
                .unwrap_or_default()
                .into_iter()
                .map(GrantInput::from)
                .collect(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<&Plan> {
        let Create { plan, grants } = self;
        // The plan's key is taken now so that its rules can be checked against it (and given back
        // if one of them is refused).
        let key = with_next_key(t, |tenant, plan_key| {
            let plan_id = ids::render(ids::PLAN, plan_key);
            let mut rules = Vec::with_capacity(grants.len());
            for mut input in grants {
                input.scope = "PLAN".to_string();
                input.plan_id = Some(plan_id.clone());
                let checked = grant_rules::validate(&input)?;
                let refs =
                    grant_rules::check_references(tenant, &input, &checked, Some(plan_key), None)?;
                grant_rules::check_storage(&input, &checked)?;
                rules.push((input, checked, refs));
            }
            if let Some((first, _, _)) = rules.first() {
                let clash = rules.iter().any(|(r, _, _)| {
                    r.conversion_rate != first.conversion_rate
                        || r.topup_conversion_rate != first.topup_conversion_rate
                });
                if clash {
                    return Err(grant_rules::same_rates_error());
                }
            }
            let key = tenant.create_plan_with_key(plan_key, plan);
            for (input, checked, mut refs) in rules {
                refs.plan = Some(key);
                tenant.create_grant_rule(grant_rules::to_new(input, &checked, refs));
            }
            Ok(key)
        })?;
        Ok(t.plan(key).expect("looked up above"))
    }

    fn render<'a>(p: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        PlanView::new(env, p)
    }
}

/// `GET /v1/plans/{id}`.
#[derive(Debug)]
pub struct Retrieve {
    id: String,
}

impl Operation for Retrieve {
    type Done<'t> = &'t Plan;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(Retrieve {
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<&Plan> {
        let key = find::plan(t, &self.id)?;
        Ok(t.plan(key).expect("looked up above"))
    }

    fn render<'a>(p: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        PlanView::new(env, p)
    }
}

/// `DELETE /v1/plans/{id}`: archives the plan (its grant rules stay as they are).
#[derive(Debug)]
pub struct Delete {
    id: String,
}

impl Operation for Delete {
    type Done<'t> = ();

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(Delete {
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<()> {
        let key = find::plan(t, &self.id)?;
        t.archive_plan(key);
        Ok(())
    }

    fn render<'a>(_: &'a Self::Done<'_>, _: &'a str) -> impl Serialize + 'a {
        Message {
            message: "plan deleted successfully",
        }
    }
}

/// `GET /v1/plans`: newest first, offset pagination, `status` filter.
#[derive(Debug)]
pub struct List {
    page: Page,
}

impl Operation for List {
    type Done<'t> = Rows<&'t Plan>;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(List {
            page: Page::read(input.query)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<Rows<&Plan>> {
        let t = &*t;
        let page = self.page;
        let walk: Box<dyn Iterator<Item = &Plan>> = if page.ascending {
            Box::new(t.plans())
        } else {
            Box::new(t.plans().rev())
        };
        let rows: Vec<&Plan> = walk
            .filter(|p| {
                page.status
                    .as_deref()
                    .is_none_or(|s| s == names::plan_status(p.status))
            })
            .collect();
        Ok(page.rows(rows))
    }

    fn render<'a>(rows: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        rows.view(|p| PlanView::new(env, p))
    }
}
