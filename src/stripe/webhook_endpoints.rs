//! `/v1/webhook_endpoints`: where a world's events are delivered (see `crate::webhooks` for the
//! sending). The signing secret is shown once, in the answer to create.

use serde::Serialize;

use super::event_types::EVENT_TYPES;
use super::ids;
use super::list::{self, ListJson, PageRequest};
use super::op::{pretty, Body, Deleted, Expand, Input, Operation};
use crate::form::Params;
use crate::ids::Key;
use crate::model::{Metadata, NewWebhookEndpoint, Tenant, WebhookEndpoint, WebhookEndpointChanges};
use crate::time::to_secs;
use crate::webhooks::{check_url, signature, UrlError};
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    apply_metadata, get_metadata, get_nullable_str, get_str, list_items, new_metadata, opt, req,
    validate_at, Field, MetadataUpdate, Spec, EXPAND, LIST_FIELDS,
};
use crate::wire::versions::{self, Version};

/// Most entries `enabled_events[]` may have (more than Stripe's enum has values).
const MAX_EVENTS: usize = 300;

const EVENTS: Spec = Spec::Array(&Spec::Enum(EVENT_TYPES), MAX_EVENTS);

const CREATE: &[Field] = &[
    opt("api_version", Spec::Str(5000)),
    opt("connect", Spec::Unsupported),
    opt("description", Spec::Str(5000)),
    req("enabled_events", EVENTS),
    EXPAND,
    opt("metadata", Spec::Metadata),
    req("url", Spec::Str(5000)),
];
const UPDATE: &[Field] = &[
    opt("description", Spec::Str(5000)),
    opt("disabled", Spec::Bool),
    opt("enabled_events", EVENTS),
    EXPAND,
    opt("metadata", Spec::Metadata),
    opt("url", Spec::Str(5000)),
];
const ONLY_EXPAND: &[Field] = &[EXPAND];

/// A webhook endpoint as Stripe shows it; `secret` only in the answer to create.
#[derive(Serialize)]
pub struct WebhookEndpointView<'a> {
    id: String,
    object: &'static str,
    api_version: Option<&'a str>,
    application: Option<&'a str>,
    created: i64,
    description: Option<&'a str>,
    enabled_events: &'a [String],
    livemode: bool,
    metadata: &'a Metadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
    status: &'static str,
    url: &'a str,
}

impl<'a> WebhookEndpointView<'a> {
    /// The view of `e`, with its secret when `with_secret`.
    pub fn of(e: &'a WebhookEndpoint, with_secret: bool) -> Self {
        WebhookEndpointView {
            id: ids::render(ids::WEBHOOK_ENDPOINT, e.key),
            object: "webhook_endpoint",
            api_version: e.api_version.as_deref(),
            application: None,
            created: to_secs(e.created),
            description: e.description.as_deref(),
            enabled_events: &e.enabled_events,
            livemode: false,
            metadata: &e.metadata,
            secret: with_secret.then_some(e.secret.as_str()),
            status: if e.disabled { "disabled" } else { "enabled" },
            url: &e.url,
        }
    }
}

/// The endpoint `key` as the answer.
fn respond(t: &Tenant, key: Key, with_secret: bool) -> Body {
    Body::Json(pretty(
        &WebhookEndpointView::of(
            t.webhook_endpoint(key).expect("made or looked up above"),
            with_secret,
        ),
        512,
    ))
}

/// The endpoint named by the path's id (404 otherwise).
fn lookup(t: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::WEBHOOK_ENDPOINT)
        .filter(|k| t.webhook_endpoint(*k).is_some())
        .ok_or_else(|| StripeError::no_such("webhook endpoint", id, "id", 404))
}

/// `url`, checked: an absolute http or https URL.
fn read_url(url: &str) -> StripeResult<String> {
    check_url(url).map_err(|e| {
        let url = shorten(url);
        StripeError::invalid(match e {
            UrlError::Malformed => format!("Invalid URL: {url}"),
            UrlError::Scheme => {
                format!("Invalid URL: {url}. Webhook URLs must use the http or https scheme.")
            }
        })
        .param("url")
    })?;
    Ok(url.to_string())
}

/// `enabled_events[]` as sent (already checked against [`EVENT_TYPES`]), without repeats.
fn read_events(p: &Params) -> StripeResult<Vec<String>> {
    let mut events: Vec<String> = Vec::new();
    if let Some(node) = p.get("enabled_events") {
        for item in list_items(node) {
            if let crate::form::Node::Value(s) = item {
                if !events.contains(s) {
                    events.push(s.clone());
                }
            }
        }
    }
    if events.is_empty() {
        return Err(StripeError::invalid(
            "Invalid enabled_events: must contain at least one event type.",
        )
        .param("enabled_events"));
    }
    Ok(events)
}

