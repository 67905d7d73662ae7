//! Stripe parameter schemas: each endpoint declares its parameters as data, and one validator checks a
//! decoded form tree against them the way Stripe does (every unknown parameter first, then required
//! ones, types, enums, lengths, metadata limits, in declaration order). After validation, handlers read
//! values with the small accessors at the bottom, which cannot fail on type.
//!
//! A field can be tied to the API version change that added it ([`Field::since`]: older versions
//! refuse it as unknown) or that made it optional ([`Field::required_before`]); [`validate_at`]
//! checks a tree as the request's version sees the tables.

use crate::form::{Node, Params};
use crate::model::{money, Currency};
use crate::time::from_secs;

use super::envelope::{shorten, StripeError, StripeResult};
use super::versions::{Change, Version};

/// The type of one parameter.
#[derive(Debug, Clone, Copy)]
pub enum Spec {
    /// A string of at most this many characters. `""` means "unset" where the field is nullable.
    Str(usize),
    /// A 64-bit integer.
    Int,
    /// A unix timestamp, or `""` to clear the field.
    TsOrEmpty,
    /// `true` or `false`.
    Bool,
    /// One of these values.
    Enum(&'static [&'static str]),
    /// A hash with these fields. `""` is accepted where the hash may be cleared.
    Obj(&'static [Field]),
    /// Metadata: string → string, with Stripe's limits; `""` clears it.
    Metadata,
    /// A hash of any names whose values are strings of at most this many characters (a meter
    /// event's `payload`). A value sent as a hash or an array is an unknown parameter.
    StrMap(usize),
    /// An array of at most this many items (indexed `a[0]` or appended `a[]`).
    Array(&'static Spec, usize),
    /// A list filter on a time: a unix timestamp (equality), or a hash of `gt`, `gte`, `lt` and
    /// `lte` timestamps (Stripe's `created` filter). Read it with `list::TimeRange::read`.
    Range,
    /// Documented by Stripe but not modelled here; sending it is a clear 400, never silently dropped.
    Unsupported,
}

/// One declared parameter.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Name at its level.
    pub name: &'static str,
    /// Type.
    pub spec: Spec,
    /// Whether it must be present.
    pub required: bool,
    /// The change that added it; versions before it do not know the parameter.
    pub since: Option<Change>,
    /// The change that made it optional; versions before it require the parameter.
    pub required_before: Option<Change>,
    /// Whether `""` is a value of it whatever its type and presence ([`Field::empty_allowed`]).
    pub empty_allowed: bool,
}

impl Field {
    /// This parameter, known only from `change` on.
    pub const fn since(mut self, change: Change) -> Field {
        self.since = Some(change);
        self
    }

    /// This parameter, required in versions before `change`.
    pub const fn required_before(mut self, change: Change) -> Field {
        self.required_before = Some(change);
        self
    }

    /// This parameter, with `""` as one of its values even where the empty-string rule
    /// (`may_be_empty`) would refuse it (a required setting that `""` resets).
    pub const fn empty_allowed(mut self) -> Field {
        self.empty_allowed = true;
        self
    }

    /// Whether requests under `version` know this parameter.
    fn known_in(&self, version: Version) -> bool {
        self.since.is_none_or(|c| version.has(c))
    }

    /// Whether requests under `version` must send this parameter.
    fn required_in(&self, version: Version) -> bool {
        self.required || self.required_before.is_some_and(|c| !version.has(c))
    }

    /// Whether `""` is a value of this parameter under `version` (it unsets, clears or empties
    /// it), rather than Stripe's `parameter_invalid_empty`. A parameter that must be sent, or once
    /// had to be (it has an alternative now, as `customer` has `customer_account`), cannot be
    /// unset; nor can an integer, a boolean, a time filter, a string map or an enum without `""`
    /// among its values. Optional strings, timestamps that may be cleared, metadata, hashes and
    /// arrays take `""` as their empty value, and their handlers say what it means.
    fn may_be_empty(&self, version: Version) -> bool {
        if self.empty_allowed {
            return true;
        }
        if self.required_in(version) || self.required_before.is_some() {
            return false;
        }
        match self.spec {
            Spec::Str(_)
            | Spec::TsOrEmpty
            | Spec::Metadata
            | Spec::Obj(_)
            | Spec::Array(..)
            | Spec::Unsupported => true,
            Spec::Enum(values) => values.contains(&""),
            Spec::Int | Spec::Bool | Spec::Range | Spec::StrMap(_) => false,
        }
    }
}

