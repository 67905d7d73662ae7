//! Stripe API versions: the versions that exist, what changed for the routes the emulator serves, and
//! which version a request runs under.
//!
//! Everything version-dependent is decided by two tables here: [`KNOWN`] (every version, oldest
//! first) and [`CHANGES`] (each behaviour change and the first version that has it). Parameter
//! tables mark their fields with [`Change`]s (`params::Field::since`, `required_before`), renderers
//! ask [`Version::has`]; nothing else compares versions.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use super::envelope::{shorten, StripeError, StripeResult};
use crate::http::{names, Request};
use crate::model::{Store, TenantCell};

/// Every Stripe API version the emulator accepts, oldest first: Stripe's dated versions, then the
/// named releases from acacia on, up to `2026-10-28.endive`, the version stripe-python 16.1.0 and
/// stripe-node 23.1.0 pin. Sorted as strings (each starts with its date), so a lookup is a binary
/// search over `&str`s that allocates nothing; a unit test keeps it sorted.
///
/// `2025-03-01.dashboard` is left out: it is the version of Stripe's own Dashboard, not one an
/// account can pin.
#[rustfmt::skip]
pub const KNOWN: &[&str] = &[
    "2011-01-01", "2011-06-21", "2011-06-28", "2011-08-01", "2011-09-15", "2011-11-17",
    "2012-02-23", "2012-03-25", "2012-06-18", "2012-06-28", "2012-07-09", "2012-09-24",
    "2012-10-26", "2012-11-07",
    "2013-02-11", "2013-02-13", "2013-07-05", "2013-08-12", "2013-08-13", "2013-10-29",
    "2013-12-03",
    "2014-01-31", "2014-03-13", "2014-03-28", "2014-05-19", "2014-06-13", "2014-06-17",
    "2014-07-22", "2014-07-26", "2014-08-04", "2014-08-20", "2014-09-08", "2014-10-07",
    "2014-11-05", "2014-11-20", "2014-12-08", "2014-12-17", "2014-12-22",
    "2015-01-11", "2015-01-26", "2015-02-10", "2015-02-16", "2015-02-18", "2015-03-24",
    "2015-04-07", "2015-06-15", "2015-07-07", "2015-07-13", "2015-07-28", "2015-08-07",
    "2015-08-19", "2015-09-03", "2015-09-08", "2015-09-23", "2015-10-01", "2015-10-12",
    "2015-10-16",
    "2016-02-03", "2016-02-19", "2016-02-22", "2016-02-23", "2016-02-29", "2016-03-07",
    "2016-06-15", "2016-07-06", "2016-10-19",
    "2017-01-27", "2017-02-14", "2017-04-06", "2017-05-25", "2017-06-05", "2017-08-15",
    "2017-12-14",
    "2018-01-23", "2018-02-05", "2018-02-06", "2018-02-28", "2018-05-21", "2018-07-27",
    "2018-08-23", "2018-09-06", "2018-09-24", "2018-10-31", "2018-11-08",
    "2019-02-11", "2019-02-19", "2019-03-14", "2019-05-16", "2019-08-14", "2019-09-09",
    "2019-10-08", "2019-10-17", "2019-11-05", "2019-12-03",
    "2020-03-02", "2020-08-27",
    "2022-08-01", "2022-11-15",
    "2023-08-16", "2023-10-16",
    "2024-04-10", "2024-06-20",
    "2024-09-30.acacia", "2024-10-28.acacia", "2024-11-20.acacia", "2024-12-18.acacia",
    "2025-01-27.acacia", "2025-02-24.acacia",
    "2025-03-31.basil", "2025-04-30.basil", "2025-05-28.basil", "2025-06-30.basil",
    "2025-07-30.basil", "2025-08-27.basil",
    "2025-09-30.clover", "2025-10-29.clover", "2025-11-17.clover", "2025-12-15.clover",
    "2026-01-28.clover", "2026-02-25.clover",
    "2026-03-25.dahlia", "2026-04-22.dahlia", "2026-05-27.dahlia", "2026-06-24.dahlia",
    "2026-07-29.dahlia", "2026-08-26.dahlia",
    "2026-09-30.endive", "2026-10-28.endive",
];

/// One Stripe API version, by its place in [`KNOWN`]: comparing two versions compares their dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u16);

impl Version {
    /// The newest version the emulator knows: every world's default until one is set.
    pub const NEWEST: Version = Version(KNOWN.len() as u16 - 1);

