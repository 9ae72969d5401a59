//! Notifications on a real RabbitMQ in oslo.messaging's format, and requests that
//! do not wait for a broker that is away.

mod common;

use std::time::Duration;

use common::services::{self, Service};
use futures_util::StreamExt;
use glance_api::config::NotificationDriver;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
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
