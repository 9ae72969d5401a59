//! The one place the service is assembled from configuration: the domain stack
//! (auth → notifier → policy → quota → location → core), the API over it, and the
//! HTTP middleware around that.

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use glance_layers::auth::{AuthLayer, Authenticator, NoAuth, TrustedHeaders};
use glance_layers::location::LocationLayer;
use glance_layers::location::digest::HashAlgo;
use glance_layers::notifier::{EventSink, NotifierLayer};
use glance_layers::policy::{PolicyLayer, PolicyRules, rules::RuleSet};
use glance_layers::protection::{PropertyProtectionLayer, PropertyRules};
use glance_layers::quota::{LimitSource, ProjectLimits, QuotaLayer, QuotaLimits};
use glance_layers::{BoxImageService, ImageService};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::api::{Api, ApiBody, ApiConfig, REQUEST_ID, parse::PageLimits};
use crate::config::{AuthMode, Config, NotificationDriver};
use crate::db::{PoolOptions, Repo};
use crate::http::request_id::RequestIdLayer;
use crate::keystone::{
    EndpointRef, KeystoneAuth, KeystoneClient, KeystoneLimits, Scope, ServiceCredentials,
};
use crate::notify::{JsonLinesSink, NoopSink, RabbitSink};
use crate::recovery::{LeaseKeeper, NodeIdentity, Recovery};
use crate::service::{ImageCore, ImageLimits};

/// The whole HTTP service, type-erased, as the server runs it.
pub type HttpService = BoxCloneSyncService<Request<Incoming>, Response<ApiBody>, Infallible>;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("image store: {0}")]
    Store(std::io::Error),
    #[error("notifications: {0}")]
    Notifications(std::io::Error),
}

type Hook = Box<dyn FnOnce(BoxImageService) -> BoxImageService + Send>;

/// Builds the service; `layer` adds a team's own domain layer.
pub struct AppBuilder {
    config: Config,
    hooks: Vec<Hook>,
}

/// A built service and the parts tests and operators may want to reach.
#[derive(Clone)]
pub struct App {
    pub http: HttpService,
    pub config: Config,
    pub policy: PolicyRules,
    /// The crash-recovery sweeps (already running); tests and tools may run one.
    pub recovery: Recovery,
}

impl AppBuilder {
    pub fn new(config: Config) -> Self {
        AppBuilder {
            config,
            hooks: Vec::new(),
        }
    }

    /// Adds a domain layer just inside auth, so it sees who is asking. Layers added
    /// first are called first.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxImageService> + Send + 'static,
        L::Service: ImageService,
    {
        self.hooks.push(Box::new(move |inner| {
            BoxImageService::new(layer.layer(inner))
        }));
        self
    }

