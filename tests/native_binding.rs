//! The native facade's plumbing over a real socket: JSON bodies bound as gin binds them into Go
//! structs (repeated keys, nulls, numbers as decimals, ignored fields still checked as JSON, the
//! nesting limit), and the route table (every row reachable, native paths claimed without a key).

use crate::support;

use credit_emulator::native::ROUTES;
use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::native::*;
use support::Emu;

/// A raw JSON body with `x-api-key`, so that the bytes sent are exactly `body`.
async fn send(emu: &Emu, key: &str, method: &str, path: &str, body: &str) -> Value {
    let headers = [("x-api-key", key), ("content-type", "application/json")];
    outcome(&emu.raw(method, path, &headers, body).await)
}

#[tokio::test]
async fn bodies_bind_as_gin_binds_them() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_binding").await;
    let plan = plan(&emu, &key, "Binding").await;
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let customer = |body: String| {
        let (emu, key) = (&emu, &key);
        async move { send(emu, key, "POST", "/v1/customers", &body).await }
    };
    let grant = |credits: &str| {
        format!(
            r#"{{"name":"G","scope":"PLAN","plan_id":"{plan}","credits":{credits},"cadence":"ONETIME","expiration_type":"NEVER"}}"#
        )
    };
    let out = json!({
        // The last of repeated keys wins, also over an earlier value of the wrong type.
        "repeated_key": customer(r#"{"external_id":"first","external_id":"last"}"#.into()).await,
        "wrong_then_right": customer(r#"{"external_id":"b","name":1,"name":"Ada"}"#.into()).await,
        "right_then_wrong": customer(r#"{"external_id":"c","name":"Ada","name":1}"#.into()).await,
        // Metadata keeps the last value of a repeated key, null is "", and the answer lists the
        // keys sorted, as Go marshals a map.
        "metadata_order": customer(r#"{"external_id":"d","metadata":{"z":"1","a":null,"z":"2"}}"#.into()).await,
        "metadata_number": customer(r#"{"external_id":"e","metadata":{"a":1}}"#.into()).await,
        // null is absent, so a null body binds nothing and the required field is missing.
        "null_body": customer("null".into()).await,
        "null_field": customer(r#"{"external_id":null}"#.into()).await,
        // Fields the request does not have are ignored, but still read as JSON.
        "unknown_fields": customer(r#"{"external_id":"f","nickname":{"a":[1,2,{"b":null}]}}"#.into()).await,
        "unknown_lone_surrogate": customer(r#"{"external_id":"g","nickname":"\ud800"}"#.into()).await,
        "unknown_number_out_of_range": customer(r#"{"external_id":"h","nickname":1e400}"#.into()).await,
        "trailing_garbage": customer(r#"{"external_id":"i"} x"#.into()).await,
        // Nesting past the limit is reported before any type, and before anything is stored.
        "unknown_too_deep": customer(format!(r#"{{"external_id":"j","nickname":{}}}"#, deep(40))).await,
        "wrong_type_and_too_deep": customer(format!(r#"{{"name":1,"nickname":{}}}"#, deep(40))).await,
        "past_the_parser_limit": customer(format!(r#"{{"nickname":{}}}"#, deep(200))).await,
        // Decimals take numbers in any JSON spelling, read through their text.
        "credits_exponent": send(&emu, &key, "POST", "/v1/creditgrants", &grant("1e2")).await,
        "credits_fraction": send(&emu, &key, "POST", "/v1/creditgrants", &grant("2.50")).await,
        "credits_string": send(&emu, &key, "POST", "/v1/creditgrants", &grant(r#""0.125""#)).await,
        "credits_bool": send(&emu, &key, "POST", "/v1/creditgrants", &grant("true")).await,
    });
    assert_json_snapshot!("binding_edges", out);
    // Nothing refused was stored: the customers are exactly the accepted ones.
    let listed = get(&emu, &key, "/v1/customers?order=asc").await;
    let external: Vec<&str> = listed.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c["external_id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(external, ["last", "b", "d", "f"]);
}

/// A request for `pattern` with its `{id}` filled in.
fn path_of(pattern: &str) -> String {
    pattern.replace("{id}", "x_1")
}

#[tokio::test]
async fn every_route_in_the_table_is_served() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_routes").await;
    let mut rows = Vec::new();
    for route in ROUTES {
        let method = route.method.as_str();
        let path = path_of(route.pattern);
        let body = if method == "GET" { "" } else { "{}" };
        let with_key = emu
            .raw(
                method,
                &path,
                &[("x-api-key", &key), ("content-type", "application/json")],
                body,
            )
            .await;
        // Every row answers JSON from its operation, never the router's plain 404.
        assert!(
            with_key.body.is_object() || with_key.body.is_array(),
            "{method} {path}: {}",
            with_key.text
        );
        let without_key = emu.raw(method, &path, &[], body).await;
        // A path only the native API has is native without a key too: Flexprice's raw 401. A path
        // the Stripe facade shares is Stripe's without one.
        let native_401 = without_key.body == json!({"error": "Unauthorized"});
        assert_eq!(
            native_401, !route.shared,
            "{method} {path}: {}",
            without_key.text
        );
        // A method the table does not have for this path is the router's 404.
        let other = emu.raw("PATCH", &path, &[("x-api-key", &key)], "").await;
        assert_eq!(
            (other.status, other.text.as_str()),
            (404, "404 page not found")
        );
        rows.push(json!({
            "route": format!("{method} {}", route.pattern),
            "with_key": with_key.status,
            "without_key": without_key.status,
            "native_without_key": native_401,
        }));
    }
    assert_json_snapshot!("route_table", rows);
}

#[tokio::test]
async fn paths_under_native_roots_are_native_whatever_follows() {
    let emu = Emu::start().await;
    let mut out = Vec::new();
    for path in [
        // Native roots: anything under them is the native router's, which has no such route.
        "/v1/plans/x_1/creditgrants/extra",
        "/v1/creditgrants/",
        "/v1/wallets",
        "/v1/addons/x_1",
        // Under the shared customers root, only the native routes' own shapes are native.
        "/v1/customers//wallets",
        "/v1/customers/x_1/grants",
        "/v1/customers/x_1/wallets/extra",
    ] {
        out.push(json!({"path": path, "answer": outcome(&emu.raw("GET", path, &[], "").await)}));
    }
    assert_json_snapshot!("native_roots", out);
}
