// The official Node SDK (stripe-node), unmodified but for its host, driven through every Billing
// Credits operation the emulator serves. Run with the emulator's URL in EMULATOR_URL:
//   EMULATOR_URL=http://127.0.0.1:12111 node --test
// (`bash sdk/run.sh` starts a fresh emulator and does this.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';

const BASE = process.env.EMULATOR_URL;
if (!BASE) {
  throw new Error('EMULATOR_URL is not set: start the emulator and pass its URL (bash sdk/run.sh does both)');
}
const base = new URL(BASE);

/** 2026-01-01T00:00:00Z: every tenant here starts its clock at this instant. */
const T0 = 1767225600;
const DAY = 86400;

/** A fresh tenant (its own key, its clock frozen at T0) and an SDK client for it. */
async function tenant(name, config = {}) {
  const key = `sk_test_node_${name}_${randomUUID().slice(0, 8)}`;
  const stripe = new Stripe(key, {
    host: base.hostname,
    port: Number(base.port),
    protocol: 'http',
    ...config,
  });
  await emulator(key, '/_emulator/clock', { frozen_time: T0 });
  return { key, stripe };
}

/** A form POST outside the SDK (the emulator's own routes), answered with parsed JSON. */
async function emulator(key, path, form) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) body.append(k, String(v));
  const res = await fetch(new URL(path, base), {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body,
  });
  const json = await res.json();
  assert.equal(res.status, 200, `${path}: ${JSON.stringify(json)}`);
  return json;
}

/** Makes (and finalizes) an invoice in usd with one line per amount; returns the invoice. */
function invoice(key, customer, amounts) {
  const form = { customer, currency: 'usd' };
  amounts.forEach((amount, i) => {
    form[`lines[${i}][amount]`] = amount;
  });
  return emulator(key, '/_emulator/invoices', form);
}

/** Parameters of a metered usd grant of `value` cents. */
function metered(customer, value, extra = {}) {
  return {
    customer,
    amount: { type: 'monetary', monetary: { currency: 'usd', value } },
    applicability_config: { scope: { price_type: 'metered' } },
    ...extra,
  };
}

/** `[available, ledger]` in usd for a customer. */
async function balance(stripe, customer) {
  const summary = await stripe.billing.creditBalanceSummaries.retrieve({
    customer,
    filter: { type: 'applicability_scope', applicability_scope: { price_type: 'metered' } },
  });
  assert.equal(summary.object, 'billing.credit_balance_summary');
  const usd = summary.balances.find((b) => b.ledger_balance.monetary.currency === 'usd');
  return usd ? [usd.available_balance.monetary.value, usd.ledger_balance.monetary.value] : [0, 0];
}

test('customers: create, retrieve, update, list, delete', async () => {
  const { stripe } = await tenant('customers');
  const ada = await stripe.customers.create({
    email: 'ada@example.com',
    name: 'Ada',
    metadata: { plan: 'pro', team: 'core' },
  });
  assert.match(ada.id, /^cus_/);
  assert.equal(ada.object, 'customer');
  assert.equal(ada.created, T0);
  assert.deepEqual(ada.metadata, { plan: 'pro', team: 'core' });
  assert.match(ada.lastResponse.requestId, /^req_/);

  const fetched = await stripe.customers.retrieve(ada.id);
  assert.equal(fetched.email, 'ada@example.com');

  // Metadata merges; '' removes a key.
  const updated = await stripe.customers.update(ada.id, { name: 'Ada L.', metadata: { team: '', tier: 'gold' } });
  assert.equal(updated.name, 'Ada L.');
  assert.deepEqual(updated.metadata, { plan: 'pro', tier: 'gold' });

  const bob = await stripe.customers.create({ email: 'bob@example.com' });
  const all = await stripe.customers.list({ limit: 10 });
  assert.deepEqual(all.data.map((c) => c.id), [bob.id, ada.id]);
  assert.equal(all.url, '/v1/customers');
  const byEmail = await stripe.customers.list({ email: 'bob@example.com' });
  assert.deepEqual(byEmail.data.map((c) => c.id), [bob.id]);

  const deleted = await stripe.customers.del(bob.id);
  assert.deepEqual({ ...deleted }, { id: bob.id, object: 'customer', deleted: true });
  const gone = await stripe.customers.retrieve(bob.id);
  assert.equal(gone.deleted, true);
  const left = await stripe.customers.list();
  assert.deepEqual(left.data.map((c) => c.id), [ada.id]);
});

