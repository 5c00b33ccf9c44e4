//! The replication stream against a real server, on both monoio drivers: a real insert, update
//! and delete arrive as pgoutput messages in order; the status writer keeps the connection alive
//! under a short `wal_sender_timeout` while the consumer is busy and the channel is full; the
//! slot's confirmed position is exactly what the consumer declared flushed.

use std::future::Future;
use std::time::Duration;

use engine::pg::{ConnectConfig, Connection, PgError, ReplicationStream, StreamSettings, XLogData};
use pgwire::types::Lsn;
use testkit::TestDb;

fn on_uring<Fut: Future<Output = ()>>(body: Fut) {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .expect("io_uring runtime")
        .block_on(body);
}

fn on_epoll<Fut: Future<Output = ()>>(body: Fut) {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("epoll runtime")
        .block_on(body);
}

/// Bounds every wait so that a broken stream fails the test instead of hanging it.
async fn next(stream: &mut ReplicationStream) -> XLogData {
    monoio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("no replication message within 30 s")
        .expect("replication stream failed")
}

fn kind(message: &XLogData) -> char {
    char::from(message.data.first().copied().unwrap_or(b'?'))
}

/// Creates a table, a publication and a permanent slot; returns the slot name and the
/// replication connection that created it.
async fn prepare(db: &TestDb<'_>, table_sql: &str) -> (String, Connection) {
    db.psql(&format!(
        "{table_sql}; CREATE PUBLICATION pub FOR TABLE items;"
    ))
    .expect("schema");
    let mut config = ConnectConfig::from_url(&db.url()).expect("url");
    config.replication = true;
    let mut conn = Connection::connect(&config).await.expect("connect");
    let slot = format!("{}_slot", db.name());
    let info = conn.create_logical_slot(&slot, false).await.expect("slot");
    assert!(info.consistent_point.is_valid());
    (slot, conn)
}

const OPTIONS: [(&str, &str); 2] = [("proto_version", "1"), ("publication_names", "pub")];

async fn receives_changes_in_order() {
    // Goal: a real insert, update and delete arrive as pgoutput Begin/Relation/Insert/Commit,
    // Begin/Update/Commit, Begin/Delete/Commit. Method: commit three transactions, then read
    // until the third Commit. Finally a terminated walsender must surface as an error.
    let cluster = testkit::Cluster::start().expect("cluster");
    let db = cluster.create_database().expect("db");
    let (slot, conn) = prepare(&db, "CREATE TABLE items (id int PRIMARY KEY, title text)").await;
    let mut stream = conn
        .start_replication(&slot, Lsn(0), &OPTIONS)
        .await
        .expect("start");
    db.psql(
        "INSERT INTO items VALUES (1, 'a'); \
         UPDATE items SET title = 'b' WHERE id = 1; \
         DELETE FROM items WHERE id = 1;",
    )
    .expect("changes");
    let mut kinds = String::new();
    while kinds.matches('C').count() < 3 {
        let message = next(&mut stream).await;
        assert!(message.wal_start <= message.wal_end || message.wal_end == Lsn(0));
        kinds.push(kind(&message));
    }
    assert_eq!(kinds, "BRICBUCBDC");
    assert!(stream.received_lsn().is_valid());

    let killed = db
        .psql(&format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE slot_name = '{slot}'"
        ))
        .expect("terminate");
    assert_eq!(killed.trim(), "t");
    let err = monoio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("error within 30 s")
        .expect_err("terminated stream must fail");
    assert!(
        matches!(err, PgError::Closed | PgError::Io(_)) || err.code() == Some("57P01"),
        "{err}"
    );
    assert!(matches!(stream.next().await, Err(PgError::Closed)));
}

#[test]
fn stream_receives_insert_update_delete_on_io_uring() {
    on_uring(receives_changes_in_order());
}

#[test]
fn stream_receives_insert_update_delete_on_epoll() {
    on_epoll(receives_changes_in_order());
}

/// Reads the slot's confirmed_flush_lsn.
fn confirmed_flush(db: &TestDb<'_>, slot: &str) -> Lsn {
    let text = db
        .psql(&format!(
            "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ))
        .expect("slot query");
    text.trim().parse().expect("an LSN")
}

async fn survives_a_busy_consumer() {
    // Goal: with wal_sender_timeout = 2 s, a consumer that stops reading for 6 s while the
    // channel is full must not lose the connection, and the slot must confirm exactly the
    // position the consumer declared, never the (later) received position.
    // Method: commit the first transaction, read it and declare its Commit as flushed; commit
    // 400 more transactions of ~2 KiB so that the 8-slot channel and the socket buffers fill;
    // sleep 6 s without calling next(); then read everything, commit once more and see it
    // arrive. Without the independent status writer the server ends the stream after 2 s.
    let cluster = testkit::Cluster::start_private(testkit::Options {
        settings: vec![("wal_sender_timeout".into(), "2s".into())],
        ..Default::default()
    })
    .expect("cluster");
    let db = cluster.create_database().expect("db");
    let table = "CREATE TABLE items (id int PRIMARY KEY, body text)";
    let (slot, conn) = prepare(&db, table).await;
    let settings = StreamSettings {
        status_interval: Duration::from_millis(300),
        channel_capacity: 8,
        ..StreamSettings::default()
    };
    let mut stream = conn
        .start_replication_with(&slot, Lsn(0), &OPTIONS, settings)
        .await
        .expect("start");
    db.psql("INSERT INTO items VALUES (0, 'first')")
        .expect("first");
    let mut first_commit = None;
    while first_commit.is_none() {
        let message = next(&mut stream).await;
        if kind(&message) == 'C' {
            first_commit = Some(message.wal_start);
        }
    }
    let flushed = first_commit.expect("commit seen");
    assert!(flushed > confirmed_flush(&db, &slot));
    stream.set_flush_lsn(flushed);
    stream.request_status_update();

    // Writes go through a second (async) connection: a blocking psql call would stall this
    // runtime and with it the status writer under test.
    let mut writer = Connection::connect(&ConnectConfig::from_url(&db.url()).expect("url"))
        .await
        .expect("connect writer");
    writer
        .execute(
            "DO $$ BEGIN FOR i IN 1..400 LOOP \
               INSERT INTO items VALUES (i, repeat(md5(i::text), 64)); COMMIT; \
             END LOOP; END $$",
        )
        .await
        .expect("bulk");
    // The busy consumer: no next() for three wal_sender_timeouts.
    monoio::time::sleep(Duration::from_secs(6)).await;

    let mut inserts = 0;
    while inserts < 400 {
        if kind(&next(&mut stream).await) == 'I' {
            inserts += 1;
        }
    }
    db.psql("INSERT INTO items VALUES (1000, 'after')")
        .expect("after");
    loop {
        let message = next(&mut stream).await;
        if kind(&message) == 'I' {
            break;
        }
    }
    assert!(stream.received_lsn() > flushed);
    stream.request_status_update();
    // Give the writer a few intervals; confirmed_flush must still be exactly `flushed`.
    monoio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(confirmed_flush(&db, &slot), flushed);

    // Dropping the stream stops its tasks and closes the socket, so the slot becomes inactive.
    drop(stream);
    let active = format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'");
    let mut polls = 0;
    while db.psql(&active).expect("slot query").trim() != "f" {
        polls += 1;
        assert!(
            polls < 300,
            "slot still active 30 s after dropping the stream"
        );
        monoio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn stream_survives_busy_consumer_on_io_uring() {
    on_uring(survives_a_busy_consumer());
}

#[test]
fn stream_survives_busy_consumer_on_epoll() {
    on_epoll(survives_a_busy_consumer());
}
