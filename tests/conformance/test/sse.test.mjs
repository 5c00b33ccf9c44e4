// Goal: live mode over server-sent events (`liveSse: true`) delivers every change, in order,
// with where clauses moving rows in and out, and the requests really use SSE.
// Method: follow shapes with the official client in SSE mode while writing, and compare the
// client's rows with SELECT after each step; check that live requests carried live_sse=true.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows } from '../lib/support.mjs';

after(() => pool.end());

test('SSE live mode delivers inserts, updates, deletes and where moves', async () => {
  const table = uniqueTable('sse');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text, n int)`);
  await sql(`INSERT INTO ${table} SELECT g, 't' || g, g FROM generate_series(1, 20) g`);
  const all = () => sql(`SELECT * FROM ${table}`);
  const some = () => sql(`SELECT * FROM ${table} WHERE n < 10`);
  const fAll = follow({ table }, { liveSse: true });
  const fSome = follow({ table, where: 'n < 10' }, { liveSse: true });
  try {
    await waitRows(fAll, all);
    await waitRows(fSome, some);
    for (let i = 0; i < 5; i++) {
      await sql(`INSERT INTO ${table} VALUES (${100 + i}, 'new', ${i})`);
      await sql(`UPDATE ${table} SET n = n + 7 WHERE id = ${i + 1}`);
      await sql(`UPDATE ${table} SET title = 'x${i}' WHERE id = ${i + 2}`);
      await sql(`DELETE FROM ${table} WHERE id = ${20 - i}`);
      await waitRows(fAll, all);
      await waitRows(fSome, some);
    }
    const sseRequests = fAll.requests.filter((r) => r.url.includes('live_sse=true'));
    assert.ok(sseRequests.length > 0, 'live requests use SSE');
    assert.deepStrictEqual(fAll.errors, []);
    assert.deepStrictEqual(fSome.errors, []);
  } finally {
    fAll.stop();
    fSome.stop();
  }
});
