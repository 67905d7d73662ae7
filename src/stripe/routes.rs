//! The Stripe facade's routes, as data: one row per endpoint, `(method, path pattern) →
//! operation`, read top to bottom; the first row that matches wins (so `/v1/customers/search`
//! comes before `/v1/customers/{id}`). A `{…}` segment captures one path segment (1 to 5000
//! bytes, as sent) for the operation's [`Input::id`].
//!
//! To add an endpoint: write its operation in the resource's file (`impl Operation for …`) and add
//! its row here.

use hyper::Method;

use super::op::{pretty, Body, Captures, Input, Operation, World, MAX_CAPTURES};
use super::{
    alerts, balances, credit_grants, customers, events, invoice_items, invoices, meter_events,
    meters, objects, prices, products, search, subscription_items, subscriptions, test_clocks,
    transactions, webhook_endpoints,
};
use crate::wire::envelope::StripeResult;
use Verb::{Delete, Get, Post};

/// The route that makes a meter event session; the pipeline remembers the token it answers.
pub const METER_EVENT_SESSION: &str = "/v2/billing/meter_event_session";

/// The meter event stream: authenticated by a session's token rather than an API key.
pub const METER_EVENT_STREAM: &str = "/v2/billing/meter_event_stream";

/// Whether `path` is the meter event stream's (for a POST), as [`find`] matches it.
pub fn is_stream(path: &str) -> bool {
    // Most paths are told apart by their end, without a look at the table.
    path.ends_with("/meter_event_stream")
        && find(&Method::POST, path).is_some_and(|(r, _)| r.pattern == METER_EVENT_STREAM)
}