test('credit grants: create, retrieve, update, list, expire, void', async () => {
  const { key, stripe } = await tenant('grants');
  const cus = (await stripe.customers.create({ email: 'ada@example.com' })).id;
  const grant = await stripe.billing.creditGrants.create(
    metered(cus, 1000, {
      name: 'Purchased credits',
      category: 'promotional',
      priority: 10,
      expires_at: T0 + 30 * DAY,
      metadata: { order: '42' },
    }),
  );
  assert.match(grant.id, /^credgr_test_/);
  assert.equal(grant.object, 'billing.credit_grant');
  assert.deepEqual(grant.amount, { monetary: { currency: 'usd', value: 1000 }, type: 'monetary' });
  assert.deepEqual(grant.applicability_config, { scope: { price_type: 'metered' } });
  assert.equal(grant.category, 'promotional');
  assert.equal(grant.priority, 10);
  assert.equal(grant.effective_at, T0);
  assert.equal(grant.expires_at, T0 + 30 * DAY);
  assert.equal(grant.customer, cus);
  assert.equal(grant.voided_at, null);
  assert.equal(grant.test_clock, null);

  const fetched = await stripe.billing.creditGrants.retrieve(grant.id);
  assert.deepEqual({ ...fetched }, { ...grant });

  const updated = await stripe.billing.creditGrants.update(grant.id, {
    expires_at: T0 + 60 * DAY,
    metadata: { order: '', batch: 'b1' },
  });
  assert.equal(updated.expires_at, T0 + 60 * DAY);
  assert.deepEqual(updated.metadata, { batch: 'b1' });

  // A price scope names metered prices of the world: a meter and two prices on it.
  const meter = await stripe.billing.meters.create({
    display_name: 'API calls',
    event_name: 'api_call',
    default_aggregation: { formula: 'sum' },
  });
  const meteredPrice = (name) =>
    stripe.prices.create({
      currency: 'usd',
      unit_amount: 5,
      product_data: { name },
      recurring: { interval: 'month', usage_type: 'metered', meter: meter.id },
    });
  const priceA = await meteredPrice('Search');
  const priceB = await meteredPrice('Export');
  const priced = await stripe.billing.creditGrants.create({
    customer: cus,
    amount: { type: 'monetary', monetary: { currency: 'usd', value: 500 } },
    applicability_config: { scope: { prices: [{ id: priceA.id }, { id: priceB.id }] } },
  });
  assert.deepEqual(priced.applicability_config.scope.prices, [{ id: priceA.id }, { id: priceB.id }]);
  assert.equal(priced.priority, 50);
  assert.equal(priced.category, 'paid');

  const listed = await stripe.billing.creditGrants.list({ customer: cus });
  assert.deepEqual(listed.data.map((g) => g.id), [priced.id, grant.id]);
  assert.equal(listed.url, '/v1/billing/credit_grants');
  assert.equal(listed.has_more, false);

  // Expire writes off what remains at the customer's now; void writes off the other grant.
  await emulator(key, '/_emulator/clock', { frozen_time: T0 + DAY });
  const expired = await stripe.billing.creditGrants.expire(grant.id);
  assert.equal(expired.expires_at, T0 + DAY);
  assert.equal(expired.updated, T0 + DAY);
  const voided = await stripe.billing.creditGrants.voidGrant(priced.id);
  assert.equal(voided.voided_at, T0 + DAY);
  assert.deepEqual(await balance(stripe, cus), [0, 0]);

  await assert.rejects(stripe.billing.creditGrants.voidGrant(priced.id), (err) => {
    assert.equal(err.message, 'This credit grant has already been voided.');
    assert.equal(err.statusCode, 400);
    return true;
  });
});

test('auto-pagination walks every page, newest first', async () => {
  const { stripe } = await tenant('paging');
  const cus = (await stripe.customers.create({})).id;
  const made = [];
  for (let i = 0; i < 7; i++) {
    made.push((await stripe.billing.creditGrants.create(metered(cus, 100 + i))).id);
  }
  const newestFirst = [...made].reverse();

  const firstPage = await stripe.billing.creditGrants.list({ customer: cus, limit: 3 });
  assert.equal(firstPage.data.length, 3);
  assert.equal(firstPage.has_more, true);

  const seen = [];
  for await (const g of stripe.billing.creditGrants.list({ customer: cus, limit: 3 })) {
    seen.push(g.id);
  }
  assert.deepEqual(seen, newestFirst);

  const all = await stripe.billing.creditGrants.list({ customer: cus, limit: 2 }).autoPagingToArray({ limit: 100 });
  assert.deepEqual(all.map((g) => g.id), newestFirst);

  // Backwards with ending_before: the page just newer than the oldest grant.
  const back = await stripe.billing.creditGrants.list({ customer: cus, limit: 2, ending_before: made[0] });
  assert.deepEqual(back.data.map((g) => g.id), [made[2], made[1]]);
  assert.equal(back.has_more, true);
});

