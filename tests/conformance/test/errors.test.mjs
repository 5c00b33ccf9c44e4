// Goal: invalid shape definitions surface through the client as a 400 FetchError carrying
// Electric's exact error body, and the stream stops.
// Method: follow shapes with a bad where clause / unknown table and inspect onError's error.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { FetchError } from '@electric-sql/client';
import { sql, pool, uniqueTable, follow, waitFor } from '../lib/support.mjs';

after(() => pool.end());

async function firstError(params) {
  const f = follow(params);
  try {
    await waitFor(() => f.errors.length > 0, { what: 'an error', describe: () => f.describe() });
    return f.errors[0];
  } finally {
    f.stop();
  }
}

test('invalid where → 400 with the parser position', async () => {
  const table = uniqueTable('badwhere');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
  const e = await firstError({ table, where: '1 x 1' });
  assert.ok(e instanceof FetchError, `expected FetchError, got ${e}`);
  assert.equal(e.status, 400);
  assert.deepStrictEqual(e.json, {
    message: 'Invalid request',
    errors: { where: ['At location 17: syntax error at or near "x"'] },
  });
});

test('unknown table → 400 naming the table', async () => {
  const e = await firstError({ table: 'no_such_table_xyz' });
  assert.ok(e instanceof FetchError, `expected FetchError, got ${e}`);
  assert.equal(e.status, 400);
  assert.deepStrictEqual(e.json, {
    message: 'Invalid request',
    errors: { table: ['Table "public"."no_such_table_xyz" does not exist. If the table name '
      + 'contains capitals or special characters you must quote it.'] },
  });
});
