//! Support for the robustness tests: a raw HTTP/1.1 client (so that requests can be as broken as a
//! hostile client makes them), the corpus format, the envelope checks of both APIs, and tenant state
//! dumps for "nothing changed" comparisons.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Emu;

/// The instant the robustness tests freeze their tenants at: 2100-01-01T00:00:00Z. The shared
/// harness's `T0` lies in the past, and a tenant clock that starts in real time cannot be moved back
/// to it, so these tests use an instant that stays in the future.
pub const BASE: i64 = 4_102_444_800;

/// A fresh tenant key with its clock frozen at [`BASE`].
pub async fn tenant(emu: &Emu, name: &str) -> String {
    let key = format!("sk_test_{name}");
    emu.freeze(&key, BASE).await;
    key
}

/// Longest a raw exchange may take before the test gives up on it (a hang is a failure, not a wait).
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(60);

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends `request` as is on a fresh connection and reads the answer until the server closes the
/// connection. With `half_close`, the client shuts its write side once it has sent everything.
/// `None` if the server closed the connection without answering.
pub async fn exchange(addr: SocketAddr, request: Vec<u8>, half_close: bool) -> Option<Raw> {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    // Written concurrently with reading: the server may answer (and stop reading) before the
    // request is fully sent, as it does for oversized bodies.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        if half_close {
            let _ = wr.shutdown().await;
        }
        wr
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(EXCHANGE_DEADLINE, async {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                // A reset after the answer has arrived still leaves the answer readable here.
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server neither answered nor closed within {EXCHANGE_DEADLINE:?}"
    );
    drop(writer.await);
    parse_response(&buf)
}

/// Parses a response (head and `Content-Length` body), skipping interim `1xx` answers such as
/// `100 Continue`.
pub fn parse_response(mut buf: &[u8]) -> Option<Raw> {
    while buf.starts_with(b"HTTP/1.1 1") {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        buf = &buf[end + 4..];
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if let Some(n) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(n);
    }
    Some(Raw {
        status,
        headers,
        body,
    })
}

/// A request to put on the wire.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Send the body chunked, in chunks of this size.
    pub chunked: Option<usize>,
    /// Add no `Content-Length` / `Transfer-Encoding` of our own (the case sets its own framing).
    pub raw_length: bool,
}

