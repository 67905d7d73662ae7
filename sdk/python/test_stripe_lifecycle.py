"""stripe-python (the official SDK, unmodified) through a credit grant's whole life.

Usage: python test_stripe_lifecycle.py http://127.0.0.1:PORT
"""
import sys
import uuid

import stripe

base = sys.argv[1]
key = f"sk_test_py_{uuid.uuid4().hex}"
client = stripe.StripeClient(key, base_addresses={"api": base})

# Customers.
customer = client.v1.customers.create(params={"email": "ada@example.com", "name": "Ada", "metadata": {"team": "ci"}})
assert customer.id.startswith("cus_"), customer.id
assert customer.metadata["team"] == "ci"
assert client.v1.customers.retrieve(customer.id).email == "ada@example.com"
updated = client.v1.customers.update(customer.id, params={"name": "Ada L.", "metadata": {"team": ""}})
assert updated.name == "Ada L." and "team" not in updated.metadata
assert [c.id for c in client.v1.customers.list(params={"email": "ada@example.com"}).data] == [customer.id]

# The customer fields test setups use, the created filter, and search with its paging.
full = client.v1.customers.create(
    params={
        "email": "grace@example.com",
        "name": "Grace Hopper",
        "address": {"line1": "1 Navy Yard", "city": "Arlington", "country": "US"},
        "shipping": {"name": "Grace Hopper", "phone": "+15550100", "address": {"line1": "1 Navy Yard", "country": "US"}},
        "preferred_locales": ["en-US", "fr"],
        "invoice_prefix": "GRACE1",
        "invoice_settings": {
            "custom_fields": [{"name": "PO", "value": "42"}],
            "footer": "Thanks",
            "rendering_options": {"amount_tax_display": "exclude_tax"},
        },
        "tax_exempt": "exempt",
        "balance": -100,
        "next_invoice_sequence": 5,
    }
)
assert full.address.city == "Arlington" and full.address.line2 is None
assert full.shipping.name == "Grace Hopper" and full.shipping.address.line1 == "1 Navy Yard"
assert full.preferred_locales == ["en-US", "fr"]
assert full.invoice_settings.custom_fields[0].value == "42"
assert full.invoice_settings.rendering_options.amount_tax_display == "exclude_tax"
assert (full.invoice_prefix, full.tax_exempt, full.balance, full.next_invoice_sequence) == ("GRACE1", "exempt", -100, 5)
cleared = client.v1.customers.update(full.id, params={"shipping": "", "invoice_settings": {"custom_fields": ""}})
assert cleared.shipping is None and cleared.invoice_settings.custom_fields is None
assert cleared.invoice_settings.footer == "Thanks"
since = [c.id for c in client.v1.customers.list(params={"created": {"gte": full.created}}).data]
before = [c.id for c in client.v1.customers.list(params={"created": {"lt": full.created}}).data]
assert full.id in since and full.id not in before

found = client.v1.customers.search(params={"query": 'email:"GRACE@example.com"'})
assert found.object == "search_result" and [c.id for c in found.data] == [full.id]
batch = [client.v1.customers.create(params={"name": f"Batch {i}", "metadata": {"batch": "py"}}).id for i in range(5)]
newest_first = list(reversed(batch))
page = client.v1.customers.search(params={"query": "metadata['batch']:'py'", "limit": 2, "expand": ["total_count"]})
assert [c.id for c in page.data] == newest_first[:2] and page.has_more and page.next_page
assert page.total_count == 5
assert [c.id for c in page.auto_paging_iter()] == newest_first
stripe.api_key = key
stripe.api_base = base
paged = stripe.Customer.search_auto_paging_iter(query="metadata['batch']:'py' AND name~'batch'", limit=2)
assert [c.id for c in paged] == newest_first
try:
    client.v1.customers.search(params={"query": 'name:"a" AND email:"b" OR phone:"c"'})
    raise AssertionError("expected an error")
except stripe.InvalidRequestError as e:
    assert e.http_status == 400 and e.param == "query", (e.http_status, e.param)

# A price scope names metered prices of the world: a meter and two prices on it.
meter = client.v1.billing.meters.create(
    params={
        "display_name": "API calls",
        "event_name": "api_call",
        "default_aggregation": {"formula": "sum"},
    }
)


def metered_price(name):
    return client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 5,
            "product_data": {"name": name},
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )


price_a, price_b = metered_price("Search"), metered_price("Export")

# Create, with price scope, metadata and expand, exactly as the SDK encodes it.
grant = client.v1.billing.credit_grants.create(
    params={
        "customer": customer.id,
        "name": "Purchased credits",
        "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 1000}},
        "applicability_config": {"scope": {"prices": [{"id": price_a.id}, {"id": price_b.id}]}},
        "category": "promotional",
        "metadata": {"order": "42", "note": "a b&c"},
        "expand": ["customer"],
    }
)
assert grant.object == "billing.credit_grant"
assert grant.id.startswith("credgr_test_")
assert grant.amount.monetary.value == 1000 and grant.amount.monetary.currency == "usd"
assert [p.id for p in grant.applicability_config.scope.prices] == [price_a.id, price_b.id]
assert grant.customer.id == customer.id, "expand[]=customer returns the customer object"
assert grant.metadata["note"] == "a b&c"
assert grant.priority == 50 and grant.voided_at is None and grant.livemode is False