test('expand replaces ids with objects', async () => {
  const { stripe } = await tenant('expand');
  const cus = await stripe.customers.create({ email: 'ada@example.com' });
  const grant = await stripe.billing.creditGrants.create(metered(cus.id, 100), {});
  const one = await stripe.billing.creditGrants.retrieve(grant.id, { expand: ['customer'] });
  assert.equal(one.customer.id, cus.id);
  assert.equal(one.customer.object, 'customer');
  assert.equal(one.customer.email, 'ada@example.com');
  const list = await stripe.billing.creditGrants.list({ customer: cus.id, expand: ['data.customer'] });
  assert.equal(list.data[0].customer.email, 'ada@example.com');
  const created = await stripe.billing.creditGrants.create({ ...metered(cus.id, 5), expand: ['customer'] });
  assert.equal(created.customer.id, cus.id);
});

test('errors carry Stripe\'s fields', async () => {
  const { stripe } = await tenant('errors');
  const cus = (await stripe.customers.create({})).id;

  await assert.rejects(
    stripe.billing.creditGrants.create({
      customer: cus,
      amount: { type: 'monetary', monetary: { currency: 'usd', value: 0 } },
      applicability_config: { scope: { price_type: 'metered' } },
    }),
    (err) => {
      assert.ok(err instanceof Stripe.errors.StripeInvalidRequestError);
      assert.equal(err.type, 'StripeInvalidRequestError');
      assert.equal(err.rawType, 'invalid_request_error');
      assert.equal(err.code, 'parameter_invalid_integer');
      assert.equal(err.param, 'amount[monetary][value]');
      assert.equal(err.message, 'This value must be greater than or equal to 1.');
      assert.equal(err.statusCode, 400);
      assert.match(err.requestId, /^req_/);
      assert.equal(err.doc_url, 'https://stripe.com/docs/error-codes/parameter-invalid-integer');
      assert.equal(err.raw.param, 'amount[monetary][value]');
      assert.equal(err.raw.type, 'invalid_request_error');
      return true;
    },
  );

  await assert.rejects(stripe.billing.creditGrants.retrieve('credgr_test_nope'), (err) => {
    assert.ok(err instanceof Stripe.errors.StripeInvalidRequestError);
    assert.equal(err.statusCode, 404);
    assert.equal(err.code, 'resource_missing');
    assert.equal(err.param, 'id');
    assert.equal(err.message, "No such credit grant: 'credgr_test_nope'");
    return true;
  });

  await assert.rejects(stripe.billing.creditGrants.create(metered('cus_nope', 100)), (err) => {
    assert.equal(err.statusCode, 400);
    assert.equal(err.code, 'resource_missing');
    assert.equal(err.param, 'customer');
    assert.equal(err.message, "No such customer: 'cus_nope'");
    return true;
  });

  await assert.rejects(stripe.customers.create({ shoe_size: 42 }), (err) => {
    assert.equal(err.code, 'parameter_unknown');
    assert.equal(err.param, 'shoe_size');
    assert.equal(err.message, 'Received unknown parameter: shoe_size');
    return true;
  });

  const live = new Stripe('sk_live_node', { host: base.hostname, port: Number(base.port), protocol: 'http' });
  await assert.rejects(live.customers.list(), (err) => {
    assert.ok(err instanceof Stripe.errors.StripeAuthenticationError);
    assert.equal(err.statusCode, 401);
    return true;
  });
});

