//! A request's parameters as Stripe reads them: the query string and, for form bodies, the body,
//! decoded into one tree, within the configured limits. A body of another type is refused, except
//! on Stripe's v2 paths (`/v2/…`), whose bodies are JSON objects: those become the same tree.

use crate::form::{self, FormError, FormLimits, Node, Params};
use crate::http::{names, Request};

use super::envelope::{shorten, StripeError, StripeResult};

/// Decodes the query string and, for form bodies, the body into one tree.
pub fn decode(req: &Request, limits: &FormLimits) -> StripeResult<Params> {
    // Sized for a create's dozen top-level names, so the map is not regrown while decoding.
    let mut params = Params::with_capacity(16);
    let mut count = 0;
    if let Some(q) = &req.query {
        form::parse_into(&mut params, q.as_bytes(), limits, &mut count).map_err(form_error)?;
    }
    if !req.body.is_empty() {
        let content_type = req.header(&names::CONTENT_TYPE).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if req.path.starts_with("/v2/") {
            if !mime.is_empty() && !mime.eq_ignore_ascii_case("application/json") {
                return Err(unsupported(content_type));
            }
            json_into(&mut params, &req.body, limits, &mut count)?;
            return Ok(params);
        }
        if !mime.is_empty() && !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(unsupported(content_type));
        }
        form::parse_into(&mut params, &req.body, limits, &mut count).map_err(form_error)?;
    }
    Ok(params)
}

fn unsupported(content_type: &str) -> StripeError {
    StripeError::invalid(format!(
        "Invalid request: unsupported Content-Type {}. If error persists and you need assistance, please contact support@stripe.com.",
        shorten(content_type)
    ))
}

/// A v2 body: a JSON object, read into the tree as a form would have put it. Strings, numbers and
/// booleans are values (as text), objects are hashes, arrays are lists, and `null` is a parameter
/// not sent. The same limits bound it: pairs counted once per value, and nesting.
fn json_into(
    params: &mut Params,
    body: &[u8],
    limits: &FormLimits,
    count: &mut usize,
) -> StripeResult<()> {
    let invalid = || {
        StripeError::invalid(
            "Invalid request: the body is not a JSON object. Stripe's v2 endpoints take a JSON object as the request body.",
        )
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| invalid())?;
    let serde_json::Value::Object(fields) = value else {
        return Err(invalid());
    };
    let mut path = String::new();
    for (name, value) in fields {
        path.clear();
        path.push_str(&name);
        if let Some(node) = json_node(value, &mut path, 0, limits, count)? {
            params.insert(name, node);
        }
    }
    Ok(())
}

/// `value`, the parameter spelled `path` (`events[0][payload]`), as a node. `path` is one buffer
/// for the whole body, grown and cut back as the walk goes down and up: a JSON body has many
/// nodes, and only a refusal reads it.
fn json_node(
    value: serde_json::Value,
    path: &mut String,
    depth: usize,
    limits: &FormLimits,
    count: &mut usize,
) -> StripeResult<Option<Node>> {
    use std::fmt::Write;

    use serde_json::Value;
    if depth > limits.max_depth {
        return Err(form_error(FormError::TooDeep {
            param: path.clone(),
            limit: limits.max_depth,
        }));
    }
    let mut leaf = |text: String| {
        form::count_pair(count, limits).map_err(form_error)?;
        Ok(Some(Node::Value(text)))
    };
    let at = path.len();
    match value {
        Value::Null => Ok(None),
        Value::String(s) => leaf(s),
        Value::Number(n) => leaf(n.to_string()),
        Value::Bool(b) => leaf(b.to_string()),
        Value::Array(items) => {
            let mut list = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let _ = write!(path, "[{i}]");
                let node = json_node(item, path, depth + 1, limits, count)?;
                path.truncate(at);
                list.extend(node);
            }
            Ok(Some(Node::List(list)))
        }
        Value::Object(fields) => {
            let mut map = Params::with_capacity(fields.len());
            for (key, item) in fields {
                let _ = write!(path, "[{key}]");
                let node = json_node(item, path, depth + 1, limits, count)?;
                path.truncate(at);
                if let Some(node) = node {
                    map.insert(key, node);
                }
            }
            Ok(Some(Node::Map(map)))
        }
    }
}

fn form_error(e: FormError) -> StripeError {
    match e {
        FormError::BadEncoding => StripeError::invalid(
            "Invalid request: the parameters are not valid application/x-www-form-urlencoded data (a '%' escape is broken, or the decoded bytes are not UTF-8).",
        ),
        FormError::TooManyParams { limit } => StripeError::invalid(format!(
            "Invalid request: too many parameters (the emulator accepts at most {limit} per request)."
        )),
        FormError::TooDeep { param, limit } => {
            let param = shorten(&param);
            StripeError::invalid(format!(
                "Invalid request: the parameter {param} is nested too deeply (the emulator accepts at most {limit} levels of brackets)."
            ))
            .param(param)
        }
        FormError::Conflict { param } => {
            let param = shorten(&param);
            StripeError::invalid(format!(
                "Invalid request: the parameter {param} was sent both as a single value and as a hash or array."
            ))
            .param(param)
        }
    }
}
