// Goal: WHERE-filtered shapes follow rows as they move in and out of the filter, and positional
// parameters ($1) work in both forms the client accepts (object and array).
// Method: follow filtered shapes, run updates that make rows start or stop matching, and compare
// the client's rows with the same SELECT … WHERE … in Postgres after each step.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, rowKey } from '../lib/support.mjs';

after(() => pool.end());

test('rows move in and out of a where-filtered shape', async () => {
  const table = uniqueTable('where');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, status text NOT NULL, n int NOT NULL)`);
  await sql(`INSERT INTO ${table}
    SELECT g, CASE WHEN g % 2 = 0 THEN 'open' ELSE 'closed' END, g FROM generate_series(1, 10) g`);
  const where = `status = 'open' AND n <= 8`;
  const expected = () => sql(`SELECT * FROM ${table} WHERE ${where}`);
  const f = follow({ table, where });
  try {
    await waitRows(f, expected);
    assert.equal(f.shape.currentRows.length, 4);

    await sql(`UPDATE ${table} SET status = 'open' WHERE id = 1`); // moves in
    await waitRows(f, expected);
    assert.ok(f.shape.currentValue.has(rowKey(table, 1)));
    const moveIn = f.changes().find((m) => m.key === rowKey(table, 1));
    assert.equal(moveIn.headers.operation, 'insert', 'a row entering the shape arrives as an insert');
    assert.deepStrictEqual(moveIn.value, { id: 1, status: 'open', n: 1 }, 'with the full row');

    await sql(`UPDATE ${table} SET n = 100 WHERE id = 2`); // moves out
    await waitRows(f, expected);
    assert.ok(!f.shape.currentValue.has(rowKey(table, 2)));
    const moveOut = f.changes().filter((m) => m.key === rowKey(table, 2)).at(-1);
    assert.equal(moveOut.headers.operation, 'delete', 'a row leaving the shape arrives as a delete');

    await sql(`UPDATE ${table} SET n = n + 1 WHERE id = 4`); // stays in
    await sql(`UPDATE ${table} SET n = n + 1 WHERE id = 3`); // stays out
    await sql(`INSERT INTO ${table} VALUES (11, 'open', 0), (12, 'closed', 0)`);
    await sql(`UPDATE ${table} SET id = 40 WHERE id = 6`); // key change inside the shape
    await sql(`UPDATE ${table} SET id = 50, status = 'closed' WHERE id = 8`); // key change + move out
    await sql(`UPDATE ${table} SET id = 70, status = 'open' WHERE id = 7`); // key change + move in
    await waitRows(f, expected);
    assert.ok(!f.changes().some((m) => m.key === rowKey(table, 3)), 'rows outside the shape are never sent');
  } finally {
    f.stop();
  }
});

test('where with positional params (object form)', async () => {
  const table = uniqueTable('params_obj');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text)`);
  await sql(`INSERT INTO ${table} SELECT g, 't' || g FROM generate_series(1, 10) g`);
  const expected = () => sql(`SELECT * FROM ${table} WHERE id > 5`);
  const f = follow({ table, where: 'id > $1', params: { 1: '5' } });
  try {
    await waitRows(f, expected);
    assert.equal(f.shape.currentRows.length, 5);
    await sql(`INSERT INTO ${table} VALUES (0, 'zero'), (100, 'hundred')`);
    await sql(`UPDATE ${table} SET id = -9 WHERE id = 9`); // key change out of the shape
    await waitRows(f, expected);
  } finally {
    f.stop();
  }
});

test('where with positional params (array form) and a quoted string literal', async () => {
  const table = uniqueTable('params_arr');
  await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, title text)`);
  await sql(`INSERT INTO ${table} VALUES (1, 'it''s'), (2, 'x'), (3, 'it''s'), (4, 'y')`);
  const expected = () => sql(`SELECT * FROM ${table} WHERE title = $1 AND id >= $2`, ["it's", 2]);
  const f = follow({ table, where: 'title = $1 AND id >= $2', params: ["it's", '2'] });
  try {
    await waitRows(f, expected);
    assert.equal(f.shape.currentRows.length, 1);
    await sql(`UPDATE ${table} SET title = 'it''s' WHERE id = 4`);
    await waitRows(f, expected);
    assert.equal(f.shape.currentRows.length, 2);
  } finally {
    f.stop();
  }
  const g = follow({ table, where: `title = 'it''s' OR id IN (2, 4)` });
  try {
    await waitRows(g, () => sql(`SELECT * FROM ${table} WHERE title = 'it''s' OR id IN (2, 4)`));
  } finally {
    g.stop();
  }
});