test('idempotent requests replay the stored answer', async () => {
  const { stripe } = await tenant('idempotency', { maxNetworkRetries: 2 });
  const key = `node-${randomUUID()}`;
  const first = await stripe.customers.create({ email: 'ada@example.com' }, { idempotencyKey: key });
  assert.equal(first.lastResponse.idempotencyKey, key);
  assert.equal(first.lastResponse.headers['idempotent-replayed'], undefined);
  const again = await stripe.customers.create({ email: 'ada@example.com' }, { idempotencyKey: key });
  assert.equal(again.id, first.id);
  assert.deepEqual({ ...again }, { ...first });
  assert.equal(again.lastResponse.headers['idempotent-replayed'], 'true');
  assert.equal(again.lastResponse.idempotencyKey, key);
  // Only one customer was made.
  const all = await stripe.customers.list();
  assert.deepEqual(all.data.map((c) => c.id), [first.id]);

  // The same key with other parameters is refused.
  await assert.rejects(
    stripe.customers.create({ email: 'bob@example.com' }, { idempotencyKey: key }),
    (err) => {
      assert.ok(err instanceof Stripe.errors.StripeIdempotencyError);
      assert.equal(err.rawType, 'idempotency_error');
      assert.equal(err.statusCode, 400);
      return true;
    },
  );

  // The SDK keys every POST itself; a grant made without an explicit key is made once.
  const grant = await stripe.billing.creditGrants.create(metered(first.id, 100));
  assert.match(grant.lastResponse.idempotencyKey, /^stripe-node-retry-/);
  const grants = await stripe.billing.creditGrants.list({ customer: first.id });
  assert.equal(grants.data.length, 1);
});

test('test clocks: create, retrieve, list, advance, delete, and create with a customer', async () => {
  const { key, stripe } = await tenant('clocks');
  const clock = await stripe.testHelpers.testClocks.create({ frozen_time: T0, name: 'Monthly run' });
  assert.match(clock.id, /^clock_/);
  assert.equal(clock.object, 'test_helpers.test_clock');
  assert.equal(clock.status, 'ready');
  assert.equal(clock.frozen_time, T0);
  assert.equal(clock.name, 'Monthly run');
  assert.equal((await stripe.testHelpers.testClocks.retrieve(clock.id)).id, clock.id);

  const onClock = await stripe.customers.create({ test_clock: clock.id });
  assert.equal(onClock.test_clock, clock.id);
  const grant = await stripe.billing.creditGrants.create(
    metered(onClock.id, 400, { effective_at: T0 + DAY, expires_at: T0 + 3 * DAY }),
  );
  assert.equal(grant.test_clock, clock.id);
  assert.deepEqual(await balance(stripe, onClock.id), [0, 0]);
  const advanced = await stripe.testHelpers.testClocks.advance(clock.id, { frozen_time: T0 + 2 * DAY });
  assert.equal(advanced.frozen_time, T0 + 2 * DAY);
  assert.equal(advanced.status, 'ready');
  assert.deepEqual(await balance(stripe, onClock.id), [400, 400]);

  // An existing customer moves onto a new clock with its grant, whose expiry then waits for it.
  const existing = await stripe.customers.create({ email: 'ada@example.com' });
  const kept = await stripe.billing.creditGrants.create(metered(existing.id, 250, { expires_at: T0 + 5 * DAY }));
  const second = await stripe.testHelpers.testClocks.create({ frozen_time: T0, customer: existing.id });
  assert.equal((await stripe.customers.retrieve(existing.id)).test_clock, second.id);
  assert.equal((await stripe.billing.creditGrants.retrieve(kept.id)).test_clock, second.id);
  // The tenant's time no longer moves it.
  await emulator(key, '/_emulator/clock', { frozen_time: T0 + 10 * DAY });
  assert.deepEqual(await balance(stripe, existing.id), [250, 250]);
  await stripe.testHelpers.testClocks.advance(second.id, { frozen_time: T0 + 6 * DAY });
  assert.deepEqual(await balance(stripe, existing.id), [0, 0]);
  await assert.rejects(
    stripe.testHelpers.testClocks.create({ frozen_time: T0, customer: existing.id }),
    (err) => {
      assert.equal(err.param, 'customer');
      assert.match(err.message, /already attached to test clock/);
      return true;
    },
  );

  const clocks = await stripe.testHelpers.testClocks.list();
  assert.deepEqual(clocks.data.map((c) => c.id), [second.id, clock.id]);
  const deleted = await stripe.testHelpers.testClocks.del(clock.id);
  assert.equal(deleted.deleted, true);
  assert.equal((await stripe.customers.retrieve(onClock.id)).deleted, true);
  await assert.rejects(stripe.testHelpers.testClocks.retrieve(clock.id), (err) => err.statusCode === 404);
});

