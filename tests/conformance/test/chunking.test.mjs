// Goal: with a 10 kB chunk threshold, a ~100 kB table and a ~100 kB burst of live changes are
// both delivered completely over several responses.
// Method: count the 200 responses the client fetched (through its fetchClient hook) for the
// initial sync and for the burst, and compare the materialized rows with a SELECT.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows } from '../lib/support.mjs';

after(() => pool.end());

const okResponses = (f) => f.requests.filter((r) => r.status === 200);

test('a ~100 kB table syncs over several chunks, and so does a ~100 kB live burst', async () => {
  const table = uniqueTable('chunks');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text NOT NULL)`);
  await sql(`INSERT INTO ${table} SELECT g, repeat(chr(97 + g % 26), 1000) FROM generate_series(1, 100) g`);
  const all = () => sql(`SELECT * FROM ${table}`);
  const f = follow({ table });
  try {
    await waitRows(f, all, { timeoutMs: 30_000 });
    const initial = okResponses(f).length;
    assert.ok(initial >= 2, `initial sync used ${initial} response(s), expected ≥ 2 with 10 kB chunks: `
      + JSON.stringify(f.requests));

    // One big transaction, then many small ones: both must arrive whole.
    await sql(`INSERT INTO ${table} SELECT g, repeat('x', 1000) FROM generate_series(101, 160) g`);
    for (let id = 161; id <= 200; id++) {
      await sql(`INSERT INTO ${table} VALUES ($1, repeat('y', 1000))`, [id]);
    }
    await sql(`UPDATE ${table} SET payload = repeat('z', 1200) WHERE id % 3 = 0`);
    await waitRows(f, all, { timeoutMs: 30_000 });
    const live = okResponses(f).length - initial;
    assert.ok(live >= 2, `live burst used ${live} response(s), expected ≥ 2: ${JSON.stringify(f.requests.slice(initial))}`);
    assert.equal(f.shape.currentRows.length, 200);
  } finally {
    f.stop();
  }
});
