//! The emulator inside a Rust program: start it, give clients its URI, grant credit that becomes
//! effective in an hour, move the clock, read the balance, stop.
//!
//! ```sh
//! cargo run --example embedded
//! ```

use std::time::Duration;

use credit_emulator::Emulator;
use serde_json::Value;

/// Any test key names a world of its own.
const KEY: &str = "sk_test_embedded";

/// 2026-01-01T00:00:00Z.
const NEW_YEAR: i64 = 1_767_225_600;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::builder().seed(1).start().await?;
    println!("emulator listening on {}", emulator.uri());

    // A fresh tenant may start at any instant; pin it so the output is the same on every run.
    emulator.set_clock(KEY, NEW_YEAR)?;

    let http = reqwest::Client::new();
    let post = |path: &str, form: Vec<(&str, String)>| {
        http.post(format!("{}{path}", emulator.uri()))
            .bearer_auth(KEY)
            .form(&form)
            .send()
    };
    let customer: Value = post("/v1/customers", vec![("email", "ada@example.com".into())])
        .await?
        .error_for_status()?
        .json()
        .await?;
    let customer = customer["id"].as_str().unwrap_or_default().to_string();
    println!("customer {customer}");

    let grant: Value = post(
        "/v1/billing/credit_grants",
        vec![
            ("customer", customer.clone()),
            ("amount[type]", "monetary".into()),
            ("amount[monetary][currency]", "usd".into()),
            ("amount[monetary][value]", "2500".into()),
            ("applicability_config[scope][price_type]", "metered".into()),
            ("effective_at", (NEW_YEAR + 3600).to_string()),
        ],
    )
    .await?
    .error_for_status()?
    .json()
    .await?;
    println!(
        "credit grant {} effective at {}",
        grant["id"].as_str().unwrap_or_default(),
        grant["effective_at"]
    );

    let available = |customer: String| {
        let request = http
            .get(format!(
                "{}/v1/billing/credit_balance_summary",
                emulator.uri()
            ))
            .bearer_auth(KEY)
            .query(&[
                ("customer", customer.as_str()),
                ("filter[type]", "applicability_scope"),
                ("filter[applicability_scope][price_type]", "metered"),
            ]);
        async move {
            let summary: Value = request.send().await?.error_for_status()?.json().await?;
            Ok::<_, reqwest::Error>(summary["balances"][0]["available_balance"]["monetary"].clone())
        }
    };
    println!("available now: {}", available(customer.clone()).await?);

    let now = emulator.advance(KEY, Duration::from_secs(3600))?;
    println!("clock advanced to {now}");
    println!("available now: {}", available(customer).await?);

    emulator.shutdown().await;
    println!("stopped");
    Ok(())
}
