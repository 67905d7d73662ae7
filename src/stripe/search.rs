//! Stripe's search query language (`GET /v1/<resource>/search?query=…`), for any resource.
//!
//! A query is up to ten clauses joined by `AND` or `OR` (case-insensitive; a space alone means
//! `AND`; one query never mixes the two, and there are no parentheses). A clause is an optional `-`
//! (negation), a field, an operator and a value:
//!
//! ```text
//! email:"jenny@example.com"      exact match (strings: case-insensitive)
//! name~"jen"                     substring, at least 3 characters
//! created>=1700000000            numeric comparison: > < >= <= (and : for equality)
//! metadata["order"]:"42"         a metadata value (case-sensitive); metadata['order'] works too
//! -metadata["order"]:null        null: the field is unset (negated: it is set)
//! ```
//!
//! String values are quoted, with `"` or `'`; a backslash escapes the next character. Numbers may
//! be quoted or not. A resource names its fields and their [`Kind`]s in a [`Schema`], and answers
//! clause by clause through [`Query::matches`]; the parser knows no resource.
//!
//! The operation ([`Search`]) is the same for every resource: a resource says how its objects are
//! walked newest first, read field by field and shown ([`Searchable`]), and its route names
//! `Search<ThatResource>`. Pages are cursors (`next_page`) bound to their query.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Bound;

use base64::Engine;
use serde::Serialize;

use super::op::{Body, Expand, Input, Operation};
use crate::ids::{fnv1a64, Key};
use crate::model::Tenant;
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    get_int, get_str, in_range, opt, req, validate, Field as ParamField, Spec, EXPAND,
};
use crate::wire::versions::Version;

/// The most clauses one query may hold.
pub const MAX_CLAUSES: usize = 10;

/// The shortest value a substring match (`~`) accepts, in characters.
pub const MIN_SUBSTRING: usize = 3;

/// What a field holds, which decides the operators it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text: `:` (case-insensitive equality) and `~` (case-insensitive substring).
    String,
    /// An integer such as a timestamp: `:`, `>`, `<`, `>=`, `<=`.
    Numeric,
    /// An exact value: `:` only, case-sensitive.
    Token,
}

/// The fields a resource can be searched on.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The resource's name in messages and in the documentation link (`customers`).
    pub resource: &'static str,
    /// Its searchable fields.
    pub fields: &'static [(&'static str, Kind)],
    /// Whether `metadata["key"]` may be searched (always as a [`Kind::Token`]).
    pub metadata: bool,
}

/// A field a clause is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A named field of the schema.
    Named(&'static str),
    /// `metadata["key"]`.
    Metadata(String),
}

/// A clause's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `:`
    Exact,
    /// `~`
    Substring,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Exact => ":",
            Op::Substring => "~",
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Lt => "<",
            Op::Lte => "<=",
        }
    }
}

/// A clause's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A string, compared as the field's kind says (lower-cased already for [`Kind::String`]).
    Str(String),
    /// An integer.
    Num(i64),
    /// `null`: the field is unset.
    Null,
}

/// One clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// A leading `-`.
    pub negated: bool,
    /// What it is about.
    pub field: Field,
    /// What that field holds.
    pub kind: Kind,
    /// How it compares.
    pub op: Op,
    /// With what.
    pub value: Term,
}

/// How clauses combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Every clause holds (also a single clause).
    And,
    /// Some clause holds.
    Or,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Its clauses, in order.
    pub clauses: Vec<Clause>,
    /// How they combine.
    pub join: Join,
}

/// The value of one field of one object, as [`Query::matches`] asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    /// Text.
    Str(&'a str),
    /// Text made for the question (an id rendered from a key).
    Owned(String),
    /// A number.
    Num(i64),
    /// Unset.
    Missing,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchError {
    /// Not in the language; the text says where and why.
    Syntax(String),
    /// A field the resource cannot be searched on.
    UnknownField {
        /// The field as written.
        field: String,
        /// The resource.
        resource: &'static str,
    },
    /// A well-formed clause the field cannot answer (an operator or value of the wrong kind).
    Unsupported(String),
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchError::Syntax(why) => write!(
                f,
                "We were unable to parse your search query. {why} Try using the format `metadata[\"key\"]:\"value\"` to query for metadata or key:\"value\" to query for other fields."
            ),
            SearchError::UnknownField { field, resource } => write!(
                f,
                "Field `{field}` is an unsupported search field for resource `{resource}`. See http://stripe.com/docs/search#query-fields-for-{} for a list of supported fields.",
                resource.replace('_', "-")
            ),
            SearchError::Unsupported(why) => f.write_str(why),
        }
    }
}