    pub async fn build(self) -> Result<App, StartError> {
        let config = self.config;
        let d = &config.default;
        let algo = HashAlgo::parse(&d.hashing_algorithm).ok_or_else(|| {
            StartError::Config(format!(
                "hashing_algorithm {:?} is not one of sha256, sha384, sha512",
                d.hashing_algorithm
            ))
        })?;
        std::fs::create_dir_all(&d.data_dir).map_err(StartError::Store)?;

        let pool = PoolOptions {
            acquire_timeout: Duration::from_secs(config.database.pool_timeout),
            max_connections: config.database.max_pool_size,
        };
        let db = crate::db::connect_with(&config.database_url(), pool).await?;
        let writer = crate::db::connect_writer(&config.database_url(), pool).await?;
        let repo = match writer {
            Some(writer) => Repo::new(db).with_writer(writer),
            None => Repo::new(db),
        };
        let node = NodeIdentity::establish(d.node_id.as_deref(), &d.data_dir)
            .map_err(StartError::Config)?;
        tracing::info!(node = %node.node_id, "upload leases are taken as this node");
        let leases = LeaseKeeper::new(node, Duration::from_secs(d.upload_lease_ttl.max(1)));
        let core = ImageCore::new(
            repo.clone(),
            ImageLimits {
                image_property_quota: d.image_property_quota,
                image_tag_quota: d.image_tag_quota,
                image_member_quota: d.image_member_quota,
            },
            leases.clone(),
        );
        let stores = crate::store::from_config(&config).map_err(StartError::Config)?;
        let store_ids = stores.ids();
        let sink: Arc<dyn EventSink> = match config.oslo_messaging_notifications.driver {
            NotificationDriver::Log => Arc::new(
                JsonLinesSink::open(config.notification_log())
                    .await
                    .map_err(StartError::Notifications)?,
            ),
            NotificationDriver::Noop => Arc::new(NoopSink),
            NotificationDriver::Messagingv2 => {
                let url = d.transport_url.as_deref().ok_or_else(|| {
                    StartError::Config("driver messagingv2 needs [DEFAULT] transport_url".into())
                })?;
                Arc::new(
                    RabbitSink::start(
                        url,
                        &d.control_exchange,
                        config.oslo_messaging_notifications.topics.clone(),
                    )
                    .map_err(StartError::Config)?,
                )
            }
        };
        // Take back what a crash left before serving anyone, then keep sweeping.
        let recovery = Recovery::new(
            repo,
            stores.clone(),
            leases,
            sink.clone(),
            &d.default_publisher_id,
        );
        match recovery.sweep().await {
            Ok(report) if !report.requeued.is_empty() || report.strays > 0 => {
                tracing::warn!(?report, "start-up recovery took back unfinished uploads")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "start-up recovery failed; the periodic sweep retries")
            }
        }
        recovery
            .clone()
            .spawn(Duration::from_secs(d.recovery_interval.max(1)));
        let authenticator: Arc<dyn Authenticator> = match config.auth.mode {
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
                Arc::new(KeystoneAuth::new(
                    keystone_client(&config, false)?,
                    std::time::Duration::from_secs(k.token_cache_time),
                    k.token_cache_size,
                    k.service_token_roles.clone(),
                    k.service_token_roles_required,
                ))
            }
        };
        let www_authenticate = (config.auth.mode == AuthMode::Keystone).then(|| {
            let k = &config.keystone_authtoken;
            k.www_authenticate_uri
                .clone()
                .or_else(|| k.auth_url.clone())
                .unwrap_or_default()
        });
        let policy = PolicyRules::new(load_policy(&config)?);
        let protections = match &d.property_protection_file {
            None => None,
            Some(path) => {
                if d.property_protection_rule_format != "roles" {
                    return Err(StartError::Config(format!(
                        "property_protection_rule_format {:?} is not supported; use \"roles\"",
                        d.property_protection_rule_format
                    )));
                }
                let text = std::fs::read_to_string(path).map_err(|e| {
                    StartError::Config(format!("property_protection_file {}: {e}", path.display()))
                })?;
                let rules = PropertyRules::parse(&text)
                    .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))?;
                Some(PropertyProtectionLayer::new(rules))
            }
        };
        let quota = QuotaLimits {
            image_size_cap: d.image_size_cap,
            user_storage_quota: if d.use_keystone_limits {
                None
            } else {
                d.user_storage_quota_bytes().map_err(StartError::Config)?
            },
        };
        let per_project: Arc<dyn LimitSource> = if d.use_keystone_limits {
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
            Arc::new(KeystoneLimits::new(
                keystone_client(&config, true)?,
                endpoint,
            ))
        } else {
            let mib = |v: Option<u64>| v.map(|m| m.saturating_mul(1 << 20));
            let q = &config.quota;
            Arc::new(ProjectLimits {
                image_count_total: q.image_count_total,
                image_size_total: mib(q.image_size_total),
                image_stage_total: mib(q.image_stage_total),
                image_count_uploading: q.image_count_uploading,
            })
        };

        // Glance's proxy chain, outermost first; each line can be removed or moved.
        let below_auth = ServiceBuilder::new()
            // Emit image.* events for what happened (sees refusals too).
            .layer(NotifierLayer::new(sink, &d.default_publisher_id))
            // Decide whether the caller may do it; hide what they may not see.
            .layer(PolicyLayer::new(policy.clone(), Arc::new(core.clone())))
            // Count images and bytes; cut uploads at the limit.
            .layer(QuotaLayer::new(quota, per_project, Arc::new(core.clone())))
            // Stream data into and out of stores, hashing on the way in.
            .layer(LocationLayer::new(stores, algo, Arc::new(core.clone())))
            .check_clone()
            .service(core);
        let mut stack = BoxImageService::new(below_auth);
        for hook in self.hooks.into_iter().rev() {
            stack = hook(stack);
        }
        // Per-property role rules, where Glance puts them: just inside auth.
        if let Some(protections) = protections {
            stack = BoxImageService::new(protections.layer(stack));
        }
        // Resolve who is asking before anything else looks at the request.
        let stack = BoxImageService::new(AuthLayer::new(authenticator).layer(stack));

        let api = Api::new(
            stack,
            ApiConfig {
                public_endpoint: d.public_endpoint.clone(),
                page_limits: PageLimits {
                    default: d.limit_param_default,
                    max: d.api_limit_max,
                },
                max_json_body: d.max_json_body,
                body_idle_timeout: (d.client_socket_timeout > 0)
                    .then(|| std::time::Duration::from_secs(d.client_socket_timeout)),
                store_ids,
                www_authenticate,
            },
        );
        let http = ServiceBuilder::new()
            .layer(RequestIdLayer)
            .map_response(|r: Response<_>| r.map(|b: _| ApiBody::new(BodyExt::map_err(b, Into::into))))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<Incoming>| {
                let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }))
            .layer(CatchPanicLayer::custom(panic_response))
            .service(api);
        Ok(App {
            http: HttpService::new(http.map_err(|e: Infallible| e)),
            config,
            policy,
            recovery,
        })
    }
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
        std::time::Duration::from_secs(k.http_connect_timeout),
        std::time::Duration::from_secs(k.http_request_timeout),
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

impl App {
    /// Re-reads the policy file (on SIGHUP); a broken file keeps the rules in force.
    pub fn reload_policy(&self) -> Result<(), StartError> {
        let rules = load_policy(&self.config)?;
        self.policy.replace(rules);
        Ok(())
    }
}

/// A panic anywhere below becomes a 500 in Glance's format; the server lives on.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<String> {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = %what, "request handler panicked");
    let mut resp = Response::new(
        "500 Internal Server Error\n\nThe server has either erred or is incapable of performing the requested operation.\n\n   "
            .to_string(),
    );
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    resp
}
