// Goal: a client that stops and later resumes from its saved handle and offset receives exactly
// the changes it missed, and no snapshot rows again.
// Method: sync, remember (handle, lastOffset), stop, make 9 changes, start a new ShapeStream with
// `handle`/`offset`, and compare the change messages it receives with the expected sequence.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, waitUpToDate, waitFor, rowKey } from '../lib/support.mjs';

after(() => pool.end());

test('resuming from a saved offset delivers exactly the missed changes', async () => {
  const table = uniqueTable('catchup');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text)`);
  await sql(`INSERT INTO ${table} SELECT g, 't' || g FROM generate_series(1, 5) g`);
  const first = follow({ table });
  let handle;
  let offset;
  try {
    await waitRows(first, () => sql(`SELECT * FROM ${table}`));
    await sql(`INSERT INTO ${table} VALUES (6, 't6')`);
    await waitRows(first, () => sql(`SELECT * FROM ${table}`));
    handle = first.stream.shapeHandle;
    offset = first.stream.lastOffset;
  } finally {
    first.stop();
  }
  assert.ok(handle, 'the first stream learned a handle');
  assert.match(offset, /^\d+_\d+$/, 'a live stream has a log offset');

  await sql(`INSERT INTO ${table} VALUES (7, 't7'), (8, 't8'), (9, 't9')`);
  await sql(`UPDATE ${table} SET title = 'T1' WHERE id = 1`);
  await sql(`UPDATE ${table} SET title = 'T7' WHERE id = 7`);
  await sql(`UPDATE ${table} SET title = 'T2' WHERE id = 2`);
  await sql(`DELETE FROM ${table} WHERE id = 3`);
  await sql(`DELETE FROM ${table} WHERE id = 8`);
  await sql(`INSERT INTO ${table} VALUES (10, 't10')`);

  const second = follow({ table }, { handle, offset });
  try {
    await waitUpToDate(second);
    const expected = [
      ['insert', 7], ['insert', 8], ['insert', 9], ['update', 1], ['update', 7], ['update', 2],
      ['delete', 3], ['delete', 8], ['insert', 10],
    ].map(([op, id]) => `${op} ${rowKey(table, id)}`);
    await waitFor(() => second.changes().length >= expected.length, {
      what: '9 missed changes', describe: () => ({ ...second.describe(), got: second.changes() }),
    });
    assert.deepStrictEqual(second.changes().map((m) => `${m.headers.operation} ${m.key}`), expected);
    assert.ok(second.requests.every((r) => !r.url.includes('offset=-1')), 'no refetch from scratch');
    assert.equal(second.stream.shapeHandle, handle, 'same shape handle');
  } finally {
    second.stop();
  }
});
