//! JSON rendering of images as the API writes it: one image (ten properties, five
//! tags) and a list page of 1000, through the API's own `render` and Python-style
//! serializer (`glance_api::api::{render, json}`); then the
//! same two responses through the whole `Api` service over a stub stack, for what
//! routing, the page links and the body add.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use glance_api::api::{Api, ApiConfig, json, render};
use glance_layers::image::Location;
use glance_layers::{
    BoxImageService, Image, ImagePage, ImageRequest, ImageResponse, ImageStatus, Operation,
    Visibility,
};
use http_body_util::{BodyExt, Empty};
use tower::ServiceExt;

const PAGE: usize = 1000;

fn image(i: usize) -> Image {
    let created = chrono::DateTime::from_timestamp(1_760_000_000 + i as i64 * 60, 0).unwrap();
    let mut img = Image::new(format!("6f1c9a52-3b7e-4d2a-8c41-{i:012x}"), created);
    img.name = Some(format!("ubuntu-24.04-server-cloudimg-amd64-{i}"));
    img.status = ImageStatus::Active;
    img.visibility = Visibility::Public;
    img.owner = Some("5d8b6f1e0c2a4b39a7e64c1f2d3b8a90".into());
    img.size = Some(614_465_536);
    img.virtual_size = Some(3_758_096_384);
    img.disk_format = Some("qcow2".into());
    img.container_format = Some("bare".into());
    img.checksum = Some("2b1d5e8c7a9f40316e2d4c8b9a7f6e5d".into());
    img.os_hash_algo = Some("sha512".into());
    img.os_hash_value = Some("ab".repeat(64));
    for (k, v) in [
        ("architecture", "x86_64"),
        ("hw_disk_bus", "virtio"),
        ("hw_scsi_model", "virtio-scsi"),
        ("hw_qemu_guest_agent", "yes"),
        ("hw_vif_model", "virtio"),
        ("os_distro", "ubuntu"),
        ("os_version", "24.04"),
        ("os_type", "linux"),
        ("os_admin_user", "ubuntu"),
        (
            "description",
            "Ubuntu Server 24.04 LTS (Noble Numbat) cloud image",
        ),
    ] {
        img.properties.insert(k.into(), v.into());
    }
    for t in ["ubuntu", "lts", "noble", "cloudimg", "amd64"] {
        img.tags.insert(t.into());
    }
    let mut metadata = serde_json::Map::new();
    metadata.insert("store".into(), "file".into());
    img.locations.push(Location {
        url: format!("file:///var/lib/glance/images/{}", img.id),
        metadata,
    });
    img
}

/// The default configuration's view: no `direct_url`.
static VIEW: render::ImageView = render::ImageView {
    direct_url: None,
    locations: false,
};

/// The list body as the API assembles it (`ListBody` in `src/api/mod.rs`).
#[derive(serde::Serialize)]
struct Page<'a> {
    images: Vec<render::ImageJson<'a>>,
    first: &'static str,
    schema: &'static str,
    next: Option<String>,
}

fn page_body(images: &[Image]) -> Page<'_> {
    Page {
        images: images.iter().map(|i| render::image(i, &VIEW)).collect(),
        first: "/v2/images?limit=1000",
        schema: "/v2/schemas/images",
        next: images
            .last()
            .map(|last| format!("/v2/images?limit=1000&marker={}", last.id)),
    }
}

/// A stack that answers a show with `one` and a list with `page` (behind `Arc`s:
/// the API clones the stack for every request).
fn stub_stack(one: Image, page: Vec<Image>) -> BoxImageService {
    let (one, page) = (Arc::new(one), Arc::new(page));
    BoxImageService::new(tower::service_fn(move |req: ImageRequest| {
        let resp = match req.op {
            Operation::List(_) => ImageResponse::Images(ImagePage {
                images: page.as_ref().clone(),
            }),
            _ => ImageResponse::image(one.as_ref().clone()),
        };
        async move { Ok(resp) }
    }))
}

fn render_json(c: &mut Criterion) {
    let one = image(0);
    let page: Vec<Image> = (0..PAGE).map(image).collect();
    let bytes_one = json::to_vec(&render::image(&one, &VIEW)).len();
    let bytes_page = json::to_vec(&page_body(&page)).len();

    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Bytes(bytes_one as u64));
    group.bench_function("image", |b| {
        b.iter(|| black_box(json::to_vec(&render::image(black_box(&one), &VIEW))))
    });
    group.throughput(Throughput::Bytes(bytes_page as u64));
    group.bench_function("page_1000", |b| {
        b.iter(|| black_box(json::to_vec(&page_body(black_box(&page)))))
    });
    group.finish();

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let api = Api::new(stub_stack(one, page.clone()), ApiConfig::default());
    let call = |uri: &'static str| {
        let api = api.clone();
        let rt = &rt;
        move || {
            rt.block_on(async {
                let req = http::Request::get(uri)
                    .header("host", "localhost")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = api.clone().oneshot(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                black_box(resp.into_body().collect().await.unwrap().to_bytes())
            })
        }
    };
    let mut group = c.benchmark_group("api");
    let show = call("/v2/images/6f1c9a52-3b7e-4d2a-8c41-000000000000");
    group.bench_function("show", |b| b.iter(&show));
    let list = call("/v2/images?limit=1000");
    group.bench_function("list_1000", |b| b.iter(&list));
    // What the stub itself spends on a list (its copy of the page), to subtract.
    group.bench_function("stub_page_clone", |b| b.iter(|| black_box(page.clone())));
    group.finish();
}

criterion_group!(benches, render_json);
criterion_main!(benches);
