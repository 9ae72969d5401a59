//! What the domain layers cost per request: the stack the server builds (auth →
//! notifier → policy → quota → location) over a core that answers at once, beside
//! that core alone. Both are called as the API calls the stack (a clone of the
//! boxed service, then `oneshot`), so the difference is the layers' own work:
//! boxing and cloning, the policy rules, the notification payload of an update.
//! Then auth with each other layer alone, to see where the time goes, and the
//! member's stack with every layer's calls counted, as the server counts them.

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use glance_api::notify::NoopSink;
use glance_api::store::MemoryStore;
use glance_api::telemetry::metrics::Metrics;
use glance_layers::auth::{AuthLayer, Authenticator, NoAuth, TrustedHeaders};
use glance_layers::location::LocationLayer;
use glance_layers::location::digest::HashAlgo;
use glance_layers::notifier::NotifierLayer;
use glance_layers::patch::{Change, parse_changes};
use glance_layers::policy::rules::RuleSet;
use glance_layers::policy::{ImageLookup, PolicyLayer, PolicyRules, PolicyTarget};
use glance_layers::quota::{ProjectLimits, QuotaLayer, QuotaLimits, Usage, UsageSource};
use glance_layers::stack::Stack;
use glance_layers::store::StoreSet;
use glance_layers::uploads::{UploadLease, UploadRecords};
use glance_layers::{
    BoxImageService, Image, ImageError, ImageRequest, ImageResponse, ImageService, ImageStatus,
    Operation, RequestContext, StoredData, Visibility,
};
use tower::{Layer, ServiceExt};

const ID: &str = "0d0a7d36-5d7e-4b5b-9c43-7a2f4a1f3e10";
const PROJECT: &str = "8a1c2f9e4b7d4e3f9a6b5c4d3e2f1a0b";

/// An image as a list or show returns it: a few properties and tags.
fn image() -> Image {
    let mut img = Image::new(ID.into(), chrono::Utc::now());
    img.name = Some("cirros-0.6.3-x86_64".into());
    img.status = ImageStatus::Active;
    img.visibility = Visibility::Shared;
    img.owner = Some(PROJECT.into());
    img.size = Some(21_430_272);
    img.disk_format = Some("qcow2".into());
    img.container_format = Some("bare".into());
    for (k, v) in [
        ("os_distro", "cirros"),
        ("os_version", "0.6.3"),
        ("hw_disk_bus", "virtio"),
        ("architecture", "x86_64"),
    ] {
        img.properties.insert(k.into(), v.into());
    }
    img.tags.extend(["cirros".to_string(), "test".to_string()]);
    img
}

/// The policy's view of the image, without a database.
struct FixedLookup(PolicyTarget);

#[async_trait]
impl ImageLookup for FixedLookup {
    async fn lookup(&self, _: &str, _: Option<&str>) -> Result<Option<PolicyTarget>, ImageError> {
        Ok(Some(self.0.clone()))
    }
}

/// A project that uses nothing (only asked for creates and uploads).
struct NoUsage;

#[async_trait]
impl UsageSource for NoUsage {
    async fn usage(&self, _: &str) -> Result<Usage, ImageError> {
        Ok(Usage::default())
    }
}

/// The core, answering every request with the image at once.
fn core() -> BoxImageService {
    let img = image();
    BoxImageService::new(tower::service_fn(move |_: ImageRequest| {
        let img = img.clone();
        async move { Ok(ImageResponse::image(img)) }
    }))
}

fn notifier() -> NotifierLayer {
    NotifierLayer::new(Arc::new(NoopSink), "image.localhost")
}

fn policy() -> PolicyLayer {
    let target = PolicyTarget {
        image: Arc::new(image()),
        member: None,
    };
    PolicyLayer::new(
        PolicyRules::new(RuleSet::defaults()),
        Arc::new(FixedLookup(target)),
    )
}

fn quota() -> QuotaLayer {
    QuotaLayer::new(
        QuotaLimits::default(),
        Arc::new(ProjectLimits::default()),
        Arc::new(NoUsage),
    )
}

/// Upload records for a bench that never uploads.
struct NoUploads;

