// Real-browser end-to-end test of the webnet UI: login, bulk region assignment
// (by filter and by checked rows), the live health badge over Server-Sent Events,
// the "/" keyboard shortcut, and a job run over SSH on devices of two regions whose
// status, dispatches and log update live; and the API reference page lists every
// operation of /api/v1/openapi.json and tries one with the session.
//
// Run with `node --test tests/browser/ui.test.mjs` (from the repo root or from
// tests/browser) against a running server with a fresh database. The Rust test
// that starts the server provides:
//   WEBNET_URL       e.g. http://127.0.0.1:PORT
//   WEBNET_USERNAME  an admin user belonging to exactly one customer
//   WEBNET_PASSWORD  that user's password
//   WEBNET_TOKEN     an API token of that user
//   WEBNET_SSH_PORTS three ports of stand-in SSH devices on 127.0.0.1, "PORT_A,PORT_B,PORT_SLOW":
//                    user netops / password s3cret; `show version` answers
//                    "Cisco IOS Software, Version 15.2 (edge-a)" (resp. edge-b); the
//                    third takes 30 s to answer any command (a job that stays running)
// Screenshots go to tests/browser/artifacts/. Chromium is Debian's
// /usr/bin/chromium (see install.sh); Playwright never downloads a browser.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

// ---------------------------------------------------------------------------
// Inputs

const REQUIRED_ENV = ['WEBNET_URL', 'WEBNET_USERNAME', 'WEBNET_PASSWORD', 'WEBNET_TOKEN', 'WEBNET_SSH_PORTS'];
const missing = REQUIRED_ENV.filter((name) => !process.env[name]);
if (missing.length > 0) {
  throw new Error(
    `ui.test.mjs: missing environment variable(s): ${missing.join(', ')}. ` +
      'The Rust test that starts the server sets WEBNET_URL, WEBNET_USERNAME, WEBNET_PASSWORD, WEBNET_TOKEN ' +
      'and WEBNET_SSH_PORTS (the ports of its three stand-in SSH devices, "PORT_A,PORT_B,PORT_SLOW").',
  );
}
const BASE_URL = process.env.WEBNET_URL.replace(/\/+$/, '');
const USERNAME = process.env.WEBNET_USERNAME;
const PASSWORD = process.env.WEBNET_PASSWORD;
const TOKEN = process.env.WEBNET_TOKEN;
const SSH_PORTS = process.env.WEBNET_SSH_PORTS.split(',').map((p) => Number(p.trim()));
if (SSH_PORTS.length !== 3 || !SSH_PORTS.every((p) => Number.isInteger(p) && p > 0 && p < 65536)) {
  throw new Error(
    `ui.test.mjs: WEBNET_SSH_PORTS must be three TCP ports separated by commas ("PORT_A,PORT_B,PORT_SLOW"), got ${JSON.stringify(process.env.WEBNET_SSH_PORTS)}`,
  );
}

const CHROMIUM = '/usr/bin/chromium';
// axe-core, evaluated in the page through DevTools (the pages' CSP refuses inline scripts).
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
mkdirSync(ARTIFACTS, { recursive: true });
for (const name of readdirSync(ARTIFACTS)) {
  if (/^failure-.*\.png$/.test(name)) rmSync(`${ARTIFACTS}${name}`); // from an earlier run
}

const PAR_COUNT = 120;
const LON_COUNT = 10;
const SSE_TIMEOUT_MS = 5_000;
const STEP_TIMEOUT_MS = 30_000;
const HUMAN_GAP_MS = 250;
const JOB_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------
// REST API helpers

