//! Webhook endpoints: where a world's events are sent. The model keeps what an endpoint is (its
//! address, the event kinds it wants, its signing secret, whether it is on); sending is the
//! delivery worker's business (`crate::webhooks`), outside every lock.

use std::ops::RangeBounds;

use super::index::values_in;
use super::{Metadata, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// The wildcard kind: every event.
pub const ALL_EVENTS: &str = "*";

/// One webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Where deliveries go.
    pub url: String,
    /// The event kinds it receives; [`ALL_EVENTS`] receives every kind.
    pub enabled_events: Vec<String>,
    /// The API version its events are meant to be shown in, fixed at creation.
    pub api_version: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// The signing secret, shown once when the endpoint is made.
    pub secret: String,
    /// A disabled endpoint receives nothing.
    pub disabled: bool,
    /// Creation time (tenant clock).
    pub created: Nanos,
}

impl WebhookEndpoint {
    /// Whether an event of `kind` goes to this endpoint (ignoring whether it is disabled).
    pub fn wants(&self, kind: &str) -> bool {
        self.enabled_events
            .iter()
            .any(|e| e == ALL_EVENTS || e == kind)
    }
}

/// What a new endpoint is made of.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    /// Where deliveries go.
    pub url: String,
    /// The event kinds it receives.
    pub enabled_events: Vec<String>,
    /// The API version its events are meant to be shown in.
    pub api_version: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// The signing secret.
    pub secret: String,
}

/// What an update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookEndpointChanges {
    /// A new address.
    pub url: Option<String>,
    /// A new set of event kinds.
    pub enabled_events: Option<Vec<String>>,
    /// A new description, or `Some(None)` to clear it.
    pub description: Option<Option<String>>,
    /// The whole new metadata.
    pub metadata: Option<Metadata>,
    /// Turn the endpoint off (`true`) or on again.
    pub disabled: Option<bool>,
}

/// Where one event goes: an endpoint that is on and wants its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The endpoint.
    pub endpoint: Key,
    /// Its address.
    pub url: String,
    /// Its signing secret.
    pub secret: String,
}

impl Tenant {
    /// A webhook endpoint (deleted ones are gone).
    pub fn webhook_endpoint(&self, key: Key) -> Option<&WebhookEndpoint> {
        self.webhook_endpoints.get(&key)
    }

    /// The endpoints whose keys are in `range`, oldest first.
    pub fn webhook_endpoints_in(
        &self,
        range: impl RangeBounds<Key>,
    ) -> impl DoubleEndedIterator<Item = &WebhookEndpoint> {
        values_in(&self.webhook_endpoints, range)
    }

    /// Makes an endpoint, enabled.
    pub fn create_webhook_endpoint(&mut self, new: NewWebhookEndpoint) -> Key {
        let key = self.next_key();
        let created = self.tenant_now();
        self.webhook_endpoints.insert(
            key,
            WebhookEndpoint {
                key,
                url: new.url,
                enabled_events: new.enabled_events,
                api_version: new.api_version,
                description: new.description,
                metadata: new.metadata,
                secret: new.secret,
                disabled: false,
                created,
            },
        );
        key
    }

    /// Changes an endpoint; `false` if there is no such endpoint.
    pub fn update_webhook_endpoint(&mut self, key: Key, changes: WebhookEndpointChanges) -> bool {
        let Some(e) = self.webhook_endpoints.get_mut(&key) else {
            return false;
        };
        if let Some(url) = changes.url {
            e.url = url;
        }
        if let Some(events) = changes.enabled_events {
            e.enabled_events = events;
        }
        if let Some(description) = changes.description {
            e.description = description;
        }
        if let Some(metadata) = changes.metadata {
            e.metadata = metadata;
        }
        if let Some(disabled) = changes.disabled {
            e.disabled = disabled;
        }
        true
    }

    /// Deletes an endpoint; `false` if there was none. Deliveries already queued for it are the
    /// delivery worker's, and still go out.
    pub fn delete_webhook_endpoint(&mut self, key: Key) -> bool {
        self.webhook_endpoints.remove(&key).is_some()
    }

    /// The enabled endpoints whose `enabled_events` take an event of `kind`, oldest first.
    pub fn webhook_endpoints_receiving<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a WebhookEndpoint> + 'a {
        self.webhook_endpoints
            .values()
            .filter(move |e| !e.disabled && e.wants(kind))
    }

    /// The enabled endpoints that receive an event of `kind`, oldest first.
    pub fn webhook_targets(&self, kind: &str) -> Vec<WebhookTarget> {
        self.webhook_endpoints_receiving(kind)
            .map(|e| WebhookTarget {
                endpoint: e.key,
                url: e.url.clone(),
                secret: e.secret.clone(),
            })
            .collect()
    }
}