/// The routes, in the order they are tried.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    route(Post,   "/v1/customers",                                  op::<customers::Create>),
    route(Get,    "/v1/customers",                                  op::<customers::List>),
    route(Get,    "/v1/customers/search",                           op::<search::Search<customers::Searched>>),
    route(Get,    "/v1/customers/{id}",                             op::<customers::Retrieve>),
    route(Post,   "/v1/customers/{id}",                             op::<customers::Update>),
    route(Delete, "/v1/customers/{id}",                             op::<customers::Delete>),

    route(Get,    "/v1/events",                                     op::<events::List>),
    route(Get,    "/v1/events/{id}",                                op::<events::Retrieve>),

    route(Post,   "/v1/billing/credit_grants",                      op::<credit_grants::Create>),
    route(Get,    "/v1/billing/credit_grants",                      op::<credit_grants::List>),
    route(Get,    "/v1/billing/credit_grants/{id}",                 op::<credit_grants::Retrieve>),
    route(Post,   "/v1/billing/credit_grants/{id}",                 op::<credit_grants::Update>),
    route(Post,   "/v1/billing/credit_grants/{id}/expire",          op::<credit_grants::Expire>),
    route(Post,   "/v1/billing/credit_grants/{id}/void",            op::<credit_grants::Void>),

    route(Get,    "/v1/billing/credit_balance_summary",             op::<balances::Retrieve>),
    route(Get,    "/v1/billing/credit_balance_transactions",        op::<transactions::List>),
    route(Get,    "/v1/billing/credit_balance_transactions/{id}",   op::<transactions::Retrieve>),

    route(Post,   "/v1/billing/meters",                             op::<meters::Create>),
    route(Get,    "/v1/billing/meters",                             op::<meters::List>),
    route(Get,    "/v1/billing/meters/{id}",                        op::<meters::Retrieve>),
    route(Post,   "/v1/billing/meters/{id}",                        op::<meters::Update>),
    route(Post,   "/v1/billing/meters/{id}/deactivate",             op::<meters::Deactivate>),
    route(Post,   "/v1/billing/meters/{id}/reactivate",             op::<meters::Reactivate>),
    route(Get,    "/v1/billing/meters/{id}/event_summaries",        op::<meters::EventSummaries>),
    route(Post,   "/v1/billing/alerts",                             op::<alerts::Create>),
    route(Get,    "/v1/billing/alerts",                             op::<alerts::List>),
    route(Get,    "/v1/billing/alerts/{id}",                        op::<alerts::Retrieve>),
    route(Post,   "/v1/billing/alerts/{id}/activate",               op::<alerts::Activate>),
    route(Post,   "/v1/billing/alerts/{id}/deactivate",             op::<alerts::Deactivate>),
    route(Post,   "/v1/billing/alerts/{id}/archive",                op::<alerts::Archive>),
    route(Post,   "/v1/billing/meter_events",                       op::<meter_events::Create>),
    route(Post,   "/v1/billing/meter_event_adjustments",            op::<meter_events::Adjust>),
    route(Post,   "/v2/billing/meter_events",                       op::<meter_events::CreateV2>),
    route(Post,   "/v2/billing/meter_event_adjustments",            op::<meter_events::AdjustV2>),
    route(Post,   METER_EVENT_SESSION,                              op::<meter_events::SessionCreate>),
    route(Post,   METER_EVENT_STREAM,                               op::<meter_events::StreamCreate>),

    route(Post,   "/v1/invoices",                                   op::<invoices::Create>),
    route(Get,    "/v1/invoices",                                   op::<invoices::List>),
    route(Post,   "/v1/invoices/create_preview",                    op::<invoices::CreatePreview>),
    route(Get,    "/v1/invoices/search",                            op::<search::Search<invoices::Searched>>),
    route(Get,    "/v1/invoices/{id}",                              op::<invoices::Retrieve>),
    route(Post,   "/v1/invoices/{id}",                              op::<invoices::Update>),
    route(Delete, "/v1/invoices/{id}",                              op::<invoices::Delete>),
    route(Get,    "/v1/invoices/{id}/lines",                        op::<invoices::Lines>),
    route(Post,   "/v1/invoices/{id}/finalize",                     op::<invoices::Finalize>),
    route(Post,   "/v1/invoices/{id}/pay",                          op::<invoices::Pay>),
    route(Post,   "/v1/invoices/{id}/mark_uncollectible",           op::<invoices::MarkUncollectible>),
    route(Post,   "/v1/invoices/{id}/void",                         op::<invoices::Void>),
    route(Post,   "/v1/invoices/{id}/send",                         op::<invoices::Send>),

    route(Post,   "/v1/invoiceitems",                               op::<invoice_items::Create>),
    route(Get,    "/v1/invoiceitems",                               op::<invoice_items::List>),
    route(Get,    "/v1/invoiceitems/{id}",                          op::<invoice_items::Retrieve>),
    route(Delete, "/v1/invoiceitems/{id}",                          op::<invoice_items::Delete>),

    route(Post,   "/v1/products",                                   op::<products::Create>),
    route(Get,    "/v1/products",                                   op::<products::List>),
    route(Get,    "/v1/products/search",                            op::<search::Search<products::Searched>>),
    route(Get,    "/v1/products/{id}",                              op::<products::Retrieve>),
    route(Post,   "/v1/products/{id}",                              op::<products::Update>),
    route(Delete, "/v1/products/{id}",                              op::<products::Delete>),

    route(Post,   "/v1/prices",                                     op::<prices::Create>),
    route(Get,    "/v1/prices",                                     op::<prices::List>),
    route(Get,    "/v1/prices/search",                              op::<search::Search<prices::Searched>>),
    route(Get,    "/v1/prices/{id}",                                op::<prices::Retrieve>),
    route(Post,   "/v1/prices/{id}",                                op::<prices::Update>),

    route(Post,   "/v1/subscriptions",                              op::<subscriptions::Create>),
    route(Get,    "/v1/subscriptions",                              op::<subscriptions::List>),
    route(Get,    "/v1/subscriptions/search",                       op::<search::Search<subscriptions::Searched>>),
    route(Get,    "/v1/subscriptions/{id}",                         op::<subscriptions::Retrieve>),
    route(Post,   "/v1/subscriptions/{id}",                         op::<subscriptions::Update>),
    route(Delete, "/v1/subscriptions/{id}",                         op::<subscriptions::Cancel>),
    route(Post,   "/v1/subscription_items",                         op::<subscriptions::CreateItem>),
    route(Get,    "/v1/subscription_items",                         op::<subscription_items::List>),
    route(Get,    "/v1/subscription_items/{id}",                    op::<subscription_items::Retrieve>),
    route(Post,   "/v1/subscription_items/{id}",                    op::<subscriptions::UpdateItem>),
    route(Delete, "/v1/subscription_items/{id}",                    op::<subscriptions::DeleteItem>),

    route(Post,   "/v1/test_helpers/test_clocks",                   op::<test_clocks::Create>),
    route(Get,    "/v1/test_helpers/test_clocks",                   op::<test_clocks::List>),
    route(Get,    "/v1/test_helpers/test_clocks/{id}",              op::<test_clocks::Retrieve>),
    route(Delete, "/v1/test_helpers/test_clocks/{id}",              op::<test_clocks::Delete>),
    route(Post,   "/v1/test_helpers/test_clocks/{id}/advance",      op::<test_clocks::Advance>),

    route(Post,   "/v1/webhook_endpoints",                          op::<webhook_endpoints::Create>),
    route(Get,    "/v1/webhook_endpoints",                          op::<webhook_endpoints::List>),
    route(Get,    "/v1/webhook_endpoints/{id}",                     op::<webhook_endpoints::Retrieve>),
    route(Post,   "/v1/webhook_endpoints/{id}",                     op::<webhook_endpoints::Update>),
    route(Delete, "/v1/webhook_endpoints/{id}",                     op::<webhook_endpoints::Delete>),

    // The emulator's own route for spending credits without a subscription, catalogue or meter.
    route(Post,   "/_emulator/invoices",                            op::<invoices::CreateFinalized>).emulator(),
];

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
}

