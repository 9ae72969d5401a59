//! Logs, traces and metrics.
//!
//! - Logs: a `tracing` subscriber printing to stderr, plain text (colours only
//!   when stderr is a terminal, so a file or journald gets no escape codes) or
//!   JSON. `RUST_LOG` picks the levels (default `info`); the access log is the
//!   target `glance::access`.
//! - Traces: when an OTLP endpoint is configured (`otlp_endpoint`, or
//!   OpenTelemetry's `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`), spans go there over
//!   OTLP/HTTP: the request's, one per domain layer (`glance::layer`), one per
//!   store call (`glance::store`) and sea-orm's per statement. Those inner spans
//!   are below `info`, so they are enabled for the exporter only, never for the
//!   log. A W3C `traceparent` from a client is the request span's parent
//!   ([`propagation`]).
//! - Metrics: [`metrics::Metrics`], served on `/metrics`; the database pool's
//!   waits come from sqlx's events ([`pool_wait`]).

pub mod metrics;
pub mod pool_wait;
pub mod propagation;

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TelemetrySection;

/// What the trace exporter receives: everything the log would, plus the spans
/// of layers, stores and statements.
const TRACE_FILTER: &str = "info,glance::layer=debug,glance::store=debug,sea_orm::driver=trace";

/// Flushes and stops the trace exporter when dropped.
pub struct OtelGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("trace exporter shutdown: {e}");
        }
    }
}

/// Installs the global subscriber.
pub fn init(cfg: &TelemetrySection) -> OtelGuard {
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let fmt = if cfg.json_logs {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed()
    };
    let mut provider = None;
    // Configured, or OpenTelemetry's own variables, which the exporter reads
    // itself (`OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/traces` appended).
    let from_env = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    let wanted = cfg.otlp_endpoint.is_some() || from_env;
    let otel = wanted.then_some(()).and_then(|()| {
        use opentelemetry_otlp::WithExportConfig;
        let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
        if let Some(endpoint) = &cfg.otlp_endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let exporter = builder
            .build()
            .map_err(|e| eprintln!("OTLP exporter: {e}"))
            .ok()?;
        let p = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("glance-api")
                    .build(),
            )
            .build();
        let tracer = p.tracer("glance-api");
        provider = Some(p);
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(EnvFilter::new(TRACE_FILTER)),
        )
    });
    propagation::install();
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(pool_wait::layer())
        .try_init();
    if wanted {
        warn_of_unsupported_protocol();
    }
    OtelGuard { provider }
}

/// The exporter speaks OTLP over HTTP with protobuf only (no gRPC client is
/// built in). Pointed at a gRPC-only collector it would fail on every batch,
/// so say so once, by name, instead.
fn warn_of_unsupported_protocol() {
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(protocol) = std::env::var(var)
            && !protocol.is_empty()
            && protocol != "http/protobuf"
        {
            tracing::warn!(
                variable = var,
                protocol = %protocol,
                "only OTLP over http/protobuf is supported; spans are sent that way"
            );
        }
    }
}
