// The official Node SDK (stripe-node), unmodified but for its host, through the usage-billing loop on
// a test clock: credit grant, meter, metered price, subscription, meter events, the period end's
// draft invoice, its finalization after the grace period with credits applied, the ledger, the
// preview; a declining card; a credit pack bought through a one-off invoice. Run with the
// emulator's URL in EMULATOR_URL (`bash sdk/run.sh` starts a fresh emulator and does this).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';

const BASE = process.env.EMULATOR_URL;
if (!BASE) {
  throw new Error('EMULATOR_URL is not set: start the emulator and pass its URL (bash sdk/run.sh does both)');
}
const base = new URL(BASE);

/** 2026-01-01T00:00:00Z. */
const T0 = 1767225600;
/** 2026-02-01T00:00:00Z: the end of a monthly subscription's first period from T0. */
const T1 = 1769904000;
/** 2026-03-01T00:00:00Z: the end of its second period. */
const T2 = 1772323200;
const DAY = 86400;
const HOUR = 3600;
/** The emulator's default grace period before a cycle invoice finalizes. */
const GRACE = 3600;

/** An SDK client for a fresh world of its own. */
function client(name) {
  const key = `sk_test_node_${name}_${randomUUID().slice(0, 8)}`;
  return new Stripe(key, { host: base.hostname, port: Number(base.port), protocol: 'http' });
}

/** Advances a test clock and waits until it is ready, as code written against Stripe does. */
async function advance(stripe, clock, to) {
  let c = await stripe.testHelpers.testClocks.advance(clock, { frozen_time: to });
  for (let i = 0; i < 100 && c.status !== 'ready'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    c = await stripe.testHelpers.testClocks.retrieve(clock);
  }
  assert.equal(c.status, 'ready');
  assert.equal(c.frozen_time, to);
  return c;
}

/** The customer's available metered usd credit, in cents. */
async function available(stripe, customer) {
  const summary = await stripe.billing.creditBalanceSummaries.retrieve({
    customer,
    filter: { type: 'applicability_scope', applicability_scope: { price_type: 'metered' } },
  });
  const usd = summary.balances.find((b) => b.available_balance.monetary.currency === 'usd');
  return usd ? usd.available_balance.monetary.value : 0;
}

/** Reports `calls` API calls for the customer at `timestamp` (the customer's now when omitted). */
function usage(stripe, customer, calls, timestamp) {
  return stripe.billing.meterEvents.create({
    event_name: 'api_calls',
    payload: { stripe_customer_id: customer, value: String(calls) },
    ...(timestamp === undefined ? {} : { timestamp }),
  });
}

/**
 * A world on a test clock at T0: a customer (with `customerParams`), `credit` cents of metered
 * credit, a meter, a product with a metered price of 5 cents a call, and a subscription to it.
 */
async function usageWorld(name, credit, customerParams = {}) {
  const stripe = client(name);
  const clock = await stripe.testHelpers.testClocks.create({ frozen_time: T0, name: 'Usage loop' });
  const customer = await stripe.customers.create({ name: 'Ada', test_clock: clock.id, ...customerParams });
  const grant =
    credit > 0
      ? await stripe.billing.creditGrants.create({
          customer: customer.id,
          category: 'promotional',
          amount: { type: 'monetary', monetary: { currency: 'usd', value: credit } },
          applicability_config: { scope: { price_type: 'metered' } },
        })
      : null;
  const meter = await stripe.billing.meters.create({
    display_name: 'API calls',
    event_name: 'api_calls',
    default_aggregation: { formula: 'sum' },
  });
  const product = await stripe.products.create({ name: 'API' });
  const price = await stripe.prices.create({
    product: product.id,
    currency: 'usd',
    unit_amount: 5,
    recurring: { interval: 'month', usage_type: 'metered', meter: meter.id },
  });
  const subscription = await stripe.subscriptions.create({
    customer: customer.id,
    items: [{ price: price.id }],
    expand: ['latest_invoice'],
  });
  return { stripe, clock: clock.id, customer: customer.id, grant, meter, product, price, subscription };
}

