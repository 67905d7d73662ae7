"""stripe-python (the official SDK, unmodified) through the usage-billing loop on a test clock:
credit grant, meter, metered price, subscription, meter events, the period end's draft invoice, its
finalization after the grace period with credits applied, the ledger, the preview; then a credit
pack bought through a one-off invoice.

Usage: python test_stripe_usage_billing.py http://127.0.0.1:PORT
"""
import sys
import time
import uuid

import stripe

base = sys.argv[1]
key = f"sk_test_py_{uuid.uuid4().hex}"
client = stripe.StripeClient(key, base_addresses={"api": base})

T0 = 1767225600  # 2026-01-01T00:00:00Z
T1 = 1769904000  # 2026-02-01T00:00:00Z, one month later: the first period's end
T2 = 1772323200  # 2026-03-01T00:00:00Z: the second period's end
DAY = 86400
HOUR = 3600
GRACE = 3600  # the emulator's default grace period before a cycle invoice finalizes


def advance(clock_id, to):
    """Advances the clock and waits until it is ready, as code written against Stripe does."""
    clock = client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": to})
    for _ in range(100):
        if clock.status == "ready":
            break
        time.sleep(0.1)
        clock = client.v1.test_helpers.test_clocks.retrieve(clock_id)
    assert (clock.status, clock.frozen_time) == ("ready", to), clock
    return clock


def available(customer_id):
    summary = client.v1.billing.credit_balance_summary.retrieve(
        params={
            "customer": customer_id,
            "filter": {"type": "applicability_scope", "applicability_scope": {"price_type": "metered"}},
        }
    )
    assert summary.object == "billing.credit_balance_summary"
    usd = [b for b in summary.balances if b.available_balance.monetary.currency == "usd"]
    return usd[0].available_balance.monetary.value if usd else 0


# A test clock and a customer living on it, with $10 of metered credit.
clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0, "name": "Usage loop"})
assert clock.status == "ready"
customer = client.v1.customers.create(params={"name": "Ada", "email": "ada@example.com", "test_clock": clock.id})
assert customer.test_clock == clock.id
grant = client.v1.billing.credit_grants.create(
    params={
        "customer": customer.id,
        "name": "Welcome credit",
        "category": "promotional",
        "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 1000}},
        "applicability_config": {"scope": {"price_type": "metered"}},
    }
)
assert grant.test_clock == clock.id and available(customer.id) == 1000

# A meter, and a product with a metered price of 5 cents a call measured by it.
meter = client.v1.billing.meters.create(
    params={"display_name": "API calls", "event_name": "api_calls", "default_aggregation": {"formula": "sum"}}
)
product = client.v1.products.create(params={"name": "API"})
price = client.v1.prices.create(
    params={
        "product": product.id,
        "currency": "usd",
        "unit_amount": 5,
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
    }
)
assert (price.type, price.recurring.usage_type, price.recurring.meter) == ("recurring", "metered", meter.id)

# The subscription: its first invoice bills nothing (usage is billed in arrears) and is paid at once.
sub = client.v1.subscriptions.create(
    params={"customer": customer.id, "items": [{"price": price.id}], "expand": ["latest_invoice"]}
)
assert sub.status == "active" and sub.test_clock == clock.id
item = sub["items"].data[0]
assert (item.price.id, item.current_period_start, item.current_period_end) == (price.id, T0, T1)
first = sub.latest_invoice
assert (first.billing_reason, first.status, first.total, len(first.lines.data)) == ("subscription_create", "paid", 0, 0)

# Usage, timestamped: 100 calls on day 1, 200 on day 20.
advance(clock.id, T0 + DAY)
event = client.v1.billing.meter_events.create(
    params={
        "event_name": "api_calls",
        "payload": {"stripe_customer_id": customer.id, "value": "100"},
        "identifier": "py-usage-1",
        "timestamp": T0 + DAY - 60,
    }
)
assert (event.timestamp, event.payload["value"]) == (T0 + DAY - 60, "100")
advance(clock.id, T0 + 20 * DAY)
client.v1.billing.meter_events.create(
    params={
        "event_name": "api_calls",
        "payload": {"stripe_customer_id": customer.id, "value": "200"},
        "timestamp": T0 + 20 * DAY,
    }
)

# Past the period end: a draft cycle invoice at the boundary, finalizing after the grace period.
advance(clock.id, T1 + 60)
invoices = client.v1.invoices.list(params={"subscription": sub.id})
assert [i.billing_reason for i in invoices.data] == ["subscription_cycle", "subscription_create"], invoices
draft = invoices.data[0]
assert (draft.status, draft.created, draft.period_start, draft.period_end) == ("draft", T1, T0, T1)
assert draft.automatically_finalizes_at == T1 + GRACE
assert draft.subtotal == 1500 and draft.total_pretax_credit_amounts == []
assert draft.number is None
assert available(customer.id) == 1000, "credits are applied at finalization, not before"

