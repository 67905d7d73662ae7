//! `POST /_emulator/fixtures`: a fixture file in the Stripe CLI's format (what `stripe fixtures FILE`
//! applies) applied to the caller's world, fixture by fixture, as ordinary requests.
//!
//! The file is `{"_meta": {"template_version": 0}, "fixtures": [...], "env": {...}}`; each fixture is
//! `{name, path, method, params}` with the optional `expected_error_type`, `idempotency_key` and
//! `headers`, and the emulator's own `api` (`stripe` or `native`). Strings in `path`, `params`,
//! `idempotency_key`, `headers` and `env` may hold references:
//!
//! - `${name:dot.path}` — a field of an earlier fixture's answer (`data.0.id` indexes an array,
//!   `[0]` too, `#` is an array's length), `${name:dot.path|default}` with a default;
//! - `${.env:VAR}` and `${.env:VAR|default}` — an environment variable, read through [`tape`] so that
//!   a stored request replays to the same world;
//! - `${time-now-RFC3339}` (the world's clock) and `${generate-uuid}`.
//!
//! The two phases of every admin operation:
//!
//! 1. **parse** reads the whole file and checks what can be checked without the world: its shape,
//!    the template version, each fixture's method and path, the syntax of every reference and that
//!    each names a fixture declared before it, and the environment variables it reads. Any fault
//!    there is a 400 in Stripe's envelope, naming the fixture, and nothing is applied.
//! 2. **apply** sends each fixture in order through [`router::dispatch`] with the caller's key: a
//!    Stripe path gets its `params` form-encoded with brackets, as Stripe's SDKs send them (in the
//!    body for `POST`, in the query otherwise); a native path ([`native::owns_path`], or `"api":
//!    "native"`) gets them as its JSON body and the key as `x-api-key`. A fixture answered with a
//!    status of 300 or more, unless its `expected_error_type` is the error's `type` (native: its
//!    `code`), stops the run: the answer is a 400 naming that fixture, carrying its answer, and listing
//!    the fixtures applied before it, which stay applied.
//!
//! Each fixture is its own request, with its own request id, idempotency and events, locking the world
//! for that request only.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use super::{caller, Caller, Operation};
use crate::app::App;
use crate::http::{Reply, Request};
use crate::router;
use crate::time::{to_rfc3339, NANOS_PER_SEC};
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::{native, tape};

/// The route.
pub const PATH: &str = "/_emulator/fixtures";

/// The only `_meta.template_version` the Stripe CLI knows, and so the only one accepted.
pub const TEMPLATE_VERSION: i64 = 0;

/// Most fixtures one file may hold.
pub const MAX_FIXTURES: usize = 1000;

/// Most bytes of answers a run keeps for later references (only answers that a later fixture
/// refers to are kept), so that a file of list requests cannot hold the whole world many times over.
pub const MAX_KEPT_BYTES: usize = 16 * 1024 * 1024;

/// Headers a fixture may not set: the key and account choose the world, and the emulator writes the
/// body and its framing itself.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "stripe-account",
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
];

/// What a substituted value is escaped with in a path segment or a form value: everything but
/// RFC 3986's unreserved characters.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Form names keep their brackets raw, as the SDKs send them.
const NAME: &AsciiSet = &VALUE.remove(b'[').remove(b']');

/// `POST /_emulator/fixtures`: the parsed, checked file and who applies it.
pub struct Apply {
    caller: Caller,
    /// The caller's `Stripe-Account` and `Stripe-Version`, which every Stripe fixture carries too.
    account: Option<HeaderValue>,
    version: Option<HeaderValue>,
    file: File,
    /// Each environment variable the file reads, read once, in file order (`None`: unset or empty).
    env: HashMap<String, Option<String>>,
}

/// A whole fixture file.
struct File {
    fixtures: Vec<Fixture>,
    /// The file's `env` section: names and the values to report for them.
    env: Vec<(String, Template)>,
    /// The fixture names some reference reads; only their answers are kept.
    referenced: HashSet<String>,
}

/// Which facade a fixture speaks to, when the file says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Stripe,
    Native,
}

/// One fixture.
struct Fixture {
    index: usize,
    name: String,
    method: Method,
    api: Option<Side>,
    /// The path, with any `?query` after it.
    path: Template,
    /// The top-level parameters, in file order.
    params: Option<Vec<(String, Tree)>>,
    expected_error_type: Option<String>,
    idempotency_key: Option<Template>,
    headers: Vec<(HeaderName, Template)>,
}

impl Fixture {
    /// ``Fixture `name` (fixtures[i])``, or `Fixture fixtures[i]` for a fixture without a name: how
    /// messages start.
    fn label(&self) -> String {
        label(self.index, &self.name)
    }
}

fn label(index: usize, name: &str) -> String {
    if name.is_empty() {
        format!("Fixture fixtures[{index}]")
    } else {
        format!("Fixture `{}` (fixtures[{index}])", shorten(name))
    }
}

/// A parameter value as the file gives it.
enum Tree {
    Text(Template),
    Number(Number),
    Bool(bool),
    Null,
    Map(Vec<(String, Tree)>),
    List(Vec<Tree>),
}

/// A string with its references, and where in the file it is (`fixtures[2][params][customer]`).
struct Template {
    parts: Vec<Part>,
    at: String,
}