impl RawRequest {
    pub fn new(method: &str, target: &str) -> RawRequest {
        RawRequest {
            method: method.as_bytes().to_vec(),
            target: target.as_bytes().to_vec(),
            ..RawRequest::default()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> RawRequest {
        self.headers
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> RawRequest {
        self.body = body.into();
        self
    }

    /// The bytes, with `Host` and `Connection: close`.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        out.extend_from_slice(&self.method);
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\nhost: emulator\r\n");
        for (k, v) in &self.headers {
            out.extend_from_slice(k);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        if !self.raw_length {
            match self.chunked {
                Some(_) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
                None if !self.body.is_empty() => out.extend_from_slice(
                    format!("content-length: {}\r\n", self.body.len()).as_bytes(),
                ),
                None => {}
            }
        }
        out.extend_from_slice(b"connection: close\r\n\r\n");
        match self.chunked {
            Some(size) if !self.raw_length => {
                for chunk in self.body.chunks(size.max(1)) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            _ => out.extend_from_slice(&self.body),
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The corpus format (see tests/corpus/README.md).

/// One corpus case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: String,
    pub why: String,
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: Option<String>,
    /// `"none"` sends no credentials; by default the API's own header carries the tenant key.
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub headers: Option<Vec<(String, String)>>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub gen: Option<GenSpec>,
    /// `true` for chunks of 64 KiB, or a chunk size.
    #[serde(default)]
    pub chunked: Option<Value>,
    #[serde(default)]
    pub raw_length: bool,
    #[serde(default)]
    pub half_close: bool,
    /// The whole request, for cases that are not HTTP at all.
    #[serde(default)]
    pub raw_request: Option<String>,
    pub expect: Expect,
}

/// One or several generation rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GenSpec {
    One(Gen),
    Many(Vec<Gen>),
}

/// `pre + unit × times + post`, appended to a part of the request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gen {
    /// `body`, `query`, `path`, `method`, `header:NAME`, or `headers` (`times` headers `x-pad-N: unit`).
    pub into: String,
    #[serde(default)]
    pub pre: String,
    pub unit: String,
    pub times: usize,
    #[serde(default)]
    pub post: String,
}

/// What a case must get back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: Statuses,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Absent: not checked; `null`: must be absent; a string: must be equal.
    #[serde(default, deserialize_with = "present")]
    pub code: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub param: Option<Value>,
    /// A substring of the message.
    #[serde(default)]
    pub message: Option<String>,
    /// `"none"`: the HTTP layer answers before any API does, with an empty body.
    #[serde(default)]
    pub envelope: Option<String>,
    /// Native auth errors: the `error` field of gin's raw body (`"*"`: any string).
    #[serde(default)]
    pub error: Option<String>,
    /// Native: a plain-text body (gin's `404 page not found`).
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// One status or a choice of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Statuses {
    One(u16),
    Any(Vec<u16>),
}

impl Statuses {
    pub fn allows(&self, s: u16) -> bool {
        match self {
            Statuses::One(x) => *x == s,
            Statuses::Any(xs) => xs.contains(&s),
        }
    }
}

/// Loads one corpus case: a file holding one JSON object.
pub fn load_case(path: &std::path::Path) -> Case {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let case: Case =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The file is named after the case, so that its snapshot is too.
    assert_eq!(
        path.file_stem().and_then(|s| s.to_str()),
        Some(case.id.as_str()),
        "{}: the file is not named after its case id",
        path.display()
    );
    case
}

/// Text with `\xHH` escapes as bytes; everything else as UTF-8.
pub fn unescape(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') && i + 3 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Replaces `{name}` placeholders that `vars` knows; other braces (JSON bodies) stay.
pub fn fill(s: &str, vars: &HashMap<&'static str, String>) -> String {
    let mut out = s.to_string();
    for (k, v) in vars {
        let token = format!("{{{k}}}");
        if out.contains(&token) {
            out = out.replace(&token, v);
        }
    }
    out
}

/// Which API a corpus speaks, for its default credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Stripe,
    Native,
}

/// Builds the request a case describes.
pub fn build(case: &Case, api: Api, vars: &HashMap<&'static str, String>) -> (Vec<u8>, bool) {
    if let Some(raw) = &case.raw_request {
        return (unescape(&fill(raw, vars)), case.half_close);
    }
    let mut method = unescape(&case.method);
    let mut path = unescape(&fill(&case.path, vars));
    let mut query = case.query.as_ref().map(|q| unescape(&fill(q, vars)));
    let mut body = case
        .body
        .as_ref()
        .map(|b| unescape(&fill(b, vars)))
        .unwrap_or_default();
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if case.auth.as_deref() != Some("none") {
        match api {
            Api::Stripe => headers.push((
                b"authorization".to_vec(),
                format!("Bearer {}", vars["key"]).into_bytes(),
            )),
            Api::Native => headers.push((b"x-api-key".to_vec(), vars["key"].clone().into_bytes())),
        }
    }
    for (k, v) in case.headers.iter().flatten() {
        headers.push((k.as_bytes().to_vec(), unescape(&fill(v, vars))));
    }
    let gens = match &case.gen {
        None => Vec::new(),
        Some(GenSpec::One(g)) => vec![g.clone()],
        Some(GenSpec::Many(gs)) => gs.clone(),
    };
    for g in gens {
        let mut made = unescape(&g.pre);
        let unit = unescape(&g.unit);
        if g.into == "headers" {
            for i in 0..g.times {
                headers.push((format!("x-pad-{i}").into_bytes(), unit.clone()));
            }
            continue;
        }
        made.reserve(unit.len() * g.times);
        for _ in 0..g.times {
            made.extend_from_slice(&unit);
        }
        made.extend_from_slice(&unescape(&g.post));
        match g.into.as_str() {
            "body" => body.extend_from_slice(&made),
            "path" => path.extend_from_slice(&made),
            "query" => query.get_or_insert_with(Vec::new).extend_from_slice(&made),
            "method" => method.extend_from_slice(&made),
            h if h.starts_with("header:") => {
                headers.push((h.as_bytes()["header:".len()..].to_vec(), made))
            }
            other => panic!("{}: unknown gen target {other}", case.id),
        }
    }
    let mut target = path;
    if let Some(q) = query {
        target.push(b'?');
        target.extend_from_slice(&q);
    }
    let chunked = match &case.chunked {
        None | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(64 * 1024),
        Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
        Some(other) => panic!("{}: bad chunked {other}", case.id),
    };
    let req = RawRequest {
        method,
        target,
        headers,
        body,
        chunked,
        raw_length: case.raw_length,
    };
    (req.bytes(), case.half_close)
}

// ---------------------------------------------------------------------------------------------
// Envelope checks.

/// What both APIs' checks start with: the status must be allowed, and a case expecting no envelope
/// (an answer from the HTTP layer) is settled by the body being empty. `Some` settles the case.
fn check_status_and_bare(raw: &Raw, expect: &Expect) -> Option<Result<(), String>> {
    if !expect.status.allows(raw.status) {
        return Some(Err(format!(
            "status {} (expected {:?})",
            raw.status, expect.status
        )));
    }
    if expect.envelope.as_deref() == Some("none") {
        return Some(if raw.body.is_empty() {
            Ok(())
        } else {
            Err(format!("expected an empty body, got {:?}", raw.text()))
        });
    }
    None
}

/// Checks a Stripe answer against the envelope and the case's expectations.
pub fn check_stripe(raw: &Raw, expect: &Expect) -> Result<(), String> {
    if let Some(done) = check_status_and_bare(raw, expect) {
        return done;
    }
    let request_id = raw.header("request-id").unwrap_or("");
    if !request_id.starts_with("req_") {
        return Err(format!("no Request-Id header (got {request_id:?})"));
    }
    if raw.header("content-type") != Some("application/json") {
        return Err(format!("content-type {:?}", raw.header("content-type")));
    }
    let body = raw
        .json()
        .ok_or_else(|| format!("body is not JSON: {:?}", raw.text()))?;
    let obj = body.as_object().ok_or("body is not an object")?;
    if obj.len() != 1 || !obj.contains_key("error") {
        return Err(format!("body is not {{\"error\": …}}: {body}"));
    }
    let err = body["error"].as_object().ok_or("error is not an object")?;
    for k in err.keys() {
        if !["code", "doc_url", "message", "param", "type"].contains(&k.as_str()) {
            return Err(format!("unexpected error field {k}"));
        }
    }
    let kind = err.get("type").and_then(Value::as_str).unwrap_or("");
    if !["invalid_request_error", "idempotency_error", "api_error"].contains(&kind) {
        return Err(format!("error type {kind:?}"));
    }
    if raw.status < 500 && kind == "api_error" {
        return Err("api_error on a 4xx".into());
    }
    let message = err.get("message").and_then(Value::as_str).unwrap_or("");
    if message.is_empty() {
        return Err("empty message".into());
    }
    match (
        err.get("code").and_then(Value::as_str),
        err.get("doc_url").and_then(Value::as_str),
    ) {
        (Some(code), Some(url)) => {
            let want = format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            );
            if url != want {
                return Err(format!("doc_url {url} for code {code}"));
            }
        }
        (None, None) => {}
        other => return Err(format!("code and doc_url must come together: {other:?}")),
    }
    if let Some(want) = &expect.kind {
        if kind != want {
            return Err(format!("type {kind:?}, expected {want:?}"));
        }
    }
    for (field, want) in [("code", &expect.code), ("param", &expect.param)] {
        if let Some(want) = want {
            let got = err.get(field).cloned().unwrap_or(Value::Null);
            if &got != want {
                return Err(format!("{field} {got}, expected {want}"));
            }
        }
    }
    if let Some(want) = &expect.message {
        if !message.contains(want.as_str()) {
            return Err(format!("message {message:?} does not contain {want:?}"));
        }
    }
    Ok(())
}

/// gin's answer for a route it does not have.
pub fn is_gin_404(raw: &Raw) -> bool {
    raw.status == 404 && raw.body == b"404 page not found"
}

/// Checks a native answer against the documented behaviour.
pub fn check_native(raw: &Raw, expect: &Expect) -> Result<(), String> {
    if let Some(done) = check_status_and_bare(raw, expect) {
        return done;
    }
    if let Some(text) = &expect.text {
        return if raw.text() == *text {
            Ok(())
        } else {
            Err(format!("body {:?}, expected {text:?}", raw.text()))
        };
    }
    if raw.header("content-type") != Some("application/json; charset=utf-8") {
        return Err(format!("content-type {:?}", raw.header("content-type")));
    }
    let body = raw
        .json()
        .ok_or_else(|| format!("body is not JSON: {:?}", raw.text()))?;
    // A hostile input may still be a valid request (an unknown plan's grant list is empty).
    if (200..300).contains(&raw.status) {
        return if body.is_object() || body.is_array() {
            Ok(())
        } else {
            Err(format!("a success that is not an object or array: {body}"))
        };
    }
    let obj = body.as_object().ok_or("body is not an object")?;
    if let Some(want) = &expect.error {
        // gin's raw auth bodies: {"error": "..."} (sometimes with "message").
        let got = obj
            .get("error")
            .and_then(Value::as_str)
            .ok_or(format!("no error string in {body}"))?;
        if want != "*" && got != want {
            return Err(format!("error {got:?}, expected {want:?}"));
        }
        return Ok(());
    }
    for k in obj.keys() {
        if !["code", "message", "http_status_code", "details"].contains(&k.as_str()) {
            return Err(format!("unexpected field {k} in {body}"));
        }
    }
    if obj.get("http_status_code").and_then(Value::as_u64) != Some(raw.status as u64) {
        return Err(format!(
            "http_status_code does not match the status: {body}"
        ));
    }
    let code = obj.get("code").and_then(Value::as_str).ok_or("no code")?;
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .ok_or("no message")?;
    if let Some(Value::String(want)) = &expect.code {
        if code != want {
            return Err(format!("code {code:?}, expected {want:?}"));
        }
    }
    if let Some(want) = &expect.message {
        if !message.contains(want.as_str()) {
            return Err(format!("message {message:?} does not contain {want:?}"));
        }
    }
    if let Some(d) = obj.get("details") {
        if !d.is_object() {
            return Err("details is not an object".into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// State.

/// Which API a dump read speaks.
#[derive(Debug, Clone, Copy)]
enum Via {
    Stripe,
    Native,
}

/// `GET`s every path at once (a dump makes dozens of reads, after every corpus case); each must
/// answer 200 with a single page. Their JSON, in order.
async fn get_all(emu: &Emu, key: &str, paths: Vec<(Via, String)>) -> Vec<Value> {
    let mut tasks = Vec::with_capacity(paths.len());
    for (via, path) in paths {
        let client = emu.client.clone();
        let url = emu.url(&path);
        let key = key.to_string();
        tasks.push(tokio::spawn(async move {
            let rb = client.get(url);
            let rb = match via {
                Via::Stripe => rb.bearer_auth(&key),
                Via::Native => rb.header("x-api-key", &key),
            };
            let r = rb.send().await.expect("the emulator answers a dump read");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            assert_eq!(status, 200, "dump {path}: {text}");
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_ne!(
                body["has_more"],
                json!(true),
                "dump {path}: more than one page"
            );
            if let Some(total) = body["pagination"]["total"].as_u64() {
                assert!(total <= 1000, "dump {path}: more than one page");
            }
            body
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("a dump read"));
    }
    out
}

/// Everything a tenant holds, as both APIs show it (one page each: the tenants these tests dump stay
/// small):
///
/// - Stripe: customers (also those on `clock`), credit grants, test clocks, the tenant clock;
/// - the ledger: each live customer's credit balance summary and balance transactions, and every
///   invoice those transactions name;
/// - native: credit grants, customers, plans, subscriptions, and for each customer its upcoming
///   grant applications, its wallets, each wallet's real-time balance and transactions.
pub async fn dump(emu: &Emu, key: &str, clock: &str) -> Value {
    use Via::{Native, Stripe};
    let lists = [
        ("customers", Stripe, "/v1/customers?limit=100".to_string()),
        (
            "clock_customers",
            Stripe,
            format!("/v1/customers?limit=100&test_clock={clock}"),
        ),
        (
            "grants",
            Stripe,
            "/v1/billing/credit_grants?limit=100".to_string(),
        ),
        (
            "test_clocks",
            Stripe,
            "/v1/test_helpers/test_clocks?limit=100".to_string(),
        ),
        ("tenant_clock", Stripe, "/_emulator/clock".to_string()),
        (
            "native_grants",
            Native,
            "/v1/creditgrants?limit=1000".to_string(),
        ),
        // Every customer, deleted ones (archived) and those on test clocks included.
        (
            "native_customers",
            Native,
            "/v1/customers?limit=1000".to_string(),
        ),
        ("native_plans", Native, "/v1/plans?limit=1000".to_string()),
        (
            "native_subscriptions",
            Native,
            "/v1/subscriptions?limit=1000".to_string(),
        ),
    ];
    let bodies = get_all(
        emu,
        key,
        lists.iter().map(|(_, via, p)| (*via, p.clone())).collect(),
    )
    .await;
    let mut out = serde_json::Map::new();
    for ((name, _, _), body) in lists.iter().zip(bodies) {
        out.insert(name.to_string(), body);
    }

    // Per customer: the native wallets and upcoming applications, and the same customer's ledger
    // through Stripe (live customers only: Stripe no longer knows a deleted one).
    let customers: Vec<(String, bool)> = out["native_customers"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                c["status"] == "published",
            )
        })
        .collect();
    let mut paths = Vec::new();
    for (cust, live) in &customers {
        paths.push((Native, format!("/v1/customers/{cust}/grants/upcoming")));
        paths.push((Native, format!("/v1/customers/{cust}/wallets")));
        if *live {
            let cus = format!("cus_{}", &cust["cust_".len()..]);
            paths.push((Stripe, format!("/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered")));
            paths.push((
                Stripe,
                format!("/v1/billing/credit_balance_transactions?customer={cus}&limit=100"),
            ));
        }
    }
    let mut bodies = get_all(emu, key, paths).await.into_iter();
    let mut per_customer = serde_json::Map::new();
    let mut wallet_ids = Vec::new();
    let mut invoices = std::collections::BTreeSet::new();
    for (cust, live) in &customers {
        let mut v = json!({
            "upcoming": bodies.next(),
            "wallets": bodies.next(),
        });
        for w in v["wallets"].as_array().into_iter().flatten() {
            wallet_ids.push(w["id"].as_str().unwrap_or_default().to_string());
        }
        if *live {
            v["summary"] = bodies.next().unwrap_or_default();
            let txns = bodies.next().unwrap_or_default();
            for t in txns["data"].as_array().into_iter().flatten() {
                for side in ["credit", "debit"] {
                    for kind in ["credits_applied", "credits_application_invoice_voided"] {
                        if let Some(inv) = t[side][kind]["invoice"].as_str() {
                            invoices.insert(inv.to_string());
                        }
                    }
                }
            }
            v["transactions"] = txns;
        }
        per_customer.insert(cust.clone(), v);
    }
    out.insert("per_customer".into(), Value::Object(per_customer));

    // Per wallet, its balance now and its transactions; every invoice the ledger names.
    let mut paths = Vec::new();
    for w in &wallet_ids {
        paths.push((Native, format!("/v1/wallets/{w}/balance/real-time")));
        paths.push((Native, format!("/v1/wallets/{w}/transactions?limit=1000")));
    }
    for inv in &invoices {
        paths.push((Stripe, format!("/v1/invoices/{inv}")));
    }
    let mut bodies = get_all(emu, key, paths).await.into_iter();
    let mut wallets = serde_json::Map::new();
    for w in &wallet_ids {
        wallets.insert(
            w.clone(),
            json!({"balance": bodies.next(), "transactions": bodies.next()}),
        );
    }
    out.insert("wallets".into(), Value::Object(wallets));
    let mut by_id = serde_json::Map::new();
    for inv in &invoices {
        by_id.insert(inv.clone(), bodies.next().unwrap_or_default());
    }
    out.insert("invoices".into(), Value::Object(by_id));
    Value::Object(out)
}

/// The whole of a tenant's state as the model holds it (every object, index, scheduled event, the id
/// generator) and its stored idempotent answers. Any change a request makes shows here, so the
/// corpus compares this after every case, and the API views of [`dump`] before and after the run.
pub fn fingerprint(emu: &Emu, key: &str) -> String {
    let cell = emu.running.app.store.tenant(key);
    let state = cell.peek(|t| format!("{t:?}"));
    let stored = format!("{:?}", *emu.running.app.idempotency.of(key).lock());
    state + &stored
}

/// `GET /_emulator/health` on a fresh connection answers 200.
pub async fn healthy(addr: SocketAddr) -> bool {
    let req = RawRequest::new("GET", "/_emulator/health").bytes();
    matches!(exchange(addr, req, false).await, Some(r) if r.status == 200)
}

/// The objects every corpus run starts from.
pub struct World {
    pub vars: HashMap<&'static str, String>,
    pub key: String,
    pub other: String,
    pub clock: String,
    pub other_clock: String,
}

/// RFC 3339 for a unix time, as the native API reads it.
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .expect("a time in range")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A native `GET` that must answer 200; its JSON.
async fn native_get(emu: &Emu, key: &str, path: &str) -> Value {
    let r = emu.native("GET", key, path, None).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.body
}

/// A native `POST` that must answer 201 (or 200 for actions); its JSON.
pub async fn native_post(emu: &Emu, key: &str, path: &str, body: Value) -> Value {
    let r = emu.native("POST", key, path, Some(&body)).await;
    assert!(
        r.status == 200 || r.status == 201,
        "{path}: {} {}",
        r.status,
        r.text
    );
    r.body
}

/// Objects of the native API in one tenant: a native customer on a plan with a recurring grant
/// rule, a subscription that has applied it, and its wallet.
pub struct NativeWorld {
    pub customer: String,
    pub plan: String,
    pub grant: String,
    pub subscription: String,
    pub wallet: String,
}

/// Creates a native customer (`external_id`), a plan with one monthly PLAN grant rule, and a usd
/// subscription started now, which applies the rule at once.
pub async fn native_world(emu: &Emu, key: &str, external_id: &str) -> NativeWorld {
    let customer = native_post(
        emu,
        key,
        "/v1/customers",
        json!({"external_id": external_id, "name": "Corpus", "email": "native@example.com"}),
    )
    .await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let plan = native_post(
        emu,
        key,
        "/v1/plans",
        json!({"name": "Corpus plan", "credit_grants": [{
            "name": "Monthly", "credits": "10", "cadence": "RECURRING", "period": "MONTHLY",
            "period_count": 1, "expiration_type": "BILLING_CYCLE", "priority": 1,
        }]}),
    )
    .await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let grants = native_get(emu, key, &format!("/v1/plans/{plan}/creditgrants")).await;
    let grant = grants["items"][0]["id"]
        .as_str()
        .expect("the plan's grant")
        .to_string();
    let subscription = native_post(
        emu,
        key,
        "/v1/subscriptions",
        json!({"customer_id": customer, "plan_id": plan, "currency": "usd", "billing_period": "MONTHLY"}),
    )
    .await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let wallets = native_get(emu, key, &format!("/v1/customers/{customer}/wallets")).await;
    let wallet = wallets[0]["id"]
        .as_str()
        .expect("the subscription's wallet")
        .to_string();
    NativeWorld {
        customer,
        plan,
        grant,
        subscription,
        wallet,
    }
}

/// An invoice of `amount` usd cents for `customer`, spending its credits; its id.
pub async fn invoice(emu: &Emu, key: &str, customer: &str, amount: i64) -> String {
    let r = emu
        .post(
            key,
            "/_emulator/invoices",
            &format!("customer={customer}&currency=usd&lines[0][amount]={amount}"),
        )
        .await;
    assert_eq!(r.status, 200, "invoice: {}", r.text);
    r.id()
}

/// Creates two tenants with customers, grants (live, voided, expired, spent), invoices (open,
/// voided), test clocks, and the native API's objects (customer, plans, grant rules, subscriptions,
/// wallet).
pub async fn world(emu: &Emu, name: &str) -> World {
    use base64::Engine;
    let key = tenant(emu, &format!("{name}_main")).await;
    let other = tenant(emu, &format!("{name}_other")).await;
    let t0 = BASE;
    let mut vars = HashMap::new();
    let clock = emu
        .post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={t0}&name=corpus"),
        )
        .await
        .id();
    let cus = emu
        .customer(&key, "email=corpus@example.com&metadata[tier]=gold")
        .await;
    let clock_cus = emu.customer(&key, &format!("test_clock={clock}")).await;
    let grant = emu.grant(&key, &cus, 1000, "").await;
    let voided = emu.grant(&key, &cus, 500, "").await;
    assert_eq!(
        emu.post(
            &key,
            &format!("/v1/billing/credit_grants/{voided}/void"),
            ""
        )
        .await
        .status,
        200
    );
    let expired = emu.grant(&key, &cus, 700, "category=promotional").await;
    assert_eq!(
        emu.post(
            &key,
            &format!("/v1/billing/credit_grants/{expired}/expire"),
            ""
        )
        .await
        .status,
        200
    );
    let clock_grant = emu.grant(&key, &clock_cus, 300, "").await;
    let used = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/customers",
            "email=used@example.com",
            &[("idempotency-key", "corpus-used-key")],
        )
        .await;
    assert_eq!(used.status, 200);
    let other_clock = emu
        .post(
            &other,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={t0}"),
        )
        .await
        .id();
    let other_cus = emu.customer(&other, "email=other@example.com").await;
    let other_grant = emu.grant(&other, &other_cus, 900, "").await;

    // Spending: a customer whose one grant two invoices have spent from, one of them voided since.
    let spend_cus = emu.customer(&key, "email=spend@example.com").await;
    let spent_grant = emu.grant(&key, &spend_cus, 400, "").await;
    let invoice_id = invoice(emu, &key, &spend_cus, 150).await;
    let voided_invoice = invoice(emu, &key, &spend_cus, 50).await;
    assert_eq!(
        emu.post(&key, &format!("/v1/invoices/{voided_invoice}/void"), "")
            .await
            .status,
        200
    );
    let other_invoice = invoice(emu, &other, &other_cus, 100).await;

    // The native API's objects.
    let n = native_world(emu, &key, "corpus-ext").await;
    let archived_ngrant = native_post(
        emu,
        &key,
        "/v1/creditgrants",
        json!({"name": "Gone", "scope": "PLAN", "plan_id": n.plan, "credits": "1",
               "cadence": "ONETIME", "expiration_type": "NEVER"}),
    )
    .await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = emu
        .native(
            "DELETE",
            &key,
            &format!("/v1/creditgrants/{archived_ngrant}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sgrant = native_post(
        emu,
        &key,
        "/v1/creditgrants",
        json!({"name": "Welcome", "scope": "SUBSCRIPTION", "subscription_id": n.subscription,
               "start_date": rfc3339(t0), "credits": "5", "cadence": "ONETIME",
               "expiration_type": "NEVER"}),
    )
    .await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let archived_plan = native_post(emu, &key, "/v1/plans", json!({"name": "Old"})).await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = emu
        .native("DELETE", &key, &format!("/v1/plans/{archived_plan}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cancelled_sub = native_post(
        emu,
        &key,
        "/v1/subscriptions",
        json!({"customer_id": n.customer, "plan_id": n.plan, "currency": "usd", "billing_period": "MONTHLY"}),
    )
    .await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    native_post(
        emu,
        &key,
        &format!("/v1/subscriptions/{cancelled_sub}/cancel"),
        json!({"cancellation_type": "immediate"}),
    )
    .await;
    let o = native_world(emu, &other, "corpus-other-ext").await;

    let native_id = |stripe: &str| format!("cg_{}", &stripe["credgr_test_".len()..]);
    vars.insert("key", key.clone());
    vars.insert(
        "key_b64",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:")),
    );
    vars.insert("cust", format!("cust_{}", &cus["cus_".len()..]));
    vars.insert("cus", cus);
    vars.insert("clock_cus", clock_cus);
    vars.insert("stripe_ngrant", native_id(&grant));
    vars.insert("grant", grant);
    vars.insert("voided_grant", voided);
    vars.insert("expired_grant", expired);
    vars.insert("clock_grant", clock_grant);
    vars.insert("clock", clock.clone());
    vars.insert("other_cus", other_cus);
    vars.insert("other_grant", other_grant);
    vars.insert("other_clock", other_clock.clone());
    vars.insert("spend_cus", spend_cus);
    vars.insert("spent_grant", spent_grant);
    vars.insert("invoice", invoice_id);
    vars.insert("voided_invoice", voided_invoice);
    vars.insert("other_invoice", other_invoice);
    vars.insert("ncus", n.customer);
    vars.insert("plan", n.plan);
    vars.insert("ngrant", n.grant);
    vars.insert("sub", n.subscription);
    vars.insert("wallet", n.wallet);
    vars.insert("archived_ngrant", archived_ngrant);
    vars.insert("sgrant", sgrant);
    vars.insert("archived_plan", archived_plan);
    vars.insert("cancelled_sub", cancelled_sub);
    vars.insert("other_ncus", o.customer);
    vars.insert("other_plan", o.plan);
    vars.insert("other_ngrant", o.grant);
    vars.insert("other_sub", o.subscription);
    vars.insert("other_wallet", o.wallet);
    World {
        vars,
        key,
        other,
        clock,
        other_clock,
    }
}
