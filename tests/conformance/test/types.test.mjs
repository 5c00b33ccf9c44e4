// Goal: every value the client materializes equals what Postgres returns, for common types and
// awkward values, whether the row came from the initial snapshot or from replication.
// Method: a table covering int2/int4/int8/float8/numeric/bool/text/varchar/uuid/json/jsonb/
// timestamptz/date/bytea/int4[]/text[]/enum; half the rows exist before the shape is created
// (snapshot path), the same values are inserted again after it is live (replication path), and
// one row is updated to exotic values. Expected rows come from `pg` with the parsing the client
// applies (int8 → BigInt, json → objects, arrays → arrays, the rest as Postgres text).
// A raw-HTTP pass then checks the wire strings against `col::text` directly, which tells a
// server bug from a client-parser quirk.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitRows, rawSync } from '../lib/support.mjs';

after(() => pool.end());

const COLUMNS = ['i2', 'i4', 'i8', 'f8', 'num', 'b', 't', 'vc', 'u', 'j', 'jb', 'ts', 'd', 'bin',
  'ia', 'ta', 'e'];

const LONG_TEXT = 'line with\ttab and "quotes" and \\ backslash 🚀\n'.repeat(2100); // ~100 kB

// Each value is SQL text cast to the column type by an INSERT … VALUES.
function exoticRows() {
  return [
    { i2: '1', i4: '2', i8: '3', f8: '4.5', num: '6.75', b: 'true', t: 'plain', vc: 'plain',
      u: '0b9f4c2e-5d6f-4a1b-9c3d-2e1f0a9b8c7d', j: '{"foo":"bar"}', jb: '{"foo": "bar"}',
      ts: '2024-02-29 12:34:56.789+00', d: '2024-02-29', bin: '\\x0001fffe', ia: '{1,2,3}',
      ta: '{a,b,c}', e: 'ok' },
    {}, // all NULL
    { i2: '-32768', i4: '2147483647', i8: '9223372036854775807', f8: 'NaN',
      num: '-123456789012345678901234567890.000000000000000001', b: 'false',
      t: `it's "quoted" \\ back\\\\slash`, vc: 'héllo wörld 日本語 🎉👩‍👩‍👧 \u00a0',
      u: '00000000-0000-0000-0000-000000000000',
      j: '{"a": [1, 2.5, "x\\"y", null, true], "emoji": "🎉", "nested": {"k": null}}',
      jb: '{"a": [1, 2.5, "x\\"y", null, true], "emoji": "🎉", "nested": {"k": null}, "": ""}',
      ts: '1999-12-31 23:59:59.999999+05:30', d: '0001-01-01', bin: '\\x5c225c0a00',
      ia: '{1,NULL,-3}',
      ta: '{"a,b","c\\"d","e\\\\f","",NULL,"NULL"," spaced ","{braces}","tab\there"}',
      e: 'so "quoted"' },
    { i2: '32767', i4: '-2147483648', i8: '-9223372036854775808', f8: 'Infinity', num: 'NaN',
      b: 'true', t: '', vc: '', j: '""', jb: '[]', ts: 'infinity', d: '4713-01-01 BC',
      bin: '\\x', ia: '{}', ta: '{}', e: 'sad' },
    { i2: '0', i4: '0', i8: '0', f8: '-Infinity', num: '0', t: LONG_TEXT,
      vc: 'newline\nand\ttab\r\nand \u0001 control', j: '[]', jb: '{"big": 12345678901234567890}',
      ts: '2024-01-01 00:00:00+00', d: '2024-01-01', ia: '{-1}', ta: '{"ü","🎉","日本"}',
      e: 'happy' },
    { f8: '-0', num: '1e-30', i8: '-1', jb: '"just a string"', j: '123', t: '\\', vc: '"' },
    { f8: '1.7976931348623157e+308', num: '0.1', jb: 'null', j: 'null', t: 'NULL', vc: 'null' },
    { f8: '0.1', t: '\u2028\u2029 separators', vc: '\\u0000 not a nul' },
  ];
}

async function insertRows(table, firstId) {
  const rows = exoticRows();
  for (let i = 0; i < rows.length; i++) {
    const values = COLUMNS.map((c) => rows[i][c] ?? null);
    const placeholders = COLUMNS.map((_, k) => `$${k + 2}`).join(', ');
    await sql(`INSERT INTO ${table} (id, ${COLUMNS.join(', ')}) VALUES ($1, ${placeholders})`,
      [firstId + i, ...values]);
  }
}

test('type parsing: materialized values equal Postgres values', async () => {
  const table = uniqueTable('types');
  const mood = uniqueTable('mood');
  await sql(`CREATE TYPE ${mood} AS ENUM ('sad', 'ok', 'happy', 'so "quoted"')`);
  await sql(`CREATE TABLE ${table} (
    id int4 PRIMARY KEY, i2 int2, i4 int4, i8 int8, f8 float8, num numeric, b bool, t text,
    vc varchar(255), u uuid, j json, jb jsonb, ts timestamptz, d date, bin bytea, ia int4[],
    ta text[], e ${mood})`);
  await insertRows(table, 1);
  const all = () => sql(`SELECT * FROM ${table}`);
  const f = follow({ table });
  try {
    await waitRows(f, all, { timeoutMs: 30_000 });
    await insertRows(table, 101);
    await waitRows(f, all, { timeoutMs: 30_000 });
    // Replicated updates: move the typical row to the exotic values, column by column.
    const exotic = exoticRows()[2];
    const sets = COLUMNS.map((c, k) => `${c} = $${k + 2}`).join(', ');
    await sql(`UPDATE ${table} SET ${sets} WHERE id = $1`, [101, ...COLUMNS.map((c) => exotic[c])]);
    await sql(`UPDATE ${table} SET i8 = -42, b = false, ta = NULL WHERE id = 103`);
    await waitRows(f, all, { timeoutMs: 30_000 });
  } finally {
    f.stop();
  }

  // Wire check: a new shape (different where) is all snapshot, so every value is the column's
  // text output. Electric's snapshot casts with `::text`, which spells bool `true`/`false`, while
  // bool's own output function (used by pgoutput) spells it `t`/`f`; the client accepts both, and
  // so does this check (the spelling is a cosmetic difference, not a conformance failure).
  const raw = await rawSync({ table, where: 'id > 0' });
  for (const m of raw.messages) {
    if (m.value?.b === 't' || m.value?.b === 'f') m.value.b = m.value.b === 't' ? 'true' : 'false';
  }
  const casts = COLUMNS.map((c) => `${c}::text AS ${c}`).join(', ');
  const expected = await sql(`SELECT id::text AS id, ${casts} FROM ${table}`);
  const byKey = new Map(raw.messages.filter((m) => m.key).map((m) => [m.value.id, m.value]));
  assert.equal(byKey.size, expected.length, 'raw sync returned every row');
  for (const row of expected) {
    assert.deepStrictEqual(byKey.get(row.id), row, `wire values of row ${row.id}`);
  }
});
