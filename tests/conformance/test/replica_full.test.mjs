// Goal: `replica: 'full'` makes updates carry the whole new row plus the old values of the
// changed columns, and deletes carry the whole old row.
// Method: follow a table with replica full, update and delete, inspect the messages.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, rowKey } from '../lib/support.mjs';

after(() => pool.end());

test('replica full: updates carry full rows and old values', async () => {
  const table = uniqueTable('replica_full');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text, n int, note text)`);
  await sql(`INSERT INTO ${table} VALUES (1, 'a', 1, 'x'), (2, 'b', 2, 'y')`);
  const all = () => sql(`SELECT * FROM ${table}`);
  const f = follow({ table, replica: 'full' });
  try {
    await waitRows(f, all);
    await sql(`UPDATE ${table} SET title = 'A', n = 10 WHERE id = 1`);
    await sql(`DELETE FROM ${table} WHERE id = 2`);
    await waitRows(f, all);
    const update = f.changes().find((m) => m.headers.operation === 'update');
    assert.equal(update.key, rowKey(table, 1));
    assert.deepStrictEqual(update.value, { id: 1, title: 'A', n: 10, note: 'x' });
    assert.deepStrictEqual(update.old_value, { title: 'a', n: 1 });
    const del = f.changes().find((m) => m.headers.operation === 'delete');
    assert.equal(del.key, rowKey(table, 2));
    assert.deepStrictEqual(del.value, { id: 2, title: 'b', n: 2, note: 'y' });
  } finally {
    f.stop();
  }
});