impl Verb {
    fn of(method: &Method) -> Option<Verb> {
        match *method {
            Method::GET => Some(Get),
            Method::POST => Some(Post),
            Method::DELETE => Some(Delete),
            _ => None,
        }
    }
}

/// Whose route a row is, which decides what the pipeline does around the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// One of Stripe's routes: the key from `Authorization`, the version from `Stripe-Version`
    /// (else the world's default), and POSTs idempotent under `Idempotency-Key`.
    Stripe,
    /// One of the emulator's own routes (`/_emulator/…`), in Stripe's language: the key from
    /// either API's header, the world's default version, and no idempotency (SDKs never call it;
    /// a key sent is neither stored nor echoed). Matched only as spelled, with one leading `/`.
    Emulator,
}

/// What a row runs once the request is decoded: parse, with no world, into what is left to do in
/// the caller's world (apply and render). Parsing needs nothing of the world, so the server does
/// it before the request waits for its world's turn.
pub type Run = fn(&Input) -> StripeResult<Applied>;

/// What is left of a parsed request: apply and render in the caller's world. The answer is the
/// body's bytes.
pub type Applied = Box<dyn FnOnce(&World) -> StripeResult<Vec<u8>> + Send>;

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The method.
    pub verb: Verb,
    /// The path, with `{…}` for a captured segment.
    pub pattern: &'static str,
    /// The operation.
    pub run: Run,
    /// Stripe's route or the emulator's.
    pub origin: Origin,
    /// How many bytes of the pattern come before its first `{` (all of them if none).
    literal: usize,
}

/// A Stripe route.
const fn route(verb: Verb, pattern: &'static str, run: Run) -> Route {
    Route {
        verb,
        pattern,
        run,
        origin: Origin::Stripe,
        literal: literal_len(pattern),
    }
}

/// How many bytes of `pattern` come before its first `{`.
const fn literal_len(pattern: &str) -> usize {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b'{' {
        i += 1;
    }
    i
}

impl Route {
    /// The same route, as one of the emulator's own.
    const fn emulator(mut self) -> Route {
        self.origin = Origin::Emulator;
        self
    }

