// A newcomer's path through the webnet UI, in a real browser, on a fresh installation:
// sign in with the password `webnet serve` printed on its first start, create the first
// customer from the dashboard, a credential, a region and a device, run `show version` on
// it from the device list and watch the job succeed; then create an operator who signs in
// elsewhere, may run jobs but not edit regions, and makes an API token that the admin
// revokes; finally the audit trail names who did each of these. Everything goes through
// the pages, as a stranger would click; only the API token is tried with fetch.
//
// Run with `node --test tests/browser/newcomer.test.mjs` against `webnet serve` on an
// EMPTY database (no user created beforehand). The Rust test that starts the server sets:
//   WEBNET_URL             e.g. http://127.0.0.1:PORT
//   WEBNET_FIRST_PASSWORD  the `admin` password the server printed on its first run
//   WEBNET_SSH_PORT        the port of a stand-in SSH device on 127.0.0.1: user netops,
//                          password s3cret; `show version` answers
//                          "Cisco IOS Software, Version 15.2 (newcomer)"
// README screenshots (1280×800, viewport only) go to docs/img/ and, with the failure
// screenshots, to tests/browser/artifacts/.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const env = Object.fromEntries(
  ['WEBNET_URL', 'WEBNET_FIRST_PASSWORD', 'WEBNET_SSH_PORT'].map((name) => [name, process.env[name] ?? '']),
);
const unset = Object.keys(env).filter((name) => env[name] === '');
if (unset.length) {
  throw new Error(
    `newcomer.test.mjs needs ${unset.join(', ')}: the URL of a freshly started \`webnet serve\`, ` +
      'the admin password it printed on its first run, and the port of a stand-in SSH device.',
  );
}
const BASE = env.WEBNET_URL.replace(/\/+$/, '');
const FIRST_PASSWORD = env.WEBNET_FIRST_PASSWORD;
const SSH_PORT = Number(env.WEBNET_SSH_PORT);
assert.ok(Number.isInteger(SSH_PORT) && SSH_PORT > 0 && SSH_PORT < 65536, `WEBNET_SSH_PORT is not a port: ${env.WEBNET_SSH_PORT}`);

const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
mkdirSync(ARTIFACTS, { recursive: true });
readdirSync(ARTIFACTS)
  .filter((f) => f.startsWith('newcomer-failure-'))
  .forEach((f) => rmSync(ARTIFACTS + f));

const VIEWPORT = { width: 1280, height: 800 };
const STEP_MS = 30_000;
const JOB_MS = 20_000;
const REVOKE_MS = 3_000; // the contract allows one second; leave room on a slow machine
const HUMAN_GAP_MS = 250;

// What the newcomer types.
const CUSTOMER = 'Acme Networks';
const CREDENTIAL = { name: 'lab-netops', username: 'netops', password: 's3cret' };
const REGION = { name: 'Lab', identifier: 'lab' };
const DEVICE = 'lab-rtr-1';
const DEVICE_ANSWER = 'Cisco IOS Software, Version 15.2 (newcomer)';
const OPERATOR = { username: 'oscar', password: 'oscar-runs-jobs-42' };
const ADMIN_TOKEN = 'nightly-backup';
const OPERATOR_TOKEN = 'ci';

// ---------------------------------------------------------------------------
// Waiting on what the page shows (playwright-core has no `expect`)

const squash = (s) => String(s ?? '').replace(/\s+/g, ' ').trim();

