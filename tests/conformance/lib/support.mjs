// Shared helpers for the conformance tests: a Postgres pool whose values are parsed the way the
// official client parses shape values, unique table names, shape followers built on the official
// ShapeStream/Shape, and bounded waits that fail with a message saying what was expected.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import pg from 'pg';
import { ShapeStream, Shape, isChangeMessage, isControlMessage } from '@electric-sql/client';

export const AMPERE_URL = mustEnv('AMPERE_URL');
export const DATABASE_URL = mustEnv('DATABASE_URL');
export const SHAPE_URL = `${AMPERE_URL}/v1/shape`;
// The server itself, when AMPERE_URL is a caching proxy in front of it (run.mjs's nginx runs):
// for probes that poll one URL until it changes, which a cache rightly answers the same way.
export const ORIGIN_URL = process.env.AMPERE_ORIGIN_URL || AMPERE_URL;

function mustEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the suite through run.mjs`);
  return v;
}

// Values come back from `pg` in the form the client materializes: int8 as BigInt, json parsed,
// and every type the client leaves alone (numeric, timestamptz, date, bytea, uuid, enums…) as the
// Postgres text output under the session settings Electric forces on its connections.
const OID = {
  int8: 20, numeric: 1700, bytea: 17, date: 1082, timestamp: 1114, timestamptz: 1184,
  int8Array: 1016, interval: 1186,
};
const identity = (v) => v;
const types = {
  getTypeParser(oid, format) {
    switch (oid) {
      case OID.int8: return (v) => BigInt(v);
      case OID.int8Array: {
        const parseArray = pg.types.getTypeParser(1009, format); // text[]
        return (v) => parseArray(v).map((x) => (x === null ? null : BigInt(x)));
      }
      case OID.numeric: case OID.bytea: case OID.date: case OID.timestamp:
      case OID.timestamptz: case OID.interval:
        return identity;
      default: return pg.types.getTypeParser(oid, format);
    }
  },
};

export const pool = new pg.Pool({
  connectionString: DATABASE_URL,
  max: 12,
  types,
  options: '-c TimeZone=UTC -c DateStyle=ISO,DMY -c extra_float_digits=1 '
    + '-c bytea_output=hex -c IntervalStyle=iso_8601',
});

export async function sql(text, params = []) {
  return (await pool.query(text, params)).rows;
}

export function uniqueTable(prefix) {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

export function sortById(rows, key = 'id') {
  return [...rows].sort((a, b) => (a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : 0));
}

// Polls `check` until it returns a truthy value or the deadline passes. `describe` is called on
// timeout and its result is put in the error, so a failure says what state was observed.
export async function waitFor(check, { timeoutMs = 20_000, what = 'condition', describe } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastError = e;
      if (e.fatal) break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const state = describe ? `\nobserved: ${inspect(await describe(), { depth: 6 })}` : '';
  const err = lastError ? `\nlast error: ${lastError.stack ?? lastError}` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state}${err}`);
}

// Follows one shape through the official client. Every HTTP exchange is recorded (through the
// client's fetchClient hook) so failures can show the requests that led to them.
/** Whether clients follow shapes over SSE in this run (`AMPERE_LIVE_MODE=sse`). */
export const LIVE_SSE = process.env.AMPERE_LIVE_MODE === 'sse';

