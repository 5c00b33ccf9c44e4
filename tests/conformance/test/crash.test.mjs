// Goal: official-client readers keep following their shapes while the server is killed with
// SIGKILL and restarted on the same storage directory and port 4 times, and end equal to
// Postgres, on the same handles (shapes are restored from storage, not rebuilt).
// Method: a private server (lib/restartable.mjs) so the harness's server is not disturbed;
// a writer inserts, moves rows across `n < 50`, changes primary keys and deletes throughout;
// the client retries connection errors itself (short backoff so the test stays quick). A fence
// row, committed after the writer stops, must reach every reader before rows are compared.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, waitFor, DATABASE_URL } from '../lib/support.mjs';
import { RestartableServer } from '../lib/restartable.mjs';

after(() => pool.end());

const CYCLES = 4;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('readers survive kill -9 and restarts of the server and end equal to Postgres', async () => {
  const table = uniqueTable('crash');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL, v text)`);
  await sql(`INSERT INTO ${table} SELECT g, g % 100, 'v' || g FROM generate_series(1, 300) g`);
  const server = await RestartableServer.start({
    databaseUrl: DATABASE_URL, driver: process.env.AMPERE_DRIVER ?? 'epoll',
  });
  const options = {
    url: `${server.url}/v1/shape`,
    backoffOptions: { initialDelay: 50, maxDelay: 500, multiplier: 1.5 },
  };
  const shapes = [
    { params: { table }, expected: () => sql(`SELECT * FROM ${table}`) },
    { params: { table, where: 'n < 50' }, expected: () => sql(`SELECT * FROM ${table} WHERE n < 50`) },
    {
      params: { table, columns: ['id', 'v'], replica: 'full' },
      expected: () => sql(`SELECT id, v FROM ${table}`),
    },
  ];
  const followers = shapes.map((s) => follow(s.params, options));
  let writing = true;
  let writer;
  try {
    for (const [i, f] of followers.entries()) {
      await waitRows(f, shapes[i].expected, { timeoutMs: 30_000 });
    }
    const handles = followers.map((f) => f.stream.shapeHandle);

    let nextId = 10_000;
    writer = (async () => {
      let k = 0;
      while (writing) {
        k += 1;
        const id = 1 + (k * 7919) % 300;
        switch (k % 5) {
          case 0: await sql(`INSERT INTO ${table} VALUES ($1, $2, 'new')`, [nextId++, k % 100]); break;
          case 1: await sql(`UPDATE ${table} SET n = $1 WHERE id = $2`, [(k * 37) % 100, id]); break;
          case 2: await sql(`UPDATE ${table} SET v = $1 WHERE id = $2`, [`w${k}`, id]); break;
          case 3: await sql(`UPDATE ${table} SET id = $1 WHERE id = $2`, [nextId++, id]); break;
          default: await sql(`DELETE FROM ${table} WHERE id = $1`, [nextId - 3]);
        }
        await sleep(5);
      }
    })();

    const restartMs = [];
    for (let c = 0; c < CYCLES; c++) {
      await sleep(300 + Math.floor(Math.random() * 700));
      await server.kill9();
      await sleep(Math.floor(Math.random() * 200));
      restartMs.push(await server.restart());
    }
    await sleep(300);
    writing = false;
    await writer;
    await sql(`INSERT INTO ${table} VALUES (0, 0, 'fence')`);
    for (const [i, f] of followers.entries()) {
      await waitFor(() => f.shape.currentRows.some((r) => r.id === 0), {
        timeoutMs: 30_000, what: 'the fence row', describe: () => f.describe(),
      });
      await waitRows(f, shapes[i].expected, { timeoutMs: 30_000 });
      assert.deepStrictEqual(f.errors.map(String), [], 'no stream errors');
      assert.equal(f.stream.shapeHandle, handles[i], `shape ${i} keeps its handle across restarts`);
      // Every change arrived once: replicated offsets increase strictly within the handle.
      let prev = -1n;
      for (const m of f.changes()) {
        if (m.headers.lsn === undefined) continue;
        const off = BigInt(m.headers.lsn) * 1_000_000n + BigInt(m.headers.op_position ?? 0);
        assert.ok(off > prev, `change ${m.headers.lsn}/${m.headers.op_position} after ${prev}`);
        prev = off;
      }
    }
    console.log(`crash: ${CYCLES} kill -9/restart cycles, restart to active ${restartMs.join(', ')} ms`);
  } catch (e) {
    console.log(`--- crash test ampere log tail ---\n${server.logTail(80)}`);
    throw e;
  } finally {
    writing = false;
    await writer?.catch(() => {});
    for (const f of followers) f.stop();
    await server.stop();
    await sql('SELECT pg_drop_replication_slot($1)', [server.slotName]).catch(() => {});
  }
});
