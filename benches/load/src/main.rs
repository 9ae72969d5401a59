//! glance-load: a load generator for any Glance-compatible Images API v2
//! endpoint (this project's server or OpenStack Glance itself).
//!
//! `main` parses the command line, authenticates, and hands over to the
//! scenario (what an op is), the runner (how many, for how long) and the
//! report (what came out).

mod auth;
mod client;
mod report;
mod runner;
mod scenario;
mod stats;
mod svg;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use crate::scenario::{Config, Kind, Scenario};
use crate::units::{parse_duration, parse_mix, parse_size};

#[derive(Parser, Debug)]
#[command(
    name = "glance-load",
    version,
    about = "Load generator for Glance-compatible Images API v2 endpoints",
    after_help = "Exit status: 0 on success; 1 when errors exceed --max-errors or no op \
                  completed; 2 on bad options or a failed setup."
)]
struct Args {
    /// Image endpoint root, e.g. http://127.0.0.1:9292 (with Keystone auth,
    /// defaults to the catalog's image endpoint).
    #[arg(long)]
    url: Option<String>,
    /// What one operation is.
    #[arg(long, short, value_enum, default_value = "metadata")]
    scenario: Kind,
    /// Concurrent workers, each with one op in flight.
    #[arg(long, short, default_value_t = 4)]
    concurrency: usize,
    /// How long to measure, after the warmup (30s, 2m, 500ms). Default 10s,
    /// or unlimited with --count.
    #[arg(long, short, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many measured ops (ok or failed).
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// Run unmeasured for this long first.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    warmup: Duration,
    /// Image size for upload and download (KiB/MiB/GiB, or bytes).
    #[arg(long, value_parser = parse_size, default_value = "64MiB")]
    size: u64,
    /// Size of each body write; with --chunked, of each chunk.
    #[arg(long, value_parser = parse_size, default_value = "256KiB")]
    chunk_size: u64,
    /// Upload with Transfer-Encoding: chunked instead of Content-Length.
    #[arg(long)]
    chunked: bool,
    /// Keep uploaded images (and the download image) instead of deleting them.
    #[arg(long)]
    keep: bool,
    /// Images the list scenario needs; made once, reused by later runs.
    #[arg(long, default_value_t = 1000)]
    images: usize,
    /// The list scenario's page size (?limit=).
    #[arg(long, default_value_t = 25)]
    limit: u32,
    /// Weights for the mixed scenario.
    #[arg(long, default_value = "metadata=4,list=3,download=2,upload=1")]
    mix: String,
    /// Skip the md5 check of each download (it costs client CPU).
    #[arg(long)]
    no_verify: bool,
    /// Also delete the list scenario's images at the end.
    #[arg(long)]
    cleanup: bool,
    /// Per-request timeout, body included.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    timeout: Duration,
    /// Write the JSON report here (`-` for stdout).
    #[arg(long)]
    json: Option<String>,
    /// Write an SVG chart of throughput and latency over time here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// No progress line or setup messages.
    #[arg(long, short)]
    quiet: bool,
    /// Exit 1 when more errors than this occurred.
    #[arg(long, default_value_t = 0)]
    max_errors: u64,
    /// A token to send as X-Auth-Token (no Keystone round trip).
    #[arg(long)]
    token: Option<String>,
    /// Keystone URL for password auth, e.g. http://keystone:5000/v3.
    #[arg(long, env = "OS_AUTH_URL")]
    os_auth_url: Option<String>,
    #[arg(long, env = "OS_USERNAME")]
    os_username: Option<String>,
    #[arg(long, env = "OS_PASSWORD", hide_env_values = true)]
    os_password: Option<String>,
    #[arg(long, env = "OS_PROJECT_NAME")]
    os_project_name: Option<String>,
    #[arg(long, env = "OS_USER_DOMAIN_NAME", default_value = "Default")]
    os_user_domain_name: String,
    #[arg(long, env = "OS_PROJECT_DOMAIN_NAME", default_value = "Default")]
    os_project_domain_name: String,
    /// Which catalog endpoint to use when --url is not given.
    #[arg(long, env = "OS_INTERFACE", default_value = "public")]
    os_interface: String,
    #[arg(long, env = "OS_REGION_NAME")]
    os_region_name: Option<String>,
}

fn mix_of(s: &str) -> Result<Vec<(Kind, u32)>, String> {
    let mut mix = Vec::new();
    for (name, w) in parse_mix(s)? {
        let kind = match name.as_str() {
            "upload" => Kind::Upload,
            "download" => Kind::Download,
            "metadata" => Kind::Metadata,
            "list" => Kind::List,
            other => return Err(format!("unknown scenario {other:?} in --mix")),
        };
        if w > 0 {
            mix.push((kind, w));
        }
    }
    if mix.is_empty() {
        return Err("--mix has no positive weight".into());
    }
    Ok(mix)
}

