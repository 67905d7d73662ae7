//! Property tests of the form decoder (`credit_emulator::form`), in place of cargo-fuzz (which needs a
//! nightly toolchain). Short by default; a long run:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --release --test suite fuzz_form::
//! ```
//!
//! - any bytes decode to a tree or an error, never a panic, and a tree respects the limits;
//! - any tree the Stripe encoding can express survives encode → decode unchanged, with raw or
//!   `%5B`-encoded brackets and `+` or `%20` for spaces.

use credit_emulator::form::{parse_into, FormError, FormLimits, Node, Params};
use proptest::prelude::*;
use proptest::test_runner::{contextualize_config, Config};

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> Config {
    contextualize_config(Config {
        cases,
        ..Config::default()
    })
}

fn decode(input: &[u8], limits: &FormLimits) -> Result<Params, FormError> {
    let mut root = Params::default();
    let mut count = 0;
    parse_into(&mut root, input, limits, &mut count).map(|()| root)
}

/// Bytes that matter to the decoder, and a few that do not.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"[]%=&+".to_vec()),
        3 => prop::sample::select(b"0123456789abcdefABCDEFgz".to_vec()),
        1 => prop::sample::select(vec![0u8, b' ', b'\r', b'\n', 0x7f, 0x80, 0xc3, 0xa9, 0xed, 0xff]),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..300)
}

/// Leaves of a tree.
fn depth(node: &Node) -> usize {
    match node {
        Node::Value(_) => 0,
        Node::Map(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Node::List(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
    }
}

fn leaves(node: &Node) -> usize {
    match node {
        Node::Value(_) => 1,
        Node::Map(m) => m.values().map(leaves).sum(),
        Node::List(items) => items.iter().map(leaves).sum(),
    }
}

// ---- the encoder the SDKs use, with the choices they differ on ----

/// Percent-encodes all but unreserved characters; spaces as `+` or `%20`.
fn enc(s: &str, plus: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
struct Style {
    encoded_brackets: bool,
    plus: bool,
}

fn encode(params: &Params, style: Style) -> String {
    let (open, close) = if style.encoded_brackets {
        ("%5B", "%5D")
    } else {
        ("[", "]")
    };
    fn walk(
        prefix: &str,
        node: &Node,
        style: Style,
        brackets: (&str, &str),
        out: &mut Vec<String>,
    ) {
        let (open, close) = brackets;
        match node {
            Node::Value(v) => out.push(format!("{prefix}={}", enc(v, style.plus))),
            Node::Map(m) => {
                for (k, v) in m {
                    walk(
                        &format!("{prefix}{open}{}{close}", enc(k, style.plus)),
                        v,
                        style,
                        brackets,
                        out,
                    );
                }
            }
            Node::List(items) => {
                for item in items {
                    walk(
                        &format!("{prefix}{open}{close}"),
                        item,
                        style,
                        brackets,
                        out,
                    );
                }
            }
        }
    }
    let mut out = Vec::new();
    for (k, v) in params {
        walk(&enc(k, style.plus), v, style, (open, close), &mut out);
    }
    out.join("&")
}

/// A name the encoding can carry: no brackets (Rack has the same rule), not empty.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z_]{1,8}",
        1 => "[0-9]{1,3}",
        1 => "[^\\[\\]]{1,6}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-zA-Z0-9_.@-]{0,12}",
        1 => "\\PC{0,10}",
        1 => ".{0,6}",
        1 => Just(String::new()),
    ]
}

/// Hashes in an appended list (`a[][k]=…`) start a new item when a key repeats, so each item leads
/// with the same key and holds only strings.
fn list_of_hashes() -> impl Strategy<Value = Node> {
    (
        name(),
        prop::collection::vec(
            (value(), prop::collection::vec((name(), value()), 0..3)),
            1..4,
        ),
    )
        .prop_map(|(first, items)| {
            Node::List(
                items
                    .into_iter()
                    .map(|(v, rest)| {
                        let mut m = Params::default();
                        m.insert(first.clone(), Node::Value(v));
                        for (k, v) in rest {
                            if k != first {
                                m.insert(k, Node::Value(v));
                            }
                        }
                        Node::Map(m)
                    })
                    .collect(),
            )
        })
}

fn node(levels: u32) -> BoxedStrategy<Node> {
    let leaf = value().prop_map(Node::Value);
    if levels == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => prop::collection::vec(value().prop_map(Node::Value), 1..4).prop_map(Node::List),
        1 => list_of_hashes(),
        2 => prop::collection::vec((name(), node(levels - 1)), 1..4)
            .prop_map(|kv| Node::Map(kv.into_iter().collect())),
    ]
    .boxed()
}

