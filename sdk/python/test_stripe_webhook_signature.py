"""stripe-python (the official SDK, unmodified) through webhook endpoints, and its own signature check
on a real delivery: a local receiver gets the event a customer's creation produces, and
stripe.Webhook.construct_event verifies the Stripe-Signature header with the endpoint's secret.

Usage: python test_stripe_webhook_signature.py http://127.0.0.1:PORT
"""
import http.server
import queue
import sys
import threading
import uuid

import stripe

base = sys.argv[1]
key = f"sk_test_py_{uuid.uuid4().hex}"
client = stripe.StripeClient(key, base_addresses={"api": base})

received = queue.Queue()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        # Header names as sent are lower-case (HTTP/1.1 names are case-insensitive).
        received.put(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/webhook"

# The endpoint's life through the SDK; the secret is shown once.
endpoint = client.v1.webhook_endpoints.create(
    params={"url": url, "enabled_events": ["customer.created"], "description": "python", "metadata": {"k": "v"}}
)
assert endpoint.id.startswith("we_"), endpoint.id
assert endpoint.secret.startswith("whsec_"), endpoint
assert (endpoint.status, endpoint.url, endpoint.enabled_events) == ("enabled", url, ["customer.created"])
secret = endpoint.secret
again = client.v1.webhook_endpoints.retrieve(endpoint.id)
assert getattr(again, "secret", None) is None, again
assert [e.id for e in client.v1.webhook_endpoints.list().data] == [endpoint.id]
off = client.v1.webhook_endpoints.update(endpoint.id, params={"disabled": True})
assert off.status == "disabled", off
on = client.v1.webhook_endpoints.update(endpoint.id, params={"disabled": False, "description": "on"})
assert (on.status, on.description) == ("enabled", "on"), on
try:
    client.v1.webhook_endpoints.create(params={"url": url, "enabled_events": ["customer.exploded"]})
    raise AssertionError("an unknown event type was accepted")
except stripe.InvalidRequestError as e:
    assert e.param == "enabled_events[0]", e.param
try:
    client.v1.webhook_endpoints.create(params={"url": "ftp://example.com", "enabled_events": ["*"]})
    raise AssertionError("an ftp URL was accepted")
except stripe.InvalidRequestError as e:
    assert e.param == "url", e.param

customer = client.v1.customers.create(params={"email": "hook@example.com"})
try:
    headers, body = received.get(timeout=5)
except queue.Empty:
    raise AssertionError("no customer.created delivery arrived within 5 s")

assert headers.get("user-agent") == "Stripe/1.0 (+https://stripe.com/docs/webhooks)", headers
assert headers.get("content-type", "").startswith("application/json"), headers
event = stripe.Webhook.construct_event(body, headers["stripe-signature"], secret)
assert (event.type, event.data.object.id) == ("customer.created", customer.id), event
for wrong_body, wrong_secret in [(body + b" ", secret), (body, "whsec_wrong")]:
    try:
        stripe.Webhook.construct_event(wrong_body, headers["stripe-signature"], wrong_secret)
        raise AssertionError("a tampered delivery was verified")
    except stripe.SignatureVerificationError:
        pass

deleted = client.v1.webhook_endpoints.delete(endpoint.id)
assert deleted.deleted is True, deleted
print("ok: webhook endpoints and a delivery verified by stripe.Webhook.construct_event")
