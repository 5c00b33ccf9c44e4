//! The `ampere` binary: configuration, the embedded Postgres default, and the cores.

use clap::Parser;
use engine::config::Config;
use engine::embedded_pg::EmbeddedPostgres;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AMPERE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let config = Config::parse();
    if let Err(msg) = config.validate() {
        eprintln!("ampere: invalid configuration: {msg}");
        std::process::exit(2);
    }
    let mut embedded = None;
    let db_url = match config.database_url.clone() {
        Some(url) => {
            engine::signals::on_shutdown(engine::server::shutdown);
            url
        }
        None => match EmbeddedPostgres::start(&config.storage_dir) {
            Ok(pg) => {
                tracing::info!(
                    "no DATABASE_URL: started the embedded Postgres cluster at {} (data in {})",
                    pg.url,
                    config.storage_dir.join("postgres").display()
                );
                let url = pg.url.clone();
                let pg = std::sync::Arc::new(pg);
                let on_stop = pg.clone();
                engine::signals::on_shutdown(move || {
                    engine::server::shutdown();
                    on_stop.stop();
                });
                embedded = Some(pg);
                url
            }
            Err(e) => {
                eprintln!("ampere: {e:#}");
                std::process::exit(1);
            }
        },
    };
    let result = engine::server::run(config, db_url);
    if let Some(pg) = embedded {
        pg.stop();
    }
    if let Err(e) = result {
        eprintln!("ampere: {e:#}");
        std::process::exit(1);
    }
}