    /// The version spelled exactly `s`, if it is known.
    pub fn parse(s: &str) -> Option<Version> {
        // The official SDKs send the version they pin, the newest: one comparison instead of a
        // search.
        if s == Version::NEWEST.as_str() {
            return Some(Version::NEWEST);
        }
        KNOWN.binary_search(&s).ok().map(|i| Version(i as u16))
    }

    /// Its name, as Stripe spells it.
    pub fn as_str(self) -> &'static str {
        KNOWN[usize::from(self.0)]
    }

    /// Whether requests under this version see `change`.
    pub fn has(self, change: Change) -> bool {
        self >= change.since()
    }

    /// The version named `name`, resolved while compiling: a name missing from [`KNOWN`] stops the
    /// build, so the change table cannot name a version that does not exist.
    pub const fn named(name: &str) -> Version {
        let mut i = 0;
        while i < KNOWN.len() {
            if str_eq(KNOWN[i], name) {
                return Version(i as u16);
            }
            i += 1;
        }
        panic!("not a known Stripe API version");
    }

    /// How a world stores its default (see [`crate::model::TenantCell::default_version`]): the
    /// version's place plus one, so that 0 can mean "none set".
    fn stored(self) -> u16 {
        self.0 + 1
    }

    /// The version a world stored, if any.
    fn from_stored(n: u16) -> Option<Version> {
        n.checked_sub(1)
            .filter(|i| usize::from(*i) < KNOWN.len())
            .map(Version)
    }
}

impl Default for Version {
    /// [`Version::NEWEST`], every world's default until one is set.
    fn default() -> Self {
        Version::NEWEST
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A change Stripe made to the credit routes that the emulator reproduces per version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Grants gain `priority` (the create parameter and the field).
    Priority,
    /// Grants can be scoped to prices: `applicability_config[scope][prices]` on create and on the
    /// grant, `filter[applicability_scope][prices]` on the balance summary. Before it, `price_type`
    /// was the only scope and was required.
    PriceScope,
    /// `category` on create goes from required to optional (default `paid`).
    OptionalCategory,
    /// Accounts v2: `customer_account` as a parameter (grant create and list, balance summary,
    /// transaction list) and as a field (grant, balance summary); `customer` stops being required on
    /// grant create, the balance summary and the transaction list.
    CustomerAccount,
    /// Legacy usage-based billing is gone: a price with `recurring[usage_type]=metered` must name
    /// a meter (`recurring[meter]`). Before it, a metered price without a meter was accepted.
    MeteredPriceMeter,
    /// Meters can aggregate with the `last` formula (`default_aggregation[formula]=last`).
    LastFormula,
}

/// Each [`Change`] (in declaration order) and the first version that has it. This table and
/// [`KNOWN`] are the only places where versions are named.
pub const CHANGES: [(Change, Version); 6] = [
    (Change::Priority, Version::named("2025-02-24.acacia")),
    (Change::PriceScope, Version::named("2025-02-24.acacia")),
    (
        Change::OptionalCategory,
        Version::named("2025-10-29.clover"),
    ),
    (Change::CustomerAccount, Version::named("2025-12-15.clover")),
    (
        Change::MeteredPriceMeter,
        Version::named("2025-03-31.basil"),
    ),
    (Change::LastFormula, Version::named("2025-03-31.basil")),
];

impl Change {
    /// The first version with this change.
    pub const fn since(self) -> Version {
        CHANGES[self as usize].1
    }
}

/// Where a world's default version comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Set on this world with `POST /_emulator/stripe_version`.
    World,
    /// A connected account's world without a default of its own follows its platform's.
    Platform,
    /// Nothing set: the newest version.
    Newest,
}

impl Source {
    /// How the admin route names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::World => "set",
            Source::Platform => "platform",
            Source::Newest => "newest",
        }
    }
}

/// The version a request without `Stripe-Version` runs under, and where it came from: the default
/// of the world named `world`, else (for a connected account's world) its platform's, else the
/// newest. Creates no world.
pub fn default_for(store: &Store, world: &str) -> (Version, Source) {
    if let Some(v) = store.get(world).and_then(|c| stored(&c)) {
        return (v, Source::World);
    }
    if let Some(v) = super::keys::platform_of(world)
        .and_then(|key| store.get(key))
        .and_then(|c| stored(&c))
    {
        return (v, Source::Platform);
    }
    (Version::NEWEST, Source::Newest)
}

/// The default a world set for itself, if any (not its platform's).
pub fn own_default(cell: &TenantCell) -> Option<Version> {
    stored(cell)
}

