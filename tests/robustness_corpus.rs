//! The hostile-input corpus (`tests/corpus/{stripe,native}/*.json`, format in `tests/corpus/README.md`), run over a
//! real socket with a raw HTTP client: every case must get its expected 4xx in its API's envelope,
//! the server must stay healthy, and neither tenant the corpus touches may change.

use crate::support;

use std::collections::BTreeMap;

use support::robustness::{self as rs, Api};
use support::Emu;

/// Every case of one API's corpus (`tests/corpus/{api}/*.json`, one case a file), in file order.
fn corpus(api: &str) -> Vec<rs::Case> {
    let dir = format!("{}/tests/corpus/{api}", env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| rs::load_case(p)).collect()
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
    let stripe = corpus("stripe").len();
    let native = corpus("native").len();
    assert!(stripe >= 300, "stripe corpus has {stripe} cases");
    assert!(
        stripe + native >= 450,
        "corpus has {} cases",
        stripe + native
    );
}

/// What one API's corpus run needs besides the cases: how to check an answer, and how to write it
/// as the one line its snapshot holds.
struct Runner {
    api: Api,
    check: fn(&rs::Raw, &rs::Expect) -> Result<(), String>,
    row: fn(&rs::Raw) -> String,
}

/// Runs every case of the corpus as `runner.api` over a raw socket against one fresh emulator,
/// through `insta::glob!` so that each case file has its own snapshot (`{test}@{case}.json.snap`),
/// the case's answer as one line. Each answer must pass `check`, the server must stay healthy, and
/// neither tenant may change (whole model state after every case, both APIs' views before and after
/// the run). `glob!` runs the cases in file-name order.
fn run_corpus(api_dir: &str, runner: Runner, glob: impl FnOnce(&mut dyn FnMut(&std::path::Path))) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let emu = rt.block_on(Emu::start());
    let addr = emu.running.addr;
    let w = rt.block_on(rs::world(&emu, &format!("corpus_{api_dir}")));
    let views = rt.block_on(async {
        (
            rs::dump(&emu, &w.key, &w.clock).await,
            rs::dump(&emu, &w.other, &w.other_clock).await,
        )
    });
    let mut before = (
        rs::fingerprint(&emu, &w.key),
        rs::fingerprint(&emu, &w.other),
    );
    let mut failures = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut count = 0;
    glob(&mut |path| {
        count += 1;
        let case = rs::load_case(path);
        let (bytes, half_close) = rs::build(&case, runner.api, &w.vars);
        let answer = rt.block_on(rs::exchange(addr, bytes, half_close));
        let row = match answer {
            None => {
                failures.push(format!(
                    "{}: the connection closed without an answer",
                    case.id
                ));
                "no answer".to_string()
            }
            Some(raw) => {
                *statuses.entry(raw.status).or_default() += 1;
                if let Err(e) = (runner.check)(&raw, &case.expect) {
                    failures.push(format!("{}: {e}\n    {}", case.id, cut(&raw.text(), 300)));
                }
                format!("{} | {}", case.id, (runner.row)(&raw))
            }
        };
        insta::assert_snapshot!(format!("{api_dir}_corpus"), row);
        assert!(
            rt.block_on(rs::healthy(addr)),
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
    });
    // Both APIs' views of both tenants, ledger included, are as they were before the first case.
    let views_after = rt.block_on(async {
        (
            rs::dump(&emu, &w.key, &w.clock).await,
            rs::dump(&emu, &w.other, &w.other_clock).await,
        )
    });
    if views_after != views {
        failures.push("the API views of the tenants changed over the run".to_string());
    }
    eprintln!("{api_dir}: {count} cases, statuses {statuses:?}");
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn stripe() {
    let runner = Runner {
        api: Api::Stripe,
        check: rs::check_stripe,
        row: stripe_row,
    };
    run_corpus("stripe", runner, |each| {
        insta::glob!("corpus/stripe", "*.json", |path| each(path));
    });
}

#[test]
fn native() {
    let runner = Runner {
        api: Api::Native,
        check: rs::check_native,
        row: native_row,
    };
    run_corpus("native", runner, |each| {
        insta::glob!("corpus/native", "*.json", |path| each(path));
    });
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