export function follow(params, options = {}) {
  const controller = new AbortController();
  const requests = [];
  const batches = [];
  const errors = [];
  let upToDateLsn = -1n;
  const recordingFetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input.url ?? String(input);
    const entry = { method: init?.method ?? 'GET', url: url.replace(AMPERE_URL, '') };
    requests.push(entry);
    try {
      const res = await fetch(input, init);
      entry.status = res.status;
      entry.offset = res.headers.get('electric-offset');
      entry.handle = res.headers.get('electric-handle');
      entry.upToDate = res.headers.has('electric-up-to-date');
      return res;
    } catch (e) {
      entry.error = e.name === 'AbortError' ? 'aborted'
        : String(e.cause?.code ?? e.cause?.errors?.[0]?.code ?? e.cause?.message ?? e.message);
      throw e;
    }
  };
  const stream = new ShapeStream({
    url: SHAPE_URL,
    params,
    signal: controller.signal,
    fetchClient: recordingFetch,
    // Fatal errors stop the stream; tests that expect an error inspect `errors`.
    onError: (e) => {
      errors.push(e);
    },
    // The run's live mode (run.mjs: CONFORMANCE_RUNS); a test may still choose its own.
    liveSse: LIVE_SSE,
    ...options,
  });
  stream.subscribe((messages) => {
    batches.push(messages);
    for (const m of messages) {
      if (isControlMessage(m) && m.headers.control === 'up-to-date'
        && typeof m.headers.global_last_seen_lsn === 'string') {
        const lsn = BigInt(m.headers.global_last_seen_lsn);
        if (lsn > upToDateLsn) upToDateLsn = lsn;
      }
    }
  }, (e) => errors.push(e));
  const shape = new Shape(stream);
  const follower = {
    stream, shape, requests, batches, errors, params,
    get upToDateLsn() { return upToDateLsn; },
    changes() { return batches.flat().filter(isChangeMessage); },
    controls() { return batches.flat().filter(isControlMessage).map((m) => m.headers.control); },
    rows(key = 'id') { return sortById(shape.currentRows, key); },
    stop() {
      controller.abort();
      stream.unsubscribeAll();
      shape.unsubscribeAll();
    },
    // State for failure messages.
    describe() {
      return {
        params,
        isUpToDate: stream.isUpToDate,
        lastOffset: stream.lastOffset,
        handle: stream.shapeHandle,
        errors: errors.map((e) => `${e.name}: ${e.message}`),
        rowCount: shape.currentRows.length,
        lastRequests: requests.slice(-8),
      };
    },
  };
  return follower;
}

function failFast(follower) {
  if (follower.errors.length > 0) {
    const e = new Error(`stream error: ${follower.errors.map((x) => x.message).join('; ')}`);
    e.fatal = true;
    throw e;
  }
}

export async function waitUpToDate(follower, timeoutMs = 20_000) {
  await waitFor(() => {
    failFast(follower);
    return follower.stream.isUpToDate;
  }, { timeoutMs, what: 'the stream to be up to date', describe: () => follower.describe() });
}

// Waits until the client's materialized rows equal `expected` (a function returning rows, or
// rows), then asserts equality so the failure shows a diff.
export async function waitRows(follower, expected, { timeoutMs = 20_000, key = 'id' } = {}) {
  const want = async () => sortById(typeof expected === 'function' ? await expected() : expected, key);
  let target = await want();
  try {
    await waitFor(async () => {
      failFast(follower);
      if (!follower.stream.isUpToDate) return false;
      try {
        assert.deepStrictEqual(follower.rows(key), target);
        return true;
      } catch {
        target = await want();
        return false;
      }
    }, { timeoutMs, what: 'client rows to equal Postgres', describe: () => follower.describe() });
  } catch (e) {
    // Show the actual difference, not just the timeout.
    assert.deepStrictEqual(follower.rows(key), target, e.message);
    throw e;
  }
}

// Electric's row key: "schema"."table"/"pk" with '/' doubled inside each part.
export function rowKey(table, ...pk) {
  const q = (s) => `"${String(s).replaceAll('/', '//')}"`;
  const rel = `"public".${q(table.replaceAll('.', '..'))}`;
  return [rel, ...pk.map(q)].join('/');
}

export async function rawGet(path, init = {}) {
  return fetch(`${AMPERE_URL}${path}`, { signal: AbortSignal.timeout(30_000), ...init });
}

export async function deleteShape(table) {
  return rawGet(`/v1/shape?table=${encodeURIComponent(table)}`, { method: 'DELETE' });
}

// LSN text (X/Y) as a BigInt, for comparing with global_last_seen_lsn.
export function lsnToBigInt(text) {
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

// A minimal non-live reader (raw HTTP, not the client) for checks on the exact wire values:
// pages from offset -1 until a response carries `electric-up-to-date`.
export async function rawSync(params, { maxResponses = 200 } = {}) {
  const responses = [];
  const messages = [];
  let offset = '-1';
  let handle = null;
  for (let i = 0; i < maxResponses; i++) {
    const q = new URLSearchParams({ ...params, offset });
    if (handle) q.set('handle', handle);
    const res = await rawGet(`/v1/shape?${q}`);
    const body = await res.text();
    responses.push({ status: res.status, offset: res.headers.get('electric-offset'), bytes: body.length });
    if (res.status !== 200) {
      throw new Error(`raw GET /v1/shape?${q} → ${res.status}: ${body.slice(0, 500)}`);
    }
    messages.push(...JSON.parse(body));
    handle = res.headers.get('electric-handle');
    offset = res.headers.get('electric-offset');
    if (res.headers.has('electric-up-to-date')) return { messages, responses, handle, offset };
  }
  throw new Error(`raw sync did not reach up-to-date in ${maxResponses} responses`);
}
