//! `glance-api`: run the image service (`serve`), administer its database as
//! `glance-manage db` does (`db sync|version|check|purge|purge_images_table`;
//! `migrate` is `db sync`), run the crash-recovery sweep once (`recover`), or
//! load metadef namespaces (`load-metadefs DIR`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use glance_api::app::AppBuilder;
use glance_api::config::{Config, Overrides};
use glance_api::db::{admin, purge};
use glance_api::server::{self, ServerOptions};

/// The configuration's other sources, for `--help`.
const ENVIRONMENT_HELP: &str = "\
Configuration, later sources win: built-in defaults, the --config file,
GLANCE__SECTION__KEY environment variables, then --bind and --data-dir.

Environment:
  GLANCE_CONFIG               the configuration file, as --config
  GLANCE__SECTION__KEY=value  one option, e.g. GLANCE__DEFAULT__BIND=0.0.0.0:9292
                              or GLANCE__KEYSTONE_AUTHTOKEN__AUTH_URL=http://k:5000/v3
  RUST_LOG                    log levels, e.g. info or glance_api=debug

The file is Glance's glance-api.conf (INI, a .conf or .ini file) or TOML (a
.toml file; another name is read as TOML if it parses, else as INI). Options
this server does not implement are ignored with a warning. Every option, with
its help and default: etc/glance-api.conf.sample.";

