//! `/v1/plans`: name, lookup key, description, metadata, and grant rules given inline.

use serde_json::{json, Value};

use super::credit_grants::{self, ScopeIn};
use super::customers::{request_validation_failed, required_detail, unsupported};
use super::error::{NativeError, NativeResult};
use super::ids::{self, key_of, render as id};
use super::json::{metadata_value, Obj};
use super::list::Page;
use super::{base, Ctx};
use crate::ids::Key;
use crate::model::{NewPlan, Plan, PlanStatus, Tenant};

/// Documented plan fields the emulator does not model.
const UNSUPPORTED: [&str; 3] = ["prices", "entitlements", "addons"];

fn status_name(s: PlanStatus) -> &'static str {
    match s {
        PlanStatus::Published => "published",
        PlanStatus::Archived => "archived",
    }
}

/// Renders a plan as Flexprice's `PlanResponse` (without expansions).
pub fn render(env: &str, p: &Plan) -> Value {
    let o = Obj::new()
        .put("id", id(ids::PLAN, p.key))
        .put("name", p.name.clone())
        .put("lookup_key", p.lookup_key.clone().unwrap_or_default())
        .put("description", p.description.clone().unwrap_or_default())
        .put("environment_id", env)
        .put("metadata", metadata_value(&p.metadata))
        .put("display_order", 0);
    base(o, status_name(p.status), p.created, p.updated).done()
}

/// A plan by native id, or `Plan with ID … was not found`.
pub fn lookup(t: &Tenant, id_: &str) -> NativeResult<Key> {
    key_of(id_, ids::PLAN)
        .filter(|k| t.plan(*k).is_some())
        .ok_or_else(|| {
            NativeError::not_found(format!("Plan with ID {id_} was not found"))
                .details(vec![("plan_id", json!(id_))])
        })
}

/// A published plan by native id: `Plan with ID … was not found` as [`lookup`], then
/// `Plan is not published` for an archived one.
pub fn published(t: &Tenant, id_: &str) -> NativeResult<Key> {
    let key = lookup(t, id_)?;
    if t.plan(key)
        .is_some_and(|p| p.status != PlanStatus::Published)
    {
        return Err(
            NativeError::validation("Plan is not published").details(vec![("plan_id", json!(id_))])
        );
    }
    Ok(key)
}

/// `POST /v1/plans` (201). Grant rules in `credit_grants` are checked like `POST /v1/creditgrants`
/// (scope PLAN, this plan) before anything is created, so a bad rule creates nothing.
pub fn create(ctx: &mut Ctx) -> NativeResult<Value> {
    let body = ctx.body()?;
    let name = body.string("name")?;
    let lookup_key = body.string("lookup_key")?;
    let description = body.string("description")?;
    let metadata = body.metadata("metadata")?.unwrap_or_default();
    // gin binds the whole body, nested grants included, before any rule runs.
    let grants = body
        .objects("credit_grants")?
        .unwrap_or_default()
        .iter()
        .map(credit_grants::bind_fields)
        .collect::<NativeResult<Vec<_>>>()?;
    for field in UNSUPPORTED {
        if body
            .get(field)
            .is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()))
        {
            return Err(unsupported(field, "plans"));
        }
    }
    if name.is_empty() {
        return Err(request_validation_failed(vec![required_detail(
            "CreatePlanRequest",
            "Name",
        )]));
    }
    // The plan's key is taken now so that its rules can be checked against it (and given back if
    // one of them is refused).
    let env = ctx.env.clone();
    super::with_next_key(ctx.tenant, |tenant, plan_key| {
        let plan_id = id(ids::PLAN, plan_key);
        let mut rules = Vec::with_capacity(grants.len());
        for mut input in grants {
            input.scope = "PLAN".to_string();
            input.plan_id = Some(plan_id.clone());
            let checked = credit_grants::validate(&input)?;
            let refs =
                credit_grants::check_references(tenant, &input, &checked, Some(plan_key), None)?;
            credit_grants::check_storage(&input, &checked)?;
            rules.push((input, checked, refs));
        }
        if let Some((first, _, _)) = rules.first() {
            let clash = rules.iter().any(|(r, _, _)| {
                r.conversion_rate != first.conversion_rate
                    || r.topup_conversion_rate != first.topup_conversion_rate
            });
            if clash {
                return Err(credit_grants::same_rates_error());
            }
        }
        let key = tenant.create_plan_with_key(
            plan_key,
            NewPlan {
                name,
                lookup_key: (!lookup_key.is_empty()).then_some(lookup_key),
                description: (!description.is_empty()).then_some(description),
                metadata,
            },
        );
        for (input, checked, mut refs) in rules {
            debug_assert_eq!(checked.scope, ScopeIn::Plan);
            refs.plan = Some(key);
            tenant.create_grant_rule(credit_grants::to_new(input, &checked, refs));
        }
        Ok(render(&env, tenant.plan(key).expect("made above")))
    })
}

/// `GET /v1/plans/{id}`.
pub fn retrieve(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    let key = lookup(ctx.tenant, id_)?;
    Ok(render(
        &ctx.env,
        ctx.tenant.plan(key).expect("looked up above"),
    ))
}

/// `DELETE /v1/plans/{id}`: archives the plan (its grant rules stay as they are).
pub fn delete(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    let key = lookup(ctx.tenant, id_)?;
    ctx.tenant.archive_plan(key);
    Ok(json!({"message": "plan deleted successfully"}))
}

/// `GET /v1/plans`: newest first, offset pagination, `status` filter.
pub fn list(ctx: &mut Ctx) -> NativeResult<Value> {
    let page = Page::read(&ctx.query)?;
    let t = &*ctx.tenant;
    let walk: Box<dyn Iterator<Item = &Plan>> = if page.ascending {
        Box::new(t.plans())
    } else {
        Box::new(t.plans().rev())
    };
    let rows: Vec<&Plan> = walk
        .filter(|p| {
            page.status
                .as_deref()
                .is_none_or(|s| s == status_name(p.status))
        })
        .collect();
    Ok(page.render_rows(rows, |p| render(&ctx.env, p)))
}