test('usage billing: a period of metered usage is invoiced, finalized after the grace period and paid with credits', async () => {
  const w = await usageWorld('loop', 1000);
  const { stripe } = w;

  // The first invoice bills nothing (usage is billed in arrears) and is paid at once.
  const first = w.subscription.latest_invoice;
  assert.equal(first.billing_reason, 'subscription_create');
  assert.equal(first.status, 'paid');
  assert.equal(first.total, 0);
  assert.deepEqual(first.lines.data, []);
  const item = w.subscription.items.data[0];
  assert.equal(item.current_period_start, T0);
  assert.equal(item.current_period_end, T1);

  await advance(stripe, w.clock, T0 + DAY);
  const event = await usage(stripe, w.customer, 100, T0 + DAY - 60);
  assert.equal(event.object, 'billing.meter_event');
  assert.equal(event.timestamp, T0 + DAY - 60);
  await advance(stripe, w.clock, T0 + 20 * DAY);
  await usage(stripe, w.customer, 200, T0 + 20 * DAY);

  // Past the period end: a draft at the boundary that finalizes by itself after the grace period.
  await advance(stripe, w.clock, T1 + 60);
  const listed = await stripe.invoices.list({ subscription: w.subscription.id });
  assert.deepEqual(
    listed.data.map((i) => i.billing_reason),
    ['subscription_cycle', 'subscription_create'],
  );
  const draft = listed.data[0];
  assert.equal(draft.status, 'draft');
  assert.equal(draft.created, T1);
  assert.equal(draft.period_start, T0);
  assert.equal(draft.period_end, T1);
  assert.equal(draft.automatically_finalizes_at, T1 + GRACE);
  assert.equal(draft.subtotal, 1500);
  assert.deepEqual(draft.total_pretax_credit_amounts, []);
  assert.equal(await available(stripe, w.customer), 1000);

  await advance(stripe, w.clock, T1 + GRACE + HOUR);
  const paid = await stripe.invoices.retrieve(draft.id);
  assert.equal(paid.status, 'paid');
  assert.equal(paid.subtotal, 1500);
  assert.equal(paid.total, 500);
  assert.equal(paid.amount_paid, 500);
  assert.equal(paid.amount_remaining, 0);
  assert.equal(paid.status_transitions.finalized_at, T1 + GRACE);
  assert.match(paid.number, /-0002$/);
  assert.deepEqual(paid.total_pretax_credit_amounts.map((c) => [c.type, c.amount]), [['credit_balance_transaction', 1000]]);
  const line = paid.lines.data[0];
  assert.equal(line.quantity, 300);
  assert.equal(line.amount, 1500);
  assert.equal(line.description, '300 × API (at $0.05 / month)');
  assert.deepEqual(line.period, { end: T1, start: T0 });
  assert.deepEqual(line.pricing.price_details, { price: w.price.id, product: w.product.id });
  assert.equal(line.parent.type, 'subscription_item_details');
  assert.equal(line.parent.subscription_item_details.subscription, w.subscription.id);
  assert.equal(line.parent.subscription_item_details.subscription_item, item.id);
  const lines = await stripe.invoices.listLineItems(paid.id);
  assert.deepEqual(lines.data.map((l) => l.id), [line.id]);
  assert.equal((await stripe.subscriptions.retrieve(w.subscription.id)).latest_invoice, paid.id);

  // The ledger: the grant was spent by a debit naming the invoice and its line.
  assert.equal(await available(stripe, w.customer), 0);
  const txns = await stripe.billing.creditBalanceTransactions.list({ customer: w.customer });
  assert.deepEqual(
    txns.data.map((t) => [t.type, (t.credit ?? t.debit).type, (t.credit ?? t.debit).amount.monetary.value]),
    [
      ['debit', 'credits_applied', 1000],
      ['credit', 'credits_granted', 1000],
    ],
  );
  const applied = txns.data[0];
  assert.equal(applied.debit.credits_applied.invoice, paid.id);
  assert.equal(applied.debit.credits_applied.invoice_line_item, line.id);
  assert.equal(applied.credit_grant, w.grant.id);
  assert.equal(applied.effective_at, T1 + GRACE);
  assert.equal(paid.total_pretax_credit_amounts[0].credit_balance_transaction, applied.id);
  const expanded = await stripe.billing.creditBalanceTransactions.retrieve(applied.id, {
    expand: ['debit.credits_applied.invoice'],
  });
  assert.equal(expanded.debit.credits_applied.invoice.id, paid.id);
  assert.equal(expanded.debit.credits_applied.invoice.status, 'paid');
});