/// A piece of a [`Template`].
enum Part {
    Text(String),
    /// `${name:path|default}`: `text` is the reference as written.
    Answer {
        name: String,
        path: Vec<String>,
        default: Option<String>,
        text: String,
    },
    /// `${.env:VAR|default}`.
    Env {
        var: String,
        default: Option<String>,
    },
    /// `${time-now-RFC3339}`.
    Now,
    /// `${generate-uuid}`.
    Uuid,
}

impl Template {
    /// The template's only part, when it is one reference to an answer (a value that may stay
    /// JSON in a native body).
    fn whole_answer(&self) -> Option<&Part> {
        match self.parts.as_slice() {
            [part @ Part::Answer { .. }] => Some(part),
            _ => None,
        }
    }
}

/// A 400 that names the place in the file; nothing has been applied.
fn refused(message: String, at: &str) -> StripeError {
    StripeError::invalid(message).param(at)
}

/// Reads the file's JSON into a checked [`File`].
struct Reader {
    /// Names declared so far: a reference may only name one of them.
    declared: HashSet<String>,
    referenced: HashSet<String>,
    /// Environment references in file order.
    env_reads: Vec<EnvRead>,
}

/// One `${.env:…}` in the file.
struct EnvRead {
    var: String,
    has_default: bool,
    /// Where it is, and the label of its fixture, for the refusal when it is unset.
    at: String,
    who: String,
}

