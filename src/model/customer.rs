//! Customers: one entity that both APIs name (`cus_<k>` for Stripe, `cust_<k>` natively).

use std::ops::RangeBounds;

use super::index::values_in;
use super::{ChangeKind, KeyIndex, Metadata, Snapshot, Tenant};
use crate::ids::{fnv1a64, Key};
use crate::time::Nanos;

/// A customer. Deleted customers stay as tombstones so that a retrieve can say `deleted: true`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// Identity.
    #[serde(with = "crate::ids::text")]
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
    #[serde(with = "crate::ids::text::opt")]
    pub test_clock: Option<Key>,
    /// Whether the customer was deleted.
    pub deleted: bool,
    /// Addresses, invoice settings and the like: stored and shown, read by no rule.
    pub profile: Profile,
}

/// What a customer carries for invoices and correspondence. No rule of the model reads it (there
/// are no taxes, payments or invoice numbers to compute), so it is kept exactly as given.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Billing address.
    pub address: Option<Address>,
    /// Where goods go, with the recipient's name.
    pub shipping: Option<Shipping>,
    /// Languages, most preferred first.
    pub preferred_locales: Vec<String>,
    /// Prefix of the customer's invoice numbers; [`default_invoice_prefix`] when not chosen.
    pub invoice_prefix: String,
    /// Defaults for the customer's invoices.
    pub invoice_settings: InvoiceSettings,
    /// Tax status.
    pub tax_exempt: TaxExempt,
    /// Amount owed (positive) or credited (negative) in minor units, outside credit grants.
    pub balance: i64,
    /// The number the next invoice will carry after the prefix.
    pub next_invoice_sequence: i64,
    /// A business's legal name.
    pub business_name: Option<String>,
    /// A person's legal name.
    pub individual_name: Option<String>,
}

/// A postal address; every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// City, district, suburb, town or village.
    pub city: Option<String>,
    /// Two-letter country code.
    pub country: Option<String>,
    /// Street, PO box or company name.
    pub line1: Option<String>,
    /// Apartment, suite, unit or building.
    pub line2: Option<String>,
    /// ZIP or postal code.
    pub postal_code: Option<String>,
    /// State, county, province or region.
    pub state: Option<String>,
}

/// A shipping destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shipping {
    /// Where.
    pub address: Address,
    /// Recipient.
    pub name: String,
    /// Recipient's phone.
    pub phone: Option<String>,
}

/// Defaults for a customer's invoices.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceSettings {
    /// Up to four name/value pairs printed on invoices.
    pub custom_fields: Option<Vec<(String, String)>>,
    /// The payment method invoices are charged to (an id; nothing is charged).
    pub default_payment_method: Option<String>,
    /// Text printed at the foot of invoices.
    pub footer: Option<String>,
    /// How invoice documents are laid out.
    pub rendering_options: Option<RenderingOptions>,
}

/// Invoice document layout.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderingOptions {
    /// How amounts show tax (`exclude_tax`, `include_inclusive_tax`).
    pub amount_tax_display: Option<String>,
    /// A document template's id.
    pub template: Option<String>,
}

/// A customer's tax exemption.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxExempt {
    /// Taxable.
    #[default]
    None,
    /// Exempt.
    Exempt,
    /// Reverse charge: the customer accounts for the tax.
    Reverse,
}

/// The invoice prefix a customer gets when none is chosen: eight upper-case hexadecimal
/// characters, like the prefixes Stripe generates, derived from the key so that they are stable
/// (and deterministic with `--seed`).
pub fn default_invoice_prefix(key: Key) -> String {
    let h = fnv1a64(0xcbf2_9ce4_8422_2325, &key.to_le_bytes());
    format!("{:08X}", h as u32)
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
    /// Replaces the whole profile when set (the facade merges what its API merges).
    pub profile: Option<Profile>,
}

impl Tenant {
    /// A customer, deleted ones included (their tombstones).
    pub fn customer(&self, key: Key) -> Option<&Customer> {
        self.customers.get(&key)
    }

