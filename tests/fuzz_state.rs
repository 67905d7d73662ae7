//! Property tests of `PUT /_emulator/state`, in process: the document of a world holding every
//! kind of object (both APIs', a test clock, invoices, subscriptions) with one to four random edits
//! (a value replaced by one of a hostile set, a field removed, a list element repeated or two
//! swapped), read into a world. Short by default; a long run:
//!
//! ```sh
//! PROPTEST_CASES=20000 cargo test --release --test suite fuzz_state::
//! ```
//!
//! For every document: no panic; the answer is 200 or the admin envelope's 400; a refused document
//! leaves the world exactly as it was; an accepted one holds together (its indexes and ledger check
//! out), exports again, and survives a year of its clocks (every scheduled event posted) and the
//! reads of both APIs without a panic.

use crate::support;

use credit_emulator::http::Reply;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::fuzz::{self as fs, BASE, KEY};

/// Where the edited documents go.
const TARGET: &str = "sk_test_fuzz_state_target";

/// The values an edit puts in place of another.
fn hostile() -> Vec<Value> {
    vec![
        Value::Null,
        json!(0),
        json!(-1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1.5),
        json!(""),
        json!("x"),
        json!("usd"),
        json!("-1"),
        json!("0"),
        json!("79228162514264337593543950335"),
        json!("1e30"),
        json!("00000000000000000000000001"),
        json!("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"),
        json!(true),
        json!([]),
        json!({}),
        json!({"frozen": i64::MAX}),
        json!("real"),
    ]
}

