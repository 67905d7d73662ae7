//! `/v1/billing/credit_balance_transactions`: the ledger's entries, one transaction each.
//!
//! Lists walk the per-customer or per-grant entry index backwards from the cursor, so a page costs
//! O(log n + limit) however long the ledger is.

use serde::Serialize;

use super::credit_grants::AmountJson;
use super::list::{self, ListJson, PageRequest};
use super::op::{Body, Expand, Input, Operation};
use super::{customers, ids};
use crate::ids::Key;
use crate::model::{Entry, EntryKind, Tenant};
use crate::time::to_secs;
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::params::{get_str, opt, validate_at, Field, Spec, EXPAND, LIST_FIELDS};
use crate::wire::versions::Change;

const LIST: &[Field] = &[
    opt("credit_grant", Spec::Str(5000)),
    opt("customer", Spec::Str(5000)).required_before(Change::CustomerAccount),
    opt("customer_account", Spec::Unsupported).since(Change::CustomerAccount),
    LIST_FIELDS[0],
    LIST_FIELDS[1],
    LIST_FIELDS[2],
    LIST_FIELDS[3],
];
const ONLY_EXPAND: &[Field] = &[EXPAND];

/// Paths `expand[]` accepts on one transaction.
const EXPANDABLE: &[&str] = &[
    "credit_grant",
    "test_clock",
    "credit.credits_application_invoice_voided.invoice",
    "debit.credits_applied.invoice",
];
/// The same paths under `data.` for lists.
const LIST_EXPANDABLE: &[&str] = &[
    "data.credit_grant",
    "data.test_clock",
    "data.credit.credits_application_invoice_voided.invoice",
    "data.debit.credits_applied.invoice",
];

/// The list `url` (the spec's pattern names the grants path, which is a copy-paste slip there).
const URL: &str = "/v1/billing/credit_balance_transactions";

/// A ledger entry as a `billing.credit_balance_transaction`.
#[derive(Serialize)]
pub struct TransactionView {
    id: String,
    object: &'static str,
    created: i64,
    credit: Option<CreditView>,
    credit_grant: String,
    debit: Option<DebitView>,
    effective_at: i64,
    livemode: bool,
    test_clock: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct CreditView {
    amount: AmountJson,
    credits_application_invoice_voided: Option<InvoiceRef>,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct DebitView {
    amount: AmountJson,
    credits_applied: Option<InvoiceRef>,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The invoice line an entry is about.
#[derive(Serialize)]
struct InvoiceRef {
    invoice: String,
    invoice_line_item: String,
}

impl TransactionView {
    /// The view of `e`.
    pub fn of(e: &Entry) -> Self {
        let amount = AmountJson::new(e.currency, e.amount);
        let invoice_ref = e.invoice.map(|(invoice, line)| InvoiceRef {
            invoice: ids::render(ids::INVOICE, invoice),
            invoice_line_item: ids::render(ids::INVOICE_LINE, line),
        });
        let credit = |kind, voided| CreditView {
            amount,
            credits_application_invoice_voided: voided,
            kind,
        };
        let (kind, credit, debit) = match e.kind {
            EntryKind::Granted => ("credit", Some(credit("credits_granted", None)), None),
            EntryKind::InvoiceVoided => (
                "credit",
                Some(credit("credits_application_invoice_voided", invoice_ref)),
                None,
            ),
            EntryKind::Applied => (
                "debit",
                None,
                Some(debit("credits_applied", amount, invoice_ref)),
            ),
            EntryKind::Expired => ("debit", None, Some(debit("credits_expired", amount, None))),
            EntryKind::Voided => ("debit", None, Some(debit("credits_voided", amount, None))),
        };
        TransactionView {
            id: ids::render(ids::TRANSACTION, e.key),
            object: "billing.credit_balance_transaction",
            created: to_secs(e.created),
            credit,
            credit_grant: ids::render(ids::CREDIT_GRANT, e.lot),
            debit,
            effective_at: to_secs(e.effective_at),
            livemode: false,
            test_clock: e.test_clock.map(|k| ids::render(ids::TEST_CLOCK, k)),
            kind,
        }
    }
}

fn debit(kind: &'static str, amount: AmountJson, applied: Option<InvoiceRef>) -> DebitView {
    DebitView {
        amount,
        credits_applied: applied,
        kind,
    }
}

/// `GET /v1/billing/credit_balance_transactions/{id}`.
pub struct Retrieve {
    id: String,
    expand: Expand,
}

impl Operation for Retrieve {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, ONLY_EXPAND, "", input.version)?;
        Ok(Retrieve {
            id: input.id().to_string(),
            expand: Expand::read(input.params, EXPANDABLE, input.version)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = ids::key_of(&self.id, ids::TRANSACTION)
            .filter(|k| t.entry(*k).is_some())
            .ok_or_else(|| {
                StripeError::no_such("credit balance transaction", &self.id, "id", 404)
            })?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        Body::of(
            &TransactionView::of(t.entry(key).expect("looked up above")),
            expand,
            768,
        )
    }
}

/// `GET /v1/billing/credit_balance_transactions`: a customer's transactions, optionally of one
/// grant, newest first.
pub struct List {
    customer: String,
    credit_grant: Option<String>,
    /// Read after the customer and the grant are found.
    page: StripeResult<PageRequest>,
    expand: Expand,
}

impl Operation for List {
    type Output = (Vec<Key>, bool, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, LIST, "", input.version)?;
        let expand = Expand::read(p, LIST_EXPANDABLE, input.version)?;
        Ok(List {
            customer: customers::ledger_owner_id(get_str(p, "customer"))?.to_string(),
            credit_grant: get_str(p, "credit_grant")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            page: PageRequest::read(p),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let t = &*t;
        let customer = customers::ledger_owner(t, &self.customer)?;
        let grant = match &self.credit_grant {
            Some(id) => Some(
                ids::key_of(id, ids::CREDIT_GRANT)
                    .filter(|k| t.lot(*k).is_some_and(|l| l.customer == customer))
                    .ok_or_else(|| StripeError::no_such("credit grant", id, "credit_grant", 400))?,
            ),
            None => None,
        };
        let page = self.page?.resolve("credit balance transaction", |id| {
            ids::key_of(id, ids::TRANSACTION).filter(|k| t.entry(*k).is_some())
        })?;
        let (keys, more) = match grant {
            // A lot's entries are one range of the (lot, entry) pairs.
            Some(lot) => {
                let entries = t.entry_keys_of_lot(lot);
                list::paginate(|a, b| entries.range((a, b)), &page, |_| true)
            }
            None => {
                let entries = t.entry_keys_of(customer);
                list::paginate(|a, b| entries.range((a, b)), &page, |_| true)
            }
        };
        Ok((keys, more, self.expand))
    }

    fn render((keys, more, expand): Self::Output, t: &Tenant) -> Body {
        let data: Vec<TransactionView> = keys
            .iter()
            .filter_map(|k| t.entry(*k))
            .map(TransactionView::of)
            .collect();
        Body::of(
            &ListJson::new(data, more, URL),
            expand,
            768 * (keys.len() + 1),
        )
    }
}
