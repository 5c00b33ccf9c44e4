// Goal: the `columns` parameter projects rows onto the selected columns, and a selection without
// the primary key is rejected with Electric's 400.
// Method: follow a projected shape through inserts and updates (including an update to an
// unselected column, which must not add that column), then request a projection without the
// primary key and inspect the error the client surfaces.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { FetchError } from '@electric-sql/client';
import { sql, pool, uniqueTable, follow, waitRows, waitFor } from '../lib/support.mjs';

after(() => pool.end());

test('only the selected columns are present', async () => {
  const table = uniqueTable('columns');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text, secret text, n int)`);
  await sql(`INSERT INTO ${table} VALUES (1, 'a', 's1', 1), (2, 'b', 's2', 2)`);
  const expected = () => sql(`SELECT id, title, n FROM ${table}`);
  const f = follow({ table, columns: ['id', 'title', 'n'] });
  try {
    await waitRows(f, expected);
    await sql(`INSERT INTO ${table} VALUES (3, 'c', 's3', 3)`);
    await sql(`UPDATE ${table} SET secret = 'changed' WHERE id = 1`);
    await sql(`UPDATE ${table} SET title = 'B' WHERE id = 2`);
    await waitRows(f, expected);
    for (const m of f.changes()) {
      assert.ok(!('secret' in m.value), `unselected column leaked in ${JSON.stringify(m)}`);
    }
  } finally {
    f.stop();
  }
});

test('a column list without the primary key is a 400', async () => {
  const table = uniqueTable('columns_nopk');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text)`);
  const f = follow({ table, columns: ['title'] });
  try {
    await waitFor(() => f.errors.length > 0, {
      what: 'the client to surface a 400', describe: () => f.describe(),
    });
    const e = f.errors[0];
    assert.ok(e instanceof FetchError, `expected FetchError, got ${e}`);
    assert.equal(e.status, 400);
    assert.deepStrictEqual(e.json, {
      message: 'Invalid request',
      errors: { columns: ['The list of columns must include all primary key columns, missing: id'] },
    });
  } finally {
    f.stop();
  }
});
