// The official Node SDK (stripe-node), unmodified but for its host, through webhook endpoints, and
// its own signature check on a real delivery: a local receiver gets the event a customer's creation
// produces, and stripe.webhooks.constructEvent verifies it with the endpoint's secret.
//   EMULATOR_URL=http://127.0.0.1:12111 node --test webhooks.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';

const BASE = process.env.EMULATOR_URL;
if (!BASE) {
  throw new Error('EMULATOR_URL is not set: start the emulator and pass its URL (bash sdk/run.sh does both)');
}
const base = new URL(BASE);

function client() {
  const key = `sk_test_node_webhooks_${randomUUID().slice(0, 8)}`;
  return new Stripe(key, { host: base.hostname, port: Number(base.port), protocol: 'http' });
}

/** A local receiver; `next()` resolves with the next request's headers and raw body, or null after `ms`. */
async function receiver() {
  const waiting = [];
  const arrived = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200).end();
      const hit = { headers: req.headers, body: Buffer.concat(chunks) };
      const w = waiting.shift();
      if (w) w(hit);
      else arrived.push(hit);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/webhook`;
  const next = (ms) =>
    arrived.length
      ? Promise.resolve(arrived.shift())
      : new Promise((resolve) => {
          const timer = setTimeout(() => resolve(null), ms);
          waiting.push((hit) => {
            clearTimeout(timer);
            resolve(hit);
          });
        });
  return { url, next, close: () => server.close() };
}

test('webhook endpoints: create (secret once), retrieve, update, list, delete, refusals', async () => {
  const stripe = client();
  const endpoint = await stripe.webhookEndpoints.create({
    url: 'http://127.0.0.1:9/hook',
    enabled_events: ['invoice.paid', 'billing.credit_grant.created'],
  });
  assert.match(endpoint.id, /^we_/);
  assert.match(endpoint.secret, /^whsec_/);
  assert.equal(endpoint.status, 'enabled');
  const again = await stripe.webhookEndpoints.retrieve(endpoint.id);
  assert.equal(again.secret, undefined);
  const updated = await stripe.webhookEndpoints.update(endpoint.id, { disabled: true, enabled_events: ['*'] });
  assert.deepEqual([updated.status, updated.enabled_events], ['disabled', ['*']]);
  const list = await stripe.webhookEndpoints.list();
  assert.deepEqual(list.data.map((e) => e.id), [endpoint.id]);
  await assert.rejects(
    stripe.webhookEndpoints.create({ url: 'http://127.0.0.1:9/hook', enabled_events: ['customer.exploded'] }),
    (e) => e.type === 'StripeInvalidRequestError' && e.param === 'enabled_events[0]',
  );
  const deleted = await stripe.webhookEndpoints.del(endpoint.id);
  assert.equal(deleted.deleted, true);
});

test('a delivery verifies with stripe.webhooks.constructEvent', async () => {
  const stripe = client();
  const rx = await receiver();
  try {
    const endpoint = await stripe.webhookEndpoints.create({ url: rx.url, enabled_events: ['customer.created'] });
    const customer = await stripe.customers.create({ email: 'hook@example.com' });
    const hit = await rx.next(5000);
    assert.ok(hit, 'no customer.created delivery arrived within 5 s');
    assert.equal(hit.headers['user-agent'], 'Stripe/1.0 (+https://stripe.com/docs/webhooks)');
    const event = stripe.webhooks.constructEvent(hit.body, hit.headers['stripe-signature'], endpoint.secret);
    assert.deepEqual([event.type, event.data.object.id], ['customer.created', customer.id]);
    assert.throws(() =>
      stripe.webhooks.constructEvent(hit.body, hit.headers['stripe-signature'], 'whsec_wrong'),
    );
  } finally {
    rx.close();
  }
});
