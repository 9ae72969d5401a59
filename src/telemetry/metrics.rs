//! The server's metrics, in one registry, exposed as OpenMetrics text on
//! `/metrics` (see `crate::http::metrics_endpoint`).
//!
//! Names follow Prometheus conventions (`_seconds`, `_bytes`, counters end in
//! `_total`); the HTTP ones follow OpenTelemetry's HTTP server conventions
//! (`http_server_request_duration_seconds` by method, route and status). Each
//! part of the server records into the families here through the small methods
//! below, so the names and labels live in this one file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use glance_layers::observe::StackObserver;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LayerLabels {
    layer: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreBytesLabels {
    store: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets from 0.5 ms to about 4.5 min, doubling: a metadata call lands in the
/// first few, a multi-GiB upload in the last.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 20))
}

fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Family::new_with_constructor(seconds as fn() -> Histogram)
}

/// Every metric of the server. Clones share them.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Mutex<Registry>,
    http_duration: Histograms<HttpLabels>,
    http_active: Family<RouteLabels, Gauge>,
    http_request_bytes: Family<RouteLabels, Counter>,
    http_response_bytes: Family<RouteLabels, Counter>,
    layer_duration: Histograms<LayerLabels>,
    store_duration: Histograms<StoreLabels>,
    store_bytes: Family<StoreBytesLabels, Counter>,
    quota_refusals: Family<ResourceLabels, Counter>,
    policy_denials: Family<RuleLabels, Counter>,
    keystone_validations: Histograms<OutcomeLabels>,
    token_cache: Family<CacheLabels, Counter>,
    db_statements: Histograms<OutcomeLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Self {
        let inner = Inner {
            registry: Mutex::new(Registry::default()),
            http_duration: histograms(),
            http_active: Family::default(),
            http_request_bytes: Family::default(),
            http_response_bytes: Family::default(),
            layer_duration: histograms(),
            store_duration: histograms(),
            store_bytes: Family::default(),
            quota_refusals: Family::default(),
            policy_denials: Family::default(),
            keystone_validations: histograms(),
            token_cache: Family::default(),
            db_statements: histograms(),
        };
        {
            let mut r = inner.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register(
                "http_server_request_duration_seconds",
                "Time from a request's arrival to the end of its response body, by method, route and status",
                inner.http_duration.clone(),
            );
            r.register(
                "http_server_active_requests",
                "Requests in flight (a download until its body is sent), by method and route",
                inner.http_active.clone(),
            );
            r.register(
                "http_server_request_body_bytes",
                "Request body bytes read (uploads, staging, JSON), by method and route",
                inner.http_request_bytes.clone(),
            );
            r.register(
                "http_server_response_body_bytes",
                "Response body bytes sent (downloads, JSON), by method and route",
                inner.http_response_bytes.clone(),
            );
            r.register(
                "glance_layer_call_duration_seconds",
                "Calls of each domain layer (time below it included), by layer, operation and outcome",
                inner.layer_duration.clone(),
            );
            r.register(
                "glance_store_operation_duration_seconds",
                "Store calls (put, get, delete, size), by store, operation and outcome; a get's time ends when its data has been read",
                inner.store_duration.clone(),
            );
            r.register(
                "glance_store_bytes",
                "Image bytes written to and read from each store",
                inner.store_bytes.clone(),
            );
            r.register(
                "glance_quota_refusals",
                "Requests refused for passing a limit, by the limit's name",
                inner.quota_refusals.clone(),
            );
            r.register(
                "glance_policy_denials",
                "Requests the policy refused, by the rule that refused them",
                inner.policy_denials.clone(),
            );
            r.register(
                "glance_keystone_token_validations_seconds",
                "Token validations asked of Keystone, by outcome",
                inner.keystone_validations.clone(),
            );
            r.register(
                "glance_keystone_token_cache_lookups",
                "Token cache lookups before asking Keystone, by result (hit, miss)",
                inner.token_cache.clone(),
            );
            r.register(
                "glance_db_statement_duration_seconds",
                "Database statements (pool wait excluded), by outcome",
                inner.db_statements.clone(),
            );
            r.register(
                "glance_db_pool_acquire_duration_seconds",
                "Time each database statement waited for a pooled connection",
                super::pool_wait::histogram(),
            );
        }
        Metrics(Arc::new(inner))
    }

    /// Adds metrics read from elsewhere at each scrape (a pool's size, a queue's
    /// depth), as `(name, help, kind, read)`.
    pub fn add_readings(&self, readings: Readings) {
        self.0
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register_collector(Box::new(readings));
    }

    /// The whole registry as OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.0.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// A request ended: its response status and whole time.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.0
            .http_duration
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The in-flight gauge of a method and route.
    pub fn http_active(&self, method: &str, route: &str) -> Gauge {
        self.0
            .http_active
            .get_or_create_owned(&route_labels(method, route))
    }

    /// The request-body byte counter of a method and route.
    pub fn http_request_bytes(&self, method: &str, route: &str) -> Counter {
        self.0
            .http_request_bytes
            .get_or_create_owned(&route_labels(method, route))
    }

    /// The response-body byte counter of a method and route.
    pub fn http_response_bytes(&self, method: &str, route: &str) -> Counter {
        self.0
            .http_response_bytes
            .get_or_create_owned(&route_labels(method, route))
    }

    /// A store call ended.
    pub fn store_call(&self, store: &str, operation: &'static str, ok: bool, elapsed: Duration) {
        self.0
            .store_duration
            .get_or_create(&StoreLabels {
                store: store.to_string(),
                operation,
                outcome: if ok { "ok" } else { "error" },
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The byte counter of a store, for `direction` `read` or `written`.
    pub fn store_bytes(&self, store: &str, direction: &'static str) -> Counter {
        self.0.store_bytes.get_or_create_owned(&StoreBytesLabels {
            store: store.to_string(),
            direction,
        })
    }

    /// Keystone answered a token validation (`outcome`: `valid`, `invalid`,
    /// `unavailable`).
    pub fn keystone_validation(&self, outcome: &'static str, elapsed: Duration) {
        self.0
            .keystone_validations
            .get_or_create(&OutcomeLabels { outcome })
            .observe(elapsed.as_secs_f64());
    }

    /// A token cache lookup hit or missed.
    pub fn token_cache(&self, hit: bool) {
        self.0
            .token_cache
            .get_or_create(&CacheLabels {
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    /// A database statement ran.
    pub fn db_statement(&self, failed: bool, elapsed: Duration) {
        self.0
            .db_statements
            .get_or_create(&OutcomeLabels {
                outcome: if failed { "error" } else { "ok" },
            })
            .observe(elapsed.as_secs_f64());
    }
}

fn route_labels(method: &str, route: &str) -> RouteLabels {
    RouteLabels {
        method: method.to_string(),
        route: route.to_string(),
    }
}

impl StackObserver for Metrics {
    fn layer_call(
        &self,
        layer: &'static str,
        operation: &'static str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        self.0
            .layer_duration
            .get_or_create(&LayerLabels {
                layer,
                operation,
                outcome,
            })
            .observe(elapsed.as_secs_f64());
    }

    fn policy_denied(&self, rule: &str) {
        self.0
            .policy_denials
            .get_or_create(&RuleLabels {
                rule: rule.to_string(),
            })
            .inc();
    }

    fn quota_refused(&self, resource: &str) {
        self.0
            .quota_refusals
            .get_or_create(&ResourceLabels {
                resource: resource.to_string(),
            })
            .inc();
    }
}

/// Whether a reading only grows (a counter) or goes up and down (a gauge).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
}

type Read = Box<dyn Fn() -> i64 + Send + Sync>;

/// Values read from their owners at each scrape: what a pool or a queue keeps
/// itself, so the metric is never out of date and nobody copies it around.
#[derive(Default)]
pub struct Readings(Vec<(&'static str, &'static str, Kind, Read)>);

impl Readings {
    pub fn with(
        mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        read: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.0.push((name, help, kind, Box::new(read)));
        self
    }
}

impl std::fmt::Debug for Readings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|r| r.0)).finish()
    }
}

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, kind, read) in &self.0 {
            let value = read();
            match kind {
                Kind::Counter => {
                    let c = ConstCounter::new(value.max(0) as u64);
                    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
                }
                Kind::Gauge => {
                    let g = ConstGauge::new(value);
                    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_values_and_readings() {
        let m = Metrics::new();
        m.http_request("GET", "/v2/images", 200, Duration::from_millis(3));
        m.policy_denied("delete_image");
        m.quota_refused("image_size_total");
        m.add_readings(Readings::default().with(
            "glance_notification_queue_depth",
            "Events waiting",
            Kind::Gauge,
            || 7,
        ));
        let text = m.render();
        assert!(
            text.contains(
                r#"http_server_request_duration_seconds_count{method="GET",route="/v2/images",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"glance_policy_denials_total{rule="delete_image"} 1"#));
        assert!(text.contains(r#"glance_quota_refusals_total{resource="image_size_total"} 1"#));
        assert!(text.contains("glance_notification_queue_depth 7"));
        assert!(text.ends_with("# EOF\n"));
    }
}
