// Goal: with a 10 kB chunk threshold, a ~100 kB table and a ~100 kB transaction of live changes
// are both delivered completely, each over several responses of bounded size.
// Method: the client hands each response's messages to subscribers as one batch; count the
// batches that carry rows and measure their payload. A chunk closes once it reaches the
// threshold, so no response should carry much more than 10 kB plus one ~1 kB row; 20 kB leaves
// room for headers and JSON framing while still catching an unchunked 100 kB response.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { isChangeMessage } from '@electric-sql/client';
import { sql, pool, uniqueTable, follow, waitRows } from '../lib/support.mjs';

after(() => pool.end());

const MAX_RESPONSE_PAYLOAD = 20_000;

function rowBatches(f, from = 0) {
  return f.batches.slice(from)
    .map((b) => b.filter(isChangeMessage))
    .filter((b) => b.length > 0)
    .map((b) => ({ rows: b.length, bytes: JSON.stringify(b).length }));
}

test('a ~100 kB table syncs over several chunks, and so does a ~100 kB transaction', async () => {
  const table = uniqueTable('chunks');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text NOT NULL)`);
  await sql(`INSERT INTO ${table} SELECT g, repeat(chr(97 + g % 26), 1000) FROM generate_series(1, 100) g`);
  const all = () => sql(`SELECT * FROM ${table}`);
  // Long-poll on purpose: over SSE the chunks of one transaction share one open response.
  const f = follow({ table }, { liveSse: false });
  try {
    await waitRows(f, all, { timeoutMs: 30_000 });
    const initial = rowBatches(f);
    assert.ok(initial.length >= 2, `initial sync came in ${initial.length} response(s), expected ≥ 2 `
      + `with 10 kB chunks: ${JSON.stringify(initial)}`);
    for (const b of initial) {
      assert.ok(b.bytes <= MAX_RESPONSE_PAYLOAD, `initial response too large: ${JSON.stringify(initial)}`);
    }

    // One ~100 kB transaction: the live log must be chunked inside it.
    const seen = f.batches.length;
    await sql(`INSERT INTO ${table} SELECT g, repeat('x', 1000) FROM generate_series(101, 200) g`);
    await waitRows(f, all, { timeoutMs: 30_000 });
    const live = rowBatches(f, seen);
    assert.ok(live.length >= 2, `a 100 kB transaction came in ${live.length} response(s), expected ≥ 2: `
      + JSON.stringify(live));
    for (const b of live) {
      assert.ok(b.bytes <= MAX_RESPONSE_PAYLOAD, `live response too large: ${JSON.stringify(live)}`);
    }

    // Many small transactions and a wide update: everything still arrives.
    for (let id = 201; id <= 240; id++) {
      await sql(`INSERT INTO ${table} VALUES ($1, repeat('y', 1000))`, [id]);
    }
    await sql(`UPDATE ${table} SET payload = repeat('z', 1200) WHERE id % 3 = 0`);
    await waitRows(f, all, { timeoutMs: 30_000 });
    assert.equal(f.shape.currentRows.length, 240);
  } finally {
    f.stop();
  }
});
