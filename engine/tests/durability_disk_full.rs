//! A full storage disk (a small tmpfs as `ELECTRIC_STORAGE_DIR`): creating a shape answers 503
//! "Failed to create shape, please retry"; an existing shape never serves wrong data (it keeps
//! up, or answers 409 and its reader resyncs); once space is freed new shapes work again.
//! Mounting needs root (CAP_SYS_ADMIN): without it the test says SKIPPED and passes.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::crash::{assert_reader_matches, CrashOpts, Pg, Reader, Restartable};
use support::enc;

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    std::fs::create_dir_all(dir).ok()?;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(Mount(dir.to_path_buf()))
    } else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs at {} (needs root / CAP_SYS_ADMIN)",
            dir.display()
        );
        let _ = std::fs::remove_dir(dir);
        None
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let block = vec![0u8; 4096];
    let mut written = 0;
    while f.write_all(&block).is_ok() {
        written += block.len() as u64;
    }
    let _ = f.sync_all();
    written
}

const ROWS: &str = "SELECT id, id::text AS id, v FROM t";

#[test]
fn full_disk_refuses_new_shapes_with_503_and_recovers_when_space_returns() {
    let mnt = std::env::temp_dir().join(format!("ampere-diskfull-{}", std::process::id()));
    let Some(_mount) = mount_tmpfs(&mnt, "2m") else {
        return;
    };
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20) g;",
    )
    .expect("setup");
    let opts = CrashOpts {
        storage: Some(mnt.join("storage")),
        cores: 1,
        ..Default::default()
    };
    let server = Restartable::start(&db.url(), opts);
    let mut pg = Pg::connect(&db.url()).expect("connect");
    let reader = Reader::spawn("existing", server.port, "table=t");
    reader.wait_past(0, Duration::from_secs(30));

    let filled = fill(&mnt.join("filler"));
    eprintln!("filled the tmpfs with {filled} bytes");

    // A new shape cannot get storage.
    let client = server.client();
    let r = client.get(&format!(
        "/v1/shape?table=t&where={}&offset=-1",
        enc("id < 10")
    ));
    assert_eq!(r.status, 503, "{}", r.body_str());
    assert!(
        r.body_str()
            .contains("Failed to create shape, please retry"),
        "{}",
        r.body_str()
    );
    assert_eq!(r.header("retry-after"), Some("1"));

    // The existing shape receives changes it cannot store: it must keep serving correct data or
    // give its handle up (409), never serve something else.
    for i in 0..30 {
        pg.exec(&format!(
            "UPDATE t SET v = repeat('x', 2000) || '{i}' WHERE id = {}",
            1 + i % 20
        ));
    }
    pg.exec("INSERT INTO t VALUES (100, 'while full')");

    // Space returns: new shapes work, and the existing reader ends equal to Postgres.
    std::fs::remove_file(mnt.join("filler")).expect("free space");
    let r = client.get(&format!(
        "/v1/shape?table=t&where={}&offset=-1",
        enc("id < 10")
    ));
    assert_eq!(r.status, 200, "{}", r.body_str());
    let lsn = pg
        .value("BEGIN; INSERT INTO t VALUES (101, 'fence'); SELECT pg_current_wal_lsn()::text; COMMIT;")
        .map(|s| support::crash::parse_pg_lsn(&s))
        .expect("fence");
    reader.wait_past(lsn, Duration::from_secs(60));
    let s = reader.stop();
    eprintln!(
        "existing shape: statuses {:?}, refetches {:?}",
        s.statuses, s.refetches
    );
    assert_reader_matches("existing", &s, &pg.expected_rows("t", 1, ROWS));
    let fresh = Reader::spawn("new", server.port, "table=t");
    fresh.wait_past(lsn, Duration::from_secs(30));
    assert_reader_matches("new", &fresh.stop(), &pg.expected_rows("t", 1, ROWS));
    drop(server);
}
