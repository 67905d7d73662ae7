//! A world's whole state as one versioned document: written out with [`App::export_world`] and
//! read back, into the same world or any other, with [`App::import_world`]. `GET` and `PUT
//! /_emulator/state` serve them over HTTP.
//!
//! The document is the model's [`WorldState`] (every object, the schedule, meter usage, the id
//! generator), beside what the Stripe facade keeps with the world: its events, its default API
//! version and its stored idempotent answers. Indexes are not in it; they are rebuilt when it is
//! read. What is delivered to webhook endpoints (events' `pending_webhooks`, delivery records)
//! is not part of a world either.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::idempotency::{IdempotencyStore, StoredAnswer};
use crate::model::{StateError, Tenant, WorldState};
use crate::stripe::events::{EventLog, EventLogState};
use crate::time::{real_now, Nanos};
use crate::wire::versions::{self, Version};

/// `object` of every document.
pub const OBJECT: &str = "emulator_state";

/// The format this emulator writes; it reads this one and none later.
pub const FORMAT_VERSION: u32 = 1;

/// A world's whole state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldDocument {
    /// Always `"emulator_state"`.
    pub object: String,
    /// The document's format: [`FORMAT_VERSION`].
    pub format_version: u32,
    /// When it was written, by the wall clock, in nanoseconds since the Unix epoch.
    pub exported_at: Nanos,
    /// The world.
    pub world: World,
}

/// One world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// The name of the world it was written from (an API key, or a key and a connected account);
    /// informative only: a document is read into whichever world asks.
    pub name: String,
    /// The model: objects, ledger, schedule, usage, clocks, id generator.
    pub model: WorldState,
    /// What the Stripe facade keeps with the world.
    pub stripe: StripeState,
}

/// What the Stripe facade keeps with a world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeState {
    /// The API version set for the world itself (`POST /_emulator/stripe_version`), if any.
    pub default_version: Option<String>,
    /// Its events (`/v1/events`); `None` before its first change.
    pub events: Option<EventLogState>,
    /// Its stored answers for `Idempotency-Key`, oldest first.
    pub idempotency: Vec<StoredAnswer>,
}

/// Why a document cannot be read into a world: where (`world.model.lots[3].customer`) and what
/// is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// The place in the document, as a path from its top (`.` between fields, `[i]` for list
    /// elements); empty for the document as a whole.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl ImportError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ImportError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ImportError {}

impl WorldDocument {
    /// Reads a document from JSON, naming the place of the first thing that does not fit: the
    /// path of a field of the wrong type, an unknown field, a missing one, or a format version
    /// this emulator does not know.
    pub fn from_json(bytes: &[u8]) -> Result<WorldDocument, ImportError> {
        // serde would read a struct from a JSON array too; a document is an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ImportError::new(
                "",
                "the body is not a JSON object: send the document GET /_emulator/state answers",
            ));
        }
        // Read without tracking where: a million grants read noticeably faster. Only a document
        // that does not fit is read again, to name the place.
        if let Ok(doc) = serde_json::from_slice::<WorldDocument>(bytes) {
            return Ok(doc);
        }
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let doc: WorldDocument = serde_path_to_error::deserialize(de).map_err(|e| {
            // A document of another kind or of a later format gets that answer, not one about
            // the first field it does not know.
            #[derive(Deserialize)]
            struct Header {
                object: Option<serde_json::Value>,
                format_version: Option<serde_json::Value>,
            }
            if let Ok(head) = serde_json::from_slice::<Header>(bytes) {
                if let Err(e) = check_header(head.object.as_ref(), head.format_version.as_ref()) {
                    return e;
                }
            }
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                // Where the text stops being JSON, no field is to blame.
                return ImportError::new("", format!("the body is not JSON: {inner}"));
            }
            let path = e.path().to_string();
            ImportError::new(
                if path == "." { String::new() } else { path },
                inner.to_string(),
            )
        })?;
        Ok(doc)
    }
}

/// `object` must be the document's and `format_version` one this emulator reads (given as found,
/// when found).
fn check_header(
    object: Option<&serde_json::Value>,
    version: Option<&serde_json::Value>,
) -> Result<(), ImportError> {
    if let Some(o) = object.and_then(|o| o.as_str()) {
        check_object(o)?;
    }
    if let Some(v) = version.and_then(|v| v.as_u64()) {
        check_format(v)?;
    }
    Ok(())
}