/// An optional parameter.
pub const fn opt(name: &'static str, spec: Spec) -> Field {
    Field {
        name,
        spec,
        required: false,
        since: None,
        required_before: None,
        empty_allowed: false,
    }
}

/// A required parameter.
pub const fn req(name: &'static str, spec: Spec) -> Field {
    Field {
        name,
        spec,
        required: true,
        since: None,
        required_before: None,
        empty_allowed: false,
    }
}

/// `expand[]`, accepted everywhere.
pub const EXPAND: Field = opt("expand", Spec::Array(&Spec::Str(5000), 100));

/// The three pagination parameters plus `expand[]`.
pub const LIST_FIELDS: [Field; 4] = [
    opt("limit", Spec::Int),
    opt("starting_after", Spec::Str(5000)),
    opt("ending_before", Spec::Str(5000)),
    EXPAND,
];

/// Two parameter tables as one (for endpoints that share a block of parameters). `N` must be `A + B`.
pub const fn join<const A: usize, const B: usize, const N: usize>(
    a: [Field; A],
    b: [Field; B],
) -> [Field; N] {
    assert!(A + B == N, "join: N must be A + B");
    let mut out = [EXPAND; N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < B {
        out[A + j] = b[j];
        j += 1;
    }
    out
}

/// The operators of a range filter (`created[gte]=…`).
pub const RANGE_KEYS: [&str; 4] = ["gt", "gte", "lt", "lte"];

/// Stripe's metadata limits.
const METADATA_KEYS: usize = 50;
const METADATA_KEY_LEN: usize = 40;
const METADATA_VALUE_LEN: usize = 500;

/// Validates `params` against `fields` (top level), as the newest version sees them.
pub fn validate(params: &Params, fields: &[Field], unsupported_hint: &str) -> StripeResult<()> {
    validate_at(params, fields, unsupported_hint, Version::NEWEST)
}

/// Validates `params` against `fields` (top level) as `version` sees them: fields added later are
/// unknown, fields made optional later are required.
pub fn validate_at(
    params: &Params,
    fields: &[Field],
    unsupported_hint: &str,
    version: Version,
) -> StripeResult<()> {
    let at = At {
        hint: unsupported_hint,
        version,
    };
    check_unknown(params, fields, &Path::Root, at)?;
    check_fields(params, fields, &Path::Root, at.version)
}

/// What the unknown-parameter pass carries down the tree.
#[derive(Clone, Copy)]
struct At<'h> {
    /// Appended to "not supported by the credit emulator".
    hint: &'h str,
    /// The version whose view of the tables applies.
    version: Version,
}

