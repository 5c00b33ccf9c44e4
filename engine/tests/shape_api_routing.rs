//! Indexed shape routing end to end: many shapes on one table, each WHERE clause of a kind the
//! routing index handles differently (hash, range, interval, prefix, array, template groups,
//! one-by-one, no clause), followed by live readers while seeded random writes move rows in
//! and out of them. Afterwards every reader must equal `SELECT … WHERE …` in Postgres: a shape
//! the index failed to reach would miss a change.

mod support;

use std::time::Duration;
use support::crash::{assert_reader_matches, CrashOpts, Pg, Reader, Restartable, Rng};
use support::enc;

/// Shape clauses; each is also the WHERE of the expected rows' SELECT.
const CLAUSES: &[&str] = &[
    "k = 3",
    "k = 4",
    "k = 4 AND name LIKE 'b%'",
    "k IN (1, 2, 9)",
    "k = ANY('{5,6}'::int[])",
    "k <> 3",
    "k > 6",
    "k <= 2",
    "k BETWEEN 3 AND 5",
    "k NOT BETWEEN 3 AND 5",
    "score >= 50.5",
    "score < 10",
    "name LIKE 'a%'",
    "name LIKE 'ab%'",
    "name ILIKE 'B%'",
    "name ILIKE 'é%'",
    "tags @> '{red}'",
    "tags && '{blue,green}'",
    "tags <@ '{red,blue}'",
    "lower(name) <> 'abc'",
    "lower(name) = 'bcd'",
    "length(name) > 3",
    "k % 2 = 0",
    "k = 1 OR name LIKE 'c%'",
    "name IS NULL",
    "score IS NOT NULL AND k < 5",
    "id = 7",
    "NOT (k = 3)",
    "k * 2 + 1 = 7",
    "coalesce(name, 'none') = 'none'",
];

const NAMES: &[&str] = &[
    "abc", "abd", "bcd", "Bxy", "cat", "éte", "Éclair", "ab", "zz", "a",
];
const TAGS: &[&str] = &[
    "{}",
    "{red}",
    "{blue}",
    "{red,blue}",
    "{green,red}",
    "{x}",
    "{red,red}",
];

fn random_row(rng: &mut Rng) -> String {
    let k = rng.range(0, 10);
    let name = if rng.chance(10) {
        "NULL".to_string()
    } else {
        format!("'{}'", NAMES[rng.range(0, NAMES.len() as u64) as usize])
    };
    let tags = if rng.chance(10) {
        "NULL".to_string()
    } else {
        format!("'{}'", TAGS[rng.range(0, TAGS.len() as u64) as usize])
    };
    let score = if rng.chance(10) {
        "NULL".to_string()
    } else {
        format!("{}.{}", rng.range(0, 100), rng.range(0, 10))
    };
    format!("{k}, {name}, {tags}, {score}")
}

fn write_batch(pg: &mut Pg, rng: &mut Rng, next_id: &mut u64) {
    let mut sql = String::from("BEGIN;");
    for _ in 0..rng.range(1, 8) {
        let id = rng.range(1, *next_id);
        match rng.range(0, 10) {
            0..=2 => {
                sql.push_str(&format!(
                    "INSERT INTO t VALUES ({}, {});",
                    *next_id,
                    random_row(rng)
                ));
                *next_id += 1;
            }
            3..=6 => {
                let set = match rng.range(0, 4) {
                    0 => format!("k = {}", rng.range(0, 10)),
                    1 => format!(
                        "name = '{}'",
                        NAMES[rng.range(0, NAMES.len() as u64) as usize]
                    ),
                    2 => format!(
                        "tags = '{}'",
                        TAGS[rng.range(0, TAGS.len() as u64) as usize]
                    ),
                    _ => format!("score = {}", rng.range(0, 100)),
                };
                sql.push_str(&format!("UPDATE t SET {set} WHERE id = {id};"));
            }
            7 => sql.push_str(&format!("DELETE FROM t WHERE id = {id};")),
            8 => {
                // A primary-key change: the row leaves under one key and arrives under another.
                sql.push_str(&format!("UPDATE t SET id = {} WHERE id = {id};", *next_id));
                *next_id += 1;
            }
            _ => sql.push_str(&format!(
                "UPDATE t SET k = k + 1, name = upper(name) WHERE id = {id};"
            )),
        }
    }
    sql.push_str("COMMIT;");
    pg.exec(&sql);
}

#[test]
fn every_shape_gets_exactly_its_rows_under_random_writes() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE t (id int PRIMARY KEY, k int NOT NULL, name text, tags text[], score numeric);
         INSERT INTO t SELECT g, g % 10, (ARRAY['abc','bcd','Bxy','cat','éte'])[1 + g % 5],
                              (ARRAY['{red}','{blue}','{}']::text[])[1 + g % 3]::text[], g % 97
         FROM generate_series(1, 60) g;",
    )
    .expect("setup");
    let server = Restartable::start(&db.url(), CrashOpts::default());
    let mut readers: Vec<Reader> = CLAUSES
        .iter()
        .enumerate()
        .map(|(i, clause)| {
            let def = format!("table=t&where={}", enc(clause));
            Reader::spawn(&format!("{i}: {clause}"), server.port, &def)
        })
        .collect();
    // One shape without a clause.
    readers.push(Reader::spawn("all", server.port, "table=t"));
    for r in &readers {
        r.wait_past(0, Duration::from_secs(60));
    }

    let seed = support::crash::seed_from_env("AMPERE_ROUTING_SEED");
    eprintln!("seed {seed} (AMPERE_ROUTING_SEED to repeat)");
    let mut rng = Rng::new(seed);
    let mut pg = Pg::connect(&db.url()).expect("connect");
    let mut next_id = 61;
    for _ in 0..150 {
        write_batch(&mut pg, &mut rng, &mut next_id);
    }
    // The fence's commit LSN is past this point, so a reader up to date at or past it has
    // seen every write. (It inserts a row: Postgres 15 does not replicate empty transactions.)
    let lsn = pg
        .value(&format!(
            "BEGIN; INSERT INTO t VALUES ({next_id}, 0, 'fence', NULL, NULL); \
             SELECT pg_current_wal_lsn()::text; COMMIT;"
        ))
        .map(|s| support::crash::parse_pg_lsn(&s))
        .expect("fence");
    for (i, r) in readers.iter().enumerate() {
        let s = r.wait_past(lsn, Duration::from_secs(60));
        let clause = CLAUSES.get(i).copied().unwrap_or("true");
        let expected = pg.expected_rows(
            "t",
            1,
            &format!("SELECT id, id::text AS id, k, name, tags, score FROM t WHERE {clause}"),
        );
        assert_reader_matches(&format!("{} (seed {seed})", r.name), &s, &expected);
    }
}
