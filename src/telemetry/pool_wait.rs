//! How long statements waited for a database connection.
//!
//! sea-orm takes a connection from its pool inside each of its own calls, so
//! there is no place of ours to time the wait around. sqlx reports every
//! acquisition as a `tracing` event instead (with the pool's
//! `acquire_time_level` set, as `crate::db` does): target
//! `sqlx::pool::acquire`, field `acquired_after_secs`. [`layer`] turns those
//! events into one histogram.
//!
//! Events reach a subscriber, and there is one per process, so the histogram
//! is process-wide too: every [`Metrics`](super::metrics::Metrics) registers
//! the same one. Without the subscriber (a test that builds the app in
//! process) it stays empty.

use std::sync::LazyLock;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};

/// sqlx's target for its acquisition events.
const TARGET: &str = "sqlx::pool::acquire";

/// Buckets from 10 µs to about 21 s, doubling: an idle pool answers in the
/// first few; a pool at `max_pool_size` under load climbs towards
/// `pool_timeout`.
static WAITS: LazyLock<Histogram> =
    LazyLock::new(|| Histogram::new(exponential_buckets(0.000_01, 2.0, 22)));

/// The process's pool-wait histogram, for a registry.
pub(crate) fn histogram() -> Histogram {
    WAITS.clone()
}

/// The subscriber layer that records sqlx's acquisition events, and only them.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    PoolWaits.with_filter(Targets::new().with_target(TARGET, Level::TRACE))
}

struct PoolWaits;

impl<S: Subscriber> Layer<S> for PoolWaits {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut waited = AcquiredAfter(None);
        event.record(&mut waited);
        if let Some(secs) = waited.0 {
            WAITS.observe(secs);
        }
    }
}

/// Picks `acquired_after_secs` out of an event's fields.
struct AcquiredAfter(Option<f64>);

impl Visit for AcquiredAfter {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "acquired_after_secs" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn count() -> u64 {
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("w", "", histogram());
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("w_count "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn acquisition_events_are_observed_and_others_are_not() {
        let subscriber = tracing_subscriber::registry().with(layer());
        let before = count();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "sqlx::pool::acquire", acquired_after_secs = 0.25_f64, "acquired connection");
            tracing::warn!(target: "sqlx::pool::acquire", acquired_after_secs = 3.0_f64, slow_acquire_threshold_secs = 2.0_f64, "slow");
            // Another target, and the right target without the field.
            tracing::trace!(target: "sqlx::query", acquired_after_secs = 1.0_f64, "not ours");
            tracing::trace!(target: "sqlx::pool::acquire", "no field");
        });
        // Other tests may record concurrently through their own events, but
        // none run a subscriber with this layer, so the count moves by two.
        assert_eq!(count() - before, 2);
    }
}
