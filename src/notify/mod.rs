//! Where notifications go: implementations of `glance_layers::notifier::EventSink`.

mod log;
mod rabbit;
pub mod rabbit_tls;
pub mod transport_url;

pub use log::JsonLinesSink;
pub use rabbit::{Brokers, NotifyStats, RabbitSink, amqp_uri, envelope, rabbit_readings};

use glance_layers::notifier::{EventSink, Notification};

/// Drops every notification (`driver = "noop"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

impl EventSink for NoopSink {
    fn publish(&self, _: Notification) {}
}
