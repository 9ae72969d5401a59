//! The core on an in-memory SQLite database: its status machine on its own, then
//! the whole domain stack with each optional layer left out in turn.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use glance_layers::auth::{AuthLayer, NoAuth};
use glance_layers::image::Location;
use glance_layers::location::LocationLayer;
use glance_layers::location::digest::HashAlgo;
use glance_layers::notifier::{MemorySink, NotifierLayer};
use glance_layers::patch::parse_changes;
use glance_layers::policy::rules::RuleSet;
use glance_layers::policy::{PolicyLayer, PolicyRules};
use glance_layers::protection::{PropertyProtectionLayer, PropertyRules};
use glance_layers::quota::{ProjectLimits, QuotaLayer, QuotaLimits};
use glance_layers::stack::Stack;
use glance_layers::store::{Store, StoreSet};
use glance_layers::uploads::UploadRecords;
use glance_layers::{
    BoxImageService, Identity, ImageData, ImageError, ImageRequest, ImageResponse, ImageStatus,
    NewImage, Operation, RequestContext, StoredData, Visibility,
};
use serde_json::json;
use tower::ServiceExt;

use super::*;
use crate::recovery::{LeaseKeeper, NodeIdentity};
use crate::store::MemoryStore;

struct Fixture {
    core: ImageCore,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let db = crate::db::connect("sqlite::memory:").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let node = NodeIdentity::establish(Some("test-node"), dir.path()).unwrap();
        let leases = LeaseKeeper::new(node, Duration::from_secs(60));
        let core = ImageCore::new(Repo::new(db), ImageLimits::default(), leases);
        Fixture { core, _dir: dir }
    }

    async fn call(&self, op: Operation) -> Result<ImageResponse> {
        self.call_as(admin(), op).await
    }

    async fn call_as(&self, ctx: RequestContext, op: Operation) -> Result<ImageResponse> {
        self.core.clone().oneshot(ImageRequest::new(ctx, op)).await
    }

    async fn image(&self, op: Operation) -> Result<Image> {
        self.call(op).await?.into_image()
    }

    /// A queued image ready for data.
    async fn queued(&self) -> Image {
        self.image(Operation::Create(NewImage {
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            ..NewImage::default()
        }))
        .await
        .unwrap()
    }
}

fn admin() -> RequestContext {
    RequestContext {
        identity: Some(Identity {
            project_id: Some("p1".into()),
            user_id: Some("u1".into()),
            roles: vec!["admin".into(), "member".into(), "reader".into()],
            is_admin: true,
            ..Identity::default()
        }),
        ..RequestContext::default()
    }
}

fn stored(url: &str) -> StoredData {
    let mut metadata = serde_json::Map::new();
    metadata.insert("store".into(), json!("memory"));
    StoredData {
        location: Location {
            url: url.into(),
            metadata,
        },
        size: 4,
        checksum: "8d777f385d3dfec8815d20f7496026dc".into(),
        os_hash_algo: "sha512".into(),
        os_hash_value: "77c7ce9a5d86bb386d443bb96390faa1".into(),
        virtual_size: Some(4),
    }
}

