// Goal: the official client syncs a table 20× the server's chunk memory budget
// (AMPERE_CHUNK_CACHE_BYTES), every row equal to SELECT, while the server's memory grows by less
// than the budget plus a fixed allowance (closed chunks are served from their files); after a
// restart a new client gets the same rows from disk, and live changes still follow.
// Method: a private server (lib/restartable.mjs) with a 1 MiB budget and 256 KiB chunks;
// ~25 MB of rows; RSS from /proc before and after the sync.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, DATABASE_URL } from '../lib/support.mjs';
import { RestartableServer } from '../lib/restartable.mjs';

after(() => pool.end());

const BUDGET = 1 << 20;
const ALLOWANCE = 16 << 20;

test('a table 20x the memory budget syncs from disk with bounded server memory', async () => {
  const table = uniqueTable('budget');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, pad text)`);
  await sql(`INSERT INTO ${table} SELECT g, repeat(md5(g::text), 10) FROM generate_series(1, 70000) g`);
  const [{ bytes }] = await sql(`SELECT sum(length(pad) + 60)::bigint AS bytes FROM ${table}`);
  assert.ok(Number(bytes) >= 20 * BUDGET, `table of ${bytes} bytes is 20x the budget`);
  const server = await RestartableServer.start({
    databaseUrl: DATABASE_URL,
    driver: process.env.AMPERE_DRIVER ?? 'epoll',
    env: {
      AMPERE_CHUNK_CACHE_BYTES: String(BUDGET),
      ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD: String(256 << 10),
    },
  });
  const options = { url: `${server.url}/v1/shape` };
  const all = () => sql(`SELECT * FROM ${table}`);
  const followers = [];
  try {
    const before = server.rssBytes();
    const first = follow({ table }, options);
    followers.push(first);
    await waitRows(first, all, { timeoutMs: 120_000 });
    const growth = server.rssBytes() - before;
    assert.ok(
      growth < BUDGET + ALLOWANCE,
      `server RSS grew by ${growth} bytes syncing ${bytes} bytes (budget ${BUDGET})`,
    );
    const handle = first.stream.shapeHandle;
    first.stop();

    await server.kill9();
    await server.restart();
    const second = follow({ table }, options);
    followers.push(second);
    await waitRows(second, all, { timeoutMs: 120_000 });
    assert.equal(second.stream.shapeHandle, handle, 'the stored shape is served after restart');
    await sql(`INSERT INTO ${table} VALUES (0, 'live')`);
    await sql(`UPDATE ${table} SET pad = 'changed' WHERE id = 35000`);
    await waitRows(second, all, { timeoutMs: 30_000 });
    assert.deepStrictEqual(second.errors, []);
  } finally {
    followers.forEach((f) => f.stop());
    await server.stop();
    await sql('SELECT pg_drop_replication_slot($1)', [server.slotName]).catch(() => {});
  }
});
