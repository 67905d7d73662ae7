//! The hostile-input corpus (`tests/corpus/*.jsonl`, format in `tests/corpus/README.md`), run over a
//! real socket with a raw HTTP client: every case must get its expected 4xx in its API's envelope,
//! the server must stay healthy, and neither tenant the corpus touches may change.

mod common;
mod robustness_support;

use std::collections::BTreeMap;

use common::Emu;
use robustness_support::{self as rs, Api};

fn corpus(name: &str) -> Vec<rs::Case> {
    rs::load(&format!(
        "{}/tests/corpus/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// The first `n` characters, control characters escaped so that the snapshot stays text.
fn cut(s: &str, n: usize) -> String {
    let mut out: String = s
        .chars()
        .take(n)
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

/// The two corpora hold at least 300 cases together, as promised in ROBUSTNESS.md.
#[test]
fn corpus_size() {
    let stripe = corpus("stripe.jsonl").len();
    let native = corpus("native.jsonl").len();
    assert!(stripe >= 300, "stripe corpus has {stripe} cases");
    assert!(
        stripe + native >= 450,
        "corpus has {} cases",
        stripe + native
    );
}

/// Runs every case of `file` as `api` over a raw socket against a fresh emulator: each answer must
/// pass `check`, the server must stay healthy, and neither tenant may change (whole model state after
/// every case, both APIs' views before and after the run). Returns the table of answers, one `row`
/// per case, for the snapshot.
async fn run_corpus(
    file: &str,
    api: Api,
    check: fn(&rs::Raw, &rs::Expect) -> Result<(), String>,
    row: fn(&rs::Raw) -> String,
) -> String {
    let emu = Emu::start().await;
    let addr = emu.running.addr;
    let w = rs::world(&emu, &format!("corpus_{}", file.trim_end_matches(".jsonl"))).await;
    let views = (
        rs::dump(&emu, &w.key, &w.clock).await,
        rs::dump(&emu, &w.other, &w.other_clock).await,
    );
    let mut before = (
        rs::fingerprint(&emu, &w.key),
        rs::fingerprint(&emu, &w.other),
    );
    let cases = corpus(file);
    let mut failures = Vec::new();
    let mut table = String::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for case in &cases {
        let (bytes, half_close) = rs::build(case, api, &w.vars);
        match rs::exchange(addr, bytes, half_close).await {
            None => failures.push(format!(
                "{}: the connection closed without an answer",
                case.id
            )),
            Some(raw) => {
                *statuses.entry(raw.status).or_default() += 1;
                if let Err(e) = check(&raw, &case.expect) {
                    failures.push(format!("{}: {e}\n    {}", case.id, cut(&raw.text(), 300)));
                }
                table.push_str(&format!("{} | {}\n", case.id, row(&raw)));
            }
        }
        assert!(
            rs::healthy(addr).await,
            "{}: the server is not healthy afterwards",
            case.id
        );
        let after = (
            rs::fingerprint(&emu, &w.key),
            rs::fingerprint(&emu, &w.other),
        );
        if after != before {
            failures.push(format!("{}: tenant state changed", case.id));
            before = after;
        }
    }
    // Both APIs' views of both tenants, ledger included, are as they were before the first case.
    let views_after = (
        rs::dump(&emu, &w.key, &w.clock).await,
        rs::dump(&emu, &w.other, &w.other_clock).await,
    );
    if views_after != views {
        failures.push("the API views of the tenants changed over the run".to_string());
    }
    eprintln!("{file}: {} cases, statuses {statuses:?}", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    table
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_corpus() {
    let table = run_corpus("stripe.jsonl", Api::Stripe, rs::check_stripe, stripe_row).await;
    insta::assert_snapshot!("stripe_corpus", table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_corpus() {
    let table = run_corpus("native.jsonl", Api::Native, rs::check_native, native_row).await;
    insta::assert_snapshot!("native_corpus", table);
}

/// One line of the Stripe table: status, then the error's type, code, param and message.
fn stripe_row(raw: &rs::Raw) -> String {
    let err = raw.json().map(|b| b["error"].clone()).unwrap_or_default();
    let field = |k: &str| {
        err[k]
            .as_str()
            .map(|s| cut(s, 160))
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "{} | {} | {} | {} | {}",
        raw.status,
        field("type"),
        field("code"),
        field("param"),
        field("message"),
    )
}

/// One line of the native table: the status, then what kind of answer it was (the envelope's code,
/// gin's raw auth error, gin's plain text, or a success), its message, and its details.
fn native_row(raw: &rs::Raw) -> String {
    let Some(body) = raw.json() else {
        return format!("{} | text | {}", raw.status, cut(&raw.text(), 160));
    };
    if (200..300).contains(&raw.status) {
        let shape = match &body {
            serde_json::Value::Array(a) => format!("array of {}", a.len()),
            v => match v["items"].as_array() {
                Some(items) => format!("list of {}", items.len()),
                None => "object".to_string(),
            },
        };
        return format!("{} | ok | {shape}", raw.status);
    }
    if let Some(e) = body["error"].as_str() {
        return format!("{} | auth | {}", raw.status, cut(e, 160));
    }
    let field = |k: &str| {
        body[k]
            .as_str()
            .map(|s| cut(s, 160))
            .unwrap_or_else(|| "-".into())
    };
    let details = match body.get("details") {
        Some(d) => cut(&d.to_string(), 160),
        None => "-".to_string(),
    };
    format!(
        "{} | {} | {} | {details}",
        raw.status,
        field("code"),
        field("message")
    )
}