fn stored(cell: &TenantCell) -> Option<Version> {
    Version::from_stored(cell.default_version.load(Ordering::Relaxed))
}

/// Sets (or, with `None`, clears) a world's default version.
pub fn set_default(cell: &TenantCell, version: Option<Version>) {
    cell.default_version
        .store(version.map_or(0, Version::stored), Ordering::Relaxed);
}

/// The version a request asks for with `Stripe-Version`: `None` when it sends none, Stripe's 400
/// when it names no version this account may use. Several headers are read as Stripe reads them,
/// joined with `, ` (which no version matches).
pub fn requested(req: &Request) -> StripeResult<Option<Version>> {
    let mut values = req.headers.get_all(&names::STRIPE_VERSION).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let value: Cow<str> = match values.next() {
        None => String::from_utf8_lossy(first.as_bytes()),
        Some(second) => {
            let mut joined = String::from_utf8_lossy(first.as_bytes()).into_owned();
            for v in std::iter::once(second).chain(values) {
                joined.push_str(", ");
                joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
            Cow::Owned(joined)
        }
    };
    match Version::parse(&value) {
        Some(v) => Ok(Some(v)),
        None => Err(invalid(&value)),
    }
}

/// `Invalid Stripe API version: …`, 400, no `param` or `code`. A known version followed by beta
/// flags (`2025-12-15.clover; some_beta=v1`) names the first beta: no emulated account has been
/// granted one.
pub fn invalid(value: &str) -> StripeError {
    let shown = shorten(value);
    let beta = value.split_once(';').and_then(|(base, flags)| {
        let name = flags.split(['=', ';']).next().unwrap_or("").trim();
        (Version::parse(base.trim()).is_some() && !name.is_empty()).then_some(name)
    });
    StripeError::invalid(match beta {
        Some(name) => format!(
            "Invalid Stripe API version: {shown}. You do not have permission to pass this beta header: {}. If you have any questions, we can help at https://support.stripe.com/.",
            shorten(name)
        ),
        None => format!("Invalid Stripe API version: {shown}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_is_sorted_and_unique() {
        for pair in KNOWN.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
            assert!(pair[0][..10] < pair[1][..10], "one version per date");
        }
        assert_eq!(Version::NEWEST.as_str(), "2026-10-28.endive");
    }

    #[test]
    fn changes_are_listed_in_declaration_order() {
        for (i, (change, _)) in CHANGES.iter().enumerate() {
            assert_eq!(*change as usize, i);
        }
    }

    #[test]
    fn lookups() {
        let clover = Version::parse("2025-10-29.clover").unwrap();
        assert_eq!(clover.as_str(), "2025-10-29.clover");
        assert!(clover.has(Change::OptionalCategory));
        assert!(!clover.has(Change::CustomerAccount));
        assert!(Version::parse("2024-10-28.acacia").unwrap() < clover);
        assert!(Version::parse("2025-09-30.acacia").is_none());
        assert!(Version::parse("2025-10-29").is_none());
        assert!(Version::parse("2025-10-29.CLOVER").is_none());
        assert!(Version::parse(" 2025-10-29.clover").is_none());
        assert!(Version::parse("").is_none());
        assert_eq!(Version::from_stored(clover.stored()), Some(clover));
        assert_eq!(Version::from_stored(0), None);
        assert_eq!(Version::from_stored(u16::MAX), None);
        // The newest is found without the search, the others by it: each at its own place.
        for (i, name) in KNOWN.iter().enumerate() {
            assert_eq!(Version::parse(name), Some(Version(i as u16)), "{name}");
        }
        assert!(Version::parse("2026-10-28.endive ").is_none());
        assert!(Version::parse("2026-10-28.endiv").is_none());
    }

    #[test]
    fn invalid_names_a_beta_only_after_a_known_version() {
        assert_eq!(
            invalid("2019-2-19").message,
            "Invalid Stripe API version: 2019-2-19"
        );
        assert!(invalid("2020-08-27;link_beta=v1")
            .message
            .ends_with("pass this beta header: link_beta. If you have any questions, we can help at https://support.stripe.com/."));
        assert_eq!(
            invalid("2020-08-28;link_beta=v1").message,
            "Invalid Stripe API version: 2020-08-28;link_beta=v1"
        );
        assert_eq!(
            invalid("2020-08-27;").message,
            "Invalid Stripe API version: 2020-08-27;"
        );
    }
}