    /// The segments this route captures from `path` (without its leading slashes; `slashes` is
    /// how many there were), if it matches. The pattern's literal start is compared at once (most
    /// rows are told apart there, and rows share long starts such as `v1/billing/`); the rest of
    /// the pattern and the path are walked byte by byte. Nothing is split or allocated.
    fn captures<'p>(&self, path: &'p str, slashes: usize) -> Option<Captures<'p>> {
        if self.origin == Origin::Emulator && slashes != 1 {
            return None;
        }
        // Every pattern starts with one `/` (a unit test checks it).
        let pattern = self.pattern.as_bytes().get(1..).unwrap_or_default();
        let bytes = path.as_bytes();
        let segment_end =
            |b: &[u8], from: usize| memchr::memchr(b'/', &b[from..]).map_or(b.len(), |k| from + k);
        let literal = pattern
            .get(..self.literal.saturating_sub(1))
            .unwrap_or_default();
        if !bytes.starts_with(literal) {
            return None;
        }
        let mut captured = [""; MAX_CAPTURES];
        let (mut i, mut j, mut n) = (literal.len(), literal.len(), 0);
        while i < pattern.len() {
            if pattern[i] == b'{' {
                let end = segment_end(bytes, j);
                // `j` follows an ASCII byte of the pattern (or is 0) and `end` is at a `/` or the
                // end, so both are character boundaries.
                let segment = path.get(j..end)?;
                if segment.is_empty() || segment.len() > MAX_ID_LEN {
                    return None;
                }
                *captured.get_mut(n)? = segment;
                n += 1;
                i = segment_end(pattern, i);
                j = end;
            } else if bytes.get(j) == Some(&pattern[i]) {
                i += 1;
                j += 1;
            } else {
                return None;
            }
        }
        (j == bytes.len()).then_some(captured)
    }
}

/// The longest id a path segment may carry; longer ones are no route at all.
const MAX_ID_LEN: usize = 5000;

/// The first route that answers `method` on `path`, with the segments it captures.
pub fn find<'p>(method: &Method, path: &'p str) -> Option<(&'static Route, Captures<'p>)> {
    let verb = Verb::of(method)?;
    if let Some(literal) = LITERALS.get(path) {
        return literal.winners[verb as usize];
    }
    first_row(path, |r| r.verb == verb)
}

/// The first row `keep` accepts that matches `path`, with what it captures, found through
/// [`STARTS`]: only rows whose literal start begins the path are tried, in table order. What
/// [`walk`] finds, without walking.
fn first_row(path: &str, keep: impl Fn(&Route) -> bool) -> Option<(&'static Route, Captures<'_>)> {
    // Stripe's routes are found however many slashes lead the path, the emulator's only with one.
    let trimmed = path.trim_start_matches('/');
    let slashes = path.len() - trimmed.len();
    let bytes = trimmed.as_bytes();
    let starts = &*STARTS;
    let mut best: Option<(usize, Captures)> = None;
    let mut try_start = |end: usize| {
        let Some(rows) = starts.rows.get(&trimmed[..end]) else {
            return;
        };
        // Each list is in table order: its first match is its best.
        let found = rows
            .iter()
            .map(|&at| usize::from(at))
            .take_while(|&at| best.is_none_or(|(b, _)| at < b))
            .find_map(|at| {
                let row = &ROUTES[at];
                keep(row)
                    .then(|| row.captures(trimmed, slashes))
                    .flatten()
                    .map(|c| (at, c))
            });
        if found.is_some() {
            best = found;
        }
    };
    // Only prefixes as long as some start are looked up: those that end in a `/` (a start that is
    // not a whole pattern ends in the `/` before its first `{`), and the whole path.
    let has_length = |n: usize| n < 128 && starts.lengths & 1 << n != 0;
    let head = &bytes[..bytes.len().min(starts.longest)];
    for at in memchr::memchr_iter(b'/', head) {
        if has_length(at + 1) {
            try_start(at + 1);
        }
    }
    if has_length(bytes.len()) {
        try_start(bytes.len());
    }
    best.map(|(at, c)| (&ROUTES[at], c))
}

/// The rows of the table by their literal start (the pattern before its first `{`, or all of it,
/// without its leading `/`), each list in table order. A path is matched against the rows whose
/// start begins it: a hash lookup for each prefix as long as some start and ending in a `/` (or the
/// whole path), one or two for most paths, instead of a walk through eighty rows.
struct Starts {
    rows: std::collections::HashMap<&'static str, Vec<u8>, foldhash::fast::FixedState>,
    /// The lengths of the starts, as bits (bit `n` for a start of `n` bytes; every start is
    /// shorter than 128 bytes, and none is empty).
    lengths: u128,
    /// The longest start's length: no longer prefix is looked up.
    longest: usize,
}