/** Calls the API with the bearer token; asserts the status; returns the JSON body. */
async function api(method, path, { body, expect = 200 } = {}) {
  const url = new URL(path, `${BASE_URL}/`);
  const res = await fetch(url, {
    method,
    headers: {
      Authorization: `Bearer ${TOKEN}`,
      Accept: 'application/json',
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(
    res.status,
    expect,
    `${method} ${url.pathname}${url.search} answered ${res.status}, expected ${expect}: ${text.slice(0, 500)}`,
  );
  return text ? JSON.parse(text) : null;
}

/** Every row of a paginated list endpoint, following `next`. */
async function apiList(path) {
  const rows = [];
  let next = path;
  let count;
  for (let guard = 0; next && guard < 100; guard++) {
    const page = await api('GET', next);
    assert.ok(Array.isArray(page.results), `GET ${next}: no "results" array in ${JSON.stringify(page).slice(0, 300)}`);
    count ??= page.count;
    rows.push(...page.results);
    next = page.next;
  }
  assert.equal(rows.length, count, `GET ${path}: collected ${rows.length} rows but count says ${count}`);
  return rows;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function mapLimit(items, limit, fn) {
  const results = new Array(items.length);
  let nextIndex = 0;
  async function worker() {
    while (nextIndex < items.length) {
      const i = nextIndex++;
      results[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function deviceBody(site, i, octet2) {
  const n = i + 1;
  return {
    hostname: `${site}-rtr-${String(n).padStart(3, '0')}`,
    mgmt_ip: `10.${octet2}.${Math.floor(n / 250)}.${(n % 250) + 1}`,
    site,
    vendor: 'cisco',
    role: 'edge',
  };
}

// ---------------------------------------------------------------------------
// Browser helpers (playwright-core has no `expect`: these poll until true or time out)

/** Polls `probe()` until `check(value)` is true; fails with the last value seen. */
async function eventually(description, probe, check, { timeout = 5_000, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await probe();
      lastError = undefined;
      if (check(last)) return last;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const seen = lastError ? `error: ${lastError.message}` : `last value: ${JSON.stringify(last)}`;
      throw new assert.AssertionError({ message: `Timed out after ${timeout} ms waiting for ${description} (${seen})` });
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

const normalize = (s) => (s ?? '').replace(/\s+/g, ' ').trim();

/** Waits until the (first) element matching `locator` has text containing / equal to `expected`. */
async function expectText(locator, expected, { exact = false, timeout = 5_000 } = {}) {
  await locator.first().waitFor({ state: 'visible', timeout });
  const want = normalize(expected);
  return eventually(
    `${locator} to have text ${exact ? '==' : 'containing'} ${JSON.stringify(want)}`,
    async () => normalize(await locator.first().textContent()),
    (text) => (exact ? text === want : text.includes(want)),
    { timeout },
  );
}

async function expectCount(locator, n, { timeout = 5_000 } = {}) {
  return eventually(`${locator} to match ${n} element(s)`, () => locator.count(), (c) => c === n, { timeout });
}

async function expectPath(page, pathname, { timeout = 5_000 } = {}) {
  return eventually(
    `the page URL path to be ${pathname}`,
    async () => new URL(page.url()).pathname,
    (p) => p === pathname,
    { timeout },
  );
}

// ---------------------------------------------------------------------------
// Shared state

let browser;
let context;
let page;
const consoleErrors = [];
const pageErrors = [];
const foreignRequests = [];
const regionIds = {};
const deviceIds = { par: [], lon: [] };
const lastJob = {};

/** The rows of `table` (a locator of a <table>) as objects keyed by the header texts. */
async function tableRows(table) {
  return table.evaluate(
    (t) => {
      const text = (el) => (el?.textContent ?? '').replace(/\s+/g, ' ').trim();
      const heads = [...t.querySelectorAll('thead th')].map(text);
      return [...t.querySelectorAll('tbody tr')].map((tr) =>
        Object.fromEntries([...tr.cells].map((td, i) => [heads[i] ?? `#${i}`, text(td)])),
      );
    },
    null,
    { timeout: 1_000 },
  );
}

/** Runs a test step; on failure prints where the browser was and what it showed. */
async function step(name, fn) {
  try {
    await fn();
  } catch (err) {
    await diagnose(name);
    throw err;
  }
}

async function diagnose(name) {
  if (!page || page.isClosed()) return;
  const lines = [`--- diagnostics for "${name}"`, `URL: ${page.url()}`];
  try {
    const html = await page.evaluate(() => (document.querySelector('main') ?? document.body ?? document.documentElement).outerHTML);
    lines.push(`<main> HTML (first 3000 chars):\n${html.slice(0, 3000)}`);
  } catch (err) {
    lines.push(`(could not read the page: ${err.message})`);
  }
  if (consoleErrors.length) lines.push(`browser console errors:\n  ${consoleErrors.slice(-10).join('\n  ')}`);
  const shot = `${ARTIFACTS}failure-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`;
  try {
    await page.screenshot({ path: shot, fullPage: true });
    lines.push(`screenshot: ${shot}`);
  } catch {
    // the page may be gone
  }
  console.error(lines.join('\n'));
}

/** Clicks something that navigates, and waits for the new document to load. */
async function clickAndNavigate(locator) {
  await Promise.all([page.waitForEvent('framenavigated', { timeout: 10_000 }), locator.click()]);
  await page.waitForLoadState('load');
}

// ---------------------------------------------------------------------------

describe('webnet UI in a real browser', () => {
  before(async () => {
    // a. Seed through the REST API.
    const existing = await api('GET', '/api/v1/devices/?site=par&page_size=1');
    assert.equal(existing.count, 0, 'this test needs a fresh database: devices with site "par" already exist');

    const usEast = await api('POST', '/api/v1/regions/', {
      body: { name: 'US East', identifier: 'us-east-1', priority: 200 },
      expect: 201,
    });
    const euWest = await api('POST', '/api/v1/regions/', {
      body: { name: 'EU West', identifier: 'eu-west-1', priority: 100 },
      expect: 201,
    });
    assert.ok(Number.isInteger(usEast.id) && Number.isInteger(euWest.id), 'region creation returned no id');
    regionIds.usEast = usEast.id;
    regionIds.euWest = euWest.id;

    const bodies = [
      ...Array.from({ length: PAR_COUNT }, (_, i) => deviceBody('par', i, 1)),
      ...Array.from({ length: LON_COUNT }, (_, i) => deviceBody('lon', i, 2)),
    ];
    const started = Date.now();
    const created = await mapLimit(bodies, 10, (body) => api('POST', '/api/v1/devices/', { body, expect: 201 }));
    for (const d of created) {
      assert.ok(Number.isInteger(d.id), `device creation returned no id: ${JSON.stringify(d).slice(0, 200)}`);
      assert.equal(d.region, null, `new device ${d.hostname} already has a region`);
      deviceIds[d.site].push(d.id);
    }
    assert.equal(deviceIds.par.length, PAR_COUNT);
    assert.equal(deviceIds.lon.length, LON_COUNT);
    console.log(`seeded 2 regions and ${created.length} devices in ${Date.now() - started} ms`);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(10_000);
    page = await context.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => {
      consoleErrors.push(`pageerror: ${err.message}`);
      pageErrors.push(`${page.url()}: ${err.message}`);
    });
    page.on('request', (req) => {
      const url = req.url();
      if (!url.startsWith(`${BASE_URL}/`) && !url.startsWith('data:') && !url.startsWith('blob:')) {
        foreignRequests.push(`${req.method()} ${url} (from ${page.url()})`);
      }
    });
    page.on('response', (res) => {
      if (res.status() >= 400) consoleErrors.push(`HTTP ${res.status()} ${res.request().method()} ${res.url()}`);
    });
  });

  after(async () => {
    await context?.close().catch(() => {});
    await browser?.close();
  });

  it('b. signs in and lands on the dashboard', { timeout: STEP_TIMEOUT_MS }, () =>
    step('login', async () => {
      await page.goto(`${BASE_URL}/login`);
      await page.locator('input[name=username]').fill(USERNAME);
      await page.locator('input[name=password]').fill(PASSWORD);
      await clickAndNavigate(page.locator('main form[action="/login"] button[type=submit]'));
      await expectPath(page, '/');
      await expectText(page.locator('[data-testid=current-user]'), USERNAME, { exact: true });
    }));

  it('c1. assigns every device matching a filter, across pages, after a confirmation', { timeout: STEP_TIMEOUT_MS }, () =>
    step('bulk-by-filter', async () => {
      await page.goto(`${BASE_URL}/devices?site=par&page_size=50`);
      const table = page.locator('[data-testid=devices-table]');
      await table.waitFor();
      await expectCount(table.locator('tbody tr'), 50);
      await expectCount(table.locator('input[type=checkbox][name=device_ids]'), 50);
      // A way on above the list and one below it.
      await expectCount(page.locator('a[rel=next]'), 2);
      await page.getByTestId('pager-top').locator('a[rel=next]').waitFor({ state: 'visible' });

      const form = page.locator('form#bulk');
      const allMatching = form.locator('input[name=all_matching]');
      await allMatching.check();
      assert.equal(await allMatching.isChecked(), true, 'the "all matching" box did not stay checked');
      const region = form.locator('select[name=region]');
      await region.selectOption(String(regionIds.usEast));
      const chosen = await region.evaluate((s) => s.selectedOptions[0]?.textContent ?? '');
      assert.match(chosen, /US East/, `selected option reads ${JSON.stringify(chosen)}`);

      await clickAndNavigate(form.getByRole('button', { name: 'Apply' }));
      const summary = page.locator('[data-testid=bulk-summary]');
      await expectText(summary, `${PAR_COUNT} devices`);
      await expectText(summary, 'US East');
      await page.screenshot({ path: `${ARTIFACTS}bulk-confirm.png` });

      await clickAndNavigate(page.locator('main form[action="/devices/bulk-assign"] button[type=submit]'));
      await expectPath(page, '/devices');
      await expectText(page.locator('.flash-success'), `${PAR_COUNT} devices moved to US East`);
      // The list we came back to still shows the filter, now with the region column filled in.
      assert.equal(new URL(page.url()).searchParams.get('site'), 'par', `came back to ${page.url()}, not the filtered list`);
      await page.screenshot({ path: `${ARTIFACTS}devices.png`, fullPage: true });

      const par = await apiList('/api/v1/devices/?site=par&page_size=1000');
      assert.equal(par.length, PAR_COUNT);
      const parWrong = par.filter((d) => d.region !== regionIds.usEast).map((d) => `${d.hostname}=${d.region}`);
      assert.deepEqual(parWrong, [], 'every par device should be in US East');

      const lon = await apiList('/api/v1/devices/?site=lon');
      assert.equal(lon.length, LON_COUNT);
      const lonWrong = lon.filter((d) => d.region !== null).map((d) => `${d.hostname}=${d.region}`);
      assert.deepEqual(lonWrong, [], 'the site filter was not honoured: lon devices were moved too');
    }));

  it('c2. assigns only the checked rows', { timeout: STEP_TIMEOUT_MS }, () =>
    step('bulk-by-rows', async () => {
      await page.goto(`${BASE_URL}/devices?site=lon`);
      const boxes = page.locator('[data-testid=devices-table] input[type=checkbox][name=device_ids]');
      await expectCount(boxes, LON_COUNT);
      // Nothing checked: the bar says so and its buttons wait.
      const count = page.getByTestId('selected-count');
      await expectText(count, '0 selected', { exact: true });
      assert.equal(await page.getByTestId('run-job').isDisabled(), true, '"Run a job…" is enabled with nothing selected');
      // One Tab stop per row (its device link), plus one for all the checkboxes, which the
      // arrow keys move between and Space ticks.
      const stops = await page.evaluate(() =>
        [...document.querySelectorAll('[data-testid=devices-table] tbody :is(a[href], input)')].filter((e) => e.tabIndex >= 0).length);
      assert.equal(stops, LON_COUNT + 1, 'Tab stops in the device rows');
      await boxes.nth(0).focus();
      const picked = [];
      for (const moves of [1, 3]) {
        for (let m = 0; m < moves; m++) await page.keyboard.press('ArrowDown');
        await page.keyboard.press('Space');
      }
      for (const i of [1, 4]) {
        const box = boxes.nth(i);
        assert.equal(await box.isChecked(), true, `row ${i} should be checked from the keyboard`);
        picked.push(Number(await box.getAttribute('value')));
      }
      assert.equal(await boxes.nth(4).evaluate((b) => b === document.activeElement && b.tabIndex === 0), true, 'the last box used is the Tab stop');
      assert.ok(picked.every(Number.isInteger), `row checkboxes carry no device id: ${picked}`);
      await expectText(count, '2 selected', { exact: true });
      assert.equal(await page.getByTestId('run-job').isDisabled(), false, '"Run a job…" stays disabled with two rows checked');

      const form = page.locator('form#bulk');
      assert.equal(await form.locator('input[name=all_matching]').isChecked(), false);
      await form.locator('select[name=region]').selectOption({ label: 'EU West (eu-west-1)' });
      await clickAndNavigate(form.getByRole('button', { name: 'Apply' }));

      const summary = page.locator('[data-testid=bulk-summary]');
      await expectText(summary, '2 devices');
      await expectText(summary, 'EU West');
      await clickAndNavigate(page.locator('main form[action="/devices/bulk-assign"] button[type=submit]'));
      await expectPath(page, '/devices');
      await expectText(page.locator('.flash-success'), '2 devices moved to EU West');

      const lon = await apiList('/api/v1/devices/?site=lon');
      const inEuWest = lon.filter((d) => d.region === regionIds.euWest).map((d) => d.id).sort((a, b) => a - b);
      assert.deepEqual(inEuWest, [...picked].sort((a, b) => a - b), 'exactly the two checked lon devices should be in EU West');
      const others = lon.filter((d) => !picked.includes(d.id) && d.region !== null).map((d) => `${d.hostname}=${d.region}`);
      assert.deepEqual(others, [], 'unchecked lon devices should keep no region');
      const par = await apiList('/api/v1/devices/?site=par&page_size=1000');
      assert.ok(par.every((d) => d.region === regionIds.usEast), 'the par devices should still be in US East');
    }));

  it('c3. bulk edit sets a credential on every device matching a filter, across pages, after showing old and new values', { timeout: STEP_TIMEOUT_MS }, () =>
    step('bulk-edit', async () => {
      const credential = await api('POST', '/api/v1/credentials/', {
        body: { name: 'bulk', username: 'netops', password: 's3cret' },
        expect: 201,
      });
      await page.goto(`${BASE_URL}/devices?site=par&page_size=50`);
      const form = page.locator('form#bulk');
      const edit = page.getByTestId('bulk-edit');
      assert.equal(await edit.isDisabled(), true, '"Edit fields…" is enabled with nothing selected');
      await form.locator('input[name=all_matching]').check();
      assert.equal(await edit.isDisabled(), false, '"Edit fields…" stays disabled with "all matching" ticked');
      await clickAndNavigate(edit);
      await expectPath(page, '/devices/bulk-edit');
      await expectText(page.locator('h1'), `Edit ${PAR_COUNT} devices`);
      const fields = page.getByTestId('bulk-edit-form');
      await fields.locator('select[name=credential]').selectOption({ label: 'bulk (netops)' });
      await clickAndNavigate(page.getByTestId('bulk-edit-review'));

      await expectText(page.locator('[data-testid=bulk-summary]'), `${PAR_COUNT} devices will change`);
      const preview = page.getByTestId('bulk-preview');
      const rows = await tableRows(preview);
      assert.equal(rows.length, 20, 'the confirmation lists the first 20 devices, one changed field each');
      assert.deepEqual(
        { field: rows[0].Field, now: rows[0].Now, after: rows[0].After },
        { field: 'credential', now: 'none', after: 'bulk' },
        `first row: ${JSON.stringify(rows[0])}`,
      );
      await page.screenshot({ path: `${ARTIFACTS}bulk-edit-confirm.png`, fullPage: true });
      await clickAndNavigate(page.getByTestId('bulk-edit-apply'));
      await expectPath(page, '/devices');
      await expectText(page.locator('.flash-success'), `${PAR_COUNT} devices changed`);
      assert.equal(new URL(page.url()).searchParams.get('site'), 'par', `came back to ${page.url()}, not the filtered list`);

      const par = await apiList('/api/v1/devices/?site=par&page_size=1000');
      assert.equal(par.length, PAR_COUNT);
      const wrong = par.filter((d) => d.credential !== credential.id).map((d) => d.hostname);
      assert.deepEqual(wrong, [], 'every par device, on every page, should have the credential');
      const lon = await apiList('/api/v1/devices/?site=lon');
      assert.deepEqual(lon.filter((d) => d.credential !== null).map((d) => d.hostname), [], 'lon devices were changed too');
    }));

  it('d. updates the region health badge live over SSE, without a reload', { timeout: STEP_TIMEOUT_MS }, () =>
    step('sse-badge', async () => {
      // Note when the page's EventSource is open, so the update is not sent before anyone listens.
      await page.addInitScript(() => {
        document.addEventListener('htmx:sseOpen', () => {
          window.__sseOpen = true;
        });
      });
      await page.goto(`${BASE_URL}/regions`);
      const badge = page.locator('[data-region-health="us-east-1"]');
      await expectText(badge, 'healthy', { exact: true });
      await expectText(page.locator('[data-region-health="eu-west-1"]'), 'healthy', { exact: true });
      await page.waitForFunction(() => window.__sseOpen === true, null, { timeout: 5_000 }).catch(() => {
        throw new assert.AssertionError({ message: 'the SSE connection to /events did not open (no htmx:sseOpen event within 5 s)' });
      });

      await page.evaluate(() => {
        window.__noReload = true;
        window.__degradedAt = null;
        const seen = () => {
          const el = document.querySelector('[data-region-health="us-east-1"]');
          if (!window.__degradedAt && el && el.textContent.trim() === 'degraded') window.__degradedAt = Date.now();
        };
        new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, characterData: true });
      });

      const sent = Date.now();
      await api('POST', `/api/v1/regions/${regionIds.usEast}/update_health/`, {
        body: { health_status: 'degraded', message: 'queue is slow' },
      });
      const answered = Date.now();
      await page
        .waitForFunction(() => window.__degradedAt !== null, null, { timeout: SSE_TIMEOUT_MS, polling: 'raf' })
        .catch(async () => {
          const now = normalize(await badge.first().textContent().catch(() => '(badge gone)'));
          throw new assert.AssertionError({
            message: `the us-east-1 badge did not turn "degraded" within ${SSE_TIMEOUT_MS} ms without a reload (it reads ${JSON.stringify(now)})`,
          });
        });
      const shownAt = await page.evaluate(() => window.__degradedAt);
      console.log(
        `SSE badge latency: ${shownAt - sent} ms from sending the API request ` +
          `(${shownAt - answered} ms after the API answered in ${answered - sent} ms)`,
      );

      assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was reloaded instead of swapped live');
      await expectText(badge, 'degraded', { exact: true });
      assert.equal(await badge.locator('.badge').getAttribute('title'), 'queue is slow', 'the swapped badge should carry the message as its title');
      assert.equal(await badge.getAttribute('sse-swap'), `region-health-${regionIds.usEast}`);
      await expectText(page.locator('[data-region-health="eu-west-1"]'), 'healthy', { exact: true });

      // The swapped-in badge keeps listening: later changes arrive too. They are spaced
      // like real ones; changes a few ms apart are the (todo) test below.
      await page.waitForTimeout(HUMAN_GAP_MS);
      await api('POST', `/api/v1/regions/${regionIds.usEast}/update_health/`, {
        body: { health_status: 'offline', message: 'worker gone' },
      });
      await expectText(badge, 'offline', { exact: true, timeout: SSE_TIMEOUT_MS });
      await page.waitForTimeout(HUMAN_GAP_MS);
      await api('POST', `/api/v1/regions/${regionIds.usEast}/update_health/`, {
        body: { health_status: 'degraded', message: 'queue is slow' },
      });
      await expectText(badge, 'degraded', { exact: true, timeout: SSE_TIMEOUT_MS });
      assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was reloaded instead of swapped live');

      await page.screenshot({ path: `${ARTIFACTS}regions.png`, fullPage: true });
    }));

  // Regression: when the badge itself was swapped (outerHTML), an event arriving within
  // htmx's settle delay after the previous swap was dropped. The listener now stays in
  // place and only its contents change.
  it('d2. back-to-back health changes end on the latest status', {
    timeout: STEP_TIMEOUT_MS,
  }, () =>
    step('sse-back-to-back', async () => {
      await page.goto(`${BASE_URL}/regions`);
      await page.waitForFunction(() => window.__sseOpen === true, null, { timeout: 5_000 });
      const badge = page.locator('[data-region-health="eu-west-1"]');
      await expectText(badge, 'healthy', { exact: true });
      const path = `/api/v1/regions/${regionIds.euWest}/update_health/`;
      for (const [first, last] of [['offline', 'degraded'], ['offline', 'healthy']]) {
        await api('POST', path, { body: { health_status: first, message: `first ${first}` } });
        await api('POST', path, { body: { health_status: last, message: `then ${last}` } });
        const now = await api('GET', `/api/v1/regions/${regionIds.euWest}/`);
        assert.equal(now.health_status, last);
        await expectText(badge, last, { exact: true, timeout: SSE_TIMEOUT_MS });
        await page.waitForTimeout(HUMAN_GAP_MS);
      }
    }));

  it('e0. a focused link keeps focus across three live refreshes of the dashboard', { timeout: STEP_TIMEOUT_MS }, () =>
    step('focus-kept', async () => {
      await page.goto(`${BASE_URL}/`);
      const link = page.locator('[data-testid=region-cards] article a').first();
      await link.focus();
      const id = await link.getAttribute('id');
      assert.ok(id, 'the card link has an id for htmx to give focus back to');
      // Refreshes change what changed, in place: the cards are the same elements after them.
      await page.evaluate(() => {
        window.__cards = document.querySelector('[data-testid=region-cards]');
        window.__card = window.__cards.querySelector('article');
      });
      let refreshes = 0;
      page.on('response', function counted(r) {
        if (r.url().endsWith('/?cards=1')) refreshes++;
        if (refreshes >= 3) page.off('response', counted);
      });
      await eventually('three refreshes of the cards', () => Promise.resolve(refreshes), (n) => n >= 3, { timeout: 15_000 });
      await page.waitForTimeout(300);
      const focused = await page.evaluate(() => document.activeElement?.id ?? '(none)');
      assert.equal(focused, id, 'focus moved away during the live refresh');
      const kept = await page.evaluate(() => ({
        cards: window.__cards === document.querySelector('[data-testid=region-cards]'),
        card: window.__card === document.querySelector('[data-testid=region-cards] article'),
      }));
      assert.deepEqual(kept, { cards: true, card: true }, 'a refresh replaced the cards instead of updating what changed');
    }));

  it('e0b. a focused job link keeps focus across three live refreshes of the jobs list', { timeout: STEP_TIMEOUT_MS }, () =>
    step('jobs-focus-kept', async () => {
      // A job that stays running (the stand-in answers after 30 s) keeps the list live.
      const credential = await api('POST', '/api/v1/credentials/', {
        body: { name: 'slow', username: 'netops', password: 's3cret' },
        expect: 201,
      });
      const device = await api('POST', '/api/v1/devices/', {
        body: { hostname: 'edge-slow', mgmt_ip: '127.0.0.1', port: SSH_PORTS[2], credential: credential.id, site: 'slow-lab' },
        expect: 201,
      });
      const job = await api('POST', '/api/v1/commands/run', {
        body: { targets: { device_ids: [device.id] }, commands: ['show tech-support'] },
        expect: 202,
      });
      try {
        await eventually('the slow job to be running', () => api('GET', `/api/v1/jobs/${job.job_id}/`), (j) => j.status === 'running', { timeout: 15_000 });
        await page.goto(`${BASE_URL}/jobs`);
        const link = page.locator(`#job-link-${job.job_id}`);
        await link.focus();
        let refreshes = 0;
        page.on('response', function counted(r) {
          if (r.url().includes('rows=1')) refreshes++;
          if (refreshes >= 3) page.off('response', counted);
        });
        await page.evaluate((id) => {
          window.__row = document.getElementById(`job-row-${id}`);
          window.__status = document.querySelector(`[data-job-status="${id}"]`);
        }, job.job_id);
        await eventually('three refreshes of the jobs list', () => Promise.resolve(refreshes), (n) => n >= 3, { timeout: 15_000 });
        await page.waitForTimeout(300);
        const focused = await page.evaluate(() => document.activeElement?.id ?? '(none)');
        assert.equal(focused, `job-link-${job.job_id}`, 'focus moved away during the live refresh of the jobs list');
      } finally {
        await api('POST', `/api/v1/jobs/${job.job_id}/cancel/`, { expect: 200 }).catch(() => {});
      }
      await eventually('the slow job to be cancelled', () => api('GET', `/api/v1/jobs/${job.job_id}/`), (j) => j.status === 'cancelled', { timeout: 15_000 });
      // The open list shows it, by changing that badge: the row and the badge are the same
      // elements, and focus is still on the link.
      const badge = page.locator(`[data-job-status="${job.job_id}"]`);
      await expectText(badge, 'cancelled', { exact: true, timeout: 10_000 });
      const kept = await page.evaluate((id) => ({
        row: window.__row === document.getElementById(`job-row-${id}`),
        status: window.__status === document.querySelector(`[data-job-status="${id}"]`),
        focus: document.activeElement?.id ?? '(none)',
      }), job.job_id);
      assert.deepEqual(kept, { row: true, status: true, focus: `job-link-${job.job_id}` }, 'the refresh replaced the row instead of updating its badge');
    }));

  it('e. "/" moves focus to the device search box', { timeout: STEP_TIMEOUT_MS }, () =>
    step('keyboard-slash', async () => {
      await page.goto(`${BASE_URL}/devices`);
      const search = page.locator('[data-filter-focus]');
      await search.waitFor();
      await page.evaluate(() => {
        if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
      });
      assert.equal(await page.evaluate(() => document.activeElement === document.body), true, 'focus should start on <body>');
      await page.keyboard.press('/');
      await eventually(
        'the focused element to be the [data-filter-focus] search input',
        () => page.evaluate(() => document.activeElement?.matches('[data-filter-focus]') ?? false),
        (focused) => focused === true,
      );
      assert.equal(await search.inputValue(), '', 'the "/" itself should not be typed into the search box');

      // Two sites in one box, then a page size: the choice applies at once and the URL stays clean.
      await page.locator('form.filters input[name=site]').fill('par, lon');
      await clickAndNavigate(page.locator('form.filters button[type=submit]'));
      await expectText(page.locator('.page-head p'), `${PAR_COUNT + LON_COUNT} devices match the filter`);
      await Promise.all([
        page.waitForURL((url) => url.searchParams.get('page_size') === '25'),
        page.locator('select[name=page_size]').selectOption('25'),
      ]);
      const url = new URL(page.url());
      assert.deepEqual([...url.searchParams.keys()], ['site', 'page_size'], `URL ${page.url()}`);
      await expectCount(page.locator('[data-testid=devices-table] tbody tr'), 25);
      await expectText(page.locator('.page-head p'), `${PAR_COUNT + LON_COUNT} devices match the filter`);
    }));

  it('e1. a form shown again with errors puts focus on the first field to fix, which names its error', { timeout: STEP_TIMEOUT_MS }, () =>
    step('form-error-focus', async () => {
      await page.goto(`${BASE_URL}/devices/new`);
      await page.locator('#hostname').fill('edge-focus');
      await page.locator('#mgmt_ip').fill('10.99.0.1');
      await page.locator('#port').fill('99999');
      await clickAndNavigate(page.locator('form[action="/devices"] button[type=submit]'));
      await expectText(page.locator('[data-testid=error-summary]'), 'Port');
      await eventually(
        'focus on the port field (the first invalid one), not on hostname (autofocus)',
        () => page.evaluate(() => document.activeElement?.id ?? null),
        (id) => id === 'port',
      );
      const described = await page.evaluate(() => {
        const field = document.activeElement;
        const error = document.getElementById(field.getAttribute('aria-describedby') ?? '');
        return { invalid: field.getAttribute('aria-invalid'), error: error?.textContent?.trim() ?? null };
      });
      assert.equal(described.invalid, 'true');
      assert.ok(described.error && described.error.length > 0, `the port field should be described by its error, got ${JSON.stringify(described)}`);
      assert.equal(await page.locator('#hostname').inputValue(), 'edge-focus', 'what was typed is kept');
    }));

  it('f. runs a job on devices of two regions from the browser and watches its log live', { timeout: 60_000 }, () =>
    step('job-live', async () => {
      // Jobs skip offline regions; an earlier step may have left one offline (degraded is fine).
      for (const id of [regionIds.usEast, regionIds.euWest]) {
        const region = await api('GET', `/api/v1/regions/${id}/`);
        if (region.health_status === 'offline') {
          await api('POST', `/api/v1/regions/${id}/update_health/`, { body: { health_status: 'healthy' } });
        }
      }
      const credential = await api('POST', '/api/v1/credentials/', {
        body: { name: 'lab', username: 'netops', password: 's3cret' },
        expect: 201,
      });
      assert.ok(Number.isInteger(credential.id), `credential creation returned no id: ${JSON.stringify(credential).slice(0, 200)}`);
      assert.equal(credential.password, undefined, 'the API must not echo the credential password');
      const lab = [
        { hostname: 'edge-a', port: SSH_PORTS[0], region: regionIds.usEast, queue: 'region_us-east-1' },
        { hostname: 'edge-b', port: SSH_PORTS[1], region: regionIds.euWest, queue: 'region_eu-west-1' },
      ];
      for (const d of lab) {
        const created = await api('POST', '/api/v1/devices/', {
          body: {
            hostname: d.hostname,
            mgmt_ip: '127.0.0.1',
            port: d.port,
            credential: credential.id,
            vendor: 'cisco',
            platform: 'ios',
            site: 'ssh-lab',
            region: d.region,
          },
          expect: 201,
        });
        d.id = created.id;
        assert.equal(created.region, d.region, `${d.hostname} was not put in region ${d.region}`);
        assert.equal(created.port, d.port);
      }

      // Choose both rows and ask for a job.
      await page.goto(`${BASE_URL}/devices?site=ssh-lab`);
      const boxes = page.locator('[data-testid=devices-table] input[type=checkbox][name=device_ids]');
      await expectCount(boxes, 2);
      for (let i = 0; i < 2; i++) await boxes.nth(i).check();
      await clickAndNavigate(page.locator('[data-testid=run-job]'));
      await expectPath(page, '/jobs/new');
      const targets = page.locator('[data-testid=job-targets]');
      await expectText(targets, 'edge-a');
      await expectText(targets, 'edge-b');

      const form = page.locator('main form[action="/jobs"]');
      await form.locator('input[name=type][value=run_commands]').check();
      await form.locator('textarea[name=commands]').fill('show version');
      // Time the job from the click: note, from the job page's first script on, when its
      // status reads "success" and which SSE events htmx swapped in.
      await page.addInitScript(() => {
        if (!/^\/jobs\/\d+$/.test(location.pathname)) return;
        window.__jobSuccessAt = null;
        window.__jobSseOpenAt = null;
        window.__sseSwaps = { job: 0, log: 0 };
        document.addEventListener('htmx:sseOpen', () => {
          window.__jobSseOpenAt ??= Date.now();
        });
        document.addEventListener('htmx:sseMessage', (e) => {
          const type = e.detail?.type;
          if (type in window.__sseSwaps) window.__sseSwaps[type]++;
        });
        const seen = () => {
          const el = document.querySelector('[data-testid=job-status]');
          if (!window.__jobSuccessAt && el && el.textContent.trim() === 'success') window.__jobSuccessAt = Date.now();
        };
        document.addEventListener('DOMContentLoaded', () => {
          window.__jobStatusAtLoad = document.querySelector('[data-testid=job-status]')?.textContent.trim();
          seen();
          new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, characterData: true });
        });
      });
      const submitted = Date.now();
      await clickAndNavigate(form.getByRole('button', { name: 'Run job' }));

      const match = /^\/jobs\/(\d+)$/.exec(new URL(page.url()).pathname);
      assert.ok(match, `after "Run job" the browser is on ${page.url()}, not on a job page`);
      const jobId = Number(match[1]);
      // From here on the page must not be reloaded or left: mark the document, count navigations.
      await page.evaluate(() => {
        window.__noReload = true;
      });
      let navigations = 0;
      const countNavigation = (frame) => {
        if (frame === page.mainFrame()) navigations++;
      };
      page.on('framenavigated', countNavigation);
      await expectText(page.locator('.flash-success'), `Job ${jobId} started on 2 devices.`, { exact: true });

      // Everything below arrives over SSE on this very page.
      const status = page.locator('[data-testid=job-status]');
      await expectText(status, 'success', { exact: true, timeout: JOB_TIMEOUT_MS }).catch(async (err) => {
        // Say what the server knew, and when the page started listening, next to what it shows.
        const seen = await page.evaluate(() => ({ sseOpenAt: window.__jobSseOpenAt, swaps: window.__sseSwaps }));
        const job = await api('GET', `/api/v1/jobs/${jobId}/`).catch((e) => ({ error: e.message }));
        const logs = await api('GET', `/api/v1/jobs/${jobId}/logs/?page_size=1000`).catch(() => ({ results: [] }));
        const lastLog = logs.results?.at(-1);
        const shown = await page.locator('[data-testid=job-log] > li').count().catch(() => -1);
        const iso = (ms) => (ms ? new Date(ms).toISOString() : 'never');
        throw new assert.AssertionError({
          message:
            `${err.message}\n` +
            `  the API says: job ${jobId} status ${job.status}, finished_at ${job.finished_at}, ` +
            `${logs.count ?? '?'} log lines (last at ${lastLog?.ts}: ${JSON.stringify(lastLog?.message)})\n` +
            `  the page shows ${shown} log lines; its SSE connection opened at ${iso(seen.sseOpenAt)}; ` +
            `SSE events swapped in: ${JSON.stringify(seen.swaps)}`,
        });
      });
      const { shownAt, atLoad, swaps } = await page.evaluate(() => ({
        shownAt: window.__jobSuccessAt,
        atLoad: window.__jobStatusAtLoad,
        swaps: window.__sseSwaps,
      }));
      console.log(
        `job ${jobId}: "success" shown ${shownAt - submitted} ms after clicking "Run job" ` +
          `(status when the page loaded: ${atLoad}; SSE events swapped in: ${swaps.job} job, ${swaps.log} log)`,
      );

      const log = page.locator('[data-testid=job-log]');
      for (const d of lab) await expectText(log, `Cisco IOS Software, Version 15.2 (${d.hostname})`, { timeout: JOB_TIMEOUT_MS });

      const dispatches = page.locator('table[data-testid=dispatches]');
      const rows = await eventually(
        'two finished dispatches, one per region queue, each with a worker',
        () => tableRows(dispatches),
        (rs) =>
          rs.length === 2 &&
          lab.every((d) => rs.some((r) => r.Queue === d.queue)) &&
          rs.every((r) => r.Status === 'success' && r.Worker !== '' && r.Worker !== 'not picked up yet'),
        { timeout: JOB_TIMEOUT_MS },
      );
      assert.deepEqual(rows.map((r) => r.Queue).sort(), lab.map((d) => d.queue).sort());

      const results = await eventually(
        'both devices listed with result "success"',
        () => tableRows(page.locator('table[data-testid=device-results]')),
        (rs) => rs.length === 2 && lab.every((d) => rs.some((r) => r.Device === d.hostname && r.Result === 'success')),
        { timeout: JOB_TIMEOUT_MS },
      );
      assert.equal(results.length, 2);

      page.off('framenavigated', countNavigation);
      assert.equal(navigations, 0, 'the job page navigated (or reloaded) instead of updating live');
      assert.equal(await page.evaluate(() => window.__noReload), true, 'the job page was reloaded instead of updated live');
      assert.equal(new URL(page.url()).pathname, `/jobs/${jobId}`);

      // The API agrees.
      const job = await api('GET', `/api/v1/jobs/${jobId}/`);
      assert.equal(job.status, 'success', `GET /api/v1/jobs/${jobId}/: ${JSON.stringify(job).slice(0, 800)}`);
      assert.equal(job.dispatches?.length, 2, `job ${jobId} should have one dispatch per region: ${JSON.stringify(job.dispatches)}`);
      for (const d of job.dispatches) {
        assert.equal(d.status, 'success', `dispatch ${JSON.stringify(d)}`);
        assert.ok(typeof d.worker === 'string' && d.worker !== '', `dispatch without a worker: ${JSON.stringify(d)}`);
      }
      assert.deepEqual(job.dispatches.map((d) => d.queue).sort(), lab.map((d) => d.queue).sort());

      // What was asked for, and what each device printed.
      await expectText(page.locator('[data-testid=job-commands]'), 'show version', { exact: true });
      const output = page.locator('[data-testid=device-output]').first();
      await output.locator('summary').click();
      await expectText(output.locator('pre').first(), 'Cisco IOS Software, Version 15.2');
      // The downloads, with this browser's session.
      const logFile = await page.request.get(`${BASE_URL}${await page.getByTestId('download-log').getAttribute('href')}`);
      assert.equal(logFile.status(), 200);
      const logText = await logFile.text();
      for (const d of lab) assert.ok(logText.includes(`${d.hostname}: $ show version`), `the downloaded log lacks ${d.hostname}'s command:\n${logText}`);
      assert.match(logText, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC /m, 'log lines carry their date and zone');
      const resultsFile = await page.request.get(`${BASE_URL}${await page.getByTestId('download-results').getAttribute('href')}`);
      const downloaded = await resultsFile.json();
      assert.equal(downloaded.count, 2, JSON.stringify(downloaded).slice(0, 400));
      assert.ok(downloaded.results.every((r) => r.detail.commands[0].output.startsWith('Cisco IOS Software')));
      // Every relative time carries its exact time.
      const untitled = await page.locator('time[data-ago]:not([title])').count();
      assert.equal(untitled, 0, 'a relative time without its exact time on the job page');

      await page.screenshot({ path: `${ARTIFACTS}job.png`, fullPage: true });
      lastJob.id = jobId;
      lastJob.device = lab[0].id;

      // The device's page lists the job that just ran on it.
      await page.goto(`${BASE_URL}/devices/${lab[0].id}`);
      await expectText(page.locator('[data-testid=device-history] tbody tr').first(), `#${jobId}`);
      await page.screenshot({ path: `${ARTIFACTS}device.png`, fullPage: true });
      // ... and leads to the job list filtered by it.
      await clickAndNavigate(page.getByRole('link', { name: 'All jobs on this device' }));
      assert.equal(new URL(page.url()).search, `?device=${lab[0].id}`);
      await expectCount(page.locator('[data-testid=jobs-table] tbody tr'), 1);
      await expectText(page.locator('[data-testid=jobs-table] tbody tr').first(), `#${jobId}`);
    }));

  it('g. the API reference lists every operation and tries one with the session', { timeout: STEP_TIMEOUT_MS }, () =>
    step('api-reference', async () => {
      const response = await fetch(`${BASE_URL}/api/v1/openapi.json`);
      assert.equal(response.status, 200);
      const doc = await response.json();
      const described = [];
      for (const [path, item] of Object.entries(doc.paths)) {
        for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
          if (item[method]) described.push(`${method.toUpperCase()} ${path}`);
        }
      }
      assert.ok(described.length >= 30, `only ${described.length} operations described`);

      // Layout shifts as the reference renders (Cumulative Layout Shift, as Web Vitals count it).
      await page.addInitScript(() => {
        window.__cls = 0;
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) if (!e.hadRecentInput) window.__cls += e.value;
        }).observe({ type: 'layout-shift', buffered: true });
      });
      await clickAndNavigate(page.locator('nav[aria-label=Main] a', { hasText: /^API$/ }));
      assert.equal(new URL(page.url()).pathname, '/api/docs');
      const blocks = page.locator('#api-reference .opblock');
      await eventually('the reference to render every operation', () => blocks.count(), (n) => n === described.length, {
        timeout: 10_000,
      });
      await page.waitForFunction(() => !document.getElementById('api-reference')?.hasAttribute('aria-busy'), null, { timeout: 10_000 });
      await page.waitForTimeout(500);
      const cls = await page.evaluate(() => window.__cls);
      console.log(`API reference layout shift: ${cls.toFixed(3)}`);
      assert.ok(cls < 0.1, `the API reference shifts the page as it renders (CLS ${cls.toFixed(3)}; 0.1 is "good")`);
      const shown = await blocks.evaluateAll((els) =>
        els.map((el) => {
          const method = el.querySelector('.opblock-summary-method')?.textContent?.trim();
          const path = el.querySelector('.opblock-summary-path')?.getAttribute('data-path');
          return `${method} ${path}`;
        }),
      );
      assert.deepEqual([...shown].sort(), [...described].sort());

      // "Try it out" on GET /api/v1/me/ answers with this browser's session.
      const me = page.locator('#api-reference .opblock', {
        has: page.locator('.opblock-summary-path[data-path="/api/v1/me/"]'),
      });
      await me.locator('.opblock-summary').click();
      await me.getByRole('button', { name: 'Try it out' }).click();
      await me.getByRole('button', { name: 'Execute' }).click();
      const body = me.locator('.responses-wrapper .live-responses-table .response-col_description pre').first();
      await eventually('the tried request to answer', () => body.textContent().catch(() => ''), (t) => t.includes(USERNAME), {
        timeout: 10_000,
      });
      await me.locator('.opblock-summary').click();
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: `${ARTIFACTS}api-reference.png` });
    }));

  it('h. fits a phone: no page is wider than 390 px, and the menu opens', { timeout: 60_000 }, () =>
    step('phone', async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      try {
        const paths = ['/', '/regions', '/devices', `/jobs/${lastJob.id}`, '/credentials', `/devices/${lastJob.device}`, '/jobs'];
        for (const path of paths) {
          await page.goto(`${BASE_URL}${path}`);
          const width = await page.evaluate(() => document.documentElement.scrollWidth);
          assert.ok(width <= 390, `${path} is ${width} px wide at a 390 px viewport`);
          const untitled = await page.locator('time[data-ago]:not([title])').count();
          assert.equal(untitled, 0, `a relative time without its exact time on ${path}`);
        }
        await page.goto(`${BASE_URL}/`);
        const jobsLink = page.locator('nav[aria-label=Main] a', { hasText: /^Jobs$/ });
        assert.equal(await jobsLink.isVisible(), false, 'the navigation is folded on a phone');
        const menu = page.getByRole('button', { name: 'Menu' });
        await menu.click();
        assert.equal(await menu.getAttribute('aria-expanded'), 'true');
        await jobsLink.waitFor({ state: 'visible', timeout: 2_000 });
        await page.screenshot({ path: `${ARTIFACTS}phone.png`, fullPage: true });
      } finally {
        await page.setViewportSize({ width: 1280, height: 900 });
      }
    }));

  it('i. has no serious or critical accessibility violation (axe-core), in light and dark', { timeout: 90_000 }, () =>
    step('accessibility', async () => {
      const paths = ['/', '/regions', `/regions/${regionIds.usEast}`, '/devices', `/devices/${lastJob.device}`, '/jobs', `/jobs/${lastJob.id}`, '/credentials', '/jobs/new?device_ids=' + lastJob.device];
      const found = [];
      try {
        for (const scheme of ['light', 'dark']) {
          await page.emulateMedia({ colorScheme: scheme });
          for (const path of paths) {
            await page.goto(`${BASE_URL}${path}`);
            await page.evaluate(AXE_SOURCE);
            const violations = await page.evaluate(async () => {
              const result = await window.axe.run(document, { resultTypes: ['violations'] });
              return result.violations
                .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')} :: ${n.failureSummary?.split('\n').slice(1, 2).join(' ')}`) }));
            });
            for (const v of violations) found.push(`${scheme} ${path}: ${v.impact} ${v.id} (${v.help})\n      ${v.targets.join('\n      ')}`);
          }
        }
      } finally {
        await page.emulateMedia({ colorScheme: 'light' });
      }
      assert.deepEqual(found, [], `axe-core found:\n${found.join('\n')}`);
    }));

  it('raises no uncaught script error on any page visited', () => {
    assert.deepEqual(pageErrors, []);
  });

  it('loads nothing from anywhere but this server (no CDN, no validator badge)', () => {
    assert.deepEqual(foreignRequests, []);
  });
});