fn check_object(object: &str) -> Result<(), ImportError> {
    if object == OBJECT {
        return Ok(());
    }
    Err(ImportError::new(
        "object",
        format!("is {object:?}: a state document's object is {OBJECT:?}"),
    ))
}

fn check_format(version: u64) -> Result<(), ImportError> {
    let reads = u64::from(FORMAT_VERSION);
    if version == reads {
        return Ok(());
    }
    let why = if version > reads {
        format!(
            "is {version}, a later format than this emulator reads ({FORMAT_VERSION}): import it with the emulator that wrote it, or a later one"
        )
    } else {
        format!("is {version}: this emulator reads format {FORMAT_VERSION} only")
    };
    Err(ImportError::new("format_version", why))
}

impl App {
    /// The document of the world named `world`, at one consistent moment under its lock (what
    /// is due on its clock is posted first, as for a request); `None` when no such world exists.
    pub fn export_world(&self, world: &str) -> Option<WorldDocument> {
        self.store.get(world)?;
        Some(self.export_world_at(world, || ()).0)
    }

    /// The document of the world named `world` as a request that reads sees it (for a world not
    /// made yet, the empty world's, without making one), with what `at` returns when called under
    /// the same lock: persistence numbers its snapshots so.
    pub fn export_world_at<T>(&self, world: &str, at: impl FnOnce() -> T) -> (WorldDocument, T) {
        let default_version = self
            .store
            .get(world)
            .and_then(|cell| versions::own_default(&cell))
            .map(|v| v.as_str().to_string());
        self.store.read_tenant(world, |t| {
            let mark = at();
            let started = std::time::Instant::now();
            // The answers are read under the world's lock too: a request's answer is stored after
            // its changes, so every answer here is of a change the model shows.
            let wall = real_now();
            let idempotency = self.idempotency.answers(world, wall);
            let model = t.export_state();
            let modelled = started.elapsed();
            let events = t.attachment::<EventLog>().map(|log| log.export(t));
            tracing::info!(
                world,
                model_ms = modelled.as_millis() as u64,
                events_ms = (started.elapsed() - modelled).as_millis() as u64,
                "state exported"
            );
            let document = WorldDocument {
                object: OBJECT.to_string(),
                format_version: FORMAT_VERSION,
                exported_at: wall,
                world: World {
                    name: world.to_string(),
                    model,
                    stripe: StripeState {
                        default_version,
                        events,
                        idempotency,
                    },
                },
            };
            (document, mark)
        })
    }

    /// Replaces the world named `world` (made if new) with `doc`'s. The new world is built and
    /// checked whole first; only then is it swapped in, under the world's lock, with its default
    /// version and stored answers, so requests see the old world or the new one, never a mix.
    /// On any error the old world is untouched. Webhook deliveries waiting for the old world are
    /// dropped, as by a reset.
    pub fn import_world(&self, world: &str, doc: WorldDocument) -> Result<(), ImportError> {
        check_object(&doc.object)?;
        check_format(u64::from(doc.format_version))?;
        let stripe = doc.world.stripe;
        let version = match &stripe.default_version {
            None => None,
            Some(v) => Some(Version::parse(v).ok_or_else(|| {
                ImportError::new(
                    "world.stripe.default_version",
                    format!("{v:?} is not a Stripe API version this emulator knows"),
                )
            })?),
        };
        let started = std::time::Instant::now();
        let log = match stripe.events {
            None => None,
            Some(state) => Some(EventLog::import(state).map_err(|(path, message)| {
                ImportError::new(format!("world.stripe.events.{path}"), message)
            })?),
        };
        let answers = IdempotencyStore::from_answers(stripe.idempotency, real_now()).map_err(
            |(i, field, message)| {
                ImportError::new(format!("world.stripe.idempotency[{i}].{field}"), message)
            },
        )?;
        let read_events = started.elapsed();
        let mut tenant: Tenant =
            Tenant::from_state(world, doc.world.model).map_err(|e: StateError| {
                let path = if e.path.is_empty() {
                    "world.model".to_string()
                } else {
                    format!("world.model.{}", e.path)
                };
                ImportError::new(path, e.message)
            })?;
        if let Some(log) = log {
            tenant.set_attachment(Some(Box::new(log)));
        }
        tracing::info!(
            world,
            events_ms = read_events.as_millis() as u64,
            model_ms = (started.elapsed() - read_events).as_millis() as u64,
            "state imported"
        );
        self.store.replace_tenant(world, tenant, |cell| {
            versions::set_default(cell, version);
            self.idempotency.replace(world, answers);
            self.webhooks.reset(world);
        });
        Ok(())
    }
}
