// Goal: changes committed after the initial sync reach the client through live mode.
// Method: sync a small table, then insert, update (including a primary-key change and a
// multi-statement transaction) and delete, waiting after each step until the client's rows
// equal a SELECT, and check the shape of the update messages (replica=default sends only the
// primary key and the changed columns).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, rowKey } from '../lib/support.mjs';

after(() => pool.end());

test('inserts, updates and deletes after the initial sync reach the client', async () => {
  const table = uniqueTable('live');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text, n int)`);
  await sql(`INSERT INTO ${table} VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)`);
  const all = () => sql(`SELECT * FROM ${table}`);
  const f = follow({ table });
  try {
    await waitRows(f, all);

    await sql(`INSERT INTO ${table} VALUES (4, 'four', 4)`);
    await waitRows(f, all);

    await sql(`UPDATE ${table} SET title = 'ONE' WHERE id = 1`);
    await waitRows(f, all);
    const update = f.changes().find((m) => m.headers.operation === 'update');
    assert.ok(update, 'an update message was received');
    assert.equal(update.key, rowKey(table, 1));
    assert.deepStrictEqual(update.value, { id: 1, title: 'ONE' },
      'replica=default update carries the primary key and the changed columns only');
    assert.equal(typeof update.headers.lsn, 'string', 'replicated changes carry headers.lsn');
    assert.ok(Array.isArray(update.headers.txids), 'replicated changes carry headers.txids');

    await sql(`DELETE FROM ${table} WHERE id = 3`);
    await waitRows(f, all);
    const del = f.changes().find((m) => m.headers.operation === 'delete');
    assert.equal(del.key, rowKey(table, 3));

    // Primary-key change: the old key disappears, the new one holds the whole row.
    await sql(`UPDATE ${table} SET id = 20 WHERE id = 2`);
    await waitRows(f, all);
    assert.ok(!f.shape.currentValue.has(rowKey(table, 2)));
    assert.deepStrictEqual(f.shape.currentValue.get(rowKey(table, 20)), { id: 20, title: 'two', n: 2 });

    // Several statements in one transaction arrive together.
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${table} VALUES (5, 'five', 5), (6, 'six', 6)`);
      await client.query(`UPDATE ${table} SET n = n + 100`);
      await client.query(`DELETE FROM ${table} WHERE id = 4`);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await waitRows(f, all);
  } finally {
    f.stop();
  }
});

test('an update that changes nothing visible and a no-op transaction do not disturb the shape', async () => {
  const table = uniqueTable('noop');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text)`);
  await sql(`INSERT INTO ${table} VALUES (1, 'a')`);
  const all = () => sql(`SELECT * FROM ${table}`);
  const f = follow({ table });
  try {
    await waitRows(f, all);
    await sql(`UPDATE ${table} SET title = title`);
    await sql(`UPDATE ${table} SET title = 'b' WHERE id = 1`);
    await waitRows(f, all);
  } finally {
    f.stop();
  }
});
