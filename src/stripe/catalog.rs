//! What products and prices share in Stripe's language: how their ids are spelled and found, how
//! an amount is read (`unit_amount` or `unit_amount_decimal`) and shown, and how `recurring` is
//! read. `products` and `prices` both build on this file, so neither needs the other's.

use rust_decimal::Decimal;

use super::ids;
use crate::form::Params;
use crate::ids::Key;
use crate::model::{CatalogError, Interval, Product, Recurring, TaxBehavior, Tenant, UsageType};
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{get_int, get_str, in_range};

/// At most this many decimal places in a `…_decimal` amount.
pub const MAX_DECIMAL_PLACES: u32 = 12;

/// The `recurring[interval]` values.
pub const INTERVALS: &[&str] = &["day", "month", "week", "year"];

/// The `tax_behavior` values.
pub const TAX_BEHAVIORS: &[&str] = &["exclusive", "inclusive", "unspecified"];

/// A product's id: the one its creator chose, else `prod_` and its key.
pub fn product_id(p: &Product) -> String {
    match &p.custom_id {
        Some(id) => id.clone(),
        None => ids::render(ids::PRODUCT, p.key),
    }
}

/// The id of the product `key` of `t` (see [`product_id`]); `prod_` and the key if it is gone.
pub fn product_id_of(t: &Tenant, key: Key) -> String {
    t.product(key)
        .map_or_else(|| ids::render(ids::PRODUCT, key), product_id)
}

/// The product spelled `id`: a chosen id first, then a generated one (of a product that has no
/// chosen id, which is the only spelling such a product answers to).
pub fn find_product(t: &Tenant, id: &str) -> Option<Key> {
    t.product_with_custom_id(id).or_else(|| {
        ids::key_of(id, ids::PRODUCT)
            .filter(|k| t.product(*k).is_some_and(|p| p.custom_id.is_none()))
    })
}

/// The price spelled `id`.
pub fn find_price(t: &Tenant, id: &str) -> Option<Key> {
    ids::key_of(id, ids::PRICE).filter(|k| t.price(*k).is_some())
}

/// `No such product: 'id'` for `param` (404 when the id is the path's).
pub fn no_such_product(id: &str, param: &str, status: u16) -> StripeError {
    StripeError::no_such("product", id, param, status)
}

/// `No such price: 'id'` for `param` (404 when the id is the path's).
pub fn no_such_price(id: &str, param: &str, status: u16) -> StripeError {
    StripeError::no_such("price", id, param, status)
}

/// A decimal amount in minor units as Stripe reads `…_decimal` parameters: digits with at most one
/// point and at most twelve decimal places, not negative.
pub fn decimal(s: &str, param: &str) -> StripeResult<Decimal> {
    let invalid = |why: &str| {
        StripeError::invalid(format!("Invalid decimal: {}{why}", shorten(s))).param(param)
    };
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !(whole.is_empty() && fraction.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && fraction.is_empty());
    if !well_formed {
        return Err(invalid(""));
    }
    if fraction.len() > MAX_DECIMAL_PLACES as usize {
        return Err(invalid("; must have at most 12 decimal places"));
    }
    let value: Decimal = s.parse().map_err(|_| invalid("; the value is too large"))?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(invalid("; must be greater than or equal to 0"));
    }
    Ok(value.abs().normalize())
}

/// A non-negative integer amount in minor units.
pub fn integer_amount(n: i64, param: &str) -> StripeResult<Decimal> {
    in_range(n, 0, i64::MAX, param).map(Decimal::from)
}

/// `name` inside the hash at `prefix` (`tiers[0]` + `unit_amount` = `tiers[0][unit_amount]`).
fn nested(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}[{name}]")
    }
}

