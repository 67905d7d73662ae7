//! `/_emulator/*`: the emulator's own routes (health, reset, tenant clock, Stripe API version,
//! invoice grace period, webhook deliveries, fixture files, the request log in `requests.rs`, the
//! inspector's files in `ui.rs`, the world's state as a document).
//! `POST /_emulator/invoices` speaks Stripe's objects, so the Stripe facade serves it (see
//! `stripe::routes`).
//!
//! Routes that act on a tenant take the tenant's key the way either API sends it
//! (`Authorization: Bearer sk_test_…` or `x-api-key: sk_test_…`) and act only on that tenant; with
//! `Stripe-Account: acct_…` they act on that connected account's world instead, as Stripe routes do.
//! Errors are in Stripe's envelope.

pub mod fixtures;
mod requests;
pub mod ui;

use serde::Serialize;

use crate::app::App;
use crate::form::Params;
use crate::http::{Reply, Request};
use crate::model::{Tenant, TenantClock, TenantClockError};
use crate::time::{from_secs, to_secs, Nanos};
use crate::wire::decode::decode;
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::keys;
use crate::wire::params::{get_int, get_str, opt, req, validate, Field, Spec};
use crate::wire::versions::{self, Version};

/// The routes, in the order they are tried: `(method, path, operation)`.
#[rustfmt::skip]
static ROUTES: &[(&str, &str, Run)] = &[
    ("GET",  "/_emulator/health",         op::<ReadHealth>),
    ("POST", "/_emulator/reset",          op::<Reset>),
    ("GET",  "/_emulator/clock",          op::<ReadClock>),
    ("POST", "/_emulator/clock",          op::<SetClock>),
    ("GET",  "/_emulator/stripe_version", op::<ReadVersion>),
    ("POST", "/_emulator/stripe_version", op::<SetVersion>),
    ("GET",  "/_emulator/invoice_grace_period", op::<ReadGrace>),
    ("POST", "/_emulator/invoice_grace_period", op::<SetGrace>),
    ("GET",  "/_emulator/webhook_deliveries", op::<ListDeliveries>),
    ("POST", fixtures::PATH,              op::<fixtures::Apply>),
    ("GET",  "/_emulator/requests",       op::<requests::ListRequests>),
    ("GET",  "/_emulator/ui",             ui::asset),
    ("GET",  "/_emulator/ui/",            ui::asset),
    ("GET",  "/_emulator/ui/app.js",      ui::asset),
    ("GET",  "/_emulator/ui/style.css",   ui::asset),
    ("GET",  "/_emulator/ui/icon.svg",    ui::asset),
    ("GET",  "/_emulator/state",          op::<ExportState>),
    ("PUT",  "/_emulator/state",          op::<ImportState>),
];

/// What a row runs.
type Run = fn(&App, &Request) -> StripeResult<Reply>;

/// One admin endpoint: **parse** the caller and the parameters without any lock, then **apply**
/// to the application (a world through `Store::try_with_tenant`, or `Store::read_tenant` for a
/// `GET`, which never makes a world; or the application itself), whose answer is a typed view.
trait Operation: Sized {
    /// The answer.
    type View: Serialize;

    /// Reads and checks the request.
    fn parse(app: &App, req: &Request) -> StripeResult<Self>;

    /// Acts, and says what the answer shows.
    fn apply(self, app: &App) -> StripeResult<Self::View>;

    /// The answer's status: 200, unless the view itself is an error that carries more than
    /// Stripe's envelope holds (a fixture run that stopped part way).
    fn status(_view: &Self::View) -> u16 {
        200
    }

    /// The answer's body: pretty JSON with [`Operation::status`], unless the view is too large to
    /// be read by eye.
    fn render(view: &Self::View) -> Reply {
        json_with(Self::status(view), view)
    }
}

fn op<O: Operation>(app: &App, req: &Request) -> StripeResult<Reply> {
    let operation = O::parse(app, req)?;
    operation.apply(app).map(|view| O::render(&view))
}

