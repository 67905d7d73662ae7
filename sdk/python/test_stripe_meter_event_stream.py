"""stripe-python (the official SDK, unmodified) through a meter event session and the meter event
stream, served on the emulator's own address, and a session token expiring on the world's clock.

Usage: python test_stripe_meter_event_stream.py http://127.0.0.1:PORT
"""
import sys
import urllib.request
import uuid

import stripe

base = sys.argv[1]
key = f"sk_test_py_{uuid.uuid4().hex}"
client = stripe.StripeClient(key, base_addresses={"api": base, "meter_events": base})


def freeze(at):
    """Freezes the world's clock (the emulator's own route), which the session's expiry reads."""
    request = urllib.request.Request(
        f"{base}/_emulator/clock", data=f"frozen_time={at}".encode(), headers={"Authorization": f"Bearer {key}"}
    )
    urllib.request.urlopen(request).read()


frozen = 1767225600  # 2026-01-01T00:00:00Z
freeze(frozen)
customer = client.v1.customers.create(params={"email": "stream@example.com"})
meter = client.v1.billing.meters.create(
    params={
        "display_name": "Tokens",
        "event_name": "tokens",
        "default_aggregation": {"formula": "sum"},
        "value_settings": {"event_payload_key": "value"},
    }
)

session = client.v2.billing.meter_event_session.create()
assert session.object == "v2.billing.meter_event_session", session
assert session.authentication_token.startswith("ek_test_"), session
assert (session.created, session.expires_at) == ("2026-01-01T00:00:00.000Z", "2026-01-01T00:15:00.000Z"), session

events = [
    {"event_name": "tokens", "identifier": f"stream-{i}", "payload": {"stripe_customer_id": customer.id, "value": "10"}}
    for i in range(3)
]
client.v2.billing.meter_event_stream.create(
    params={"events": events}, options={"api_key": session.authentication_token}
)
summaries = client.v1.billing.meters.event_summaries.list(
    meter.id, params={"customer": customer.id, "start_time": frozen - 3600, "end_time": frozen + 3600}
)
assert [s.aggregated_value for s in summaries.data] == [30], summaries

# Fifteen minutes later on the world's clock, the token has expired.
freeze(frozen + 15 * 60)
try:
    client.v2.billing.meter_event_stream.create(
        params={"events": events[:1]}, options={"api_key": session.authentication_token}
    )
    raise AssertionError("an expired session token was accepted")
except stripe.TemporarySessionExpiredError as e:
    assert e.code == "billing_meter_event_session_expired", e
print("stripe-python meter event stream: ok")
