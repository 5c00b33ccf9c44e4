//! Damaged and torn shape files found at start-up. Five shapes on one table, each with its own
//! directory; with the server killed, one log gets bytes flipped in its middle, one `meta.rkyv`
//! gets a flipped byte, one log gets a torn record appended, one log is cut inside its last
//! transaction (one the slot had not acknowledged yet, as after a real crash), and one is left
//! alone. After the restart the damaged two answer 409 and their readers resync to correct
//! data; the torn/cut ones keep their handle and get the missing transaction replayed; all
//! readers end equal to Postgres with no change delivered twice.

mod support;

use std::time::{Duration, Instant};
use support::crash::{
    assert_reader_matches, last_commit_in_file, last_segment, raw_records, shape_dir, CrashOpts,
    Pg, Reader, Restartable, KIND_COMMIT,
};
use support::enc;

const GROUPS: i32 = 5;

fn fence(pg: &mut Pg) -> u64 {
    pg.value(
        "BEGIN; UPDATE t SET v = v || '.' WHERE id <= 5; SELECT pg_current_wal_lsn()::text; COMMIT;",
    )
    .map(|s| support::crash::parse_pg_lsn(&s))
    .expect("fence")
}

fn flip(path: &std::path::Path, at: usize, n: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    assert!(
        bytes.len() > at + n,
        "{} has {} bytes",
        path.display(),
        bytes.len()
    );
    for b in &mut bytes[at..at + n] {
        *b ^= 0xA5;
    }
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn damaged_shapes_answer_409_torn_tails_recover_and_the_rest_is_intact() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    // id % 5 = group; rows 1..=5 hold one row of each group (the fence touches all shapes).
    db.psql(
        "CREATE TABLE t (id int PRIMARY KEY, grp int NOT NULL, v text NOT NULL);
         INSERT INTO t SELECT g, g % 5, 'v' || g FROM generate_series(1, 100) g;",
    )
    .expect("setup");
    let mut server = Restartable::start(&db.url(), CrashOpts::default());
    let readers: Vec<Reader> = (0..GROUPS)
        .map(|g| {
            let def = format!("table=t&where={}", enc(&format!("grp = {g}")));
            Reader::spawn(&format!("grp{g}"), server.port, &def)
        })
        .collect();
    let mut pg = Pg::connect(&db.url()).expect("connect");
    for r in &readers {
        r.wait_past(0, Duration::from_secs(30));
    }
    // Twenty transactions, each touching every shape, so each log has many commits.
    for i in 0..20 {
        pg.exec(&format!(
            "UPDATE t SET v = 'u{i}-' || id WHERE id % 7 = {}",
            i % 7
        ));
    }
    let lsn = fence(&mut pg);
    for r in &readers {
        r.wait_past(lsn, Duration::from_secs(30));
    }
    // Everything so far is durable and acknowledged (the ack goes out every ~10 s).
    pg.wait_confirmed(lsn, Duration::from_secs(30));
    let handles: Vec<String> = readers
        .iter()
        .map(|r| r.snapshot().handle.expect("handle"))
        .collect();

    // One more transaction, written to the files but (the next ack being ~10 s away) not yet
    // acknowledged when the server is killed.
    let last = fence(&mut pg);
    let deadline = Instant::now() + Duration::from_secs(10);
    while last_commit_in_file(&server.storage, &handles[3]) <= last {
        assert!(
            Instant::now() < deadline,
            "last transaction never reached the log file"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();
    let unacked = pg.confirmed_flush() <= last;

    // Damage.
    let log0 = last_segment(&server.storage, &handles[0]);
    let len0 = std::fs::metadata(&log0).expect("log").len() as usize;
    flip(&log0, len0 / 2, 8);
    let meta1 = shape_dir(&server.storage, &handles[1]).join("meta.rkyv");
    let len1 = std::fs::metadata(&meta1).expect("meta").len() as usize;
    flip(&meta1, len1 / 2, 1);
    // A torn write: a record header promising more bytes than follow.
    let log2 = last_segment(&server.storage, &handles[2]);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log2)
            .expect("open");
        let mut torn = vec![0u8; 40];
        torn[0..4].copy_from_slice(&200u32.to_le_bytes());
        torn[8] = 1;
        f.write_all(&torn).expect("append");
    }
    // Cut inside the last transaction (between the previous COMMIT and the last one).
    if unacked {
        let log3 = last_segment(&server.storage, &handles[3]);
        let bytes = std::fs::read(&log3).expect("read");
        let commits: Vec<_> = raw_records(&bytes)
            .into_iter()
            .filter(|r| r.kind == KIND_COMMIT)
            .collect();
        assert!(commits.len() >= 2, "{commits:?}");
        let prev_end = commits[commits.len() - 2].end;
        let last_end = commits[commits.len() - 1].end;
        let cut = (prev_end + last_end) / 2;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&log3)
            .expect("open");
        f.set_len(cut as u64).expect("truncate");
        eprintln!("cut {} at {cut} (was {})", log3.display(), bytes.len());
    } else {
        eprintln!("NOTE: the last transaction was acknowledged before the kill; not cutting it");
    }

    server.restart();
    for i in 0..5 {
        pg.exec(&format!(
            "UPDATE t SET v = 'after{i}' WHERE id % 3 = {}",
            i % 3
        ));
    }
    pg.exec("DELETE FROM t WHERE id IN (10, 11, 12, 13, 14); INSERT INTO t VALUES (1000, 0, 'x'), (1001, 1, 'y'), (1002, 2, 'z'), (1003, 3, 'w'), (1004, 4, 'q');");
    let lsn = fence(&mut pg);
    for r in &readers {
        r.wait_past(lsn, Duration::from_secs(60));
        r.halt();
    }
    for (g, r) in readers.into_iter().enumerate() {
        let name = r.name.clone();
        let s = r.stop();
        let expected = pg.expected_rows(
            "t",
            1,
            &format!("SELECT id, id::text AS id, grp::text AS grp, v FROM t WHERE grp = {g}"),
        );
        eprintln!(
            "{name}: statuses {:?}, refetches {:?}",
            s.statuses, s.refetches
        );
        assert_reader_matches(&name, &s, &expected);
        let kept = s.handle.as_deref() == Some(handles[g].as_str());
        match g {
            0 | 1 => {
                assert!(
                    !kept,
                    "{name}: a damaged shape must not be served under its handle"
                );
                assert_eq!(s.refetches.len(), 1, "{name}: {:?}", s.refetches);
            }
            _ => {
                assert!(kept, "{name}: handle {:?} != {}", s.handle, handles[g]);
                assert!(s.refetches.is_empty(), "{name}: {:?}", s.refetches);
            }
        }
    }
}