static STARTS: std::sync::LazyLock<Starts> = std::sync::LazyLock::new(|| {
    let mut rows = std::collections::HashMap::<_, Vec<u8>, _>::default();
    for (at, r) in ROUTES.iter().enumerate() {
        let at = u8::try_from(at).expect("the table has fewer than 256 rows");
        rows.entry(start_of(r)).or_default().push(at);
    }
    let lengths = rows.keys().fold(0u128, |bits, start| {
        assert!((1..128).contains(&start.len()), "{start}");
        bits | 1 << start.len()
    });
    let longest = 128 - lengths.leading_zeros() as usize - 1;
    Starts {
        rows,
        lengths,
        longest,
    }
});

/// A row's literal start, its key in [`STARTS`].
fn start_of(r: &Route) -> &'static str {
    &r.pattern[1..r.literal]
}

/// What [`first_row`] finds, by walking the table from the top: what the indexes are built from
/// and checked against.
fn walk(path: &str, keep: impl Fn(&Route) -> bool) -> Option<(&'static Route, Captures<'_>)> {
    let trimmed = path.trim_start_matches('/');
    let slashes = path.len() - trimmed.len();
    ROUTES
        .iter()
        .filter(|r| keep(r))
        .find_map(|r| r.captures(trimmed, slashes).map(|c| (r, c)))
}

/// What the table answers for a path that is some row's whole pattern (no `{…}`), spelled with one
/// leading `/`, worked out once by walking the table: the creates, lists and actions SDKs call
/// most are then found with one hash lookup. Any other path walks the table.
struct Literal {
    /// The row that wins for each verb (`Verb as usize`), if any, with what it captures (a row
    /// with a `{…}` above may win: `POST /v1/customers/search` is an update).
    winners: [Option<(&'static Route, Captures<'static>)>; 3],
    /// Whether a row of Stripe's own serves the path with some method ([`serves_path`]).
    served: bool,
}

static LITERALS: std::sync::LazyLock<
    std::collections::HashMap<&'static str, Literal, foldhash::fast::FixedState>,
> = std::sync::LazyLock::new(|| {
    ROUTES
        .iter()
        .filter(|r| !r.pattern.contains('{'))
        .map(|r| {
            let winners = [Get, Post, Delete].map(|v| walk(r.pattern, |r| r.verb == v));
            let literal = Literal {
                winners,
                served: walk(r.pattern, |r| r.origin == Origin::Stripe).is_some(),
            };
            (r.pattern, literal)
        })
        .collect()
});

/// Whether a row of Stripe's own (not the emulator's) answers `path` with any method: the paths
/// the Stripe facade serves, which the router sends it unless `x-api-key` asks for the native API.
/// Matched as [`find`] matches, however many slashes lead the path.
pub fn serves_path(path: &str) -> bool {
    if let Some(literal) = LITERALS.get(path) {
        return literal.served;
    }
    first_row(path, |r| r.origin == Origin::Stripe).is_some()
}

/// Runs operation `O`: parse without the lock, then (in what it returns) apply and render in the
/// caller's world, and expand what `expand[]` asks for while the world is still locked.
fn op<O: Operation + Send + 'static>(input: &Input) -> StripeResult<Applied> {
    let operation = O::parse(input)?;
    Ok(Box::new(move |world: &World| apply::<O>(operation, world)))
}