/// `You may only specify one of these parameters: a, b.` for the pair `a`, `b` of `p` (the hash
/// at `prefix`), when both are sent; `param` names `a`.
pub fn only_one(p: &Params, a: &str, b: &str, prefix: &str) -> StripeResult<()> {
    if p.contains_key(a) && p.contains_key(b) {
        return Err(StripeError::invalid(format!(
            "You may only specify one of these parameters: {a}, {b}."
        ))
        .param(nested(prefix, a)));
    }
    Ok(())
}

/// The amount of the pair `name` / `name_decimal` of `p`, if either is sent (both: Stripe's
/// one-of error). `prefix` spells where `p` is (`tiers[0]`, `default_price_data`).
pub fn amount_pair(p: &Params, name: &str, prefix: &str) -> StripeResult<Option<Decimal>> {
    let decimal_name = format!("{name}_decimal");
    only_one(p, name, &decimal_name, prefix)?;
    if let Some(n) = get_int(p, name) {
        return integer_amount(n, &nested(prefix, name)).map(Some);
    }
    match get_str(p, &decimal_name) {
        Some(s) => decimal(s, &nested(prefix, &decimal_name)).map(Some),
        None => Ok(None),
    }
}

/// An amount as Stripe shows the pair: the integer when it is whole (and fits), and always the
/// decimal string, without trailing zeros.
pub fn shown_amount(amount: Decimal) -> (Option<i64>, String) {
    use rust_decimal::prelude::ToPrimitive;
    let whole = (amount.fract().is_zero())
        .then(|| amount.to_i64())
        .flatten();
    (whole, amount.normalize().to_string())
}

/// The interval named by a validated enum value.
pub fn interval(s: &str) -> Interval {
    match s {
        "day" => Interval::Day,
        "week" => Interval::Week,
        "year" => Interval::Year,
        _ => Interval::Month,
    }
}

/// How Stripe spells an interval.
pub fn interval_name(i: Interval) -> &'static str {
    match i {
        Interval::Day => "day",
        Interval::Week => "week",
        Interval::Month => "month",
        Interval::Year => "year",
    }
}

/// The tax behaviour named by a validated enum value.
pub fn tax_behavior(s: &str) -> TaxBehavior {
    match s {
        "exclusive" => TaxBehavior::Exclusive,
        "inclusive" => TaxBehavior::Inclusive,
        _ => TaxBehavior::Unspecified,
    }
}

/// How Stripe spells a tax behaviour.
pub fn tax_behavior_name(t: TaxBehavior) -> &'static str {
    match t {
        TaxBehavior::Exclusive => "exclusive",
        TaxBehavior::Inclusive => "inclusive",
        TaxBehavior::Unspecified => "unspecified",
    }
}

/// `recurring[interval]` and `recurring[interval_count]` of a validated `recurring` hash at
/// `path`, with a metered usage type and meter left to the caller: at least 1, and at most three
/// years per period.
pub fn recurring(r: &Params, path: &str) -> StripeResult<Recurring> {
    let interval = interval(get_str(r, "interval").unwrap_or("month"));
    let count_param = format!("{path}[interval_count]");
    let count = match get_int(r, "interval_count") {
        Some(n) => in_range(n, 1, i64::from(u32::MAX), &count_param)? as u32,
        None => 1,
    };
    if count > interval.max_count() {
        return Err(StripeError::invalid(format!(
            "Invalid {count_param}: a price's interval can be at most three years (3 years, 36 months, 156 weeks or 1095 days); {count} {}s is longer.",
            interval_name(interval)
        ))
        .param(count_param));
    }
    Ok(Recurring {
        interval,
        interval_count: count,
        usage_type: UsageType::Licensed,
        meter: None,
    })
}

/// A validated boolean parameter.
pub fn get_bool(p: &Params, name: &str) -> Option<bool> {
    get_str(p, name).map(|s| s == "true")
}

