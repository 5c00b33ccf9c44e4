//! A database whose locale differs from what Ampere's WHERE evaluation assumes (a UTF-8 ctype,
//! byte-order collation) gets a warning in the log at start, naming both settings; the
//! default test cluster (C.UTF-8) gets none.

mod support;

use std::time::{Duration, Instant};
use support::{Opts, Server};

fn log_after_start(url: &str) -> String {
    let server = Server::start(url, Opts::default());
    // The check runs when replication connects, right after the server reports ready.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.stderr_text();
        if log.contains("replicating from slot") || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_c_locale_database_is_warned_about() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    let log = log_after_start(&db.url());
    assert!(log.contains("replicating from slot"), "{log}");
    assert!(
        !log.contains("LC_CTYPE") && !log.contains("LC_COLLATE"),
        "{log}"
    );

    let name = format!("{}_c", db.name());
    db.psql(&format!(
        "CREATE DATABASE \"{name}\" LC_CTYPE 'C' LC_COLLATE 'C' TEMPLATE template0"
    ))
    .expect("create a C-locale database");
    let url = db
        .url()
        .replace(&format!("/{}", db.name()), &format!("/{name}"));
    let log = log_after_start(&url);
    assert!(log.contains("the database's LC_CTYPE is \"C\""), "{log}");
    assert!(
        !log.contains("LC_COLLATE"),
        "C collation is what Ampere assumes: {log}"
    );
}