/// Parses `text` against `schema`.
pub fn parse(text: &str, schema: &Schema) -> Result<Query, SearchError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
    };
    let mut clauses = Vec::new();
    let (mut and, mut or) = (false, false);
    p.skip_spaces();
    if p.done() {
        return Err(syntax("The query is empty."));
    }
    loop {
        clauses.push(p.clause(schema)?);
        let spaced = p.skip_spaces();
        if p.done() {
            break;
        }
        if !spaced {
            return Err(p.unexpected("after a clause; clauses are separated by spaces"));
        }
        match p.keyword() {
            Some(Join::And) => and = true,
            Some(Join::Or) => or = true,
            None => and = true,
        }
        if and && or {
            return Err(syntax(
                "AND and OR cannot be combined in one query (a space between clauses means AND, and parentheses are not supported).",
            ));
        }
        p.skip_spaces();
        if p.done() {
            return Err(syntax(
                "The query ends with AND or OR, but a clause must follow.",
            ));
        }
    }
    if clauses.len() > MAX_CLAUSES {
        return Err(SearchError::Unsupported(format!(
            "A search query can have at most {MAX_CLAUSES} clauses, but this one has {}.",
            clauses.len()
        )));
    }
    let join = if or { Join::Or } else { Join::And };
    Ok(Query { clauses, join })
}

fn syntax(why: impl Into<String>) -> SearchError {
    SearchError::Syntax(why.into())
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn done(&self) -> bool {
        self.at >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    /// Skips whitespace; whether there was any.
    fn skip_spaces(&mut self) -> bool {
        let start = self.at;
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
        self.at > start
    }

    /// `AND` or `OR` (any case) followed by a space, consumed; otherwise nothing is consumed.
    fn keyword(&mut self) -> Option<Join> {
        let word: String = self.chars[self.at..]
            .iter()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let join = if word.eq_ignore_ascii_case("and") {
            Join::And
        } else if word.eq_ignore_ascii_case("or") {
            Join::Or
        } else {
            return None;
        };
        self.at += word.chars().count();
        Some(join)
    }

    /// "Unexpected `x` at character N (context)."
    fn unexpected(&self, context: &str) -> SearchError {
        match self.peek() {
            Some(c) if c.is_whitespace() => syntax(format!(
                "Unexpected space at character {} {context}.",
                self.at + 1
            )),
            // Control characters are named, never echoed raw.
            Some(c) if c.is_control() => syntax(format!(
                "Unexpected U+{:04X} at character {} {context}.",
                c as u32,
                self.at + 1
            )),
            Some(c) => syntax(format!(
                "Unexpected `{c}` at character {} {context}.",
                self.at + 1
            )),
            None => syntax(format!("The query ended too early {context}.")),
        }
    }

    fn clause(&mut self, schema: &Schema) -> Result<Clause, SearchError> {
        let negated = self.peek() == Some('-');
        if negated {
            self.at += 1;
        }
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            self.at += 1;
        }
        let name: String = self.chars[start..self.at].iter().collect();
        if name.is_empty() {
            return Err(self.unexpected("where a field name should start"));
        }
        // The field is read and the operator found before the field is looked up, so that a
        // stray word (`AND OR`) is a syntax error rather than an unknown field.
        let metadata_key = if name == "metadata" && self.peek() == Some('[') {
            self.at += 1;
            let key = match self.peek() {
                Some(q @ ('"' | '\'')) => self.quoted(q)?,
                _ => return Err(self.unexpected("in metadata[…]: the key must be quoted")),
            };
            if self.peek() != Some(']') {
                return Err(self.unexpected("after the metadata key: expected `]`"));
            }
            self.at += 1;
            Some(key)
        } else {
            None
        };
        let written = match &metadata_key {
            Some(k) => format!("metadata[\"{k}\"]"),
            None => name.clone(),
        };
        let op = match (self.peek(), self.chars.get(self.at + 1)) {
            (Some('>'), Some('=')) => Op::Gte,
            (Some('<'), Some('=')) => Op::Lte,
            (Some('>'), _) => Op::Gt,
            (Some('<'), _) => Op::Lt,
            (Some(':'), _) => Op::Exact,
            (Some('~'), _) => Op::Substring,
            _ => {
                return Err(self.unexpected(&format!(
                    "after `{written}`: expected an operator (`:`, `~`, `>`, `<`, `>=` or `<=`)"
                )))
            }
        };
        self.at += op.symbol().len();
        let (field, kind) = match metadata_key {
            Some(key) if schema.metadata => (Field::Metadata(key), Kind::Token),
            Some(_) => {
                return Err(SearchError::UnknownField {
                    field: "metadata".into(),
                    resource: schema.resource,
                })
            }
            None => match schema.fields.iter().find(|(f, _)| *f == name) {
                Some((f, kind)) => (Field::Named(f), *kind),
                None => {
                    return Err(SearchError::UnknownField {
                        field: name,
                        resource: schema.resource,
                    })
                }
            },
        };
        let raw = self.value()?;
        let value = typed(&written, kind, op, raw)?;
        Ok(Clause {
            negated,
            field,
            kind,
            op,
            value,
        })
    }

    /// A quoted string (the opening quote is current); backslash escapes the next character.
    fn quoted(&mut self, quote: char) -> Result<String, SearchError> {
        let open = self.at;
        self.at += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(syntax(format!(
                        "The quote opened at character {} is never closed.",
                        open + 1
                    )))
                }
                Some('\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(c) => out.push(c),
                        None => {
                            return Err(syntax("The query ends with an unfinished escape (`\\`)."))
                        }
                    }
                }
                Some(c) if c == quote => break,
                Some(c) => out.push(c),
            }
            self.at += 1;
        }
        self.at += 1;
        Ok(out)
    }

    /// A value: quoted text, or a bare word (a number or `null`).
    fn value(&mut self) -> Result<Raw, SearchError> {
        match self.peek() {
            Some(q @ ('"' | '\'')) => Ok(Raw::Quoted(self.quoted(q)?)),
            Some(c) if !c.is_whitespace() => {
                let start = self.at;
                while self.peek().is_some_and(|c| !c.is_whitespace()) {
                    self.at += 1;
                }
                Ok(Raw::Bare(self.chars[start..self.at].iter().collect()))
            }
            _ => Err(self.unexpected("where a value should start")),
        }
    }
}

