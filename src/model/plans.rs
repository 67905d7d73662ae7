//! Plans: named templates that subscriptions are made from. A plan carries grant rules (see
//! [`super::GrantRule`] with [`super::GrantScope::Plan`]) that are copied onto every subscription
//! started on it.

use super::{Metadata, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// Whether a plan can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// Usable.
    Published,
    /// Retired: no new grants may target it.
    Archived,
}

/// A plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Display name.
    pub name: String,
    /// The caller's own handle for it.
    pub lookup_key: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// State.
    pub status: PlanStatus,
    /// Creation time (tenant clock).
    pub created: Nanos,
    /// Last change (tenant clock).
    pub updated: Nanos,
}

/// What a new plan starts with.
#[derive(Debug, Clone, Default)]
pub struct NewPlan {
    /// See [`Plan`].
    pub name: String,
    /// See [`Plan`].
    pub lookup_key: Option<String>,
    /// See [`Plan`].
    pub description: Option<String>,
    /// See [`Plan`].
    pub metadata: Metadata,
}

impl Tenant {
    /// A plan.
    pub fn plan(&self, key: Key) -> Option<&Plan> {
        self.billing.plans.get(&key)
    }

    /// Every plan, oldest first (walk it backwards for newest first).
    pub fn plans(&self) -> impl DoubleEndedIterator<Item = &Plan> {
        self.billing.plans.values()
    }

    /// Creates a published plan and returns its key.
    pub fn create_plan(&mut self, new: NewPlan) -> Key {
        let key = self.next_key();
        self.create_plan_with_key(key, new)
    }

    /// As [`Tenant::create_plan`], with a key taken earlier (rules given with the plan are checked
    /// against its id before it exists).
    pub fn create_plan_with_key(&mut self, key: Key, new: NewPlan) -> Key {
        let now = self.tenant_now();
        self.billing.plans.insert(
            key,
            Plan {
                key,
                name: new.name,
                lookup_key: new.lookup_key,
                description: new.description,
                metadata: new.metadata,
                status: PlanStatus::Published,
                created: now,
                updated: now,
            },
        );
        key
    }

    /// Archives a plan. Returns false if there is no such plan.
    pub fn archive_plan(&mut self, key: Key) -> bool {
        let now = self.tenant_now();
        match self.billing.plans.get_mut(&key) {
            Some(p) => {
                p.status = PlanStatus::Archived;
                p.updated = now;
                true
            }
            None => false,
        }
    }
}
