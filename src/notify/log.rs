//! A JSON-lines file of notifications, written by a background task so publishing
//! never waits on the disk. When the queue is full, events are dropped and counted.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use glance_layers::notifier::{EventSink, Notification};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Events waiting to be written, at most.
const QUEUE: usize = 10_000;

#[derive(Clone)]
pub struct JsonLinesSink {
    tx: mpsc::Sender<Notification>,
    dropped: Arc<AtomicU64>,
}

impl JsonLinesSink {
    /// Opens (appends to) `path` and starts the writer task.
    pub async fn open(path: PathBuf) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        let (tx, mut rx) = mpsc::channel::<Notification>(QUEUE);
        tokio::spawn(async move {
            while let Some(n) = rx.recv().await {
                let mut line = serde_json::to_vec(&n).unwrap_or_default();
                line.push(b'\n');
                if let Err(e) = file.write_all(&line).await {
                    tracing::warn!(error = %e, path = %path.display(), "could not write a notification");
                }
                if rx.is_empty() {
                    let _ = file.flush().await;
                }
            }
        });
        Ok(JsonLinesSink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Events dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl EventSink for JsonLinesSink {
    fn publish(&self, n: Notification) {
        if self.tx.try_send(n).is_err() {
            let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if total.is_power_of_two() {
                tracing::warn!(dropped = total, "notification queue full; events dropped");
            }
        }
    }
}
