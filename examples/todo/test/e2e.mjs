#!/usr/bin/env node
// End-to-end test of the example in headless Chromium (Debian's `chromium`, driven by
// puppeteer-core; nothing downloads a browser). A throwaway Postgres cluster (the conformance
// suite's), Ampere in secure mode, and the example's API server; then two browser contexts on the
// same list, page A following changes with long polls and page B over server-sent events:
//   1. both load; the shape proxy refuses requests without a token, keeps a client's own
//      table/where out, and Ampere refuses requests without the secret;
//   2. a write from page A (useShape view) appears on both pages, in both views;
//   3. a write from psql appears on both; a row of another list never does;
//   4. an optimistic "Done" in page B's TanStack DB view reaches page A;
//   5. page A reloaded shows the same state;
//   6. Ampere stopped; a write from psql and one from page B while it is down; Ampere started
//      again: both appear on both pages, and a write and a delete after the restart too; then
//      Ampere killed with SIGKILL, a write from psql, Ampere started: it appears on both;
//   7. both pages equal the table; no uncaught error in either.
// Waits are bounded ("appears within N s"), nothing asserts on timing beyond that.
//
// Environment: AMPERE_BIN (default target/release/ampere, built if missing), CHROMIUM_BIN
// (default /usr/bin/chromium), E2E_BOUND_S (seconds a change may take to appear, default 30),
// E2E_TIMEOUT_S (the whole run, default 300), E2E_HEADFUL=1, E2E_KEEP_LOGS=1.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { PgCluster } from '../../../tests/conformance/lib/postgres.mjs';
import { ensureBinary } from '../../../tests/conformance/lib/ampere.mjs';
import { freePort } from '../../../tests/conformance/lib/ports.mjs';

const HERE = join(import.meta.dirname, '..');
const BOUND_MS = Number(process.env.E2E_BOUND_S ?? 30) * 1000;
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const LIST = 'e2e';
const t0 = Date.now();

function log(msg) {
  console.log(`example e2e [${((Date.now() - t0) / 1000).toFixed(1)}s]: ${msg}`);
}

// ---- processes ----------------------------------------------------------------------------

const state = { pg: null, ampere: null, app: null, browser: null, dir: null, failed: true };

function spawnLogged(cmd, args, env, logFile) {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  child.exitInfo = null;
  child.on('exit', (code, signal) => {
    child.exitInfo = { code, signal };
  });
  return child;
}

function killGroup(child, signal) {
  if (!child || child.exitInfo) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // gone
    }
  }
}

