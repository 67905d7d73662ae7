//! The `application/x-www-form-urlencoded` decoder with bracket nesting, as Stripe's clients send it.
//!
//! `amount[monetary][value]=1000&expand[]=customer&prices[0][id]=p` becomes a [`Node`] tree. Arrays
//! written with indices (`a[0]`, `a[1]`) are kept as maps with numeric keys; whoever knows the schema
//! turns them into lists (see `stripe::params`), because only the schema can tell `metadata[0]` (a key
//! named "0") from `prices[0]` (the first price).
//!
//! Decoding is strict where a lenient decoder would hide a client bug: broken percent-escapes, invalid
//! UTF-8 and a name used both as a value and as a hash are errors. A repeated scalar keeps its last
//! value, as Rack (and so Stripe) does.

use std::fmt;

/// A decoded parameter tree: the names of one level, in the order they first appeared, each with
/// its node.
///
/// A short list searched from the front rather than a hash map: a request's levels hold a handful
/// of names (a create's deepest has two), where hashing each name and growing a table cost more
/// than the comparisons, and building the tree was a fifth of a create's handler. A level holds at
/// most `max_params` names, which bounds what a search can cost.
#[derive(Clone, Default)]
pub struct Params {
    entries: Vec<(String, Node)>,
}

impl Params {
    /// An empty level.
    pub fn new() -> Self {
        Params::default()
    }

    /// An empty level with room for `n` names.
    pub fn with_capacity(n: usize) -> Self {
        Params {
            entries: Vec::with_capacity(n),
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| same(k, name))
    }

    /// The node named `name`.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.entries
            .iter()
            .find(|(k, _)| same(k, name))
            .map(|(_, node)| node)
    }

    /// The node named `name`, to change it.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.entries
            .iter_mut()
            .find(|(k, _)| same(k, name))
            .map(|(_, node)| node)
    }

    /// Whether a node is named `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets the node named `name`, keeping its place if it was there (and returning the old node),
    /// at the end otherwise.
    pub fn insert(&mut self, name: impl Into<String>, node: Node) -> Option<Node> {
        let name = name.into();
        match self.position(&name) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, node)),
            None => {
                self.entries.push((name, node));
                None
            }
        }
    }

    /// How many names this level holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether this level holds no name.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names and their nodes, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The nodes, in order.
    pub fn values(&self) -> impl Iterator<Item = &Node> {
        self.entries.iter().map(|(_, v)| v)
    }
}

/// Whether two names are the same; the first byte is compared before the rest because names of one
/// level often have the same length (`customer`, `category`, `metadata`).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// The names of a level and their nodes, in order (see [`Params::iter`]).
pub struct Iter<'a>(std::slice::Iter<'a, (String, Node)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = (&'a String, &'a Node);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl std::ops::Index<&str> for Params {
    type Output = Node;

    fn index(&self, name: &str) -> &Node {
        self.get(name).expect("no parameter of that name")
    }
}

impl<K: Into<String>> FromIterator<(K, Node)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, Node)>>(iter: I) -> Self {
        let mut params = Params::new();
        for (k, v) in iter {
            params.insert(k, v);
        }
        params
    }
}

/// Two levels are equal when they hold the same names with equal nodes, in any order (as maps).
impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for Params {}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// One node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A scalar (`a=1`). The empty string is how clients say "unset".
    Value(String),
    /// A hash (`a[b]=1`), in the order keys first appeared.
    Map(Params),
    /// An array built with `a[]=1&a[]=2`.
    List(Vec<Node>),
}

/// Why a body or query string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8 once decoded.
    BadEncoding,
    /// More parameters than the configured limit.
    TooManyParams { limit: usize },
    /// More bracket levels than the configured limit.
    TooDeep { param: String, limit: usize },
    /// The same name used as a scalar and as a hash or array (`a=1&a[b]=2`).
    Conflict { param: String },
}

/// Bounds on what one request may contain.
#[derive(Debug, Clone, Copy)]
pub struct FormLimits {
    /// Most `name=value` pairs in one request (query string and body together).
    pub max_params: usize,
    /// Most bracket levels in one name (`a[b][c]` has two).
    pub max_depth: usize,
}

impl Default for FormLimits {
    fn default() -> Self {
        FormLimits {
            max_params: 1_000,
            max_depth: 8,
        }
    }
}

/// Decodes `input` into `root`, adding to what is there (the query string first, then the body).
/// `count` carries the number of pairs seen so far, so that the limit covers both.
pub fn parse_into(
    root: &mut Params,
    input: &[u8],
    limits: &FormLimits,
    count: &mut usize,
) -> Result<(), FormError> {
    match std::str::from_utf8(input) {
        Ok(text) => parse_text(root, text, limits, count),
        // Bytes that are not UTF-8 are an error of the pair that holds them, and only if no
        // earlier pair's error comes first: read pair by pair.
        Err(_) => parse_bytes(root, input, limits, count),
    }
}