    /// A live (not deleted) customer.
    pub fn live_customer(&self, key: Key) -> Option<&Customer> {
        self.customers.get(&key).filter(|c| !c.deleted)
    }

    /// Creates a customer with an empty profile and returns its key.
    pub fn create_customer(&mut self, new: NewCustomer) -> Key {
        self.create_customer_with(new, Profile::default())
    }

    /// Creates a customer with `profile` and returns its key. An empty `invoice_prefix` gets
    /// [`default_invoice_prefix`], and a `next_invoice_sequence` below 1 starts at 1.
    pub fn create_customer_with(&mut self, new: NewCustomer, mut profile: Profile) -> Key {
        let key = self.next_key();
        if profile.invoice_prefix.is_empty() {
            profile.invoice_prefix = default_invoice_prefix(key);
        }
        profile.next_invoice_sequence = profile.next_invoice_sequence.max(1);
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
            profile,
        };
        self.index_customer(&customer, true);
        self.record(
            ChangeKind::Created,
            now,
            Snapshot::Customer(Box::new(customer.clone())),
            None,
        );
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
        if let Some(p) = changes.profile {
            customer.profile = p;
        }
        customer.updated = self.now_for(key);
        self.index_customer(&customer, true);
        if let Some(before) = self.customers.get(&key) {
            let before = Snapshot::Customer(Box::new(before.clone()));
            let after = Snapshot::Customer(Box::new(customer.clone()));
            self.record(ChangeKind::Updated, customer.updated, after, Some(before));
        }
        self.customers.insert(key, customer);
        true
    }

    /// Deletes a customer, leaving a tombstone. Its grants and ledger stay, as in Stripe; its
    /// priced subscriptions that have not ended are cancelled at once.
    pub fn delete_customer(&mut self, key: Key) -> bool {
        let Some(customer) = self.live_customer(key).cloned() else {
            return false;
        };
        self.end_subscriptions_of(key);
        self.index_customer(&customer, false);
        let at = self.now_for(key);
        self.record(
            ChangeKind::Deleted,
            at,
            Snapshot::Customer(Box::new(customer)),
            None,
        );
        if let Some(c) = self.customers.get_mut(&key) {
            c.deleted = true;
        }
        true
    }

    /// Every customer, deleted ones included, oldest first (walk it backwards for newest first).
    pub fn customers(&self) -> impl DoubleEndedIterator<Item = &Customer> {
        self.customers.values()
    }

    /// The customers whose keys are in `range`, deleted ones included, oldest first.
    pub fn customers_in(
        &self,
        range: impl RangeBounds<Key>,
    ) -> impl DoubleEndedIterator<Item = &Customer> {
        values_in(&self.customers, range)
    }

    /// The live customers not on a test clock.
    pub fn customers_off_clocks(&self) -> KeyIndex<'_> {
        KeyIndex::of(Some(&self.customers_unclocked))
    }

    /// The live customers on test clock `clock`.
    pub fn customers_on_clock(&self, clock: Key) -> KeyIndex<'_> {
        KeyIndex::of(self.customers_by_clock.get(&clock))
    }

    /// The live customers whose email is exactly `email`.
    pub fn customers_with_email(&self, email: &str) -> KeyIndex<'_> {
        KeyIndex::of(self.customers_by_email.get(email))
    }

    /// The live customer with the caller-given identifier `external_id`.
    pub fn customer_with_external_id(&self, external_id: &str) -> Option<Key> {
        self.customers_by_external_id
            .get(external_id)
            .copied()
            .filter(|k| self.live_customer(*k).is_some())
    }

    /// Adds a customer to (or removes it from) the customer indexes its clock, email and external
    /// identifier place it in.
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
        if let Some(id) = &c.external_id {
            if add {
                self.customers_by_external_id.insert(id.clone(), c.key);
            } else if self.customers_by_external_id.get(id) == Some(&c.key) {
                self.customers_by_external_id.remove(id);
            }
        }
    }
}
