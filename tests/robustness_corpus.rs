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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_corpus() {
    let emu = Emu::start().await;
    let addr = emu.running.addr;
    let w = rs::world(&emu, "corpus_stripe").await;
    let mut before = (
        rs::dump(&emu, &w.key, &w.clock).await,
        rs::dump(&emu, &w.other, &w.other_clock).await,
    );
    let cases = corpus("stripe.jsonl");
    let mut failures = Vec::new();
    let mut table = String::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for case in &cases {
        let (bytes, half_close) = rs::build(case, Api::Stripe, &w.vars);
        match rs::exchange(addr, bytes, half_close).await {
            None => failures.push(format!(
                "{}: the connection closed without an answer",
                case.id
            )),
            Some(raw) => {
                *statuses.entry(raw.status).or_default() += 1;
                if let Err(e) = rs::check_stripe(&raw, &case.expect) {
                    failures.push(format!("{}: {e}\n    {}", case.id, cut(&raw.text(), 300)));
                }
                let err = raw.json().map(|b| b["error"].clone()).unwrap_or_default();
                let field = |k: &str| {
                    err[k]
                        .as_str()
                        .map(|s| cut(s, 160))
                        .unwrap_or_else(|| "-".into())
                };
                table.push_str(&format!(
                    "{} | {} | {} | {} | {} | {}\n",
                    case.id,
                    raw.status,
                    field("type"),
                    field("code"),
                    field("param"),
                    field("message"),
                ));
            }
        }
        assert!(
            rs::healthy(addr).await,
            "{}: the server is not healthy afterwards",
            case.id
        );
        let after = (
            rs::dump(&emu, &w.key, &w.clock).await,
            rs::dump(&emu, &w.other, &w.other_clock).await,
        );
        if after != before {
            failures.push(format!("{}: tenant state changed", case.id));
            before = after;
        }
    }
    eprintln!(
        "stripe corpus: {} cases, statuses {statuses:?}",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    insta::assert_snapshot!("stripe_corpus", table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_corpus() {
    let emu = Emu::start().await;
    let addr = emu.running.addr;
    let w = rs::world(&emu, "corpus_native").await;
    let mut before = (
        rs::dump(&emu, &w.key, &w.clock).await,
        rs::dump(&emu, &w.other, &w.other_clock).await,
    );
    let cases = corpus("native.jsonl");
    let mut failures = Vec::new();
    let mut stub_answers = 0;
    for case in &cases {
        let (bytes, half_close) = rs::build(case, Api::Native, &w.vars);
        match rs::exchange(addr, bytes, half_close).await {
            None => failures.push(format!(
                "{}: the connection closed without an answer",
                case.id
            )),
            Some(raw) => {
                if let Err(e) = rs::check_native(&raw, &case.expect) {
                    // TODO(native merge): the native facade is a stub answering gin's plain 404 to
                    // everything. Once it is merged, delete this allowance so that every case must
                    // get its documented answer, and snapshot the results as the Stripe corpus does.
                    if rs::is_gin_404(&raw) && !case.expect.strict {
                        stub_answers += 1;
                    } else {
                        failures.push(format!("{}: {e}\n    {}", case.id, cut(&raw.text(), 300)));
                    }
                }
            }
        }
        assert!(
            rs::healthy(addr).await,
            "{}: the server is not healthy afterwards",
            case.id
        );
        let after = (
            rs::dump(&emu, &w.key, &w.clock).await,
            rs::dump(&emu, &w.other, &w.other_clock).await,
        );
        if after != before {
            failures.push(format!("{}: tenant state changed", case.id));
            before = after;
        }
    }
    eprintln!(
        "native corpus: {} cases, {stub_answers} answered by the stub's plain 404",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
