//! Notifications on a real RabbitMQ in oslo.messaging's format, and requests that
//! do not wait for a broker that is away.

mod common;

use std::time::Duration;

use common::services::{self, Service};
use futures_util::StreamExt;
use glance_api::config::NotificationDriver;
use glance_api::notify::{Brokers, RabbitSink};
use glance_layers::notifier::{EventSink, Notification, Priority};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use serde_json::{Value, json};

#[tokio::test]
async fn an_image_life_reaches_rabbitmq_in_oslo_format() {
    // `GLANCE_TEST_TRANSPORT_URL`, else RabbitMQ's standard local address.
    let Some(url) = services::url(Service::RabbitMq) else {
        return;
    };
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (exchange, topic) = (format!("glance_t_{run}"), format!("notifications_{run}"));
    let conn = lapin::Connection::connect(
        &glance_api::notify::amqp_uri(&url).unwrap(),
        Default::default(),
    )
    .await
    .expect("connect to RabbitMQ");
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let queue = format!("{topic}.listener");
    let opts = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    ch.queue_declare(queue.as_str().into(), opts, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        queue.as_str().into(),
        exchange.as_str().into(),
        format!("{topic}.*").as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            "test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let (ex, tp, u) = (exchange.clone(), topic.clone(), url.clone());
    let s = common::start_with(
        move |c| {
            c.oslo_messaging_notifications.driver = NotificationDriver::Messagingv2;
            c.oslo_messaging_notifications.topics = vec![tp];
            c.default.transport_url = Some(u);
            c.default.control_exchange = ex;
        },
        |b| b,
    )
    .await;
    let img = s.create(json!({"foo": "bar"})).await;
    let id = img["id"].as_str().unwrap();
    assert_eq!(
        s.upload(id, vec![5u8; 1000]).send().await.unwrap().status(),
        204
    );
    assert_eq!(
        s.delete(&format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );

    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|(t, _): &(String, Value)| t == "image.delete")
    {
        let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("notifications within 20 s")
            .unwrap()
            .unwrap();
        assert_eq!(delivery.routing_key.as_str(), format!("{topic}.info"));
        let envelope: Value = serde_json::from_slice(&delivery.data).unwrap();
        assert_eq!(envelope["oslo.version"], "2.0");
        let msg: Value = serde_json::from_str(envelope["oslo.message"].as_str().unwrap()).unwrap();
        for key in [
            "message_id",
            "publisher_id",
            "event_type",
            "priority",
            "payload",
            "timestamp",
        ] {
            assert!(msg.get(key).is_some(), "{key} missing from {msg}");
        }
        assert_eq!(msg["publisher_id"], "image.localhost");
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        seen.push((
            msg["event_type"].as_str().unwrap().to_string(),
            msg["payload"].clone(),
        ));
    }
    let kinds: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "image.create",
            "image.prepare",
            "image.upload",
            "image.activate",
            "image.update",
            "image.delete"
        ]
    );
    let upload = &seen[2].1;
    assert_eq!(upload["size"], 1000);
    assert_eq!(upload["properties"]["foo"], "bar");
    assert_eq!(seen[5].1["deleted"], true);

    // `/metrics` counts what the broker confirmed; the last confirm may land
    // just after its delivery.
    let published = r"glance_notifications_published_total ";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = s
            .get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let n: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(published))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        if n >= 6.0 {
            assert!(text.contains("glance_notification_queue_depth 0"), "{text}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "published {n}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    drop(s);
    for p in ["info", "warn", "error"] {
        let _ = ch
            .queue_delete(
                format!("{topic}.{p}").as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await;
    }
    let _ = ch
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
}

#[tokio::test]
async fn requests_do_not_wait_for_an_absent_broker() {
    let s = common::start_with(
        |c| {
            c.oslo_messaging_notifications.driver = NotificationDriver::Messagingv2;
            // Nothing listens on port 9.
            c.default.transport_url = Some("rabbit://guest:guest@127.0.0.1:9/".into());
        },
        |b| b,
    )
    .await;
    for _ in 0..5 {
        let img = s.create(json!({})).await;
        let id = img["id"].as_str().unwrap();
        assert_eq!(
            s.delete(&format!("/v2/images/{id}"))
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
    }
}

#[tokio::test]
async fn a_dead_broker_listed_first_is_failed_over_and_the_event_delivered() {
    let Some(url) = services::url(Service::RabbitMq) else {
        return;
    };
    // Nothing listens on port 1: the first host refuses at once.
    let live = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let transport_url = format!("rabbit://guest:guest@127.0.0.1:1,{live}");
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (exchange, topic) = (format!("glance_f_{run}"), format!("notifications_{run}"));
    let sink = RabbitSink::start(
        Brokers::plain(&transport_url).unwrap(),
        &exchange,
        vec![topic.clone()],
    );
    sink.publish(Notification::now(
        "image.localhost",
        "image.create",
        Priority::Info,
        json!({"id": run}),
    ));
    assert!(
        sink.drained(Duration::from_secs(20)).await,
        "not published: {:?}",
        sink.stats()
    );
    let stats = sink.stats();
    assert_eq!(stats.published, 1, "{stats:?}");
    assert_eq!(stats.queue_depth, 0, "{stats:?}");
    assert_eq!(stats.connects, 1, "{stats:?}");
    assert!(stats.connect_failures >= 1, "{stats:?}");
    assert!(stats.failovers >= 1, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");

    // The queue the sink declared (as oslo does) holds the event.
    let conn = lapin::Connection::connect(
        &glance_api::notify::amqp_uri(&url).unwrap(),
        Default::default(),
    )
    .await
    .expect("connect to RabbitMQ");
    let ch = conn.create_channel().await.unwrap();
    let queue = format!("{topic}.info");
    let got = ch
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the event is in its queue");
    let body: Value = serde_json::from_slice(&got.delivery.data).unwrap();
    let message: Value = serde_json::from_str(body["oslo.message"].as_str().unwrap()).unwrap();
    assert_eq!(message["event_type"], "image.create");
    assert_eq!(message["payload"]["id"], run.as_str());
    for p in ["info", "warn", "error"] {
        let _ = ch
            .queue_delete(
                format!("{topic}.{p}").as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await;
    }
    let _ = ch
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
}

#[test]
fn the_notifications_transport_url_wins_over_default() {
    let mut config = glance_api::config::Config::default();
    assert_eq!(config.notification_transport_url(), None);
    config.default.transport_url = Some("rabbit://a/".into());
    assert_eq!(config.notification_transport_url(), Some("rabbit://a/"));
    config.oslo_messaging_notifications.transport_url = Some("rabbit://b/".into());
    assert_eq!(config.notification_transport_url(), Some("rabbit://b/"));
}

#[tokio::test]
async fn tls_settings_that_cannot_be_read_stop_the_start_with_the_files_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("ca.pem");
    let mut config = glance_api::config::Config::default();
    config.default.data_dir = dir.path().to_path_buf();
    config.oslo_messaging_notifications.driver = NotificationDriver::Messagingv2;
    // TLS from the URL's query, as newer oslo.messaging reads it.
    config.oslo_messaging_notifications.transport_url =
        Some("rabbit://guest:guest@127.0.0.1:5671/?ssl=1".into());
    config.oslo_messaging_rabbit.ssl_ca_file = Some(missing.clone());
    let Err(e) = glance_api::app::AppBuilder::new(config).build().await else {
        panic!("started with an unreadable ssl_ca_file");
    };
    let e = e.to_string();
    assert!(
        e.contains("ssl_ca_file") && e.contains(&missing.display().to_string()),
        "{e}"
    );
}

/// A TCP relay to `target` that can be cut: every connection through it, and
/// its listener, close at once, as when a broker's host goes down.
struct Relay {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let mut stop = watch.clone();
                let (mut client, _) = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap(),
                    _ = stop.changed() => return,
                };
                let target = target.clone();
                tokio::spawn(async move {
                    let mut broker = tokio::net::TcpStream::connect(target).await.unwrap();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
                        _ = stop.changed() => {}
                    }
                });
            }
        });
        Relay { addr, cut }
    }
}

