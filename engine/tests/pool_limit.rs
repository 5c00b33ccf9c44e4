//! `ELECTRIC_DB_POOL_SIZE` bounds the server's Postgres connections: many shapes created at
//! once queue for a connection instead of opening one each (which Postgres would refuse past
//! `max_connections`), and every one of them still syncs.

mod support;

use support::{enc, Env, Opts};

#[test]
fn a_shape_storm_stays_within_the_pool_and_every_shape_syncs() {
    let cluster = support::cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, k int NOT NULL);
         INSERT INTO items SELECT g, g % 40 FROM generate_series(1, 400) g;",
        Opts {
            cores: 2,
            env: vec![("ELECTRIC_DB_POOL_SIZE", "2".to_string())],
            ..Opts::default()
        },
    );
    let port = env.server.port;
    let workers: Vec<_> = (0..40)
        .map(|k| {
            std::thread::spawn(move || {
                let c = support::Client::new(port);
                let q = format!("table=items&where={}", enc(&format!("k = {k}")));
                let mut r = c.get(&format!("/v1/shape?{q}&offset=-1"));
                let mut rows = 0;
                loop {
                    assert_eq!(r.status, 200, "{}", r.body_str());
                    rows += r
                        .items()
                        .iter()
                        .filter(|m| m["headers"]["operation"] == "insert")
                        .count();
                    if r.has("electric-up-to-date") {
                        return rows;
                    }
                    r = c.get(&format!(
                        "/v1/shape?{q}&handle={}&offset={}",
                        r.handle(),
                        r.offset()
                    ));
                }
            })
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().expect("worker"), 10, "each shape has its 10 rows");
    }
    // One connection per core at most (2 over 2 cores), besides replication.
    let open = env
        .db
        .rows("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'ampere_core_%'")
        .expect("pg_stat_activity");
    let n: u64 = open[0][0].parse().expect("count");
    assert!(n <= 2, "{n} pooled connections open");
}
