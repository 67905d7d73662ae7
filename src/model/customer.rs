//! Customers: one entity that both APIs name (`cus_<k>` for Stripe, `cust_<k>` natively).

use super::{Metadata, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// A customer. Deleted customers stay as tombstones so that a retrieve can say `deleted: true`.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// Identity.
    pub key: Key,
    /// Creation time (the customer's clock at creation).
    pub created: Nanos,
    /// Last change.
    pub updated: Nanos,
    /// Email address; Stripe's list filter matches it exactly.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// The caller's own identifier (the native API's `external_id`).
    pub external_id: Option<String>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// The Stripe test clock the customer lives on, if any; fixed at creation.
    pub test_clock: Option<Key>,
    /// Whether the customer was deleted.
    pub deleted: bool,
}

/// What a new customer starts with.
#[derive(Debug, Clone, Default)]
pub struct NewCustomer {
    /// See [`Customer`].
    pub email: Option<String>,
    /// See [`Customer`].
    pub name: Option<String>,
    /// See [`Customer`].
    pub description: Option<String>,
    /// See [`Customer`].
    pub phone: Option<String>,
    /// See [`Customer`].
    pub external_id: Option<String>,
    /// See [`Customer`].
    pub metadata: Metadata,
    /// Must name an existing test clock; the facade checks.
    pub test_clock: Option<Key>,
}

/// A partial update. `Some(None)` clears a field; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct CustomerChanges {
    /// See [`Customer`].
    pub email: Option<Option<String>>,
    /// See [`Customer`].
    pub name: Option<Option<String>>,
    /// See [`Customer`].
    pub description: Option<Option<String>>,
    /// See [`Customer`].
    pub phone: Option<Option<String>>,
    /// See [`Customer`].
    pub external_id: Option<Option<String>>,
    /// Replaces the whole map when set.
    pub metadata: Option<Metadata>,
}

impl Tenant {
    /// A live (not deleted) customer.
    pub fn live_customer(&self, key: Key) -> Option<&Customer> {
        self.customers.get(&key).filter(|c| !c.deleted)
    }

    /// Creates a customer and returns its key.
    pub fn create_customer(&mut self, new: NewCustomer) -> Key {
        let key = self.next_key();
        let now = match new.test_clock {
            Some(clock) => self.now_in(super::Domain::Clock(clock)),
            None => self.tenant_now(),
        };
        let customer = Customer {
            key,
            created: now,
            updated: now,
            email: new.email,
            name: new.name,
            description: new.description,
            phone: new.phone,
            external_id: new.external_id,
            metadata: new.metadata,
            test_clock: new.test_clock,
            deleted: false,
        };
        self.index_customer(&customer, true);
        self.customers.insert(key, customer);
        key
    }

    /// Applies `changes` to a live customer. Returns false if there is no such customer.
    pub fn update_customer(&mut self, key: Key, changes: CustomerChanges) -> bool {
        let Some(mut customer) = self.live_customer(key).cloned() else {
            return false;
        };
        self.index_customer(&customer, false);
        if let Some(v) = changes.email {
            customer.email = v;
        }
        if let Some(v) = changes.name {
            customer.name = v;
        }
        if let Some(v) = changes.description {
            customer.description = v;
        }
        if let Some(v) = changes.phone {
            customer.phone = v;
        }
        if let Some(v) = changes.external_id {
            customer.external_id = v;
        }
        if let Some(m) = changes.metadata {
            customer.metadata = m;
        }
        customer.updated = self.now_for(key);
        self.index_customer(&customer, true);
        self.customers.insert(key, customer);
        true
    }

    /// Deletes a customer, leaving a tombstone. Its grants and ledger stay, as in Stripe.
    pub fn delete_customer(&mut self, key: Key) -> bool {
        let Some(customer) = self.live_customer(key).cloned() else {
            return false;
        };
        self.index_customer(&customer, false);
        if let Some(c) = self.customers.get_mut(&key) {
            c.deleted = true;
        }
        true
    }

    /// Adds a customer to (or removes it from) the customer indexes its clock and email place it in.
    pub(super) fn index_customer(&mut self, c: &Customer, add: bool) {
        let set = match c.test_clock {
            Some(clock) => self.customers_by_clock.entry(clock).or_default(),
            None => &mut self.customers_unclocked,
        };
        if add {
            set.insert(c.key);
        } else {
            set.remove(&c.key);
        }
        if let Some(email) = &c.email {
            let set = self.customers_by_email.entry(email.clone()).or_default();
            if add {
                set.insert(c.key);
            } else {
                set.remove(&c.key);
                if set.is_empty() {
                    self.customers_by_email.remove(email);
                }
            }
        }
    }
}
