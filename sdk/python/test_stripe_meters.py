"""stripe-python (the official SDK, unmodified) through meters, meter events, a cancel adjustment and
event summaries.

Usage: python test_stripe_meters.py http://127.0.0.1:PORT
"""
import sys
import uuid

import stripe

base = sys.argv[1]
key = f"sk_test_py_{uuid.uuid4().hex}"
client = stripe.StripeClient(key, base_addresses={"api": base})

# A test clock fixes the customer's now, so the summaries below have known windows.
frozen = 1767225600  # 2026-01-01T00:00:00Z
clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": frozen})
customer = client.v1.customers.create(params={"email": "meter@example.com", "test_clock": clock.id})

meter = client.v1.billing.meters.create(
    params={
        "display_name": "API calls",
        "event_name": "api_call",
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        "value_settings": {"event_payload_key": "value"},
    }
)
assert meter.id.startswith("mtr_"), meter.id
assert (meter.status, meter.default_aggregation.formula, meter.event_time_window) == ("active", "sum", None)
assert client.v1.billing.meters.retrieve(meter.id).display_name == "API calls"
assert client.v1.billing.meters.update(meter.id, params={"display_name": "Calls"}).display_name == "Calls"
assert [m.id for m in client.v1.billing.meters.list(params={"status": "active"}).data] == [meter.id]

# Events at the clock's time (the default) and an hour before; values are strings on the wire.
event = client.v1.billing.meter_events.create(
    params={"event_name": "api_call", "payload": {"stripe_customer_id": customer.id, "value": "25"}, "identifier": "py-1"}
)
assert (event.identifier, event.timestamp, event.payload["value"]) == ("py-1", frozen, "25")
client.v1.billing.meter_events.create(
    params={
        "event_name": "api_call",
        "payload": {"stripe_customer_id": customer.id, "value": "2.5"},
        "identifier": "py-2",
        "timestamp": frozen - 3600,
    }
)
try:
    client.v1.billing.meter_events.create(
        params={"event_name": "api_call", "payload": {"stripe_customer_id": customer.id, "value": "1"}, "identifier": "py-1"}
    )
    raise AssertionError("a duplicate identifier was accepted")
except stripe.InvalidRequestError as e:
    assert "An event already exists with identifier py-1." in str(e), e

summaries = client.v1.billing.meters.event_summaries.list(
    meter.id,
    params={"customer": customer.id, "start_time": frozen - 3600, "end_time": frozen + 3600, "value_grouping_window": "hour"},
)
assert [(s.start_time, s.aggregated_value) for s in summaries.data] == [(frozen - 3600, 2.5), (frozen, 25)], summaries

adjustment = client.v1.billing.meter_event_adjustments.create(
    params={"event_name": "api_call", "type": "cancel", "cancel": {"identifier": "py-1"}}
)
assert (adjustment.status, adjustment.cancel.identifier) == ("complete", "py-1")
whole = client.v1.billing.meters.event_summaries.list(
    meter.id, params={"customer": customer.id, "start_time": frozen - 3600, "end_time": frozen + 3600}
)
assert [s.aggregated_value for s in whole.data] == [2.5], whole

off = client.v1.billing.meters.deactivate(meter.id)
assert off.status == "inactive" and off.status_transitions.deactivated_at is not None
try:
    client.v1.billing.meter_events.create(
        params={"event_name": "api_call", "payload": {"stripe_customer_id": customer.id, "value": "1"}}
    )
    raise AssertionError("an inactive meter took an event")
except stripe.InvalidRequestError as e:
    assert e.param == "event_name", e
assert client.v1.billing.meters.reactivate(meter.id).status == "active"
print("stripe-python meters: ok")