/// Every place in `v`: object fields and list elements, as paths of keys and indexes.
fn places(v: &Value, at: &mut Vec<PathPart>, out: &mut Vec<Vec<PathPart>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                at.push(PathPart::Key(k.clone()));
                out.push(at.clone());
                places(x, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                at.push(PathPart::Index(i));
                out.push(at.clone());
                places(x, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathPart {
    Key(String),
    Index(usize),
}

/// The parent of the place `path` names, and the last step to it.
fn parent<'a>(doc: &'a mut Value, path: &[PathPart]) -> Option<(&'a mut Value, PathPart)> {
    let (last, up) = path.split_last()?;
    let mut v = doc;
    for p in up {
        v = match p {
            PathPart::Key(k) => v.get_mut(k.as_str())?,
            PathPart::Index(i) => v.get_mut(*i)?,
        };
    }
    Some((v, last.clone()))
}

/// One edit: which place (by its number among all places), what to do, which hostile value.
#[derive(Debug, Clone)]
struct Edit {
    place: usize,
    action: u8,
    value: usize,
}

fn apply(doc: &mut Value, edit: &Edit, values: &[Value]) {
    let mut all = Vec::new();
    places(doc, &mut Vec::new(), &mut all);
    if all.is_empty() {
        return;
    }
    let path = all[edit.place % all.len()].clone();
    let Some((holder, last)) = parent(doc, &path) else {
        return;
    };
    let value = values[edit.value % values.len()].clone();
    match (edit.action % 4, holder, last) {
        (0, Value::Object(m), PathPart::Key(k)) => {
            m.insert(k, value);
        }
        (0, Value::Array(a), PathPart::Index(i)) => a[i] = value,
        (1, Value::Object(m), PathPart::Key(k)) => {
            m.remove(&k);
        }
        (1, Value::Array(a), PathPart::Index(i)) => {
            a.remove(i);
        }
        (2, Value::Array(a), PathPart::Index(i)) => {
            let copy = a[i].clone();
            a.push(copy);
        }
        (3, Value::Array(a), PathPart::Index(i)) => {
            let j = (i + 1) % a.len();
            a.swap(i, j);
        }
        (_, Value::Object(m), PathPart::Key(k)) => {
            // Another field takes this one's value.
            if let Some(v) = m.get(&k).cloned() {
                if let Some(other) = m.keys().find(|o| **o != k).cloned() {
                    m.insert(other, v);
                }
            }
        }
        _ => {}
    }
}

fn edit() -> impl Strategy<Value = Edit> {
    (any::<usize>(), any::<u8>(), any::<usize>()).prop_map(|(place, action, value)| Edit {
        place,
        action,
        value,
    })
}

fn request(
    app: &credit_emulator::App,
    method: &str,
    target: &str,
    body: &[u8],
) -> Result<Reply, TestCaseError> {
    let headers = vec![
        (
            "authorization".to_string(),
            format!("Bearer {TARGET}").into_bytes(),
        ),
        ("content-type".to_string(), b"application/json".to_vec()),
    ];
    fs::call_guarded(app, method, target, &headers, body).map_err(TestCaseError::fail)
}

fn dump(app: &credit_emulator::App) -> String {
    format!(
        "{}{:?}",
        app.store.tenant(TARGET).peek(|t| format!("{t:?}")),
        *app.idempotency.of(TARGET).lock()
    )
}

proptest! {
    #![proptest_config(fs::config(48))]

    #[test]
    fn edited_documents_are_refused_whole_or_hold_together(edits in proptest::collection::vec(edit(), 1..5)) {
        let (app, _) = fs::world();
        let original = app.export_world(KEY).expect("the fuzz world");
        let mut doc = serde_json::to_value(&original).expect("JSON");
        let values = hostile();
        for e in &edits {
            apply(&mut doc, e, &values);
        }
        let before = dump(&app);
        let answer = request(&app, "PUT", "/_emulator/state", doc.to_string().as_bytes())?;
        let body = fs::json(&answer);
        match answer.status {
            400 => {
                prop_assert!(body["error"]["message"].as_str().is_some_and(|m| m.starts_with("Invalid state document")), "{}", body);
                prop_assert_eq!(dump(&app), before, "a refused document changed the world");
            }
            200 => {
                let held = app.store.with_tenant(TARGET, |t| t.check_indexes());
                prop_assert_eq!(held, Ok(()));
                // A year of the tenant clock and of every test clock: everything scheduled posts.
                let year = BASE + 366 * 86_400;
                let moved = request(&app, "POST", "/_emulator/clock", format!("frozen_time={year}").as_bytes());
                prop_assert!(moved.is_ok(), "{:?}", moved.err());
                let clocks = request(&app, "GET", "/v1/test_helpers/test_clocks", b"")?;
                for c in fs::json(&clocks)["data"].as_array().cloned().unwrap_or_default() {
                    let id = c["id"].as_str().unwrap_or_default();
                    let r = request(&app, "POST", &format!("/v1/test_helpers/test_clocks/{id}/advance"), format!("frozen_time={year}").as_bytes());
                    prop_assert!(r.is_ok(), "{:?}", r.err());
                }
                for path in ["/v1/customers", "/v1/billing/credit_grants", "/v1/invoices", "/v1/subscriptions", "/v1/events", "/_emulator/state"] {
                    let r = request(&app, "GET", path, b"")?;
                    prop_assert!(r.status < 500, "{} {}", path, r.status);
                }
                let held = app.store.with_tenant(TARGET, |t| t.check_indexes());
                prop_assert_eq!(held, Ok(()));
            }
            other => prop_assert!(false, "status {}: {}", other, body),
        }
    }
}

/// The fuzz world itself goes through unedited, and comes out the same.
#[test]
fn the_unedited_document_goes_through() {
    let (app, _) = fs::world();
    let doc = app.export_world(KEY).expect("the fuzz world");
    let text = serde_json::to_vec(&doc).expect("JSON");
    let r = request(&app, "PUT", "/_emulator/state", &text).expect("no panic");
    // (request reports a panic as a failed case)
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let again = app.export_world(TARGET).expect("the copy");
    let mut a = serde_json::to_value(&doc).expect("JSON");
    let mut b = serde_json::to_value(&again).expect("JSON");
    for d in [&mut a, &mut b] {
        d["exported_at"] = Value::Null;
        d["world"]["name"] = Value::Null;
    }
    assert_eq!(a, b);
}