#[tokio::test]
async fn an_upload_goes_queued_saving_active_and_nothing_else_can_start_it() {
    let f = Fixture::new().await;
    let image = f.queued().await;
    assert_eq!(image.status, ImageStatus::Queued);
    let ctx = admin();
    let lease = f.core.begin(&ctx, &image.id, "memory").await.unwrap();
    assert_eq!(
        lease.image.status,
        ImageStatus::Saving,
        "the record as begin left it"
    );
    let saving = f
        .image(Operation::Get {
            id: image.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(saving.status, ImageStatus::Saving);
    // A second upload of the same image is refused while the first holds it.
    let second = f.core.begin(&admin(), &image.id, "memory").await;
    assert!(matches!(second, Err(ImageError::Conflict(m)) if m.contains("from saving")));
    let done = f.core.finish(&lease, &stored("memory://a")).await.unwrap();
    assert_eq!(done.status, ImageStatus::Active);
    assert_eq!(done.size, Some(4));
    assert_eq!(
        done.virtual_size,
        Some(4),
        "the virtual size inspection found is recorded"
    );
    // What finish answers is what the database now holds.
    let read = f
        .image(Operation::Get {
            id: image.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(read.status, done.status);
    assert_eq!(read.checksum, done.checksum);
    assert_eq!(read.locations, done.locations);
    assert!(
        !f.core.holds(&lease).await.unwrap(),
        "finish released the lease"
    );
    let again = f.core.begin(&admin(), &image.id, "memory").await;
    assert!(matches!(again, Err(ImageError::Conflict(m)) if m.contains("from active")));
}

#[tokio::test]
async fn a_patch_while_the_data_flows_is_in_the_finished_record() {
    let f = Fixture::new().await;
    let image = f.queued().await;
    let lease = f.core.begin(&admin(), &image.id, "memory").await.unwrap();
    let changes = parse_changes(
        &json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        false,
    )
    .unwrap();
    f.image(Operation::Update {
        id: image.id.clone(),
        changes,
    })
    .await
    .unwrap();
    let done = f.core.finish(&lease, &stored("memory://p")).await.unwrap();
    assert_eq!(done.status, ImageStatus::Active);
    assert_eq!(done.name.as_deref(), Some("renamed"));
}

#[tokio::test]
async fn an_aborted_upload_is_queued_again_with_no_data_attributes() {
    let f = Fixture::new().await;
    let image = f.queued().await;
    let lease = f.core.begin(&admin(), &image.id, "memory").await.unwrap();
    f.core.abort(&lease, false).await.unwrap();
    let back = f
        .image(Operation::Get {
            id: image.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(back.status, ImageStatus::Queued);
    assert_eq!((back.size, back.checksum), (None, None));
    // And it can be uploaded again.
    let lease = f.core.begin(&admin(), &image.id, "memory").await.unwrap();
    assert_eq!(
        f.core
            .finish(&lease, &stored("memory://b"))
            .await
            .unwrap()
            .status,
        ImageStatus::Active
    );
}

#[tokio::test]
async fn data_needs_both_formats_first() {
    let f = Fixture::new().await;
    let bare = f
        .image(Operation::Create(NewImage::default()))
        .await
        .unwrap();
    let err = f
        .core
        .begin(&admin(), &bare.id, "memory")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ImageError::Invalid(
            "Properties disk_format, container_format must be set prior to saving data.".into()
        )
    );
}

#[tokio::test]
async fn deactivation_is_for_active_images_and_repeats_harmlessly() {
    let f = Fixture::new().await;
    let image = f.queued().await;
    let id = || image.id.clone();
    let queued = f.image(Operation::Deactivate { id: id() }).await;
    assert!(matches!(queued, Err(ImageError::Forbidden(m)) if m.contains("status 'queued'")));
    let lease = f.core.begin(&admin(), &image.id, "memory").await.unwrap();
    f.core.finish(&lease, &stored("memory://c")).await.unwrap();
    let off = f.image(Operation::Deactivate { id: id() }).await.unwrap();
    assert_eq!(off.status, ImageStatus::Deactivated);
    let read = f.image(Operation::Get { id: id() }).await.unwrap();
    assert_eq!((read.status, read.updated_at), (off.status, off.updated_at));
    let twice = f.image(Operation::Deactivate { id: id() }).await.unwrap();
    assert_eq!(twice.status, ImageStatus::Deactivated);
    let on = f.image(Operation::Reactivate { id: id() }).await.unwrap();
    assert_eq!(on.status, ImageStatus::Active);
}

#[tokio::test]
async fn deletes_refuse_protected_images_and_leave_nothing_to_find() {
    let f = Fixture::new().await;
    let image = f
        .image(Operation::Create(NewImage {
            protected: Some(true),
            ..NewImage::default()
        }))
        .await
        .unwrap();
    let id = || image.id.clone();
    let refused = f.image(Operation::Delete { id: id() }).await;
    assert!(matches!(refused, Err(ImageError::Forbidden(m)) if m.contains("protected")));
    let changes = parse_changes(
        &json!([{"op": "replace", "path": "/protected", "value": false}]),
        false,
    )
    .unwrap();
    f.image(Operation::Update { id: id(), changes })
        .await
        .unwrap();
    let deleted = f.image(Operation::Delete { id: id() }).await.unwrap();
    assert_eq!(deleted.status, ImageStatus::Deleted);
    assert!(deleted.deleted_at.is_some());
    assert!(matches!(
        f.image(Operation::Get { id: id() }).await,
        Err(ImageError::NotFound(_))
    ));
    // Glance never reuses an id, deleted or not.
    let reuse = f
        .image(Operation::Create(NewImage {
            id: Some(id()),
            ..NewImage::default()
        }))
        .await;
    assert!(matches!(reuse, Err(ImageError::Conflict(_))));
}

#[tokio::test]
async fn the_image_a_layer_loaded_is_used_and_not_read_again() {
    let f = Fixture::new().await;
    let image = f.queued().await;
    // A layer above loaded the record, named differently than the database has it:
    // the core answers from what was loaded.
    let mut loaded = image.clone();
    loaded.name = Some("as loaded".into());
    let ctx = admin();
    ctx.loaded.keep(loaded);
    let got = f
        .call_as(
            ctx,
            Operation::Get {
                id: image.id.clone(),
            },
        )
        .await
        .unwrap()
        .into_image()
        .unwrap();
    assert_eq!(got.name.as_deref(), Some("as loaded"));
    // A loaded record of another image is not taken for this one.
    let ctx = admin();
    ctx.loaded
        .keep(Image::new("other".into(), chrono::Utc::now()));
    let got = f
        .call_as(
            ctx,
            Operation::Get {
                id: image.id.clone(),
            },
        )
        .await
        .unwrap()
        .into_image()
        .unwrap();
    assert_eq!(got.id, image.id);
}

#[tokio::test]
async fn the_core_alone_answers_what_optional_layers_would() {
    let f = Fixture::new().await;
    assert!(matches!(
        f.call(Operation::Usage).await.unwrap(),
        ImageResponse::Usage(u) if u.is_empty()
    ));
    assert!(matches!(
        f.call(Operation::StoresInfo { detail: true }).await.unwrap(),
        ImageResponse::Stores(s) if s.is_empty()
    ));
    assert!(matches!(
        f.call(Operation::Authenticate).await.unwrap(),
        ImageResponse::Empty
    ));
    assert!(matches!(
        f.call_as(RequestContext::default(), Operation::Authenticate)
            .await,
        Err(ImageError::NotAuthenticated(_))
    ));
}

/// Which optional layers a stack leaves out.
#[derive(Debug, Clone, Copy, Default)]
struct Without {
    notifier: bool,
    policy: bool,
    quota: bool,
    protection: bool,
}

fn stack(core: &ImageCore, without: Without, sink: &MemorySink) -> BoxImageService {
    let records = Arc::new(core.clone());
    let stores = StoreSet::single("memory", Arc::new(MemoryStore::default()) as Arc<dyn Store>);
    let protections = "[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n";
    Stack::new(AuthLayer::new(Arc::new(NoAuth::new("p1", "u1"))))
        .protection(
            (!without.protection)
                .then(|| PropertyProtectionLayer::new(PropertyRules::parse(protections).unwrap())),
        )
        .notifier(
            (!without.notifier).then(|| NotifierLayer::new(Arc::new(sink.clone()), "image.test")),
        )
        .policy(
            (!without.policy)
                .then(|| PolicyLayer::new(PolicyRules::new(RuleSet::defaults()), records.clone())),
        )
        .quota((!without.quota).then(|| {
            QuotaLayer::new(
                QuotaLimits::default(),
                Arc::new(ProjectLimits {
                    image_count_total: Some(100),
                    ..ProjectLimits::default()
                }),
                records.clone(),
            )
        }))
        .location(LocationLayer::new(
            stores,
            HashAlgo::Sha512,
            records,
            Default::default(),
        ))
        .build(core.clone())
}

/// What a client does with an image from start to end, through `svc`.
async fn scenario(svc: &BoxImageService) {
    let call = |op: Operation| {
        let svc = svc.clone();
        async move {
            svc.oneshot(ImageRequest::new(RequestContext::default(), op))
                .await
        }
    };
    let image = call(Operation::Create(NewImage {
        name: Some("cirros".into()),
        disk_format: Some("raw".into()),
        container_format: Some("bare".into()),
        visibility: Some(Visibility::Shared),
        properties: [("os_distro".to_string(), "cirros".to_string())].into(),
        ..NewImage::default()
    }))
    .await
    .unwrap()
    .into_image()
    .unwrap();
    let id = || image.id.clone();
    let changes = parse_changes(
        &json!([{"op": "replace", "path": "/os_distro", "value": "ubuntu"}]),
        false,
    )
    .unwrap();
    let patched = call(Operation::Update { id: id(), changes })
        .await
        .unwrap()
        .into_image()
        .unwrap();
    assert_eq!(patched.properties["os_distro"], "ubuntu");
    let read = call(Operation::Get { id: id() })
        .await
        .unwrap()
        .into_image()
        .unwrap();
    assert_eq!(
        read.properties["os_distro"], "ubuntu",
        "the new value was stored"
    );
    call(Operation::AddTag {
        id: id(),
        tag: "small".into(),
    })
    .await
    .unwrap();
    let data = ImageData::new(
        futures_util::stream::iter([Ok(Bytes::from_static(b"data"))]),
        Some(4),
    );
    let active = call(Operation::Upload {
        id: id(),
        data,
        store: None,
    })
    .await
    .unwrap()
    .into_image()
    .unwrap();
    assert_eq!(active.status, ImageStatus::Active);
    assert_eq!(
        active.checksum.as_deref(),
        Some("8d777f385d3dfec8815d20f7496026dc")
    );
    assert!(
        active.tags.contains("small"),
        "the upload answers the whole record"
    );
    let ImageResponse::Data(download) = call(Operation::Download {
        id: id(),
        range: None,
    })
    .await
    .unwrap() else {
        panic!("expected data");
    };
    let bytes: Vec<Bytes> = download.data.map(|c| c.unwrap()).collect().await;
    assert_eq!(bytes.concat(), b"data");
    let member = call(Operation::AddMember {
        id: id(),
        member_id: "p2".into(),
    })
    .await
    .unwrap();
    assert!(matches!(member, ImageResponse::Member(m) if m.member_id == "p2"));
    assert!(matches!(
        call(Operation::ListMembers { id: id() }).await.unwrap(),
        ImageResponse::Members(ms) if ms.len() == 1
    ));
    assert!(matches!(
        call(Operation::Usage).await.unwrap(),
        ImageResponse::Usage(_)
    ));
    assert!(matches!(
        call(Operation::StoresInfo { detail: false }).await.unwrap(),
        ImageResponse::Stores(s) if s.len() == 1
    ));
    assert!(matches!(
        call(Operation::Authenticate).await.unwrap(),
        ImageResponse::Empty
    ));
    let deleted = call(Operation::Delete { id: id() })
        .await
        .unwrap()
        .into_image()
        .unwrap();
    assert_eq!(deleted.status, ImageStatus::Deleted);
    assert!(matches!(
        call(Operation::Get { id: id() }).await,
        Err(ImageError::NotFound(_))
    ));
}

#[tokio::test]
async fn every_optional_layer_can_be_left_out() {
    let cases = [
        ("whole stack", Without::default()),
        (
            "no notifier",
            Without {
                notifier: true,
                ..Without::default()
            },
        ),
        (
            "no policy",
            Without {
                policy: true,
                ..Without::default()
            },
        ),
        (
            "no quota",
            Without {
                quota: true,
                ..Without::default()
            },
        ),
        (
            "no property protection",
            Without {
                protection: true,
                ..Without::default()
            },
        ),
        (
            "none of them",
            Without {
                notifier: true,
                policy: true,
                quota: true,
                protection: true,
            },
        ),
    ];
    for (name, without) in cases {
        let f = Fixture::new().await;
        let sink = MemorySink::default();
        println!("scenario: {name}");
        scenario(&stack(&f.core, without, &sink)).await;
        let events = sink.events();
        if without.notifier {
            assert!(events.is_empty(), "{name}");
        } else {
            let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
            for kind in [
                "image.create",
                "image.prepare",
                "image.upload",
                "image.delete",
            ] {
                assert!(kinds.contains(&kind), "{name}: no {kind} in {kinds:?}");
            }
        }
    }
}
