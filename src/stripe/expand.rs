//! `expand[]`: replacing an id with the object it names, on single objects and (`data.x`) on lists,
//! and on through the expanded object's own expandable fields (`customer.test_clock`).

use serde_json::Value;

use crate::wire::envelope::{shorten, StripeError, StripeResult};

/// The most levels one path may name (`data` counts as one), as Stripe allows.
pub const MAX_DEPTH: usize = 4;

/// Checks every requested path, in order: at most [`MAX_DEPTH`] levels, then expandable. A path is
/// expandable when it is one of `allowed`, or one of `allowed` followed by a path that is
/// expandable within the object that field names (`within(field)` lists those, by the field's
/// last segment: `customer` names a customer).
pub fn check(
    paths: &[String],
    allowed: &[&str],
    within: &dyn Fn(&str) -> &'static [&'static str],
) -> StripeResult<()> {
    for p in paths {
        if p.split('.').count() > MAX_DEPTH {
            return Err(StripeError::invalid(format!(
                "You cannot expand more than {MAX_DEPTH} levels of a property. Property: {}",
                shorten(p)
            ))
            .code("property_expansion_max_depth"));
        }
        if !expandable(p, allowed, within) {
            return Err(StripeError::invalid(format!(
                "This property cannot be expanded ({}).",
                shorten(p)
            )));
        }
    }
    Ok(())
}

/// Whether `path` is one of `allowed` or goes on from one of them into the object it names. Each
/// step consumes at least one segment, so the recursion ends.
fn expandable(
    path: &str,
    allowed: &[&str],
    within: &dyn Fn(&str) -> &'static [&'static str],
) -> bool {
    allowed.iter().any(|a| {
        if path == *a {
            return true;
        }
        let Some(rest) = path.strip_prefix(a).and_then(|r| r.strip_prefix('.')) else {
            return false;
        };
        let field = a.rsplit('.').next().unwrap_or(a);
        let inner = within(field);
        !inner.is_empty() && expandable(rest, inner, within)
    })
}

/// Paths `expand[]` accepts on an invoice: its own endpoints' list, and what an expanded invoice
/// lets a path go on to. Kept here, beside [`within`], so that the two agree.
pub const INVOICE: &[&str] = &[
    "customer",
    "test_clock",
    "total_pretax_credit_amounts.credit_balance_transaction",
];

/// The paths `expand[]` may name within the object an expandable field (by its last segment) puts
/// in place of an id, for paths that go on past it (`customer.test_clock`,
/// `data.credit_grant.customer`). The same paths the object's own endpoints accept, so an object
/// expands the same wherever it appears.
pub fn within(field: &str) -> &'static [&'static str] {
    match field {
        "customer" => &["test_clock"],
        "credit_grant" => &["customer", "test_clock"],
        "invoice" | "latest_invoice" => INVOICE,
        "product" => &["default_price"],
        "default_price" => &["product"],
        "subscription" => &["customer", "latest_invoice", "test_clock"],
        "credit_balance_transaction" => &[
            "credit_grant",
            "test_clock",
            "credit.credits_application_invoice_voided.invoice",
            "debit.credits_applied.invoice",
        ],
        _ => &[],
    }
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
    let Some(field) = value.get_mut(head) else {
        return;
    };
    // An array (a list's `data`, or a field such as an invoice's `total_pretax_credit_amounts`):
    // the rest of the path applies to each of its items.
    if let Value::Array(items) = field {
        if let Some(rest) = rest {
            for item in items {
                apply_path(item, rest, resolve);
            }
        }
        return;
    }
    if let Value::String(id) = field {
        if let Some(obj) = resolve(head, id) {
            *field = obj;
        }
    }
    if let Some(rest) = rest {
        apply_path(field, rest, resolve);
    }
}