/// Where a node sits (`amount[monetary][value]`), spelled out only when an error names it: building
/// every path as a `String` up front cost more than the checks themselves.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    /// `name` at the top level, `[name]` below it.
    Name(&'a Path<'a>, &'a str),
    /// `[i]`.
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Name(Path::Root, name) => f.write_str(name),
            Path::Name(parent, name) => write!(f, "{parent}[{name}]"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// `Received unknown parameter: …`, with a name of hostile length cut so the answer stays small.
fn unknown(path: &str) -> StripeError {
    StripeError::unknown_param(&shorten(path))
}

/// Pass one: any name that is not declared (or not in this version) is reported, deepest path
/// spelled in full.
fn check_unknown(params: &Params, fields: &[Field], prefix: &Path, at: At) -> StripeResult<()> {
    for (name, node) in params {
        let path = Path::Name(prefix, name);
        let Some(field) = fields
            .iter()
            .find(|f| f.name == name && f.known_in(at.version))
        else {
            return Err(unknown(&path.to_string()));
        };
        check_unknown_node(node, &field.spec, &path, at)?;
    }
    Ok(())
}

fn check_unknown_node(node: &Node, spec: &Spec, path: &Path, at: At) -> StripeResult<()> {
    match (spec, node) {
        (Spec::Unsupported, _) => Err(StripeError::invalid(format!(
            "The parameter {path} is not supported by the credit emulator{}.",
            at.hint
        ))
        .param(path.to_string())),
        (Spec::Obj(sub), Node::Map(m)) => check_unknown(m, sub, path, at),
        (Spec::Array(item, _), Node::Map(m)) => {
            for (k, v) in m {
                let p = Path::Name(path, k);
                if k.parse::<usize>().is_err() {
                    return Err(unknown(&p.to_string()));
                }
                check_unknown_node(v, item, &p, at)?;
            }
            Ok(())
        }
        (Spec::Array(item, _), Node::List(items)) => {
            for (i, v) in items.iter().enumerate() {
                check_unknown_node(v, item, &Path::Index(path, i), at)?;
            }
            Ok(())
        }
        (Spec::Metadata, _) => Ok(()),
        (Spec::StrMap(_), Node::Map(m)) => {
            for (k, v) in m {
                check_unknown_node(v, &Spec::Str(0), &Path::Name(path, k), at)?;
            }
            Ok(())
        }
        (Spec::Range, Node::Map(m)) => {
            for (k, v) in m {
                let p = Path::Name(path, k);
                if !RANGE_KEYS.contains(&k.as_str()) {
                    return Err(unknown(&p.to_string()));
                }
                check_unknown_node(v, &Spec::Int, &p, at)?;
            }
            Ok(())
        }
        // A scalar sent as a hash or array: its inner names are not parameters Stripe knows.
        (_, Node::Map(m)) => match m.keys().next() {
            Some(k) => Err(unknown(&format!("{path}[{k}]"))),
            None => Ok(()),
        },
        (Spec::Obj(_), Node::List(_)) | (_, Node::List(_)) => {
            if matches!(spec, Spec::Obj(_)) {
                Err(StripeError::invalid("Invalid hash").param(path.to_string()))
            } else {
                Err(unknown(&format!("{path}[]")))
            }
        }
        _ => Ok(()),
    }
}

/// Pass two: presence, `""` where it cannot unset, and types, in declaration order.
fn check_fields(params: &Params, fields: &[Field], prefix: &Path, v: Version) -> StripeResult<()> {
    for field in fields {
        let path = Path::Name(prefix, field.name);
        let required = field.required_in(v);
        match params.get(field.name) {
            None => {
                if required {
                    return Err(StripeError::missing_param(&path.to_string()));
                }
            }
            Some(Node::Value(s)) if s.is_empty() && !field.may_be_empty(v) => {
                return Err(cannot_unset(&path.to_string()));
            }
            Some(node) => check_node(node, &field.spec, &path, required, v)?,
        }
    }
    Ok(())
}

/// At most `max` characters; a string of at most `max` bytes cannot have more, so most are not
/// counted.
fn too_long(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().count() > max
}

fn check_node(
    node: &Node,
    spec: &Spec,
    path: &Path,
    required: bool,
    v: Version,
) -> StripeResult<()> {
    match spec {
        Spec::Str(max) => {
            let s = scalar(node, path)?;
            if too_long(s, *max) {
                return Err(StripeError::invalid(format!(
                    "Invalid string: {}; must be at most {max} characters",
                    shorten(s)
                ))
                .param(path.to_string()));
            }
            Ok(())
        }
        Spec::Int => {
            let s = scalar(node, path)?;
            parse_int(s)
                .map(|_| ())
                .ok_or_else(|| StripeError::invalid_integer(&path.to_string(), s))
        }
        Spec::TsOrEmpty => {
            let s = scalar(node, path)?;
            if s.is_empty() || parse_int(s).is_some() {
                Ok(())
            } else {
                Err(StripeError::invalid_integer(&path.to_string(), s))
            }
        }
        Spec::Bool => {
            let s = scalar(node, path)?;
            if s == "true" || s == "false" {
                Ok(())
            } else {
                Err(
                    StripeError::invalid(format!("Invalid boolean: {}", shorten(s)))
                        .param(path.to_string()),
                )
            }
        }
        Spec::Enum(values) => {
            let s = scalar(node, path)?;
            if values.contains(&s) {
                Ok(())
            } else {
                // `""` (where a value may be cleared) is not one of the values worth listing.
                let listed: Vec<&str> = values.iter().copied().filter(|v| !v.is_empty()).collect();
                Err(StripeError::invalid(format!(
                    "Invalid {}: must be one of {}",
                    path,
                    one_of(&listed)
                ))
                .param(path.to_string()))
            }
        }
        Spec::Obj(fields) => match node {
            Node::Map(m) => check_fields(m, fields, path, v),
            Node::Value(v) if v.is_empty() && required => {
                Err(StripeError::missing_param(&path.to_string()))
            }
            Node::Value(v) if v.is_empty() => Ok(()),
            _ => Err(StripeError::invalid("Invalid hash").param(path.to_string())),
        },
        Spec::Metadata => check_metadata(node, path),
        Spec::StrMap(max) => match node {
            Node::Map(m) => {
                for (k, value) in m {
                    check_node(value, &Spec::Str(*max), &Path::Name(path, k), true, v)?;
                }
                Ok(())
            }
            Node::Value(s) if s.is_empty() && required => {
                Err(StripeError::missing_param(&path.to_string()))
            }
            _ => Err(StripeError::invalid("Invalid hash").param(path.to_string())),
        },
        Spec::Array(item, max) => {
            let items = match node {
                Node::Value(v) if v.is_empty() => return Ok(()),
                Node::Value(_) => {
                    return Err(StripeError::invalid("Invalid array").param(path.to_string()))
                }
                _ => list_items(node),
            };
            if items.len() > *max {
                return Err(StripeError::invalid(format!(
                    "Invalid array: {path} can have at most {max} items, but you passed {}.",
                    items.len()
                ))
                .param(path.to_string()));
            }
            for (i, n) in items.iter().enumerate() {
                check_node(n, item, &Path::Index(path, i), true, v)?;
            }
            Ok(())
        }
        Spec::Range => match node {
            Node::Map(m) => {
                for (k, bound) in m {
                    check_node(bound, &Spec::Int, &Path::Name(path, k), true, v)?;
                }
                Ok(())
            }
            _ => check_node(node, &Spec::Int, path, required, v),
        },
        Spec::Unsupported => Ok(()),
    }
}

fn check_metadata(node: &Node, path: &Path) -> StripeResult<()> {
    let m = match node {
        Node::Value(v) if v.is_empty() => return Ok(()),
        Node::Map(m) => m,
        _ => return Err(StripeError::invalid("Invalid hash").param(path.to_string())),
    };
    if m.len() > METADATA_KEYS {
        return Err(StripeError::invalid(format!(
            "Metadata can have up to {METADATA_KEYS} keys, but you've set {}.",
            m.len()
        ))
        .param(path.to_string()));
    }
    for (k, v) in m {
        if too_long(k, METADATA_KEY_LEN) {
            return Err(StripeError::invalid(format!(
                "Invalid key: {} must be a string under {METADATA_KEY_LEN} characters",
                shorten(k)
            ))
            .param(path.to_string()));
        }
        match v {
            Node::Value(s) if !too_long(s, METADATA_VALUE_LEN) => {}
            Node::Value(s) => {
                return Err(StripeError::invalid(format!(
                    "Invalid val: {} must be a string under {METADATA_VALUE_LEN} characters",
                    shorten(s)
                ))
                .param(path.to_string()))
            }
            _ => {
                return Err(StripeError::invalid(format!(
                    "Invalid val: a hash or array for key {} must be a string under {METADATA_VALUE_LEN} characters",
                    shorten(k)
                ))
                .param(path.to_string()))
            }
        }
    }
    Ok(())
}

fn scalar<'a>(node: &'a Node, path: &Path) -> StripeResult<&'a str> {
    match node {
        Node::Value(s) => Ok(s),
        Node::Map(_) => Err(StripeError::invalid("Invalid hash").param(path.to_string())),
        Node::List(_) => Err(StripeError::invalid("Invalid array").param(path.to_string())),
    }
}

