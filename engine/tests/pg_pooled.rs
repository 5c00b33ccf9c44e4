//! `ELECTRIC_POOLED_DATABASE_URL` through PgBouncer in transaction mode: snapshots and catalog
//! queries go through the pooler, replication directly; values keep Ampere's text forms even
//! though the database's own defaults differ and the pooler shares server connections (the
//! display settings are set per snapshot transaction, never per session).

mod support;

use support::{Follower, Opts, Server};

#[test]
fn snapshots_through_pgbouncer_in_transaction_mode() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("db");
    db.psql(&format!(
        "CREATE TABLE items (id int PRIMARY KEY, at timestamptz, data bytea, f float8);
         INSERT INTO items VALUES (1, '2024-01-02 03:04:05+00', '\\x0102', 0.1);
         ALTER DATABASE {db} SET TimeZone = 'America/New_York';
         ALTER DATABASE {db} SET DateStyle = 'SQL, MDY';
         ALTER DATABASE {db} SET bytea_output = 'escape';
         ALTER DATABASE {db} SET extra_float_digits = 0;",
        db = db.name()
    ))
    .expect("setup");
    let bouncer =
        testkit::pgbouncer::PgBouncer::start(db.params().port, "transaction", &["postgres"])
            .expect("pgbouncer");
    let pooled = db.url().replace(
        &format!(":{}/", db.params().port),
        &format!(":{}/", bouncer.port()),
    );
    assert_ne!(pooled, db.url());
    let server = Server::start(
        &db.url(),
        Opts {
            cores: 2,
            env: vec![("ELECTRIC_POOLED_DATABASE_URL", pooled)],
            ..Opts::default()
        },
    );
    // Several shapes (several snapshots over pooled server connections).
    for (n, def) in [
        "table=items",
        "table=items&where=id%20%3E%200",
        "table=items&columns=id,at",
    ]
    .iter()
    .enumerate()
    {
        let (mut f, first) = Follower::start(server.client(), def);
        let mut items = first.items();
        loop {
            let r = f.next(false);
            let done = r.has("electric-up-to-date");
            items.extend(r.items());
            if done {
                break;
            }
        }
        let row = items
            .iter()
            .find(|i| i["value"]["id"] == "1")
            .unwrap_or_else(|| panic!("{def}: {items:?}"));
        assert_eq!(row["value"]["at"], "2024-01-02 03:04:05+00", "{def}");
        if n != 2 {
            assert_eq!(row["value"]["data"], "\\x0102", "{def}");
            assert_eq!(row["value"]["f"], "0.1", "{def}");
        }
        let r = f.live_during(
            &db,
            &format!("INSERT INTO items VALUES ({}, now(), NULL, 1);", 10 + n),
        );
        r.expect(200);
    }
    let log = bouncer.log();
    let logins = log
        .matches(&format!("login attempt: db={} user=postgres", db.name()))
        .count();
    assert!(logins >= 1, "the snapshots went through PgBouncer: {log}");
}
