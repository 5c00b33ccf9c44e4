//! The `ampere` binary: configuration, the embedded Postgres default, and the cores.

use clap::Parser;
use engine::config::Config;
use engine::embedded_pg::EmbeddedPostgres;

fn main() {
    fixed_mmap_threshold();
    init_logging();
    engine::panic_policy::install();
    let config = Config::parse();
    if let Err(msg) = config.validate() {
        eprintln!("ampere: invalid configuration: {msg}");
        std::process::exit(2);
    }
    let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    for name in engine::config::unimplemented_settings(names) {
        tracing::warn!("{name} is set, but Ampere does not implement it: ignoring it");
    }
    // Before anything under the storage directory is touched (the embedded cluster lives there
    // too): a second instance on the same directory stops here.
    let storage_lock = match engine::storage::StorageLock::acquire(&config.storage_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("ampere: {e}");
            std::process::exit(1);
        }
    };
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
    if let Err(e) = check_database_url(&config, &db_url) {
        eprintln!("ampere: invalid DATABASE_URL: {e}");
        std::process::exit(1);
    }
    let query_url = config.query_url(&db_url);
    if query_url != db_url {
        if let Err(e) = check_database_url(&config, query_url) {
            eprintln!("ampere: invalid ELECTRIC_POOLED_DATABASE_URL: {e}");
            std::process::exit(1);
        }
    }
    let result = engine::server::run(config, db_url, storage_lock);
    if let Some(pg) = embedded {
        pg.stop();
    }
    if let Err(e) = result {
        eprintln!("ampere: {e:#}");
        std::process::exit(1);
    }
}

/// Log filter: `AMPERE_LOG` (a tracing filter, e.g. `info,engine::pg=debug`), else Electric's
/// `ELECTRIC_LOG_LEVEL` (`debug`, `info`, `warning`, `error`), else `info`. With
/// `AMPERE_LOG_FORMAT=json` every line is a JSON object (structured fields included).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("AMPERE_LOG").unwrap_or_else(|_| {
        let level = std::env::var("ELECTRIC_LOG_LEVEL").unwrap_or_default();
        let level = match level.trim().to_ascii_lowercase().as_str() {
            "" => "info".to_string(),
            "warning" => "warn".to_string(),
            other => other.to_string(),
        };
        EnvFilter::try_new(&level).unwrap_or_else(|_| {
            eprintln!("ampere: ELECTRIC_LOG_LEVEL={level:?} is not a level; using info");
            EnvFilter::new("info")
        })
    });
    // Colour codes only on a terminal: a log written to a file, a pipe or journald stays plain
    // text that grep and log shippers read as is.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    if std::env::var("AMPERE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Buffers of 1 MiB and more (closed chunks, their records on the way to disk) get mappings of
/// their own, returned to the OS when freed. glibc otherwise raises its mmap threshold to the
/// largest block freed so far (up to 32 MiB), after which 10 MiB chunks come from the heap and
/// the memory they leave behind stays resident: a 10M-row initial sync peaked about 30 MiB
/// higher (`docs/benchmarks/storage.md`). Setting the threshold also turns that adjustment off.
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// A `DATABASE_URL` that cannot work stops the start (one line), instead of a replication loop
/// retrying it forever; parameters Ampere does not use get one warning each, as Electric
/// ignores them; a CA file that cannot be read is found now, not at the first connection.
fn check_database_url(config: &engine::config::Config, url: &str) -> Result<(), String> {
    let cfg = config.pg_connect_config(url).map_err(|e| e.to_string())?;
    for key in &cfg.ignored_params {
        tracing::warn!("DATABASE_URL parameter {key:?} is not used by Ampere; ignoring it");
    }
    if cfg.tls.mode != engine::pg::tls::SslMode::Disable {
        cfg.tls.client_config().map_err(|e| e.to_string())?;
    } else if cfg.tls.ca_file.is_some() {
        tracing::warn!(
            "ELECTRIC_DATABASE_CA_CERTIFICATE_FILE is set but DATABASE_URL has sslmode=disable: \
             the CA is not used"
        );
    }
    Ok(())
}
