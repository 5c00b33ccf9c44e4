// Goal: the official client follows a shape whose WHERE has a subquery: snapshot rows and
// move-in rows (ordinary inserts with extra headers) materialize, and the move events (which
// `Shape` ignores, as upstream documents) reach subscribers without an error.
// Method: a membership table and an outer table; a move-in (a value entering the subquery),
// a live insert, then a move-out; after each step the client's rows are compared with a
// SELECT (after the move-out, with the rows the client keeps: `Shape` does not apply events).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, waitFor } from '../lib/support.mjs';

after(() => pool.end());

test('a subquery shape: snapshot, move-in rows and move events through the official client', async () => {
  const inner = uniqueTable('sq_inner');
  const outer = uniqueTable('sq_outer');
  await sql(`CREATE TABLE ${inner} (id int PRIMARY KEY, active boolean NOT NULL)`);
  await sql(`CREATE TABLE ${outer} (id int PRIMARY KEY, inner_id int, title text)`);
  await sql(`INSERT INTO ${inner} VALUES (1, true), (2, false)`);
  await sql(`INSERT INTO ${outer} VALUES (1, 1, 'one'), (2, 2, 'two'), (3, NULL, 'none')`);
  const where = `inner_id IN (SELECT id FROM ${inner} WHERE active)`;
  const selected = () => sql(`SELECT * FROM ${outer} WHERE ${where}`);
  const f = follow({ table: outer, where });
  try {
    await waitRows(f, selected);
    const first = f.changes()[0];
    assert.equal(first.headers.tags.length, 1, 'snapshot rows carry tags');
    assert.deepStrictEqual(first.headers.active_conditions, [true]);

    await sql(`UPDATE ${inner} SET active = true WHERE id = 2`);
    await waitRows(f, selected);
    const movedIn = f.changes().find((m) => m.headers.is_move_in);
    assert.ok(movedIn, 'the move-in row arrived as an insert');

    await sql(`INSERT INTO ${outer} VALUES (4, 1, 'four')`);
    await waitRows(f, selected);

    await sql(`UPDATE ${inner} SET active = false WHERE id = 1`);
    const events = () => f.batches.flat().filter((m) => m.headers?.event);
    await waitFor(() => events().some((m) => m.headers.event === 'move-out'),
      { what: 'a move-out event', describe: () => f.describe() });
    const moveOut = events().find((m) => m.headers.event === 'move-out');
    assert.equal(moveOut.headers.patterns.length, 1);
    assert.equal(moveOut.headers.patterns[0].pos, 0);
    assert.deepStrictEqual(f.errors, [], 'events are not errors');
    // `Shape` keeps rows that moved out (no delete is sent); a tag-aware client drops them.
    const ids = f.rows().map((r) => r.id);
    assert.deepStrictEqual(ids, [1, 2, 4]);
  } finally {
    f.stop();
  }
});
