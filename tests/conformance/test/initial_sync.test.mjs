// Goal: a fresh shape over an existing table delivers exactly the table's rows.
// Method: fill a table, follow it with the official client, compare `shape.rows` and
// `shape.currentValue` (keyed by Electric row keys) with a SELECT.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, sortById, rowKey, waitUpToDate, waitRows } from '../lib/support.mjs';

after(() => pool.end());

test('initial sync delivers every row of the table', async () => {
  const table = uniqueTable('initial');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text NOT NULL, n int8, done bool)`);
  await sql(`INSERT INTO ${table}
    SELECT g, 'row ' || g, g * 1000000000000, g % 2 = 0 FROM generate_series(1, 50) g`);
  const f = follow({ table });
  try {
    const expected = await sql(`SELECT * FROM ${table} ORDER BY id`);
    await waitRows(f, expected);
    // Shape.rows resolves once the shape is up to date, which it now is.
    const rows = sortById(await f.shape.rows);
    assert.equal(rows.length, 50);
    assert.deepStrictEqual(rows, expected);
    const value = f.shape.currentValue;
    assert.deepStrictEqual(
      [...value.keys()].sort(),
      expected.map((r) => rowKey(table, r.id)).sort(),
      'row keys are "public"."<table>"/"<id>"',
    );
    // Snapshot rows are inserts without replication headers.
    const inserts = f.changes();
    assert.equal(inserts.length, 50);
    for (const m of inserts) {
      assert.equal(m.headers.operation, 'insert');
      assert.deepStrictEqual(m.headers.relation, ['public', table]);
    }
  } finally {
    f.stop();
  }
});

test('an empty table reaches up-to-date with no rows', async () => {
  const table = uniqueTable('empty');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text)`);
  const f = follow({ table });
  try {
    await waitUpToDate(f);
    assert.deepStrictEqual(await f.shape.rows, []);
  } finally {
    f.stop();
  }
});
