//! The domain stack in Glance's order, assembled in one place: the server builds
//! it from configuration, the benches and tests from their own parts.
//!
//! ```text
//! auth → property protection → your layers → notifier → policy → quota → import → cache → location → core
//! ```
//!
//! Only auth is required (every other layer and the core need to know who asks).
//! Each other layer can be left out and the API still answers: without policy
//! every authenticated caller may do anything, without quota nothing is limited,
//! without the notifier nothing is published, without location there is no data.

use tower::{Layer, ServiceBuilder};

use crate::auth::AuthLayer;
use crate::cache::CacheLayer;
use crate::import::ImportLayer;
use crate::location::LocationLayer;
use crate::notifier::NotifierLayer;
use crate::policy::PolicyLayer;
use crate::protection::PropertyProtectionLayer;
use crate::quota::QuotaLayer;
use crate::{BoxImageService, ImageService};

type Wrap = Box<dyn FnOnce(BoxImageService) -> BoxImageService + Send>;

/// The layers of a domain stack; `build` puts them around a core.
pub struct Stack {
    auth: AuthLayer,
    protection: Option<PropertyProtectionLayer>,
    custom: Vec<Wrap>,
    notifier: Option<NotifierLayer>,
    policy: Option<PolicyLayer>,
    quota: Option<QuotaLayer>,
    import: Option<ImportLayer>,
    cache: Option<CacheLayer>,
    location: Option<LocationLayer>,
}

impl Stack {
    /// A stack of auth alone; add the others with the methods below.
    pub fn new(auth: AuthLayer) -> Self {
        Stack {
            auth,
            protection: None,
            custom: Vec::new(),
            notifier: None,
            policy: None,
            quota: None,
            import: None,
            cache: None,
            location: None,
        }
    }

    pub fn protection(mut self, layer: Option<PropertyProtectionLayer>) -> Self {
        self.protection = layer;
        self
    }

    pub fn notifier(mut self, layer: impl Into<Option<NotifierLayer>>) -> Self {
        self.notifier = layer.into();
        self
    }

    pub fn policy(mut self, layer: impl Into<Option<PolicyLayer>>) -> Self {
        self.policy = layer.into();
        self
    }

    pub fn quota(mut self, layer: impl Into<Option<QuotaLayer>>) -> Self {
        self.quota = layer.into();
        self
    }

    /// Staging and imports; without it `PUT /stage` and `POST /import` are
    /// unsupported.
    pub fn import(mut self, layer: impl Into<Option<ImportLayer>>) -> Self {
        self.import = layer.into();
        self
    }

    /// The image cache (`image_cache_dir`); without it downloads always read
    /// the stores and the cache API is not supported.
    pub fn cache(mut self, layer: impl Into<Option<CacheLayer>>) -> Self {
        self.cache = layer.into();
        self
    }

    pub fn location(mut self, layer: impl Into<Option<LocationLayer>>) -> Self {
        self.location = layer.into();
        self
    }

    /// Adds a team's layer just inside auth (and property protection), so it sees
    /// who is asking. Layers added first are called first.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxImageService> + Send + 'static,
        L::Service: ImageService,
    {
        self.custom.push(Box::new(move |inner| {
            BoxImageService::new(layer.layer(inner))
        }));
        self
    }

    /// The stack around `core`, outermost first as listed in the module docs.
    pub fn build<S: ImageService>(self, core: S) -> BoxImageService {
        // Statically typed from the notifier down: the layers every request
        // crosses cost no boxing between them.
        let below = ServiceBuilder::new()
            // Emit image.* events for what happened (sees refusals too).
            .option_layer(self.notifier)
            // Decide whether the caller may do it; hide what they may not see.
            .option_layer(self.policy)
            // Count images and bytes; cut uploads at the limit.
            .option_layer(self.quota)
            // Stage data, and start imports that run as background tasks.
            .option_layer(self.import)
            // Serve whole downloads from this node's cache, fill it from the
            // stores; inside policy, so the download rules hold on a hit.
            .option_layer(self.cache)
            // Stream data into and out of stores, hashing on the way in.
            .option_layer(self.location)
            .service(core);
        let mut stack = BoxImageService::new(below);
        for wrap in self.custom.into_iter().rev() {
            stack = wrap(stack);
        }
        // Per-property role rules, where Glance puts them: just inside auth.
        if let Some(protection) = self.protection {
            stack = BoxImageService::new(protection.layer(stack));
        }
        // Resolve who is asking before anything else looks at the request.
        BoxImageService::new(self.auth.layer(stack))
    }
}
