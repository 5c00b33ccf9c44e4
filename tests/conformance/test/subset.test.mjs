// Goal: the official client's subset snapshots (`fetchSnapshot`, `requestSnapshot`) work against
// Ampere: where + params (incl. BigInt), orderBy + limit, GET and POST, `log: 'changes_only'`,
// and snapshot-vs-stream de-duplication while rows change concurrently.
// Method: compare returned rows with the same SELECT in Postgres; for de-duplication, request a
// snapshot while a writer updates every row, then fence and compare the materialized shape with
// the table.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, waitUpToDate } from '../lib/support.mjs';

after(() => pool.end());

const values = (data) => data.map((m) => m.value);

for (const method of ['GET', 'POST']) {
  test(`fetchSnapshot with where, BigInt params, orderBy and limit (${method})`, async () => {
    const table = uniqueTable(`subset_${method.toLowerCase()}`);
    await sql(`CREATE TABLE ${table} (id int8 PRIMARY KEY, title text NOT NULL, n int4)`);
    await sql(`INSERT INTO ${table} SELECT g, 't' || g, g % 7 FROM generate_series(1, 40) g`);
    const f = follow({ table }, { log: 'changes_only' });
    try {
      await waitUpToDate(f);
      const { metadata, data } = await f.stream.fetchSnapshot({
        where: 'id > $1 AND n <> $2',
        params: { 1: 9007199254740993n - 9007199254740983n, 2: '3' },
        orderBy: 'n DESC, id ASC',
        limit: 7,
        method,
      });
      const expected = await sql(
        `SELECT * FROM ${table} WHERE id > 10 AND n <> 3 ORDER BY n DESC, id ASC LIMIT 7`,
      );
      // int8 arrives as BigInt through the client's parser.
      assert.deepStrictEqual(
        values(data).map((r) => ({ ...r, id: String(r.id) })),
        expected.map((r) => ({ ...r, id: String(r.id) })),
      );
      assert.ok(typeof metadata.xmin === 'string' && typeof metadata.xmax === 'string');
      assert.ok(Array.isArray(metadata.xip_list));
      assert.ok(Number.isInteger(metadata.snapshot_mark));
      for (const m of data) {
        assert.equal(m.headers.snapshot_mark, metadata.snapshot_mark);
        assert.equal(m.headers.operation, 'insert');
      }
    } finally {
      f.stop();
    }
  });
}

test('requestSnapshot in changes_only mode loads rows into the shape, then follows changes', async () => {
  const table = uniqueTable('subset_request');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text NOT NULL)`);
  await sql(`INSERT INTO ${table} SELECT g, 'v' || g FROM generate_series(1, 20) g`);
  const f = follow({ table }, { log: 'changes_only' });
  try {
    await waitUpToDate(f);
    assert.equal(f.shape.currentRows.length, 0, 'changes_only starts empty');
    await f.stream.requestSnapshot({ where: 'id <= $1', params: { 1: '5' }, orderBy: 'id' });
    await waitRows(f, () => sql(`SELECT * FROM ${table} WHERE id <= 5`));
    await sql(`UPDATE ${table} SET title = 'changed' WHERE id = 2`);
    await sql(`INSERT INTO ${table} VALUES (100, 'new')`);
    await waitRows(f, () => sql(`SELECT * FROM ${table} WHERE id <= 5 OR id = 100`));
  } finally {
    f.stop();
  }
});

test('a snapshot requested during concurrent writes de-duplicates against the stream', async () => {
  const table = uniqueTable('subset_dedup');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL)`);
  await sql(`INSERT INTO ${table} SELECT g, 0 FROM generate_series(1, 30) g`);
  const f = follow({ table }, { log: 'changes_only' });
  let writing = true;
  const writer = (async () => {
    let i = 0;
    while (writing) {
      // Every row changes again and again; each update sets n to a new value, so applying an
      // old change over newer snapshot data (or skipping a newer one) leaves a visible mismatch.
      const id = (i % 30) + 1;
      await sql(`UPDATE ${table} SET n = n + 1 WHERE id = $1`, [id]);
      i += 1;
    }
  })();
  try {
    await waitUpToDate(f);
    for (let round = 0; round < 3; round++) {
      await new Promise((r) => setTimeout(r, 100));
      await f.stream.requestSnapshot({ where: 'id > $1', params: { 1: 0n }, orderBy: 'id' });
    }
  } finally {
    writing = false;
    await writer;
  }
  try {
    // A fence transaction after the last write; then the shape must equal the table.
    await sql(`UPDATE ${table} SET n = n + 1000 WHERE id = 1`);
    await waitRows(f, () => sql(`SELECT * FROM ${table}`));
  } finally {
    f.stop();
  }
});