/// Serves one admin request. An unknown route is answered before any key is read.
pub fn handle(app: &App, req: &Request) -> Reply {
    let method = req.method.as_str();
    let found = ROUTES
        .iter()
        .find(|(m, path, _)| *m == method && *path == req.path);
    let result = match found {
        Some((_, _, run)) => run(app, req),
        None => Err(StripeError::unrecognized(method, &req.path)),
    };
    result.unwrap_or_else(|e| e.reply())
}

/// The caller's tenant: the key from either API's header, or with `Stripe-Account` the connected
/// account's world.
pub fn tenant_key(req: &Request) -> StripeResult<String> {
    caller(req).map(|c| c.world)
}

/// Who an admin request acts for.
struct Caller {
    /// The API key.
    key: String,
    /// The world's name: the key, or the key and the connected account.
    world: String,
}

impl Caller {
    /// The world's default Stripe API version, and where it comes from.
    fn default_version(&self, app: &App) -> (Version, versions::Source) {
        versions::default_for(&app.store, &self.world)
    }
}

fn caller(req: &Request) -> StripeResult<Caller> {
    let key = keys::either_key(req)?;
    let account = keys::account(req, &key)?;
    let world = keys::world(&key, account).into_owned();
    Ok(Caller { key, world })
}

/// The query string and form body, decoded with the same limits, Content-Type check and error
/// wording as every Stripe route.
pub fn params(app: &App, req: &Request) -> StripeResult<Params> {
    decode(req, &app.config.form)
}

/// Pretty JSON with `status`.
fn json_with(status: u16, view: &impl Serialize) -> Reply {
    Reply::json_body(status, crate::pretty::to_vec(view, 128))
}

/// `GET /_emulator/health`.
struct ReadHealth;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_ms: u64,
    tenants: usize,
    max_tenants: usize,
}

impl Operation for ReadHealth {
    type View = Health;

    fn parse(_: &App, _: &Request) -> StripeResult<Self> {
        Ok(ReadHealth)
    }

    fn apply(self, app: &App) -> StripeResult<Health> {
        Ok(Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            uptime_ms: app.started.elapsed().as_millis() as u64,
            tenants: app.store.tenant_count(),
            max_tenants: app.store.max_tenants(),
        })
    }
}

/// `POST /_emulator/reset`: the caller's world is forgotten, model and stored idempotent answers.
struct Reset {
    world: String,
}

#[derive(Serialize)]
struct ResetView {
    reset: bool,
    existed: bool,
}

impl Operation for Reset {
    type View = ResetView;

    fn parse(_: &App, req: &Request) -> StripeResult<Self> {
        Ok(Reset {
            world: tenant_key(req)?,
        })
    }

    fn apply(self, app: &App) -> StripeResult<ResetView> {
        Ok(ResetView {
            reset: true,
            existed: app.reset(&self.world),
        })
    }
}

/// The tenant clock: `{object, mode, now, now_rfc3339}`.
#[derive(Serialize)]
struct ClockView {
    object: &'static str,
    mode: &'static str,
    now: i64,
    now_rfc3339: String,
}

impl ClockView {
    fn of(t: &Tenant) -> ClockView {
        let now = t.tenant_now();
        ClockView {
            object: "emulator.clock",
            mode: match t.clock() {
                TenantClock::Real => "real",
                TenantClock::Frozen(_) => "frozen",
            },
            now: to_secs(now),
            now_rfc3339: crate::time::to_rfc3339(now),
        }
    }
}

/// `GET /_emulator/clock`.
struct ReadClock {
    world: String,
}

impl Operation for ReadClock {
    type View = ClockView;

    fn parse(_: &App, req: &Request) -> StripeResult<Self> {
        Ok(ReadClock {
            world: tenant_key(req)?,
        })
    }

    fn apply(self, app: &App) -> StripeResult<ClockView> {
        Ok(app.store.read_tenant(&self.world, |t| ClockView::of(t)))
    }
}

const CLOCK: &[Field] = &[opt("frozen_time", Spec::Int), opt("real_time", Spec::Bool)];

