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
//!
//! Every layer and the core run [`Observed`]: in a span of their own, their calls
//! reported to the stack's [`StackObserver`] if it has one (see [`crate::observe`]).

use tower::{Layer, ServiceBuilder};

use crate::auth::AuthLayer;
use crate::cache::CacheLayer;
use crate::import::ImportLayer;
use crate::location::LocationLayer;
use crate::notifier::NotifierLayer;
use crate::observe::{Observed, ObservedLayer, Observer, StackObserver};
use crate::policy::PolicyLayer;
use crate::protection::PropertyProtectionLayer;
use crate::quota::QuotaLayer;
use crate::{BoxImageService, ImageService};

type Wrap = Box<dyn FnOnce(BoxImageService, Observer) -> BoxImageService + Send>;

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
    observer: Observer,
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
            observer: None,
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

    /// Reports every layer's calls, and what they refuse, to `observer`.
    pub fn observe(mut self, observer: std::sync::Arc<dyn StackObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Adds a team's layer just inside auth (and property protection), so it sees
    /// who is asking. Layers added first are called first. Its span and metrics
    /// call it `custom`; [`Stack::named_layer`] gives it a name.
    pub fn layer<L>(self, layer: L) -> Self
    where
        L: Layer<BoxImageService> + Send + 'static,
        L::Service: ImageService,
    {
        self.named_layer("custom", layer)
    }

    /// [`Stack::layer`], under `name` in spans and metrics.
    pub fn named_layer<L>(mut self, name: &'static str, layer: L) -> Self
    where
        L: Layer<BoxImageService> + Send + 'static,
        L::Service: ImageService,
    {
        self.custom.push(Box::new(move |inner, observer| {
            BoxImageService::new(ObservedLayer::new(name, layer, observer).layer(inner))
        }));
        self
    }

    /// The stack around `core`, outermost first as listed in the module docs.
    pub fn build<S: ImageService>(self, core: S) -> BoxImageService {
        let observer = self.observer;
        fn watch<L>(
            name: &'static str,
            layer: Option<L>,
            o: &Observer,
        ) -> Option<ObservedLayer<L>> {
            layer.map(|l| ObservedLayer::new(name, l, o.clone()))
        }
        // Statically typed from the notifier down: the layers every request
        // crosses cost no boxing between them.
        let below = ServiceBuilder::new()
            // Emit image.* events for what happened (sees refusals too).
            .option_layer(watch("notifier", self.notifier, &observer))
            // Decide whether the caller may do it; hide what they may not see.
            .option_layer(watch("policy", self.policy, &observer))
            // Count images and bytes; cut uploads at the limit.
            .option_layer(watch("quota", self.quota, &observer))
            // Stage data, and start imports that run as background tasks.
            .option_layer(watch("import", self.import, &observer))
            // Serve whole downloads from this node's cache, fill it from the
            // stores; inside policy, so the download rules hold on a hit.
            .option_layer(watch("cache", self.cache, &observer))
            // Stream data into and out of stores, hashing on the way in.
            .option_layer(watch("location", self.location, &observer))
            .service(Observed::new("core", core, observer.clone()));
        let mut stack = BoxImageService::new(below);
        for wrap in self.custom.into_iter().rev() {
            stack = wrap(stack, observer.clone());
        }
        // Per-property role rules, where Glance puts them: just inside auth.
        if let Some(protection) = self.protection {
            stack = BoxImageService::new(
                ObservedLayer::new("protection", protection, observer.clone()).layer(stack),
            );
        }
        // Resolve who is asking before anything else looks at the request.
        BoxImageService::new(Observed::outermost(
            "auth",
            self.auth.layer(stack),
            observer,
        ))
    }
}
