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
    let repo = parts::repo(config).await?;
    let leases = parts::lease_keeper(config)?;
    let stores = crate::store::from_config(config).map_err(StartError::Config)?;
    let staging = Arc::new(crate::store::staging(config).map_err(StartError::Config)?);
    let (sink, _) = parts::event_sink(config).await?;
    let recovery = parts::recovery(config, repo, stores, staging, leases, sink);
    recovery.sweep().await.map_err(StartError::Recovery)
}
