//! The one place the service is assembled: the domain stack (see
//! `glance_layers::stack`) over the core, the API over it, and the HTTP middleware
//! around that. Building each part from configuration is `app/parts.rs`.

mod parts;
mod recover;

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use glance_layers::auth::AuthLayer;
use glance_layers::cache::{CacheLayer, ImageCache};
use glance_layers::import::{ImportEvents, ImportLayer, Runner, Settings as ImportSettings};
use glance_layers::location::{LocationLayer, LocationOptions};
use glance_layers::notifier::NotifierLayer;
use glance_layers::policy::{PolicyLayer, PolicyRules};
use glance_layers::protection::PropertyProtectionLayer;
use glance_layers::quota::QuotaLayer;
use glance_layers::stack::Stack;
use glance_layers::{BoxImageService, ImageService};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sea_orm::DatabaseConnection;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::api::render::{ImageView, StoreWeights};
use crate::api::{Api, ApiBody, ApiConfig, REQUEST_ID, parse::PageLimits};
use crate::config::Config;
use crate::http::access::AccessLayer;
use crate::http::cors::CorsLayer;
use crate::http::health::{HealthDetail, HealthLayer};
use crate::http::metrics_endpoint::MetricsLayer;
use crate::http::request_id::RequestIdLayer;
use crate::recovery::Recovery;
use crate::service::{ImageCore, ImageLimits};
use crate::store::measured::MeasuredStore;
use crate::telemetry::metrics::Metrics;
pub use parts::load_policy;
pub use recover::recover_once;

/// The whole HTTP service, type-erased, as the server runs it.
pub type HttpService = BoxCloneSyncService<Request<Incoming>, Response<ApiBody>, Infallible>;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Migrations are pending and `serve` was told not to apply them.
    #[error("{0}")]
    Schema(String),
    #[error("image store: {0}")]
    Store(std::io::Error),
    #[error("notifications: {0}")]
    Notifications(std::io::Error),
    #[error("recovery sweep: {0}")]
    Recovery(String),
}

