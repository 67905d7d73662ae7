//! Currencies and amounts.
//!
//! Amounts in the ledger are exact decimals in the currency's **minor units** (cents for usd), so a
//! Stripe `value` is the amount itself and a native credit amount is `amount / 10^exponent / rate`.
//! Floats never touch money.

use rust_decimal::Decimal;

/// ISO 4217 codes the emulator accepts, lowercase, as Stripe renders them.
const CURRENCIES: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "btn", "bwp", "byn", "bzd", "cad",
    "cdf", "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp",
    "etb", "eur", "fjd", "fkp", "gbp", "gel", "ghs", "gip", "gmd", "gnf", "gtq", "gyd", "hkd",
    "hnl", "htg", "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr",
    "kmf", "krw", "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga",
    "mkd", "mmk", "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio",
    "nok", "npr", "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron",
    "rsd", "rub", "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "std",
    "szl", "thb", "tjs", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu",
    "uzs", "vnd", "vuv", "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
];

/// Currencies without minor units.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Currencies with three decimals.
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// All supported codes, for error messages.
pub fn supported() -> &'static [&'static str] {
    CURRENCIES
}

/// Number of minor-unit digits: usd 2, jpy 0, kwd 3.
pub fn exponent(currency: &str) -> u32 {
    if ZERO_DECIMAL.contains(&currency) {
        0
    } else if THREE_DECIMAL.contains(&currency) {
        3
    } else {
        2
    }
}

/// An amount rendered as an integer of minor units (Stripe's `value`), rounding half away from zero
/// when a grant rule produced a fraction of a minor unit.
pub fn to_minor_i64(amount: Decimal) -> i64 {
    use rust_decimal::prelude::ToPrimitive;
    amount
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_for_binary_search() {
        let mut sorted = CURRENCIES.to_vec();
        sorted.sort();
        assert_eq!(sorted, CURRENCIES);
    }

    #[test]
    fn units() {
        for code in ["usd", "USD", "uSd"] {
            assert_eq!(
                Currency::parse(code).map(|c| c.to_string()).as_deref(),
                Some("usd")
            );
        }
        for code in ["xyz", "us", "usdd", "", "us\u{e9}", "\u{e9}u"] {
            assert_eq!(Currency::parse(code), None, "{code:?}");
        }
        assert_eq!(Currency::parse("KWD").map(|c| c.exponent()), Some(3));
        assert_eq!(exponent("jpy"), 0);
        assert_eq!(exponent("kwd"), 3);
        assert_eq!(to_minor_i64("2.5".parse().unwrap()), 3);
    }
}

/// A supported currency, stored in three bytes rather than a heap string (a tenant may hold millions
/// of lots and entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses any-case ISO code; `None` if unsupported.
    pub fn parse(code: &str) -> Option<Currency> {
        // Every request with an amount names one: compared in place, without a lowercase copy.
        let [a, b, c] = <[u8; 3]>::try_from(code.as_bytes()).ok()?;
        let lower = [
            a.to_ascii_lowercase(),
            b.to_ascii_lowercase(),
            c.to_ascii_lowercase(),
        ];
        CURRENCIES
            .binary_search_by(|known| known.as_bytes().cmp(&lower[..]))
            .ok()
            .map(|_| Currency(lower))
    }

    /// The lowercase code.
    pub fn as_str(&self) -> &str {
        // Built only from entries of CURRENCIES, which are ASCII.
        std::str::from_utf8(&self.0).unwrap_or("usd")
    }

    /// Minor-unit digits.
    pub fn exponent(&self) -> u32 {
        exponent(self.as_str())
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// In documents a currency is its lower-case code.
impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Code;
        impl serde::de::Visitor<'_> for Code {
            type Value = Currency;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a currency's three-letter ISO code")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Currency, E> {
                Currency::parse(v).ok_or_else(|| E::custom(format!("unsupported currency {v:?}")))
            }
        }
        d.deserialize_str(Code)
    }
}
