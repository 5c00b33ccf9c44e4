//! TLS to Postgres (`pg::tls`) against a real server that accepts only TLS (`hostssl` in
//! `pg_hba.conf`, SCRAM passwords), with certificates made here: every `sslmode`, the right and
//! a wrong CA, a wrong host name, SCRAM-SHA-256-PLUS channel binding, queries and a replication
//! stream (split into reading and writing halves) over TLS, and Ampere serving a shape from
//! such a server.

mod support;

use engine::pg::{ConnectConfig, Connection, PgError};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::PathBuf;
use std::time::Duration;

const PASSWORD: &str = "tls pw";

/// A CA, a server certificate it signed for `localhost` only, and an unrelated CA.
struct Pki {
    dir: PathBuf,
    server_cert: String,
    server_key: String,
}

impl Pki {
    fn make() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ampere-pg-tls-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("pki dir");
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
        };
        let ca_right = ca("Ampere test CA");
        let ca_wrong = ca("Some other CA");
        let server_key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server = params
            .signed_by(&server_key, &ca_right)
            .expect("server cert");
        std::fs::write(dir.join("ca.pem"), ca_right.pem()).expect("write");
        std::fs::write(dir.join("wrong-ca.pem"), ca_wrong.pem()).expect("write");
        std::fs::write(dir.join("not-pem.pem"), "hello").expect("write");
        Self {
            dir,
            server_cert: server.pem(),
            server_key: server_key.serialize_pem(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private cluster with TLS on, accepting only `hostssl` with SCRAM passwords.
fn tls_cluster(pki: &Pki) -> testkit::Cluster {
    let cluster = testkit::Cluster::start_private(testkit::Options {
        host_auth: "scram-sha-256".into(),
        superuser_password: Some(PASSWORD.into()),
        tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
        ..Default::default()
    })
    .expect("cluster");
    cluster
        .set_hba(
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl replication all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("hba");
    cluster
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// The admin URL with `host` and extra parameters.
fn url(cluster: &testkit::Cluster, host: &str, params: &str) -> String {
    let admin = cluster.admin();
    format!(
        "postgresql://postgres:{}@{host}:{}/postgres?{params}",
        PASSWORD.replace(' ', "%20"),
        admin.port
    )
}

async fn try_connect(url: &str) -> Result<(Connection, ConnectConfig), PgError> {
    let config = ConnectConfig::from_url(url).expect("url");
    let conn = Connection::connect(&config).await?;
    Ok((conn, config))
}

async fn security(url: &str) -> String {
    let (mut conn, config) = try_connect(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let results = conn
        .simple_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .expect("query");
    let ssl = results
        .first()
        .and_then(|r| r.rows.first())
        .and_then(|row| row.get(0))
        .map(str::to_string);
    assert_eq!(ssl.as_deref(), Some("t"), "{url}: the server sees TLS");
    conn.security(&config)
}

async fn refused(url: &str) -> String {
    match try_connect(url).await {
        Ok(_) => panic!("{url}: connected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_sslmode_against_a_tls_only_server() {
    let pki = Pki::make();
    let cluster = tls_cluster(&pki);
    run(async {
        // Encrypted, not verified.
        for mode in ["prefer", "require"] {
            let s = security(&url(&cluster, "127.0.0.1", &format!("sslmode={mode}"))).await;
            assert!(
                s.starts_with("TLS 1.3") && s.contains("not verified"),
                "{mode}: {s}"
            );
        }
        // Messages larger than TLS's buffers both ways: a 200 KB query, a 200 KB row.
        let (mut conn, _) = try_connect(&url(&cluster, "127.0.0.1", "sslmode=require"))
            .await
            .expect("connect");
        let big = "y".repeat(200_000);
        let results = conn
            .simple_query(&format!("SELECT length('{big}'), repeat('z', 200000)"))
            .await
            .expect("a large query over TLS");
        let row = &results[0].rows[0];
        assert_eq!(row.get(0), Some("200000"));
        assert_eq!(row.get(1).map(str::len), Some(200_000));
        // No sslmode: Electric's default, TLS first.
        assert!(security(&url(&cluster, "127.0.0.1", ""))
            .await
            .starts_with("TLS"));
        // allow: plaintext refused by pg_hba.conf, then TLS.
        assert!(security(&url(&cluster, "127.0.0.1", "sslmode=allow"))
            .await
            .starts_with("TLS"));
        // disable: the server's refusal, verbatim.
        let e = refused(&url(&cluster, "127.0.0.1", "sslmode=disable")).await;
        assert!(e.contains("no encryption"), "{e}");

        let ca = pki.path("ca.pem");
        let wrong = pki.path("wrong-ca.pem");
        // verify-full: right CA and name.
        let s = security(&url(
            &cluster,
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ))
        .await;
        assert!(s.contains("host name verified"), "{s}");
        // verify-full: the certificate names localhost, not 127.0.0.1.
        let e = refused(&url(
            &cluster,
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ))
        .await;
        assert!(e.contains("TLS") && e.contains("not valid for name"), "{e}");
        // verify-ca: the chain only.
        let s = security(&url(
            &cluster,
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={ca}"),
        ))
        .await;
        assert!(s.contains("chain verified"), "{s}");
        // A wrong CA fails both.
        for mode in ["verify-ca", "verify-full"] {
            let e = refused(&url(
                &cluster,
                "localhost",
                &format!("sslmode={mode}&sslrootcert={wrong}"),
            ))
            .await;
            assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
        }
        // The system's roots do not know a test CA.
        let e = refused(&url(&cluster, "localhost", "sslmode=verify-full")).await;
        assert!(e.contains("UnknownIssuer"), "{e}");
        // CA files that cannot be used are named.
        let e = refused(&url(
            &cluster,
            "localhost",
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                pki.path("not-pem.pem")
            ),
        ))
        .await;
        assert!(e.contains("not-pem.pem"), "{e}");
        let e = refused(&url(
            &cluster,
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ))
        .await;
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    });
}

#[test]
fn scram_is_bound_to_the_tls_channel() {
    let pki = Pki::make();
    let cluster = tls_cluster(&pki);
    run(async {
        // The server offers SCRAM-SHA-256-PLUS over TLS; channel_binding=require insists.
        let u = url(
            &cluster,
            "127.0.0.1",
            "sslmode=require&channel_binding=require",
        );
        security(&u).await;
        // Without binding it still authenticates.
        let u = url(
            &cluster,
            "127.0.0.1",
            "sslmode=require&channel_binding=disable",
        );
        security(&u).await;
        // A wrong password is the server's error, bound or not.
        let bad = u.replace("tls%20pw", "wrong").replace("disable", "require");
        let e = refused(&bad).await;
        assert!(e.contains("password authentication failed"), "{e}");
    });
}

#[test]
fn sslmode_against_a_server_without_tls() {
    let cluster = testkit::Cluster::start_private(testkit::Options::default()).expect("cluster");
    run(async {
        let base = cluster.admin().url();
        let sep = if base.contains('?') { '&' } else { '?' };
        let (conn, config) = try_connect(&format!("{base}{sep}sslmode=prefer"))
            .await
            .expect("prefer");
        assert_eq!(conn.security(&config), "plaintext");
        for mode in ["require", "verify-ca", "verify-full"] {
            let e = refused(&format!("{base}{sep}sslmode={mode}")).await;
            assert!(e.contains("does not accept TLS"), "{mode}: {e}");
        }
        let e = refused(&format!(
            "{base}{sep}sslmode=require&channel_binding=require"
        ))
        .await;
        assert!(e.contains("TLS"), "{e}");
        // A server that asks for no authentication at all cannot satisfy channel_binding=require
        // (a man in the middle answering `N` and `AuthenticationOk` would otherwise be trusted).
        let e = refused(&format!(
            "{base}{sep}sslmode=prefer&channel_binding=require"
        ))
        .await;
        assert!(e.contains("without channel binding"), "{e}");
    });
}

/// A replication stream over TLS: the reading and the writing task share the session.
#[test]
fn replication_over_tls() {
    let pki = Pki::make();
    let cluster = tls_cluster(&pki);
    let db = cluster.create_database().expect("db");
    db.psql("CREATE TABLE items (id int PRIMARY KEY, body text); CREATE PUBLICATION pub FOR TABLE items;")
        .expect("schema");
    let ca = pki.path("ca.pem");
    let base = url(
        &cluster,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    )
    .replace("/postgres?", &format!("/{}?", db.name()));
    run(async {
        let mut config = ConnectConfig::from_url(&base).expect("url");
        config.replication = true;
        let mut conn = Connection::connect(&config).await.expect("connect");
        assert!(conn.security(&config).contains("host name verified"));
        let slot = format!("{}_slot", db.name());
        conn.create_logical_slot(&slot, false).await.expect("slot");
        let mut stream = conn
            .start_replication(
                &slot,
                pgwire::types::Lsn(0),
                &[("proto_version", "1"), ("publication_names", "pub")],
            )
            .await
            .expect("start");
        // Enough rows that TLS records and socket reads do not line up with messages.
        db.psql("INSERT INTO items SELECT i, repeat('x', 3000) FROM generate_series(1, 300) i;")
            .expect("insert");
        let mut inserts = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while inserts < 300 {
            assert!(std::time::Instant::now() < deadline, "{inserts} inserts");
            let msg = monoio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("a message in time")
                .expect("message");
            if msg.data.first() == Some(&b'I') {
                inserts += 1;
            }
            stream.set_flush_lsn(msg.wal_end);
        }
    });
}

/// Ampere itself against the TLS-only server, CA from the environment: a shape syncs and
/// follows a change.
#[test]
fn ampere_serves_shapes_from_a_tls_only_server() {
    let pki = Pki::make();
    let cluster = tls_cluster(&pki);
    let db = cluster.create_database().expect("db");
    db.psql(
        "CREATE TABLE items (id int PRIMARY KEY, title text); INSERT INTO items VALUES (1, 'one');",
    )
    .expect("schema");
    let db_url = url(&cluster, "localhost", "").replace("/postgres?", &format!("/{}?", db.name()));
    let server = support::Server::start(
        &db_url,
        support::Opts {
            env: vec![("ELECTRIC_DATABASE_CA_CERTIFICATE_FILE", pki.path("ca.pem"))],
            ..support::Opts::default()
        },
    );
    assert!(
        server
            .stderr_text()
            .contains("certificate and host name verified"),
        "{}",
        server.stderr_text()
    );
    let (mut f, first) = support::Follower::start(server.client(), "table=items");
    let mut rows = first.items().len();
    while !f.next(false).has("electric-up-to-date") {
        rows += 1;
    }
    assert!(rows >= 1);
    let r = f.live_during(&db, "INSERT INTO items VALUES (2, 'two');");
    r.expect(200);
    assert!(r.body_str().contains("\"two\""), "{}", r.body_str());
}