type Hook = Box<dyn FnOnce(Stack) -> Stack + Send>;

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
    /// Everything `/metrics` shows.
    pub metrics: Metrics,
    /// The RabbitMQ notification sink, with `driver = messagingv2`: its
    /// `stats()` are for metrics.
    pub rabbit: Option<crate::notify::RabbitSink>,
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
        self.hooks.push(Box::new(move |stack| stack.layer(layer)));
        self
    }

    pub async fn build(self) -> Result<App, StartError> {
        let config = self.config;
        let d = &config.default;
        let algo = parts::hash_algo(&config)?;
        std::fs::create_dir_all(&d.data_dir).map_err(StartError::Store)?;
        let metrics = Metrics::new();
        let repo = parts::repo(&config, &metrics).await?;
        let db: DatabaseConnection = repo.connection().clone();
        // A fresh database gets our metadef catalogue, so clients (Horizon,
        // tempest) find resource types as on a Glance after `db load_metadefs`.
        match crate::metadef_catalogue::load_embedded_if_empty(&repo).await {
            Ok(Some(report)) => {
                tracing::info!(namespaces = ?report.loaded, "loaded the built-in metadef catalogue")
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the built-in metadef catalogue did not load"),
        }
        let leases = parts::lease_keeper(&config)?;
        let node_id = leases.node_id().to_string();
        let core = ImageCore::new(
            repo.clone(),
            ImageLimits {
                image_property_quota: d.image_property_quota,
                image_tag_quota: d.image_tag_quota,
                image_member_quota: d.image_member_quota,
            },
            leases.clone(),
        )
        .with_task_ttl(chrono::Duration::hours(
            config.task.task_time_to_live as i64,
        ));
        let stores = crate::store::from_config(&config)
            .map_err(StartError::Config)?
            .map_stores(|id, store| MeasuredStore::wrap(id, store, metrics.clone()));
        let staging = Arc::new(crate::store::staging(&config).map_err(StartError::Config)?);
        // Named only when the operator named them (Glance sends the header only
        // with `enabled_backends`).
        let store_ids = if d.enabled_backends.is_some() {
            stores.ids()
        } else {
            Vec::new()
        };
        // Glance weighs locations only with `enabled_backends`; else the first wins.
        let image_view = ImageView {
            locations: d.show_multiple_locations,
            direct_url: d.show_image_direct_url.then(|| {
                StoreWeights(
                    store_ids
                        .iter()
                        .map(|id| (id.clone(), stores.weight(id)))
                        .collect(),
                )
            }),
        };
        let (sink, rabbit) = parts::event_sink(&config).await?;
        if let Some(r) = &rabbit {
            metrics.add_readings(crate::notify::rabbit_readings(r));
        }
        let image_cache = parts::image_cache(&config, &repo, &stores, &node_id).await?;
        // Take back what a crash left before serving anyone, then keep sweeping.
        let recovery = parts::recovery(
            &config,
            repo,
            stores.clone(),
            staging.clone(),
            leases,
            sink.clone(),
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
        let policy = PolicyRules::new(parts::load_policy(&config)?);

        // Glance's proxy chain: the order is the stack's; here only what each
        // layer is given.
        let records = Arc::new(core.clone());
        let import_methods = parts::imports(&config)?;
        let import_plugins = parts::import_plugins(&config, &staging)?;
        let web = Arc::new(
            crate::fetch::WebFetcher::new(&config.import_filtering_opts)
                .map_err(StartError::Config)?,
        );
        let authenticator = parts::authenticator(&config, &metrics)?;
        let health_stores = stores.clone();
        let mut stack = Stack::new(AuthLayer::new(authenticator.clone()))
            .observe(Arc::new(metrics.clone()))
            .protection(parts::property_rules(&config)?.map(PropertyProtectionLayer::new))
            .notifier(NotifierLayer::new(sink.clone(), &d.default_publisher_id))
            .policy(PolicyLayer::observed(
                policy.clone(),
                records.clone(),
                Some(Arc::new(metrics.clone())),
            ))
            .quota(QuotaLayer::new(
                parts::quota_limits(&config)?,
                parts::project_limits(&config)?,
                records.clone(),
            ))
            .import(import_methods.clone().map(|methods| {
                ImportLayer::new(ImportSettings {
                    methods,
                    stores: stores.clone(),
                    multistore: d.enabled_backends.is_some(),
                    staging: staging as Arc<dyn glance_layers::store::Store>,
                    algo,
                    size_cap: d.image_size_cap,
                    records: records.clone(),
                    web: Some(web),
                    runner: Runner::new(d.task_pool_threads),
                    events: ImportEvents::new(sink.clone(), &d.default_publisher_id),
                    format: config.image_format.policy(),
                    plugins: import_plugins,
                    locations: glance_layers::import::LocationImportOptions {
                        do_secure_hash: d.do_secure_hash,
                        http_retries: d.http_retries,
                    },
                })
            }))
            .cache(
                image_cache
                    .clone()
                    .map(|c| CacheLayer::new(Arc::new(c) as Arc<dyn ImageCache>)),
            )
            .location(LocationLayer::with_options(
                stores,
                algo,
                records,
                config.image_format.policy(),
                LocationOptions {
                    patch_locations: d.show_multiple_locations,
                    quota: d.image_location_quota,
                    multistore: d.enabled_backends.is_some(),
                },
            ));
        for hook in self.hooks {
            stack = hook(stack);
        }
        let api = Api::new(
            stack.build(core),
            ApiConfig {
                public_endpoint: d.public_endpoint.clone(),
                page_limits: PageLimits {
                    default: d.limit_param_default,
                    max: d.api_limit_max,
                },
                max_json_body: d.max_json_body,
                body_idle_timeout: (d.client_socket_timeout > 0)
                    .then(|| Duration::from_secs(d.client_socket_timeout)),
                store_ids,
                www_authenticate: parts::www_authenticate(&config),
                import_methods: import_methods.unwrap_or_default(),
                image_view,
                image_cache: image_cache.is_some(),
            },
        );
        let cors = CorsLayer::from_config(&config.cors).map_err(StartError::Config)?;
        let health = HealthLayer::new(
            &config.healthcheck,
            HealthDetail {
                auth: authenticator.clone(),
                db,
                stores: health_stores,
            },
        );
        let http = ServiceBuilder::new()
            // First in Glance's pipeline too: a load balancer's poll crosses
            // nothing else, and is neither logged nor counted.
            .layer(health)
            // Outermost otherwise, as in Glance's pipelines: every answer, even
            // a refusal before the API, carries the CORS headers.
            .option_layer(cors)
            .layer(RequestIdLayer)
            // Sees the request id, and every answer below, whole.
            .layer(AccessLayer::new(metrics.clone()))
            .layer(MetricsLayer::new(
                metrics.clone(),
                authenticator,
                parts::www_authenticate(&config),
            ))
            .map_response(|r: Response<_>| r.map(|b: _| ApiBody::new(BodyExt::map_err(b, Into::into))))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id);
                crate::telemetry::propagation::adopt(&span, req.headers());
                span
            }))
            .layer(CatchPanicLayer::custom(panic_response))
            .service(api);
        Ok(App {
            http: HttpService::new(http.map_err(|e: Infallible| e)),
            config,
            policy,
            recovery,
            metrics,
            rabbit,
        })
    }
}

impl App {
    /// Re-reads the policy file (on SIGHUP); a broken file keeps the rules in force.
    pub fn reload_policy(&self) -> Result<(), StartError> {
        let rules = parts::load_policy(&self.config)?;
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
