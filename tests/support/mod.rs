//! The one support module of the integration tests: a real emulator on a real socket and a thin
//! HTTP client (here), the native API's helpers ([`native`]), raw-socket clients, the corpus format
//! and state fingerprints ([`robustness`]), in-process property-test drivers ([`fuzz`]), and
//! async-stripe helpers ([`sdk`]). A test file says `mod support;` and uses what it needs.
//!
//! Every test starts its own server (port 0, fixed `--seed`) and uses its own API key, then freezes
//! that tenant's clock at [`T0`], so ids and times in responses are deterministic and snapshots are
//! stable without redactions.

#![allow(dead_code)]

pub mod fuzz;
pub mod native;
pub mod robustness;
pub mod sdk;

use std::net::SocketAddr;

use credit_emulator::{start, Config, Running};
use serde_json::Value;

/// The instant every test tenant's clock is frozen at: 2025-06-15T00:00:00Z. A tenant in which
/// nothing has been created yet may start at any instant; after that its clock only moves forward.
pub const T0: i64 = 1_749_945_600;

/// A response: status, headers and parsed JSON body (`Value::Null` if the body is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `body["id"]` as a string.
    pub fn id(&self) -> String {
        self.body["id"].as_str().unwrap_or_default().to_string()
    }
}

/// A running emulator and a client.
pub struct Emu {
    pub running: Running,
    pub client: reqwest::Client,
}

impl Emu {
    /// Starts an emulator with the default configuration and seed 42.
    pub async fn start() -> Emu {
        Self::with_config(Config {
            seed: Some(42),
            ..Config::default()
        })
        .await
    }

    /// Starts an emulator with `config`.
    pub async fn with_config(config: Config) -> Emu {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let running = start(addr, config).await.expect("emulator starts");
        Emu {
            running,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.running.url(), path)
    }

    /// A Stripe-authenticated request with a form body (which may be empty).
    pub async fn stripe(&self, method: &str, key: &str, path: &str, form: &str) -> Resp {
        self.stripe_with(method, key, path, form, &[]).await
    }

    /// As [`Emu::stripe`], with extra headers.
    pub async fn stripe_with(
        &self,
        method: &str,
        key: &str,
        path: &str,
        form: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self
            .client
            .request(method.clone(), self.url(path))
            .bearer_auth(key);
        if !form.is_empty() {
            rb = rb
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.to_string());
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        send(rb).await
    }

    /// `POST` with a form body, Stripe auth.
    pub async fn post(&self, key: &str, path: &str, form: &str) -> Resp {
        self.stripe("POST", key, path, form).await
    }

    /// `GET` (put parameters in the path's query string), Stripe auth.
    pub async fn get(&self, key: &str, path: &str) -> Resp {
        self.stripe("GET", key, path, "").await
    }

    /// `DELETE`, Stripe auth.
    pub async fn delete(&self, key: &str, path: &str) -> Resp {
        self.stripe("DELETE", key, path, "").await
    }

    /// A raw request with no auth added.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.client.request(method, self.url(path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if !body.is_empty() {
            rb = rb.body(body.to_string());
        }
        send(rb).await
    }

    /// A native (JSON, `x-api-key`) request.
    pub async fn native(&self, method: &str, key: &str, path: &str, body: Option<&Value>) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self
            .client
            .request(method, self.url(path))
            .header("x-api-key", key);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        send(rb).await
    }

    /// Freezes `key`'s tenant clock at `secs`.
    pub async fn freeze(&self, key: &str, secs: i64) {
        let r = self
            .post(key, "/_emulator/clock", &format!("frozen_time={secs}"))
            .await;
        assert_eq!(r.status, 200, "freeze clock: {}", r.text);
    }

    /// A new tenant key for this test with its clock frozen at [`T0`].
    pub async fn tenant(&self, name: &str) -> String {
        let key = format!("sk_test_{name}");
        self.freeze(&key, T0).await;
        key
    }

    /// Creates a test clock frozen at `frozen_time` and returns its id.
    pub async fn test_clock(&self, key: &str, frozen_time: i64) -> String {
        let r = self
            .post(
                key,
                "/v1/test_helpers/test_clocks",
                &format!("frozen_time={frozen_time}"),
            )
            .await;
        assert_eq!(r.status, 200, "create test clock: {}", r.text);
        r.id()
    }

    /// Advances test clock `clock` to `frozen_time` and returns the clock as answered.
    pub async fn advance_clock(&self, key: &str, clock: &str, frozen_time: i64) -> Value {
        let r = self
            .post(
                key,
                &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
                &format!("frozen_time={frozen_time}"),
            )
            .await;
        assert_eq!(r.status, 200, "advance test clock: {}", r.text);
        r.body
    }

    /// Creates a Stripe customer and returns its id.
    pub async fn customer(&self, key: &str, form: &str) -> String {
        let r = self.post(key, "/v1/customers", form).await;
        assert_eq!(r.status, 200, "create customer: {}", r.text);
        r.id()
    }

    /// Creates a metered, usd credit grant of `value` cents plus `extra` form fields; returns its id.
    pub async fn grant(&self, key: &str, customer: &str, value: i64, extra: &str) -> String {
        let mut form = format!(
            "customer={customer}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]={value}"
        );
        if !extra.contains("applicability_config") {
            form.push_str("&applicability_config[scope][price_type]=metered");
        }
        if !extra.is_empty() {
            form.push('&');
            form.push_str(extra);
        }
        let r = self.post(key, "/v1/billing/credit_grants", &form).await;
        assert_eq!(r.status, 200, "create grant: {}", r.text);
        r.id()
    }
}

impl Emu {
    /// Creates a `sum` meter of `event_name` and a monthly metered usd price of 5 cents a unit on
    /// it (a price a grant's scope may name); returns the price's id.
    pub async fn metered_price(&self, key: &str, event_name: &str) -> String {
        let meter = self
            .post(
                key,
                "/v1/billing/meters",
                &format!(
                    "display_name={event_name}&event_name={event_name}&default_aggregation[formula]=sum"
                ),
            )
            .await;
        assert_eq!(meter.status, 200, "create meter: {}", meter.text);
        let price = self
            .post(
                key,
                "/v1/prices",
                &format!(
                    "currency=usd&unit_amount=5&product_data[name]={event_name}&recurring[interval]=month\
                     &recurring[usage_type]=metered&recurring[meter]={}",
                    meter.id()
                ),
            )
            .await;
        assert_eq!(price.status, 200, "create price: {}", price.text);
        price.id()
    }

    /// Tries to create a metered usd grant of 1 for `customer` and returns the raw response.
    pub async fn grant_raw(&self, key: &str, customer: &str) -> Resp {
        let form = format!(
            "customer={customer}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1&applicability_config[scope][price_type]=metered"
        );
        self.post(key, "/v1/billing/credit_grants", &form).await
    }
}

async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.expect("request reaches the emulator");
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