async function waitExit(child, ms) {
  const deadline = Date.now() + ms;
  while (!child.exitInfo && Date.now() < deadline) await sleep(50);
  return !!child.exitInfo;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitHttp(url, ok, child, what, ms = 60_000) {
  const deadline = Date.now() + ms;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (child.exitInfo) throw new Error(`${what} exited: ${JSON.stringify(child.exitInfo)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      const body = await res.text();
      last = `${res.status} ${body.slice(0, 200)}`;
      if (ok(res, body)) return;
    } catch (e) {
      last = e.cause?.code ?? e.message;
    }
    await sleep(200);
  }
  throw new Error(`${what} not ready within ${ms / 1000} s (last: ${last})`);
}

function tail(file, lines = 40) {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n') : '';
}

class Ampere {
  constructor({ bin, databaseUrl, port, secret, dir }) {
    Object.assign(this, { bin, databaseUrl, port, secret, dir });
    this.url = `http://127.0.0.1:${port}`;
    this.logFile = join(dir, 'ampere.log');
    this.child = null;
  }

  async start() {
    const env = {
      ...process.env,
      DATABASE_URL: this.databaseUrl,
      ELECTRIC_PORT: String(this.port),
      ELECTRIC_SECRET: this.secret,
      ELECTRIC_STORAGE_DIR: join(this.dir, 'storage'),
      ELECTRIC_REPLICATION_STREAM_ID: `todo_e2e_${process.pid}`,
      AMPERE_LOG: process.env.AMPERE_LOG ?? 'info',
    };
    delete env.ELECTRIC_INSECURE;
    this.child = spawnLogged(this.bin, [], env, this.logFile);
    await waitHttp(`${this.url}/v1/health`, (r, b) => r.ok && b.includes('active'), this.child,
      'ampere');
  }

  async kill() {
    killGroup(this.child, 'SIGKILL');
    if (!(await waitExit(this.child, 10_000))) throw new Error('ampere did not die of SIGKILL');
  }

  async stop() {
    killGroup(this.child, 'SIGTERM');
    if (!(await waitExit(this.child, 10_000))) {
      killGroup(this.child, 'SIGKILL');
      await waitExit(this.child, 5000);
      throw new Error('ampere ignored SIGTERM for 10 s');
    }
  }
}

async function cleanup() {
  await state.browser?.close().catch(() => {});
  state.browser = null;
  killGroup(state.app, 'SIGKILL');
  killGroup(state.ampere?.child, 'SIGKILL');
  state.pg?.stop();
  state.pg = null;
  if (state.dir) {
    if (state.failed || process.env.E2E_KEEP_LOGS) {
      console.log(`example e2e: logs kept in ${state.dir}`);
    } else {
      rmSync(state.dir, { recursive: true, force: true });
    }
  }
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`example e2e: interrupted by ${signal}`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---- the pages ----------------------------------------------------------------------------

// What a page shows: each list's items as {title, done, synced, saving} (the last three only in
// the useShape view: `synced` once the row is in the shape, `saving` while a write to it waits
// for its transaction id), and the TanStack DB view's count of mutations waiting for theirs.
async function snapshot(page) {
  return page.evaluate(() => {
    const read = (id) => {
      const ul = document.querySelector(`[data-testid=${id}]`);
      if (!ul) return null;
      return [...ul.querySelectorAll('li')].map((li) => ({
        title: li.dataset.title, done: li.dataset.done, synced: li.dataset.synced,
        saving: li.dataset.saving,
      }));
    };
    const footer = document.querySelector('[data-testid=db-footer]');
    return {
      shape: read('shape-list'), db: read('db-list'),
      dbInFlight: footer ? Number(footer.dataset.inFlight) : null,
    };
  });
}

// Polls `check(snapshot)` on a page until it holds or the bound passes; fails with what the page
// showed last.
async function eventually(page, what, check, boundMs = BOUND_MS) {
  const deadline = Date.now() + boundMs;
  let last = null;
  for (;;) {
    try {
      last = await snapshot(page);
      if (last.shape && last.db && check(last)) return last;
    } catch (e) {
      last = `(page not readable: ${e.message})`;
    }
    if (Date.now() > deadline) {
      throw new Error(`${page.label}: ${what} not seen within ${boundMs / 1000} s; page shows ${JSON.stringify(last)}`);
    }
    await sleep(150);
  }
}

const titles = (items) => items.map((i) => i.title);
// In the useShape view only rows of the shape count, not a write still waiting for it.
const has = (items, title) => items.some((i) => i.title === title && i.synced !== 'false');
const isDone = (items, title) => items.find((i) => i.title === title)?.done === 'true';

async function onBoth(pages, what, check) {
  await Promise.all(pages.map((p) => eventually(p, what, check)));
  log(`${what}: seen on both pages`);
}

// Both views show `title` (open) on a page, and no write waits for its transaction id any more:
// the ids the API server returned came back in the shape's change messages.
const shownOpen = (title) => (s) => has(s.shape, title) && !isDone(s.shape, title)
  && has(s.db, title) && settled(s);
const settled = (s) => s.shape.every((i) => i.saving !== 'true') && s.dbInFlight === 0;

async function addThroughShapeView(page, title) {
  await page.locator('[data-testid=shape-input]').fill(title);
  await page.locator('[data-testid=shape-add]').click();
}

// ---- the test -----------------------------------------------------------------------------

async function main() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no browser at ${CHROMIUM}: apt-get install chromium (cargo xtask deps does), or set CHROMIUM_BIN`);
  }
  if (!existsSync(join(HERE, 'dist', 'app.js'))) {
    throw new Error('dist/app.js is missing: run `npm run build` in examples/todo first');
  }
  const bin = ensureBinary();
  state.dir = mkdtempSync(join(tmpdir(), 'ampere-todo-e2e-'));
  state.pg = await PgCluster.start();
  const databaseUrl = state.pg.createDatabase('todo_e2e');
  const psql = (sql) => {
    const out = spawnSync('psql', [databaseUrl, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql],
      { encoding: 'utf8', timeout: 30_000 });
    if (out.status !== 0) throw new Error(`psql ${sql}: ${out.stderr}`);
    return out.stdout.trim();
  };
  log(`postgres on port ${state.pg.port}`);

  const secret = `e2e-${process.pid}-${Date.now()}`;
  const ampere = new Ampere({
    bin, databaseUrl, port: await freePort(), secret, dir: state.dir,
  });
  state.ampere = ampere;
  await ampere.start();
  log(`ampere active at ${ampere.url} (secure mode)`);

  const appPort = await freePort();
  const appUrl = `http://127.0.0.1:${appPort}`;
  const appLog = join(state.dir, 'app.log');
  state.app = spawnLogged(process.execPath, [join(HERE, 'server.mjs')], {
    ...process.env, DATABASE_URL: databaseUrl, AMPERE_URL: ampere.url,
    ELECTRIC_SECRET: secret, PORT: String(appPort), SEED: '0',
  }, appLog);
  await waitHttp(`${appUrl}/api/health`, (r) => r.ok, state.app, 'the API server');
  log(`API server at ${appUrl}`);

  // The auth pattern, over plain HTTP first.
  const direct = await fetch(`${ampere.url}/v1/shape?table=todos&offset=-1`);
  assert.equal(direct.status, 401, 'Ampere answers a request without the secret with 401');
  const anonymous = await fetch(`${appUrl}/api/shape/todos?offset=-1`);
  assert.equal(anonymous.status, 401, 'the proxy refuses a request without a token');
  const { token } = await (await fetch(`${appUrl}/api/session`, {
    method: 'POST', body: JSON.stringify({ list: LIST }),
  })).json();
  psql("INSERT INTO todos (id, list, title) VALUES (gen_random_uuid(), 'other', 'not for e2e')");
  const sneaky = await fetch(`${appUrl}/api/shape/todos?offset=-1&table=todos&where=true`
    + '&params%5B1%5D=other', { headers: { authorization: `Bearer ${token}` } });
  assert.equal(sneaky.status, 200);
  const sneakyRows = (await sneaky.json()).filter((m) => m.value);
  assert.deepEqual(sneakyRows, [], "a client's own where/params are ignored by the proxy");
  log('auth: no secret → 401, no token → 401, a client-supplied where is ignored');

  state.browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: !process.env.E2E_HEADFUL,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    protocolTimeout: 120_000,
    timeout: 90_000,
  });
  const pageErrors = [];
  const pages = [];
  // Page A follows changes with long polls, page B over server-sent events (both through the
  // proxy).
  for (const [label, query] of [['page A', ''], ['page B', '&live=sse']]) {
    const context = await state.browser.createBrowserContext();
    const page = await context.newPage();
    page.label = label;
    page.setDefaultTimeout(BOUND_MS);
    page.on('pageerror', (e) => pageErrors.push(`${label}: ${e.message}`));
    // Which live mode each page's requests use, to check that both modes were exercised.
    page.liveModes = new Set();
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === '/api/shape/todos' && u.searchParams.get('live') === 'true') {
        page.liveModes.add(u.searchParams.get('live_sse') === 'true' ? 'sse' : 'long-poll');
      }
    });
    await page.goto(`${appUrl}/?list=${LIST}${query}`, { waitUntil: 'load' });
    pages.push(page);
  }
  const [a, b] = pages;
  await onBoth(pages, 'the empty list loaded', (s) => s.shape.length === 0 && s.db.length === 0);

  // 2. A write from page A.
  await addThroughShapeView(a, 'written on page A');
  await onBoth(pages, 'the write from page A', shownOpen('written on page A'));

  // 3. A write from psql (and one to another list, which must never show).
  psql(`INSERT INTO todos (id, list, title) VALUES (gen_random_uuid(), 'other', 'other list'),
        (gen_random_uuid(), '${LIST}', 'written with psql')`);
  await onBoth(pages, 'the write from psql', shownOpen('written with psql'));
  for (const p of pages) {
    const s = await snapshot(p);
    assert.ok(!has(s.shape, 'other list') && !has(s.shape, 'not for e2e'),
      `${p.label} shows rows of another list: ${JSON.stringify(s.shape)}`);
  }

  // 4. An optimistic update in page B's TanStack DB view reaches page A.
  await b.locator('button[aria-label="Finish written on page A"]').click();
  await onBoth(pages, 'page B finishing an item (TanStack DB)', (s) => isDone(s.shape, 'written on page A')
    && !has(s.db, 'written on page A') && has(s.db, 'written with psql') && settled(s));
  // And an optimistic insert from page A's TanStack DB view reaches page B.
  await a.locator('[data-testid=db-input]').fill('quick add on page A');
  await a.locator('[data-testid=db-add]').click();
  await onBoth(pages, 'an optimistic insert from page A (TanStack DB)', shownOpen('quick add on page A'));

  // 5. Reload keeps state.
  await a.reload({ waitUntil: 'load' });
  const reloaded = await eventually(a, 'the state after a reload', (s) => s.shape.length === 3
    && isDone(s.shape, 'written on page A') && has(s.shape, 'written with psql')
    && has(s.shape, 'quick add on page A') && s.db.length === 2);
  assert.deepEqual(titles(reloaded.shape),
    ['written on page A', 'written with psql', 'quick add on page A'],
    'the reloaded page keeps the order of creation');
  log('page A reloaded: same items, same states');

  // 6. Ampere restarted while the pages are open, with writes while it is down.
  await ampere.stop();
  log('ampere stopped');
  psql(`INSERT INTO todos (id, list, title) VALUES (gen_random_uuid(), '${LIST}', 'psql while down')`);
  await addThroughShapeView(b, 'page B while down');
  await sleep(1000);
  await ampere.start();
  log('ampere started again');
  await onBoth(pages, 'the writes made while ampere was down',
    (s) => ['psql while down', 'page B while down'].every((t) => shownOpen(t)(s)));
  await addThroughShapeView(a, 'page A after the restart');
  await onBoth(pages, 'a write after the restart', shownOpen('page A after the restart'));
  await b.locator('button[aria-label="Delete psql while down"]').click();
  await onBoth(pages, 'a delete from page B', (s) => !s.shape.some((i) => i.title === 'psql while down')
    && !has(s.db, 'psql while down') && settled(s));

  // And once more the hard way: Ampere killed (SIGKILL), a write, Ampere started again.
  await ampere.kill();
  log('ampere killed (SIGKILL)');
  psql(`INSERT INTO todos (id, list, title) VALUES (gen_random_uuid(), '${LIST}', 'psql after a crash')`);
  await ampere.start();
  log('ampere started again');
  await onBoth(pages, 'a write made while ampere was dead', shownOpen('psql after a crash'));

  // Everything both pages show equals the table.
  const rows = psql(`SELECT title || ':' || done FROM todos WHERE list = '${LIST}' ORDER BY created_at, id`)
    .split('\n');
  for (const p of pages) {
    const s = await snapshot(p);
    assert.deepEqual(s.shape.map((i) => `${i.title}:${i.done}`), rows,
      `${p.label}'s useShape view equals the table`);
    assert.deepEqual(titles(s.db).sort(), rows.filter((r) => r.endsWith(':false'))
      .map((r) => r.slice(0, -':false'.length)).sort(), `${p.label}'s TanStack DB view shows the open rows`);
  }
  log(`both pages equal the table (${rows.length} rows)`);
  assert.deepEqual([...a.liveModes], ['long-poll'], 'page A follows with long polls');
  assert.deepEqual([...b.liveModes], ['sse'], 'page B follows over server-sent events');
  assert.deepEqual(pageErrors, [], 'uncaught errors in the pages');
  state.failed = false;
}

// A last bound on the whole run, so that nothing (a wedged browser, say) can hang CI.
const TIMEOUT_S = Number(process.env.E2E_TIMEOUT_S ?? 300);
setTimeout(async () => {
  console.error(`example e2e: FAILED: the run exceeded ${TIMEOUT_S} s`);
  if (state.ampere) console.error(`--- ampere log tail ---\n${tail(state.ampere.logFile)}`);
  await cleanup();
  process.exit(1);
}, TIMEOUT_S * 1000).unref();

main()
  .then(async () => {
    await cleanup();
    console.log(`example e2e: passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    process.exit(0);
  })
  .catch(async (e) => {
    console.error(`example e2e: FAILED: ${e.stack ?? e}`);
    if (state.ampere) console.error(`--- ampere log tail ---\n${tail(state.ampere.logFile)}`);
    if (state.dir) console.error(`--- API server log tail ---\n${tail(join(state.dir, 'app.log'))}`);
    await cleanup();
    process.exit(1);
  });