/// A value as written.
enum Raw {
    Quoted(String),
    Bare(String),
}

/// Checks a clause's operator and value against its field's kind, and types the value. `name` is
/// the field as written, for messages.
fn typed(name: &str, kind: Kind, op: Op, raw: Raw) -> Result<Term, SearchError> {
    let allowed: &[Op] = match kind {
        Kind::String => &[Op::Exact, Op::Substring],
        Kind::Numeric => &[Op::Exact, Op::Gt, Op::Gte, Op::Lt, Op::Lte],
        Kind::Token => &[Op::Exact],
    };
    if !allowed.contains(&op) {
        let list: Vec<String> = allowed
            .iter()
            .map(|o| format!("`{}`", o.symbol()))
            .collect();
        return Err(SearchError::Unsupported(format!(
            "The `{}` operator cannot be used with field `{name}`, which supports {}.",
            op.symbol(),
            crate::wire::params::one_of(&list.iter().map(String::as_str).collect::<Vec<_>>())
        )));
    }
    match raw {
        Raw::Bare(word) if word == "null" => {
            if op == Op::Exact {
                Ok(Term::Null)
            } else {
                Err(SearchError::Unsupported(format!(
                    "`null` can only be matched with `:` (`{name}:null`, or `-{name}:null` for a value that is set)."
                )))
            }
        }
        Raw::Bare(word) | Raw::Quoted(word) if kind == Kind::Numeric => {
            crate::wire::params::parse_int(&word)
                .map(Term::Num)
                .ok_or_else(|| {
                    SearchError::Unsupported(format!(
                        "Field `{name}` takes an integer value, not `{}`.",
                        crate::wire::envelope::shorten(&word)
                    ))
                })
        }
        Raw::Bare(word) => Err(syntax(format!(
            "The value `{}` for `{name}` must be in quotes (`{name}:\"{}\"`).",
            crate::wire::envelope::shorten(&word),
            crate::wire::envelope::shorten(&word)
        ))),
        Raw::Quoted(text) => {
            if op == Op::Substring && text.chars().count() < MIN_SUBSTRING {
                return Err(SearchError::Unsupported(format!(
                    "A substring search (`~`) needs at least {MIN_SUBSTRING} characters, but `{name}~` was given {}.",
                    text.chars().count()
                )));
            }
            Ok(Term::Str(match kind {
                Kind::String => text.to_lowercase(),
                _ => text,
            }))
        }
    }
}

