//! Fixture files in the Stripe CLI's format: `POST /_emulator/fixtures` and `--fixtures FILE` at
//! start, over real sockets. The shipped `fixtures/world.json` is applied both ways and the world it
//! builds is checked through both APIs; every refusal and every run that stops part way is
//! snapshotted whole.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::{Emu, Resp, T0};

const FIXTURES: &str = "/_emulator/fixtures";
const WORLD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/world.json");

/// An HTTP client of one emulator, started here or by the binary.
struct Client {
    url: String,
    http: reqwest::Client,
}

impl Client {
    fn of(emu: &Emu) -> Client {
        Client::at(&emu.running.url())
    }

    fn at(url: &str) -> Client {
        Client {
            url: url.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// A request with `headers`, `body` as sent.
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(method, format!("{}{path}", self.url));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb
            .body(body.to_string())
            .send()
            .await
            .expect("the emulator answers");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// A Stripe `GET` with `key`.
    async fn get(&self, key: &str, path: &str) -> Resp {
        self.send(
            "GET",
            path,
            &[("authorization", &format!("Bearer {key}"))],
            "",
        )
        .await
    }

    /// A native `GET` with `key`.
    async fn native_get(&self, key: &str, path: &str) -> Resp {
        self.send("GET", path, &[("x-api-key", key)], "").await
    }

    /// Sends `file` (any text) as a fixture file to `key`'s world.
    async fn apply(&self, key: &str, file: &str) -> Resp {
        let auth = format!("Bearer {key}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        self.send("POST", FIXTURES, &headers, file).await
    }

    /// Sends the JSON `file` to `key`'s world.
    async fn apply_json(&self, key: &str, file: &Value) -> Resp {
        self.apply(key, &file.to_string()).await
    }
}

/// A file of `fixtures`, template version 0.
fn file(fixtures: Value) -> Value {
    json!({"_meta": {"template_version": 0}, "fixtures": fixtures})
}

/// The Stripe ids of `key`'s customers, newest first.
async fn customer_ids(emu: &Client, key: &str) -> Vec<String> {
    let r = emu.get(key, "/v1/customers?limit=100").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// The id the answer lists for the fixture `name`.
fn applied_id(answer: &Value, name: &str) -> String {
    answer["applied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == name)
        .and_then(|row| row["id"].as_str())
        .unwrap_or_else(|| panic!("no id for {name} in {answer}"))
        .to_string()
}

/// The metered usd balance available to `customer`, in cents.
async fn metered_balance(emu: &Client, key: &str, customer: &str) -> i64 {
    let r = emu
        .get(
            key,
            &format!("/v1/billing/credit_balance_summary?customer={customer}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["balances"][0]["available_balance"]["monetary"]["value"]
        .as_i64()
        .unwrap()
}

/// Checks the world `world.json` builds, through both APIs: who has what credit left after the
/// first cycle invoices, the subscriptions' items, the invoices, the native grant and subscription,
/// and the events all that caused.
async fn check_world(emu: &Client, key: &str, answer: &Value) {
    let ada = applied_id(answer, "ada");
    let grace = applied_id(answer, "grace");
    let lin = applied_id(answer, "lin");
    let price = applied_id(answer, "price");
    assert!(lin.starts_with("cust_"), "{lin}");
    let lin_stripe = lin.replacen("cust_", "cus_", 1);

    // Ada's $10 welcome credit paid $10 of her $15 (300 calls at 5 cents); Grace's $25 pack paid
    // all of her $6 (120 calls); Lin's plan gave 50 credits at rate 1, seen by Stripe as $50.
    assert_eq!(metered_balance(emu, key, &ada).await, 0);
    assert_eq!(metered_balance(emu, key, &grace).await, 1900);
    assert_eq!(metered_balance(emu, key, &lin_stripe).await, 5000);

    let sub = applied_id(answer, "ada_subscription");
    let items = emu
        .get(key, &format!("/v1/subscription_items?subscription={sub}"))
        .await;
    assert_eq!(items.status, 200, "{}", items.text);
    let data = items.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["price"]["id"], price.as_str());
    assert_eq!(data[0]["price"]["recurring"]["usage_type"], "metered");

    let invoices = emu
        .get(key, &format!("/v1/invoices?customer={ada}&status=paid"))
        .await;
    assert_eq!(invoices.status, 200, "{}", invoices.text);
    let cycle: Vec<&Value> = invoices.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["billing_reason"] == "subscription_cycle")
        .collect();
    assert_eq!(cycle.len(), 1, "{}", invoices.text);
    assert_eq!(cycle[0]["subtotal"], 1500);
    assert_eq!(cycle[0]["total"], 500);
    assert_eq!(cycle[0]["total_pretax_credit_amounts"][0]["amount"], 1000);

    let grants = emu.native_get(key, "/v1/creditgrants?scope=PLAN").await;
    assert_eq!(grants.status, 200, "{}", grants.text);
    assert_eq!(
        grants.body["items"][0]["id"],
        applied_id(answer, "pro_credits")
    );
    let subscription = emu
        .native_get(
            key,
            &format!(
                "/v1/subscriptions/{}",
                applied_id(answer, "lin_subscription")
            ),
        )
        .await;
    assert_eq!(subscription.status, 200, "{}", subscription.text);
    assert_eq!(subscription.body["customer_id"], lin.as_str());

    let events = emu.get(key, "/v1/events?limit=100").await;
    assert_eq!(events.status, 200, "{}", events.text);
    let types: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for want in [
        "customer.created",
        "billing.credit_grant.created",
        "billing.meter.created",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "billing.credit_balance_transaction.created",
    ] {
        assert!(types.contains(&want), "no {want} event in {types:?}");
    }
}

#[tokio::test]
async fn the_world_file_applied_over_http() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_world").await;
    let world = std::fs::read_to_string(WORLD).unwrap();
    let r = emu.apply(&key, &world).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_json_snapshot!("world_applied", r.body);
    assert_eq!(r.body["applied"].as_array().unwrap().len(), 18);
    assert_eq!(
        r.body["env"]["WORLD_ADA_CUSTOMER"],
        applied_id(&r.body, "ada")
    );
    check_world(&emu, &key, &r.body).await;

    // The email came from the reference's default: the variable is not set in tests.
    let ada = emu
        .get(
            &key,
            &format!("/v1/customers/{}", applied_id(&r.body, "ada")),
        )
        .await;
    assert_eq!(ada.body["email"], "ada@example.com");
}

// ---- the binary: --fixtures at start ----

/// Starts the binary with `args` and `env`, returning it and the lines it printed before serving
/// (`listening on …` and one line per fixture file).
fn spawn(args: &[&str], env: &[(&str, &str)], lines: usize) -> (Child, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_credit-emulator"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    cmd.env_remove("CREDIT_EMULATOR_FIXTURES_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let lines = (0..lines)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).expect("a line");
            line.trim().to_string()
        })
        .collect();
    (child, lines)
}

/// A client of the binary that printed `listening on URL`.
fn client_of(line: &str) -> Client {
    Client::at(line.strip_prefix("listening on ").expect("listening line"))
}

#[tokio::test]
async fn the_world_file_applied_at_start() {
    let dir = std::env::temp_dir().join(format!("credit-emulator-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let extra = dir.join("extra.json");
    let one_more = file(json!([
        {"name": "extra", "path": "/v1/customers", "method": "post", "params": {"name": "Extra"}}
    ]));
    std::fs::write(&extra, one_more.to_string()).unwrap();
    let extra = extra.to_str().unwrap();
    let (mut child, lines) = spawn(
        &[
            "--port",
            "0",
            "--seed",
            "3",
            "--fixtures",
            WORLD,
            "--fixtures",
            extra,
        ],
        &[("CREDIT_EMULATOR_FIXTURES_KEY", "sk_test_world_from_env")],
        3,
    );
    assert!(
        lines[0].starts_with("listening on http://127.0.0.1:"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        format!("applied 18 fixtures from {WORLD} to sk_test_world_from_env")
    );
    assert_eq!(
        lines[2],
        format!("applied 1 fixtures from {extra} to sk_test_world_from_env")
    );
    let emu = client_of(&lines[0]);
    // In order: the extra customer is the newest. (Lists leave out customers on test clocks, as
    // Stripe's do: the world's Ada and Grace; Lin, made natively, is listed.)
    let customers = customer_ids(&emu, "sk_test_world_from_env").await;
    assert_eq!(customers.len(), 2, "{customers:?}");
    let newest = emu
        .get(
            "sk_test_world_from_env",
            &format!("/v1/customers/{}", customers[0]),
        )
        .await;
    assert_eq!(newest.body["name"], "Extra");
    // The world it built checks as the one applied over HTTP; the answer is read again from a
    // world of its own, as the file cannot be applied twice to one world (its meter's event name
    // is taken the second time).
    let world = std::fs::read_to_string(WORLD).unwrap();
    let r = emu.apply("sk_test_world_again", &world).await;
    assert_eq!(r.status, 200, "{}", r.text);
    check_world(&emu, "sk_test_world_again", &r.body).await;
    let grace = emu
        .get(
            "sk_test_world_from_env",
            "/v1/customers/search?query=name:'Grace Hopper'",
        )
        .await;
    assert_eq!(grace.status, 200, "{}", grace.text);
    let grace = grace.body["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        metered_balance(&emu, "sk_test_world_from_env", &grace).await,
        1900
    );
    let again = emu.apply("sk_test_world_from_env", &world).await;
    assert_eq!(again.status, 400, "{}", again.text);
    assert_eq!(again.body["error"]["fixture"]["name"], "meter");
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();

    // --fixtures-key wins over the environment.
    let (mut child, lines) = spawn(
        &[
            "--port",
            "0",
            "--fixtures",
            WORLD,
            "--fixtures-key",
            "sk_test_world_flag",
        ],
        &[("CREDIT_EMULATOR_FIXTURES_KEY", "sk_test_world_from_env")],
        2,
    );
    assert_eq!(
        lines[1],
        format!("applied 18 fixtures from {WORLD} to sk_test_world_flag")
    );
    let emu = client_of(&lines[0]);
    assert_eq!(customer_ids(&emu, "sk_test_world_flag").await.len(), 1);
    assert!(customer_ids(&emu, "sk_test_world_from_env")
        .await
        .is_empty());
    child.kill().ok();
    child.wait().ok();

    // The default key.
    let (mut child, lines) = spawn(&["--port", "0", "--fixtures", WORLD], &[], 2);
    assert_eq!(
        lines[1],
        format!("applied 18 fixtures from {WORLD} to sk_test_fixtures")
    );
    let emu = client_of(&lines[0]);
    assert_eq!(customer_ids(&emu, "sk_test_fixtures").await.len(), 1);
    child.kill().ok();
    child.wait().ok();
}

/// Runs the binary with `args` until it exits: its status code and standard error. A binary that
/// starts serving instead of exiting is stopped after a minute, so that the test fails rather than
/// hangs.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_credit-emulator"))
        .args(args)
        .env_remove("CREDIT_EMULATOR_FIXTURES_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().ok();
    let out = child.wait_with_output().expect("binary ends");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_failing_start_up_file_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("credit-emulator-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    let failing = file(json!([
        {"name": "customer", "path": "/v1/customers", "method": "post", "params": {"name": "Ada"}},
        {"name": "grant", "path": "/v1/billing/credit_grants", "method": "post",
         "params": {"customer": "${customer:id}", "amount": {"type": "monetary"}}}
    ]));
    std::fs::write(&bad, failing.to_string()).unwrap();
    let (code, stderr) = run_to_exit(&["--port", "0", "--fixtures", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("credit-emulator: --fixtures {}: ", bad.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("Fixture `grant` (fixtures[1]) failed"),
        "{stderr}"
    );
    assert!(stderr.contains("\"applied\""), "{stderr}");

    let missing = dir.join("missing.json");
    let (code, stderr) = run_to_exit(&["--port", "0", "--fixtures", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--fixtures"), "{stderr}");

    let huge = dir.join("huge.json");
    std::fs::write(&huge, vec![b' '; 2048]).unwrap();
    let (code, stderr) = run_to_exit(&[
        "--port",
        "0",
        "--max-body-bytes",
        "1024",
        "--fixtures",
        huge.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("more than --max-body-bytes (1024)"),
        "{stderr}"
    );

    // A key the API would refuse is refused by the command line.
    let (code, stderr) = run_to_exit(&["--port", "0", "--fixtures-key", "sk_live_1234"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("never accepts live keys"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

// ---- runs that stop part way ----

#[tokio::test]
async fn a_failing_fixture_stops_the_run_and_what_came_before_stays() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_failing").await;
    let r = emu.apply_json(
        &key,
        &file(json!([
            {"name": "customer", "path": "/v1/customers", "method": "post", "params": {"name": "Ada"}},
            {"name": "meter", "path": "/v1/billing/meters", "method": "post",
             "params": {"display_name": "Calls", "event_name": "calls", "default_aggregation": {"formula": "sum"}}},
            {"name": "grant", "path": "/v1/billing/credit_grants", "method": "post",
             "params": {"customer": "${customer:id}", "category": "promotional",
                        "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": -5}},
                        "applicability_config": {"scope": {"price_type": "metered"}}}},
            {"name": "product", "path": "/v1/products", "method": "post", "params": {"name": "Never made"}}
        ])),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_json_snapshot!("failing_fixture", r.body);
    // The customer and the meter stay; the product after the failure was never sent.
    let customer = r.body["error"]["applied"][0]["id"].as_str().unwrap();
    assert_eq!(customer_ids(&emu, &key).await, vec![customer.to_string()]);
    let meters = emu.get(&key, "/v1/billing/meters").await;
    assert_eq!(meters.body["data"].as_array().unwrap().len(), 1);
    let products = emu.get(&key, "/v1/products").await;
    assert_eq!(products.body["data"], json!([]));
}

#[tokio::test]
async fn a_native_failure_carries_the_native_error() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_native_failing").await;
    let r = emu.apply_json(
        &key,
        &file(json!([
            {"name": "plan", "path": "/v1/plans", "method": "post", "params": {"name": "Pro"}},
            {"name": "grant", "path": "/v1/creditgrants", "method": "post",
             "params": {"name": "Zero", "scope": "PLAN", "plan_id": "${plan:id}", "credits": "0",
                        "cadence": "ONETIME", "expiration_type": "NEVER"}}
        ])),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_json_snapshot!("native_failing_fixture", r.body);
}

#[tokio::test]
async fn a_field_missing_from_an_answer_stops_the_run_where_it_is_read() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_missing_field").await;
    let r = emu.apply_json(
        &key,
        &file(json!([
            {"name": "customer", "path": "/v1/customers", "method": "post", "params": {"name": "Ada"}},
            {"name": "second", "path": "/v1/customers", "method": "post",
             "params": {"name": "${customer:name}", "description": "${customer:test_clock}"}}
        ])),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_json_snapshot!("missing_field", r.body);
    assert_eq!(customer_ids(&emu, &key).await.len(), 1);

    // With a default, the same reference applies.
    let r = emu.apply_json(
        &key,
        &file(json!([
            {"name": "customer", "path": "/v1/customers", "method": "post", "params": {"name": "Ada"}},
            {"name": "second", "path": "/v1/customers", "method": "post",
             "params": {"name": "${customer:name}", "description": "${customer:test_clock|no clock}"}}
        ])),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = emu
        .get(
            &key,
            &format!("/v1/customers/{}", applied_id(&r.body, "second")),
        )
        .await;
    assert_eq!(second.body["name"], "Ada");
    assert_eq!(second.body["description"], "no clock");
}

// ---- refusals: nothing is applied ----

#[tokio::test]
async fn an_unknown_reference_is_refused_before_anything_is_applied() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_unknown_ref").await;
    let r = emu.apply_json(
        &key,
        &file(json!([
            {"name": "customer", "path": "/v1/customers", "method": "post", "params": {"name": "Ada"}},
            {"name": "grant", "path": "/v1/billing/credit_grants", "method": "post",
             "params": {"customer": "${custmer:id}"}}
        ])),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_json_snapshot!("unknown_reference", r.body);
    assert!(customer_ids(&emu, &key).await.is_empty());

    // A fixture may only read answers of fixtures before it, not its own nor later ones.
    let r = emu
        .apply_json(
            &key,
            &file(json!([
                {"name": "customer", "path": "/v1/customers/${later:id}", "method": "get"},
                {"name": "later", "path": "/v1/customers", "method": "post"}
            ])),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["param"], "fixtures[0][path]");
    assert!(customer_ids(&emu, &key).await.is_empty());
}

#[tokio::test]
async fn environment_references_with_and_without_the_variable() {
    const UNSET: &str = "CREDIT_EMULATOR_FIXTURES_TEST_UNSET_7Q2K";
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_env").await;
    let customer = |email: &str| {
        file(json!([
            {"name": "customer", "path": "/v1/customers", "method": "post",
             "params": {"name": "Env", "email": email}}
        ]))
    };

    // Unset, without a default: refused, nothing applied.
    let r = emu
        .apply_json(&key, &customer(&format!("${{.env:{UNSET}}}")))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_json_snapshot!("env_unset_without_default", r.body);
    assert!(customer_ids(&emu, &key).await.is_empty());

    // Unset, with a default: the default.
    let r = emu
        .apply_json(
            &key,
            &customer(&format!("${{.env:{UNSET}|fallback@example.com}}")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let made = emu
        .get(
            &key,
            &format!("/v1/customers/{}", applied_id(&r.body, "customer")),
        )
        .await;
    assert_eq!(made.body["email"], "fallback@example.com");

    // Set: see `a_set_variable_is_read_at_start`, which sets it for the binary alone (setting it
    // here would change the environment of every test running beside this one).
}

/// A variable set for the binary: its value, inside other text too, and over a default.
#[tokio::test]
async fn a_set_variable_is_read_at_start() {
    const VAR: &str = "CREDIT_EMULATOR_FIXTURES_TEST_EMAIL_7Q2K";
    let dir = std::env::temp_dir().join(format!("credit-emulator-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("env.json");
    let customer = file(json!([
        {"name": "customer", "path": "/v1/customers", "method": "post",
         "params": {"name": "Env", "email": format!("${{.env:{VAR}}}+${{.env:{VAR}|ignored}}@example.com")}}
    ]));
    std::fs::write(&path, customer.to_string()).unwrap();
    let path = path.to_str().unwrap();
    let (mut child, lines) = spawn(
        &[
            "--port",
            "0",
            "--fixtures",
            path,
            "--fixtures-key",
            "sk_test_env_set",
        ],
        &[(VAR, "set")],
        2,
    );
    assert_eq!(
        lines[1],
        format!("applied 1 fixtures from {path} to sk_test_env_set")
    );
    let emu = client_of(&lines[0]);
    let ids = customer_ids(&emu, "sk_test_env_set").await;
    let made = emu
        .get("sk_test_env_set", &format!("/v1/customers/{}", ids[0]))
        .await;
    assert_eq!(made.body["email"], "set+set@example.com");
    child.kill().ok();
    child.wait().ok();

    // The same file without the variable does not start.
    let (code, stderr) = run_to_exit(&["--port", "0", "--fixtures", path]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "reads the environment variable {VAR}, which is not set"
        )),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn malformed_files_are_refused_naming_the_fixture() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_malformed").await;
    let customer = json!({"name": "customer", "path": "/v1/customers", "method": "post"});
    let cases: Vec<(&str, String)> = vec![
        ("not_json", "{\"fixtures\": [".to_string()),
        ("empty", String::new()),
        ("array", "[]".to_string()),
        (
            "version_1",
            json!({"_meta": {"template_version": 1}, "fixtures": [customer]}).to_string(),
        ),
        (
            "version_text",
            json!({"_meta": {"template_version": "0"}, "fixtures": [customer]}).to_string(),
        ),
        ("fixtures_object", json!({"fixtures": {"a": 1}}).to_string()),
        ("fixtures_misspelt", json!({"fixture": [customer]}).to_string()),
        (
            "method_patch",
            file(json!([customer, {"name": "x", "path": "/v1/customers", "method": "patch"}]))
                .to_string(),
        ),
        (
            "method_missing",
            file(json!([{"name": "x", "path": "/v1/customers"}])).to_string(),
        ),
        (
            "path_outside",
            file(json!([{"name": "x", "path": "https://api.stripe.com/v1/customers", "method": "get"}]))
                .to_string(),
        ),
        (
            "path_nested",
            file(json!([{"name": "x", "path": "/_emulator/fixtures", "method": "post"}]))
                .to_string(),
        ),
        (
            "params_array",
            file(json!([{"name": "x", "path": "/v1/customers", "method": "post", "params": [1]}]))
                .to_string(),
        ),
        (
            "reference_unclosed",
            file(json!([customer, {"name": "x", "path": "/v1/customers/${customer:id", "method": "get"}]))
                .to_string(),
        ),
        (
            "reference_no_path",
            file(json!([customer, {"name": "x", "path": "/v1/customers/${customer}", "method": "get"}]))
                .to_string(),
        ),
        (
            "header_authorization",
            file(json!([{"name": "x", "path": "/v1/customers", "method": "get",
                         "headers": {"Authorization": "Bearer sk_test_other"}}]))
                .to_string(),
        ),
        (
            "api_base",
            file(json!([{"name": "x", "path": "/v1/customers", "method": "get",
                         "api_base": "https://meter-events.stripe.com"}]))
                .to_string(),
        ),
    ];
    let mut answers = serde_json::Map::new();
    for (name, body) in cases {
        let r = emu.apply(&key, &body).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        let error = r.body["error"].as_object().expect("Stripe's envelope");
        assert!(
            error
                .keys()
                .all(|k| ["message", "param", "type"].contains(&k.as_str())),
            "{name}: {}",
            r.text
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .ends_with("Nothing was applied."),
            "{name}: {}",
            r.text
        );
        answers.insert(name.to_string(), r.body);
    }
    assert_json_snapshot!("malformed", answers);
    assert!(customer_ids(&emu, &key).await.is_empty());

    let many: Vec<Value> = (0..1001).map(|_| customer.clone()).collect();
    let r = emu.apply_json(&key, &file(json!(many))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["param"], "fixtures");
    assert!(customer_ids(&emu, &key).await.is_empty());
}

// ---- what a fixture sends ----

#[tokio::test]
async fn params_are_sent_as_the_sdks_send_them() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_encoding").await;
    let r = emu
        .apply_json(
            &key,
            &file(json!([
                {"name": "customer", "path": "/v1/customers", "method": "post",
                 "params": {"name": "Zoë & Co = 100%", "preferred_locales": ["fr", "en"],
                            "metadata": {"nested key": "a+b", "count": 3, "ratio": 2.50, "on": true, "skip": null},
                            "address": {"city": "Paris", "line1": "1 rue de la Paix"}}},
                {"name": "other", "path": "/v1/customers", "method": "post", "params": {"name": "Other"}},
                {"name": "listed", "path": "/v1/customers?limit=1", "method": "get",
                 "params": {"email": null, "expand": ["data.test_clock"]}},
                {"name": "clock", "path": "/v1/test_helpers/test_clocks", "method": "post",
                 "params": {"frozen_time": T0, "name": "${listed:data.#} listed at ${time-now-RFC3339}"}},
                {"name": "found", "path": "/v1/customers/${customer:id}", "method": "get",
                 "params": {"expand": ["test_clock"]}},
                {"name": "gone", "path": "/v1/customers/${other:id}", "method": "delete"}
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_json_snapshot!("encoding_applied", r.body);

    let customer = emu
        .get(
            &key,
            &format!("/v1/customers/{}", applied_id(&r.body, "customer")),
        )
        .await;
    assert_eq!(customer.body["name"], "Zoë & Co = 100%");
    assert_eq!(customer.body["preferred_locales"], json!(["fr", "en"]));
    assert_eq!(
        customer.body["metadata"],
        json!({"nested key": "a+b", "count": "3", "ratio": "2.5", "on": "true"})
    );
    assert_eq!(customer.body["address"]["city"], "Paris");
    assert_eq!(customer.body["address"]["line1"], "1 rue de la Paix");

    let clock = emu
        .get(
            &key,
            &format!(
                "/v1/test_helpers/test_clocks/{}",
                applied_id(&r.body, "clock")
            ),
        )
        .await;
    // `limit=1` from the path's query and `expand[0]` from params, together; the world's clock.
    assert_eq!(clock.body["name"], "1 listed at 2025-06-15T00:00:00Z");

    // The delete was sent with the other customer's id in its path.
    assert_eq!(customer_ids(&emu, &key).await.len(), 1);
}

#[tokio::test]
async fn a_v2_fixture_sends_its_params_as_json() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_v2").await;
    let r = emu
        .apply_json(
            &key,
            &file(json!([
                {"name": "customer", "path": "/v1/customers", "method": "post", "params": {}},
                {"name": "meter", "path": "/v1/billing/meters", "method": "post",
                 "params": {"display_name": "Search", "event_name": "ai_search_api",
                            "default_aggregation": {"formula": "sum"}}},
                {"name": "event", "path": "/v2/billing/meter_events", "method": "post",
                 "params": {"event_name": "ai_search_api", "identifier": "idmp_1",
                            "payload": {"stripe_customer_id": "${customer:id}", "value": "25"}}}
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let usage = emu
        .get(
            &key,
            &format!(
                "/v1/billing/meters/{}/event_summaries?customer={}&start_time={}&end_time={}",
                applied_id(&r.body, "meter"),
                applied_id(&r.body, "customer"),
                T0 - 3_600,
                T0 + 3_600
            ),
        )
        .await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    assert_eq!(usage.body["data"][0]["aggregated_value"], 25);
}

#[tokio::test]
async fn references_fill_the_body_of_the_next_fixture() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_references").await;
    let r = emu.apply_json(
        &key,
        &file(json!([
            {"name": "customer", "path": "/v1/customers", "method": "post",
             "params": {"name": "Ada", "preferred_locales": ["fr", "en"], "metadata": {"count": 3}}},
            {"name": "second", "path": "/v1/customers", "method": "post",
             "params": {"name": "${customer:name} II",
                        "description": "${customer:preferred_locales.#} locales, first ${customer:preferred_locales.[0]}",
                        "metadata": {"uuid": "${generate-uuid}", "locales": "${customer:preferred_locales}",
                                     "count": "${customer:metadata.count}"}}}
        ])),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = emu
        .get(
            &key,
            &format!("/v1/customers/{}", applied_id(&r.body, "second")),
        )
        .await;
    assert_eq!(second.body["name"], "Ada II");
    assert_eq!(second.body["description"], "2 locales, first fr");
    assert_eq!(second.body["metadata"]["locales"], "[\"fr\",\"en\"]");
    assert_eq!(second.body["metadata"]["count"], "3");
    let uuid = second.body["metadata"]["uuid"].as_str().unwrap();
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(&uuid[14..15], "4", "{uuid}");
}

#[tokio::test]
async fn an_expected_error_lets_the_run_go_on() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_expected").await;
    let fixtures = |expected: &str| {
        file(json!([
            {"name": "missing", "path": "/v1/customers/cus_nobody", "method": "get",
             "expected_error_type": expected},
            {"name": "native_missing", "path": "/v1/creditgrants/cg_nobody", "method": "get",
             "expected_error_type": "not_found"},
            {"name": "customer", "path": "/v1/customers", "method": "post",
             "params": {"name": "${missing:error.code|after an error}"}}
        ]))
    };
    let r = emu
        .apply_json(&key, &fixtures("invalid_request_error"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_json_snapshot!("expected_error", r.body);
    let made = emu
        .get(
            &key,
            &format!("/v1/customers/{}", applied_id(&r.body, "customer")),
        )
        .await;
    assert_eq!(made.body["name"], "resource_missing");

    // Another type of error than the one expected stops the run.
    let r = emu.apply_json(&key, &fixtures("card_error")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["fixture"]["name"], "missing");
    assert_eq!(r.body["error"]["fixture"]["status"], 404);
    assert_eq!(customer_ids(&emu, &key).await.len(), 1);
}

#[tokio::test]
async fn the_connected_account_and_version_of_the_request_reach_every_fixture() {
    let started = Emu::start().await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_connect").await;
    let auth = format!("Bearer {key}");
    let connected = [
        ("authorization", auth.as_str()),
        ("stripe-account", "acct_fixtures"),
    ];
    let body = file(json!([
        {"name": "customer", "path": "/v1/customers", "method": "post", "params": {"name": "Ada"}},
        {"name": "keyed", "path": "/v1/customers", "method": "post", "params": {"name": "Once"},
         "idempotency_key": "create-${customer:id}"},
        {"name": "again", "path": "/v1/customers", "method": "post", "params": {"name": "Once"},
         "idempotency_key": "create-${customer:id}"}
    ]));
    let r = emu
        .send("POST", FIXTURES, &connected, &body.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The idempotent retry answered the first create again.
    assert_eq!(applied_id(&r.body, "keyed"), applied_id(&r.body, "again"));
    let customer = applied_id(&r.body, "customer");
    assert!(customer_ids(&emu, &key).await.is_empty());
    let found = emu
        .send("GET", &format!("/v1/customers/{customer}"), &connected, "")
        .await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.body["name"], "Ada");

    // An API version from before credit grant priorities does not know `priority`.
    let grant = file(json!([
        {"name": "grant", "path": "/v1/billing/credit_grants", "method": "post",
         "params": {"customer": customer, "category": "paid", "priority": 1,
                    "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 100}},
                    "applicability_config": {"scope": {"price_type": "metered"}}}}
    ]));
    let versioned = [
        connected[0],
        connected[1],
        ("stripe-version", "2024-12-18.acacia"),
    ];
    let r = emu
        .send("POST", FIXTURES, &versioned, &grant.to_string())
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["fixture"]["response"]["error"]["param"],
        "priority"
    );
    let r = emu
        .send("POST", FIXTURES, &connected, &grant.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn references_cannot_grow_a_request_past_the_body_limit() {
    let started = Emu::with_config(credit_emulator::Config {
        seed: Some(42),
        max_body_bytes: 4096,
        ..credit_emulator::Config::default()
    })
    .await;
    let emu = Client::of(&started);
    let key = started.tenant("fixtures_budget").await;
    let long = "x".repeat(300);
    let copies: serde_json::Map<String, Value> = (0..20)
        .map(|i| (format!("k{i}"), Value::from("${customer:description}")))
        .collect();
    let r = emu
        .apply_json(
            &key,
            &file(json!([
                {"name": "customer", "path": "/v1/customers", "method": "post",
                 "params": {"description": long}},
                {"name": "copies", "path": "/v1/customers", "method": "post",
                 "params": {"metadata": copies}}
            ])),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_json_snapshot!("budget", r.body);
    assert_eq!(customer_ids(&emu, &key).await.len(), 1);
}