/** Retries `probe` until it returns something truthy (and returns that), or fails saying what it saw. */
async function until(what, probe, timeout = 5_000) {
  const giveUpAt = Date.now() + timeout;
  let seen = '(nothing yet)';
  while (Date.now() < giveUpAt) {
    try {
      const value = await probe();
      if (value) return value;
      seen = JSON.stringify(value);
    } catch (err) {
      seen = `error: ${err.message.split('\n')[0]}`;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new assert.AssertionError({ message: `waited ${timeout} ms for ${what}; last saw ${seen}` });
}

/** The rendered text of the first match of `locator` (table cells apart), once it is visible. */
async function visibleText(locator, timeout = 5_000) {
  await locator.first().waitFor({ state: 'visible', timeout });
  return squash(await locator.first().innerText());
}

/** Waits until `locator` shows `wanted` (a substring, or a RegExp). */
async function shows(locator, wanted, timeout = 5_000) {
  const ok = (t) => (wanted instanceof RegExp ? wanted.test(t) : t.includes(wanted));
  return until(`${locator} to show ${wanted}`, async () => {
    const t = await visibleText(locator, timeout);
    if (!ok(t)) throw new Error(`it reads ${JSON.stringify(t.slice(0, 300))}`);
    return t;
  }, timeout);
}

const pathOf = (page) => new URL(page.url()).pathname;

/** Waits until the page is at a path matching `re`; returns the match. */
const arrivesAt = (page, re) => until(`${page.url()} to become ${re}`, () => re.exec(pathOf(page)));

/** Clicks a control that loads a new document; returns the document's response. */
async function follow(page, control) {
  const [response] = await Promise.all([page.waitForNavigation({ timeout: 10_000 }), control.click()]);
  return response;
}

/** The flash message an action leaves, which must be a success. */
const successFlash = (page, wanted) => shows(page.locator('#flash .flash-success'), wanted);

/** Signs `username` in on `page` and waits for the dashboard to greet them. */
async function signIn(page, username, password) {
  await page.goto(`${BASE}/login`);
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await follow(page, page.getByRole('button', { name: 'Sign in' }));
  await arrivesAt(page, /^\/$/);
  assert.equal(await visibleText(page.locator('[data-testid=current-user]')), username);
}

/** On a form for a customer-owned object, picks the customer by name. */
async function chooseCustomer(page) {
  const select = page.locator('select#customer');
  await select.selectOption({ label: CUSTOMER });
  assert.equal(squash(await select.evaluate((s) => s.selectedOptions[0].textContent)), CUSTOMER);
}

/** From the device list, runs `show version` on the device: `{ job }` (its id) once its page
 * is shown, or `{ refused }` (the message) when the job form answers with an error instead.
 * `onSubmit` is called just before "Run job" is clicked. */
async function runShowVersion(page, onSubmit = () => {}) {
  await page.goto(`${BASE}/devices`);
  await page.getByLabel(`Select ${DEVICE}`).check();
  await follow(page, page.locator('[data-testid=run-job]'));
  await arrivesAt(page, /^\/jobs\/new$/);
  await shows(page.locator('h1'), 'Run a job on 1 device');
  assert.equal(await visibleText(page.locator('[data-testid=job-targets]')), DEVICE);
  await page.getByRole('radio', { name: 'Run commands' }).check();
  await page.locator('#commands').fill('show version');
  onSubmit();
  await follow(page, page.getByRole('button', { name: 'Run job' }));
  const refusal = page.locator('main .flash-error');
  const landed = await until('the job page, or an error on the job form', async () =>
    /^\/jobs\/\d+$/.test(pathOf(page)) ? 'job' : (await refusal.count()) > 0 && 'refused',
  );
  if (landed === 'refused') return { refused: await visibleText(refusal) };
  const job = Number(pathOf(page).split('/').pop());
  await successFlash(page, `Job ${job} started on 1 device.`);
  return { job };
}

/** Saves a picture for the README's tour to the artifacts (scripts/update-screenshots.sh
 * copies them to docs/img/, so that a test run never changes the checkout). */
async function readmeShot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${ARTIFACTS}${name}.png` });
}

/** GET /api/v1/me/ with a bearer token: the status and the parsed body (if JSON). */
async function me(token) {
  const res = await fetch(`${BASE}/api/v1/me/`, { headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' } });
  const body = await res.text();
  let json = null;
  try {
    json = JSON.parse(body);
  } catch {
    // an error page, say
  }
  return { status: res.status, json, body };
}

// ---------------------------------------------------------------------------
// Two people, two browser contexts

let browser;
const tabs = {}; // admin, operator: one page each
const scriptErrors = [];
const ids = {};
let jobMs;

async function openTab(who) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  page.on('pageerror', (err) => scriptErrors.push(`${who} on ${page.url()}: ${err.message}`));
  tabs[who] = page;
  return page;
}

/** A test step: on failure, every open tab says where it was and leaves a screenshot,
 * and the later steps, which build on this one, are skipped. */
let failedStep;
function step(title, fn, timeout = STEP_MS) {
  it(title, { timeout }, async (t) => {
    if (failedStep) return t.skip(`"${failedStep}" failed`);
    try {
      await fn();
    } catch (err) {
      failedStep = title;
      for (const [who, page] of Object.entries(tabs)) {
        if (page.isClosed()) continue;
        const file = `${ARTIFACTS}newcomer-failure-${who}-${title.replace(/\W+/g, '-').slice(0, 40)}.png`;
        const main = await page.locator('main').innerHTML().catch((e) => `(unreadable: ${e.message})`);
        await page.screenshot({ path: file, fullPage: true }).catch(() => {});
        console.error(`--- ${who} was at ${page.url()} (screenshot ${file})\n${main.slice(0, 2_500)}`);
      }
      throw err;
    }
  });
}

describe("a newcomer's path through the UI", () => {
  before(async () => {
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
    await openTab('admin');
  });
  after(() => browser?.close());

  step('1. signs in with the first-run password and creates the first customer from the dashboard', async () => {
    const page = tabs.admin;
    await signIn(page, 'admin', FIRST_PASSWORD);
    const card = page.locator('[data-testid=first-run]');
    await shows(card, 'Welcome to webnet');
    await card.getByLabel('Customer name').fill(CUSTOMER);
    await follow(page, card.getByRole('button', { name: 'Create customer' }));
    ids.customer = Number((await arrivesAt(page, /^\/customers\/(\d+)$/))[1]);
    await successFlash(page, `Customer ${CUSTOMER} created`);
    await shows(page.locator('h1'), CUSTOMER);
    await shows(page.locator('[data-testid=next-steps]'), 'Add a credential');

    await page.goto(`${BASE}/`);
    await page.locator('h1', { hasText: 'Dashboard' }).waitFor();
    assert.equal(await page.locator('[data-testid=first-run]').count(), 0, 'the first-run card stays after the first customer exists');
  });

  step('2. adds a credential, a region and a device for that customer', async () => {
    const page = tabs.admin;

    await page.goto(`${BASE}/credentials/new`);
    await chooseCustomer(page);
    await page.locator('#name').fill(CREDENTIAL.name);
    await page.locator('#username').fill(CREDENTIAL.username);
    await page.locator('#password').fill(CREDENTIAL.password);
    await follow(page, page.getByRole('button', { name: 'Create credential' }));
    await arrivesAt(page, /^\/credentials$/);
    await successFlash(page, `Credential ${CREDENTIAL.name} created.`);
    await shows(page.locator('main tbody tr', { hasText: CREDENTIAL.name }), `${CREDENTIAL.name} ${CREDENTIAL.username} set`);

    await page.goto(`${BASE}/regions/new`);
    await chooseCustomer(page);
    await page.locator('#name').fill(REGION.name);
    await page.locator('#identifier').fill(REGION.identifier);
    await follow(page, page.getByRole('button', { name: 'Create region' }));
    ids.region = Number((await arrivesAt(page, /^\/regions\/(\d+)$/))[1]);
    await successFlash(page, `Region ${REGION.name} created. Its queue is region_${REGION.identifier}.`);
    await shows(page.locator('h1'), REGION.name);

    await page.goto(`${BASE}/devices/new`);
    await chooseCustomer(page);
    await page.locator('#hostname').fill(DEVICE);
    await page.locator('#mgmt_ip').fill('127.0.0.1');
    await page.locator('#port').fill(String(SSH_PORT));
    await page.locator('#vendor').fill('cisco');
    await page.locator('#platform').fill('ios');
    await page.locator('#region').selectOption({ label: `${REGION.name} (${REGION.identifier})` });
    await page.locator('#credential').selectOption({ label: `${CREDENTIAL.name} (${CREDENTIAL.username})` });
    assert.equal(await page.getByLabel('Enabled (targeted by jobs)').isChecked(), true, 'a new device should be enabled by default');
    await follow(page, page.getByRole('button', { name: 'Create device' }));
    await arrivesAt(page, /^\/devices\/\d+$/);
    await successFlash(page, `Device ${DEVICE} created.`);
    await shows(page.locator('.page-head p'), `127.0.0.1:${SSH_PORT}`);
    await shows(page.locator('.facts'), `Region ${REGION.name}`);
    await shows(page.locator('.facts'), `Credential ${CREDENTIAL.name}`);

    await page.goto(`${BASE}/devices`);
    const deviceRow = page.locator('[data-testid=devices-table] tbody tr', { hasText: DEVICE });
    await shows(deviceRow, `${DEVICE} 127.0.0.1`);
    await shows(deviceRow, REGION.name);
  });

  step(
    '3. runs `show version` on the device from the device list and watches the job succeed',
    async () => {
      const page = tabs.admin;
      let clicked;
      const mark = () => {
        clicked = Date.now();
      };
      // The first-run admin belongs to no customer: the job takes the device's.
      const run = await runShowVersion(page, mark);
      assert.equal(run.refused, undefined, 'the job form refused the job');
      ids.job = run.job;
      // The page updates itself: from here on it must not be reloaded.
      await page.evaluate(() => {
        window.__sameDocument = true;
      });
      await shows(page.locator('[data-testid=job-status]'), /^success$/, JOB_MS);
      jobMs = Date.now() - clicked;
      await shows(page.locator('[data-testid=job-log]'), DEVICE_ANSWER, JOB_MS);
      await shows(page.locator('[data-testid=device-results] tbody tr', { hasText: DEVICE }), 'success', JOB_MS);
      assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the job page reloaded instead of updating live');
    },
    60_000,
  );

  step('4a. creates an operator of the customer', async () => {
    const page = tabs.admin;
    await page.goto(`${BASE}/users/new`);
    await page.locator('#username').fill(OPERATOR.username);
    await page.locator('#role').selectOption('operator');
    await page.locator('#customers').getByLabel(CUSTOMER).check();
    await page.locator('#password').fill(OPERATOR.password);
    await page.locator('#password_confirm').fill(OPERATOR.password);
    await follow(page, page.getByRole('button', { name: 'Create user' }));
    ids.operator = Number((await arrivesAt(page, /^\/users\/(\d+)$/))[1]);
    await successFlash(page, `User ${OPERATOR.username} created`);
    assert.equal(await page.locator('#role').inputValue(), 'operator');
    assert.equal(await page.locator('#customers').getByLabel(CUSTOMER).isChecked(), true);
  });

  step('4b. the operator signs in elsewhere and runs a job', async () => {
    const page = await openTab('operator');
    await signIn(page, OPERATOR.username, OPERATOR.password);
    await shows(page.locator('.who-meta'), `operator · ${CUSTOMER}`);

    await page.goto(`${BASE}/jobs`);
    await shows(page.locator(`[data-job-status="${ids.job}"]`), 'success');
    await shows(page.getByRole('button', { name: 'Run a job from the device list' }), 'Run a job');

    const run = await runShowVersion(page);
    assert.equal(run.refused, undefined, 'the job form refused the operator\'s job');
    ids.operatorJob = run.job;
    assert.equal(await page.locator('a[href="/devices/new"]').count(), 0, 'an operator is offered to add devices');
    assert.notEqual(ids.operatorJob, ids.job);
    await shows(page.locator('[data-testid=job-status]'), /^success$/, JOB_MS);
    await shows(page.locator('.page-head p'), `by ${OPERATOR.username}`);
  }, 60_000);

  step('4c. the operator sees the region but may not edit it', async () => {
    const page = tabs.operator;
    await page.goto(`${BASE}/regions/${ids.region}`);
    await shows(page.locator('h1'), REGION.name);
    assert.equal(await page.locator('main a', { hasText: /^Edit$/ }).count(), 0, 'the region page offers an operator an Edit link');
    assert.equal(await page.locator(`a[href="/regions/${ids.region}/edit"]`).count(), 0);
    const typed = await page.goto(`${BASE}/regions/${ids.region}/edit`);
    assert.equal(typed.status(), 403, `GET /regions/${ids.region}/edit as an operator answered ${typed.status()}`);
    assert.equal(await page.locator('#name').count(), 0, 'the 403 page still shows the region form');
  });

  step('5. the operator makes an API token; the admin revokes it and it stops working', async () => {
    const op = tabs.operator;
    await op.goto(`${BASE}/tokens`);
    await shows(op.locator('[data-testid=tokens-empty]'), 'no token');
    await op.locator('#name').fill(OPERATOR_TOKEN);
    await follow(op, op.getByRole('button', { name: 'Create token' }));
    await arrivesAt(op, /^\/tokens$/);
    await shows(op.locator('[data-testid=new-token]'), `Token ${OPERATOR_TOKEN} created`);
    const token = await op.locator('[data-new-token]').getAttribute('data-new-token');
    assert.match(token ?? '', /^wn_\S{16,}$/, `the new token reads ${JSON.stringify(token)}`);

    const before = await me(token);
    assert.equal(before.status, 200, `GET /api/v1/me/ with the new token: ${before.status} ${before.body.slice(0, 300)}`);
    assert.equal(before.json?.username, OPERATOR.username);
    assert.equal(before.json?.role, 'operator');

    // The admin makes one of their own, so the tokens page has something of theirs to show.
    const page = tabs.admin;
    await page.goto(`${BASE}/tokens`);
    await page.locator('#name').fill(ADMIN_TOKEN);
    await follow(page, page.getByRole('button', { name: 'Create token' }));
    await shows(page.locator('[data-testid=new-token]'), `Token ${ADMIN_TOKEN} created`);
    await page.goto(`${BASE}/tokens`);
    assert.equal(await page.locator('[data-new-token]').count(), 0, 'a token is shown again after a reload');
    const managed = page.locator('[data-testid=managed-tokens] tbody tr', { hasText: OPERATOR.username });
    await shows(managed, `${OPERATOR_TOKEN} ${OPERATOR.username}`);
    await shows(page.locator('main table').first().locator('tbody tr'), `${ADMIN_TOKEN} admin`);
    await readmeShot(page, 'tokens');

    await page.waitForTimeout(HUMAN_GAP_MS);
    const asked = [];
    page.once('dialog', (dialog) => {
      asked.push(dialog.message());
      dialog.accept();
    });
    await follow(page, managed.getByRole('button', { name: 'Revoke' }));
    assert.deepEqual(asked, [`Revoke token ${OPERATOR_TOKEN}? Scripts using it stop working at once.`]);
    await successFlash(page, `Token ${OPERATOR_TOKEN} of ${OPERATOR.username} revoked`);
    assert.equal(await page.locator('[data-testid=managed-tokens] tbody tr', { hasText: OPERATOR.username }).count(), 0);

    const revokedAt = Date.now();
    const refused = await until(`the revoked token to be refused within ${REVOKE_MS} ms`, async () => {
      const r = await me(token);
      return r.status === 401 && r;
    }, REVOKE_MS);
    assert.equal(refused.status, 401);
    console.log(`revoked token refused after ${Date.now() - revokedAt} ms`);
  });

  step('6. the audit trail names who created, ran and revoked what', async () => {
    const page = tabs.admin;
    await page.goto(`${BASE}/audit`);
    const table = page.locator('[data-testid=audit-table]');
    await table.waitFor();
    const rows = await table.locator('tbody tr').evaluateAll((trs) =>
      trs.map((tr) => ({
        action: tr.dataset.action,
        type: tr.dataset.objectType,
        // The actor's name is the cell's first text; a token name or address may follow.
        actor: tr.querySelector('[data-testid=actor]')?.firstChild?.textContent.trim(),
        object: tr.cells[3]?.textContent.replace(/\s+/g, ' ').trim(),
      })),
    );
    const expected = [
      ['create', 'customer', 'admin', CUSTOMER],
      ['create', 'credential', 'admin', CREDENTIAL.name],
      ['create', 'region', 'admin', REGION.name],
      ['create', 'device', 'admin', DEVICE],
      ['submit', 'job', 'admin', `job #${ids.job} (Run commands)`],
      ['submit', 'job', OPERATOR.username, `job #${ids.operatorJob} (Run commands)`],
      ['create', 'user', 'admin', OPERATOR.username],
      ['create', 'token', OPERATOR.username, OPERATOR_TOKEN],
      ['create', 'token', 'admin', ADMIN_TOKEN],
      ['delete', 'token', 'admin', OPERATOR_TOKEN],
    ];
    const missed = expected.filter(
      ([action, type, actor, name]) =>
        !rows.some((r) => r.action === action && r.type === type && r.actor === actor && r.object.includes(name)),
    );
    assert.deepEqual(missed, [], `audit rows missing; the page lists:\n${rows.map((r) => JSON.stringify(r)).join('\n')}`);
    // Each expected row can also be found the way a reader filters the page.
    for (const [action, type] of expected) {
      assert.ok(await page.locator(`tr[data-action=${action}][data-object-type=${type}]`).count() > 0);
    }
    await readmeShot(page, 'audit');
  });

  step('7. the user list shows both people', async () => {
    const page = tabs.admin;
    await page.goto(`${BASE}/users`);
    await shows(page.locator('main tbody tr', { hasText: 'admin' }), 'superuser');
    await shows(page.locator('main tbody tr', { hasText: OPERATOR.username }), `${OPERATOR.username} operator ${CUSTOMER} active`);
    await readmeShot(page, 'users');
  });

  it('raises no uncaught script error on any page', () => {
    assert.deepEqual(scriptErrors, []);
    assert.ok(Number.isFinite(jobMs), 'the job step did not finish');
    console.log(`newcomer path: job succeeded in ${jobMs} ms`);
  });
});
