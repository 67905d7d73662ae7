"""flexprice (the official Python SDK, unmodified but for server_url) through a credit grant's whole
life, and the same credits seen through stripe-python.

Usage: python test_flexprice_lifecycle.py http://127.0.0.1:PORT
"""
import json
import sys
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import stripe
from flexprice import Flexprice, models
from flexprice.models import errors

base = sys.argv[1]
key = f"sk_test_fp_{uuid.uuid4().hex}"
fp = Flexprice(api_key_auth=key, server_url=f"{base}/v1")

# A customer, a plan and a subscription (the things grants hang on).
customer = fp.customers.create_customer(
    external_id="ext-ada", name="Ada", email="ada@example.com", metadata={"team": "ci"}
)
assert customer.id.startswith("cust_"), customer.id
assert customer.external_id == "ext-ada" and customer.metadata == {"team": "ci"}
plan = fp.plans.create_plan(name="Pro", lookup_key="pro")
assert plan.id.startswith("plan_") and plan.name == "Pro"

# A PLAN grant: a template that every subscription to the plan copies.
template = fp.credit_grants.create_credit_grant(
    name="Monthly credits",
    scope="PLAN",
    plan_id=plan.id,
    credits="10",
    cadence="RECURRING",
    period="MONTHLY",
    period_count=1,
    expiration_type="BILLING_CYCLE",
    priority=1,
    metadata={"source": "plan"},
)
assert template.id.startswith("cg_"), template.id
assert template.scope == "PLAN" and template.credits == "10" and template.status == "published"
assert template.start_date is None and template.subscription_id is None
listed = fp.credit_grants.get_plan_credit_grants(id=plan.id)
assert [g.id for g in listed.items] == [template.id]
assert listed.pagination.total == 1

sub = fp.subscriptions.create_subscription(
    customer_id=customer.id, plan_id=plan.id, currency="usd", billing_period="MONTHLY"
)
assert sub.id.startswith("subs_") and sub.subscription_status == "active"

# A SUBSCRIPTION grant starting now: applied at once into the customer's usd wallet.
start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
grant = fp.credit_grants.create_credit_grant(
    name="Welcome credits",
    scope="SUBSCRIPTION",
    subscription_id=sub.id,
    credits="12.5",
    cadence="ONETIME",
    expiration_type="DURATION",
    expiration_duration=30,
    expiration_duration_unit="DAY",
    start_date=start,
)
assert grant.scope == "SUBSCRIPTION" and grant.credits == "12.5"
assert grant.subscription_id == sub.id and grant.start_date == start
assert grant.credit_grant_anchor == start and grant.period is None

# Get and update (name and metadata; metadata is replaced whole).
got = fp.credit_grants.get_credit_grant(id=grant.id)
assert got.id == grant.id and got.name == "Welcome credits"
updated = fp.credit_grants.update_credit_grant(
    id=grant.id, name="Welcome", metadata={"campaign": "spring"}
)
assert updated.name == "Welcome" and updated.metadata == {"campaign": "spring"}
assert fp.credit_grants.get_credit_grant(id=grant.id).metadata == {"campaign": "spring"}

# Upcoming applications: the recurring copy of the plan grant waits for next month; the
# subscription grant waits for its start five seconds from now.
upcoming = fp.subscriptions.get_subscription_upcoming_grants(id=sub.id)
assert {a.application_status for a in upcoming.items} == {"pending"}, upcoming.items
assert grant.id in {a.credit_grant_id for a in upcoming.items}

# The copied plan grant applied 10 credits at the subscription's start: the wallet holds them.
wallets = fp.wallets.get_wallets_by_customer_id(id=customer.id)
assert len(wallets) == 1 and wallets[0].currency == "usd", wallets
wallet = wallets[0]
assert wallet.credit_balance == "10" and wallet.conversion_rate == "1"
balance = fp.wallets.get_wallet_balance(id=wallet.id)
assert balance.real_time_balance == "10" and balance.real_time_credit_balance == "10"