/// `POST /v1/webhook_endpoints`.
pub struct Create {
    new: NewWebhookEndpoint,
}

impl Operation for Create {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, CREATE, "", input.version)?;
        Expand::read(p, &[], input.version)?;
        let api_version = match get_str(p, "api_version") {
            None | Some("") => None,
            Some(v) => Some(
                Version::parse(v)
                    .ok_or_else(|| versions::invalid(v).param("api_version"))?
                    .as_str()
                    .to_string(),
            ),
        };
        let metadata = new_metadata(p, "metadata", "metadata")?;
        Ok(Create {
            new: NewWebhookEndpoint {
                enabled_events: read_events(p)?,
                url: read_url(get_str(p, "url").unwrap_or_default())?,
                api_version,
                description: get_nullable_str(p, "description").flatten(),
                metadata,
                secret: signature::new_secret(),
            },
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        Ok(t.create_webhook_endpoint(self.new))
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key, true)
    }
}

/// `GET /v1/webhook_endpoints/{id}`.
pub struct Retrieve {
    id: String,
}

impl Operation for Retrieve {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, ONLY_EXPAND, "", input.version)?;
        Expand::read(input.params, &[], input.version)?;
        Ok(Retrieve {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        lookup(t, &self.id)
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key, false)
    }
}

/// `POST /v1/webhook_endpoints/{id}`: `url`, `enabled_events`, `description`, `metadata` and
/// `disabled` change; `api_version` is fixed at creation.
pub struct Update {
    id: String,
    changes: WebhookEndpointChanges,
    metadata: Option<MetadataUpdate>,
}

impl Operation for Update {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, UPDATE, "", input.version)?;
        Expand::read(p, &[], input.version)?;
        let changes = WebhookEndpointChanges {
            url: get_str(p, "url").map(read_url).transpose()?,
            enabled_events: p
                .contains_key("enabled_events")
                .then(|| read_events(p))
                .transpose()?,
            description: get_nullable_str(p, "description"),
            metadata: None,
            disabled: get_str(p, "disabled").map(|s| s == "true"),
        };
        Ok(Update {
            id: input.id().to_string(),
            changes,
            metadata: get_metadata(p, "metadata"),
        })
    }

    fn apply(mut self, t: &mut Tenant) -> StripeResult<Key> {
        let key = lookup(t, &self.id)?;
        if let Some(u) = self.metadata {
            let existing = t
                .webhook_endpoint(key)
                .map(|e| e.metadata.clone())
                .unwrap_or_default();
            self.changes.metadata = Some(apply_metadata(&existing, u, "metadata")?);
        }
        t.update_webhook_endpoint(key, self.changes);
        Ok(key)
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key, false)
    }
}

/// `DELETE /v1/webhook_endpoints/{id}`: it receives nothing more (deliveries already queued still
/// go out).
pub struct Delete {
    id: String,
}

impl Operation for Delete {
    type Output = String;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, &[], "", input.version)?;
        Ok(Delete {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<String> {
        let key = lookup(t, &self.id)?;
        t.delete_webhook_endpoint(key);
        Ok(self.id)
    }

    fn render(id: String, _: &Tenant) -> Body {
        Body::Json(pretty(&Deleted::new(&id, "webhook_endpoint"), 96))
    }
}

/// `GET /v1/webhook_endpoints`, newest first.
pub struct List {
    page: PageRequest,
}

impl Operation for List {
    type Output = (Vec<Key>, bool);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, &LIST_FIELDS, "", input.version)?;
        Expand::read(input.params, &[], input.version)?;
        Ok(List {
            page: PageRequest::read(input.params)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let t = &*t;
        let page = self.page.resolve("webhook endpoint", |id| {
            ids::key_of(id, ids::WEBHOOK_ENDPOINT).filter(|k| t.webhook_endpoint(*k).is_some())
        })?;
        Ok(list::paginate(
            |a, b| t.webhook_endpoints_in((a, b)).map(|e| e.key),
            &page,
            |_| true,
        ))
    }

    fn render((keys, more): Self::Output, t: &Tenant) -> Body {
        let data: Vec<WebhookEndpointView> = keys
            .iter()
            .filter_map(|k| t.webhook_endpoint(*k))
            .map(|e| WebhookEndpointView::of(e, false))
            .collect();
        Body::Json(pretty(
            &ListJson::new(data, more, "/v1/webhook_endpoints"),
            512 * (keys.len() + 1),
        ))
    }
}
