//! The monoio Postgres client against a real server: the four authentication methods, simple
//! queries with errors and resynchronization, COPY OUT of awkward text, and the replication
//! commands. Each test runs its body on both the io_uring and the epoll driver.

use std::future::Future;
use std::time::Duration;

use engine::pg::{ConnectConfig, Connection, PgError};

fn run_both<F, Fut>(body: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .expect("io_uring runtime")
        .block_on(body());
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("epoll runtime")
        .block_on(body());
}

fn config(url: &str) -> ConnectConfig {
    ConnectConfig::from_url(url).expect("valid URL")
}

async fn connect(url: &str) -> Connection {
    Connection::connect(&config(url)).await.expect("connect")
}

#[test]
fn authenticates_with_trust_password_md5_and_scram() {
    // Goal: each method the server may ask for works, and a wrong password is the server's
    // 28P01 error rather than a protocol failure. Method: one role per method, routed by
    // pg_hba.conf; md5 needs an MD5-hashed password, so that role is created with one.
    let cluster = testkit::Cluster::start_private(testkit::Options {
        host_auth: "scram-sha-256".into(),
        superuser_password: Some("s3cret pw".into()),
        ..Default::default()
    })
    .expect("cluster");
    let admin = cluster.admin().clone();
    cluster
        .psql(
            &admin,
            "CREATE ROLE trust_user LOGIN; \
             CREATE ROLE clear_user LOGIN PASSWORD 'clear pw'; \
             SET password_encryption = 'md5'; \
             CREATE ROLE md5_user LOGIN PASSWORD 'md5 pw';",
        )
        .expect("roles");
    cluster
        .set_hba(
            "local all all trust\n\
             host all trust_user 127.0.0.1/32 trust\n\
             host all clear_user 127.0.0.1/32 password\n\
             host all md5_user 127.0.0.1/32 md5\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("hba");
    let base = format!("127.0.0.1:{}/postgres", admin.port);
    run_both(|| async {
        for (user, pw) in [
            ("trust_user", None),
            ("clear_user", Some("clear%20pw")),
            ("md5_user", Some("md5%20pw")),
            ("postgres", Some("s3cret%20pw")),
        ] {
            let auth = pw
                .map(|p| format!("{user}:{p}"))
                .unwrap_or(user.to_string());
            let mut conn = connect(&format!("postgresql://{auth}@{base}")).await;
            let who = conn.simple_query("SELECT current_user").await.unwrap();
            assert_eq!(who[0].rows[0].get(0), Some(user));
            assert!(conn.parameter("server_version").is_some());
            assert!(conn.backend_key().is_some());
            conn.close().await.unwrap();
        }
        for user in ["clear_user", "md5_user", "postgres"] {
            let url = format!("postgresql://{user}:wrong@{base}");
            let err = Connection::connect(&config(&url))
                .await
                .err()
                .expect("must fail");
            assert_eq!(err.code(), Some("28P01"), "{user}: {err}");
            let url = format!("postgresql://{user}@{base}");
            let err = Connection::connect(&config(&url))
                .await
                .err()
                .expect("must fail");
            assert!(matches!(err, PgError::Auth(_)), "{user}: {err}");
        }
    });
}

#[test]
fn simple_query_returns_rows_nulls_and_resyncs_after_errors() {
    // Goal: multi-statement queries give one result per statement, NULL is distinct from the
    // empty string, server errors carry SQLSTATE and position, and the connection stays usable.
    let cluster = testkit::Cluster::start().expect("cluster");
    let db = cluster.create_database().expect("db");
    run_both(|| async {
        let mut conn = connect(&db.url()).await;
        let results = conn
            .simple_query(
                "CREATE TEMP TABLE t (id int, name text); \
                 INSERT INTO t VALUES (1, 'a'), (2, NULL), (3, ''); \
                 SELECT id, name AS label FROM t ORDER BY id",
            )
            .await
            .unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].tag, "CREATE TABLE");
        assert_eq!(results[1].tag, "INSERT 0 3");
        let select = &results[2];
        assert_eq!(&select.columns[..], ["id".to_string(), "label".to_string()]);
        assert_eq!(select.tag, "SELECT 3");
        let labels: Vec<_> = select.rows.iter().map(|r| r.get_by_name("label")).collect();
        assert_eq!(labels, [Some("a"), None, Some("")]);
        assert!(select.rows[1].is_null(1));
        assert_eq!(select.rows[2].get(0), Some("3"));
        assert_eq!(select.rows[2].get(9), None);

        let err = conn
            .simple_query("SELECT * FROM missing_table")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("42P01"));
        assert_eq!(err.db_fields().and_then(|f| f.position), Some(15));
        // A multi-statement query is one implicit transaction: the failure rolls back the
        // first INSERT and skips the last; the session goes on.
        let err = conn
            .simple_query(
                "INSERT INTO t VALUES (4, 'x'); SELECT 1/0; INSERT INTO t VALUES (5, 'y')",
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("22012"));
        let count = conn.simple_query("SELECT count(*) FROM t").await.unwrap();
        assert_eq!(count[0].rows[0].get(0), Some("3"));

        // A failed transaction block reports 25P02 until rolled back.
        conn.execute("BEGIN").await.unwrap();
        assert!(conn.execute("SELECT nope").await.is_err());
        let err = conn.execute("SELECT 1").await.unwrap_err();
        assert_eq!(err.code(), Some("25P02"));
        assert_eq!(conn.execute("ROLLBACK").await.unwrap(), "ROLLBACK");

        // Notices are logged, not errors; an empty query is not an error either.
        let tag = conn
            .execute("DO $$ BEGIN RAISE NOTICE 'hello'; END $$")
            .await
            .unwrap();
        assert_eq!(tag, "DO");
        assert!(conn.simple_query("").await.unwrap().is_empty());
        let unicode = conn.simple_query("SELECT 'ü€😀'").await.unwrap();
        assert_eq!(unicode[0].rows[0].get(0), Some("ü€😀"));
        assert!(matches!(
            conn.simple_query("SELECT '\0'").await,
            Err(PgError::InvalidArgument(_))
        ));
        assert!(!conn.is_broken());
    });
}

