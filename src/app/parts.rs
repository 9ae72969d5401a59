//! Building each part of the service from configuration: the database, the
//! notification sink, the authenticator, the rule sets and the limits. How the
//! parts fit together is `super` (`app.rs`)'s business.

use std::sync::Arc;
use std::time::Duration;

use glance_layers::auth::{Authenticator, NoAuth, TrustedHeaders};
use glance_layers::location::digest::HashAlgo;
use glance_layers::notifier::EventSink;
use glance_layers::policy::rules::RuleSet;
use glance_layers::protection::PropertyRules;
use glance_layers::quota::{LimitSource, ProjectLimits, QuotaLimits};

use super::StartError;
use crate::config::{AuthMode, Config, NotificationDriver};
use crate::db::{PoolOptions, Repo};
use crate::keystone::{
    EndpointRef, KeystoneAuth, KeystoneClient, KeystoneLimits, Scope, ServiceCredentials,
};
use crate::notify::rabbit_tls::tls_config;
use crate::notify::transport_url::TransportUrl;
use crate::notify::{Brokers, JsonLinesSink, NoopSink, RabbitSink};
use crate::recovery::{LeaseKeeper, NodeIdentity, Recovery};
use crate::store::FileStore;
use crate::telemetry::metrics::Metrics;
use glance_layers::store::StoreSet;

/// `[DEFAULT] hashing_algorithm`.
pub(super) fn hash_algo(config: &Config) -> Result<HashAlgo, StartError> {
    let name = &config.default.hashing_algorithm;
    HashAlgo::parse(name).ok_or_else(|| {
        StartError::Config(format!(
            "hashing_algorithm {name:?} is not one of sha256, sha384, sha512"
        ))
    })
}

/// The image records, migrated (or checked to be, with `auto_migrate` off), with
/// SQLite's single writer where it applies.
pub(super) async fn repo(config: &Config, metrics: &Metrics) -> Result<Repo, StartError> {
    let pool = PoolOptions {
        acquire_timeout: Duration::from_secs(config.database.pool_timeout),
        max_connections: config.database.max_pool_size,
    };
    let mut db = if config.database.auto_migrate {
        crate::db::connect_with(&config.database_url(), pool).await?
    } else {
        let db = crate::db::open_with(&config.database_url(), pool).await?;
        crate::db::admin::ensure_current(&db)
            .await
            .map_err(|e| match e {
                crate::db::admin::SchemaError::Db(e) => StartError::Database(e),
                pending => StartError::Schema(pending.to_string()),
            })?;
        db
    };
    let mut writer = crate::db::connect_writer(&config.database_url(), pool).await?;
    for conn in std::iter::once(&mut db).chain(writer.as_mut()) {
        let m = metrics.clone();
        conn.set_metric_callback(move |info| m.db_statement(info.failed, info.elapsed));
    }
    metrics.add_readings(crate::db::pool_readings(&db));
    Ok(match writer {
        Some(writer) => Repo::new(db).with_writer(writer),
        None => Repo::new(db),
    })
}

/// This node's lease keeper: its identity (locked for the life of the process,
/// so two processes never act as one node) and `upload_lease_ttl`.
pub(super) fn lease_keeper(config: &Config) -> Result<LeaseKeeper, StartError> {
    let d = &config.default;
    let node =
        NodeIdentity::establish(d.node_id.as_deref(), &d.data_dir).map_err(StartError::Config)?;
    tracing::info!(node = %node.node_id, "upload leases are taken as this node");
    Ok(LeaseKeeper::new(
        node,
        Duration::from_secs(d.upload_lease_ttl.max(1)),
    ))
}

/// The crash-recovery sweeper over this node's stores and leases; `serve` runs
/// it at start-up and then periodically, `glance-api recover` once.
pub(super) fn recovery(
    config: &Config,
    repo: Repo,
    stores: StoreSet,
    staging: Arc<FileStore>,
    leases: LeaseKeeper,
    sink: Arc<dyn EventSink>,
) -> Recovery {
    Recovery::new(
        repo,
        stores,
        staging,
        leases,
        sink,
        &config.default.default_publisher_id,
    )
    .with_task_ttl(chrono::Duration::hours(
        config.task.task_time_to_live as i64,
    ))
}

/// `image_cache_dir`: this node's image cache, started, when it is on.
pub(super) async fn image_cache(
    config: &Config,
    repo: &Repo,
    stores: &glance_layers::store::StoreSet,
    node_id: &str,
) -> Result<Option<crate::cache::DiskCache>, StartError> {
    let d = &config.default;
    let Some(dir) = &d.image_cache_dir else {
        return Ok(None);
    };
    if d.image_cache_driver != "centralized_db" {
        return Err(StartError::Config(format!(
            "image_cache_driver {:?} is not supported; only centralized_db (the cache index in the database) is built",
            d.image_cache_driver
        )));
    }
    let settings = crate::cache::Settings {
        dir: dir.clone(),
        max_size: d.image_cache_max_size,
        stall_time: Duration::from_secs(d.image_cache_stall_time),
        // Glance keys the index by this URL; without one, the node's id.
        node_url: d
            .worker_self_reference_url
            .clone()
            .unwrap_or_else(|| node_id.to_string()),
    };
    crate::cache::DiskCache::start(settings, repo.clone(), stores.clone())
        .await
        .map(Some)
        .map_err(StartError::Config)
}

