// Goal: under concurrent random writes, every shape's client converges to exactly the rows
// Postgres has for that shape's definition.
// Method: 3 writers run random transactions (inserts, updates that move rows across the where
// boundaries, primary-key changes, deletes) for CONFORMANCE_RANDOM_SECONDS (default 10) over two
// tables, while 6 shapes with different where clauses, column lists and replica modes are
// followed by one client each (half start before the writes, half during them, so the snapshot
// hand-off is exercised under load). After the writers stop, a final fence transaction is
// written; once every client has seen an up-to-date whose global_last_seen_lsn is past the
// fence, its rows must equal `SELECT … WHERE …`. The seed is printed on failure
// (CONFORMANCE_SEED reproduces the write schedule, not the interleaving).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, pool, uniqueTable, follow, waitFor, waitRows, sortById, lsnToBigInt } from '../lib/support.mjs';

after(() => pool.end());

const SECONDS = Number(process.env.CONFORMANCE_RANDOM_SECONDS ?? 10);
const WRITERS = 3;
const IDS_PER_WRITER = 60;

function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Random SQL for one statement. Each writer owns a disjoint id range, so writers never conflict
// on keys and no transaction fails; the interleaving across writers is still arbitrary.
function statement(rand, tables, writer) {
  const pick = (n) => Math.floor(rand() * n);
  const base = writer * 1000;
  const id = base + pick(IDS_PER_WRITER);
  const other = base + pick(IDS_PER_WRITER);
  const [ta, tb] = tables;
  const onA = rand() < 0.5;
  const roll = rand();
  if (onA) {
    if (roll < 0.35) {
      return [`INSERT INTO ${ta} VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
        [id, pick(10), `v${pick(1000)}`, pick(30)]];
    }
    if (roll < 0.65) return [`UPDATE ${ta} SET grp = $2 WHERE id = $1`, [id, pick(10)]];
    if (roll < 0.75) return [`UPDATE ${ta} SET val = $2, n = n + $3 WHERE id = $1`, [id, `w${pick(1000)}`, pick(5) - 2]];
    if (roll < 0.87) {
      return [`UPDATE ${ta} SET id = $2, grp = $3 WHERE id = $1
               AND NOT EXISTS (SELECT 1 FROM ${ta} WHERE id = $2)`, [id, other, pick(10)]];
    }
    return [`DELETE FROM ${ta} WHERE id = $1`, [id]];
  }
  const cats = ['x', 'y', 'z', 'w'];
  if (roll < 0.35) {
    return [`INSERT INTO ${tb} VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
      [id, cats[pick(4)], pick(100), rand() < 0.2 ? null : `note ${pick(100)}`]];
  }
  if (roll < 0.65) return [`UPDATE ${tb} SET cat = $2, score = $3 WHERE id = $1`, [id, cats[pick(4)], pick(100)]];
  if (roll < 0.75) return [`UPDATE ${tb} SET note = $2 WHERE id = $1`, [id, `n${pick(100)}`]];
  if (roll < 0.87) {
    return [`UPDATE ${tb} SET id = $2 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ${tb} WHERE id = $2)`,
      [id, other]];
  }
  return [`DELETE FROM ${tb} WHERE id = $1`, [id]];
}

async function writer(index, seed, tables, deadline, stats) {
  const rand = prng(seed + index * 7919);
  const client = await pool.connect();
  try {
    while (Date.now() < deadline) {
      const statements = 1 + Math.floor(rand() * 3);
      await client.query('BEGIN');
      for (let s = 0; s < statements; s++) {
        const [text, params] = statement(rand, tables, index);
        await client.query(text, params);
      }
      await client.query('COMMIT');
      stats.transactions += 1;
      // Throttle: the machine is shared, and the point is interleaving, not throughput.
      await new Promise((r) => setTimeout(r, 5 + Math.floor(rand() * 15)));
    }
  } finally {
    client.release();
  }
}

test(`randomized writers for ${SECONDS} s: every shape converges to Postgres`, { timeout: 150_000 }, async (t) => {
  const seed = Number(process.env.CONFORMANCE_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const ta = uniqueTable('rand_a');
  const tb = uniqueTable('rand_b');
  await sql(`CREATE TABLE ${ta} (id int PRIMARY KEY, grp int NOT NULL, val text, n int8 NOT NULL)`);
  await sql(`CREATE TABLE ${tb} (id int PRIMARY KEY, cat text NOT NULL, score int, note text)`);
  for (let w = 0; w < WRITERS; w++) {
    await sql(`INSERT INTO ${ta} SELECT g, g % 10, 'seed', g % 30 FROM generate_series($1::int, $1::int + 19) g`, [w * 1000]);
    await sql(`INSERT INTO ${tb} SELECT g, (ARRAY['x','y','z','w'])[1 + g % 4], g % 100, NULL
               FROM generate_series($1::int, $1::int + 19) g`, [w * 1000]);
  }

  // Each shape with the SELECT that defines its expected rows.
  const shapes = [
    { params: { table: ta }, select: `SELECT * FROM ${ta}` },
    { params: { table: ta, where: 'grp < 5' }, select: `SELECT * FROM ${ta} WHERE grp < 5` },
    { params: { table: ta, where: 'grp >= 3 AND n > 10', columns: ['id', 'grp', 'n'] },
      select: `SELECT id, grp, n FROM ${ta} WHERE grp >= 3 AND n > 10` },
    { params: { table: tb, where: `cat = 'x'`, replica: 'full' }, select: `SELECT * FROM ${tb} WHERE cat = 'x'` },
    { params: { table: tb, where: `score > 50 OR cat IN ('y', 'z')`, columns: ['id', 'score'] },
      select: `SELECT id, score FROM ${tb} WHERE score > 50 OR cat IN ('y', 'z')` },
    { params: { table: tb, where: 'note IS NULL' }, select: `SELECT * FROM ${tb} WHERE note IS NULL` },
  ];
  const followers = [];
  const stats = { transactions: 0 };
  const context = () => `seed ${seed}, ${stats.transactions} transactions`;
  try {
    for (const s of shapes.slice(0, 3)) followers.push(follow(s.params));
    const deadline = Date.now() + SECONDS * 1000;
    const writers = Array.from({ length: WRITERS }, (_, i) => writer(i, seed, [ta, tb], deadline, stats));
    // The other half join mid-run, while writes are in flight.
    await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 3));
    for (const s of shapes.slice(3)) followers.push(follow(s.params));
    await Promise.all(writers);

    // The fence: a transaction touching both tables, committed after every writer stopped. Its
    // rows are in every shape, so every client sees data past it (an SSE stream carries an
    // up-to-date only with data; a long-poll also on timeouts).
    const client = await pool.connect();
    let fence;
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${ta} VALUES (999999, 1, 'fence', 99), (999998, 4, 'fence', 99)`);
      await client.query(`INSERT INTO ${tb} VALUES (999999, 'x', 99, NULL)`);
      // The commit record is written after this point, so its LSN is at least this one.
      fence = lsnToBigInt((await client.query('SELECT pg_current_wal_insert_lsn() AS l')).rows[0].l);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    t.diagnostic(`${context()}, fence LSN ${fence}`);

    const counts = [];
    for (const [i, f] of followers.entries()) {
      const select = shapes[i].select;
      await waitFor(() => {
        if (f.errors.length) throw Object.assign(new Error(`stream error: ${f.errors[0].message}`), { fatal: true });
        return f.stream.isUpToDate && f.upToDateLsn >= fence;
      }, {
        timeoutMs: 40_000,
        what: `shape ${i} (${JSON.stringify(f.params)}) to be up to date past the fence LSN ${fence} (${context()})`,
        describe: () => ({ ...f.describe(), upToDateLsn: String(f.upToDateLsn) }),
      }).catch(async (e) => {
        // Say whether the data converged anyway, to separate a missing LSN from missing rows.
        await waitRows(f, () => sql(select), { timeoutMs: 10_000 })
          .then(() => { e.message += '\n(rows did converge to Postgres)'; })
          .catch((rowsError) => { e.message += `\n(rows did not converge either: ${rowsError.message})`; });
        throw e;
      });
      const expected = sortById(await sql(select));
      assert.deepStrictEqual(f.rows(), expected,
        `shape ${i} ${JSON.stringify(f.params)} differs from Postgres after the fence (${context()})`);
      counts.push(`${expected.length} rows/${f.changes().length} changes`);
    }
    t.diagnostic(`per shape: ${counts.join(', ')}`);
  } finally {
    followers.forEach((f) => f.stop());
  }
});