#[test]
fn copy_out_streams_exotic_text_rows() {
    // Goal: COPY TO STDOUT delivers every row, in COPY text escaping, through the callback; a
    // failing callback or a non-COPY statement leaves the connection usable.
    let cluster = testkit::Cluster::start().expect("cluster");
    let db = cluster.create_database().expect("db");
    db.psql(
        "CREATE TABLE items (id int PRIMARY KEY, title text, note text); \
         INSERT INTO items SELECT i, 'row ' || i || E'\\t\"q''uote\\n' || 'ü€😀' || E'\\\\', \
           CASE WHEN i % 7 = 0 THEN NULL ELSE 'n' || i END FROM generate_series(1, 3000) i;",
    )
    .expect("data");
    let expected: Vec<String> = (1..=3000)
        .map(|i| {
            let note = if i % 7 == 0 {
                "\\N".to_string()
            } else {
                format!("n{i}")
            };
            format!("{i}\trow {i}\\t\"q'uote\\nü€😀\\\\\t{note}\n")
        })
        .collect();
    run_both(|| async {
        let mut conn = connect(&db.url()).await;
        let mut lines = Vec::new();
        let rows = conn
            .copy_out("COPY (SELECT * FROM items ORDER BY id) TO STDOUT", |data| {
                lines.push(String::from_utf8(data.to_vec())?);
                Ok::<_, std::string::FromUtf8Error>(())
            })
            .await
            .unwrap();
        assert_eq!(rows, 3000);
        assert_eq!(lines, expected);

        let mut seen = 0;
        let err = conn
            .copy_out("COPY items TO STDOUT", |_| {
                seen += 1;
                if seen == 10 {
                    return Err("consumer is full");
                }
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(matches!(err, PgError::Callback(_)), "{err}");
        assert_eq!(seen, 10);
        let err = conn
            .copy_out("SELECT 1", |_| Ok::<_, PgError>(()))
            .await
            .unwrap_err();
        assert!(matches!(err, PgError::InvalidArgument(_)), "{err}");
        let err = conn
            .copy_out("COPY nope TO STDOUT", |_| Ok::<_, PgError>(()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("42P01"));
        let err = conn.simple_query("COPY items TO STDOUT").await.unwrap_err();
        assert!(matches!(err, PgError::InvalidArgument(_)), "{err}");
        let n = conn
            .simple_query("SELECT count(*) FROM items")
            .await
            .unwrap();
        assert_eq!(n[0].rows[0].get(0), Some("3000"));
    });
}

#[test]
fn replication_commands_identify_and_create_slots() {
    // Goal: IDENTIFY_SYSTEM and CREATE_REPLICATION_SLOT parse their replies, names are quoted,
    // and replication errors come back as server errors on a usable connection.
    let cluster = testkit::Cluster::start().expect("cluster");
    let db = cluster.create_database().expect("db");
    let url = format!(
        "{}?replication=database&application_name=ampere-test",
        db.url()
    );
    let slot = format!("{}_slot", db.name());
    run_both(|| async {
        let mut conn = connect(&url).await;
        let info = conn.identify_system().await.unwrap();
        assert_eq!(info.dbname.as_deref(), Some(db.name()));
        assert_eq!(info.timeline, 1);
        assert!(info.xlogpos.is_valid());
        assert!(info.systemid.parse::<u64>().is_ok(), "{}", info.systemid);

        let temp = conn
            .create_logical_slot(&format!("{slot}_temp"), true)
            .await
            .unwrap();
        assert!(temp.consistent_point >= info.xlogpos);
        assert_eq!(temp.output_plugin.as_deref(), Some("pgoutput"));
        let kept = conn.create_logical_slot(&slot, false).await.unwrap();
        assert_eq!(kept.slot_name, slot);
        let list = "SELECT slot_name, temporary, plugin FROM pg_replication_slots ORDER BY 1";
        let listed = db.rows(list).unwrap();
        let temp_row = vec![format!("{slot}_temp"), "t".into(), "pgoutput".into()];
        assert!(listed.contains(&vec![slot.clone(), "f".into(), "pgoutput".into()]));
        assert!(listed.contains(&temp_row), "{listed:?}");
        let err = conn
            .create_logical_slot(&format!("{slot}_temp"), true)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("42710"), "{err}");
        // Postgres drops a walsender's temporary slots when any command of it fails.
        assert!(!db.rows(list).unwrap().contains(&temp_row));
        let err = conn
            .create_logical_slot("bad\"name", false)
            .await
            .unwrap_err();
        assert!(matches!(err, PgError::InvalidArgument(_)), "{err}");
        let err = conn
            .create_logical_slot("Upper Case", false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("42602"), "{err}");
        conn.execute(&format!("DROP_REPLICATION_SLOT \"{slot}\""))
            .await
            .unwrap();
        conn.close().await.unwrap();
    });
}

#[test]
fn start_replication_on_a_missing_slot_is_a_server_error() {
    let cluster = testkit::Cluster::start().expect("cluster");
    let db = cluster.create_database().expect("db");
    let url = format!("{}?replication=database", db.url());
    run_both(|| async {
        let conn = connect(&url).await;
        let start = pgwire::types::Lsn(0);
        let err = conn
            .start_replication("no_such_slot", start, &[("proto_version", "1")])
            .await
            .err()
            .expect("must fail");
        assert_eq!(err.code(), Some("42704"), "{err}");
    });
}

#[test]
fn connect_times_out_when_the_server_never_answers() {
    // A listener that accepts at the TCP level (backlog) but never speaks the protocol.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    run_both(|| async {
        let mut cfg = config(&format!("postgresql://u@127.0.0.1:{port}/db"));
        cfg.connect_timeout = Duration::from_millis(300);
        let err = Connection::connect(&cfg)
            .await
            .err()
            .expect("must time out");
        assert!(matches!(err, PgError::Timeout(_)), "{err}");
    });
    drop(listener);
}
