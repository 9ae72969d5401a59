//! `POST /v2/images/{id}/import` as the domain sees it, after the API checked its
//! body: which method, into which stores.

/// One of Glance's import methods, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportMethod {
    /// Data staged with `PUT /stage`.
    GlanceDirect,
    /// Data fetched from a URL.
    WebDownload { uri: String },
    /// Data of this image, already in one store, copied to others.
    CopyImage,
    /// An image of another region's Glance.
    GlanceDownload {
        region: String,
        image_id: String,
        interface: String,
    },
    /// Data already at `url`, in one of the stores (the v2.17 location API's
    /// `location_import` task): checked, hashed, and recorded as the image's.
    Location {
        url: String,
        validation: Option<ValidationData>,
    },
}

/// The hash a location's data must have (`validation_data` of the location API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationData {
    /// `sha1`, `sha256`, `sha512` or `md5`.
    pub os_hash_algo: String,
    pub os_hash_value: String,
}

impl ImportMethod {
    /// The method's name in requests and in `enabled_import_methods`.
    pub fn name(&self) -> &'static str {
        match self {
            ImportMethod::GlanceDirect => "glance-direct",
            ImportMethod::WebDownload { .. } => "web-download",
            ImportMethod::CopyImage => "copy-image",
            ImportMethod::GlanceDownload { .. } => "glance-download",
            ImportMethod::Location { .. } => "location",
        }
    }
}

/// Where the data goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportTargets {
    /// No store named: the default store.
    Default,
    /// `stores` in the body, or `X-Image-Meta-Store`.
    Stores(Vec<String>),
    /// `all_stores: true`: every writable store.
    All,
}

/// An import request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRequest {
    pub method: ImportMethod,
    pub targets: ImportTargets,
    /// `false`: the image goes active at the first store written, and a failed
    /// store is only listed in `os_glance_failed_import`.
    pub all_stores_must_succeed: bool,
    /// The request body as the client sent it: the task's `input` keeps it.
    pub body: serde_json::Value,
}

mod events;
mod job;
mod legacy;
mod location;
pub mod plugins;
pub mod records;
mod runner;
pub mod source;
mod stage;

use std::sync::Arc;

use crate::location::digest::HashAlgo;
use crate::middleware::{Middleware, MiddlewareLayer, Next};
use crate::store::{Store, StoreSet};
use crate::{ImageError, ImageRequest, ImageResponse, ImageService, Operation, RequestContext};
pub use events::ImportEvents;
pub use location::LocationImportOptions;
pub use plugins::{ImageChanges, ImportPlugin, PluginInput, PluginOutcome, Plugins};
pub use records::{ImportJob, ImportOutcome, ImportPlan, ImportRecords};
pub use runner::Runner;
pub use source::WebSource;

/// What the import layer works with.
pub struct Settings {
    /// `enabled_import_methods`.
    pub methods: Vec<String>,
    /// The final stores.
    pub stores: StoreSet,
    /// Whether stores are named (`enabled_backends`): only then may a request
    /// pick stores or let some fail.
    pub multistore: bool,
    /// Where staged and downloaded data waits for the import.
    pub staging: Arc<dyn Store>,
    pub algo: HashAlgo,
    /// `image_size_cap`: the most a download may bring.
    pub size_cap: u64,
    pub records: Arc<dyn ImportRecords>,
    /// `web-download`'s fetcher; `None` refuses the method.
    pub web: Option<Arc<dyn WebSource>>,
    pub runner: Runner,
    pub events: ImportEvents,
    /// `[image_format]`: what the data written to the stores must be.
    pub format: crate::inspect::FormatPolicy,
    /// `image_import_plugins`, in order: run on staged data before the stores
    /// are written (not for copy-image).
    pub plugins: Plugins,
    /// How the location API's tasks read what they register.
    pub locations: LocationImportOptions,
}

/// Stages data, and starts imports that run in the background as tasks.
pub struct Imports {
    settings: Arc<Settings>,
}

/// The import layer: between quota and location in the stack.
pub type ImportLayer = MiddlewareLayer<Imports>;

impl MiddlewareLayer<Imports> {
    pub fn new(settings: Settings) -> Self {
        MiddlewareLayer::from_middleware(Imports {
            settings: Arc::new(settings),
        })
    }
}

