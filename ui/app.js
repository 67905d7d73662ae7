// The inspector: reads one world of the emulator through the JSON APIs it already serves, with the
// world's test key, and draws it.
//
// Safety rules this file keeps:
// - every value that comes from the API reaches the page as text (text nodes, `textContent`);
//   no string is ever parsed as markup, and no attribute is built from API data except `title`
//   tooltips, `data-` attributes and SVG coordinates, which are text and numbers;
// - one key's data never shows under another key: opening a key starts a new session that aborts
//   the previous one's requests, drops everything it loaded and empties every panel, and an answer
//   that arrives for an older session is thrown away;
// - the key lives in memory and in the URL's fragment only (never sent to the server except in the
//   `Authorization` header of the API calls).

const LOCALE = 'en-US';
const PAGE = 100;
const MAX_LEDGER = 1000;
const MAX_GRANTS = 500;

/** The open session: `{key, account, controller, ...loaded data}`; null before a key is entered. */
let session = null;

// ---------------------------------------------------------------------------------------------
// DOM helpers

/** `el('td', {class: 'num'}, 'text', node, …)`: strings and numbers become text nodes. */
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  setProps(node, props);
  append(node, children);
  return node;
}

function setProps(node, props) {
  if (!props) return;
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'on') {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (name === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (name === 'hidden') {
      node.hidden = true;
    } else {
      node.setAttribute(name, String(value));
    }
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element; attributes are numbers or fixed words, never API data. */
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  append(node, children);
  return node;
}

function $(id) {
  return document.getElementById(id);
}

function clear(node) {
  node.replaceChildren();
}

// ---------------------------------------------------------------------------------------------
// Formatting

const NONE = '—';

/** Unix seconds as `2026-01-01 01:00:00` (UTC, as every time on the page). */
function time(secs) {
  if (secs === null || secs === undefined || !Number.isFinite(secs)) return NONE;
  const d = new Date(secs * 1000);
  if (Number.isNaN(d.getTime())) return NONE;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
}

function shortTime(secs) {
  const d = new Date(secs * 1000);
  if (Number.isNaN(d.getTime())) return '';
  const iso = d.toISOString();
  return iso.slice(11, 16) === '00:00' ? iso.slice(0, 10) : iso.slice(0, 16).replace('T', ' ');
}

const fractionDigits = new Map();

/** How many minor units a currency has (2 for usd, 0 for jpy), as `Intl` knows it. */
function digits(currency) {
  const code = String(currency || '').toUpperCase();
  if (!fractionDigits.has(code)) {
    let n = 2;
    try {
      n = new Intl.NumberFormat(LOCALE, { style: 'currency', currency: code }).resolvedOptions()
        .maximumFractionDigits;
    } catch {
      n = 2;
    }
    fractionDigits.set(code, n);
  }
  return fractionDigits.get(code);
}

/** Minor units of `currency` as money: `money(650, 'usd')` is `$6.50`. */
function money(minor, currency, signed) {
  if (minor === null || minor === undefined || !Number.isFinite(Number(minor))) return NONE;
  const code = String(currency || '').toUpperCase();
  const n = digits(code);
  const major = Number(minor) / 10 ** n;
  let text;
  try {
    text = new Intl.NumberFormat(LOCALE, {
      style: 'currency',
      currency: code,
      minimumFractionDigits: n,
      maximumFractionDigits: n,
    }).format(Math.abs(major));
  } catch {
    text = `${Math.abs(major).toFixed(n)} ${code}`;
  }
  if (major < 0) return `−${text}`;
  return signed && major > 0 ? `+${text}` : text;
}

/** A credit amount object (`{type: 'monetary', monetary: {currency, value}}`) as money. */
function amount(a, signed) {
  if (a && a.type === 'monetary' && a.monetary) return money(a.monetary.value, a.monetary.currency, signed);
  return NONE;
}

function amountCurrency(a) {
  return a && a.type === 'monetary' && a.monetary ? String(a.monetary.currency) : null;
}

function amountValue(a) {
  return a && a.type === 'monetary' && a.monetary ? Number(a.monetary.value) || 0 : 0;
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many || `${one}s`}`;
}

function mono(text) {
  return el('span', { class: 'mono' }, text ?? NONE);
}

function badge(text, kind) {
  return el('span', { class: `badge ${kind || ''}` }, text);
}

function duration(us) {
  if (!Number.isFinite(us)) return NONE;
  if (us < 1000) return `${us} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Thrown (and ignored) when the session that asked is no longer the open one. */
class Stale extends Error {}

function live(s) {
  if (session !== s) throw new Stale();
}

/** `GET path` with the session's key; the JSON answer, or an `ApiError` with the envelope's message. */
async function api(s, path, query) {
  live(s);
  const url = new URL(path, window.location.origin);
  for (const [name, value] of query || []) url.searchParams.append(name, value);
  const headers = {
    Authorization: `Bearer ${s.key}`,
    Accept: 'application/json',
    // The emulator leaves the inspector's own reads out of the world's request log.
    'X-Emulator-Inspector': '1',
  };
  if (s.account) headers['Stripe-Account'] = s.account;
  let response;
  try {
    response = await fetch(url, {
      headers,
      signal: s.controller.signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    live(s);
    throw new ApiError(0, `${path}: ${e.message || 'the request failed'}`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  live(s);
  if (!response.ok) {
    const message =
      (body && body.error && typeof body.error === 'object' && body.error.message) ||
      (body && typeof body.message === 'string' && body.message) ||
      response.statusText;
    throw new ApiError(response.status, `${path}: ${response.status} ${message}`);
  }
  return body;
}

/** Every object of a Stripe list, following `starting_after`, up to `max`. */
async function listAll(s, path, query, max) {
  const out = [];
  let after = null;
  for (;;) {
    const q = [...(query || []), ['limit', String(PAGE)]];
    if (after) q.push(['starting_after', after]);
    const page = await api(s, path, q);
    const data = Array.isArray(page.data) ? page.data : [];
    out.push(...data);
    if (!page.has_more || data.length === 0) return { data: out, more: false };
    if (out.length >= max) return { data: out, more: true };
    after = data[data.length - 1].id;
  }
}

/** Runs `tasks` (functions returning promises) with at most `n` at a time. */
async function limited(tasks, n) {
  const results = new Array(tasks.length);
  let next = 0;
  async function worker() {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
  return results;
}

// ---------------------------------------------------------------------------------------------
// Errors and status

function showError(e) {
  if (e instanceof Stale || (e && e.name === 'AbortError')) return;
  const banner = $('banner');
  banner.hidden = false;
  banner.replaceChildren(el('strong', null, 'Error: '), String(e && e.message ? e.message : e));
}

function hideError() {
  const banner = $('banner');
  banner.hidden = true;
  clear(banner);
}

/** A section of a panel: a heading with a count, then its body. */
function section(title, count, ...body) {
  return el(
    'section',
    { class: 'card' },
    el('h3', null, title, count === null || count === undefined ? null : el('span', { class: 'count' }, String(count))),
    ...body,
  );
}

/**
 * A table: `columns` are `{label, cell: row => text or node, class}`; `rows` the objects; `empty`
 * what to say when there are none.
 */
function table(columns, rows, empty, rowProps) {
  if (!rows.length) return el('p', { class: 'empty' }, empty);
  return el(
    'div',
    { class: 'table-wrap' },
    el(
      'table',
      null,
      el('thead', null, el('tr', null, columns.map((c) => el('th', { class: c.class }, c.label)))),
      el(
        'tbody',
        null,
        rows.map((row) =>
          el('tr', rowProps ? rowProps(row) : null, columns.map((c) => el('td', { class: c.class }, c.cell(row)))),
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Navigation: the fragment holds `key`, `account`, `customer` and `tab`.

function readHash() {
  const params = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  return {
    key: (params.get('key') || '').trim(),
    account: (params.get('account') || '').trim(),
    customer: params.get('customer') || '',
    tab: params.get('tab') || '',
  };
}

function writeHash(changes) {
  const current = readHash();
  const next = { ...current, ...changes };
  const params = new URLSearchParams();
  for (const name of ['key', 'account', 'customer', 'tab']) if (next[name]) params.set(name, next[name]);
  const hash = `#${params.toString()}`;
  if (hash !== window.location.hash) window.location.hash = hash;
  else route();
}

const KEY_SHAPE = /^(sk|rk)_test_[\x21-\x7e]{1,255}$/;
const ACCOUNT_SHAPE = /^acct_[A-Za-z0-9_]{1,255}$/;

function route() {
  const wanted = readHash();
  if (!wanted.key) {
    closeSession();
    return;
  }
  if (!KEY_SHAPE.test(wanted.key)) {
    closeSession();
    showError(new Error('A test key starts with sk_test_ or rk_test_ (the emulator never accepts live keys).'));
    return;
  }
  if (wanted.account && !ACCOUNT_SHAPE.test(wanted.account)) {
    closeSession();
    showError(new Error('A connected account id looks like acct_… (letters, digits and underscores).'));
    return;
  }
  if (!session || session.key !== wanted.key || session.account !== wanted.account) {
    openSession(wanted.key, wanted.account);
  }
  selectTab(wanted.tab || 'customer');
  selectCustomer(session, wanted.customer);
}

function closeSession() {
  if (session) session.controller.abort();
  session = null;
  emptyPanels();
  $('app').hidden = true;
  $('welcome').hidden = false;
  $('refresh').disabled = true;
  $('key').value = '';
  $('account').value = '';
}

/** Empties everything a session drew. */
function emptyPanels() {
  hideError();
  for (const id of ['customers', 'clock', 'customer-count']) clear($(id));
  for (const panel of document.querySelectorAll('.panel')) clear(panel);
  $('customers-more').hidden = true;
}

function openSession(key, account) {
  if (session) session.controller.abort();
  session = {
    key,
    account,
    controller: new AbortController(),
    customers: [],
    customersMore: false,
    customer: null,
    clock: null,
    testClocks: [],
  };
  emptyPanels();
  $('key').value = key;
  $('account').value = account;
  $('app').hidden = false;
  $('welcome').hidden = true;
  $('refresh').disabled = false;
  loadTenant(session).catch(showError);
}

function selectTab(tab) {
  for (const button of document.querySelectorAll('#tabs button')) {
    button.classList.toggle('active', button.dataset.tab === tab);
  }
  for (const panel of document.querySelectorAll('.panel')) panel.hidden = panel.id !== `panel-${tab}`;
}

// ---------------------------------------------------------------------------------------------
// The world: clock, customers, test clocks, events, deliveries, requests

async function loadTenant(s) {
  const [clock, customers, testClocks] = await Promise.all([
    api(s, '/_emulator/clock'),
    api(s, '/v1/customers', [['limit', String(PAGE)]]),
    listAll(s, '/v1/test_helpers/test_clocks', [], 500),
  ]);
  s.clock = clock;
  s.testClocks = testClocks.data;
  s.customers = customers.data || [];
  s.customersMore = Boolean(customers.has_more);
  renderClock(s);
  renderCustomers(s);
  renderClocks(s);
  s.ready = true;
  selectCustomer(s, readHash().customer);
  await Promise.all([
    loadEvents(s).catch(showError),
    loadWebhooks(s).catch(showError),
    loadRequests(s).catch(showError),
  ]);
}

function renderClock(s) {
  if (session !== s) return;
  const c = s.clock || {};
  $('clock').replaceChildren(
    el('span', { class: 'muted' }, 'Tenant clock '),
    badge(c.mode === 'frozen' ? 'frozen' : 'real time', c.mode === 'frozen' ? 'info' : 'ok'),
    ' ',
    el('span', { class: 'mono' }, `${time(c.now)} UTC`),
  );
}

/** The instant a customer lives at: its test clock's, or the tenant clock's. */
function customerNow(s, customer) {
  const clockId = customer && typeof customer.test_clock === 'string' ? customer.test_clock : null;
  const clock = clockId && s.testClocks.find((c) => c.id === clockId);
  if (clock) return clock.frozen_time;
  return s.clock ? s.clock.now : Math.floor(Date.now() / 1000);
}

function renderCustomers(s) {
  if (session !== s) return;
  const list = $('customers');
  clear(list);
  const filter = $('customer-filter').value.trim().toLowerCase();
  const shown = s.customers.filter(
    (c) =>
      !filter ||
      [c.id, c.name, c.email].some((v) => typeof v === 'string' && v.toLowerCase().includes(filter)),
  );
  $('customer-count').textContent = String(s.customers.length) + (s.customersMore ? '+' : '');
  for (const c of shown) {
    const item = el(
      'li',
      {
        class: s.customer && s.customer.id === c.id ? 'selected' : null,
        tabindex: 0,
        on: {
          click: () => writeHash({ customer: c.id, tab: 'customer' }),
          keydown: (e) => {
            if (e.key === 'Enter') writeHash({ customer: c.id, tab: 'customer' });
          },
        },
      },
      el('div', { class: 'customer-name' }, c.name || c.email || '(no name)'),
      el('div', { class: 'customer-sub mono' }, c.id),
      c.name && c.email ? el('div', { class: 'customer-sub' }, c.email) : null,
    );
    item.dataset.id = String(c.id);
    list.append(item);
  }
  if (!s.customers.length) list.append(el('li', { class: 'empty' }, 'No customers in this world yet.'));
  $('customers-more').hidden = !s.customersMore;
}

async function moreCustomers(s) {
  const last = s.customers[s.customers.length - 1];
  if (!last) return;
  const page = await api(s, '/v1/customers', [
    ['limit', String(PAGE)],
    ['starting_after', last.id],
  ]);
  s.customers.push(...(page.data || []));
  s.customersMore = Boolean(page.has_more);
  renderCustomers(s);
}

function selectCustomer(s, id) {
  if (!s || !s.ready) return;
  let customer = id ? s.customers.find((c) => c.id === id) : s.customers[0];
  if (id && !customer) {
    // Not on the first pages: read it on its own.
    loadCustomerById(s, id).catch(showError);
    return;
  }
  if (!customer) {
    $('panel-customer').replaceChildren(el('p', { class: 'empty' }, 'No customers in this world yet.'));
    return;
  }
  // Already shown (or on its way): a tab change does not read it again; Refresh does.
  if (s.customer && s.customer.id === customer.id) return;
  showCustomer(s, customer);
}

async function loadCustomerById(s, id) {
  const customer = await api(s, `/v1/customers/${encodeURIComponent(id)}`);
  showCustomer(s, customer);
}

function showCustomer(s, customer) {
  if (session !== s) return;
  s.customer = customer;
  for (const item of $('customers').children) {
    item.classList.toggle('selected', item.dataset.id === customer.id);
  }
  $('panel-customer').replaceChildren(el('p', { class: 'loading' }, 'Loading…'));
  loadCustomer(s, customer).catch(showError);
  renderEvents(s);
}

// ---------------------------------------------------------------------------------------------
// One customer

async function loadCustomer(s, customer) {
  const id = customer.id;
  const [grants, ledger, invoices, subscriptions] = await Promise.all([
    listAll(s, '/v1/billing/credit_grants', [['customer', id]], MAX_GRANTS),
    listAll(s, '/v1/billing/credit_balance_transactions', [['customer', id]], MAX_LEDGER),
    listAll(s, '/v1/invoices', [['customer', id]], 200),
    listAll(s, '/v1/subscriptions', [['customer', id], ['status', 'all']], 200),
  ]);
  // The balance of each grant, as the balance summary computes it.
  const summaries = await limited(
    grants.data.map((g) => () =>
      api(s, '/v1/billing/credit_balance_summary', [
        ['customer', id],
        ['filter[type]', 'credit_grant'],
        ['filter[credit_grant]', g.id],
      ]),
    ),
    4,
  );
  if (session !== s || s.customer !== customer) return;
  const available = new Map();
  grants.data.forEach((g, i) => {
    const balances = (summaries[i] && summaries[i].balances) || [];
    available.set(g.id, balances);
  });
  renderCustomer(s, customer, { grants, ledger, invoices, subscriptions, available });
}

function grantStatus(g, now) {
  if (g.voided_at) return ['voided', 'muted'];
  if (g.expires_at && g.expires_at <= now) return ['expired', 'muted'];
  if (g.effective_at && g.effective_at > now) return ['scheduled', 'info'];
  return ['active', 'ok'];
}

function scopeText(g) {
  const scope = g.applicability_config && g.applicability_config.scope;
  if (!scope) return NONE;
  if (scope.price_type) return `${scope.price_type} prices`;
  if (Array.isArray(scope.prices)) return scope.prices.map((p) => p.id).join(', ');
  return NONE;
}

/** Sums `{available_balance, ledger_balance}` entries by currency. */
function totals(balanceLists) {
  const by = new Map();
  for (const balances of balanceLists) {
    for (const b of balances) {
      const currency = amountCurrency(b.available_balance) || amountCurrency(b.ledger_balance);
      if (!currency) continue;
      const t = by.get(currency) || { available: 0, ledger: 0 };
      t.available += amountValue(b.available_balance);
      t.ledger += amountValue(b.ledger_balance);
      by.set(currency, t);
    }
  }
  return by;
}

function renderCustomer(s, customer, data) {
  const now = customerNow(s, customer);
  const panel = $('panel-customer');
  const grantById = new Map(data.grants.data.map((g) => [g.id, g]));
  const sums = totals([...data.available.values()]);

  const head = el(
    'div',
    { class: 'customer-head' },
    el('h2', { class: 'customer-title' }, customer.name || customer.email || '(no name)'),
    el(
      'dl',
      { class: 'facts' },
      fact('Id', mono(customer.id)),
      fact('Email', customer.email || NONE),
      fact('Created', time(customer.created)),
      fact('Test clock', customer.test_clock ? mono(customer.test_clock) : NONE),
      fact('Lives at', `${time(now)} UTC`),
    ),
  );

  const cards = el(
    'div',
    { class: 'balances' },
    sums.size
      ? [...sums].map(([currency, t]) =>
          el(
            'div',
            { class: 'balance-card' },
            el('div', { class: 'balance-label' }, `Available ${currency.toUpperCase()}`),
            el('div', { class: 'balance-value', id: `available-${currency}` }, money(t.available, currency)),
            el('div', { class: 'balance-sub' }, `ledger ${money(t.ledger, currency)}`),
          ),
        )
      : el('div', { class: 'balance-card' }, el('div', { class: 'balance-label' }, 'Available'), el('div', { class: 'balance-value' }, NONE), el('div', { class: 'balance-sub' }, 'no grants')),
    el(
      'div',
      { class: 'balance-card' },
      el('div', { class: 'balance-label' }, 'Grants'),
      el('div', { class: 'balance-value' }, String(data.grants.data.length)),
      el('div', { class: 'balance-sub' }, plural(data.ledger.data.length, 'ledger entry', 'ledger entries')),
    ),
    el(
      'div',
      { class: 'balance-card' },
      el('div', { class: 'balance-label' }, 'Invoices'),
      el('div', { class: 'balance-value' }, String(data.invoices.data.length)),
      el('div', { class: 'balance-sub' }, plural(data.subscriptions.data.length, 'subscription')),
    ),
  );

  const grants = section(
    'Credit grants',
    data.grants.data.length,
    table(
      [
        { label: 'Grant', cell: (g) => [el('div', null, g.name || NONE), el('div', { class: 'mono sub' }, g.id)] },
        { label: 'Status', cell: (g) => badge(...grantStatus(g, now)) },
        { label: 'Category', cell: (g) => g.category || NONE },
        { label: 'Amount', class: 'num', cell: (g) => amount(g.amount) },
        {
          label: 'Available',
          class: 'num available',
          cell: (g) => {
            const b = data.available.get(g.id) || [];
            return b.length ? b.map((x) => amount(x.available_balance)).join(', ') : amount({ type: 'monetary', monetary: { currency: amountCurrency(g.amount), value: 0 } });
          },
        },
        { label: 'Applies to', cell: (g) => scopeText(g) },
        { label: 'Priority', class: 'num', cell: (g) => (g.priority ?? NONE) },
        { label: 'Effective', class: 'time', cell: (g) => time(g.effective_at) },
        { label: 'Expires', class: 'time', cell: (g) => (g.expires_at ? time(g.expires_at) : 'never') },
      ],
      data.grants.data,
      'No credit grants.',
      (g) => ({ dataset: { grant: g.id } }),
    ),
    data.grants.more ? el('p', { class: 'note' }, `Showing the newest ${data.grants.data.length} grants.`) : null,
  );

  // The ledger oldest first, with each entry's running balance per currency.
  const ascending = [...data.ledger.data].reverse();
  ascending.sort((a, b) => (a.effective_at ?? 0) - (b.effective_at ?? 0));
  const running = new Map();
  const balanceAfter = new Map();
  const points = new Map();
  for (const t of ascending) {
    const side = t.type === 'credit' ? t.credit : t.debit;
    const currency = side && amountCurrency(side.amount);
    if (!currency) continue;
    const delta = (t.type === 'credit' ? 1 : -1) * amountValue(side.amount);
    const value = (running.get(currency) || 0) + delta;
    running.set(currency, value);
    balanceAfter.set(t.id, money(value, currency));
    if (!points.has(currency)) points.set(currency, []);
    points.get(currency).push({ at: t.effective_at, value, delta, kind: side.type, id: t.id });
  }

  const charts = section(
    'Balance over time',
    null,
    points.size
      ? [...points].map(([currency, pts]) => chart(currency, pts, now))
      : el('p', { class: 'empty' }, 'No ledger entries yet.'),
    data.ledger.more ? el('p', { class: 'note' }, `Drawn from the newest ${data.ledger.data.length} entries only.`) : null,
  );

  const ledger = section(
    'Ledger',
    data.ledger.data.length,
    table(
      [
        { label: 'Effective', class: 'time', cell: (t) => time(t.effective_at) },
        {
          label: 'Kind',
          cell: (t) => [
            el('div', null, ((t.type === 'credit' ? t.credit : t.debit) || {}).type || NONE),
            el('div', { class: 'mono sub' }, t.id),
          ],
        },
        {
          label: 'Amount',
          class: 'num',
          cell: (t) => {
            const side = t.type === 'credit' ? t.credit : t.debit;
            const v = amountValue(side && side.amount);
            const text = money((t.type === 'credit' ? 1 : -1) * v, amountCurrency(side && side.amount), true);
            return el('span', { class: t.type === 'credit' ? 'credit' : 'debit' }, text);
          },
        },
        { label: 'Balance after', class: 'num', cell: (t) => balanceAfter.get(t.id) || NONE },
        {
          label: 'Grant',
          cell: (t) => {
            const id = typeof t.credit_grant === 'string' ? t.credit_grant : t.credit_grant && t.credit_grant.id;
            const g = grantById.get(id);
            return [el('div', null, (g && g.name) || NONE), el('div', { class: 'mono sub' }, id || NONE)];
          },
        },
        { label: 'Invoice', cell: (t) => el('span', { class: 'mono sub' }, ledgerInvoice(t) || NONE) },
      ],
      data.ledger.data,
      'No ledger entries.',
    ),
  );

  const invoices = section(
    'Invoices',
    data.invoices.data.length,
    table(
      [
        { label: 'Invoice', cell: (i) => [el('div', null, i.number || NONE), el('div', { class: 'mono sub' }, i.id)] },
        { label: 'Status', cell: (i) => badge(i.status || NONE, invoiceTone(i.status)) },
        { label: 'Reason', cell: (i) => i.billing_reason || NONE },
        { label: 'Created', class: 'time', cell: (i) => time(i.created) },
        { label: 'Subtotal', class: 'num', cell: (i) => money(i.subtotal, i.currency) },
        {
          label: 'Credits applied',
          class: 'num',
          cell: (i) => {
            const credits = creditAmounts(i);
            if (!credits.length) return NONE;
            return credits.map((c) =>
              el(
                'div',
                { class: 'credit-line' },
                money(-Number(c.amount), i.currency),
                el('div', { class: 'mono sub' }, c.credit_balance_transaction || '(preview)'),
              ),
            );
          },
        },
        { label: 'Total', class: 'num', cell: (i) => money(i.total, i.currency) },
        { label: 'Amount due', class: 'num', cell: (i) => money(i.amount_due, i.currency) },
      ],
      data.invoices.data,
      'No invoices.',
    ),
  );

  const subscriptions = section(
    'Subscriptions',
    data.subscriptions.data.length,
    table(
      [
        { label: 'Subscription', cell: (x) => mono(x.id) },
        { label: 'Status', cell: (x) => badge(x.status || NONE, x.status === 'active' ? 'ok' : x.status === 'canceled' ? 'muted' : 'warn') },
        {
          label: 'Items',
          cell: (x) =>
            ((x.items && x.items.data) || []).map((item) =>
              el('div', null, mono(item.price && item.price.id), item.quantity ? ` × ${item.quantity}` : ' (metered)'),
            ),
        },
        {
          label: 'Current period',
          cell: (x) => {
            const item = ((x.items && x.items.data) || [])[0];
            return item ? `${time(item.current_period_start)} → ${time(item.current_period_end)}` : NONE;
          },
        },
        { label: 'Cancels', cell: (x) => (x.cancel_at ? time(x.cancel_at) : x.cancel_at_period_end ? 'at period end' : NONE) },
        { label: 'Created', class: 'time', cell: (x) => time(x.created) },
      ],
      data.subscriptions.data,
      'No subscriptions.',
    ),
  );

  panel.replaceChildren(head, cards, charts, grants, ledger, invoices, subscriptions);
}

function fact(label, value) {
  return el('div', null, el('dt', null, label), el('dd', null, value));
}

function ledgerInvoice(t) {
  const ref =
    (t.debit && t.debit.credits_applied && t.debit.credits_applied.invoice) ||
    (t.credit && t.credit.credits_application_invoice_voided && t.credit.credits_application_invoice_voided.invoice);
  return typeof ref === 'string' ? ref : ref && ref.id;
}

function creditAmounts(invoice) {
  return (invoice.total_pretax_credit_amounts || []).filter((c) => c && c.type === 'credit_balance_transaction');
}

function invoiceTone(status) {
  return { paid: 'ok', open: 'info', draft: 'muted', void: 'muted', uncollectible: 'warn' }[status] || '';
}

// ---------------------------------------------------------------------------------------------
// The chart: the balance of one currency as a step line over time

function niceStep(range, ticks) {
  const rough = range / Math.max(1, ticks);
  const power = 10 ** Math.floor(Math.log10(rough || 1));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= rough) return m * power;
  return 10 * power;
}

function chart(currency, points, now) {
  const W = 960;
  const H = 250;
  const M = { left: 72, right: 16, top: 14, bottom: 30 };
  const t0 = points[0].at;
  const last = points[points.length - 1].at;
  let t1 = Math.max(now || last, last);
  if (t1 <= t0) t1 = t0 + 3600;
  const max = Math.max(...points.map((p) => p.value), 0);
  const min = Math.min(...points.map((p) => p.value), 0);
  // A little room above the highest point, so that the line never runs along the frame.
  const step = niceStep((max - min) * 1.08 || 1, 4);
  const top = Math.ceil((max * 1.08) / step) * step || step;
  const bottom = Math.floor(min / step) * step;
  const x = (t) => M.left + ((t - t0) / (t1 - t0)) * (W - M.left - M.right);
  const y = (v) => M.top + (1 - (v - bottom) / (top - bottom)) * (H - M.top - M.bottom);
  const r = (n) => Math.round(n * 10) / 10;

  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'chart',
    role: 'img',
    'aria-label': `Balance over time (${currency.toUpperCase()})`,
  });
  // Grid and value axis.
  for (let v = bottom; v <= top + step / 2; v += step) {
    root.append(
      svg('line', { x1: M.left, x2: W - M.right, y1: r(y(v)), y2: r(y(v)), class: v === 0 ? 'axis' : 'grid' }),
      svg('text', { x: M.left - 8, y: r(y(v)) + 4, 'text-anchor': 'end', class: 'tick' }, money(v, currency)),
    );
  }
  // Time axis: five ticks.
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    root.append(
      svg('line', { x1: r(x(t)), x2: r(x(t)), y1: H - M.bottom, y2: H - M.bottom + 4, class: 'axis' }),
      svg(
        'text',
        { x: r(x(t)), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'tick' },
        shortTime(t),
      ),
    );
  }
  // The step line: flat until the next entry, then a jump.
  let d = `M${r(x(t0))},${r(y(0))}`;
  for (const p of points) d += `H${r(x(p.at))}V${r(y(p.value))}`;
  d += `H${r(x(t1))}`;
  const area = `${d}V${r(y(0))}H${r(x(t0))}Z`;
  root.append(svg('path', { d: area, class: 'area' }), svg('path', { d, class: 'line' }));
  // A point at each entry, with what happened as its tooltip.
  for (const p of points) {
    root.append(
      svg(
        'circle',
        { cx: r(x(p.at)), cy: r(y(p.value)), r: 3.5, class: p.delta >= 0 ? 'dot up' : 'dot down' },
        svg('title', null, `${time(p.at)} UTC · ${p.kind} ${money(p.delta, currency, true)} → ${money(p.value, currency)}`),
      ),
    );
  }
  if (now && now >= t0) {
    root.append(
      svg('line', { x1: r(x(t1)), x2: r(x(t1)), y1: M.top, y2: H - M.bottom, class: 'now' }),
      svg('text', { x: r(x(t1)) - 4, y: M.top + 10, 'text-anchor': 'end', class: 'tick now-label' }, 'now'),
    );
  }
  return el('figure', { class: 'chart-wrap' }, root, el('figcaption', null, `${currency.toUpperCase()} · balance after each ledger entry, UTC`));
}

// ---------------------------------------------------------------------------------------------
// Events, webhook deliveries, requests, clocks

async function loadEvents(s) {
  const page = await api(s, '/v1/events', [['limit', String(PAGE)]]);
  s.events = page.data || [];
  s.eventsMore = Boolean(page.has_more);
  renderEvents(s);
}

function eventTouches(event, customerId) {
  const object = event && event.data && event.data.object;
  if (!object || !customerId) return false;
  return object.id === customerId || object.customer === customerId;
}

function renderEvents(s) {
  if (session !== s || !s.events) return;
  const panel = $('panel-events');
  const only = Boolean(s.eventsOnlyCustomer && s.customer);
  const rows = only ? s.events.filter((e) => eventTouches(e, s.customer.id)) : s.events;
  const toggle = el(
    'label',
    { class: 'toggle' },
    el('input', {
      type: 'checkbox',
      checked: only ? 'checked' : null,
      on: {
        change: (e) => {
          s.eventsOnlyCustomer = e.target.checked;
          renderEvents(s);
        },
      },
    }),
    ' only the selected customer',
  );
  panel.replaceChildren(
    section(
      'Events',
      rows.length + (s.eventsMore ? '+' : ''),
      toggle,
      table(
        [
          { label: 'Created', class: 'time', cell: (e) => time(e.created) },
          { label: 'Type', cell: (e) => mono(e.type) },
          { label: 'Object', cell: (e) => mono((e.data && e.data.object && e.data.object.id) || NONE) },
          {
            label: 'Request',
            cell: (e) => {
              const id = e.request && e.request.id;
              if (!id) return NONE;
              const logged = (s.requests || []).find((r) => r.id === id);
              return [mono(id), logged ? el('div', { class: 'mono sub' }, `${logged.method} ${logged.path}`) : null];
            },
          },
          { label: 'Pending webhooks', class: 'num', cell: (e) => String(e.pending_webhooks ?? NONE) },
          { label: 'Id', cell: (e) => mono(e.id) },
        ],
        rows,
        'No events.',
      ),
      s.eventsMore
        ? el('button', { type: 'button', class: 'more', on: { click: () => moreEvents(s).catch(showError) } }, 'Load more events')
        : null,
    ),
  );
}

async function moreEvents(s) {
  const last = s.events[s.events.length - 1];
  const page = await api(s, '/v1/events', [
    ['limit', String(PAGE)],
    ['starting_after', last.id],
  ]);
  s.events.push(...(page.data || []));
  s.eventsMore = Boolean(page.has_more);
  renderEvents(s);
}

async function loadWebhooks(s) {
  const [endpoints, deliveries] = await Promise.all([
    api(s, '/v1/webhook_endpoints', [['limit', String(PAGE)]]),
    api(s, '/_emulator/webhook_deliveries', [['limit', '200']]),
  ]);
  if (session !== s) return;
  const dropped = deliveries.dropped || [];
  $('panel-webhooks').replaceChildren(
    section(
      'Webhook endpoints',
      (endpoints.data || []).length,
      table(
        [
          { label: 'Endpoint', cell: (e) => mono(e.id) },
          { label: 'URL', cell: (e) => mono(e.url) },
          { label: 'Status', cell: (e) => badge(e.status || NONE, e.status === 'enabled' ? 'ok' : 'muted') },
          { label: 'Events', cell: (e) => (e.enabled_events || []).join(', ') },
        ],
        endpoints.data || [],
        'No webhook endpoints.',
      ),
    ),
    section(
      'Deliveries',
      (deliveries.data || []).length,
      table(
        [
          { label: 'Queued', class: 'time', cell: (d) => time(d.created) },
          { label: 'Event', cell: (d) => [el('div', { class: 'mono' }, d.type), el('div', { class: 'mono sub' }, d.event)] },
          { label: 'To', cell: (d) => [el('div', { class: 'mono' }, d.url), el('div', { class: 'mono sub' }, d.endpoint || 'forwarding')] },
          { label: 'Status', cell: (d) => badge(d.status, { succeeded: 'ok', failed: 'bad', pending: 'info' }[d.status] || 'warn') },
          { label: 'Attempts', class: 'num', cell: (d) => String(d.attempts) },
          { label: 'Response', class: 'num', cell: (d) => (d.response_code ? String(d.response_code) : NONE) },
          { label: 'Error', class: 'wide', cell: (d) => d.error || NONE },
          { label: 'Next retry', class: 'time', cell: (d) => (d.next_retry_at ? time(d.next_retry_at) : NONE) },
        ],
        deliveries.data || [],
        'No deliveries.',
      ),
      dropped.length
        ? el('p', { class: 'note' }, dropped.map((x) => `${x.url}: ${x.count} dropped (queue full)`).join('; '))
        : null,
    ),
  );
}

async function loadRequests(s) {
  const page = await api(s, '/_emulator/requests', [['limit', String(PAGE)]]);
  s.requests = page.data || [];
  s.requestsMore = Boolean(page.has_more);
  renderRequests(s);
  // Events name the request that caused them: now they can show what it was.
  renderEvents(s);
}

async function moreRequests(s) {
  const last = s.requests[s.requests.length - 1];
  const page = await api(s, '/_emulator/requests', [
    ['limit', String(PAGE)],
    ['starting_after', last.id],
  ]);
  s.requests.push(...(page.data || []));
  s.requestsMore = Boolean(page.has_more);
  renderRequests(s);
}

function statusTone(status) {
  if (status >= 500) return 'bad';
  if (status >= 400) return 'warn';
  return 'ok';
}

function renderRequests(s) {
  if (session !== s) return;
  const only = Boolean(s.requestsErrorsOnly);
  const rows = only ? s.requests.filter((r) => r.status >= 400) : s.requests;
  const toggle = el(
    'label',
    { class: 'toggle' },
    el('input', {
      type: 'checkbox',
      checked: only ? 'checked' : null,
      on: {
        change: (e) => {
          s.requestsErrorsOnly = e.target.checked;
          renderRequests(s);
        },
      },
    }),
    ' errors only',
  );
  $('panel-requests').replaceChildren(
    section(
      'Requests',
      rows.length + (s.requestsMore ? '+' : ''),
      toggle,
      table(
        [
          { label: 'Time', class: 'time', cell: (r) => time(r.created) },
          { label: 'Method', cell: (r) => mono(r.method) },
          { label: 'Path', class: 'path', cell: (r) => mono(r.path) },
          { label: 'Status', cell: (r) => badge(String(r.status), statusTone(r.status)) },
          { label: 'Duration', class: 'num', cell: (r) => duration(r.duration_us) },
          {
            label: 'Error',
            class: 'wide',
            cell: (r) =>
              r.error ? [el('div', { class: 'mono' }, [r.error.type, r.error.code].filter(Boolean).join(' · ') || NONE), el('div', { class: 'sub' }, r.error.message || '')] : NONE,
          },
          {
            label: 'Idempotency key',
            cell: (r) => (r.idempotency_key ? [mono(r.idempotency_key), r.idempotent_replayed ? badge('replayed', 'info') : null] : NONE),
          },
          { label: 'Request id', cell: (r) => mono(r.id) },
        ],
        rows,
        'No requests logged.',
      ),
      s.requestsMore
        ? el('button', { type: 'button', class: 'more', on: { click: () => moreRequests(s).catch(showError) } }, 'Load more requests')
        : null,
    ),
  );
}

function renderClocks(s) {
  if (session !== s) return;
  const c = s.clock || {};
  $('panel-clocks').replaceChildren(
    section(
      'Tenant clock',
      null,
      el(
        'dl',
        { class: 'facts' },
        fact('Mode', c.mode || NONE),
        fact('Now', `${time(c.now)} UTC`),
        fact('Unix seconds', mono(String(c.now ?? NONE))),
      ),
    ),
    section(
      'Test clocks',
      s.testClocks.length,
      table(
        [
          { label: 'Clock', cell: (k) => [el('div', null, k.name || NONE), el('div', { class: 'mono sub' }, k.id)] },
          { label: 'Status', cell: (k) => badge(k.status || NONE, k.status === 'ready' ? 'ok' : 'info') },
          { label: 'Frozen time', class: 'time', cell: (k) => `${time(k.frozen_time)} UTC` },
          { label: 'Created', class: 'time', cell: (k) => time(k.created) },
          { label: 'Deletes after', class: 'time', cell: (k) => time(k.deletes_after) },
        ],
        s.testClocks,
        'No test clocks.',
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Wiring

function refresh() {
  const wanted = readHash();
  if (!wanted.key) return;
  // A refresh is a new session on the same key: nothing loaded before is kept.
  openSession(wanted.key, wanted.account);
  selectTab(wanted.tab || 'customer');
}

function init() {
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const key = $('key').value.trim();
    const account = $('account').value.trim();
    // A new key starts from an empty page: the customer and tab of the old one do not carry over.
    writeHash({ key, account, customer: '', tab: '' });
  });
  $('refresh').addEventListener('click', refresh);
  $('customer-filter').addEventListener('input', () => {
    if (session) renderCustomers(session);
  });
  $('customers-more').addEventListener('click', () => {
    if (session) moreCustomers(session).catch(showError);
  });
  for (const button of document.querySelectorAll('#tabs button')) {
    button.addEventListener('click', () => writeHash({ tab: button.dataset.tab }));
  }
  window.addEventListener('hashchange', route);
  route();
}

init();
