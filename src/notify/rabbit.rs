//! Notifications to RabbitMQ as oslo.messaging's `messagingv2` driver sends them: a
//! topic exchange (`glance`), routing key `<topic>.<priority>`, and the body wrapped
//! in the `{"oslo.version": "2.0", "oslo.message": "<json>"}` envelope, so existing
//! OpenStack consumers read them unchanged.
//!
//! Publishing never blocks a request: events go into a bounded queue drained by one
//! task that (re)connects as needed. While the broker is away events wait in that
//! queue; once it is full, new events are dropped, counted and logged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use glance_layers::notifier::{EventSink, Notification, Priority};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::mpsc;

/// Events held while the broker cannot take them, at most.
pub const QUEUE_BOUND: usize = 10_000;

#[derive(Clone)]
pub struct RabbitSink {
    tx: mpsc::Sender<Notification>,
    dropped: Arc<AtomicU64>,
}

/// `rabbit://user:pass@host:port/vhost` (oslo's `transport_url`) as an AMQP URI.
pub fn amqp_uri(transport_url: &str) -> Result<String, String> {
    let rest = transport_url
        .strip_prefix("rabbit://")
        .ok_or_else(|| format!("transport_url {transport_url:?} is not rabbit://..."))?;
    // Several hosts may be listed, comma-separated; the first is used.
    let rest = rest.split(',').next().unwrap_or(rest);
    let (authority, vhost) = match rest.split_once('/') {
        Some((a, v)) => (a, v),
        None => (rest, ""),
    };
    let vhost = if vhost.is_empty() { "%2f" } else { vhost };
    Ok(format!("amqp://{authority}/{vhost}"))
}

impl RabbitSink {
    /// Starts the publisher task. `topics` are oslo's notification topics
    /// (`notifications` by default); each event goes to every topic.
    pub fn start(transport_url: &str, exchange: &str, topics: Vec<String>) -> Result<Self, String> {
        let uri = amqp_uri(transport_url)?;
        let (tx, rx) = mpsc::channel(QUEUE_BOUND);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(publisher(uri, exchange.to_string(), topics, rx));
        Ok(RabbitSink { tx, dropped })
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl EventSink for RabbitSink {
    fn publish(&self, n: Notification) {
        if self.tx.try_send(n).is_err() {
            let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if total.is_power_of_two() {
                tracing::warn!(dropped = total, "notification queue full; events dropped");
            }
        }
    }
}

fn priority_key(p: Priority) -> &'static str {
    match p {
        Priority::Info => "info",
        Priority::Warn => "warn",
        Priority::Error => "error",
    }
}

/// The AMQP body of one notification.
pub fn envelope(n: &Notification) -> Vec<u8> {
    let message = serde_json::to_string(n).unwrap_or_default();
    serde_json::to_vec(&serde_json::json!({"oslo.version": "2.0", "oslo.message": message}))
        .unwrap_or_default()
}

async fn connect(
    uri: &str,
    exchange: &str,
    topics: &[String],
) -> lapin::Result<(Connection, Channel)> {
    let conn = Connection::connect(uri, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    // Like oslo.messaging, declare the default queues so events published before a
    // consumer starts are kept for it.
    for topic in topics {
        for p in ["info", "warn", "error"] {
            let q = format!("{topic}.{p}");
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
            ch.queue_bind(
                q.as_str().into(),
                exchange.into(),
                q.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
    }
    Ok((conn, ch))
}

async fn publisher(
    uri: String,
    exchange: String,
    topics: Vec<String>,
    mut rx: mpsc::Receiver<Notification>,
) {
    let mut pending: VecDeque<Notification> = VecDeque::new();
    let mut backoff = Duration::from_millis(200);
    loop {
        let (conn, ch) = match connect(&uri, &exchange, &topics).await {
            Ok(c) => {
                backoff = Duration::from_millis(200);
                c
            }
            Err(e) => {
                tracing::warn!(error = %e, "notification broker unreachable; retrying");
                // Keep taking events meanwhile, so the bounded channel is the only
                // limit on what waits.
                let deadline = tokio::time::sleep(backoff);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        n = rx.recv() => match n {
                            Some(n) if pending.len() < QUEUE_BOUND => pending.push_back(n),
                            Some(_) => tracing::warn!("notification dropped: broker away and queue full"),
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        loop {
            let n = match pending.pop_front() {
                Some(n) => n,
                None => match rx.recv().await {
                    Some(n) => n,
                    None => {
                        let _ = conn.close(200, "shutdown".into()).await;
                        return;
                    }
                },
            };
            let body = envelope(&n);
            let mut failed = false;
            for topic in &topics {
                let key = format!("{topic}.{}", priority_key(n.priority));
                let props = BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_content_encoding("utf-8".into());
                let sent = ch
                    .basic_publish(
                        exchange.as_str().into(),
                        key.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        props,
                    )
                    .await;
                let confirmed = match sent {
                    Ok(confirm) => confirm.await.map(|c| !c.is_nack()).unwrap_or(false),
                    Err(_) => false,
                };
                if !confirmed {
                    failed = true;
                    break;
                }
            }
            if failed {
                tracing::warn!("notification publish failed; reconnecting");
                pending.push_front(n);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_urls_become_amqp_uris() {
        assert_eq!(
            amqp_uri("rabbit://guest:guest@127.0.0.1:5672/").unwrap(),
            "amqp://guest:guest@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            amqp_uri("rabbit://u:p@h:1/vh").unwrap(),
            "amqp://u:p@h:1/vh"
        );
        assert_eq!(
            amqp_uri("rabbit://u:p@a:1,u:p@b:1/").unwrap(),
            "amqp://u:p@a:1/%2f"
        );
        assert!(amqp_uri("kafka://x").is_err());
    }

    #[test]
    fn the_envelope_is_oslo_v2() {
        let n = Notification {
            message_id: "m".into(),
            publisher_id: "image.localhost".into(),
            event_type: "image.create".into(),
            priority: Priority::Info,
            payload: serde_json::json!({"id": "x"}),
            timestamp: "2026-01-01 00:00:00.000000".into(),
        };
        let v: serde_json::Value = serde_json::from_slice(&envelope(&n)).unwrap();
        assert_eq!(v["oslo.version"], "2.0");
        let inner: serde_json::Value =
            serde_json::from_str(v["oslo.message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["event_type"], "image.create");
        assert_eq!(inner["priority"], "INFO");
        assert_eq!(inner["payload"]["id"], "x");
    }
}