fn tree() -> impl Strategy<Value = Params> {
    prop::collection::vec((name(), node(3)), 1..6).prop_map(|kv| kv.into_iter().collect())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes_decode_or_fail_cleanly(input in hostile_bytes(), max_params in 1usize..40, max_depth in 1usize..10) {
        let limits = FormLimits { max_params, max_depth };
        match decode(&input, &limits) {
            Ok(tree) => {
                let n: usize = tree.values().map(leaves).sum();
                prop_assert!(n <= max_params, "{n} leaves over a limit of {max_params}");
                for node in tree.values() {
                    prop_assert!(depth(node) <= max_depth, "deeper than {max_depth}");
                }
            }
            Err(FormError::TooManyParams { limit }) => prop_assert_eq!(limit, max_params),
            Err(FormError::TooDeep { limit, .. }) => prop_assert_eq!(limit, max_depth),
            Err(FormError::BadEncoding) | Err(FormError::Conflict { .. }) => {}
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode(&input, &FormLimits::default());
    }

    #[test]
    fn what_the_sdks_encode_decodes_to_the_same_tree(t in tree(), encoded_brackets: bool, plus: bool) {
        let wire = encode(&t, Style { encoded_brackets, plus });
        let back = decode(wire.as_bytes(), &FormLimits::default());
        prop_assert_eq!(back.as_ref(), Ok(&t), "wire: {}", wire);
    }

    #[test]
    fn query_and_body_share_one_parameter_budget(n in 1usize..30, split in 0usize..30) {
        let split = split.min(n);
        let limits = FormLimits { max_params: n, max_depth: 8 };
        let query: Vec<String> = (0..split).map(|i| format!("q{i}=1")).collect();
        let body: Vec<String> = (split..=n).map(|i| format!("b{i}=1")).collect();
        let mut root = Params::default();
        let mut count = 0;
        let first = parse_into(&mut root, query.join("&").as_bytes(), &limits, &mut count);
        prop_assert!(first.is_ok());
        let second = parse_into(&mut root, body.join("&").as_bytes(), &limits, &mut count);
        prop_assert_eq!(second, Err(FormError::TooManyParams { limit: n }));
    }
}

/// Regression cases from the hostile corpus, pinned here as unit-sized checks.
#[test]
fn pinned_cases() {
    let d = |s: &str| decode(s.as_bytes(), &FormLimits::default());
    // 100,000-deep brackets and 500,000 unclosed ones are bounded, not recursive.
    let deep = format!("a{}=1", "[]".repeat(100_000));
    assert!(matches!(d(&deep), Err(FormError::TooDeep { .. })));
    let unclosed = format!("a{}=1", "[".repeat(500_000));
    assert!(d(&unclosed)
        .unwrap()
        .contains_key(&unclosed[..unclosed.len() - 2]));
    // 100,000 empty pairs cost nothing and count nothing; 100,000 empty names count.
    assert_eq!(d(&"&".repeat(100_000)), Ok(Params::default()));
    assert!(matches!(
        d(&"=1&".repeat(100_000)),
        Err(FormError::TooManyParams { .. })
    ));
    // A broken escape at the very end, and escapes that decode to bytes that are not UTF-8.
    for bad in ["a=%", "a=%4", "%", "a=%c3%28", "a=%ed%a0%80", "%ff=1"] {
        assert_eq!(d(bad), Err(FormError::BadEncoding), "{bad}");
    }
}