# Past the grace period: finalized, credits applied, the rest charged.
advance(clock.id, T1 + GRACE + HOUR)
paid = client.v1.invoices.retrieve(draft.id)
assert (paid.status, paid.subtotal, paid.total, paid.amount_paid, paid.amount_remaining) == ("paid", 1500, 500, 500, 0)
assert paid.status_transitions.finalized_at == T1 + GRACE and paid.automatically_finalizes_at is None
assert paid.number and paid.number.endswith("-0002"), paid.number  # the subscription_create invoice was -0001
assert [c.amount for c in paid.total_pretax_credit_amounts] == [1000]
credit = paid.total_pretax_credit_amounts[0]
assert credit.type == "credit_balance_transaction" and credit.credit_balance_transaction.startswith("cbtxn_")
line = paid.lines.data[0]
assert (line.quantity, line.amount, line.period.start, line.period.end) == (300, 1500, T0, T1)
assert line.description == "300 × API (at $0.05 / month)", line.description
assert line.pricing.type == "price_details"
assert (line.pricing.price_details.price, line.pricing.price_details.product) == (price.id, product.id)
assert line.parent.type == "subscription_item_details"
assert (line.parent.subscription_item_details.subscription, line.parent.subscription_item_details.subscription_item) == (
    sub.id,
    item.id,
)
assert [c.amount for c in line.pretax_credit_amounts] == [1000]
assert [l.id for l in client.v1.invoices.line_items.list(paid.id).data] == [line.id]
assert client.v1.subscriptions.retrieve(sub.id).latest_invoice == paid.id

# The ledger: the grant is spent, by a debit naming the invoice.
assert available(customer.id) == 0
txns = client.v1.billing.credit_balance_transactions.list(params={"customer": customer.id})
assert [(t.type, (t.credit or t.debit).type) for t in txns.data] == [
    ("debit", "credits_applied"),
    ("credit", "credits_granted"),
], txns
applied = txns.data[0]
assert applied.debit.credits_applied.invoice == paid.id
assert applied.debit.credits_applied.invoice_line_item == line.id
assert applied.debit.amount.monetary.value == 1000 and applied.credit_grant == grant.id
assert applied.effective_at == T1 + GRACE and applied.test_clock == clock.id
assert credit.credit_balance_transaction == applied.id

# The preview of the next cycle invoice: usage so far, and the credit a new grant would cover.
client.v1.billing.meter_events.create(
    params={"event_name": "api_calls", "payload": {"stripe_customer_id": customer.id, "value": "40"}}
)
topup = client.v1.billing.credit_grants.create(
    params={
        "customer": customer.id,
        "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 150}},
        "applicability_config": {"scope": {"price_type": "metered"}},
    }
)
preview = client.v1.invoices.create_preview(params={"customer": customer.id})
assert preview.id.startswith("upcoming_in_") and preview.status == "draft", preview.id
assert (preview.billing_reason, preview.period_start, preview.period_end) == ("upcoming", T1, T2), preview
assert preview.parent.subscription_details.subscription == sub.id
assert (preview.subtotal, preview.total) == (200, 50)
assert preview.lines.data[0].id.startswith("il_tmp_") and preview.lines.data[0].quantity == 40
projected = preview.total_pretax_credit_amounts
assert [(c.amount, c.credit_balance_transaction) for c in projected] == [(150, None)], projected
assert available(customer.id) == 150, "a preview changes nothing"
assert client.v1.billing.credit_grants.retrieve(topup.id).voided_at is None

# A preview of a change not made: the item at twice the price, ending at the period end, plus a
# one-off charge (which comes first and takes no credit).
double = client.v1.prices.create(
    params={
        "product": product.id,
        "currency": "usd",
        "unit_amount": 10,
        "recurring": {"interval": "month", "usage_type": "metered", "meter": price.recurring.meter},
    }
)
what_if = client.v1.invoices.create_preview(
    params={
        "subscription": sub.id,
        "subscription_details": {"items": [{"id": item.id, "price": double.id}], "cancel_at_period_end": True},
        "invoice_items": [{"amount": 300, "currency": "usd", "description": "Setup"}],
    }
)
assert [(l.amount, l.parent.type) for l in what_if.lines.data] == [
    (300, "invoice_item_details"),
    (400, "subscription_item_details"),
], what_if.lines
assert what_if.lines.data[1].pricing.price_details.price == double.id
assert (what_if.subtotal, what_if.total) == (700, 550)
assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == price.id, "a preview changes nothing"