#[async_trait]
impl UploadRecords for NoUploads {
    async fn begin(
        &self,
        _: &RequestContext,
        id: &str,
        _: &str,
    ) -> Result<UploadLease, ImageError> {
        Err(ImageError::not_found(id))
    }
    async fn note_partial(&self, _: &UploadLease, _: &str) -> Result<(), ImageError> {
        Ok(())
    }
    async fn finish(&self, l: &UploadLease, _: &StoredData) -> Result<Image, ImageError> {
        Err(ImageError::not_found(&l.image_id))
    }
    async fn holds(&self, _: &UploadLease) -> Result<bool, ImageError> {
        Ok(false)
    }
    async fn abort(&self, _: &UploadLease, _: bool) -> Result<(), ImageError> {
        Ok(())
    }
    fn forget(&self, _: &UploadLease) {}
    async fn remove_location(&self, image: &Image, _: &str) -> Result<Image, ImageError> {
        Err(ImageError::not_found(&image.id))
    }
}

fn location() -> LocationLayer {
    LocationLayer::new(
        StoreSet::single("file", Arc::new(MemoryStore::default())),
        HashAlgo::Sha512,
        Arc::new(NoUploads),
        Default::default(),
    )
}

fn noauth() -> AuthLayer {
    AuthLayer::new(Arc::new(NoAuth::new("admin", "admin")))
}

/// The server's stack (the same assembly `AppBuilder::build` uses), each layer
/// with a do-nothing backend.
fn stack(authenticator: Arc<dyn Authenticator>) -> BoxImageService {
    server_stack(authenticator, None)
}

/// [`stack`], each layer's calls counted in the server's metrics when
/// `metrics` is given (as the server runs it).
fn server_stack(
    authenticator: Arc<dyn Authenticator>,
    metrics: Option<Metrics>,
) -> BoxImageService {
    let stack = Stack::new(AuthLayer::new(authenticator))
        .notifier(notifier())
        .policy(policy())
        .quota(quota())
        .location(location());
    match metrics {
        Some(m) => stack.observe(Arc::new(m)).build(core()),
        None => stack.build(core()),
    }
}

/// Auth and one other layer over the core: what each layer adds alone.
fn with_auth<L>(layer: L) -> BoxImageService
where
    L: Layer<BoxImageService>,
    L::Service: ImageService,
{
    BoxImageService::new(noauth().layer(BoxImageService::new(layer.layer(core()))))
}

/// A project member, as keystonemiddleware's headers describe one.
fn member_context() -> RequestContext {
    let mut ctx = RequestContext::default();
    for (k, v) in [
        ("x-identity-status", "Confirmed"),
        ("x-project-id", PROJECT),
        ("x-user-id", "u1"),
        ("x-roles", "member,reader"),
    ] {
        ctx.credentials.identity_headers.insert(k.into(), v.into());
    }
    ctx
}

fn patch() -> Vec<Change> {
    let doc = serde_json::json!([
        {"op": "replace", "path": "/name", "value": "cirros-renamed"},
        {"op": "add", "path": "/hw_scsi_model", "value": "virtio-scsi"},
    ]);
    parse_changes(&doc, false).unwrap()
}

fn layer_stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let changes = patch();
    let services = [
        ("bare", core(), RequestContext::default()),
        (
            "stack_noauth",
            stack(Arc::new(NoAuth::new("admin", "admin"))),
            RequestContext::default(),
        ),
        (
            "stack_member",
            stack(Arc::new(TrustedHeaders)),
            member_context(),
        ),
        (
            "stack_member_metrics",
            server_stack(Arc::new(TrustedHeaders), Some(Metrics::new())),
            member_context(),
        ),
        (
            "auth",
            BoxImageService::new(noauth().layer(core())),
            RequestContext::default(),
        ),
        (
            "auth+notifier",
            with_auth(notifier()),
            RequestContext::default(),
        ),
        (
            "auth+policy",
            with_auth(policy()),
            RequestContext::default(),
        ),
        ("auth+quota", with_auth(quota()), RequestContext::default()),
        (
            "auth+location",
            with_auth(location()),
            RequestContext::default(),
        ),
    ];
    let mut group = c.benchmark_group("layer_stack");
    for (name, svc, ctx) in &services {
        group.bench_function(format!("get/{name}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let req = ImageRequest::new(ctx.clone(), Operation::Get { id: ID.into() });
                    black_box(svc.clone().oneshot(req).await.unwrap())
                })
            })
        });
        group.bench_function(format!("update/{name}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let op = Operation::Update {
                        id: ID.into(),
                        changes: changes.clone(),
                    };
                    black_box(
                        svc.clone()
                            .oneshot(ImageRequest::new(ctx.clone(), op))
                            .await
                            .unwrap(),
                    )
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, layer_stack);
criterion_main!(benches);
