// Goal: many clients on the same shape see identical data and identical change streams.
// Method: 20 followers of one shape reach up-to-date, then a series of writes happens; every
// client must end with rows equal to a SELECT, one shared handle, and the same sequence of
// change messages (operation, key, value).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, waitUpToDate } from '../lib/support.mjs';

after(() => pool.end());

const CLIENTS = 20;

test(`${CLIENTS} parallel clients on one shape see identical data`, async () => {
  const table = uniqueTable('parallel');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text, n int)`);
  await sql(`INSERT INTO ${table} SELECT g, 't' || g, g FROM generate_series(1, 30) g`);
  const all = () => sql(`SELECT * FROM ${table} WHERE n < 1000`);
  const followers = Array.from({ length: CLIENTS }, () => follow({ table, where: 'n < 1000' }));
  try {
    await Promise.all(followers.map((f) => waitUpToDate(f, 30_000)));
    for (let i = 0; i < 10; i++) {
      await sql(`INSERT INTO ${table} VALUES ($1, 'new', $1)`, [100 + i]);
      await sql(`UPDATE ${table} SET n = n + 1000 WHERE id = $1`, [i + 1]);
      await sql(`UPDATE ${table} SET title = 'u' || $1 WHERE id = $2`, [i, 20 + i]);
    }
    await Promise.all(followers.map((f) => waitRows(f, all, { timeoutMs: 30_000 })));
    const handles = new Set(followers.map((f) => f.stream.shapeHandle));
    assert.equal(handles.size, 1, `one handle for one definition, got ${[...handles]}`);
    const signature = (f) => f.changes().map((m) => JSON.stringify([m.headers.operation, m.key, m.value]));
    const reference = signature(followers[0]);
    for (const f of followers.slice(1)) assert.deepStrictEqual(signature(f), reference);
  } finally {
    followers.forEach((f) => f.stop());
  }
});