impl Reader {
    fn file(value: Value) -> StripeResult<(File, Vec<EnvRead>)> {
        let Value::Object(mut top) = value else {
            return Err(StripeError::invalid(
                "Invalid fixture file: it must be a JSON object with `_meta` and `fixtures`. Nothing was applied.",
            ));
        };
        match top.remove("_meta") {
            None | Some(Value::Null) => {}
            Some(Value::Object(meta)) => match meta.get("template_version") {
                None | Some(Value::Null) => {}
                Some(Value::Number(n)) if n.as_i64() == Some(TEMPLATE_VERSION) => {}
                Some(Value::Number(n)) => {
                    return Err(refused(
                        format!("Fixture version not supported: {n}. The emulator, like the Stripe CLI, applies template_version {TEMPLATE_VERSION}. Nothing was applied."),
                        "_meta[template_version]",
                    ))
                }
                Some(other) => {
                    return Err(refused(
                        format!("Invalid fixture file: `_meta.template_version` must be an integer, not {}. Nothing was applied.", kind(other)),
                        "_meta[template_version]",
                    ))
                }
            },
            Some(other) => {
                return Err(refused(
                    format!(
                        "Invalid fixture file: `_meta` must be an object, not {}. Nothing was applied.",
                        kind(&other)
                    ),
                    "_meta",
                ))
            }
        }
        let list = match top.remove("fixtures") {
            None | Some(Value::Null) => {
                return Err(refused(
                    "Invalid fixture file: it has no `fixtures` array (the requests to make, in order). Nothing was applied.".to_string(),
                    "fixtures",
                ))
            }
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(refused(
                    format!("Invalid fixture file: `fixtures` must be an array, not {}. Nothing was applied.", kind(&other)),
                    "fixtures",
                ))
            }
        };
        if list.len() > MAX_FIXTURES {
            return Err(refused(
                format!(
                    "The fixture file holds {} fixtures; the emulator applies at most {MAX_FIXTURES} from one file. Nothing was applied.",
                    list.len()
                ),
                "fixtures",
            ));
        }
        let mut reader = Reader {
            declared: HashSet::new(),
            referenced: HashSet::new(),
            env_reads: Vec::new(),
        };
        let mut fixtures = Vec::with_capacity(list.len());
        for (index, value) in list.into_iter().enumerate() {
            let fixture = reader.fixture(index, value)?;
            reader.declared.insert(fixture.name.clone());
            fixtures.push(fixture);
        }
        let env = match top.remove("env") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => {
                let mut env = Vec::with_capacity(map.len());
                for (name, value) in map {
                    let at = format!("env[{name}]");
                    let Value::String(text) = value else {
                        return Err(refused(
                            format!("Invalid fixture file: the env value `{}` must be a string, not {}. Nothing was applied.", shorten(&name), kind(&value)),
                            &at,
                        ));
                    };
                    let template = reader.template(&text, at, "The file's `env` section")?;
                    env.push((name, template));
                }
                env
            }
            Some(other) => {
                return Err(refused(
                    format!("Invalid fixture file: `env` must be an object of strings, not {}. Nothing was applied.", kind(&other)),
                    "env",
                ))
            }
        };
        let file = File {
            fixtures,
            env,
            referenced: reader.referenced,
        };
        Ok((file, reader.env_reads))
    }

    fn fixture(&mut self, index: usize, value: Value) -> StripeResult<Fixture> {
        let at = format!("fixtures[{index}]");
        let Value::Object(mut map) = value else {
            return Err(refused(
                format!(
                    "Invalid fixture file: fixtures[{index}] must be an object, not {}. Nothing was applied.",
                    kind(&value)
                ),
                &at,
            ));
        };
        let name = optional_text(&mut map, "name", index, "")?.unwrap_or_default();
        let who = label(index, &name);
        let text =
            |map: &mut Map<String, Value>, field: &str| optional_text(map, field, index, &name);
        let method = match text(&mut map, "method")? {
            None => {
                return Err(refused(
                    format!("{who} has no method: a fixture's method is get, post, delete or put. Nothing was applied."),
                    &format!("{at}[method]"),
                ))
            }
            Some(m) => match m.to_ascii_uppercase().as_str() {
                "GET" => Method::GET,
                "POST" => Method::POST,
                "DELETE" => Method::DELETE,
                "PUT" => Method::PUT,
                _ => {
                    return Err(refused(
                        format!("{who} has the method `{}`: a fixture's method is get, post, delete or put. Nothing was applied.", shorten(&m)),
                        &format!("{at}[method]"),
                    ))
                }
            },
        };
        let Some(path) = text(&mut map, "path")? else {
            return Err(refused(
                format!("{who} has no path: give the API path it calls, such as /v1/customers. Nothing was applied."),
                &format!("{at}[path]"),
            ));
        };
        let path = self.path(&path, format!("{at}[path]"), &who)?;
        let api = match text(&mut map, "api")?.as_deref() {
            None => None,
            Some("stripe") => Some(Side::Stripe),
            Some("native") => Some(Side::Native),
            Some(other) => {
                return Err(refused(
                    format!("{who} has the api `{}`: it is `stripe` or `native`, or absent to let the path decide. Nothing was applied.", shorten(other)),
                    &format!("{at}[api]"),
                ))
            }
        };
        if let Some(base) = text(&mut map, "api_base")?.filter(|b| !b.is_empty()) {
            return Err(refused(
                format!("{who} sends to the api_base {}: the emulator applies fixtures to itself only, so a fixture cannot name another host. Nothing was applied.", shorten(&base)),
                &format!("{at}[api_base]"),
            ));
        }
        if text(&mut map, "context")?.is_some_and(|c| !c.is_empty()) {
            return Err(refused(
                format!("{who} sets a context (Stripe-Context): the emulator does not model it; a world is chosen by the key and Stripe-Account of the request that sends the file. Nothing was applied."),
                &format!("{at}[context]"),
            ));
        }
        let expected_error_type = text(&mut map, "expected_error_type")?.filter(|t| !t.is_empty());
        let idempotency_key = match text(&mut map, "idempotency_key")? {
            Some(key) if !key.is_empty() => {
                Some(self.template(&key, format!("{at}[idempotency_key]"), &who)?)
            }
            _ => None,
        };
        let headers = match map.remove("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(headers)) => {
                let mut out = Vec::with_capacity(headers.len());
                for (header, value) in headers {
                    let here = format!("{at}[headers][{header}]");
                    let parsed = HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes())
                        .map_err(|_| {
                            refused(
                                format!("{who} sets the header `{}`, which is not a valid header name. Nothing was applied.", shorten(&header)),
                                &here,
                            )
                        })?;
                    if RESERVED_HEADERS.contains(&parsed.as_str()) {
                        return Err(refused(
                            format!("{who} sets the header `{}`, which the emulator sets itself: the key and Stripe-Account of the request that sends the file choose the world, and the body is written from `params`. Nothing was applied.", parsed.as_str()),
                            &here,
                        ));
                    }
                    let Value::String(value) = value else {
                        return Err(refused(
                            format!("{who}: the header `{}` must be a string, not {}. Nothing was applied.", parsed.as_str(), kind(&value)),
                            &here,
                        ));
                    };
                    out.push((parsed, self.template(&value, here, &who)?));
                }
                out
            }
            Some(other) => {
                return Err(refused(
                    format!(
                    "{who}: `headers` must be an object of strings, not {}. Nothing was applied.",
                    kind(&other)
                ),
                    &format!("{at}[headers]"),
                ))
            }
        };
        let params = match map.remove("params") {
            None | Some(Value::Null) => None,
            Some(Value::Object(params)) => {
                Some(self.map(params, &format!("{at}[params]"), &who)?)
            }
            Some(other) => {
                return Err(refused(
                    format!(
                        "{who}: `params` must be an object, not {}. Nothing was applied.",
                        kind(&other)
                    ),
                    &format!("{at}[params]"),
                ))
            }
        };
        Ok(Fixture {
            index,
            name,
            method,
            api,
            path,
            params,
            expected_error_type,
            idempotency_key,
            headers,
        })
    }

    /// A fixture's path: it starts with `/v1/`, `/v2/` or `/_emulator/` written out (a reference may
    /// fill a segment, not choose the API), and holds only visible ASCII.
    fn path(&mut self, path: &str, at: String, who: &str) -> StripeResult<Template> {
        let (route, _) = path.split_once('?').unwrap_or((path, ""));
        let known = ["/v1/", "/v2/", "/_emulator/"]
            .iter()
            .any(|p| route.starts_with(p))
            || route == "/v1"
            || route == "/v2";
        if !known {
            return Err(refused(
                format!("{who} has the path `{}`: a fixture's path starts with /v1/ or /v2/ (or the emulator's own /_emulator/). Nothing was applied.", shorten(path)),
                &at,
            ));
        }
        if route == PATH {
            return Err(refused(
                format!("{who} applies fixtures itself ({PATH}): a fixture file cannot apply another. Nothing was applied."),
                &at,
            ));
        }
        let template = self.template(path, at, who)?;
        // What references put in the path is escaped when the request is made; the text around
        // them is sent as written.
        let written = template.parts.iter().filter_map(|part| match part {
            Part::Text(text) => Some(text),
            _ => None,
        });
        for text in written {
            if let Some(c) = text.chars().find(|c| !c.is_ascii_graphic() || *c == '#') {
                return Err(refused(
                    format!("{who} has the path `{}`, which holds {c:?}: a path is visible ASCII without `#` (escape other characters with %XX). Nothing was applied.", shorten(path)),
                    &template.at,
                ));
            }
        }
        Ok(template)
    }

    fn map(
        &mut self,
        map: Map<String, Value>,
        at: &str,
        who: &str,
    ) -> StripeResult<Vec<(String, Tree)>> {
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            let here = format!("{at}[{key}]");
            out.push((key, self.tree(value, here, who)?));
        }
        Ok(out)
    }

    fn tree(&mut self, value: Value, at: String, who: &str) -> StripeResult<Tree> {
        Ok(match value {
            Value::Null => Tree::Null,
            Value::Bool(b) => Tree::Bool(b),
            Value::Number(n) => Tree::Number(n),
            Value::String(s) => Tree::Text(self.template(&s, at, who)?),
            Value::Object(map) => Tree::Map(self.map(map, &at, who)?),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    out.push(self.tree(item, format!("{at}[{i}]"), who)?);
                }
                Tree::List(out)
            }
        })
    }

    /// Splits `text` into literal text and references, checking each reference: its form, and that a
    /// fixture it names was declared before this one.
    fn template(&mut self, text: &str, at: String, who: &str) -> StripeResult<Template> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(refused(
                    format!("{who}: `{}` opens a reference with `${{` that is never closed with `}}`. Nothing was applied.", shorten(&rest[start..])),
                    &at,
                ));
            };
            let inner = &after[..end];
            parts.push(self.reference(inner, &at, who)?);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts, at })
    }

    fn reference(&mut self, inner: &str, at: &str, who: &str) -> StripeResult<Part> {
        match inner {
            "time-now-RFC3339" => return Ok(Part::Now),
            "generate-uuid" => return Ok(Part::Uuid),
            _ => {}
        }
        let text = format!("${{{inner}}}");
        let bad = || {
            refused(
                format!("{who}: `{}` is not a reference. A reference is ${{name:path.to.field}}, ${{name:path.to.field|default}}, ${{.env:VARIABLE}}, ${{.env:VARIABLE|default}}, ${{time-now-RFC3339}} or ${{generate-uuid}}. Nothing was applied.", shorten(&text)),
                at,
            )
        };
        let (name, query) = inner.split_once(':').ok_or_else(bad)?;
        let (query, default) = match query.split_once('|') {
            Some((q, d)) => (q, Some(d.to_string())),
            None => (query, None),
        };
        if name.is_empty() || query.is_empty() {
            return Err(bad());
        }
        if name == ".env" {
            // `std::env::var` may panic on these; no variable can be named with them anyway.
            if query.contains(['=', '\0']) {
                return Err(refused(
                    format!("{who}: `{}` names no environment variable (a name holds no `=` and no NUL). Nothing was applied.", shorten(&text)),
                    at,
                ));
            }
            self.env_reads.push(EnvRead {
                var: query.to_string(),
                has_default: default.is_some(),
                at: at.to_string(),
                who: who.to_string(),
            });
            return Ok(Part::Env {
                var: query.to_string(),
                default,
            });
        }
        if !self.declared.contains(name) {
            return Err(refused(
                format!("{who} refers to `{}`, but no fixture before it is named `{}`: a reference reads the answer of a fixture declared earlier in the file. Nothing was applied.", shorten(&text), shorten(name)),
                at,
            ));
        }
        self.referenced.insert(name.to_string());
        Ok(Part::Answer {
            name: name.to_string(),
            path: split_path(query),
            default,
            text,
        })
    }
}