/// `POST /_emulator/clock`: `frozen_time` freezes the tenant clock or moves it forward,
/// `real_time=true` returns it to real time.
struct SetClock {
    world: String,
    /// `Some(at)`: freeze at `at` (as sent, `secs`); `None`: back to real time.
    to: Option<(Nanos, i64)>,
}

impl Operation for SetClock {
    type View = ClockView;

    fn parse(app: &App, req: &Request) -> StripeResult<Self> {
        let world = tenant_key(req)?;
        let params = params(app, req)?;
        validate(&params, CLOCK, "")?;
        let frozen = get_int(&params, "frozen_time");
        let real = get_str(&params, "real_time") == Some("true");
        let to = match (frozen, real) {
            (Some(_), true) => {
                return Err(StripeError::invalid(
                    "You may only specify one of these parameters: frozen_time, real_time.",
                ))
            }
            (Some(secs), false) => Some((
                from_secs(secs).ok_or_else(|| {
                    StripeError::invalid(format!("Invalid timestamp: {secs} is out of range."))
                        .param("frozen_time")
                })?,
                secs,
            )),
            (None, true) => None,
            (None, false) => {
                return Err(StripeError::invalid(
                    "Pass frozen_time (unix seconds) to freeze or move the tenant clock, or real_time=true to return to real time.",
                ))
            }
        };
        Ok(SetClock { world, to })
    }

    fn apply(self, app: &App) -> StripeResult<ClockView> {
        app.store.try_with_tenant(&self.world, |t| {
            let moved = match self.to {
                Some((at, _)) => t.freeze_clock(at),
                None => t.unfreeze_clock(),
            };
            match (moved, self.to) {
                (Ok(()), _) => Ok(ClockView::of(t)),
                (Err(TenantClockError::Backwards { now }), None) => Err(StripeError::invalid(format!(
                    "The tenant clock only moves forward: it is frozen at {}, later than real time ({}), so it cannot return to real time yet.",
                    to_secs(now),
                    to_secs(crate::time::real_now())
                ))
                .param("real_time")),
                (Err(TenantClockError::Backwards { now }), Some((_, secs))) => Err(StripeError::invalid(format!(
                    "The tenant clock only moves forward: it is at {} and cannot go back to {secs}. Only a tenant in which nothing has been created yet may start earlier (POST /_emulator/reset starts over).",
                    to_secs(now),
                ))
                .param("frozen_time")),
            }
        })?
    }
}

/// `{object, default_version, source, newest_version}` for the caller's world.
#[derive(Serialize)]
struct VersionView {
    object: &'static str,
    default_version: &'static str,
    source: &'static str,
    newest_version: &'static str,
}

impl VersionView {
    fn of(app: &App, caller: &Caller) -> VersionView {
        let (version, source) = caller.default_version(app);
        VersionView {
            object: "emulator.stripe_version",
            default_version: version.as_str(),
            source: source.as_str(),
            newest_version: Version::NEWEST.as_str(),
        }
    }
}

/// `GET /_emulator/stripe_version`.
struct ReadVersion {
    caller: Caller,
}

impl Operation for ReadVersion {
    type View = VersionView;

    fn parse(app: &App, req: &Request) -> StripeResult<Self> {
        let caller = caller(req)?;
        validate(&params(app, req)?, &[], "")?;
        Ok(ReadVersion { caller })
    }

    fn apply(self, app: &App) -> StripeResult<VersionView> {
        Ok(VersionView::of(app, &self.caller))
    }
}

/// `version=` puts the world back on the newest version: `""` is a value here.
const VERSION: &[Field] = &[req("version", Spec::Str(5000)).empty_allowed()];

/// `POST /_emulator/stripe_version`: `version=<known version>` sets the world's default,
/// `version=` clears it (back to the platform's, or the newest).
struct SetVersion {
    caller: Caller,
    version: Option<Version>,
}

impl Operation for SetVersion {
    type View = VersionView;

