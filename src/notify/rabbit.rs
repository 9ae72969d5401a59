//! Notifications to RabbitMQ as oslo.messaging's `messagingv2` driver sends them: a
//! topic exchange (`glance`), routing key `<topic>.<priority>`, and the body wrapped
//! in the `{"oslo.version": "2.0", "oslo.message": "<json>"}` envelope, so existing
//! OpenStack consumers read them unchanged.
//!
//! Publishing never blocks a request: events go into a bounded queue drained by one
//! task that (re)connects as needed. With several brokers in `transport_url`, a
//! failed connection or publish moves it to the next one (oslo's round robin); an
//! event is sent again until the broker confirms it. While every broker is away
//! events wait in that queue; once it is full, new events are dropped, counted and
//! logged. [`RabbitSink::stats`] has the counts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use glance_layers::notifier::{EventSink, Notification, Priority};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, DefaultConnectionBuilder, ExchangeKind};
use tokio::sync::mpsc;

use super::transport_url::TransportUrl;

/// Events held while the broker cannot take them, at most.
pub const QUEUE_BOUND: usize = 10_000;

/// The first wait after every broker of the list failed; it doubles up to
/// [`MAX_BACKOFF`] while they keep failing.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct RabbitSink {
    tx: mpsc::Sender<Outgoing>,
    counters: Arc<Counters>,
}

/// What the sink has done since it started, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyStats {
    /// Events the broker confirmed (once per event, whatever the topics).
    pub published: u64,
    /// Events dropped because the queue was full (the broker away too long).
    pub dropped: u64,
    /// Events waiting to be published now.
    pub queue_depth: u64,
    /// Connections made to a broker (the first one included).
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Times the sink moved on to the next broker of `transport_url` after one
    /// failed (to connect, or under a publish).
    pub failovers: u64,
    /// Publishes the broker did not confirm (the connection is then remade
    /// and the event sent again).
    pub publish_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    failovers: AtomicU64,
    publish_failures: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// One event dropped: counted, and logged at powers of two so a long outage
    /// does not flood the log.
    fn drop_one(&self) {
        let total = Self::bump(&self.dropped);
        if total.is_power_of_two() {
            tracing::warn!(dropped = total, "notification queue full; events dropped");
        }
    }
}

/// Where the publisher connects: the brokers of `transport_url`, with TLS or not.
#[derive(Debug, Clone)]
pub struct Brokers {
    pub url: TransportUrl,
    /// `Some`: every host is reached over TLS (`amqps`) with this configuration.
    pub tls: Option<OwnedTLSConfig>,
    /// The host tried first: 0 for oslo's `round-robin`, a random one for
    /// `shuffle`.
    pub first: usize,
}

impl Brokers {
    /// Plain AMQP to the hosts of `transport_url`, the first one first.
    pub fn plain(transport_url: &str) -> Result<Self, String> {
        Ok(Brokers {
            url: TransportUrl::parse(transport_url).map_err(|e| e.to_string())?,
            tls: None,
            first: 0,
        })
    }
}

/// `rabbit://user:pass@host:port/vhost` (oslo's `transport_url`) as the AMQP URI
/// of its first host.
pub fn amqp_uri(transport_url: &str) -> Result<String, String> {
    let url = TransportUrl::parse(transport_url).map_err(|e| e.to_string())?;
    Ok(url.amqp_uri(0, url.ssl.unwrap_or(false)).to_string())
}

/// An event on its way to the broker, with the trace it was emitted in.
struct Outgoing {
    event: Notification,
    traceparent: Option<String>,
}

impl RabbitSink {
    /// Starts the publisher task. `topics` are oslo's notification topics
    /// (`notifications` by default); each event goes to every topic.
    pub fn start(brokers: Brokers, exchange: &str, topics: Vec<String>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_BOUND);
        let counters = Arc::new(Counters::default());
        tokio::spawn(publisher(
            brokers,
            exchange.to_string(),
            topics,
            rx,
            counters.clone(),
        ));
        RabbitSink { tx, counters }
    }

    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every event queued so far is confirmed by the broker, or
    /// `timeout` passed; whether the queue emptied. For a process about to exit
    /// (`glance-api recover`), whose queued events would otherwise be lost.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.counters.queued.load(Ordering::Relaxed) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The counters as they are now.
    pub fn stats(&self) -> NotifyStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NotifyStats {
            published: get(&c.published),
            dropped: get(&c.dropped),
            queue_depth: get(&c.queued),
            connects: get(&c.connects),
            connect_failures: get(&c.connect_failures),
            failovers: get(&c.failovers),
            publish_failures: get(&c.publish_failures),
        }
    }
}