#[derive(Parser)]
#[command(
    version,
    about = "A Glance-compatible Images API v2 server",
    after_help = ENVIRONMENT_HELP
)]
struct Cli {
    /// Configuration file: glance-api.conf (INI) or TOML, with glance-api.conf's
    /// sections and keys.
    #[arg(long, global = true, env = "GLANCE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:9292.
    #[arg(long, global = true)]
    bind: Option<String>,
    /// Directory of the embedded defaults (SQLite database, file store, logs).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (the default).
    Serve {
        /// Do not apply pending migrations; refuse to start if there are any
        /// (as `[database] auto_migrate = false`).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply database migrations and exit (the same as `db sync`).
    Migrate,
    /// Database administration, as `glance-manage db`.
    #[command(subcommand)]
    Db(DbCommand),
    /// Run the crash-recovery sweep once (what `serve` does at start-up), print
    /// what it did, and exit. Refuses to run beside a live server of this node.
    Recover,
    /// Load metadef namespaces from a directory of JSON files in Glance's
    /// catalogue format (as `glance-manage db load_metadefs`), then exit.
    LoadMetadefs {
        /// The directory; every `*.json` file in it is one namespace.
        dir: PathBuf,
        /// Replace namespaces that exist already (by default they are kept).
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply pending migrations.
    Sync,
    /// Print the schema version (the latest applied migration) and whether
    /// migrations are pending.
    Version,
    /// Exit 0 when the schema is up to date, 3 when migrations are pending.
    Check,
    /// Delete soft-deleted rows older than the given age: task information,
    /// tasks, and the properties, tags, locations and members of deleted images
    /// (the image rows themselves stay, see `purge_images_table`).
    Purge {
        /// Purge rows deleted more than this many days ago.
        #[arg(long, alias = "age_in_days", default_value_t = purge::DEFAULT_AGE_IN_DAYS, allow_negative_numbers = true)]
        age_in_days: i64,
        /// Rows deleted per table at most; -1 deletes all.
        #[arg(long, alias = "max_rows", default_value_t = purge::DEFAULT_MAX_ROWS, allow_negative_numbers = true)]
        max_rows: i64,
    },
    /// Delete the rows of images deleted more than the given age ago (with any
    /// rows that still refer to them). Their ids become usable again.
    #[command(name = "purge_images_table", alias = "purge-images-table")]
    PurgeImagesTable {
        /// Purge images deleted more than this many days ago.
        #[arg(long, alias = "age_in_days", default_value_t = purge::DEFAULT_IMAGES_AGE_IN_DAYS, allow_negative_numbers = true)]
        age_in_days: i64,
        /// Images deleted at most; -1 deletes all.
        #[arg(long, alias = "max_rows", default_value_t = purge::DEFAULT_MAX_ROWS, allow_negative_numbers = true)]
        max_rows: i64,
    },
}

/// One `db` subcommand against the configured database.
async fn db_command(config: &Config, command: DbCommand) -> ExitCode {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("glance-api: db {what}: {e}");
        ExitCode::FAILURE
    };
    let db = match admin::open(config).await {
        Ok(db) => db,
        Err(e) => return fail("", &e),
    };
    match command {
        DbCommand::Sync => match admin::sync(&db).await {
            Ok(applied) if applied.is_empty() => {
                println!("Database is up to date. No migrations needed.");
                ExitCode::SUCCESS
            }
            Ok(applied) => {
                for name in &applied {
                    println!("applied: {name}");
                }
                println!("Database is synced successfully.");
                ExitCode::SUCCESS
            }
            Err(e) => fail("sync", &e),
        },
        DbCommand::Version => match admin::status(&db).await {
            Ok(status) => {
                match status.version() {
                    Some(version) => println!("{version}"),
                    None => println!(
                        "Database is not under migration control; run `glance-api db sync`."
                    ),
                }
                if !status.is_current() {
                    println!("pending: {}", status.pending.join(", "));
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail("version", &e),
        },
        DbCommand::Check => match admin::status(&db).await {
            Ok(status) if status.is_current() => {
                println!("Database is up to date. No upgrades needed.");
                ExitCode::SUCCESS
            }
            Ok(status) => {
                println!(
                    "Your database is not up to date. Your first step is to run `glance-api db sync`. Pending: {}",
                    status.pending.join(", ")
                );
                ExitCode::from(admin::CHECK_PENDING_EXIT)
            }
            Err(e) => fail("check", &e),
        },
        DbCommand::Purge {
            age_in_days,
            max_rows,
        } => run_purge(&db, age_in_days, max_rows, false).await,
        DbCommand::PurgeImagesTable {
            age_in_days,
            max_rows,
        } => run_purge(&db, age_in_days, max_rows, true).await,
    }
}

/// `db purge` and `db purge_images_table`: glance-manage exits 1 with its
/// message when an option is out of range.
async fn run_purge(
    db: &sea_orm::DatabaseConnection,
    age_in_days: i64,
    max_rows: i64,
    images_table: bool,
) -> ExitCode {
    let limits = match purge::PurgeLimits::new(age_in_days, max_rows, chrono::Utc::now()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let report = if images_table {
        purge::purge_images_table(db, limits).await
    } else {
        purge::purge(db, limits).await
    };
    match report {
        Ok(report) => {
            for (table, rows) in &report.deleted {
                println!("Deleted {rows} row(s) from table {table}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", purge::PurgeError::from(e));
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed here, before the
/// caller reports readiness: a signal arriving between `READY=1` and the first
/// poll would otherwise take the default action and kill the process undrained.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
        async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        bind: cli.bind,
        data_dir: cli.data_dir,
    };
    let loaded = match Config::load_reporting(cli.config.as_deref(), std::env::vars(), &overrides) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("glance-api: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let _guard = glance_api::telemetry::init(&loaded.config.telemetry);
    for warning in loaded.warnings() {
        tracing::warn!("configuration: {warning}");
    }
    let config = loaded.config;
    match cli.command.unwrap_or(Command::Serve { no_migrate: false }) {
        Command::Migrate => db_command(&config, DbCommand::Sync).await,
        Command::Db(command) => db_command(&config, command).await,
        Command::Recover => match glance_api::app::recover_once(&config).await {
            Ok(report) => {
                println!(
                    "requeued: {}; leases settled: {}; deferred: {}; stray data removed: {}",
                    report.requeued.len(),
                    report.settled,
                    report.deferred,
                    report.strays
                );
                for image in &report.requeued {
                    println!("requeued image: {image}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("glance-api: recover: {e}");
                ExitCode::FAILURE
            }
        },
        Command::LoadMetadefs { dir, replace } => {
            let existing = if replace {
                glance_api::metadef_catalogue::Existing::Replace
            } else {
                glance_api::metadef_catalogue::Existing::Skip
            };
            match glance_api::metadef_catalogue::load_dir_with_config(&config, &dir, existing).await
            {
                Ok(report) => {
                    for (what, names) in [
                        ("loaded", &report.loaded),
                        ("replaced", &report.replaced),
                        ("skipped (exists)", &report.skipped),
                    ] {
                        for name in names {
                            println!("{what}: {name}");
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("glance-api: load-metadefs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve { no_migrate } => {
            let mut config = config;
            if no_migrate {
                config.database.auto_migrate = false;
            }
            let bind = config.default.bind.clone();
            let options = ServerOptions::from_config(&config.default);
            let app = match AppBuilder::new(config).build().await {
                Ok(app) => app,
                Err(e) => {
                    eprintln!("glance-api: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let listener = match tokio::net::TcpListener::bind(&bind).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("glance-api: bind {bind}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            #[cfg(unix)]
            {
                // SIGHUP re-reads the policy file, as oslo.policy-based services do.
                // Installed now, not in the task, so a SIGHUP right after
                // readiness cannot hit the default action (terminate).
                let app = app.clone();
                let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
                tokio::spawn(async move {
                    let Ok(mut hup) = hup else {
                        return;
                    };
                    while hup.recv().await.is_some() {
                        match app.reload_policy() {
                            Ok(()) => tracing::info!("policy reloaded"),
                            Err(e) => {
                                tracing::error!(error = %e, "policy not reloaded; the previous rules stay")
                            }
                        }
                    }
                });
            }
            if let Some(addr) = app.config.telemetry.metrics_listen.clone() {
                match tokio::net::TcpListener::bind(&addr).await {
                    Ok(l) => {
                        tracing::info!(address = %addr, "serving /metrics");
                        tokio::spawn(glance_api::http::metrics_endpoint::serve(
                            l,
                            app.metrics.clone(),
                        ));
                    }
                    Err(e) => {
                        eprintln!("glance-api: bind {addr} (metrics_listen): {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            let signalled = shutdown_signal();
            tracing::info!(address = %bind, "serving the Images API v2");
            #[cfg(unix)]
            server::systemd::notify_ready();
            let shutdown = async {
                signalled.await;
                #[cfg(unix)]
                server::systemd::notify_stopping();
            };
            server::run(listener, app.http.clone(), options, shutdown).await;
            ExitCode::SUCCESS
        }
    }
}
