// Goal: the HTTP surface the client and CDNs rely on: cache headers, protocol headers, etags and
// 304s, health, CORS preflight, 404s and validation errors, checked with raw fetch.
// Method: exact status/header/body assertions on individual requests.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, rawGet } from '../lib/support.mjs';

after(() => pool.end());

async function shapeTable() {
  const table = uniqueTable('http');
  await sql(`CREATE TABLE ${table} (id int8 PRIMARY KEY, title text NOT NULL, n int4)`);
  await sql(`INSERT INTO ${table} VALUES (1, 'a', 1), (2, 'b', NULL)`);
  return table;
}

test('offset=-1: status, cache-control and protocol headers', async () => {
  const table = await shapeTable();
  const res = await rawGet(`/v1/shape?table=${table}&offset=-1`);
  const body = await res.text();
  assert.equal(res.status, 200, body);
  assert.equal(res.headers.get('cache-control'),
    'public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746');
  assert.match(res.headers.get('electric-handle') ?? '', /^\S+$/, 'electric-handle present');
  assert.match(res.headers.get('electric-offset') ?? '', /^(-1|\d+_(\d+|inf))$/, 'electric-offset present');
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const schema = JSON.parse(res.headers.get('electric-schema'));
  assert.deepStrictEqual(schema, {
    id: { type: 'int8', pk_index: 0, not_null: true },
    title: { type: 'text', not_null: true },
    n: { type: 'int4' },
  });
  const messages = JSON.parse(body);
  assert.ok(Array.isArray(messages), 'body is a JSON array');
  const rows = messages.filter((m) => m.key).map((m) => m.value).sort((a, b) => a.id.localeCompare(b.id));
  assert.deepStrictEqual(rows, [{ id: '1', title: 'a', n: '1' }, { id: '2', title: 'b', n: null }]);
  assert.ok(!res.headers.has('electric-up-to-date'), 'offset=-1 is never up-to-date');
});

test('etag is stable for the same URL and If-None-Match gives 304', async () => {
  const table = await shapeTable();
  const url = `/v1/shape?table=${table}&offset=-1`;
  const a = await rawGet(url);
  await a.arrayBuffer();
  const b = await rawGet(url);
  await b.arrayBuffer();
  const etag = a.headers.get('etag');
  assert.ok(etag, 'etag present');
  assert.equal(b.headers.get('etag'), etag, 'same URL, same etag');
  const c = await rawGet(url, { headers: { 'if-none-match': etag } });
  assert.equal(c.status, 304);
  assert.equal((await c.text()).length, 0, '304 has an empty body');
  assert.equal(c.headers.get('electric-handle'), a.headers.get('electric-handle'));

  // The next request (catch-up at the returned offset) has its own stable etag.
  const handle = a.headers.get('electric-handle');
  const next = `/v1/shape?table=${table}&offset=${a.headers.get('electric-offset')}&handle=${handle}`;
  const d = await rawGet(next);
  const dBody = await d.text();
  assert.equal(d.status, 200, dBody);
  assert.notEqual(d.headers.get('etag'), etag, 'a different offset has a different etag');
  assert.equal(d.headers.get('cache-control'), 'public, max-age=60, stale-while-revalidate=300');
  const e = await rawGet(next, { headers: { 'if-none-match': d.headers.get('etag') } });
  assert.equal(e.status, 304);
});

test('GET /v1/health reports active', async () => {
  const res = await rawGet('/v1/health');
  assert.equal(res.status, 200);
  assert.deepStrictEqual(await res.json(), { status: 'active' });
});

test('OPTIONS preflight is 204 with CORS headers', async () => {
  const res = await rawGet('/v1/shape?table=x', {
    method: 'OPTIONS',
    headers: { origin: 'https://example.com', 'access-control-request-method': 'GET' },
  });
  assert.equal(res.status, 204);
  assert.equal((await res.text()).length, 0);
  assert.equal(res.headers.get('access-control-allow-origin'), 'https://example.com');
  assert.match(res.headers.get('access-control-allow-methods') ?? '', /GET/);
});

test('unknown path is 404', async () => {
  const res = await rawGet('/v1/nope');
  assert.equal(res.status, 404);
  await res.arrayBuffer();
});

test('missing offset is 400 with the Electric error body', async () => {
  const table = await shapeTable();
  const res = await rawGet(`/v1/shape?table=${table}`);
  assert.equal(res.status, 400);
  assert.deepStrictEqual(await res.json(),
    { message: 'Invalid request', errors: { offset: ["can't be blank"] } });
});

test('live with offset -1 is 400; an unknown handle is 409 must-refetch', async () => {
  const table = await shapeTable();
  const live = await rawGet(`/v1/shape?table=${table}&offset=-1&live=true`);
  assert.equal(live.status, 400);
  assert.deepStrictEqual(await live.json(),
    { message: 'Invalid request', errors: { live: ["can't be true when offset == -1"] } });

  const stale = await rawGet(`/v1/shape?table=${table}&offset=0_0&handle=1234-5678`);
  assert.equal(stale.status, 409);
  assert.deepStrictEqual(await stale.json(), [{ headers: { control: 'must-refetch' } }]);
  assert.ok(stale.headers.get('electric-handle'), '409 names the current handle');
  assert.notEqual(stale.headers.get('electric-handle'), '1234-5678');
});

test('live request long-polls and then answers up-to-date with electric-cursor', async () => {
  const table = await shapeTable();
  const first = await rawGet(`/v1/shape?table=${table}&offset=-1`);
  await first.arrayBuffer();
  const handle = first.headers.get('electric-handle');
  // Catch up to the end of the log.
  let offset = first.headers.get('electric-offset');
  for (let i = 0; i < 20; i++) {
    const r = await rawGet(`/v1/shape?table=${table}&offset=${offset}&handle=${handle}`);
    await r.arrayBuffer();
    offset = r.headers.get('electric-offset');
    if (r.headers.has('electric-up-to-date')) break;
  }
  const pending = rawGet(`/v1/shape?table=${table}&offset=${offset}&handle=${handle}&live=true`);
  await sql(`INSERT INTO ${table} VALUES (3, 'c', 3)`);
  let res = await pending;
  let body = await res.json();
  // The insert may race the long-poll's timeout; poll on (bounded) until the change shows up.
  for (let i = 0; i < 5 && res.status === 200 && !body.some((m) => m.key); i++) {
    const cursor = res.headers.get('electric-cursor');
    offset = res.headers.get('electric-offset');
    res = await rawGet(`/v1/shape?table=${table}&offset=${offset}&handle=${handle}&live=true&cursor=${cursor}`);
    body = await res.json();
  }
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.ok(res.headers.get('electric-cursor'), 'live responses carry electric-cursor');
  assert.equal(res.headers.get('cache-control'), 'public, max-age=5, stale-while-revalidate=5');
  assert.ok(res.headers.has('electric-up-to-date'));
  assert.ok(!res.headers.has('electric-schema'), 'live responses carry no electric-schema');
  const changes = body.filter((m) => m.key);
  assert.deepStrictEqual(changes.map((m) => m.value), [{ id: '3', title: 'c', n: '3' }]);
  assert.deepStrictEqual(body.at(-1).headers.control, 'up-to-date');
});