/// The bytes a pair's scan stops at: the pair's end, the end of its name, and escapes.
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b'&' as usize] = true;
    table[b'=' as usize] = true;
    table[b'%' as usize] = true;
    table[b'+' as usize] = true;
    table
};

/// Where the first byte of [`SPECIAL`] at or after `at` is, or `bytes.len()`. Eight bytes are
/// looked at a time: a pair's name and value are mostly plain, and a byte at a time cost about
/// eight instructions a byte of a create's body.
fn next_special(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    // The high bit of each byte of `word` equal to `b` is set; a byte above one that is may be
    // marked too, but never one below it, so the lowest mark is exact.
    let equal = |word: u64, b: u8| {
        let x = word ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let marks = equal(word, b'&') | equal(word, b'=') | equal(word, b'%') | equal(word, b'+');
        if marks != 0 {
            return at + (marks.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < bytes.len() && !SPECIAL[bytes[at] as usize] {
        at += 1;
    }
    at
}

/// [`parse_into`] for input that is UTF-8 as a whole (every client's): each pair is read in one
/// pass that finds its end, its `=` and whether its name or value has anything to decode; every
/// name and value is then a slice of `text`. Reading each pair several times over (split at `&`,
/// find `=`, look for escapes, check UTF-8, for the name and again for the value) was a quarter of
/// the instructions of a create's handler. Pairs are read, and their errors found, in the same
/// order as [`parse_bytes`] reads them.
fn parse_text(
    root: &mut Params,
    text: &str,
    limits: &FormLimits,
    count: &mut usize,
) -> Result<(), FormError> {
    let bytes = text.as_bytes();
    let mut segments: Vec<&str> = Vec::with_capacity(SEGMENTS);
    let mut start = 0;
    while start < bytes.len() {
        let mut at = start;
        let mut equals = None;
        let (mut escaped_key, mut escaped_value) = (false, false);
        loop {
            at = next_special(bytes, at);
            let Some(&b) = bytes.get(at) else {
                break;
            };
            match (b, equals) {
                (b'&', _) => break,
                (b'=', None) => equals = Some(at),
                (b'=', Some(_)) => {}
                (_, None) => escaped_key = true,
                (_, Some(_)) => escaped_value = true,
            }
            at += 1;
        }
        let pair = start..at;
        start = at + 1;
        if pair.is_empty() {
            continue;
        }
        count_pair(count, limits)?;
        // `&`, `=`, `%` and `+` are ASCII: every index found is a character boundary.
        let (raw_key, raw_value) = match equals {
            Some(i) => (&text[pair.start..i], &text[i + 1..pair.end]),
            None => (&text[pair], ""),
        };
        let value = |raw: &str| {
            if escaped_value {
                decode_component(raw.as_bytes())
            } else {
                Ok(raw.to_owned())
            }
        };
        if escaped_key {
            insert_escaped_name(root, raw_key.as_bytes(), || value(raw_value), limits)?;
        } else {
            if raw_key.is_empty() {
                continue;
            }
            let value = value(raw_value)?;
            split_key(raw_key, &mut segments);
            insert_pair(root, &segments, value, raw_key, limits)?;
        }
    }
    Ok(())
}

/// [`parse_into`] pair by pair, for input that is not UTF-8 as a whole.
fn parse_bytes(
    root: &mut Params,
    input: &[u8],
    limits: &FormLimits,
    count: &mut usize,
) -> Result<(), FormError> {
    let mut segments: Vec<&str> = Vec::with_capacity(SEGMENTS);
    for pair in input.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        count_pair(count, limits)?;
        let (raw_key, raw_value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        if needs_decoding(raw_key) {
            insert_escaped_name(root, raw_key, || decode_component(raw_value), limits)?;
        } else {
            let key = std::str::from_utf8(raw_key).map_err(|_| FormError::BadEncoding)?;
            if key.is_empty() {
                continue;
            }
            let value = decode_component(raw_value)?;
            split_key(key, &mut segments);
            insert_pair(root, &segments, value, key, limits)?;
        }
    }
    Ok(())
}

/// Counts one more pair (or, in a JSON body read into the same tree, one more value), within the
/// limit on pairs.
pub fn count_pair(count: &mut usize, limits: &FormLimits) -> Result<(), FormError> {
    *count += 1;
    if *count > limits.max_params {
        return Err(FormError::TooManyParams {
            limit: limits.max_params,
        });
    }
    Ok(())
}

/// Inserts a pair whose name has escapes: the name is decoded first, and a pair whose name
/// decodes to nothing is skipped before its value is decoded (so its value's errors do not
/// count).
fn insert_escaped_name(
    root: &mut Params,
    raw_key: &[u8],
    value: impl FnOnce() -> Result<String, FormError>,
    limits: &FormLimits,
) -> Result<(), FormError> {
    let key = decode_component(raw_key)?;
    if key.is_empty() {
        return Ok(());
    }
    let value = value()?;
    let mut segments = Vec::new();
    split_key(&key, &mut segments);
    insert_pair(root, &segments, value, &key, limits)
}

fn insert_pair(
    root: &mut Params,
    segments: &[&str],
    value: String,
    key: &str,
    limits: &FormLimits,
) -> Result<(), FormError> {
    if segments.len() - 1 > limits.max_depth {
        return Err(FormError::TooDeep {
            param: segments[0].to_string(),
            limit: limits.max_depth,
        });
    }
    insert(root, segments, value, key)
}

fn needs_decoding(raw: &[u8]) -> bool {
    raw.iter().any(|&b| b == b'+' || b == b'%')
}

/// Decodes one component: `+` is a space, `%XX` a byte; the result must be UTF-8.
pub fn decode_component(raw: &[u8]) -> Result<String, FormError> {
    // Most names and values have nothing to decode.
    if !needs_decoding(raw) {
        return std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| FormError::BadEncoding);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&c| hex(c));
                let lo = raw.get(i + 2).and_then(|&c| hex(c));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(FormError::BadEncoding),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::BadEncoding)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// `a[b][]` → `["a", "b", ""]`, into `out`. A name whose brackets do not close is taken literally,
/// so it is later reported as an unknown parameter under its own spelling.
/// The segments a name's splitting starts with room for: `a[b][c][0][d]` at once. Growing from
/// four to eight cost a second allocation on most create bodies (a price scope is five deep).
const SEGMENTS: usize = 8;

fn split_key<'a>(key: &'a str, out: &mut Vec<&'a str>) {
    out.clear();
    // Brackets are ASCII, so the byte positions found are character boundaries.
    let bytes = key.as_bytes();
    let Some(open) = bytes.iter().position(|&b| b == b'[') else {
        out.push(key);
        return;
    };
    if open == 0 {
        out.push(key);
        return;
    }
    out.push(&key[..open]);
    let mut at = open;
    while at < bytes.len() {
        let close = (bytes[at] == b'[')
            .then(|| bytes[at + 1..].iter().position(|&b| b == b']'))
            .flatten();
        let Some(close) = close else {
            out.clear();
            out.push(key);
            return;
        };
        out.push(&key[at + 1..at + 1 + close]);
        at += close + 2;
    }
}

fn insert(map: &mut Params, segments: &[&str], value: String, full: &str) -> Result<(), FormError> {
    let conflict = || FormError::Conflict {
        param: bracket_prefix(full),
    };
    let (first, rest) = segments.split_first().ok_or_else(conflict)?;
    if rest.is_empty() {
        return match map.get_mut(first) {
            Some(Node::Value(v)) => {
                *v = value;
                Ok(())
            }
            Some(_) => Err(conflict()),
            None => {
                map.entries.push(((*first).to_string(), Node::Value(value)));
                Ok(())
            }
        };
    }
    // Looked up before inserting, so that a name seen before (`amount` in `amount[type]` after
    // `amount[monetary][value]`) does not allocate its key again.
    let fresh = || {
        if rest[0].is_empty() {
            Node::List(Vec::new())
        } else {
            Node::Map(Params::default())
        }
    };
    let index = match map.position(first) {
        Some(i) => i,
        None => {
            map.entries.push(((*first).to_string(), fresh()));
            map.entries.len() - 1
        }
    };
    let node = &mut map.entries[index].1;
    if rest[0].is_empty() {
        let Node::List(list) = node else {
            return Err(conflict());
        };
        if rest.len() == 1 {
            list.push(Node::Value(value));
            return Ok(());
        }
        // `a[][b]=1&a[][c]=2` fills one hash until a key repeats, then starts the next one.
        let starts_new = match list.last() {
            Some(Node::Map(m)) => m.contains_key(rest[1]),
            _ => true,
        };
        if starts_new {
            list.push(Node::Map(Params::default()));
        }
        let Some(Node::Map(m)) = list.last_mut() else {
            return Err(conflict());
        };
        return insert(m, &rest[1..], value, full);
    }
    let Node::Map(m) = node else {
        return Err(conflict());
    };
    insert(m, rest, value, full)
}

/// The name up to its first bracket, for error messages.
fn bracket_prefix(full: &str) -> String {
    full.split('[').next().unwrap_or(full).to_string()
}

/// Parses a whole string into a fresh tree (tests and tools).
pub fn parse(input: &str, limits: &FormLimits) -> Result<Params, FormError> {
    let mut root = Params::default();
    let mut count = 0;
    parse_into(&mut root, input.as_bytes(), limits, &mut count)?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_word_scan_finds_the_first_special_byte_wherever_it_is() {
        // Every position in and around a word, every special byte, with specials and
        // near-misses (bytes one off in value, high bytes) before and after it.
        for len in 0..20 {
            for special in [b'&', b'=', b'%', b'+'] {
                for place in 0..=len {
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [b'a', b'%' - 1, b'&' + 1, 0xC3, b'<'][i % 5])
                        .collect();
                    if place < len {
                        bytes[place] = special;
                        if place + 1 < len {
                            bytes[place + 1] = b'=';
                        }
                    }
                    let want = bytes
                        .iter()
                        .position(|&b| super::SPECIAL[b as usize])
                        .unwrap_or(len);
                    for from in 0..=len.min(place) {
                        assert_eq!(
                            super::next_special(&bytes, from),
                            want.max(from),
                            "{bytes:?} from {from}"
                        );
                    }
                }
            }
        }
    }

    use super::*;

    fn p(s: &str) -> Result<Params, FormError> {
        parse(s, &FormLimits::default())
    }

    fn v(s: &str) -> Node {
        Node::Value(s.to_string())
    }

    #[test]
    fn nesting_encodings_and_arrays() {
        let t = p("amount%5Bmonetary%5D%5Bvalue%5D=1000&amount[type]=monetary&note=a+b%20c&x[]=1&x[]=2&y[0][id]=p&y[1][id]=q").unwrap();
        let Node::Map(amount) = &t["amount"] else {
            panic!()
        };
        let Node::Map(monetary) = &amount["monetary"] else {
            panic!()
        };
        assert_eq!(monetary["value"], v("1000"));
        assert_eq!(amount["type"], v("monetary"));
        assert_eq!(t["note"], v("a b c"));
        assert_eq!(t["x"], Node::List(vec![v("1"), v("2")]));
        let Node::Map(y) = &t["y"] else { panic!() };
        assert_eq!(y.keys().collect::<Vec<_>>(), vec!["0", "1"]);
    }

    #[test]
    fn empty_values_and_last_wins() {
        let t = p("metadata=&a=1&a=2&&=x").unwrap();
        assert_eq!(t["metadata"], v(""));
        assert_eq!(t["a"], v("2"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn list_of_hashes() {
        let t = p("a[][b]=1&a[][c]=2&a[][b]=3").unwrap();
        let Node::List(items) = &t["a"] else { panic!() };
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn errors() {
        assert_eq!(p("a=%zz"), Err(FormError::BadEncoding));
        assert_eq!(p("a=%e9"), Err(FormError::BadEncoding));
        assert_eq!(p("a=%4"), Err(FormError::BadEncoding));
        assert_eq!(
            p("a=1&a[b]=2"),
            Err(FormError::Conflict { param: "a".into() })
        );
        assert_eq!(
            p("a[b]=1&a=2"),
            Err(FormError::Conflict { param: "a".into() })
        );
        assert_eq!(
            p("a[]=1&a[0]=2"),
            Err(FormError::Conflict { param: "a".into() })
        );
        let deep = format!("a{}=1", "[b]".repeat(1000));
        assert!(matches!(p(&deep), Err(FormError::TooDeep { .. })));
        let many = vec!["a=1"; 1001].join("&");
        assert_eq!(p(&many), Err(FormError::TooManyParams { limit: 1000 }));
    }

    /// The one-pass reading of UTF-8 input finds the same tree, count and first error as the
    /// pair-by-pair reading, limits included.
    #[test]
    fn one_pass_reads_as_pair_by_pair() {
        use proptest::prelude::*;
        let byte = prop_oneof![
            4 => prop::sample::select(b"[]%=&+".to_vec()),
            3 => prop::sample::select(b"0123456789abcdefABCDEFgz".to_vec()),
            1 => prop::sample::select(vec![b' ', 0xc3, 0xa9, 0x80]),
        ];
        let limits = FormLimits {
            max_params: 6,
            max_depth: 2,
        };
        proptest!(|(input in prop::collection::vec(byte, 0..80))| {
            let Ok(text) = std::str::from_utf8(&input) else {
                return Ok(());
            };
            let (mut one, mut pairs) = (Params::default(), Params::default());
            let (mut n1, mut n2) = (0, 0);
            let a = parse_text(&mut one, text, &limits, &mut n1);
            let b = parse_bytes(&mut pairs, &input, &limits, &mut n2);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(n1, n2);
            if a.is_ok() {
                prop_assert_eq!(format!("{one:?}"), format!("{pairs:?}"));
            }
        });
    }

    #[test]
    fn odd_names_are_literal() {
        let t = p("a[b=1&[c]=2&d]=3").unwrap();
        assert!(t.contains_key("a[b") && t.contains_key("[c]") && t.contains_key("d]"));
    }
}