# Retrieve, update (expires_at, metadata merge and unset), list.
assert client.v1.billing.credit_grants.retrieve(grant.id).name == "Purchased credits"
later = grant.effective_at + 86400
g = client.v1.billing.credit_grants.update(grant.id, params={"expires_at": later, "metadata": {"order": "", "extra": "1"}})
assert g.expires_at == later and g.metadata.to_dict() == {"note": "a b&c", "extra": "1"}
g = client.v1.billing.credit_grants.update(grant.id, params={"expires_at": ""})
assert g.expires_at is None
listed = client.v1.billing.credit_grants.list(params={"customer": customer.id, "limit": 1})
assert [x.id for x in listed.data] == [grant.id] and listed.has_more is False

# Expire one grant, void another.
expired = client.v1.billing.credit_grants.expire(grant.id)
assert expired.expires_at is not None
second = client.v1.billing.credit_grants.create(
    params={
        "customer": customer.id,
        "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 500}},
        "applicability_config": {"scope": {"price_type": "metered"}},
    }
)
voided = client.v1.billing.credit_grants.void_grant(second.id)
assert voided.voided_at is not None

# Errors arrive as the SDK's own exception types with Stripe's fields.
try:
    client.v1.billing.credit_grants.retrieve("credgr_test_nope")
    raise AssertionError("expected an error")
except stripe.InvalidRequestError as e:
    assert e.http_status == 404 and e.code == "resource_missing", (e.http_status, e.code)
    assert e.param == "id"
try:
    client.v1.billing.credit_grants.create(
        params={
            "customer": "cus_missing",
            "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 5}},
            "applicability_config": {"scope": {"price_type": "metered"}},
        }
    )
    raise AssertionError("expected an error")
except stripe.InvalidRequestError as e:
    assert e.code == "resource_missing" and e.param == "customer"
    assert e.user_message == "No such customer: 'cus_missing'", e.user_message
try:
    client.v1.billing.credit_grants.create(params={"customer": customer.id, "bogus": "1"})
    raise AssertionError("expected an error")
except stripe.InvalidRequestError as e:
    assert e.code == "parameter_unknown" and e.param == "bogus"
try:
    stripe.StripeClient("sk_live_123456789", base_addresses={"api": base}).v1.customers.list()
    raise AssertionError("expected an error")
except stripe.AuthenticationError as e:
    assert e.http_status == 401

# A connected account's world: Stripe-Account from the client, or per request.
account = f"acct_py{uuid.uuid4().hex}"
connected = stripe.StripeClient(key, base_addresses={"api": base}, stripe_account=account)
theirs = connected.v1.customers.create(params={"email": "connected@example.com"})
assert [c.id for c in connected.v1.customers.list().data] == [theirs.id]
assert theirs.id not in [c.id for c in client.v1.customers.list().data]
assert client.v1.customers.retrieve(theirs.id, options={"stripe_account": account}).id == theirs.id
try:
    client.v1.customers.retrieve(theirs.id)
    raise AssertionError("expected an error")
except stripe.InvalidRequestError as e:
    assert e.http_status == 404 and e.code == "resource_missing", (e.http_status, e.code)
try:
    client.v1.customers.list(options={"stripe_account": "not-an-account"})
    raise AssertionError("expected an error")
except stripe.PermissionError as e:
    # The SDK leaves `code` unset on a 403; the error object carries it.
    assert e.http_status == 403 and e.error.code == "account_invalid", (e.http_status, e.error)

# A pinned Stripe-Version: before 2025-10-29.clover a grant needs its category.
old = stripe.StripeClient(key, base_addresses={"api": base}, stripe_version="2025-09-30.clover")
metered = {
    "customer": customer.id,
    "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 100}},
    "applicability_config": {"scope": {"price_type": "metered"}},
}
try:
    old.v1.billing.credit_grants.create(params=metered)
    raise AssertionError("expected an error")
except stripe.InvalidRequestError as e:
    assert e.code == "parameter_missing" and e.param == "category", (e.code, e.param)
pinned = old.v1.billing.credit_grants.create(params={**metered, "category": "promotional"})
assert pinned.last_response.headers["Stripe-Version"] == "2025-09-30.clover"
assert pinned.priority == 50 and "customer_account" not in pinned
first = client.v1.billing.credit_grants.retrieve(pinned.id, options={"stripe_version": "2024-10-28.acacia"})
assert "priority" not in first and first.category == "promotional"
assert "customer_account" in client.v1.billing.credit_grants.retrieve(pinned.id)
try:
    client.v1.customers.list(options={"stripe_version": "2025-09-30.acacia"})
    raise AssertionError("expected an error")
except stripe.InvalidRequestError as e:
    assert e.http_status == 400 and e.user_message == "Invalid Stripe API version: 2025-09-30.acacia", e.user_message

# Deleting a customer.
deleted = client.v1.customers.delete(customer.id)
assert deleted.deleted is True
print("stripe-python lifecycle: ok")