#[tokio::test]
async fn a_broker_lost_under_the_sink_is_failed_over_and_nothing_is_lost() {
    let Some(url) = services::url(Service::RabbitMq) else {
        return;
    };
    let live = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let (creds, host) = live.split_once('@').unwrap_or(("guest:guest", live));
    let host = host.split('/').next().unwrap().to_string();
    let relay = Relay::start(host).await;
    // The relay first: the sink connects through it, until it goes down.
    let transport_url = format!("rabbit://{creds}@{},{live}", relay.addr);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (exchange, topic) = (format!("glance_l_{run}"), format!("notifications_{run}"));
    let sink = RabbitSink::start(
        Brokers::plain(&transport_url).unwrap(),
        &exchange,
        vec![topic.clone()],
    );
    let event = |i: u32| {
        Notification::now(
            "image.localhost",
            "image.update",
            Priority::Info,
            json!({"i": i}),
        )
    };
    sink.publish(event(1));
    assert!(
        sink.drained(Duration::from_secs(20)).await,
        "{:?}",
        sink.stats()
    );
    assert_eq!(sink.stats().failovers, 0);

    relay.cut.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sink.publish(event(2));
    assert!(
        sink.drained(Duration::from_secs(20)).await,
        "{:?}",
        sink.stats()
    );
    let stats = sink.stats();
    assert_eq!(stats.published, 2, "{stats:?}");
    assert_eq!(stats.connects, 2, "{stats:?}");
    assert!(stats.failovers >= 1, "{stats:?}");

    let conn = lapin::Connection::connect(
        &glance_api::notify::amqp_uri(&url).unwrap(),
        Default::default(),
    )
    .await
    .expect("connect to RabbitMQ");
    let ch = conn.create_channel().await.unwrap();
    let queue = format!("{topic}.info");
    let mut seen = Vec::new();
    while let Some(got) = ch
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let body: Value = serde_json::from_slice(&got.delivery.data).unwrap();
        let message: Value = serde_json::from_str(body["oslo.message"].as_str().unwrap()).unwrap();
        seen.push(message["payload"]["i"].as_u64().unwrap());
    }
    assert_eq!(seen, [1, 2]);
    for p in ["info", "warn", "error"] {
        let _ = ch
            .queue_delete(
                format!("{topic}.{p}").as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await;
    }
    let _ = ch
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
}

#[tokio::test]
async fn with_tls_on_a_plain_broker_is_not_spoken_to_in_clear() {
    let Some(url) = services::url(Service::RabbitMq) else {
        return;
    };
    // The machine's RabbitMQ has no TLS listener: a TLS handshake with its
    // plain port fails, where plain AMQP would have published.
    let mut brokers = Brokers::plain(&url).unwrap();
    brokers.tls = Some(Default::default());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let sink = RabbitSink::start(brokers, &format!("glance_s_{run}"), vec![run.clone()]);
    sink.publish(Notification::now(
        "image.localhost",
        "image.create",
        Priority::Info,
        json!({}),
    ));
    assert!(!sink.drained(Duration::from_secs(2)).await);
    let stats = sink.stats();
    assert_eq!(stats.published, 0, "{stats:?}");
    assert_eq!(stats.connects, 0, "{stats:?}");
    assert!(stats.connect_failures >= 1, "{stats:?}");
    assert_eq!(stats.queue_depth, 1, "{stats:?}");
}