    fn parse(app: &App, req: &Request) -> StripeResult<Self> {
        let caller = caller(req)?;
        let params = params(app, req)?;
        validate(&params, VERSION, "")?;
        let version = match get_str(&params, "version").unwrap_or("") {
            "" => None,
            v => Some(Version::parse(v).ok_or_else(|| versions::invalid(v).param("version"))?),
        };
        Ok(SetVersion { caller, version })
    }

    fn apply(self, app: &App) -> StripeResult<VersionView> {
        // The default is read before any world is locked, so it is kept beside the world's lock.
        let world = app.store.create(&self.caller.world)?;
        versions::set_default(&world, self.version);
        Ok(VersionView::of(app, &self.caller))
    }
}

/// `{object, seconds}`: how long the caller's world keeps a cycle invoice a draft.
#[derive(Serialize)]
struct GraceView {
    object: &'static str,
    seconds: i64,
}

impl GraceView {
    fn of(app: &App, caller: &Caller) -> GraceView {
        let grace = app.store.read_tenant(&caller.world, |t| t.invoice_grace());
        GraceView {
            object: "emulator.invoice_grace_period",
            seconds: grace / 1_000_000_000,
        }
    }
}

/// `GET /_emulator/invoice_grace_period`.
struct ReadGrace {
    caller: Caller,
}

impl Operation for ReadGrace {
    type View = GraceView;

    fn parse(app: &App, req: &Request) -> StripeResult<Self> {
        let caller = caller(req)?;
        validate(&params(app, req)?, &[], "")?;
        Ok(ReadGrace { caller })
    }

    fn apply(self, app: &App) -> StripeResult<GraceView> {
        Ok(GraceView::of(app, &self.caller))
    }
}

const GRACE: &[Field] = &[req("seconds", Spec::Int)];

/// `POST /_emulator/invoice_grace_period`: `seconds=N` (0 to 259200, Stripe's 72 hours) for cycle
/// invoices made from now on; 0 finalizes them at once.
struct SetGrace {
    caller: Caller,
    seconds: i64,
}

impl Operation for SetGrace {
    type View = GraceView;

    fn parse(app: &App, req: &Request) -> StripeResult<Self> {
        let caller = caller(req)?;
        let params = params(app, req)?;
        validate(&params, GRACE, "")?;
        let seconds = crate::wire::params::in_range(
            get_int(&params, "seconds").unwrap_or(0),
            0,
            crate::config::MAX_GRACE_SECS as i64,
            "seconds",
        )?;
        Ok(SetGrace { caller, seconds })
    }

    fn apply(self, app: &App) -> StripeResult<GraceView> {
        app.store.try_with_tenant(&self.caller.world, |t| {
            t.set_invoice_grace(self.seconds * 1_000_000_000)
        })?;
        Ok(GraceView::of(app, &self.caller))
    }
}

const DELIVERIES: &[Field] = &[
    opt("endpoint", Spec::Str(5000)),
    opt("event", Spec::Str(5000)),
    opt("limit", Spec::Int),
];

/// `{object, url, data, dropped}`: the caller's world's webhook deliveries, newest first, and the
/// deliveries each destination lost to a full queue.
#[derive(Serialize)]
struct DeliveriesView {
    object: &'static str,
    url: &'static str,
    data: Vec<crate::webhooks::Record>,
    dropped: Vec<crate::webhooks::Dropped>,
}

/// `GET /_emulator/webhook_deliveries`: `event` and `endpoint` filter, `limit` (1 to 1000, default
/// 100) bounds the answer.
struct ListDeliveries {
    caller: Caller,
    event: Option<String>,
    endpoint: Option<String>,
    limit: usize,
}

impl Operation for ListDeliveries {
    type View = DeliveriesView;

