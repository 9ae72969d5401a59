//! W3C trace context (`traceparent`, `tracestate`): taken from a client's
//! request so our spans join its trace, and passed on to what we call
//! (Keystone, S3, the notifications' message headers) so theirs join ours.

use opentelemetry::global;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes W3C trace context the process's propagator.
pub fn install() {
    global::set_text_map_propagator(TraceContextPropagator::new());
}

/// Makes the trace in `headers`, if any, the parent of `span`.
pub fn adopt(span: &tracing::Span, headers: &http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    // Fails only when the span is disabled (no exporter): nothing to join then.
    let _ = span.set_parent(parent);
}

/// Adds the current span's trace context to outgoing request headers.
pub fn inject(headers: &mut http::HeaderMap) {
    let cx = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
}

/// The current span's `traceparent`, for carriers that are not HTTP headers
/// (an AMQP message's headers); `None` outside a sampled trace.
pub fn traceparent() -> Option<String> {
    let mut headers = http::HeaderMap::new();
    inject(&mut headers);
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