/// `a or b`; `a, b, or c`.
pub fn one_of(values: &[&str]) -> String {
    match values {
        [] => String::new(),
        [a] => a.to_string(),
        [a, b] => format!("{a} or {b}"),
        [rest @ .., last] => format!("{}, or {last}", rest.join(", ")),
    }
}

/// Stripe's integers: optional sign and digits, within 64 bits. `1.0`, `1e3` and ` 1` are not integers.
pub fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The items of an array node: appended lists as they are, indexed hashes in index order.
pub fn list_items(node: &Node) -> Vec<&Node> {
    match node {
        Node::List(items) => items.iter().collect(),
        Node::Map(m) => {
            let mut items: Vec<(usize, &Node)> = m
                .iter()
                .filter_map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, v)))
                .collect();
            items.sort_by_key(|(i, _)| *i);
            items.into_iter().map(|(_, v)| v).collect()
        }
        Node::Value(_) => Vec::new(),
    }
}

// ---- accessors for validated trees ----

/// A string parameter.
pub fn get_str<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    match params.get(name) {
        Some(Node::Value(s)) => Some(s),
        _ => None,
    }
}

/// A string parameter where `""` means "clear": `None` absent, `Some(None)` clear, `Some(Some(s))` set.
pub fn get_nullable_str(params: &Params, name: &str) -> Option<Option<String>> {
    get_str(params, name).map(|s| (!s.is_empty()).then(|| s.to_string()))
}