    fn parse(app: &App, req: &Request) -> StripeResult<Self> {
        let caller = caller(req)?;
        let params = params(app, req)?;
        validate(&params, DELIVERIES, "")?;
        let limit = crate::wire::params::in_range(
            get_int(&params, "limit").unwrap_or(100),
            1,
            crate::webhooks::MAX_RECORDS as i64,
            "limit",
        )?;
        let text = |name| {
            get_str(&params, name)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(ListDeliveries {
            event: text("event"),
            endpoint: text("endpoint"),
            limit: usize::try_from(limit).unwrap_or(100),
            caller,
        })
    }

    fn apply(self, app: &App) -> StripeResult<DeliveriesView> {
        let (data, dropped) = app.webhooks.deliveries(
            &self.caller.world,
            self.event.as_deref(),
            self.endpoint.as_deref(),
            self.limit,
        );
        Ok(DeliveriesView {
            object: "list",
            url: "/_emulator/webhook_deliveries",
            data,
            dropped,
        })
    }
}

/// `GET /_emulator/state`: the caller's world as one document (see [`crate::state`]).
struct ExportState {
    caller: Caller,
}

impl Operation for ExportState {
    type View = crate::state::WorldDocument;

    fn parse(app: &App, req: &Request) -> StripeResult<Self> {
        let caller = caller(req)?;
        validate(&params(app, req)?, &[], "")?;
        Ok(ExportState { caller })
    }

    fn apply(self, app: &App) -> StripeResult<Self::View> {
        // A world not made yet answers the empty world's document, and stays unmade: reading
        // never makes a world.
        Ok(app.export_world_at(&self.caller.world, || ()).0)
    }

    /// Compact: a world of a million grants is hundreds of megabytes, which indentation would
    /// nearly double.
    fn render(view: &Self::View) -> Reply {
        let started = std::time::Instant::now();
        let body = serde_json::to_vec(view).unwrap_or_default();
        tracing::info!(
            bytes = body.len(),
            write_ms = started.elapsed().as_millis() as u64,
            "state document written"
        );
        Reply::json_body(200, body)
    }
}

/// `PUT /_emulator/state`: the caller's world becomes the one the JSON body describes, or, if the
/// document is refused, stays exactly as it was.
struct ImportState {
    caller: Caller,
    doc: crate::state::WorldDocument,
}

/// What an import answers: what the world now holds.
#[derive(Serialize)]
struct ImportedView {
    object: &'static str,
    imported: bool,
    format_version: u32,
    customers: usize,
    credit_grants: usize,
    ledger_entries: usize,
    invoices: usize,
    subscriptions: usize,
    meter_events: usize,
    events: usize,
    idempotency_keys: usize,
}

impl Operation for ImportState {
    type View = ImportedView;

    fn parse(_: &App, req: &Request) -> StripeResult<Self> {
        let caller = caller(req)?;
        if req.body.is_empty() {
            return Err(StripeError::invalid(
                "Invalid state document: the body is empty. Send the JSON document that GET /_emulator/state answers.",
            ));
        }
        let started = std::time::Instant::now();
        let doc = crate::state::WorldDocument::from_json(&req.body).map_err(refused)?;
        tracing::info!(
            bytes = req.body.len(),
            parse_ms = started.elapsed().as_millis() as u64,
            "state document read"
        );
        Ok(ImportState { caller, doc })
    }

    fn apply(self, app: &App) -> StripeResult<ImportedView> {
        let model = &self.doc.world.model;
        let stripe = &self.doc.world.stripe;
        let view = ImportedView {
            object: "emulator.state_import",
            imported: true,
            format_version: self.doc.format_version,
            customers: model.customers.len(),
            credit_grants: model.lots.len(),
            ledger_entries: model.entries.len(),
            invoices: model.invoices.len(),
            subscriptions: model.subscriptions.len() + model.priced_subscriptions.len(),
            meter_events: model.meter_events.len(),
            events: stripe.events.as_ref().map_or(0, |e| e.events.len()),
            idempotency_keys: stripe.idempotency.len(),
        };
        app.import_world(&self.caller.world, self.doc)
            .map_err(refused)?;
        Ok(view)
    }
}

/// A refused document: 400, with the place of what is wrong as `param`.
fn refused(e: crate::state::ImportError) -> StripeError {
    let error = StripeError::invalid(format!("Invalid state document: {e}"));
    if e.path.is_empty() {
        error
    } else {
        error.param(e.path)
    }
}