impl Query {
    /// Whether an object matches. `get` answers a field's value for that object.
    pub fn matches<'a>(&self, get: impl Fn(&Field) -> Found<'a>) -> bool {
        let hit = |c: &Clause| c.holds(get(&c.field)) != c.negated;
        match self.join {
            Join::And => self.clauses.iter().all(hit),
            Join::Or => self.clauses.iter().any(hit),
        }
    }
}

impl Clause {
    fn text_holds(&self, s: &str, v: &str) -> bool {
        match (self.kind, self.op) {
            (Kind::String, Op::Substring) => v.to_lowercase().contains(s),
            (Kind::String, _) => v.to_lowercase() == s,
            _ => v == s,
        }
    }

    fn holds(&self, found: Found) -> bool {
        match (&self.value, found) {
            (Term::Null, found) => found == Found::Missing,
            (_, Found::Missing) => false,
            (Term::Num(n), Found::Num(v)) => match self.op {
                Op::Exact => v == *n,
                Op::Gt => v > *n,
                Op::Gte => v >= *n,
                Op::Lt => v < *n,
                Op::Lte => v <= *n,
                Op::Substring => false,
            },
            (Term::Str(s), Found::Str(v)) => self.text_holds(s, v),
            (Term::Str(s), Found::Owned(v)) => self.text_holds(s, &v),
            _ => false,
        }
    }
}

// ---- the operation every searchable resource shares ----

/// The parameters of `GET /v1/<resource>/search`.
const PARAMS: &[ParamField] = &[
    EXPAND,
    opt("limit", Spec::Int),
    opt("page", Spec::Str(5000)),
    req("query", Spec::Str(5000)),
];

/// A resource `GET /v1/<resource>/search` finds: its fields, its url, and how its objects are
/// walked, read and shown. [`Search`] does the rest.
pub trait Searchable {
    /// Its searchable fields.
    const SCHEMA: Schema;
    /// `/v1/<resource>/search`.
    const URL: &'static str;
    /// What `expand[]` accepts: `data.…` paths, and `total_count`.
    const EXPANDABLE: &'static [&'static str];
    /// The keys of the objects a search may find, those before `before` (exclusive), newest first.
    fn newest_first(t: &Tenant, before: Bound<Key>) -> impl Iterator<Item = Key> + '_;
    /// The value of `field` (of [`Self::SCHEMA`]) of the object `key`.
    fn field<'t>(t: &'t Tenant, key: Key, field: &Field) -> Found<'t>;
    /// The answer: [`Hits::body`] with the views of the objects found.
    fn render(t: &Tenant, hits: Hits) -> Body;
}

/// `GET /v1/<resource>/search` for resource `S`: the objects matching a query, newest first, on
/// test clocks or not. Each page walks from its cursor down until it has `limit + 1` matches.
pub struct Search<S> {
    text: String,
    query: Query,
    limit: usize,
    after: Bound<Key>,
    expand: Expand,
    of: PhantomData<fn() -> S>,
}

/// What a search found.
pub struct Hits {
    /// The objects of this page.
    pub keys: Vec<Key>,
    more: bool,
    next_page: Option<String>,
    total_count: Option<usize>,
    expand: Expand,
}

/// `{object: "search_result", data, has_more, next_page, [total_count], url}`.
#[derive(Serialize)]
struct ResultView<T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
    next_page: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_count: Option<usize>,
    url: &'static str,
}

impl Hits {
    /// Whether the request asked to expand `path`.
    pub fn wants(&self, path: &str) -> bool {
        self.expand.wants(path)
    }

    /// The answer, with `data` the views of [`Hits::keys`]; `each` is about how many bytes one
    /// takes.
    pub fn body<T: Serialize>(self, data: Vec<T>, url: &'static str, each: usize) -> Body {
        let view = ResultView {
            object: "search_result",
            data,
            has_more: self.more,
            next_page: self.next_page,
            total_count: self.total_count,
            url,
        };
        Body::of(&view, self.expand, each * (self.keys.len() + 1))
    }
}