impl EventSink for RabbitSink {
    fn publish(&self, n: Notification) {
        // Counted before the send: the publisher may take it (and count it
        // out) before `try_send` returns.
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        let out = Outgoing {
            // Taken now, in the request's span: the publisher runs apart.
            traceparent: crate::telemetry::propagation::traceparent(),
            event: n,
        };
        if self.tx.try_send(out).is_err() {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            self.counters.drop_one();
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
    brokers: &Brokers,
    host: usize,
    exchange: &str,
    topics: &[String],
) -> lapin::Result<(Connection, Channel)> {
    let uri = brokers.url.amqp_uri(host, brokers.tls.is_some());
    let mut builder = DefaultConnectionBuilder::new()?.with_uri(uri);
    if let Some(tls) = &brokers.tls {
        builder = builder.with_tls_config(tls.clone());
    }
    let conn = builder.connect().await?;
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

/// Publishes one event to every topic; `true` once the broker confirmed all.
async fn publish_one(ch: &Channel, exchange: &str, topics: &[String], out: &Outgoing) -> bool {
    let n = &out.event;
    let body = envelope(n);
    // The request's trace context, for consumers that continue it.
    let mut headers = FieldTable::default();
    if let Some(tp) = &out.traceparent {
        headers.insert(
            "traceparent".into(),
            lapin::types::AMQPValue::LongString(tp.as_str().into()),
        );
    }
    for topic in topics {
        let key = format!("{topic}.{}", priority_key(n.priority));
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_headers(headers.clone());
        let sent = ch
            .basic_publish(
                exchange.into(),
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
            return false;
        }
    }
    true
}

/// The publisher task: connects to the hosts in turn (oslo's round robin: on a
/// failure, the next one), and publishes the queued events in order. After
/// every host failed in a row it waits, longer each round, taking new events
/// into the queue meanwhile.
async fn publisher(
    brokers: Brokers,
    exchange: String,
    topics: Vec<String>,
    mut rx: mpsc::Receiver<Outgoing>,
    counters: Arc<Counters>,
) {
    let hosts = brokers.url.hosts.len();
    let mut host = brokers.first % hosts;
    let mut pending: VecDeque<Outgoing> = VecDeque::new();
    let mut backoff = FIRST_BACKOFF;
    // Hosts that failed in a row since the last good connection.
    let mut failed_in_a_row = 0;
    loop {
        let (conn, ch) = match connect(&brokers, host, &exchange, &topics).await {
            Ok(c) => {
                Counters::bump(&counters.connects);
                backoff = FIRST_BACKOFF;
                failed_in_a_row = 0;
                let h = &brokers.url.hosts[host];
                tracing::info!(host = %h.host, port = h.port, "connected to the notification broker");
                c
            }
            Err(e) => {
                Counters::bump(&counters.connect_failures);
                let h = &brokers.url.hosts[host];
                tracing::warn!(host = %h.host, port = h.port, error = %e, "notification broker unreachable");
                host = (host + 1) % hosts;
                failed_in_a_row += 1;
                if hosts > 1 {
                    Counters::bump(&counters.failovers);
                }
                if failed_in_a_row < hosts {
                    continue;
                }
                failed_in_a_row = 0;
                // Keep taking events meanwhile, so the bounded channel is the only
                // limit on what waits.
                let deadline = tokio::time::sleep(backoff);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        n = rx.recv() => match n {
                            Some(n) if pending.len() < QUEUE_BOUND => pending.push_back(n),
                            Some(_) => {
                                counters.queued.fetch_sub(1, Ordering::Relaxed);
                                counters.drop_one();
                            }
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
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
            if publish_one(&ch, &exchange, &topics, &n).await {
                Counters::bump(&counters.published);
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            Counters::bump(&counters.publish_failures);
            pending.push_front(n);
            // The connection is suspect: the next host, as oslo fails over. A
            // broker that went silent would never answer the close; don't wait.
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                conn.close(320, "publish failed".into()),
            )
            .await;
            host = (host + 1) % hosts;
            if hosts > 1 {
                Counters::bump(&counters.failovers);
            }
            tracing::warn!("notification publish failed; reconnecting");
            break;
        }
    }
}

/// The sink's [`NotifyStats`] as metrics, read at each scrape.
pub fn rabbit_readings(sink: &RabbitSink) -> crate::telemetry::metrics::Readings {
    use crate::telemetry::metrics::{Kind, Readings};
    let read = |f: fn(&NotifyStats) -> u64| {
        let sink = sink.clone();
        move || f(&sink.stats()) as i64
    };
    Readings::default()
        .with(
            "glance_notifications_published",
            "Notifications the broker confirmed",
            Kind::Counter,
            read(|s| s.published),
        )
        .with(
            "glance_notifications_dropped",
            "Notifications dropped because the queue was full (the broker away too long)",
            Kind::Counter,
            read(|s| s.dropped),
        )
        .with(
            "glance_notification_queue_depth",
            "Notifications waiting to be published",
            Kind::Gauge,
            read(|s| s.queue_depth),
        )
        .with(
            "glance_notification_broker_failovers",
            "Moves to the next broker of transport_url after one failed",
            Kind::Counter,
            read(|s| s.failovers),
        )
        .with(
            "glance_notification_publish_failures",
            "Publishes the broker did not confirm (sent again after reconnecting)",
            Kind::Counter,
            read(|s| s.publish_failures),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_urls_become_amqp_uris() {
        assert_eq!(
            amqp_uri("rabbit://guest:guest@127.0.0.1:5672/").unwrap(),
            "amqp://guest:guest@127.0.0.1:5672/%2F?connection_timeout=5000"
        );
        assert_eq!(
            amqp_uri("rabbit://u:p@a:1,u:p@b:1/vh?ssl=1").unwrap(),
            "amqps://u:p@a:1/vh?connection_timeout=5000"
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
