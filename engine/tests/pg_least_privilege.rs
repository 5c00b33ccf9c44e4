//! Deployments with least privilege and without leftovers: manual table publishing with a role
//! that only has `REPLICATION` and `SELECT` (Ampere never alters anything; a table that is not
//! ready gets an error naming the fix), and temporary replication slots that Postgres drops
//! with their connection (`CLEANUP_REPLICATION_SLOTS_ON_SHUTDOWN`,
//! `ELECTRIC_TEMPORARY_REPLICATION_SLOT_USE_RANDOM_NAME`).

mod support;

use std::time::Duration;
use support::crash::{CrashOpts, Restartable};
use support::{wait_until, Follower, Opts, Server};

fn as_user(url: &str, user: &str) -> String {
    let rest = url.split_once('@').expect("user in url").1;
    format!("postgresql://{user}@{rest}")
}

#[test]
fn manual_publishing_never_alters_and_names_the_fix() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("db");
    let stream = format!("manual{}", std::process::id());
    let publication = format!("electric_publication_{stream}");
    db.psql(&format!(
        "CREATE TABLE items (id int PRIMARY KEY, title text);
         INSERT INTO items VALUES (1, 'one');
         DO $$ BEGIN CREATE ROLE ampere_reader LOGIN REPLICATION; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         GRANT SELECT ON items TO ampere_reader;
         CREATE PUBLICATION {publication};"
    ))
    .expect("setup");
    let server = Server::start(
        &as_user(&db.url(), "ampere_reader"),
        Opts {
            env: vec![
                ("ELECTRIC_MANUAL_TABLE_PUBLISHING", "true".to_string()),
                ("ELECTRIC_REPLICATION_STREAM_ID", stream.clone()),
            ],
            ..Opts::default()
        },
    );
    let shape = "/v1/shape?table=items&offset=-1";
    // Not in the publication: the error says how to add it.
    let r = server.client().get(shape);
    assert_eq!(r.status, 503, "{}", r.body_str());
    let message = r.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(
        message.contains(&format!(
            "ALTER PUBLICATION \"{publication}\" ADD TABLE \"public\".\"items\""
        )),
        "{}",
        r.body_str()
    );
    db.psql(&format!("ALTER PUBLICATION {publication} ADD TABLE items;"))
        .expect("publish");
    // Published, but its replica identity is the default.
    let mut body = String::new();
    wait_until("the identity error", Duration::from_secs(10), || {
        let r = server.client().get(shape);
        body = r.json()["message"].as_str().unwrap_or_default().to_string();
        r.status == 503 && body.contains("REPLICA IDENTITY FULL")
    });
    assert!(
        body.contains("ALTER TABLE \"public\".\"items\" REPLICA IDENTITY FULL"),
        "{body}"
    );
    // Nothing was altered by Ampere.
    let identity = db
        .psql("SELECT relreplident FROM pg_class WHERE relname = 'items'")
        .expect("identity");
    assert_eq!(identity.trim(), "d");
    db.psql("ALTER TABLE items REPLICA IDENTITY FULL;")
        .expect("identity");
    let mut follower = None;
    wait_until("the shape syncs", Duration::from_secs(10), || {
        let r = server.client().get(shape);
        if r.status == 200 {
            follower = Some(Follower::start(server.client(), "table=items").0);
        }
        r.status == 200
    });
    let mut f = follower.expect("follower");
    while !f.next(false).has("electric-up-to-date") {}
    let r = f.live_during(&db, "INSERT INTO items VALUES (2, 'two');");
    r.expect(200);
    assert!(r.body_str().contains("\"two\""), "{}", r.body_str());
}

#[test]
fn manual_publishing_waits_for_the_publication() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("db");
    db.psql("CREATE TABLE items (id int PRIMARY KEY);")
        .expect("setup");
    let mut server = Restartable::start_detached(
        &db.url(),
        CrashOpts {
            cores: 1,
            env: vec![("ELECTRIC_MANUAL_TABLE_PUBLISHING", "true".to_string())],
            ..CrashOpts::default()
        },
    );
    wait_until(
        "the missing publication is reported",
        Duration::from_secs(15),
        || {
            server
                .log()
                .contains("ELECTRIC_MANUAL_TABLE_PUBLISHING prevents Ampere from creating it")
        },
    );
    assert_ne!(server.health().as_deref(), Some("active"));
    let log = server.log();
    let publication = log
        .split("create it with: CREATE PUBLICATION ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the fix names the publication")
        .to_string();
    let exists = db
        .psql("SELECT count(*) FROM pg_publication")
        .expect("publications");
    assert_eq!(exists.trim(), "0", "Ampere created nothing");
    db.psql(&format!("CREATE PUBLICATION {publication};"))
        .expect("publication");
    server.wait_active(Duration::from_secs(30));
    server.stop();
}

fn slots(db: &testkit::TestDb<'_>) -> Vec<(String, bool)> {
    db.psql("SELECT slot_name, temporary FROM pg_replication_slots ORDER BY slot_name")
        .expect("slots")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, temp) = l.split_once('|').expect("two columns");
            (name.to_string(), temp == "t")
        })
        .collect()
}

#[test]
fn temporary_slots_are_gone_with_their_server() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("db");
    db.psql("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1);")
        .expect("setup");
    let before: Vec<_> = slots(&db);
    let server = Server::start(
        &db.url(),
        Opts {
            env: vec![("CLEANUP_REPLICATION_SLOTS_ON_SHUTDOWN", "true".to_string())],
            ..Opts::default()
        },
    );
    let ours: Vec<_> = slots(&db)
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(ours[0].1, "temporary: {ours:?}");
    assert!(ours[0].0.starts_with("electric_slot_"), "{ours:?}");
    Follower::start(server.client(), "table=items")
        .1
        .expect(200);
    drop(server);
    wait_until("the slot is gone", Duration::from_secs(10), || {
        !slots(&db).contains(&ours[0])
    });

    // Random names: two instances of one stream id run side by side, each with its own slot.
    let opts = || Opts {
        env: vec![
            (
                "ELECTRIC_TEMPORARY_REPLICATION_SLOT_USE_RANDOM_NAME",
                "true".to_string(),
            ),
            ("ELECTRIC_REPLICATION_STREAM_ID", "rolling".to_string()),
        ],
        ..Opts::default()
    };
    let a = Server::start(&db.url(), opts());
    let b = Server::start(&db.url(), opts());
    let ours: Vec<_> = slots(&db)
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(ours
        .iter()
        .all(|(name, temp)| *temp && name.starts_with("electric_slot_rolling_")));
    for s in [&a, &b] {
        let (mut f, _) = Follower::start(s.client(), "table=items");
        while !f.next(false).has("electric-up-to-date") {}
        let r = f.live_during(&db, "INSERT INTO items SELECT max(id) + 1 FROM items;");
        r.expect(200);
    }
    drop((a, b));
    wait_until("both slots are gone", Duration::from_secs(10), || {
        slots(&db).iter().all(|s| before.contains(s))
    });
}
