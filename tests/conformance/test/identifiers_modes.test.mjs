// Goal: shapes over awkward identifiers (schema-qualified, quoted, mixed-case table names with
// spaces; column names with commas, quotes and spaces), composite primary keys, and the
// `offset=now`, `log=changes_only` and HEAD variants of a shape request.
// Method: follow such shapes with the official client and compare with SELECTs; raw fetch for
// `offset=now` and HEAD.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sql, pool, uniqueTable, follow, waitRows, waitUpToDate, waitFor, rawGet } from '../lib/support.mjs';

after(() => pool.end());

test('schema-qualified quoted table and special column names', async () => {
  const schema = uniqueTable('conf_schema');
  const name = `Issues for ${randomBytes(3).toString('hex')}`;
  const qualified = `${schema}."${name}"`;
  await sql(`CREATE SCHEMA ${schema}`);
  await sql(`CREATE TABLE ${qualified} (id uuid PRIMARY KEY, "has,comma" text, "has""quote" text,
    "has space" text, "CamelCase" int)`);
  await sql(`INSERT INTO ${qualified} VALUES
    ('00000000-0000-0000-0000-000000000001', 'a,b', 'q"q', 's s', 1),
    ('00000000-0000-0000-0000-000000000002', NULL, NULL, NULL, NULL)`);
  const all = () => sql(`SELECT * FROM ${qualified}`);
  const f = follow({ table: qualified });
  const g = follow({ table: qualified, columns: ['id', 'has"quote', 'CamelCase'] });
  try {
    await waitRows(f, all);
    await waitRows(g, () => sql(`SELECT id, "has""quote", "CamelCase" FROM ${qualified}`));
    const key = `"${schema}"."${name}"/"00000000-0000-0000-0000-000000000001"`;
    assert.ok(f.shape.currentValue.has(key), `row key ${key} in ${[...f.shape.currentValue.keys()]}`);
    await sql(`INSERT INTO ${qualified} VALUES ('00000000-0000-0000-0000-000000000003', 'x', 'y', 'z', 3)`);
    await sql(`UPDATE ${qualified} SET "has space" = 'changed', "CamelCase" = 7
               WHERE id = '00000000-0000-0000-0000-000000000002'`);
    await waitRows(f, all);
    await waitRows(g, () => sql(`SELECT id, "has""quote", "CamelCase" FROM ${qualified}`));
  } finally {
    f.stop();
    g.stop();
  }
});

test('composite primary key: keys, updates and key changes', async () => {
  const table = uniqueTable('composite');
  await sql(`CREATE TABLE ${table} (a int, b text, v text, PRIMARY KEY (a, b))`);
  await sql(`INSERT INTO ${table} VALUES (1, 'x/y', 'one'), (1, 'z', 'two'), (2, 'x/y', 'three')`);
  const all = () => sql(`SELECT * FROM ${table}`);
  const order = (rows) => rows.map((r) => `${r.a}|${r.b}|${r.v}`).sort();
  const f = follow({ table });
  try {
    await waitUpToDate(f);
    await waitFor(async () => {
      assert.deepStrictEqual(order(f.shape.currentRows), order(await all()));
      return true;
    }, { what: 'composite-key rows', describe: () => f.describe() });
    assert.ok(f.shape.currentValue.has(`"public"."${table}"/"1"/"x//y"`),
      `keys: ${[...f.shape.currentValue.keys()]}`);
    await sql(`UPDATE ${table} SET v = 'ONE' WHERE a = 1 AND b = 'x/y'`);
    await sql(`UPDATE ${table} SET b = 'w' WHERE a = 1 AND b = 'z'`);
    await sql(`DELETE FROM ${table} WHERE a = 2`);
    await waitFor(async () => {
      assert.deepStrictEqual(order(f.shape.currentRows), order(await all()));
      return true;
    }, { what: 'composite-key rows after changes', describe: () => f.describe() });
  } finally {
    f.stop();
  }
});

test('log=changes_only skips the snapshot and then follows changes', async () => {
  const table = uniqueTable('changes_only');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text)`);
  await sql(`INSERT INTO ${table} VALUES (1, 'before'), (2, 'before')`);
  const f = follow({ table }, { log: 'changes_only' });
  try {
    await waitUpToDate(f);
    assert.deepStrictEqual(f.changes(), [], 'no snapshot rows in changes_only mode');
    await sql(`INSERT INTO ${table} VALUES (3, 'after')`);
    await sql(`UPDATE ${table} SET title = 'updated' WHERE id = 1`);
    await waitRows(f, [{ id: 3, title: 'after' }]);
    await waitFor(() => f.changes().some((m) => m.headers.operation === 'update'), {
      what: 'the update of a pre-existing row to be streamed', describe: () => f.describe(),
    });
  } finally {
    f.stop();
  }
});

test('offset=now answers up-to-date without data; HEAD mirrors GET headers', async () => {
  const table = uniqueTable('now');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text)`);
  await sql(`INSERT INTO ${table} VALUES (1, 'a')`);
  const res = await rawGet(`/v1/shape?table=${table}&offset=now`);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.length, 1, `one message: ${JSON.stringify(body)}`);
  assert.equal(body[0].headers.control, 'up-to-date');
  assert.ok(res.headers.has('electric-up-to-date'));
  assert.ok(res.headers.get('electric-handle'));
  assert.ok(res.headers.get('electric-offset'));
  assert.equal(res.headers.get('electric-has-data'), 'false');

  const get = await rawGet(`/v1/shape?table=${table}&offset=-1`);
  await get.arrayBuffer();
  const head = await rawGet(`/v1/shape?table=${table}&offset=-1`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal((await head.text()).length, 0, 'HEAD has no body');
  for (const h of ['electric-handle', 'electric-offset', 'electric-schema', 'etag', 'cache-control']) {
    assert.equal(head.headers.get(h), get.headers.get(h), `HEAD ${h}`);
  }
});