test('usage billing: the preview shows usage so far and projected credits, changing nothing', async () => {
  const w = await usageWorld('preview', 150);
  const { stripe } = w;
  await advance(stripe, w.clock, T0 + DAY);
  await usage(stripe, w.customer, 40);

  const preview = await stripe.invoices.createPreview({ customer: w.customer });
  assert.match(preview.id, /^upcoming_in_/);
  assert.equal(preview.status, 'draft');
  assert.equal(preview.billing_reason, 'upcoming');
  assert.equal(preview.period_start, T0);
  assert.equal(preview.period_end, T1);
  assert.equal(preview.subtotal, 200);
  assert.equal(preview.total, 50);
  assert.equal(preview.parent.subscription_details.subscription, w.subscription.id);
  assert.match(preview.lines.data[0].id, /^il_tmp_/);
  assert.equal(preview.lines.data[0].quantity, 40);
  assert.deepEqual(
    preview.total_pretax_credit_amounts.map((c) => [c.amount, c.credit_balance_transaction]),
    [[150, null]],
  );
  // The same by subscription; nothing was spent or stored.
  const bySub = await stripe.invoices.createPreview({ subscription: w.subscription.id });
  assert.equal(bySub.id, preview.id);
  assert.equal(await available(stripe, w.customer), 150);
  const invoices = await stripe.invoices.list({ customer: w.customer });
  assert.deepEqual(invoices.data.map((i) => i.billing_reason), ['subscription_create']);

  // A subscription not yet made: its first invoice bills the seat for the first period in advance.
  const seat = await stripe.prices.create({
    product: w.product.id,
    currency: 'usd',
    unit_amount: 1200,
    recurring: { interval: 'month' },
  });
  const newcomer = await stripe.customers.create({ name: 'Grace', test_clock: w.clock });
  const first = await stripe.invoices.createPreview({
    customer: newcomer.id,
    subscription_details: { items: [{ price: seat.id, quantity: 2 }, { price: w.price.id }] },
  });
  assert.equal(first.billing_reason, 'upcoming');
  assert.deepEqual(
    first.lines.data.map((l) => [l.pricing.price_details.price, l.amount, l.period.start, l.period.end]),
    [[seat.id, 2400, T0 + DAY, T1 + DAY]],
  );
  assert.deepEqual((await stripe.subscriptions.list({ customer: newcomer.id })).data, []);

  const stranger = await stripe.customers.create({ name: 'Nobody' });
  await assert.rejects(stripe.invoices.createPreview({ customer: stranger.id }), (err) => {
    assert.ok(err instanceof Stripe.errors.StripeInvalidRequestError);
    assert.equal(err.statusCode, 404);
    assert.equal(err.code, 'invoice_upcoming_none');
    assert.equal(err.message, `No upcoming invoices for customer: ${stranger.id}`);
    return true;
  });
});