/// A caller-chosen product id: letters, digits, `_`, `-` and `.`, so that it can stand in a path.
pub fn chosen_product_id(id: &str, param: &str) -> StripeResult<String> {
    if id.is_empty() {
        return Err(crate::wire::params::cannot_unset(param));
    }
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !ok {
        return Err(StripeError::invalid(format!(
            "Invalid {param}: {}; an id may contain only letters, digits, '_', '-' and '.'",
            shorten(id)
        ))
        .param(param));
    }
    Ok(id.to_string())
}

/// A statement descriptor as Stripe accepts it: none of `<`, `>`, `\`, `"`, `'`, and at least one
/// letter (the length is checked by the parameter table).
pub fn statement_descriptor(s: &str, param: &str) -> StripeResult<String> {
    let forbidden = s
        .chars()
        .any(|c| matches!(c, '<' | '>' | '\\' | '"' | '\''));
    if forbidden || !s.chars().any(char::is_alphabetic) {
        return Err(StripeError::invalid(format!(
            "Invalid {param}: {}; a statement descriptor may not contain <, >, \\, \" or ' and must contain at least one letter.",
            shorten(s)
        ))
        .param(param));
    }
    Ok(s.to_string())
}

/// The refusal of a catalogue command, worded as Stripe words it; `meter_id` is the meter the
/// request named, if any.
pub fn catalog_error(e: CatalogError, meter_id: &str) -> StripeError {
    match e {
        CatalogError::LookupKeyTaken(holder) => StripeError::invalid(format!(
            "A price (`{}`) already uses that lookup key.",
            ids::render(ids::PRICE, holder)
        ))
        .param("lookup_key"),
        CatalogError::ProductIdTaken => StripeError::invalid("Product already exists.")
            .param("id")
            .code("resource_already_exists"),
        CatalogError::ProductHasPrices => StripeError::invalid(
            "This product cannot be deleted because it has one or more user-created prices.",
        ),
        CatalogError::DefaultPriceArchived => StripeError::invalid(
            "This price cannot be archived because it is the default price of its product.",
        ),
        CatalogError::TaxBehaviorFixed => StripeError::invalid(
            "The tax_behavior of a price cannot be changed once it is inclusive or exclusive.",
        )
        .param("tax_behavior"),
        CatalogError::NoSuchMeter => {
            StripeError::no_such("billing meter", meter_id, "recurring[meter]", 400)
        }
        CatalogError::MeterInactive => StripeError::invalid(format!(
            "The meter `{}` is inactive. A deactivated meter cannot be attached to a price; reactivate it first.",
            shorten(meter_id)
        ))
        .param("recurring[meter]"),
        CatalogError::PriceOfOtherProduct => StripeError::invalid(
            "The default price must be one of this product's prices.",
        )
        .param("default_price"),
        CatalogError::NoSuchProduct => StripeError::internal(),
        CatalogError::NoSuchPrice => StripeError::internal(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_as_stripe_reads_them() {
        let ok = |s: &str| decimal(s, "x").map(|d| d.to_string());
        assert_eq!(ok("12.50").as_deref(), Ok("12.5"));
        assert_eq!(ok("0.000000000001").as_deref(), Ok("0.000000000001"));
        assert_eq!(ok("2000").as_deref(), Ok("2000"));
        assert_eq!(ok("-0").as_deref(), Ok("0"));
        for bad in ["", ".", "1.", "1e3", "abc", "1.2.3", " 1", "0x10", "+1"] {
            assert!(decimal(bad, "x").is_err(), "{bad:?}");
        }
        assert!(decimal("0.0000000000001", "x")
            .unwrap_err()
            .message
            .contains("12 decimal places"));
        assert!(decimal("-1", "x").unwrap_err().message.contains("greater"));
        assert!(decimal(&"9".repeat(40), "x").is_err());
        assert_eq!(
            shown_amount(Decimal::from(2000)),
            (Some(2000), "2000".into())
        );
        assert_eq!(
            shown_amount("12.5".parse().unwrap()),
            (None, "12.5".to_string())
        );
    }
}