test('credit balance summary and transactions', async () => {
  const { key, stripe } = await tenant('ledger');
  const cus = (await stripe.customers.create({})).id;
  const grant = await stripe.billing.creditGrants.create(metered(cus, 1000));
  assert.deepEqual(await balance(stripe, cus), [1000, 1000]);
  const byGrant = await stripe.billing.creditBalanceSummaries.retrieve({
    customer: cus,
    filter: { type: 'credit_grant', credit_grant: grant.id },
  });
  assert.equal(byGrant.customer, cus);
  assert.equal(byGrant.balances[0].available_balance.monetary.value, 1000);

  await invoice(key, cus, [300]);
  const txns = await stripe.billing.creditBalanceTransactions.list({ customer: cus });
  assert.deepEqual(
    txns.data.map((t) => [t.type, (t.credit ?? t.debit).type, (t.credit ?? t.debit).amount.monetary.value]),
    [
      ['debit', 'credits_applied', 300],
      ['credit', 'credits_granted', 1000],
    ],
  );
  assert.equal(txns.url, '/v1/billing/credit_balance_transactions');
  const one = await stripe.billing.creditBalanceTransactions.retrieve(txns.data[0].id, {
    expand: ['credit_grant'],
  });
  assert.equal(one.object, 'billing.credit_balance_transaction');
  assert.equal(one.credit_grant.id, grant.id);
  assert.match(one.debit.credits_applied.invoice, /^in_/);
  assert.deepEqual(await balance(stripe, cus), [700, 700]);
});

test('invoices: retrieve, list, line items, void', async () => {
  const { key, stripe } = await tenant('invoices');
  const cus = (await stripe.customers.create({ email: 'ada@example.com' })).id;
  const other = (await stripe.customers.create({})).id;
  await stripe.billing.creditGrants.create(metered(cus, 1000));
  const made = await invoice(key, cus, [300, 50]);
  assert.equal(made.object, 'invoice');
  assert.equal(made.total, 0);
  await emulator(key, '/_emulator/clock', { frozen_time: T0 + DAY });
  const later = await invoice(key, cus, [900]);
  const others = await invoice(key, other, [10]);

  const inv = await stripe.invoices.retrieve(made.id);
  assert.equal(inv.id, made.id);
  assert.equal(inv.status, 'open');
  assert.equal(inv.subtotal, 350);
  assert.equal(inv.amount_due, 0);
  assert.deepEqual(inv.total_pretax_credit_amounts.map((c) => c.amount), [300, 50]);

  const all = await stripe.invoices.list();
  assert.deepEqual(all.data.map((i) => i.id), [others.id, later.id, made.id]);
  assert.equal(all.url, '/v1/invoices');
  const mine = await stripe.invoices.list({ customer: cus, limit: 1 });
  assert.deepEqual(mine.data.map((i) => i.id), [later.id]);
  assert.equal(mine.has_more, true);
  const mineAll = await stripe.invoices.list({ customer: cus }).autoPagingToArray({ limit: 10 });
  assert.deepEqual(mineAll.map((i) => i.id), [later.id, made.id]);
  const onDay0 = await stripe.invoices.list({ created: { lt: T0 + DAY } });
  assert.deepEqual(onDay0.data.map((i) => i.id), [made.id]);
  const expanded = await stripe.invoices.list({ customer: cus, limit: 1, expand: ['data.customer'] });
  assert.equal(expanded.data[0].customer.email, 'ada@example.com');

  const lines = await stripe.invoices.listLineItems(made.id, { limit: 1 });
  assert.equal(lines.data.length, 1);
  assert.equal(lines.data[0].amount, 300);
  assert.equal(lines.has_more, true);
  const allLines = await stripe.invoices.listLineItems(made.id).autoPagingToArray({ limit: 10 });
  assert.deepEqual(allLines.map((l) => l.amount), [300, 50]);

  const before = await balance(stripe, cus);
  const voided = await stripe.invoices.voidInvoice(made.id);
  assert.equal(voided.status, 'void');
  assert.equal(voided.status_transitions.voided_at, T0 + DAY);
  const after = await balance(stripe, cus);
  assert.equal(after[0], before[0] + 350);
  const open = await stripe.invoices.list({ status: 'open' });
  assert.deepEqual(open.data.map((i) => i.id), [others.id, later.id]);
  const void_ = await stripe.invoices.list({ status: 'void' });
  assert.deepEqual(void_.data.map((i) => i.id), [made.id]);

  await assert.rejects(stripe.invoices.voidInvoice(made.id), (err) => {
    assert.equal(err.statusCode, 400);
    assert.match(err.message, /You can only void an invoice whose status is open or uncollectible/);
    return true;
  });
});
