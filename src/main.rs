//! `glance-api`: run the image service (`serve`), bring its database schema up to
//! date (`migrate`), or load metadef namespaces (`load-metadefs DIR`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use glance_api::app::AppBuilder;
use glance_api::config::{Config, Overrides};
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
    Serve,
    /// Apply database migrations and exit.
    Migrate,
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
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
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            if let Err(e) = std::fs::create_dir_all(&config.default.data_dir) {
                eprintln!("glance-api: data dir: {e}");
                return ExitCode::FAILURE;
            }
            match glance_api::db::migrate(&config.database_url()).await {
                Ok(()) => {
                    tracing::info!("database schema is up to date");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("glance-api: migrate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
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
        Command::Serve => {
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
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(mut hup) =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                    else {
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
            tracing::info!(address = %bind, "serving the Images API v2");
            server::run(listener, app.http.clone(), options, shutdown_signal()).await;
            ExitCode::SUCCESS
        }
    }
}