/// A field that is a string when present: `None` when absent or null.
fn optional_text(
    map: &mut Map<String, Value>,
    field: &str,
    index: usize,
    name: &str,
) -> StripeResult<Option<String>> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(refused(
            format!(
                "{}: `{field}` must be a string, not {}. Nothing was applied.",
                label(index, name),
                kind(&other)
            ),
            &format!("fixtures[{index}][{field}]"),
        )),
    }
}

/// `a.b\.c.0` → `["a", "b.c", "0"]`: dots separate, a backslash keeps the next character as is.
fn split_path(query: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = query.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), out.last_mut()) {
                    last.push(next);
                }
            }
            '.' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

/// `an object`, `a string`, … for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What `path` finds in `value`: object keys by name, array items by index (`0` or `[0]`), and `#`
/// an array's length.
fn find<'v>(value: &'v Value, path: &[String]) -> Option<Cow<'v, Value>> {
    let mut here = value;
    for (i, segment) in path.iter().enumerate() {
        here = match here {
            Value::Object(map) => map.get(segment.as_str())?,
            Value::Array(items) => {
                if segment == "#" && i + 1 == path.len() {
                    return Some(Cow::Owned(Value::from(items.len())));
                }
                let digits = segment
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .unwrap_or(segment);
                items.get(digits.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(Cow::Borrowed(here))
}

/// A found value as text: strings as they are, numbers and booleans as JSON writes them, objects and
/// arrays as compact JSON; `null` counts as nothing found.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A number as the Stripe CLI writes it into a form: integers as they are, other numbers in the
/// shortest decimal that reads back the same, with no exponent and no trailing `.0`.
fn number_text(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// A failure while applying: what to say and where in the file.
struct Stop {
    message: String,
    param: String,
}

/// What references resolve against while the run goes on.
struct Run<'a> {
    app: &'a App,
    world: &'a str,
    answers: HashMap<String, Value>,
    env: &'a HashMap<String, Option<String>>,
    /// Largest request body (and query) a fixture may make, and the most bytes references may
    /// put into one fixture's request.
    limit: usize,
    /// What references have put into the fixture being built so far.
    spent: Cell<usize>,
}

impl Run<'_> {
    /// `template` as text, every reference replaced by what it stands for.
    fn text(&self, template: &Template) -> Result<String, Stop> {
        let mut out = String::new();
        for part in &template.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                part => out.push_str(&self.value(part, &template.at)?),
            }
            if out.len() > self.limit {
                return Err(self.too_large(&template.at));
            }
        }
        Ok(out)
    }

    /// What one part of a template stands for (`at`: where the template is, for errors), counted
    /// against the fixture's budget.
    fn value(&self, part: &Part, at: &str) -> Result<String, Stop> {
        let value = self.resolve(part, at)?;
        self.spend(value, at)
    }

    fn resolve(&self, part: &Part, at: &str) -> Result<String, Stop> {
        Ok(match part {
            Part::Text(text) => text.clone(),
            Part::Answer {
                name,
                path,
                default,
                text,
            } => {
                let found = self
                    .answers
                    .get(name)
                    .and_then(|answer| find(answer, path))
                    .and_then(|v| as_text(&v));

                match (found, default) {
                    (Some(v), _) => v,
                    (None, Some(d)) => d.clone(),
                    (None, None) => {
                        return Err(Stop {
                            message: format!(
                                "`{}` finds nothing in the answer of fixture `{}` (no such field, or null) and gives no default (`${{name:path|default}}`)",
                                shorten(text),
                                shorten(name)
                            ),
                            param: at.to_string(),
                        })
                    }
                }
            }
            // Parse refuses an unset variable without a default, so the last arm is never reached.
            Part::Env { var, default } => match (self.env.get(var).cloned().flatten(), default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.clone(),
                (None, None) => String::new(),
            },
            Part::Now => {
                let now = self.app.store.with_tenant(self.world, |t| t.tenant_now());
                to_rfc3339(now - now.rem_euclid(NANOS_PER_SEC))
            }
            Part::Uuid => uuid(tape::word(), tape::word()),
        })
    }

    /// Counts `value` against the fixture's budget: a file cannot make one reference to a large
    /// answer many times over into a request larger than any request may be.
    fn spend(&self, value: String, at: &str) -> Result<String, Stop> {
        let spent = self.spent.get().saturating_add(value.len());
        self.spent.set(spent);
        if spent > self.limit {
            return Err(self.too_large(at));
        }
        Ok(value)
    }

    fn too_large(&self, at: &str) -> Stop {
        Stop {
            message: format!(
                "the request it makes would be larger than {} bytes, the emulator's body limit",
                self.limit
            ),
            param: at.to_string(),
        }
    }

    /// Appends `name=value` pairs for `tree` under `name`, as Stripe's SDKs encode nested parameters:
    /// `a[b]=…` for hashes, `a[0]=…`, `a[0][b]=…` for arrays; `null` sends nothing.
    fn form(&self, name: &str, tree: &Tree, out: &mut String) -> Result<(), Stop> {
        let value = match tree {
            Tree::Null => return Ok(()),
            Tree::Map(map) => {
                for (key, child) in map {
                    self.form(&format!("{name}[{key}]"), child, out)?;
                }
                return Ok(());
            }
            Tree::List(items) => {
                let mut i = 0;
                for child in items {
                    if matches!(child, Tree::Null) {
                        continue;
                    }
                    self.form(&format!("{name}[{i}]"), child, out)?;
                    i += 1;
                }
                return Ok(());
            }
            Tree::Bool(b) => b.to_string(),
            Tree::Number(n) => number_text(n),
            Tree::Text(t) => self.text(t)?,
        };
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(utf8_percent_encode(name, NAME));
        out.push('=');
        out.extend(utf8_percent_encode(&value, VALUE));
        if out.len() > self.limit {
            return Err(self.too_large(name));
        }
        Ok(())
    }

    /// The JSON a native body holds for `tree`: strings resolved; a string that is one reference to an
    /// object or an array becomes that JSON value, as the Stripe CLI does for JSON bodies.
    fn json(&self, tree: &Tree) -> Result<Value, Stop> {
        Ok(match tree {
            Tree::Null => Value::Null,
            Tree::Bool(b) => Value::Bool(*b),
            Tree::Number(n) => Value::Number(n.clone()),
            Tree::Text(t) => {
                if let Some(Part::Answer { name, path, .. }) = t.whole_answer() {
                    let found = self.answers.get(name).and_then(|a| find(a, path));
                    if let Some(v) = found.filter(|v| v.is_object() || v.is_array()) {
                        self.spend(v.to_string(), &t.at)?;
                        return Ok(v.into_owned());
                    }
                }
                Value::String(self.text(t)?)
            }
            Tree::Map(map) => {
                let mut out = Map::with_capacity(map.len());
                for (key, child) in map {
                    out.insert(key.clone(), self.json(child)?);
                }
                Value::Object(out)
            }
            Tree::List(items) => Value::Array(
                items
                    .iter()
                    .map(|child| self.json(child))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// A version 4 UUID from two random words.
fn uuid(a: u64, b: u64) -> String {
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// One applied fixture in the answer.
#[derive(Debug, Serialize)]
pub struct Row {
    name: String,
    method: String,
    path: String,
    status: u16,
    /// The answer's `object` (`customer`, `billing.credit_grant`, …); native answers have none.
    object: Option<String>,
    /// The answer's `id`.
    id: Option<String>,
    /// The error's type (native: its code), when the fixture failed as its `expected_error_type`
    /// said it would.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_error_type: Option<String>,
}

/// The answer: every fixture applied, or where the run stopped.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// 200.
    Applied(Applied),
    /// 400.
    Stopped(Stopped),
}

/// `{object: "emulator.fixtures", applied: [...], env: {...}}`.
#[derive(Serialize)]
pub struct Applied {
    object: &'static str,
    applied: Vec<Row>,
    /// The file's `env` section with its references resolved (the Stripe CLI writes these into a
    /// `.env` file; the emulator answers them).
    #[serde(skip_serializing_if = "Map::is_empty")]
    env: Map<String, Value>,
}

/// Stripe's error envelope, with what was applied before the run stopped and the fixture that
/// stopped it.
#[derive(Serialize)]
pub struct Stopped {
    error: StoppedError,
}

#[derive(Serialize)]
struct StoppedError {
    applied: Vec<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fixture: Option<Failed>,
    message: String,
    param: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The fixture that stopped a run.
#[derive(Serialize)]
struct Failed {
    index: usize,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    /// Its answer's status and body, when it was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<Value>,
}

/// `The 2 fixtures before it were applied and stay applied.`
fn kept(applied: usize) -> String {
    match applied {
        0 => "No fixture before it was applied.".to_string(),
        1 => "The fixture before it was applied and stays applied.".to_string(),
        n => format!("The {n} fixtures before it were applied and stay applied."),
    }
}

/// A built request and what the answer shows of it.
struct Outgoing {
    request: Request,
    /// The path without its query.
    route: String,
}

impl Apply {
    /// The request `fixture` makes, with every reference resolved.
    fn request(&self, fixture: &Fixture, run: &Run) -> Result<Outgoing, Stop> {
        run.spent.set(0);
        // Substituted values are escaped: a segment of the path stays one segment, a value in the
        // query stays one value. The first literal `?` starts the query.
        let mut path = String::new();
        let mut query: Option<String> = None;
        for part in &fixture.path.parts {
            let piece = match part {
                Part::Text(text) => text.clone(),
                part => utf8_percent_encode(&run.value(part, &fixture.path.at)?, VALUE).to_string(),
            };
            match (&mut query, part) {
                (Some(q), _) => q.push_str(&piece),
                (None, Part::Text(_)) => match piece.split_once('?') {
                    Some((p, q)) => {
                        path.push_str(p);
                        query = Some(q.to_string());
                    }
                    None => path.push_str(&piece),
                },
                (None, _) => path.push_str(&piece),
            }
            if path.len() + query.as_ref().map_or(0, String::len) > run.limit {
                return Err(run.too_large(&fixture.path.at));
            }
        }
        if path == PATH {
            return Err(Stop {
                message: format!("its path is {PATH}: a fixture file cannot apply another"),
                param: fixture.path.at.clone(),
            });
        }
        let native = match fixture.api {
            Some(side) => side == Side::Native,
            None => native::owns_path(&path),
        };
        let mut headers = HeaderMap::new();
        // The key passed `keys::check_key` (visible ASCII), so it always makes a header value.
        let unsendable = || Stop {
            message: "the API key cannot be sent in a header".to_string(),
            param: fixture.path.at.clone(),
        };
        if native {
            headers.insert(
                "x-api-key",
                HeaderValue::from_str(&self.caller.key).map_err(|_| unsendable())?,
            );
        } else {
            let bearer = format!("Bearer {}", self.caller.key);
            headers.insert(
                "authorization",
                HeaderValue::from_str(&bearer).map_err(|_| unsendable())?,
            );
            if let Some(account) = &self.account {
                headers.insert("stripe-account", account.clone());
            }
            if let Some(version) = &self.version {
                headers.insert("stripe-version", version.clone());
            }
        }
        if let Some(key) = &fixture.idempotency_key {
            headers.insert("idempotency-key", header_value(run, key)?);
        }
        for (name, value) in &fixture.headers {
            headers.insert(name.clone(), header_value(run, value)?);
        }
        // The native API and Stripe's v2 routes take JSON bodies; Stripe's v1 routes take forms.
        let json = native || path.starts_with("/v2/");
        let mut body = Vec::new();
        if let Some(params) = &fixture.params {
            let in_body = fixture.method == Method::POST || fixture.method == Method::PUT;
            if json && in_body {
                let mut map = Map::with_capacity(params.len());
                for (key, tree) in params {
                    map.insert(key.clone(), run.json(tree)?);
                }
                body = serde_json::to_vec(&Value::Object(map)).unwrap_or_default();
                if body.len() > run.limit {
                    return Err(run.too_large(&format!("fixtures[{}][params]", fixture.index)));
                }
            } else {
                let mut form = String::new();
                for (key, tree) in params {
                    run.form(key, tree, &mut form)?;
                }
                if in_body {
                    body = form.into_bytes();
                } else if !form.is_empty() {
                    let q = query.get_or_insert_with(String::new);
                    if !q.is_empty() {
                        q.push('&');
                    }
                    q.push_str(&form);
                    if q.len() > run.limit {
                        return Err(run.too_large(&format!("fixtures[{}][params]", fixture.index)));
                    }
                }
            }
        }
        if !body.is_empty() {
            let content_type = if json {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            headers.insert("content-type", HeaderValue::from_static(content_type));
        }
        Ok(Outgoing {
            route: path.clone(),
            request: Request {
                method: fixture.method.clone(),
                path,
                query,
                headers,
                body: Bytes::from(body),
                request_id: crate::ids::random_id("req_", 14),
            },
        })
    }

    fn stop(applied: Vec<Row>, fixture: Option<Failed>, message: String, param: String) -> Outcome {
        Outcome::Stopped(Stopped {
            error: StoppedError {
                applied,
                fixture,
                message,
                param,
                kind: "invalid_request_error",
            },
        })
    }
}

fn header_value(run: &Run, template: &Template) -> Result<HeaderValue, Stop> {
    let text = run.text(template)?;
    HeaderValue::from_str(&text).map_err(|_| Stop {
        message: format!(
            "the header value `{}` is not a valid header value (visible ASCII and spaces)",
            shorten(&text)
        ),
        param: template.at.clone(),
    })
}

/// The error's `type` (Stripe) or `code` (native) in an answer.
fn error_type(body: &Value) -> Option<&str> {
    body.get("error")
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .or_else(|| body.get("code").and_then(Value::as_str))
}

/// The error's message in an answer, either API's envelope, or its text.
fn error_message(body: &Value) -> Option<&str> {
    body.get("error")
        .and_then(|e| e.get("message").or(Some(e)))
        .and_then(Value::as_str)
        .or_else(|| body.get("message").and_then(Value::as_str))
        .or_else(|| body.as_str())
}

impl Operation for Apply {
    type View = Outcome;

    fn parse(_: &App, req: &Request) -> StripeResult<Self> {
        let caller = caller(req)?;
        if req.query.as_deref().is_some_and(|q| !q.is_empty()) {
            return Err(StripeError::invalid(format!(
                "POST {PATH} takes the fixture file as its JSON body and no query parameters. Nothing was applied."
            )));
        }
        if req.body.iter().all(u8::is_ascii_whitespace) {
            return Err(StripeError::invalid(
                "The fixture file is empty: send a JSON object with `_meta` and `fixtures`, as `stripe fixtures` reads. Nothing was applied.",
            ));
        }
        let value: Value = serde_json::from_slice(&req.body).map_err(|e| {
            StripeError::invalid(format!(
                "Invalid fixture file: it is not JSON ({e}). Nothing was applied."
            ))
        })?;
        let (file, reads) = Reader::file(value)?;
        // Each variable is read once, in file order, so that a replay reads the same values.
        let mut env: HashMap<String, Option<String>> = HashMap::new();
        for EnvRead {
            var,
            has_default,
            at,
            who,
        } in reads
        {
            let value = env
                .entry(var.clone())
                .or_insert_with(|| tape::env_var(&var).filter(|v| !v.is_empty()));
            if value.is_none() && !has_default {
                return Err(refused(
                    format!("{who} reads the environment variable {}, which is not set (or empty), and gives no default (`${{.env:{}|default}}`). Nothing was applied.", shorten(&var), shorten(&var)),
                    &at,
                ));
            }
        }
        Ok(Apply {
            caller,
            account: req.headers.get("stripe-account").cloned(),
            version: req.headers.get("stripe-version").cloned(),
            file,
            env,
        })
    }

    fn apply(self, app: &App) -> StripeResult<Outcome> {
        let mut run = Run {
            app,
            world: &self.caller.world,
            answers: HashMap::new(),
            env: &self.env,
            limit: app.config.max_body_bytes,
            spent: Cell::new(0),
        };
        let mut applied: Vec<Row> = Vec::with_capacity(self.file.fixtures.len());
        let mut kept_bytes = 0usize;
        for fixture in &self.file.fixtures {
            let who = fixture.label();
            let out = match self.request(fixture, &run) {
                Ok(out) => out,
                Err(stop) => {
                    let message = format!("{who}: {}. {}", stop.message, kept(applied.len()));
                    let failed = Failed {
                        index: fixture.index,
                        name: fixture.name.clone(),
                        method: None,
                        path: None,
                        status: None,
                        response: None,
                    };
                    return Ok(Self::stop(applied, Some(failed), message, stop.param));
                }
            };
            let api = router::api_of(&out.request.path, &out.request.headers);
            // A bug must cost this fixture, not the run's answer: the server's own guard would turn
            // the whole file into one 500 that says nothing of what was applied.
            let reply = std::panic::catch_unwind(AssertUnwindSafe(|| {
                router::dispatch(app, api, &out.request)
            }))
            .unwrap_or_else(|_| {
                tracing::error!("request {} (a fixture) panicked", out.request.request_id);
                router::internal_error(api)
            });
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&reply.body).into_owned())
            });
            let failed = reply.status >= 300;
            let expected = failed
                && fixture.expected_error_type.is_some()
                && error_type(&body) == fixture.expected_error_type.as_deref();
            let method = fixture.method.as_str().to_string();
            if failed && !expected {
                let said = error_message(&body)
                    .map(|m| format!(": {}", shorten(m)))
                    .unwrap_or_default();
                let mut message = format!(
                    "{who} failed: {method} {} answered {}{said}",
                    shorten(&out.route),
                    reply.status,
                );
                if !message.ends_with('.') {
                    message.push('.');
                }
                message.push(' ');
                message.push_str(&kept(applied.len()));
                let failed = Failed {
                    index: fixture.index,
                    name: fixture.name.clone(),
                    method: Some(method),
                    path: Some(out.route),
                    status: Some(reply.status),
                    response: Some(body),
                };
                let param = format!("fixtures[{}]", fixture.index);
                return Ok(Self::stop(applied, Some(failed), message, param));
            }
            let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_string);
            applied.push(Row {
                name: fixture.name.clone(),
                method,
                path: out.route,
                status: reply.status,
                object: text("object"),
                id: text("id"),
                expected_error_type: expected
                    .then(|| fixture.expected_error_type.clone())
                    .flatten(),
            });
            if self.file.referenced.contains(&fixture.name) {
                kept_bytes += reply.body.len();
                if kept_bytes > MAX_KEPT_BYTES {
                    let message = format!(
                        "{who}: the answers that later fixtures refer to add up to more than {MAX_KEPT_BYTES} bytes, more than one run keeps. The fixtures up to this one were applied and stay applied."
                    );
                    let param = format!("fixtures[{}]", fixture.index);
                    return Ok(Self::stop(applied, None, message, param));
                }
                run.answers.insert(fixture.name.clone(), body);
            }
        }
        let mut env = Map::new();
        for (name, template) in &self.file.env {
            match run.text(template) {
                Ok(value) => {
                    env.insert(name.clone(), Value::String(value));
                }
                Err(stop) => {
                    let message = format!(
                        "The env value `{}`: {}. All {} fixtures were applied and stay applied.",
                        shorten(name),
                        stop.message,
                        applied.len()
                    );
                    return Ok(Self::stop(applied, None, message, stop.param));
                }
            }
        }
        Ok(Outcome::Applied(Applied {
            object: "emulator.fixtures",
            applied,
            env,
        }))
    }

    fn status(view: &Outcome) -> u16 {
        match view {
            Outcome::Applied(_) => 200,
            Outcome::Stopped(_) => 400,
        }
    }
}

/// Applies a fixture file read at start-up to the world of `key`, exactly as `POST
/// /_emulator/fixtures` would: the number of fixtures applied, or the answer's text when the file
/// was refused or a fixture failed.
pub fn apply_at_start(app: &App, key: &str, file: Vec<u8>) -> Result<usize, String> {
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| format!("the key {key:?} cannot be sent in a header"))?;
    headers.insert("authorization", bearer);
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let request = Request {
        method: Method::POST,
        path: PATH.to_string(),
        query: None,
        headers,
        body: Bytes::from(file),
        request_id: crate::ids::random_id("req_", 14),
    };
    // Stored like any request when the worlds are (`--data-dir`), so a restart finds the world.
    let reply: Reply = crate::persist::dispatch_stored(app, crate::router::Api::Admin, &request)?;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    if reply.status != 200 {
        return Err(text);
    }
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(answer["applied"].as_array().map_or(0, Vec::len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> Reader {
        Reader {
            declared: ["customer".to_string()].into_iter().collect(),
            referenced: HashSet::new(),
            env_reads: Vec::new(),
        }
    }

    #[test]
    fn references_are_split_from_text() {
        let t = reader()
            .template("/v1/customers/${customer:id}/x${.env:V|d}", "p".into(), "f")
            .unwrap();
        assert_eq!(t.parts.len(), 4);
        assert!(
            matches!(&t.parts[1], Part::Answer { name, path, .. } if name == "customer" && path == &["id"])
        );
        assert!(
            matches!(&t.parts[3], Part::Env { var, default: Some(d) } if var == "V" && d == "d")
        );
    }

    #[test]
    fn bad_references_are_refused() {
        for text in [
            "${nobody:id}",
            "${customer}",
            "${customer:}",
            "${:id}",
            "${customer:id",
            "${.env:A=B}",
        ] {
            assert!(reader().template(text, "p".into(), "f").is_err(), "{text}");
        }
    }

    #[test]
    fn paths_find_keys_indexes_and_lengths() {
        let v: Value = serde_json::json!({"data": [{"id": "a"}, {"id": "b"}], "n": 3, "x": null});
        let p = |s: &str| split_path(s);
        let f = |path: &str| find(&v, &p(path)).map(Cow::into_owned);
        assert_eq!(f("data.1.id"), Some(Value::from("b")));
        assert_eq!(f("data.[0].id"), Some(Value::from("a")));
        assert_eq!(f("data.#"), Some(Value::from(2)));
        assert_eq!(f("data.2.id"), None);
        assert_eq!(as_text(&find(&v, &p("n")).unwrap()), Some("3".to_string()));
        assert_eq!(find(&v, &p("x")).and_then(|v| as_text(&v)), None);
    }

    #[test]
    fn numbers_are_written_as_the_cli_writes_them() {
        let n = |s: &str| number_text(&serde_json::from_str::<Number>(s).unwrap());
        assert_eq!(n("10"), "10");
        assert_eq!(n("25.00"), "25");
        assert_eq!(n("20.10"), "20.1");
        assert_eq!(n("1e3"), "1000");
        assert_eq!(n("-7"), "-7");
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid(u64::MAX, u64::MAX);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
    }
}
