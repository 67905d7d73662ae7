//! Objects named by native ids, or the error upstream gives when there is no such object. Shared by
//! every resource (a grant names a plan, a subscription names a customer, ...), so that no resource
//! file needs another's.

use serde_json::json;

use super::error::{NativeError, NativeResult};
use super::ids::{self, key_of};
use crate::ids::Key;
use crate::model::{PlanStatus, Tenant};

/// A customer named by a native id (`cust_<k>`), deleted ones included.
pub fn customer(t: &Tenant, id: &str) -> NativeResult<Key> {
    key_of(id, ids::CUSTOMER)
        .filter(|k| t.customer(*k).is_some())
        .ok_or_else(|| customer_not_found(id))
}

/// A live customer named by a native id.
pub fn live_customer(t: &Tenant, id: &str) -> NativeResult<Key> {
    key_of(id, ids::CUSTOMER)
        .filter(|k| t.live_customer(*k).is_some())
        .ok_or_else(|| customer_not_found(id))
}

/// `Customer with ID … was not found`.
pub fn customer_not_found(id: &str) -> NativeError {
    NativeError::not_found(format!("Customer with ID {id} was not found"))
        .details(vec![("customer_id", json!(id))])
}

/// A live customer by `external_id`.
pub fn customer_by_external_id(t: &Tenant, external_id: &str) -> Option<Key> {
    t.customer_with_external_id(external_id)
}

/// A plan by native id, or `Plan with ID … was not found`.
pub fn plan(t: &Tenant, id: &str) -> NativeResult<Key> {
    key_of(id, ids::PLAN)
        .filter(|k| t.plan(*k).is_some())
        .ok_or_else(|| {
            NativeError::not_found(format!("Plan with ID {id} was not found"))
                .details(vec![("plan_id", json!(id))])
        })
}

/// A published plan by native id: `Plan with ID … was not found` as [`plan`], then
/// `Plan is not published` for an archived one.
pub fn published_plan(t: &Tenant, id: &str) -> NativeResult<Key> {
    let key = plan(t, id)?;
    if t.plan(key)
        .is_some_and(|p| p.status != PlanStatus::Published)
    {
        return Err(
            NativeError::validation("Plan is not published").details(vec![("plan_id", json!(id))])
        );
    }
    Ok(key)
}

/// A subscription by native id, or `Subscription not found`.
pub fn subscription(t: &Tenant, id: &str) -> NativeResult<Key> {
    key_of(id, ids::SUBSCRIPTION)
        .filter(|k| t.subscription(*k).is_some())
        .ok_or_else(|| NativeError::not_found("Subscription not found"))
}

/// A grant rule by native id, or `Credit grant not found`.
pub fn grant(t: &Tenant, id: &str) -> NativeResult<Key> {
    key_of(id, ids::CREDIT_GRANT)
        .filter(|k| t.grant_rule(*k).is_some())
        .ok_or_else(|| {
            NativeError::not_found("Credit grant not found").details(vec![("id", json!(id))])
        })
}

/// A wallet by native id, or `Wallet with ID … was not found`.
pub fn wallet(t: &Tenant, id: &str) -> NativeResult<Key> {
    key_of(id, ids::WALLET)
        .filter(|k| t.wallet(*k).is_some())
        .ok_or_else(|| {
            NativeError::not_found(format!("Wallet with ID {id} was not found"))
                .details(vec![("wallet_id", json!(id))])
        })
}