/// `[oslo_messaging_notifications] driver`: where image events go; with
/// `messagingv2`, also the RabbitMQ sink itself, whose counters are for metrics.
pub(super) async fn event_sink(
    config: &Config,
) -> Result<(Arc<dyn EventSink>, Option<RabbitSink>), StartError> {
    Ok(match config.oslo_messaging_notifications.driver {
        NotificationDriver::Log => (
            Arc::new(
                JsonLinesSink::open(config.notification_log())
                    .await
                    .map_err(StartError::Notifications)?,
            ),
            None,
        ),
        NotificationDriver::Noop => (Arc::new(NoopSink), None),
        NotificationDriver::Messagingv2 => {
            let sink = RabbitSink::start(
                rabbit_brokers(config)?,
                &config.default.control_exchange,
                config.oslo_messaging_notifications.topics.clone(),
            );
            (Arc::new(sink.clone()), Some(sink))
        }
    })
}

/// The brokers of the notification `transport_url`, with `[oslo_messaging_rabbit]`'s
/// TLS (on with `ssl = true` or the URL's `?ssl=1`) and failover order.
fn rabbit_brokers(config: &Config) -> Result<Brokers, StartError> {
    let url = config.notification_transport_url().ok_or_else(|| {
        StartError::Config(
            "driver messagingv2 needs a transport_url ([oslo_messaging_notifications] or [DEFAULT])"
                .into(),
        )
    })?;
    let url = TransportUrl::parse(url).map_err(|e| StartError::Config(e.to_string()))?;
    let rabbit = &config.oslo_messaging_rabbit;
    let tls = if url.ssl.unwrap_or(rabbit.ssl) {
        Some(tls_config(rabbit).map_err(|e| StartError::Config(e.to_string()))?)
    } else {
        None
    };
    let first = match rabbit.kombu_failover_strategy.as_str() {
        "round-robin" => 0,
        // Any host to start with; the order after it stays the URL's.
        "shuffle" => uuid::Uuid::new_v4().as_u128() as usize % url.hosts.len(),
        other => {
            return Err(StartError::Config(format!(
                "[oslo_messaging_rabbit] kombu_failover_strategy {other:?} is not round-robin or shuffle"
            )));
        }
    };
    Ok(Brokers { url, tls, first })
}

/// `[auth] mode`: who vouches for callers.
pub(super) fn authenticator(
    config: &Config,
    metrics: &Metrics,
) -> Result<Arc<dyn Authenticator>, StartError> {
    Ok(match config.auth.mode {
        AuthMode::Noauth => {
            tracing::warn!(
                project = %config.auth.noauth_project_id,
                "auth mode noauth: every request is an admin; do not expose this server"
            );
            Arc::new(NoAuth::new(
                config.auth.noauth_project_id.clone(),
                config.auth.noauth_user_id.clone(),
            ))
        }
        AuthMode::TrustedHeaders => Arc::new(TrustedHeaders),
        AuthMode::Keystone => {
            let k = &config.keystone_authtoken;
            Arc::new(
                KeystoneAuth::new(
                    keystone_client(config, false)?,
                    Duration::from_secs(k.token_cache_time),
                    k.token_cache_size,
                    k.service_token_roles.clone(),
                    k.service_token_roles_required,
                )
                .with_metrics(metrics.clone()),
            )
        }
    })
}

/// Keystone's URI for `WWW-Authenticate`, when Keystone authenticates callers.
pub(super) fn www_authenticate(config: &Config) -> Option<String> {
    (config.auth.mode == AuthMode::Keystone).then(|| {
        let k = &config.keystone_authtoken;
        k.www_authenticate_uri
            .clone()
            .or_else(|| k.auth_url.clone())
            .unwrap_or_default()
    })
}

/// The import methods to offer (`None`: import is off), after checking that
/// each is one this server has (the plugins are checked by [`import_plugins`]).
pub(super) fn imports(config: &Config) -> Result<Option<Vec<String>>, StartError> {
    let mut methods = Vec::new();
    for m in &config.default.enabled_import_methods {
        match m.as_str() {
            "glance-direct" | "web-download" | "copy-image" => methods.push(m.clone()),
            // A glance-api.conf that enables it still starts: the method is
            // simply not offered (clients read `/v2/info/import`).
            "glance-download" => tracing::warn!(
                "enabled_import_methods: glance-download is not built; it is not offered"
            ),
            other => {
                return Err(StartError::Config(format!(
                    "enabled_import_methods: {other:?} is not an import method (glance-direct, web-download, copy-image)"
                )));
            }
        }
    }
    let opts = &config.image_import_opts;
    if opts.max_parallel_stores > 1 {
        tracing::warn!(
            max_parallel_stores = opts.max_parallel_stores,
            "imports write one store at a time; max_parallel_stores is ignored"
        );
    }
    Ok((!methods.is_empty()).then_some(methods))
}

