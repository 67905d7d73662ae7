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

use std::fmt;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    /// Text.
    Str(&'a str),
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
            (Term::Str(s), Found::Str(v)) => match (self.kind, self.op) {
                (Kind::String, Op::Substring) => v.to_lowercase().contains(s.as_str()),
                (Kind::String, _) => v.to_lowercase() == *s,
                _ => v == s,
            },
            _ => false,
        }
    }
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
