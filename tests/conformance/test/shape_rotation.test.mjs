// Goal: when a shape is invalidated mid-stream (DELETE /v1/shape, or TRUNCATE of its table) the
// client gets a must-refetch and resyncs from scratch to the current table contents.
// Method: follow a table, invalidate the shape, change the table, and wait for a must-refetch
// control message, a new handle, and rows equal to a SELECT.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, waitFor, deleteShape } from '../lib/support.mjs';

after(() => pool.end());

test('deleting the shape mid-stream makes the client resync from scratch', async () => {
  const table = uniqueTable('deleted');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text)`);
  await sql(`INSERT INTO ${table} SELECT g, 't' || g FROM generate_series(1, 5) g`);
  const all = () => sql(`SELECT * FROM ${table}`);
  const f = follow({ table });
  try {
    await waitRows(f, all);
    const oldHandle = f.stream.shapeHandle;
    const res = await deleteShape(table);
    assert.equal(res.status, 202, `DELETE /v1/shape?table=${table} → ${res.status}: ${await res.text()}`);
    await sql(`INSERT INTO ${table} VALUES (6, 't6')`);
    await sql(`DELETE FROM ${table} WHERE id = 1`);
    await waitFor(() => f.controls().includes('must-refetch'), {
      what: 'a must-refetch after the shape was deleted', describe: () => f.describe(),
    });
    await waitRows(f, all);
    assert.notEqual(f.stream.shapeHandle, oldHandle, 'a new handle after the deletion');
    const refetches = f.requests.filter((r) => r.url.includes('offset=-1'));
    assert.ok(refetches.length >= 2, 'the client started again from offset -1');
  } finally {
    f.stop();
  }
});

test('deleting an unknown shape is a 404', async () => {
  const table = uniqueTable('never_shaped');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
  const res = await deleteShape(table);
  assert.equal(res.status, 404, await res.text());
});

test('TRUNCATE makes the client must-refetch and end with the post-truncate rows', async () => {
  const table = uniqueTable('truncated');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text)`);
  await sql(`INSERT INTO ${table} SELECT g, 't' || g FROM generate_series(1, 10) g`);
  const all = () => sql(`SELECT * FROM ${table}`);
  const f = follow({ table });
  try {
    await waitRows(f, all);
    await sql(`TRUNCATE ${table}`);
    await sql(`INSERT INTO ${table} VALUES (100, 'after'), (101, 'truncate')`);
    await waitFor(() => f.controls().includes('must-refetch'), {
      what: 'a must-refetch after TRUNCATE', describe: () => f.describe(),
    });
    await waitRows(f, all);
    assert.equal(f.shape.currentRows.length, 2);
  } finally {
    f.stop();
  }
});