# Search: the subscription's paid invoices, the product's recurring prices.
hits = client.v1.invoices.search(params={"query": f"subscription:'{sub.id}' AND status:'paid'"})
assert hits.object == "search_result" and paid.id in [i.id for i in hits.data], hits
recurring = client.v1.prices.search(params={"query": f"product:'{product.id}' AND type:'recurring'"})
assert [p.id for p in recurring.data] == [double.id, price.id], recurring

# Nothing to preview for a customer without a subscription.
stranger = client.v1.customers.create(params={"name": "Nobody"})
try:
    client.v1.invoices.create_preview(params={"customer": stranger.id})
    raise AssertionError("expected an error")
except stripe.InvalidRequestError as e:
    assert (e.http_status, e.code) == (404, "invoice_upcoming_none"), (e.http_status, e.code)
    assert e.user_message == f"No upcoming invoices for customer: {stranger.id}", e.user_message

# A credit pack bought through a one-off invoice sent to the customer and paid out of band.
pack_product = client.v1.products.create(params={"name": "1,000 credits"})
pack_price = client.v1.prices.create(params={"product": pack_product.id, "currency": "usd", "unit_amount": 2500})
assert pack_price.type == "one_time"
buyer = client.v1.customers.create(params={"name": "Bo", "invoice_prefix": "BOPACK"})
ii = client.v1.invoice_items.create(
    params={"customer": buyer.id, "pricing": {"price": pack_price.id}, "quantity": 2, "metadata": {"pack": "1000"}}
)
assert (ii.object, ii.amount, ii.invoice) == ("invoiceitem", 5000, None)
assert [i.id for i in client.v1.invoice_items.list(params={"customer": buyer.id, "pending": True}).data] == [ii.id]
pack = client.v1.invoices.create(
    params={
        "customer": buyer.id,
        "collection_method": "send_invoice",
        "days_until_due": 14,
        "pending_invoice_items_behavior": "include",
        "metadata": {"order": "pack-1"},
    }
)
assert (pack.status, pack.billing_reason, pack.collection_method, pack.auto_advance) == (
    "draft",
    "manual",
    "send_invoice",
    False,
)
assert pack.total == 5000 and pack.number is None
assert client.v1.invoice_items.retrieve(ii.id).invoice == pack.id
edited = client.v1.invoices.update(pack.id, params={"description": "1,000 credits", "metadata": {"seller": "web"}})
assert (edited.description, edited.metadata.to_dict()) == ("1,000 credits", {"order": "pack-1", "seller": "web"})
sent = client.v1.invoices.finalize_invoice(pack.id)
try:
    client.v1.invoices.update(pack.id, params={"description": "too late"})
    raise AssertionError("expected an error")
except stripe.InvalidRequestError as e:
    assert (e.http_status, e.param) == (400, "description"), (e.http_status, e.param)
    assert e.user_message == "Finalized invoices can't be updated in this way", e.user_message
assert (sent.status, sent.number, sent.amount_due) == ("open", "BOPACK-0001", 5000)
assert sent.due_date == sent.status_transitions.finalized_at + 14 * DAY
pack_line = sent.lines.data[0]
assert pack_line.pricing.price_details.product == pack_product.id, "the application reads what was bought"
assert pack_line.parent.type == "invoice_item_details" and pack_line.parent.invoice_item_details.invoice_item == ii.id
assert pack_line.metadata["pack"] == "1000" and pack_line.quantity == 2
assert sent.total_pretax_credit_amounts == [], "credits never pay one-off invoices"
settled = client.v1.invoices.pay(pack.id, params={"paid_out_of_band": True})
assert (settled.status, settled.amount_paid, settled.amount_remaining) == ("paid", 5000, 0)
assert settled.status_transitions.paid_at is not None
# The application then grants what was bought.
bought = client.v1.billing.credit_grants.create(
    params={
        "customer": buyer.id,
        "category": "paid",
        "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 100000}},
        "applicability_config": {"scope": {"price_type": "metered"}},
        "metadata": {"invoice": settled.id},
    }
)
assert available(buyer.id) == 100000 and bought.metadata["invoice"] == settled.id

# A paid invoice refuses another payment with Stripe's error.
try:
    client.v1.invoices.pay(pack.id)
    raise AssertionError("expected an error")
except stripe.InvalidRequestError as e:
    assert e.http_status == 400 and e.user_message == "Invoice is already paid", e.user_message

print("stripe-python usage billing: ok")
