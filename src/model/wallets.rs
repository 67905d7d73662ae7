//! Wallets: a view of a customer's lots in one currency.
//!
//! A wallet owns nothing; it names a set of lots. A lot made by a grant application is in the wallet
//! the application chose (see [`Tenant::wallet_for_grant`]); every other lot (a Stripe credit grant)
//! is in the customer's first wallet of its currency. So the lots of one customer and currency are
//! split over that currency's wallets, and the sum of those wallets' balances is exactly the
//! customer's balance in that currency as Stripe reports it.
//!
//! A wallet converts ledger amounts (minor units of its currency) to credits with its conversion
//! rate: `credits = amount / 10^exponent / conversion_rate`.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::{Balance, Currency, Lot, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// A wallet.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wallet {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Owner.
    #[serde(with = "crate::ids::text")]
    pub customer: Key,
    /// Currency of its lots.
    pub currency: Currency,
    /// Currency (major units) per credit when spending.
    pub conversion_rate: Decimal,
    /// Currency (major units) per credit when buying.
    pub topup_conversion_rate: Decimal,
    /// Creation time.
    pub created: Nanos,
    /// Last change.
    pub updated: Nanos,
}

impl Tenant {
    /// A wallet.
    pub fn wallet(&self, key: Key) -> Option<&Wallet> {
        self.billing.wallets.get(&key)
    }

    /// The wallet a grant application puts credits in: the customer's first wallet of `currency`
    /// whose rates equal the rule's (a rate the rule leaves unset matches any), or a new one with
    /// the rule's rates (conversion defaults to 1, top-up to the conversion rate).
    pub(super) fn wallet_for_grant(
        &mut self,
        customer: Key,
        currency: Currency,
        rate: Option<Decimal>,
        topup: Option<Decimal>,
        at: Nanos,
    ) -> Key {
        let found = self
            .billing
            .wallets_by_customer
            .get(&customer)
            .into_iter()
            .flatten()
            .filter_map(|k| self.billing.wallets.get(k))
            .find(|w| {
                w.currency == currency
                    && rate.is_none_or(|r| r == w.conversion_rate)
                    && topup.is_none_or(|t| t == w.topup_conversion_rate)
            })
            .map(|w| w.key);
        if let Some(k) = found {
            return k;
        }
        let rate = rate.unwrap_or(Decimal::ONE);
        self.create_wallet(customer, currency, rate, topup.unwrap_or(rate), at)
    }

    fn create_wallet(
        &mut self,
        customer: Key,
        currency: Currency,
        rate: Decimal,
        topup: Decimal,
        at: Nanos,
    ) -> Key {
        let key = self.next_key();
        self.billing.wallets.insert(
            key,
            Wallet {
                key,
                customer,
                currency,
                conversion_rate: rate,
                topup_conversion_rate: topup,
                created: at,
                updated: at,
            },
        );
        self.billing
            .wallets_by_customer
            .entry(customer)
            .or_default()
            .insert(key);
        key
    }

    /// Makes sure every currency the customer holds lots in has a wallet: a currency without one
    /// (credits granted only through Stripe) gets a rate-1 wallet dated from its first lot.
    pub fn ensure_wallets(&mut self, customer: Key) {
        let mut first_lot: BTreeMap<Currency, Nanos> = BTreeMap::new();
        for lot in self.lots_of(customer) {
            let e = first_lot.entry(lot.currency).or_insert(lot.created);
            *e = (*e).min(lot.created);
        }
        for (currency, created) in first_lot {
            if self.default_wallet(customer, currency).is_none() {
                self.create_wallet(customer, currency, Decimal::ONE, Decimal::ONE, created);
            }
        }
    }

    /// The customer's wallets, in creation order.
    pub fn wallets_of(&self, customer: Key) -> Vec<Key> {
        self.billing
            .wallets_by_customer
            .get(&customer)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The customer's first wallet of `currency`.
    pub fn default_wallet(&self, customer: Key, currency: Currency) -> Option<Key> {
        self.billing
            .wallets_by_customer
            .get(&customer)
            .into_iter()
            .flatten()
            .filter_map(|k| self.billing.wallets.get(k))
            .find(|w| w.currency == currency)
            .map(|w| w.key)
    }

    /// The wallet a lot is in.
    pub fn wallet_of_lot(&self, lot: &Lot) -> Option<Key> {
        match self.billing.lot_wallet.get(&lot.key) {
            Some(w) => Some(*w),
            None => self.default_wallet(lot.customer, lot.currency),
        }
    }

    /// The owner of `wallet` and a test for "this lot of the owner's is in `wallet`": the same as
    /// `wallet_of_lot(lot) == Some(wallet)` for a lot of that customer in the wallet's currency, with
    /// the customer's default wallet looked up once rather than per lot. `None` if there is no such
    /// wallet.
    fn wallet_members(&self, wallet: Key) -> Option<(Key, impl Fn(&Lot) -> bool + '_)> {
        let w = self.billing.wallets.get(&wallet)?;
        let (customer, currency) = (w.customer, w.currency);
        let is_default = self.default_wallet(customer, currency) == Some(wallet);
        let member = move |l: &Lot| {
            l.currency == currency
                && match self.billing.lot_wallet.get(&l.key) {
                    Some(k) => *k == wallet,
                    None => is_default,
                }
        };
        Some((customer, member))
    }

    /// The lots in a wallet, in key order.
    pub fn wallet_lots(&self, wallet: Key) -> Vec<Key> {
        let Some((customer, member)) = self.wallet_members(wallet) else {
            return Vec::new();
        };
        self.lots_of(customer)
            .filter(|l| member(l))
            .map(|l| l.key)
            .collect()
    }

    /// A wallet's balance in minor units at the customer's now, counted exactly as
    /// [`Tenant::balances`] counts a customer's (ledger: every entry; available: what can be spent).
    pub fn wallet_balance(&self, wallet: Key) -> Balance {
        let Some((customer, member)) = self.wallet_members(wallet) else {
            return Balance::default();
        };
        let mut out = Balance::default();
        let now = self.now_for(customer);
        for lot in self.lots_of(customer).filter(|l| member(l)) {
            out.add(lot, now);
        }
        out
    }

    /// The ledger entries of a wallet's lots, oldest first.
    pub fn wallet_entries(&self, wallet: Key) -> Vec<Key> {
        let Some((customer, member)) = self.wallet_members(wallet) else {
            return Vec::new();
        };
        self.entries_by_customer
            .get(&customer)
            .into_iter()
            .flat_map(|set| set.keys())
            .filter(|k| {
                self.entries
                    .get(k)
                    .and_then(|e| self.lots.get(&e.lot))
                    .is_some_and(|l| member(l))
            })
            .copied()
            .collect()
    }
}
