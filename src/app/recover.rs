//! `glance-api recover`: the start-up recovery sweep, once, by hand, with the
//! parts `serve` would build for it (see `parts::recovery`).

use std::sync::Arc;

use super::{StartError, parts};
use crate::config::Config;
use crate::recovery::SweepReport;

/// Runs one full sweep (dead leases, then stray data) as this node and returns
/// what it did. It takes the node's lock as `serve` does, so it refuses to run
/// beside a live server of the same node, whose uploads it would take for
/// dead ones. Leases of other nodes are taken back only once they expired.
pub async fn recover_once(config: &Config) -> Result<SweepReport, StartError> {
    std::fs::create_dir_all(&config.default.data_dir).map_err(StartError::Store)?;
    let repo = parts::repo(config, &crate::telemetry::metrics::Metrics::new()).await?;
    let leases = parts::lease_keeper(config)?;
    let stores = crate::store::from_config(config).map_err(StartError::Config)?;
    let staging = Arc::new(crate::store::staging(config).map_err(StartError::Config)?);
    let (sink, rabbit) = parts::event_sink(config).await?;
    let recovery = parts::recovery(config, repo, stores, staging, leases, sink);
    let report = recovery.sweep().await.map_err(StartError::Recovery)?;
    // The sweep's notifications (an `image.upload` error per upload taken back)
    // are still queued; the broker gets a while to take them before we exit.
    if let Some(rabbit) = rabbit
        && !rabbit.drained(NOTIFY_GRACE).await
    {
        tracing::warn!(
            queued = rabbit.stats().queue_depth,
            "notifications of the sweep not yet published; they are lost"
        );
    }
    Ok(report)
}

/// How long `recover` waits for RabbitMQ to take the sweep's notifications.
const NOTIFY_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