impl<S: Searchable> Operation for Search<S> {
    type Output = Hits;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, PARAMS, "")?;
        let expand = Expand::read(p, S::EXPANDABLE, Version::NEWEST)?;
        let text = get_str(p, "query").unwrap_or("");
        if text.is_empty() {
            return Err(StripeError::missing_param("query"));
        }
        let query = parse(text, &S::SCHEMA)
            .map_err(|e| StripeError::invalid(e.to_string()).param("query"))?;
        let limit = match get_int(p, "limit") {
            None => 10,
            Some(n) => in_range(n, 1, 100, "limit")? as usize,
        };
        let after = match get_str(p, "page").filter(|s| !s.is_empty()) {
            Some(token) => Bound::Excluded(page_cursor(token, text)?),
            None => Bound::Unbounded,
        };
        Ok(Search {
            text: text.to_string(),
            query,
            limit,
            after,
            expand,
            of: PhantomData,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Hits> {
        let query = &self.query;
        let hit = |k: Key| query.matches(|f| S::field(t, k, f));
        let mut keys = Vec::with_capacity(self.limit);
        let mut more = false;
        for k in S::newest_first(t, self.after) {
            if hit(k) {
                if keys.len() == self.limit {
                    more = true;
                    break;
                }
                keys.push(k);
            }
        }
        let next_page = match (more, keys.last()) {
            (true, Some(last)) => Some(page_token(*last, &self.text)),
            _ => None,
        };
        let total_count = self.expand.wants("total_count").then(|| {
            S::newest_first(t, Bound::Unbounded)
                .filter(|k| hit(*k))
                .count()
        });
        Ok(Hits {
            keys,
            more,
            next_page,
            total_count,
            expand: self.expand,
        })
    }

    fn render(found: Hits, t: &Tenant) -> Body {
        S::render(t, found)
    }
}

/// `next_page`: the last key shown and a hash of the query, so that a cursor is only taken back
/// by the search that made it.
fn page_token(last: Key, query: &str) -> String {
    let mut bytes = [0u8; 24];
    bytes[..16].copy_from_slice(&last.to_be_bytes());
    bytes[16..].copy_from_slice(&query_hash(query).to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The key a `page` cursor continues after.
fn page_cursor(token: &str, query: &str) -> StripeResult<Key> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .filter(|b| b.len() == 24);
    let key = bytes.and_then(|b| {
        let mut key = [0u8; 16];
        let mut hash = [0u8; 8];
        key.copy_from_slice(&b[..16]);
        hash.copy_from_slice(&b[16..]);
        (u64::from_be_bytes(hash) == query_hash(query)).then(|| Key::from_be_bytes(key))
    });
    key.ok_or_else(|| {
        StripeError::invalid(format!(
            "Invalid page: {} is not a cursor of this search. Pass the next_page of the previous page, with the same query.",
            shorten(token)
        ))
        .param("page")
    })
}

fn query_hash(query: &str) -> u64 {
    fnv1a64(0xcbf2_9ce4_8422_2325, query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUSTOMERS: Schema = Schema {
        resource: "customers",
        fields: &[
            ("created", Kind::Numeric),
            ("email", Kind::String),
            ("name", Kind::String),
            ("phone", Kind::String),
        ],
        metadata: true,
    };

    fn q(text: &str) -> Query {
        parse(text, &CUSTOMERS).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        parse(text, &CUSTOMERS).unwrap_err().to_string()
    }

    /// One object: email Ada@Example.com, name Ada Lovelace, created 100, metadata tier=gold.
    fn ada(f: &Field) -> Found<'static> {
        match f {
            Field::Named("email") => Found::Str("Ada@Example.com"),
            Field::Named("name") => Found::Str("Ada Lovelace"),
            Field::Named("created") => Found::Num(100),
            Field::Metadata(k) if k == "tier" => Found::Str("gold"),
            _ => Found::Missing,
        }
    }

    fn hits(text: &str) -> bool {
        q(text).matches(ada)
    }

    #[test]
    fn clauses_parse_with_either_quote_and_escapes() {
        let query = q(r#"email:"a@b.c" AND -metadata['k\'s']:null"#);
        assert_eq!(query.join, Join::And);
        assert_eq!(
            query.clauses,
            vec![
                Clause {
                    negated: false,
                    field: Field::Named("email"),
                    kind: Kind::String,
                    op: Op::Exact,
                    value: Term::Str("a@b.c".into()),
                },
                Clause {
                    negated: true,
                    field: Field::Metadata("k's".into()),
                    kind: Kind::Token,
                    op: Op::Exact,
                    value: Term::Null,
                },
            ]
        );
        assert_eq!(q("created>=5 or created<2").join, Join::Or);
        assert_eq!(q("  name:'x'  ").clauses.len(), 1);
        assert_eq!(q(r#"created:"7""#).clauses[0].value, Term::Num(7));
    }

    #[test]
    fn matching_follows_each_kind() {
        assert!(hits(r#"email:"ada@example.com""#), "strings ignore case");
        assert!(!hits(r#"email:"ada@example""#), "`:` is the whole value");
        assert!(hits(r#"name~"LOVE""#));
        assert!(hits(r#"metadata["tier"]:"gold""#));
        assert!(
            !hits(r#"metadata["tier"]:"GOLD""#),
            "metadata is case-sensitive"
        );
        assert!(hits(r#"metadata["other"]:null"#));
        assert!(hits(r#"-metadata["tier"]:null"#));
        assert!(hits("phone:null"));
        assert!(!hits(r#"phone:"1""#));
        assert!(
            hits(r#"-phone:"1""#),
            "negation holds when the field is unset"
        );
        assert!(hits("created>99 created<=100 created:100"));
        assert!(!hits("created>100"));
        assert!(!hits("created<100 AND created>=100"));
        assert!(hits(r#"created<100 OR name:"ada lovelace""#));
        assert!(!hits(r#"created<100 OR name:"ada""#));
    }

    #[test]
    fn malformed_queries_say_why() {
        for (text, part) in [
            ("", "The query is empty."),
            ("   ", "The query is empty."),
            ("email", "The query ended too early after `email`"),
            (r#"email="x""#, "Unexpected `=` at character 6"),
            (r#"email:"x"name:"y""#, "Unexpected `n` at character 10"),
            (
                r#"email:"x"#,
                "The quote opened at character 7 is never closed.",
            ),
            ("email:x", "The value `x` for `email` must be in quotes"),
            (r#"email:"x" AND"#, "ends with AND or OR"),
            (
                r#"email:"x" AND OR name:"y""#,
                "Unexpected space at character 17 after `OR`",
            ),
            (
                r#"email:"x" AND name:"y" OR phone:"z""#,
                "cannot be combined",
            ),
            (r#"email:"x" name:"y" OR phone:"z""#, "cannot be combined"),
            (r#"metadata[k]:"v""#, "the key must be quoted"),
            (r#"metadata["k":"v""#, "expected `]`"),
            (r#"- email:"x""#, "where a field name should start"),
            (r#"(email:"x")"#, "Unexpected `(` at character 1"),
            (
                "na\u{7}me:\"x\"",
                "Unexpected U+0007 at character 3 after `na`",
            ),
        ] {
            let e = err(text);
            assert!(
                e.starts_with("We were unable to parse your search query."),
                "{text}: {e}"
            );
            assert!(e.contains(part), "{text}: {e}");
        }
    }

    #[test]
    fn outside_the_subset_is_named() {
        assert_eq!(
            err(r#"description:"x""#),
            "Field `description` is an unsupported search field for resource `customers`. See http://stripe.com/docs/search#query-fields-for-customers for a list of supported fields."
        );
        assert!(err(r#"Email:"x""#).starts_with("Field `Email` is an unsupported"));
        assert!(err(r#"email>"x""#).contains(
            "The `>` operator cannot be used with field `email`, which supports `:` or `~`."
        ));
        assert!(err(r#"metadata["k"]~"abc""#).contains("supports `:`"));
        assert!(err(r#"name~"ab""#).contains("at least 3 characters"));
        assert!(err("name~null").contains("`null` can only be matched with `:`"));
        assert!(err("created>abc").contains("takes an integer value, not `abc`"));
        assert!(err("created>1e3").contains("takes an integer value"));
        let eleven = [r#"name:"x""#; 11].join(" ");
        assert!(err(&eleven).contains("at most 10 clauses, but this one has 11"));
        assert!(parse(&[r#"name:"x""#; 10].join(" OR "), &CUSTOMERS).is_ok());
        let no_metadata = Schema {
            metadata: false,
            ..CUSTOMERS
        };
        assert!(matches!(
            parse(r#"metadata["k"]:"v""#, &no_metadata),
            Err(SearchError::UnknownField { .. })
        ));
    }
}