/// An integer parameter.
pub fn get_int(params: &Params, name: &str) -> Option<i64> {
    get_str(params, name).and_then(parse_int)
}

/// A hash parameter.
pub fn get_obj<'a>(params: &'a Params, name: &str) -> Option<&'a Params> {
    match params.get(name) {
        Some(Node::Map(m)) => Some(m),
        _ => None,
    }
}

/// The `expand[]` list.
pub fn get_expand(params: &Params) -> Vec<String> {
    params
        .get("expand")
        .map(|n| {
            list_items(n)
                .into_iter()
                .filter_map(|n| match n {
                    Node::Value(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a metadata parameter asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataUpdate {
    /// `metadata=`: remove every key.
    Clear,
    /// `metadata[k]=v` sets, `metadata[k]=` removes that key.
    Merge(Vec<(String, Option<String>)>),
}

/// Reads a validated metadata parameter.
pub fn get_metadata(params: &Params, name: &str) -> Option<MetadataUpdate> {
    match params.get(name)? {
        Node::Value(_) => Some(MetadataUpdate::Clear),
        Node::Map(m) => Some(MetadataUpdate::Merge(
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Node::Value(s) if !s.is_empty() => Some(s.clone()),
                        _ => None,
                    };
                    (k.clone(), v)
                })
                .collect(),
        )),
        Node::List(_) => None,
    }
}

/// Applies a metadata update to existing metadata. Stripe checks the key count after merging.
pub fn apply_metadata(
    existing: &crate::model::Metadata,
    update: MetadataUpdate,
    param: &str,
) -> StripeResult<crate::model::Metadata> {
    let out = match update {
        MetadataUpdate::Clear => crate::model::Metadata::new(),
        MetadataUpdate::Merge(pairs) => {
            existing.merged(pairs.iter().map(|(k, v)| (k.as_str(), v.as_deref())))
        }
    };
    too_many_keys(out.len(), param)?;
    Ok(out)
}

/// The validated metadata parameter `name` of `params` as the metadata of a new object (`""`
/// values are left out); `param` spells where it is in errors (`items[0][metadata]`). Read in
/// place: a create need not copy each pair into an update first.
pub fn new_metadata(
    params: &Params,
    name: &str,
    param: &str,
) -> StripeResult<crate::model::Metadata> {
    let Some(Node::Map(m)) = params.get(name) else {
        return Ok(crate::model::Metadata::new());
    };
    let out = crate::model::Metadata::new().merged(m.iter().map(|(k, v)| {
        let v = match v {
            Node::Value(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        };
        (k.as_str(), v)
    }));
    too_many_keys(out.len(), param)?;
    Ok(out)
}

fn too_many_keys(keys: usize, param: &str) -> StripeResult<()> {
    if keys > METADATA_KEYS {
        return Err(StripeError::invalid(format!(
            "Metadata can have up to {METADATA_KEYS} keys, but you've set {keys}."
        ))
        .param(param));
    }
    Ok(())
}

/// Stripe's answer to `""` for a parameter that cannot be cleared.
pub fn cannot_unset(param: &str) -> StripeError {
    let param = shorten(param);
    StripeError::invalid(format!(
        "You passed an empty string for '{param}'. We assume empty values are an attempt to unset a parameter; however '{param}' cannot be unset. You should remove '{param}' from your request or supply a non-empty value."
    ))
    .param(param)
    .code("parameter_invalid_empty")
}

/// An integer parameter within `min..=max`, or Stripe's error naming the bound it crossed.
pub fn in_range(n: i64, min: i64, max: i64, param: &str) -> StripeResult<i64> {
    let bound = if n < min {
        format!("greater than or equal to {min}")
    } else if n > max {
        format!("less than or equal to {max}")
    } else {
        return Ok(n);
    };
    Err(StripeError::invalid(format!("This value must be {bound}."))
        .param(param)
        .code("parameter_invalid_integer"))
}

/// A unix timestamp parameter as model time, or a clear error if it is outside the supported range.
pub fn timestamp(secs: i64, param: &str) -> StripeResult<i64> {
    from_secs(secs).ok_or_else(|| {
        StripeError::invalid(format!("Invalid timestamp: {secs} is out of range."))
            .param(param)
            .code("parameter_invalid_integer")
    })
}

/// A currency code parameter, or Stripe's error listing the supported ones.
pub fn currency(code: &str, param: &str) -> StripeResult<Currency> {
    Currency::parse(code).ok_or_else(|| {
        StripeError::invalid(format!(
            "Invalid currency: {}. Stripe currently supports these currencies: {}",
            shorten(&code.to_ascii_lowercase()),
            money::supported().join(", ")
        ))
        .param(param)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::{parse, FormLimits};

    const AMOUNT: &[Field] = &[
        req("type", Spec::Enum(&["monetary"])),
        opt("value", Spec::Int),
    ];
    const FIELDS: &[Field] = &[
        req("amount", Spec::Obj(AMOUNT)),
        opt("name", Spec::Str(5)),
        opt("metadata", Spec::Metadata),
        opt("tags", Spec::Array(&Spec::Str(10), 2)),
        opt("fax", Spec::Unsupported),
        EXPAND,
    ];

    fn check(s: &str) -> Result<(), StripeError> {
        validate(&parse(s, &FormLimits::default()).unwrap(), FIELDS, "")
    }

    fn message(s: &str) -> String {
        check(s).unwrap_err().message
    }

    #[test]
    fn unknown_comes_first_with_full_path() {
        let e = check("amount[foo]=1").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("amount[foo]"));
        assert_eq!(e.code, Some("parameter_unknown"));
        assert_eq!(
            message("name=toolong&zzz=1"),
            "Received unknown parameter: zzz"
        );
        assert_eq!(
            message("amount[type]=x&name[a]=1"),
            "Received unknown parameter: name[a]"
        );
        assert_eq!(
            message("amount[type]=monetary&tags[x]=1"),
            "Received unknown parameter: tags[x]"
        );
    }

    #[test]
    fn missing_then_types() {
        assert_eq!(message("name=a"), "Missing required param: amount.");
        assert_eq!(
            message("amount[value]=1"),
            "Missing required param: amount[type]."
        );
        assert_eq!(
            message("amount[type]=coins"),
            "Invalid amount[type]: must be one of monetary"
        );
        assert_eq!(
            message("amount[type]=monetary&amount[value]=1.5"),
            "Invalid integer: 1.5"
        );
        assert_eq!(
            message("amount[type]=monetary&name=abcdef"),
            "Invalid string: abcdef; must be at most 5 characters"
        );
        assert!(check("amount[type]=monetary&tags[0]=a&tags[1]=b&expand[]=x").is_ok());
        assert!(message("amount[type]=monetary&tags[]=a&tags[]=b&tags[]=c")
            .starts_with("Invalid array"));
        assert!(message("amount[type]=monetary&fax=1").contains("not supported"));
        assert_eq!(message("amount=5"), "Invalid hash");
    }

    #[test]
    fn metadata_limits() {
        let many: Vec<String> = (0..51).map(|i| format!("metadata[k{i}]=v")).collect();
        assert!(
            message(&format!("amount[type]=monetary&{}", many.join("&")))
                .starts_with("Metadata can have up to 50 keys")
        );
        let long_key = "k".repeat(41);
        assert!(
            message(&format!("amount[type]=monetary&metadata[{long_key}]=v"))
                .starts_with("Invalid key")
        );
        let long_val = "v".repeat(501);
        assert!(
            message(&format!("amount[type]=monetary&metadata[k]={long_val}"))
                .starts_with("Invalid val")
        );
        assert!(check("amount[type]=monetary&metadata=").is_ok());
    }

    #[test]
    fn string_maps() {
        const EVENT: &[Field] = &[req("payload", Spec::StrMap(3))];
        let check = |s: &str| validate(&parse(s, &FormLimits::default()).unwrap(), EVENT, "");
        assert!(check("payload[a]=1&payload[b]=&payload[c]=xyz").is_ok());
        let e = check("payload[a]=1&payload[b][c]=2").unwrap_err();
        assert_eq!(
            (e.code, e.param.as_deref()),
            (Some("parameter_unknown"), Some("payload[b][c]"))
        );
        let e = check("payload[a][]=2").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("payload[a][]"));
        let e = check("payload[a]=long").unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.param.as_deref()),
            (
                "Invalid string: long; must be at most 3 characters",
                Some("payload[a]")
            )
        );
        assert_eq!(check("payload=x").unwrap_err().message, "Invalid hash");
        let e = check("payload=").unwrap_err();
        assert_eq!(
            (e.code, e.param.as_deref()),
            (Some("parameter_invalid_empty"), Some("payload"))
        );
        assert_eq!(
            check("").unwrap_err().message,
            "Missing required param: payload."
        );
    }

    #[test]
    fn range_filters() {
        const LIST: &[Field] = &[opt("created", Spec::Range)];
        let check = |s: &str| validate(&parse(s, &FormLimits::default()).unwrap(), LIST, "");
        assert!(check("created=5").is_ok());
        assert!(check("created[gt]=1&created[gte]=2&created[lt]=3&created[lte]=-4").is_ok());
        let e = check("created[gte]=soon").unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.param.as_deref(), e.code),
            (
                "Invalid integer: soon",
                Some("created[gte]"),
                Some("parameter_invalid_integer")
            )
        );
        assert_eq!(
            check("created=").unwrap_err().code,
            Some("parameter_invalid_empty")
        );
        for (bad, param) in [
            ("created[foo]=1", "created[foo]"),
            ("created[gt][x]=1", "created[gt][x]"),
            ("created[]=1", "created[]"),
        ] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.code, Some("parameter_unknown"), "{bad}");
            assert_eq!(e.param.as_deref(), Some(param), "{bad}");
        }
    }

    #[test]
    fn empty_strings_unset_only_what_may_be_unset() {
        let empty = |s: &str| {
            let e = check(s).unwrap_err();
            assert_eq!(
                e.code,
                Some("parameter_invalid_empty"),
                "{s}: {}",
                e.message
            );
            e.param.unwrap_or_default()
        };
        // Required, in declaration order, nested paths spelled in full.
        assert_eq!(empty("amount[type]=&amount[value]=1"), "amount[type]");
        assert_eq!(
            empty("amount[type]=monetary&amount[value]="),
            "amount[value]"
        );
        assert_eq!(empty("amount="), "amount");
        assert_eq!(
            message("amount[type]="),
            "You passed an empty string for 'amount[type]'. We assume empty values are an attempt to unset a parameter; however 'amount[type]' cannot be unset. You should remove 'amount[type]' from your request or supply a non-empty value."
        );
        // Unknown parameters still come first; declaration order decides among the rest.
        assert_eq!(
            check("amount[type]=&zzz=1").unwrap_err().code,
            Some("parameter_unknown")
        );
        // What may be emptied stays accepted.
        assert!(check("amount[type]=monetary&name=&metadata=&tags=").is_ok());
        const MORE: &[Field] = &[
            opt("n", Spec::Int),
            opt("b", Spec::Bool),
            opt("e", Spec::Enum(&["x"])),
            opt("clearable", Spec::Enum(&["", "x"])),
            opt("ts", Spec::TsOrEmpty),
            opt("was_required", Spec::Str(9)).required_before(Change::CustomerAccount),
        ];
        let check = |s: &str| validate(&parse(s, &FormLimits::default()).unwrap(), MORE, "");
        for s in ["n=", "b=", "e=", "was_required="] {
            assert_eq!(
                check(s).unwrap_err().code,
                Some("parameter_invalid_empty"),
                "{s}"
            );
        }
        assert!(check("clearable=&ts=").is_ok());
    }

    #[test]
    fn ints_and_words() {
        assert_eq!(parse_int("-5"), Some(-5));
        assert_eq!(parse_int("99999999999999999999"), None);
        assert_eq!(parse_int("1e3"), None);
        assert_eq!(parse_int("-"), None);
        assert_eq!(one_of(&["a", "b", "c"]), "a, b, or c");
    }
}