impl Middleware for Imports {
    async fn call<S: ImageService>(
        &self,
        req: ImageRequest,
        next: Next<S>,
    ) -> Result<ImageResponse, ImageError> {
        let ImageRequest { ctx, op } = req;
        match op {
            Operation::Stage { id, data } => stage::stage(&self.settings, &ctx, id, data).await,
            Operation::Import { id, request } => self.start(&ctx, id, request).await,
            Operation::AddLocation {
                id,
                url,
                validation,
            } => {
                let image = next
                    .run(ImageRequest::new(ctx.clone(), Operation::Get { id }))
                    .await?
                    .into_image()?;
                self.add_location(&ctx, &image, url, validation).await
            }
            Operation::CreateTask(new) if new.kind == "import" => {
                legacy::create(self.settings.clone(), ctx, new, next.boxed()).await
            }
            op @ Operation::Delete { .. } => {
                let deleted = next.run(ImageRequest::new(ctx, op)).await?;
                if let Some(image) = deleted.as_image() {
                    self.remove_staged(image).await;
                }
                Ok(deleted)
            }
            op => next.run(ImageRequest::new(ctx, op)).await,
        }
    }
}

impl Imports {
    async fn start(
        &self,
        ctx: &RequestContext,
        id: String,
        request: ImportRequest,
    ) -> Result<ImageResponse, ImageError> {
        let s = &self.settings;
        let method = request.method;
        if !s.methods.iter().any(|m| m == method.name()) {
            return Err(ImageError::Invalid(format!(
                "Unknown import method name '{}'.",
                method.name()
            )));
        }
        if !request.all_stores_must_succeed && !s.multistore {
            return Err(ImageError::Invalid(format!(
                "All_stores_must_succeed can only be set with enabled_backends {}",
                match &method {
                    ImportMethod::WebDownload { uri } => uri.as_str(),
                    _ => "None",
                }
            )));
        }
        let stores = self.targets(&request.targets)?;
        match &method {
            ImportMethod::WebDownload { uri } => {
                let web = s.web.as_ref().ok_or_else(|| {
                    ImageError::Invalid("Unknown import method name 'web-download'.".into())
                })?;
                if let Err(why) = web.check(uri).await {
                    tracing::info!(%uri, %why, "web-download refused");
                    return Err(ImageError::Invalid(format!(
                        "URI for web-download does not pass filtering: {uri}"
                    )));
                }
            }
            ImportMethod::GlanceDownload { .. } => {
                return Err(ImageError::Unsupported(
                    "The glance-download import method is not supported by this server.".into(),
                ));
            }
            ImportMethod::GlanceDirect | ImportMethod::CopyImage => {}
            // Started by the location API only (`add_location`).
            ImportMethod::Location { .. } => {
                return Err(ImageError::Invalid(
                    "Unknown import method name 'location'.".into(),
                ));
            }
        }
        // Glance keeps `[null]` as the backend list without named stores.
        let backend = if s.multistore {
            serde_json::json!(stores)
        } else {
            serde_json::json!([null])
        };
        let plan = ImportPlan {
            method,
            stores,
            all_stores: request.targets == ImportTargets::All,
            all_stores_must_succeed: request.all_stores_must_succeed,
            task_input: serde_json::json!({
                "image_id": id,
                "import_req": request.body,
                "backend": backend,
            }),
        };
        match s.records.begin_import(ctx, &id, plan).await? {
            None => Ok(ImageResponse::Empty),
            Some(job) => {
                let task = job.task.clone();
                s.events.task("create", &task, task.status, &task.message);
                s.runner.spawn(job::run(self.settings.clone(), job));
                Ok(ImageResponse::Task(Box::new(task)))
            }
        }
    }

    /// The stores an import writes, in order: each named one must be enabled
    /// (Glance answers an unknown one with glance_store's `UnknownScheme`, a 409).
    fn targets(&self, targets: &ImportTargets) -> Result<Vec<String>, ImageError> {
        let stores = &self.settings.stores;
        // Without named stores Glance ignores `stores`, `all_stores` and the
        // header: there is only the one store.
        if !self.settings.multistore {
            return Ok(vec![stores.default_id().to_string()]);
        }
        let unknown =
            |id: &str| ImageError::Conflict(format!("Unknown scheme '{id}' found in URI"));
        Ok(match targets {
            ImportTargets::Default => vec![stores.default_id().to_string()],
            ImportTargets::Stores(ids) => {
                let mut out: Vec<String> = Vec::new();
                for id in ids {
                    if stores.get(id).is_none() {
                        return Err(unknown(id));
                    }
                    if !out.contains(id) {
                        out.push(id.clone());
                    }
                }
                out
            }
            ImportTargets::All => stores
                .iter()
                .filter(|(_, store)| store.capabilities().write)
                .map(|(id, _)| id.to_string())
                .collect(),
        })
    }

    /// A deleted image's staged data goes with it.
    async fn remove_staged(&self, image: &crate::Image) {
        let Some(url) = image.properties.get(records::STAGED_AT) else {
            return;
        };
        match self.settings.staging.delete(url).await {
            Ok(()) | Err(crate::store::StoreError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(image = %image.id, %url, error = %e, "could not remove the staged data of a deleted image")
            }
        }
    }
}
