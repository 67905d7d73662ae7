//! `expand[]`: replacing an id with the object it names, on single objects and (`data.x`) on lists.

use serde_json::Value;

use crate::wire::envelope::{shorten, StripeError, StripeResult};

/// Checks every requested path against the expandable ones.
pub fn check(paths: &[String], allowed: &[&str]) -> StripeResult<()> {
    for p in paths {
        if !allowed.contains(&p.as_str()) {
            return Err(StripeError::invalid(format!(
                "This property cannot be expanded ({}).",
                shorten(p)
            )));
        }
    }
    Ok(())
}

/// Expands `paths` (already checked) in `value`. `resolve(field, id)` renders the object behind an id.
pub fn apply(value: &mut Value, paths: &[String], resolve: &dyn Fn(&str, &str) -> Option<Value>) {
    for path in paths {
        apply_path(value, path, resolve);
    }
}

fn apply_path(value: &mut Value, path: &str, resolve: &dyn Fn(&str, &str) -> Option<Value>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    if head == "data" {
        if let (Some(Value::Array(items)), Some(rest)) = (value.get_mut("data"), rest) {
            for item in items {
                apply_path(item, rest, resolve);
            }
        }
        return;
    }
    let Some(field) = value.get_mut(head) else {
        return;
    };
    if let Value::String(id) = field {
        if let Some(obj) = resolve(head, id) {
            *field = obj;
        }
    }
    if let Some(rest) = rest {
        apply_path(field, rest, resolve);
    }
}