/// Applies and renders a parsed `operation` in `world`.
fn apply<O: Operation>(operation: O, world: &World) -> StripeResult<Vec<u8>> {
    world.with(|tenant| {
        let mark = tenant.change_mark();
        let output = match operation.apply(tenant) {
            Ok(output) => output,
            // A refusal changed nothing, so it reports nothing; a failure after the change (a
            // declined payment) reports what happened.
            Err(e) => {
                if !e.executed {
                    tenant.discard_changes_since(mark);
                }
                return Err(e);
            }
        };
        Ok(match O::render(output, tenant) {
            Body::Json(bytes) => bytes,
            Body::Expand { mut value, expand } => {
                objects::expand_in(tenant, &mut value, &expand);
                pretty(&value, 2048)
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(method: Method, path: &str) -> Option<(&'static str, Captures<'_>)> {
        find(&method, path).map(|(r, c)| (r.pattern, c))
    }

    /// The literal paths' index answers exactly as walking the table does, for every verb, on
    /// every row's path, on literal paths spelled with other leading slashes and on near misses.
    #[test]
    fn the_literal_index_agrees_with_the_table() {
        let mut paths = Vec::new();
        for r in ROUTES {
            let path = r.pattern.replace("{id}", "x_1").replace("{item}", "y_1");
            paths.push(path.clone());
            paths.push(format!("/{path}"));
            paths.push(format!("{path}/"));
            paths.push(path.trim_start_matches('/').to_string());
            paths.push(r.pattern.to_string());
        }
        let mut literal = 0;
        for path in &paths {
            literal += usize::from(LITERALS.contains_key(path.as_str()));
            for verb in [Get, Post, Delete] {
                let fast = find(&method(verb), path);
                let walked = walk(path, |r| r.verb == verb);
                assert_eq!(
                    fast.map(|(r, c)| (r.pattern, r.origin, c)),
                    walked.map(|(r, c)| (r.pattern, r.origin, c)),
                    "{verb:?} {path}"
                );
            }
            assert_eq!(serves_path(path), served_by_walking(path), "{path}");
        }
        // The index is used (every literal row's own path is in it).
        assert!(literal >= ROUTES.iter().filter(|r| !r.pattern.contains('{')).count());
    }

    fn served_by_walking(path: &str) -> bool {
        walk(path, |r| r.origin == Origin::Stripe).is_some()
    }

    /// Every row's literal start is the whole pattern or ends in the `/` before a `{`, which is
    /// what lets [`first_row`] look up only prefixes that end in a `/`.
    #[test]
    fn every_start_is_the_whole_pattern_or_ends_at_a_slash() {
        for r in ROUTES {
            let start = start_of(r);
            assert!(
                start.len() + 1 == r.pattern.len() || start.ends_with('/'),
                "{}",
                r.pattern
            );
            assert!(STARTS.lengths & 1 << start.len() != 0);
        }
    }

    proptest::proptest! {
        /// The index of literal starts finds what walking the table finds, on paths made from a
        /// row's pattern (its ids filled in, cut short, or with a segment more) and on paths of
        /// the table's segments in any order, with stray slashes before and after.
        #[test]
        fn the_index_of_starts_agrees_with_the_table(
            row in 0..ROUTES.len(),
            id in 0..SEGMENTS.len(),
            keep in 0usize..8,
            extra in proptest::option::of(0..SEGMENTS.len()),
            shuffled in proptest::collection::vec(0..SEGMENTS.len(), 0..7),
            lead in 0usize..3,
            trail in proptest::bool::ANY,
        ) {
            let filled = ROUTES[row].pattern.replace("{id}", SEGMENTS[id]);
            let mut from_row: Vec<&str> = filled.split('/').skip(1).take(keep).collect();
            from_row.extend(extra.map(|e| SEGMENTS[e]));
            let shuffled: Vec<&str> = shuffled.iter().map(|&s| SEGMENTS[s]).collect();
            for segments in [from_row, shuffled] {
                let mut path = "/".repeat(lead);
                path.push_str(&segments.join("/"));
                if trail {
                    path.push('/');
                }
                for verb in [Get, Post, Delete] {
                    let fast = first_row(&path, |r| r.verb == verb);
                    let walked = walk(&path, |r| r.verb == verb);
                    proptest::prop_assert_eq!(
                        fast.map(|(r, c)| (r.pattern, c)),
                        walked.map(|(r, c)| (r.pattern, c)),
                        "{:?} {}", verb, path
                    );
                }
                proptest::prop_assert_eq!(serves_path(&path), served_by_walking(&path), "{}", path);
            }
        }
    }

    /// Segments of paths for the property above: every segment of the table's patterns, and
    /// some that are not.
    const SEGMENTS: &[&str] = &[
        "v1",
        "v2",
        "billing",
        "customers",
        "search",
        "credit_grants",
        "void",
        "expire",
        "meters",
        "deactivate",
        "event_summaries",
        "meter_events",
        "meter_event_stream",
        "invoices",
        "pay",
        "lines",
        "test_helpers",
        "test_clocks",
        "advance",
        "_emulator",
        "subscription_items",
        "cus_1",
        "x",
        "",
        "credit_balance_summary",
        "wallets",
    ];

    #[test]
    fn a_path_longer_than_every_start_is_matched_on_its_starts_alone() {
        let long_id = "i".repeat(MAX_ID_LEN);
        let path = format!("/v1/billing/credit_grants/{long_id}/void");
        assert_eq!(
            matched(Method::POST, &path).map(|(p, c)| (p, c[0].len())),
            Some(("/v1/billing/credit_grants/{id}/void", MAX_ID_LEN))
        );
        // Thousands of slashes past the longest start cost no lookups and match nothing.
        let slashes = format!("/v1/customers/{}", "a/".repeat(10_000));
        assert_eq!(matched(Method::GET, &slashes), None);
        assert!(!serves_path(&slashes));
    }

    fn method(verb: Verb) -> Method {
        match verb {
            Get => Method::GET,
            Post => Method::POST,
            Delete => Method::DELETE,
        }
    }

    #[test]
    fn the_first_matching_row_wins_and_captures_its_segments() {
        assert_eq!(
            matched(Method::GET, "/v1/customers/search"),
            Some(("/v1/customers/search", ["", ""]))
        );
        assert_eq!(
            matched(Method::POST, "/v1/customers/search"),
            Some(("/v1/customers/{id}", ["search", ""]))
        );
        assert_eq!(
            matched(Method::POST, "/v1/billing/credit_grants/credgr_1/void"),
            Some(("/v1/billing/credit_grants/{id}/void", ["credgr_1", ""]))
        );
        assert_eq!(matched(Method::PUT, "/v1/customers"), None);
        assert_eq!(matched(Method::GET, "/v1/customers/"), None);
        assert_eq!(matched(Method::GET, "/v1/customers/a/b"), None);
        let long = format!("/v1/customers/{}", "c".repeat(MAX_ID_LEN + 1));
        assert_eq!(matched(Method::GET, &long), None);
    }

    #[test]
    fn every_row_matches_its_own_pattern_filled_in() {
        for (at, route) in ROUTES.iter().enumerate() {
            let path = route
                .pattern
                .replace("{id}", "x_1")
                .replace("{item}", "y_2");
            let trimmed = path.trim_start_matches('/');
            assert!(route.captures(trimmed, 1).is_some(), "{}", route.pattern);
            // The row found is this one or an earlier row that also takes the path.
            let method = match route.verb {
                Verb::Get => Method::GET,
                Verb::Post => Method::POST,
                Verb::Delete => Method::DELETE,
            };
            let (found, _) = find(&method, &path).expect("a row");
            let found_at = ROUTES.iter().position(|r| std::ptr::eq(r, found));
            assert!(
                found_at.is_some_and(|f| f <= at),
                "{} found as {}",
                route.pattern,
                found.pattern
            );
            // One byte short of the literal start is no match.
            let short = &trimmed[..route.literal.saturating_sub(2)];
            assert!(route.captures(short, 1).is_none() || route.literal <= 2);
        }
    }

    #[test]
    fn emulator_routes_match_only_as_spelled() {
        assert_eq!(
            matched(Method::POST, "/_emulator/invoices").map(|m| m.0),
            Some("/_emulator/invoices")
        );
        assert_eq!(matched(Method::POST, "//_emulator/invoices"), None);
        assert_eq!(
            matched(Method::GET, "//v1/customers").map(|m| m.0),
            Some("/v1/customers")
        );
    }

    #[test]
    fn served_paths_are_those_of_stripes_rows_whatever_the_method() {
        for path in [
            "/v1/customers",
            "/v1/customers/cus_1",
            "//v1/customers/search",
            "/v1/billing/credit_grants/credgr_1/void",
        ] {
            assert!(serves_path(path), "{path}");
        }
        for path in [
            "/v1/customers/cus_1/wallets",
            "/v1/customers/",
            "/v1/creditgrants",
            "/_emulator/invoices",
            "/v1",
        ] {
            assert!(!serves_path(path), "{path}");
        }
    }

    #[test]
    fn every_row_is_reachable() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(
                r.pattern.starts_with('/') && !r.pattern.starts_with("//"),
                "{}",
                r.pattern
            );
            let path = r.pattern.replace("{id}", "x_1");
            let method = match r.verb {
                Get => Method::GET,
                Post => Method::POST,
                Delete => Method::DELETE,
            };
            let (found, _) = find(&method, &path).expect("a route for its own pattern");
            assert!(std::ptr::eq(found, &ROUTES[i]), "{} is shadowed", r.pattern);
        }
    }
}