/// `image_import_plugins`, in order; a name not built here stops the start,
/// whether or not import is enabled, rather than being silently skipped.
pub(super) fn import_plugins(
    config: &Config,
    staging: &Arc<crate::store::FileStore>,
) -> Result<glance_layers::import::Plugins, StartError> {
    crate::import_plugins::build(config, staging).map_err(StartError::Config)
}

/// `property_protection_file`, when set.
pub(super) fn property_rules(config: &Config) -> Result<Option<PropertyRules>, StartError> {
    let d = &config.default;
    let Some(path) = &d.property_protection_file else {
        return Ok(None);
    };
    if d.property_protection_rule_format != "roles" {
        return Err(StartError::Config(format!(
            "property_protection_rule_format {:?} is not supported; use \"roles\"",
            d.property_protection_rule_format
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        StartError::Config(format!("property_protection_file {}: {e}", path.display()))
    })?;
    PropertyRules::parse(&text)
        .map(Some)
        .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))
}

/// The limits that are the same for every project.
pub(super) fn quota_limits(config: &Config) -> Result<QuotaLimits, StartError> {
    let d = &config.default;
    Ok(QuotaLimits {
        image_size_cap: d.image_size_cap,
        user_storage_quota: if d.use_keystone_limits {
            None
        } else {
            d.user_storage_quota_bytes().map_err(StartError::Config)?
        },
    })
}

/// Per-project limits: Keystone's unified limits, or `[quota]`.
pub(super) fn project_limits(config: &Config) -> Result<Arc<dyn LimitSource>, StartError> {
    if !config.default.use_keystone_limits {
        let mib = |v: Option<u64>| v.map(|m| m.saturating_mul(1 << 20));
        let q = &config.quota;
        return Ok(Arc::new(ProjectLimits {
            image_count_total: q.image_count_total,
            image_size_total: mib(q.image_size_total),
            image_stage_total: mib(q.image_stage_total),
            image_count_uploading: q.image_count_uploading,
        }));
    }
    let o = &config.oslo_limit;
    let endpoint = match (&o.endpoint_id, &o.endpoint_service_type) {
        (Some(id), _) => EndpointRef::Id(id.clone()),
        (None, Some(t)) => EndpointRef::ServiceType {
            service_type: t.clone(),
            region: o.endpoint_region_name.clone(),
        },
        (None, None) => {
            return Err(StartError::Config(
                "use_keystone_limits needs [oslo_limit] endpoint_id or endpoint_service_type"
                    .into(),
            ));
        }
    };
    Ok(Arc::new(KeystoneLimits::new(
        keystone_client(config, true)?,
        endpoint,
    )))
}

/// A Keystone client with `[keystone_authtoken]`'s service credentials, or for
/// unified limits `[oslo_limit]`'s (each unset one taken from the former),
/// system scoped as oslo.limit needs to read any project's limits.
fn keystone_client(config: &Config, for_limits: bool) -> Result<Arc<KeystoneClient>, StartError> {
    let k = &config.keystone_authtoken;
    let o = if for_limits {
        config.oslo_limit.clone()
    } else {
        Default::default()
    };
    let required = |v: Option<String>, name: &str| {
        v.ok_or_else(|| {
            StartError::Config(format!(
                "[keystone_authtoken] {name} is required for Keystone"
            ))
        })
    };
    let scope = if for_limits {
        Scope::System
    } else {
        Scope::Project {
            name: required(k.project_name.clone(), "project_name")?,
            domain_name: k.project_domain_name.clone(),
        }
    };
    let creds = ServiceCredentials {
        auth_url: required(o.auth_url.or_else(|| k.auth_url.clone()), "auth_url")?,
        username: required(o.username.or_else(|| k.username.clone()), "username")?,
        password: required(o.password.or_else(|| k.password.clone()), "password")?,
        user_domain_name: o
            .user_domain_name
            .unwrap_or_else(|| k.user_domain_name.clone()),
        scope,
    };
    KeystoneClient::new(
        creds,
        Duration::from_secs(k.http_connect_timeout),
        Duration::from_secs(k.http_request_timeout),
    )
    .map(Arc::new)
    .map_err(StartError::Config)
}

/// Glance's default rules, with `[oslo_policy] policy_file` on top when set.
pub fn load_policy(config: &Config) -> Result<RuleSet, StartError> {
    let Some(path) = &config.oslo_policy.policy_file else {
        return Ok(RuleSet::defaults());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| StartError::Config(format!("policy_file {}: {e}", path.display())))?;
    glance_layers::policy::file::load(&text)
        .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))
}