test('usage billing: a declining card leaves the cycle invoice open and the subscription past_due', async () => {
  const w = await usageWorld('declined', 0, {
    invoice_settings: { default_payment_method: 'pm_card_chargeCustomerFail' },
  });
  const { stripe } = w;
  await advance(stripe, w.clock, T0 + DAY);
  await usage(stripe, w.customer, 10);
  await advance(stripe, w.clock, T1 + GRACE + HOUR);

  const [cycle] = (await stripe.invoices.list({ subscription: w.subscription.id, status: 'open' })).data;
  assert.equal(cycle.billing_reason, 'subscription_cycle');
  assert.equal(cycle.attempt_count, 1);
  assert.equal(cycle.attempted, true);
  assert.equal(cycle.amount_due, 50);
  assert.equal((await stripe.subscriptions.retrieve(w.subscription.id)).status, 'past_due');

  // Another attempt declines as Stripe's test card does.
  await assert.rejects(stripe.invoices.pay(cycle.id), (err) => {
    assert.ok(err instanceof Stripe.errors.StripeCardError);
    assert.equal(err.statusCode, 402);
    assert.equal(err.code, 'card_declined');
    assert.equal(err.message, 'Your card was declined.');
    return true;
  });
  assert.equal((await stripe.invoices.retrieve(cycle.id)).attempt_count, 2);

  // Paid out of band, the subscription is active again.
  const paid = await stripe.invoices.pay(cycle.id, { paid_out_of_band: true });
  assert.equal(paid.status, 'paid');
  assert.equal((await stripe.subscriptions.retrieve(w.subscription.id)).status, 'active');
});

test('one-off invoice: a credit pack sent to the customer and paid out of band', async () => {
  const stripe = client('pack');
  const product = await stripe.products.create({ name: '1,000 credits' });
  const price = await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 2500 });
  assert.equal(price.type, 'one_time');
  const buyer = await stripe.customers.create({ name: 'Bo', invoice_prefix: 'BOPACK' });

  const item = await stripe.invoiceItems.create({
    customer: buyer.id,
    pricing: { price: price.id },
    quantity: 2,
    metadata: { pack: '1000' },
  });
  assert.equal(item.object, 'invoiceitem');
  assert.equal(item.amount, 5000);
  assert.equal(item.invoice, null);
  const pending = await stripe.invoiceItems.list({ customer: buyer.id, pending: true });
  assert.deepEqual(pending.data.map((i) => i.id), [item.id]);

  const draft = await stripe.invoices.create({
    customer: buyer.id,
    collection_method: 'send_invoice',
    days_until_due: 14,
    pending_invoice_items_behavior: 'include',
  });
  assert.equal(draft.status, 'draft');
  assert.equal(draft.billing_reason, 'manual');
  assert.equal(draft.auto_advance, false);
  assert.equal(draft.total, 5000);
  assert.equal((await stripe.invoiceItems.retrieve(item.id)).invoice, draft.id);

  const sent = await stripe.invoices.finalizeInvoice(draft.id);
  assert.equal(sent.status, 'open');
  assert.equal(sent.number, 'BOPACK-0001');
  assert.equal(sent.due_date, sent.status_transitions.finalized_at + 14 * DAY);
  const line = sent.lines.data[0];
  assert.equal(line.pricing.price_details.product, product.id);
  assert.equal(line.parent.invoice_item_details.invoice_item, item.id);
  assert.deepEqual(sent.total_pretax_credit_amounts, []);

  const paid = await stripe.invoices.pay(draft.id, { paid_out_of_band: true });
  assert.equal(paid.status, 'paid');
  assert.equal(paid.amount_paid, 5000);
  assert.equal(paid.amount_remaining, 0);

  // The application grants what was bought.
  await stripe.billing.creditGrants.create({
    customer: buyer.id,
    category: 'paid',
    amount: { type: 'monetary', monetary: { currency: 'usd', value: 100000 } },
    applicability_config: { scope: { price_type: 'metered' } },
    metadata: { invoice: paid.id },
  });
  assert.equal(await available(stripe, buyer.id), 100000);

  await assert.rejects(stripe.invoices.pay(draft.id), (err) => {
    assert.equal(err.statusCode, 400);
    assert.equal(err.message, 'Invoice is already paid');
    return true;
  });
});