# The same credits, seen through Stripe: one credit grant of $10 for the same customer.
client = stripe.StripeClient(key, base_addresses={"api": base})
stripe_customer = "cus_" + customer.id[len("cust_"):]
stripe_grants = client.v1.billing.credit_grants.list(params={"customer": stripe_customer})
assert [g.amount.monetary.value for g in stripe_grants.data] == [1000], stripe_grants
assert stripe_grants.data[0].priority == 1 and stripe_grants.data[0].name == "Monthly credits"

# Delete: a SUBSCRIPTION grant ends (stays published, its pending application is cancelled);
# a PLAN grant is archived.
deleted = fp.credit_grants.delete_credit_grant(id=grant.id)
assert deleted.message == "credit grant deleted successfully"
ended = fp.credit_grants.get_credit_grant(id=grant.id)
assert ended.status == "published" and ended.end_date is not None
upcoming = fp.subscriptions.get_subscription_upcoming_grants(id=sub.id)
assert grant.id not in {a.credit_grant_id for a in upcoming.items}
fp.credit_grants.delete_credit_grant(id=template.id)
assert fp.credit_grants.get_credit_grant(id=template.id).status == "archived"
assert fp.credit_grants.get_plan_credit_grants(id=plan.id).items == []

# Errors arrive as the SDK's own types with Flexprice's fields.
try:
    fp.credit_grants.create_credit_grant(
        name="x", scope="PLAN", plan_id=plan.id, credits="10", cadence="ONETIME"
    )
    raise AssertionError("expected an error")
except errors.ErrorResponse as e:
    assert e.data.code == "validation_error" and e.data.http_status_code == 400, e.data
    assert (
        e.data.message
        == "Credit grant expiry type must be one of: [NEVER DURATION BILLING_CYCLE]"
    ), e.data.message
try:
    fp.credit_grants.delete_credit_grant(id=template.id)
    raise AssertionError("expected an error")
except errors.ErrorResponse as e:
    assert e.data.message == "Credit grant is already archived", e.data.message
try:
    fp.credit_grants.get_credit_grant(id="cg_nope")
    raise AssertionError("expected an error")
except errors.FlexpriceDefaultError as e:
    assert e.status_code == 404 and "Credit grant not found" in e.body, (e.status_code, e.body)
try:
    Flexprice(api_key_auth="sk_live_123", server_url=f"{base}/v1").credit_grants.get_credit_grant(
        id=grant.id
    )
    raise AssertionError("expected an error")
except errors.FlexpriceDefaultError as e:
    assert e.status_code == 401 and '"Unauthorized"' in e.body, (e.status_code, e.body)

assert isinstance(template, models.CreditGrantResponse)


# The older create form Flexprice's published page shows: amount, currency, expire_in_days. The SDK
# no longer models those fields (create_credit_grant requires credits and has no amount, currency or
# expire_in_days), so the documented body goes out as plain JSON through urllib, and the SDK reads
# the grant back.
def post_json(path, body):
    req = urllib.request.Request(
        f"{base}/v1{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"x-api-key": key, "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


older_plan = fp.plans.create_plan(name="Older form")
documented = {"amount": 123, "cadence": "ONETIME", "currency": "usd", "expire_in_days": 30,
              "metadata": {}, "name": "Welcome credits", "period": "DAILY", "period_count": 1,
              "plan_id": older_plan.id, "priority": 1, "scope": "PLAN"}
status, older = post_json("/creditgrants", documented)
assert status == 201, (status, older)
assert (older["amount"], older["currency"], older["expire_in_days"]) == ("123", "usd", 30), older
read = fp.credit_grants.get_credit_grant(id=older["id"])
assert read.credits == "123" and read.expiration_type == "DURATION", read
assert read.expiration_duration == 30 and read.expiration_duration_unit == "DAY", read
assert [g.id for g in fp.credit_grants.get_plan_credit_grants(id=older_plan.id).items] == [older["id"]]
status, conflict = post_json("/creditgrants", {**documented, "credits": "124"})
assert status == 400 and conflict["details"] == {"amount": "123", "credits": "124"}, conflict
try:
    fp.subscriptions.create_subscription(
        customer_id=customer.id, plan_id=older_plan.id, currency="eur", billing_period="MONTHLY"
    )
    raise AssertionError("expected an error")
except errors.ErrorResponse as e:
    assert e.data.message == "Credit grant currency must match the subscription currency", e.data
print("flexprice lifecycle: ok")