/// The token and image URL to use: --token, else Keystone, else none.
async fn authenticate(
    a: &Args,
    http: &client::HttpClient,
) -> Result<(Option<String>, Option<String>), String> {
    if a.token.is_some() {
        return Ok((a.token.clone(), a.url.clone()));
    }
    let Some(auth_url) = &a.os_auth_url else {
        return Ok((None, a.url.clone()));
    };
    let need = |v: &Option<String>, flag: &str| {
        v.clone()
            .ok_or_else(|| format!("--os-auth-url needs {flag} (or its OS_* variable)"))
    };
    let creds = auth::Credentials {
        auth_url: auth_url.clone(),
        username: need(&a.os_username, "--os-username")?,
        password: need(&a.os_password, "--os-password")?,
        project_name: need(&a.os_project_name, "--os-project-name")?,
        user_domain_name: a.os_user_domain_name.clone(),
        project_domain_name: a.os_project_domain_name.clone(),
        interface: a.os_interface.clone(),
        region: a.os_region_name.clone(),
    };
    let keystone = client::Api::new(http.clone(), &creds.auth_url, None, a.timeout)?;
    let session = auth::password_token(&keystone, &creds).await?;
    runner::note(&format!(
        "auth: got a Keystone token for {}",
        creds.username
    ));
    Ok((Some(session.token), a.url.clone().or(session.image_url)))
}

async fn run(a: Args) -> Result<ExitCode, String> {
    if a.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if !(1024..=64 << 20).contains(&a.chunk_size) {
        return Err("--chunk-size must be between 1KiB and 64MiB".into());
    }
    let mix = mix_of(&a.mix)?;
    let duration = match (a.duration, a.count) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };
    let setup_parallel = a.concurrency.clamp(4, 16);
    let http = client::http_client(a.concurrency + setup_parallel)?;
    let (token, url) = authenticate(&a, &http).await?;
    let url = url.ok_or("--url is required (or Keystone auth with an image endpoint)")?;
    let api = client::Api::new(http, &url, token.as_deref(), a.timeout)?;
    let url = api.base().to_string();

    let cfg = Config {
        kind: a.scenario,
        size: a.size,
        chunk: a.chunk_size as usize,
        chunked: a.chunked,
        keep: a.keep,
        images: a.images,
        limit: a.limit,
        verify: !a.no_verify,
        cleanup: a.cleanup,
        mix: mix.clone(),
        setup_parallel,
    };
    let data = a.scenario.moves_data(&mix);
    let scn = Arc::new(Scenario::setup(api, cfg).await?);

    runner::note(&format!(
        "running {} against {url}: concurrency {}, {}{}",
        a.scenario.name(),
        a.concurrency,
        match (duration, a.count) {
            (Some(d), Some(n)) => format!("{:?} or {n} ops", d),
            (Some(d), None) => format!("{d:?}"),
            (None, n) => format!("{} ops", n.unwrap_or(0)),
        },
        if a.warmup.is_zero() {
            String::new()
        } else {
            format!(" after {:?} warmup", a.warmup)
        }
    ));
    let plan = runner::Plan {
        concurrency: a.concurrency,
        duration,
        count: a.count,
        warmup: a.warmup,
    };
    let out = runner::run(scn.clone(), plan, data).await;
    scn.teardown().await;

    let meta = report::Meta {
        scenario: a.scenario.name().into(),
        url,
        concurrency: a.concurrency,
        elapsed: out.elapsed,
        interrupted: out.interrupted,
        data,
        config: json!({
            "duration_s": duration.map(|d| d.as_secs_f64()),
            "count": a.count,
            "warmup_s": a.warmup.as_secs_f64(),
            "size_bytes": a.size,
            "chunk_bytes": a.chunk_size,
            "chunked": a.chunked,
            "keep": a.keep,
            "images": a.images,
            "limit": a.limit,
            "mix": a.mix,
            "verify_md5": !a.no_verify,
            "timeout_s": a.timeout.as_secs_f64(),
            "auth": if token.is_some() { "token" } else { "none" },
        }),
    };
    let (report, table, points, ops, errors) = out.rec.with(|s| {
        let points = report::series(s, out.elapsed);
        (
            report::json(&meta, s, &points),
            report::table(&meta, s),
            points,
            s.ops.count(),
            s.error_total(),
        )
    });
    eprint!("{table}");
    let text = serde_json::to_string_pretty(&report).expect("a JSON value serializes") + "\n";
    match a.json.as_deref() {
        Some("-") => print!("{text}"),
        Some(path) => std::fs::write(path, text).map_err(|e| format!("writing {path}: {e}"))?,
        None => {}
    }
    if let Some(path) = &a.svg {
        let title = format!(
            "glance-load {}: {} (concurrency {})",
            meta.scenario, meta.url, meta.concurrency
        );
        std::fs::write(path, svg::chart(&title, &points, data))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }

    if errors > a.max_errors {
        runner::warn(&format!(
            "glance-load: {errors} errors, more than --max-errors {}",
            a.max_errors
        ));
        return Ok(ExitCode::from(1));
    }
    if ops == 0 && !out.interrupted {
        runner::warn("glance-load: no operation completed (raise --duration?)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    runner::set_quiet(args.quiet);
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            runner::warn(&format!("glance-load: {e}"));
            ExitCode::from(2)
        }
    }
}
